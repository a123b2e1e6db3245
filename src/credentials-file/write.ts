// Writes temporary credentials into an AWS shared credentials file:
// atomically (temp file in the same directory, fsync, rename, fsync dir),
// mode 0600 (or the original's, when stricter), everything else preserved.
import { randomBytes } from 'node:crypto';
import { chown, lstat, mkdir, open, readFile, readlink, realpath, rename, stat, unlink } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { homeDirectory } from '../config/home.js';
import { UserError } from '../errors.js';
import type { AwsCredentials } from '../rolesanywhere/types.js';
import { setSectionValues } from './ini.js';
import { withLock, type LockOptions } from './lock.js';

/** `AWS_SHARED_CREDENTIALS_FILE`, else `~/.aws/credentials` (as the AWS CLI resolves it). */
export function credentialsFilePath(env: NodeJS.ProcessEnv = process.env): string {
  const fromEnv = env.AWS_SHARED_CREDENTIALS_FILE;
  const home = () => homeDirectory(env, 'the shared credentials file (~/.aws/credentials; set AWS_SHARED_CREDENTIALS_FILE)');
  if (fromEnv) return resolve(fromEnv.startsWith('~/') ? join(home(), fromEnv.slice(2)) : fromEnv);
  return join(home(), '.aws', 'credentials');
}

/** Keys this tool manages in a profile section. `aws_security_token` is the legacy name of the token: removed so it cannot shadow-conflict. */
export const MANAGED_KEYS = ['aws_access_key_id', 'aws_secret_access_key', 'aws_session_token'] as const;
const LEGACY_KEYS = ['aws_security_token'];

function fsError(err: unknown, what: string, path: string): UserError {
  const code = (err as NodeJS.ErrnoException).code ?? 'error';
  const hint =
    code === 'EACCES' || code === 'EPERM'
      ? 'check the permissions of the file and its directory'
      : code === 'ENOSPC'
        ? 'free some disk space'
        : code === 'EROFS'
          ? 'the file system is read-only; set AWS_SHARED_CREDENTIALS_FILE to a writable path'
          : 'check the path (AWS_SHARED_CREDENTIALS_FILE)';
  return new UserError(`cannot ${what} ${path} (${code}): ${hint}`, { reason: 'credentials_file', cause: err });
}

export interface WriteResult {
  path: string;
  created: boolean;
  mode: number;
}

/**
 * The file a write to `path` must replace: `path` itself, or, when `path` is
 * a symbolic link (also a dangling one), the file it points to, so the link
 * survives the write.
 */
export async function writeTarget(path: string): Promise<string> {
  try {
    return await realpath(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw fsError(err, 'resolve', path);
  }
  // Missing, or a link to something missing: follow links by hand to the name to create.
  let current = resolve(path);
  for (let hops = 0; hops < 40; hops++) {
    let st;
    try {
      st = await lstat(current);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        // The directory part may itself hold links: resolve what exists of it.
        const parent = await realpath(dirname(current)).catch(() => dirname(current));
        return join(parent, basename(current));
      }
      throw fsError(err, 'resolve', current);
    }
    if (!st.isSymbolicLink()) return current;
    current = resolve(dirname(current), await readlink(current));
  }
  throw new UserError(`${path}: too many levels of symbolic links; point AWS_SHARED_CREDENTIALS_FILE at the file itself`, { reason: 'credentials_file' });
}

/**
 * Sets the three credential keys of `[profile]` in the credentials file at
 * `path`, creating the file (and its directory, 0700) when missing. The
 * read-modify-rename runs under a lock file (`<file>.lock`), so concurrent
 * writers (one `update` per profile) never revert each other's keys.
 */
export async function writeCredentialsProfile(path: string, profile: string, creds: AwsCredentials, lock: LockOptions = {}): Promise<WriteResult> {
  // Follow a symlinked credentials file (even a dangling one) so the link itself survives.
  const target = await writeTarget(path);
  try {
    await mkdir(dirname(target), { recursive: true, mode: 0o700 });
  } catch (e) {
    throw fsError(e, 'create the directory', dirname(target));
  }
  return withLock(`${target}.lock`, () => writeUnderLock(target, profile, creds), lock);
}

async function writeUnderLock(target: string, profile: string, creds: AwsCredentials): Promise<WriteResult> {
  const dir = dirname(target);
  let original = '';
  let created = false;
  let mode = 0o600;
  let owner: { uid: number; gid: number } | undefined;
  try {
    const st = await stat(target);
    if (!st.isFile()) throw new UserError(`${target} is not a regular file: point AWS_SHARED_CREDENTIALS_FILE at a file`, { reason: 'credentials_file' });
    mode = st.mode & 0o600; // keep a stricter mode (e.g. 0400); never wider than 0600
    if (mode === 0) mode = 0o600;
    owner = { uid: st.uid, gid: st.gid };
    original = (await readFile(target)).toString('latin1');
  } catch (err) {
    if (err instanceof UserError) throw err;
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw fsError(err, 'read', target);
    created = true;
  }

  const updated = setSectionValues(
    original,
    profile,
    {
      aws_access_key_id: creds.accessKeyId,
      aws_secret_access_key: creds.secretAccessKey,
      aws_session_token: creds.sessionToken,
    },
    LEGACY_KEYS,
    target,
  );

  const tmp = join(dir, `.${basename(target)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  let fh;
  try {
    fh = await open(tmp, 'wx', mode);
  } catch (err) {
    throw fsError(err, 'create a temporary file in', dir);
  }
  try {
    await fh.writeFile(Buffer.from(updated, 'latin1'));
    await fh.chmod(mode); // the umask may have narrowed or the open mode been ignored
    if (owner && process.getuid?.() === 0 && (owner.uid !== 0 || owner.gid !== 0)) {
      await chown(tmp, owner.uid, owner.gid).catch(() => undefined);
    }
    await fh.sync();
    await fh.close();
    fh = undefined;
    await rename(tmp, target);
  } catch (err) {
    await fh?.close().catch(() => undefined);
    await unlink(tmp).catch(() => undefined);
    throw fsError(err, 'write', target);
  }
  // Make the rename itself durable.
  try {
    const d = await open(dir, 'r');
    await d.sync().catch(() => undefined);
    await d.close();
  } catch {
    // Some file systems do not allow opening/fsyncing directories; the data is already written.
  }
  return { path: target, created, mode };
}
