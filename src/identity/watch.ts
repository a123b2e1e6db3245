import { createHash } from 'node:crypto';
import { realpath } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { watch as chokidarWatch, type FSWatcher } from 'chokidar';
import { describeError, UserError } from '../errors.js';
import type { Logger } from '../log.js';
import { silentLogger } from '../log.js';
import type { Identity, IdentitySource } from './types.js';
import { isKeyFile } from './key-sources.js';
import { keyMatchesCertificate } from './keys.js';
import { clampDelay } from '../timers.js';
import { hashableContent } from './files.js';

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
  /**
   * Further files the identity depends on (the key's password file): watched
   * and hashed with the certificate and key, so a password written after its
   * re-encrypted key still triggers a retry of a pair first refused.
   */
  extraFiles?: string[];
  /**
   * Where the underlying file watchers come from. A daemon passes one registry
   * to all its profiles so profiles whose files share a directory share one
   * chokidar watcher; without it the watcher has a registry of its own.
   */
  registry?: WatcherRegistry;
}

/** Receives the events of a watched directory. */
export interface DirectoryListener {
  /** Any change in the directory (no filtering: the content hash decides). */
  onEvent: () => void;
  onError: (err: unknown) => void;
}

export interface DirectorySubscription {
  /** Resolves when the underlying watcher has its initial scan (or was closed). */
  ready: Promise<void>;
  /** Stops this listener; the underlying watcher closes with its last listener. Idempotent. */
  close: () => Promise<void>;
}

interface RegistryEntry {
  watcher: FSWatcher;
  listeners: Set<DirectoryListener>;
  ready: Promise<void>;
  markReady: () => void;
}

/**
 * Shares chokidar watchers between identity watchers: one watcher per
 * directory (depth 0, symlinks not followed), reference-counted, whose events
 * fan out to every listener of that directory. Each chokidar watcher costs
 * ~90 KB, so 1000 profiles on the same files need 1–2 watchers instead of 1000.
 */
export class WatcherRegistry {
  private readonly entries = new Map<string, RegistryEntry>();

  /** Underlying chokidar watchers open now. */
  get size(): number {
    return this.entries.size;
  }

  /** Directories watched now, with their number of listeners. */
  directories(): Array<{ dir: string; listeners: number }> {
    return [...this.entries].map(([dir, e]) => ({ dir, listeners: e.listeners.size }));
  }

  /** Listens to changes in `dir` (an absolute path), starting a watcher for it unless one is open. */
  subscribe(dir: string, listener: DirectoryListener): DirectorySubscription {
    let entry = this.entries.get(dir);
    if (!entry) {
      const watcher = chokidarWatch(dir, { ignoreInitial: true, depth: 0, persistent: false, followSymlinks: false });
      const listeners = new Set<DirectoryListener>();
      const { promise: ready, resolve: markReady } = Promise.withResolvers<void>();
      watcher.once('ready', () => markReady());
      watcher.on('all', () => {
        for (const l of [...listeners]) l.onEvent();
      });
      watcher.on('error', (err) => {
        for (const l of [...listeners]) l.onError(err);
      });
      entry = { watcher, listeners, ready, markReady };
      this.entries.set(dir, entry);
    }
    const e = entry;
    e.listeners.add(listener);
    let closed = false;
    return {
      ready: e.ready,
      close: async () => {
        if (closed) return;
        closed = true;
        e.listeners.delete(listener);
        if (e.listeners.size > 0 || this.entries.get(dir) !== e) return;
        this.entries.delete(dir);
        e.markReady();
        await e.watcher.close();
      },
    };
  }
}

/**
 * Refusals that may go away with time alone: the certificate's validity period
 * vs. the clock, and a TPM that is unreachable or full right now (a rotated
 * certificate seen while the TPM is away must be taken once it is back).
 */
const TIME_DEPENDENT_REASONS = new Set(['cert_rule_validity', 'certificate_not_yet_valid', 'tpm_unreachable', 'tpm_busy']);

/** The identity's own files, in a fixed order (absent ones, and objects on a token or in a TPM, as undefined so the hash marks them). */
function identityPaths(source: IdentitySource): Array<string | undefined> {
  return [source.certificate, source.privateKey, source.intermediates].map((p) => (p !== undefined && !isKeyFile(p) ? undefined : p));
}

/** sha256 over the identity files' bytes (following symlinks); missing files hash as a marker. */
export async function hashIdentityFiles(source: IdentitySource, extraFiles: readonly string[] = []): Promise<string> {
  const h = createHash('sha256');
  for (const path of [...identityPaths(source), ...extraFiles]) {
    if (!path) {
      h.update('\0none\0');
      continue;
    }
    const data = await hashableContent(path);
    h.update(`\0${data.length}\0`);
    h.update(data);
  }
  return h.digest('hex');
}

/**
 * Checks a freshly loaded identity is usable: the private key belongs to the
 * certificate and the certificate is within its validity period. (The loader
 * does fuller checks; this guards rotation against half-written pairs.)
 */
export function checkIdentityPair(identity: Identity, now = new Date()): void {
  if (!keyMatchesCertificate(identity.signer.publicKey, identity.certificate)) {
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
  private readonly extraFiles: string[];
  private readonly load: (source: IdentitySource) => Promise<Identity>;
  private debounceMs: number;
  private recheckIntervalMs: number;
  private readonly log: Logger;
  private readonly registry: WatcherRegistry;
  private subscriptions?: DirectorySubscription[];
  private debounceTimer?: NodeJS.Timeout;
  private recheckTimer?: NodeJS.Timeout;
  private currentHash?: string;
  private rejectedHash?: string;
  private running?: Promise<void>;
  private again = false;
  private closed = false;
  /** watch() has its file watchers ready (the re-check timer runs from then on). */
  private watching = false;
  /** Number of completed checks (tests wait on it). */
  checks = 0;

  constructor(options: IdentityWatcherOptions) {
    this.source = options.source;
    this.extraFiles = options.extraFiles ?? [];
    this.load = options.load;
    this.debounceMs = options.debounceMs ?? 500;
    this.recheckIntervalMs = options.recheckIntervalMs ?? 60_000;
    this.log = options.logger ?? silentLogger();
    this.onIdentity = options.onIdentity;
    this.onError = options.onError;
    this.registry = options.registry ?? new WatcherRegistry();
  }

  /** Loads the current identity (throws a UserError when unusable) and remembers its files' hash. */
  async loadInitial(): Promise<Identity> {
    const hash = await hashIdentityFiles(this.source, this.extraFiles);
    const identity = await this.load(this.source);
    checkIdentityPair(identity);
    this.currentHash = hash;
    return identity;
  }

  /** Starts watching. Resolves when the file watchers are ready. */
  async watch(): Promise<void> {
    if (this.closed || this.subscriptions) return;
    const subscriptions: DirectorySubscription[] = [];
    this.subscriptions = subscriptions;
    const dirs = new Set<string>();
    for (const p of [...identityPaths(this.source), ...this.extraFiles]) {
      if (!p) continue;
      dirs.add(dirname(resolve(p)));
      try {
        dirs.add(dirname(await realpath(p)));
      } catch {
        // missing now; the directory watch and the re-check will see it appear
      }
    }
    if (this.closed) return;
    const listener: DirectoryListener = {
      onEvent: () => this.schedule(),
      onError: (err) => this.log.debug({ error: describeError(err) }, 'certificate file watcher error'),
    };
    for (const dir of dirs) subscriptions.push(this.registry.subscribe(dir, listener));
    await Promise.all(subscriptions.map((s) => s.ready));
    if (this.closed) return;
    this.watching = true;
    this.startRecheck();
  }

  /**
   * Changes the debounce and re-check interval (config reload) in place: the
   * watcher keeps its current identity and file watches.
   */
  setTiming(options: { debounceMs: number; recheckIntervalMs: number }): void {
    this.debounceMs = options.debounceMs;
    const restart = options.recheckIntervalMs !== this.recheckIntervalMs;
    this.recheckIntervalMs = options.recheckIntervalMs;
    // Before watch() has its watchers ready there is no timer yet; watch() starts it with the new interval.
    if (restart && this.watching) this.startRecheck();
  }

  private startRecheck(): void {
    if (this.recheckTimer) clearInterval(this.recheckTimer);
    this.recheckTimer = undefined;
    if (this.closed || this.recheckIntervalMs <= 0) return;
    this.recheckTimer = setInterval(() => void this.check(), clampDelay(this.recheckIntervalMs));
    this.recheckTimer.unref();
  }

  private schedule(): void {
    if (this.closed) return;
    if (this.debounceTimer) clearTimeout(this.debounceTimer);
    this.debounceTimer = setTimeout(() => {
      this.debounceTimer = undefined;
      void this.check();
    }, clampDelay(this.debounceMs));
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
    const hash = await hashIdentityFiles(this.source, this.extraFiles);
    if (hash === this.currentHash || hash === this.rejectedHash) return;
    let identity: Identity;
    try {
      identity = await this.load(this.source);
      checkIdentityPair(identity);
    } catch (err) {
      if (this.closed) return;
      // Files may still be settling (cert written, key not yet): the next write changes the hash.
      // A refusal that depends on the clock (not valid yet) or on a TPM being away is not
      // remembered: the same files may be accepted later, and the periodic re-check must try them again.
      this.rejectedHash = TIME_DEPENDENT_REASONS.has((err as { reason?: unknown }).reason as string) ? undefined : hash;
      this.onError?.(err);
      return;
    }
    if (this.closed) return;
    // The files may have changed while loading; only accept if they still hash the same.
    const after = await hashIdentityFiles(this.source, this.extraFiles);
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
    const subscriptions = this.subscriptions ?? [];
    await Promise.all(subscriptions.map((s) => s.close()));
  }
}
