// Sessions of pod-identity bindings: one per bound profile per node however
// many pods use it, started when a pod first asks (or at start-up) and
// suspended when no pod has asked for `idleTimeoutMs`, so a node only holds
// sessions its pods use. The sessions themselves are the daemon's (shared
// CreateSession limiter, jittered refresh); this only decides when they run.
import type { CredentialLookup, CredentialSession } from '../credentials/session.js';
import type { Logger } from '../log.js';
import { silentLogger } from '../log.js';
import { clampDelay } from '../timers.js';

/** How long a request for an idle binding waits for its session's first CreateSession. */
export const FIRST_CREDENTIALS_WAIT_MS = 10_000;

export interface OnDemandOptions {
  /** The daemon's session of a profile (changes on reload). */
  session: (profile: string) => CredentialSession | undefined;
  /** Profiles whose sessions this manages (started on demand, suspended when idle). */
  managed: ReadonlySet<string>;
  /** Suspend a managed session when no request used it for this long; 0 = never. */
  idleTimeoutMs: number;
  logger?: Logger;
  now?: () => number;
}

export class OnDemandSessions {
  private readonly options: OnDemandOptions;
  private readonly log: Logger;
  private readonly now: () => number;
  private readonly lastUsed = new Map<string, number>();
  private timer?: NodeJS.Timeout;

  constructor(options: OnDemandOptions) {
    this.options = options;
    this.log = options.logger ?? silentLogger();
    this.now = options.now ?? Date.now;
    if (options.idleTimeoutMs > 0) {
      const every = Math.max(250, Math.min(60_000, Math.floor(options.idleTimeoutMs / 4)));
      this.timer = setInterval(() => this.sweep(), clampDelay(every));
      this.timer.unref();
    }
  }

  get managed(): ReadonlySet<string> {
    return this.options.managed;
  }

  /** Synchronous: the profile's session holds credentials to serve (counts as a use). */
  ready(profile: string): boolean {
    const session = this.options.session(profile);
    if (!session || !session.lookup().ok) return false;
    this.lastUsed.set(profile, this.now());
    return true;
  }

  /**
   * The profile's credentials for a request: starts its session if it is
   * idle and waits (bounded) for the first outcome. Undefined: no such profile.
   */
  async use(profile: string): Promise<CredentialLookup | undefined> {
    const session = this.options.session(profile);
    if (!session) return undefined;
    this.lastUsed.set(profile, this.now());
    const found = session.lookup();
    if (found.ok || session.isStopped) return found;
    if (!session.isRunning) {
      this.log.info({ profile }, 'starting the session of a pod-identity binding on its first request');
      session.start();
    }
    // Wait for the first outcome of the (re)started session: credentials, or a failure to report.
    await session.waitFor((s) => s.lookup().ok || s.status().lastFailure !== undefined || !s.isRunning, FIRST_CREDENTIALS_WAIT_MS).catch(() => undefined);
    return session.lookup();
  }

  /** Suspends managed sessions nobody used for the idle timeout. */
  sweep(): void {
    const idle = this.options.idleTimeoutMs;
    if (idle <= 0) return;
    const now = this.now();
    for (const profile of this.options.managed) {
      const session = this.options.session(profile);
      if (!session?.isRunning) continue;
      const last = this.lastUsed.get(profile);
      if (last === undefined) {
        // Started at start-up and never asked for: the idle clock starts now.
        this.lastUsed.set(profile, now);
        continue;
      }
      if (now - last >= idle) {
        this.log.info({ profile, idleMs: now - last }, 'no pod asked for this binding\'s credentials recently; stopping its session until one does');
        session.suspend();
      }
    }
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }
}
