import { createHash, createPublicKey } from 'node:crypto';
import { readFile, realpath } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { watch as chokidarWatch, type FSWatcher } from 'chokidar';
import { describeError, UserError } from '../errors.js';
import type { Logger } from '../log.js';
import { silentLogger } from '../log.js';
import type { Identity, IdentitySource } from './types.js';

export interface IdentityWatcherOptions {
  source: IdentitySource;
  /** Loads and validates an identity (normally `loadIdentity` with the profile's options). */
  load: (source: IdentitySource) => Promise<Identity>;
  /** Quiet period after the last file event before re-reading (ms). */
  debounceMs?: number;
  /** Periodic re-check that catches missed events (ms); 0 disables. */
  recheckIntervalMs?: number;
  logger?: Logger;
  /** A new, valid identity whose files differ from the current one. */
  onIdentity?: (identity: Identity) => void;
  /** A changed but unusable certificate/key pair (the current identity is kept). */
  onError?: (err: unknown) => void;
}

/** sha256 over the identity files' bytes (following symlinks); missing files hash as a marker. */
export async function hashIdentityFiles(source: IdentitySource): Promise<string> {
  const h = createHash('sha256');
  for (const path of [source.certificate, source.privateKey, source.intermediates]) {
    if (!path) {
      h.update('\0none\0');
      continue;
    }
    try {
      const data = await readFile(path);
      h.update(`\0${data.length}\0`);
      h.update(data);
    } catch (err) {
      h.update(`\0missing:${(err as NodeJS.ErrnoException).code ?? 'error'}\0`);
    }
  }
  return h.digest('hex');
}

/**
 * Checks a freshly loaded identity is usable: the private key belongs to the
 * certificate and the certificate is within its validity period. (The loader
 * does fuller checks; this guards rotation against half-written pairs.)
 */
export function checkIdentityPair(identity: Identity, now = new Date()): void {
  const fromKey = createPublicKey(identity.privateKey).export({ type: 'spki', format: 'der' });
  const fromCert = identity.certificate.publicKey.export({ type: 'spki', format: 'der' });
  if (!fromKey.equals(fromCert)) {
    throw new UserError(
      `${identity.source.privateKey ?? identity.source.certificate}: the private key does not match the certificate ${identity.source.certificate}; install the key that belongs to this certificate`,
      { reason: 'key_mismatch' },
    );
  }
  const notAfter = new Date(identity.certificate.validTo);
  const notBefore = new Date(identity.certificate.validFrom);
  if (now >= notAfter) {
    throw new UserError(`${identity.source.certificate}: the certificate expired at ${notAfter.toISOString()}; install a renewed certificate`, {
      reason: 'certificate_expired',
    });
  }
  if (now < notBefore) {
    throw new UserError(`${identity.source.certificate}: the certificate is not valid before ${notBefore.toISOString()}; check the clock or the certificate`, {
      reason: 'certificate_not_yet_valid',
    });
  }
}

/**
 * Watches a profile's certificate/key files (and their directories, so the
 * Kubernetes `..data` symlink swap and atomic renames are seen), debounces
 * events, ignores no-op changes by content hash, and reports a new valid
 * identity or an error. A periodic re-check catches missed events.
 */
export class IdentityWatcher {
  onIdentity?: (identity: Identity) => void;
  onError?: (err: unknown) => void;

  private readonly source: IdentitySource;
  private readonly load: (source: IdentitySource) => Promise<Identity>;
  private readonly debounceMs: number;
  private readonly recheckIntervalMs: number;
  private readonly log: Logger;
  private watcher?: FSWatcher;
  private debounceTimer?: NodeJS.Timeout;
  private recheckTimer?: NodeJS.Timeout;
  private currentHash?: string;
  private rejectedHash?: string;
  private running?: Promise<void>;
  private again = false;
  private closed = false;
  /** Number of completed checks (tests wait on it). */
  checks = 0;

  constructor(options: IdentityWatcherOptions) {
    this.source = options.source;
    this.load = options.load;
    this.debounceMs = options.debounceMs ?? 500;
    this.recheckIntervalMs = options.recheckIntervalMs ?? 60_000;
    this.log = options.logger ?? silentLogger();
    this.onIdentity = options.onIdentity;
    this.onError = options.onError;
  }

  /** Loads the current identity (throws a UserError when unusable) and remembers its files' hash. */
  async loadInitial(): Promise<Identity> {
    const hash = await hashIdentityFiles(this.source);
    const identity = await this.load(this.source);
    checkIdentityPair(identity);
    this.currentHash = hash;
    return identity;
  }

  /** Starts watching. Resolves when the file watcher is ready. */
  async watch(): Promise<void> {
    if (this.closed || this.watcher) return;
    const dirs = new Set<string>();
    for (const p of [this.source.certificate, this.source.privateKey, this.source.intermediates]) {
      if (!p) continue;
      dirs.add(dirname(resolve(p)));
      try {
        dirs.add(dirname(await realpath(p)));
      } catch {
        // missing now; the directory watch and the re-check will see it appear
      }
    }
    const watcher = chokidarWatch([...dirs], { ignoreInitial: true, depth: 0, persistent: false, followSymlinks: false });
    this.watcher = watcher;
    watcher.on('all', () => this.schedule());
    watcher.on('error', (err) => this.log.debug({ error: describeError(err) }, 'certificate file watcher error'));
    await new Promise<void>((resolveReady) => watcher.once('ready', () => resolveReady()));
    if (this.recheckIntervalMs > 0) {
      this.recheckTimer = setInterval(() => void this.check(), this.recheckIntervalMs);
      this.recheckTimer.unref();
    }
  }

  private schedule(): void {
    if (this.closed) return;
    if (this.debounceTimer) clearTimeout(this.debounceTimer);
    this.debounceTimer = setTimeout(() => {
      this.debounceTimer = undefined;
      void this.check();
    }, this.debounceMs);
    this.debounceTimer.unref();
  }

  /** Re-reads the files now; loads and reports a new identity when their content changed. */
  check(): Promise<void> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    const run = this.checkOnce()
      .catch((err) => this.log.error({ error: describeError(err) }, 'certificate re-check failed'))
      .finally(() => {
        this.running = undefined;
        this.checks++;
        if (this.again && !this.closed) {
          this.again = false;
          void this.check();
        }
      });
    this.running = run;
    return run;
  }

  private async checkOnce(): Promise<void> {
    if (this.closed) return;
    const hash = await hashIdentityFiles(this.source);
    if (hash === this.currentHash || hash === this.rejectedHash) return;
    let identity: Identity;
    try {
      identity = await this.load(this.source);
      checkIdentityPair(identity);
    } catch (err) {
      if (this.closed) return;
      // Files may still be settling (cert written, key not yet): re-check once more after the debounce.
      this.rejectedHash = hash;
      this.onError?.(err);
      return;
    }
    if (this.closed) return;
    // The files may have changed while loading; only accept if they still hash the same.
    const after = await hashIdentityFiles(this.source);
    if (after !== hash) {
      this.schedule();
      return;
    }
    this.currentHash = hash;
    this.rejectedHash = undefined;
    this.onIdentity?.(identity);
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.debounceTimer) clearTimeout(this.debounceTimer);
    if (this.recheckTimer) clearInterval(this.recheckTimer);
    await this.watcher?.close();
    this.watcher = undefined;
  }
}
