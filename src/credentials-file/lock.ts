// A lock around the read-modify-rename of the credentials file, so that
// several `update` processes (one per profile is the usual way to keep
// several profiles fresh) cannot revert each other's writes. The lock is a
// file next to the credentials file, created with O_EXCL; it records the
// holder's pid and host. A lock whose holder is gone (same host, pid not
// running) or that is older than STALE_AFTER_MS is broken.
import { randomBytes } from 'node:crypto';
import { link, open, readFile, rename, stat, unlink } from 'node:fs/promises';
import { hostname } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { UserError } from '../errors.js';
import { clampDelay } from '../timers.js';

/** A holder keeps the lock for milliseconds; one this old is left over from a crash. */
export const STALE_AFTER_MS = 60_000;

export interface LockOptions {
  /** Give up after this long (default 10 s). */
  timeoutMs?: number;
  staleAfterMs?: number;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Whether the lock content `text` (read at `mtimeMs`) belongs to a holder that is gone. */
function isStale(text: string, mtimeMs: number, staleAfterMs: number): boolean {
  if (Date.now() - mtimeMs > staleAfterMs) return true;
  const m = /^(\d+) (\S+)/.exec(text);
  if (!m) return false; // being written right now, or not ours: wait for the age limit
  return m[2] === hostname() && !alive(Number(m[1]));
}

/**
 * Removes a stale lock without racing another process that breaks it at the
 * same time: the lock is moved aside first, and put back (atomically, only if
 * the name is free) when what was moved is no longer the stale lock we read.
 */
async function breakStale(lockPath: string, staleText: string): Promise<void> {
  const aside = `${lockPath}.${process.pid}.${randomBytes(4).toString('hex')}.stale`;
  try {
    await rename(lockPath, aside);
  } catch {
    return; // someone else broke it
  }
  const moved = await readFile(aside, 'utf8').catch(() => '');
  if (moved !== staleText) await link(aside, lockPath).catch(() => undefined);
  await unlink(aside).catch(() => undefined);
}

/** Runs `fn` holding the lock file `lockPath`; always releases it. */
export async function withLock<T>(lockPath: string, fn: () => Promise<T>, options: LockOptions = {}): Promise<T> {
  const timeoutMs = options.timeoutMs ?? 10_000;
  const staleAfterMs = options.staleAfterMs ?? STALE_AFTER_MS;
  const deadline = Date.now() + timeoutMs;
  const content = `${process.pid} ${hostname()} ${new Date().toISOString()}\n`;
  for (let attempt = 0; ; attempt++) {
    let fh;
    try {
      fh = await open(lockPath, 'wx', 0o600);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'EEXIST') {
        throw new UserError(`cannot create the lock file ${lockPath} (${code ?? 'error'}): check the permissions of its directory`, { reason: 'credentials_file', cause: err });
      }
      let text = '';
      let mtimeMs = Date.now();
      try {
        text = await readFile(lockPath, 'utf8');
        mtimeMs = (await stat(lockPath)).mtimeMs;
      } catch {
        continue; // released meanwhile: try again at once
      }
      if (isStale(text, mtimeMs, staleAfterMs)) {
        await breakStale(lockPath, text);
        continue;
      }
      if (Date.now() >= deadline) {
        const holder = /^(\d+) (\S+)/.exec(text);
        throw new UserError(
          `the credentials file is locked by another writer${holder ? ` (pid ${holder[1]} on ${holder[2]})` : ''} for more than ${Math.round(timeoutMs / 1000)} s: if no other update is running, delete ${lockPath}`,
          { reason: 'credentials_file_locked' },
        );
      }
      await sleep(clampDelay(Math.min(200, 10 * 2 ** Math.min(attempt, 4)) * (0.5 + Math.random())));
      continue;
    }
    try {
      await fh.writeFile(content);
    } finally {
      await fh.close();
    }
    try {
      return await fn();
    } finally {
      await unlink(lockPath).catch(() => undefined);
    }
  }
}
