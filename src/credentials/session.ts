import { describeError } from '../errors.js';
import type { Identity } from '../identity/types.js';
import type { Logger } from '../log.js';
import { silentLogger } from '../log.js';
import type { AwsCredentials } from '../rolesanywhere/types.js';
import { backoffDelay, clampDelay } from '../timers.js';

/** Gets fresh credentials for an identity (CreateSession). Must honour `signal`. */
export type FetchCredentials = (identity: Identity, signal: AbortSignal) => Promise<AwsCredentials>;

/** Retry delays after a failed refresh (the settings refresh.backoffInitialMs / refresh.backoffMaxMs default to these). */
export const DEFAULT_BACKOFF_INITIAL_MS = 1000;
export const DEFAULT_BACKOFF_MAX_MS = 30_000;

export interface SessionOptions {
  profile: string;
  identity: Identity;
  fetchCredentials: FetchCredentials;
  /** First retry delay after a failure (ms). */
  backoffInitialMs?: number;
  /** Cap of the retry delay (ms). */
  backoffMaxMs?: number;
  logger?: Logger;
  /** Clock (ms since epoch); tests may inject. */
  now?: () => number;
  /** Random in [0,1) for jitter; tests may inject. */
  random?: () => number;
}

/** What subscribers hear after each refresh attempt. */
export type RefreshOutcome =
  | { ok: true; credentials: AwsCredentials; nextRefreshInMs: number }
  | { ok: false; error: unknown; retryInMs: number };

export interface FailureInfo {
  message: string;
  reason: string;
  at: Date;
}

/** What a route gets: credentials to serve, or why there are none. */
export type CredentialLookup =
  /** Shared by every lookup while these credentials are servable: read it, never change it. */
  | Readonly<{ ok: true; credentials: AwsCredentials; lastUpdated: Date }>
  | { ok: false; message: string; at?: Date };

export interface SessionStatus {
  profile: string;
  /** Credentials are held and outside the expiry margin. */
  ready: boolean;
  expiration?: Date;
  /** When the served credentials were obtained. */
  lastUpdated?: Date;
  lastRefreshAt?: Date;
  lastRefreshOutcome?: 'success' | 'failure';
  lastFailure?: FailureInfo;
  refreshAttempts: number;
  refreshSuccesses: number;
  failuresByReason: Record<string, number>;
  identityReloads: number;
  identityReloadFailures: number;
  lastIdentityError?: FailureInfo;
  certificateSerial: string;
  certificateNotAfter: Date;
  /** Next scheduled refresh, if any. */
  nextRefreshAt?: Date;
  /** The service's clock minus ours, from the last CreateSession answer (0 within its precision). */
  clockOffsetMs: number;
  /** Role chaining: each AssumeRole hop's counters, in order (empty without assumeRole). */
  hops: HopStatus[];
}

/** One AssumeRole hop's counters (`hop` is its index in assumeRole). */
export interface HopStatus {
  hop: number;
  roleArn: string;
  attempts: number;
  successes: number;
  failuresByReason: Record<string, number>;
  /** Expiration of the credentials this hop last gave. */
  expiration?: Date;
}

/** A skew this large is logged as a warning (the service refuses signatures beyond 5 minutes). */
export const CLOCK_SKEW_WARNING_MS = 5_000;

/** Never serve credentials within this margin of their expiration (scaled down for short lifetimes). */
export const MAX_EXPIRY_MARGIN_MS = 60_000;

/** The expiry margin for credentials of the given lifetime: min(60 s, 10% of the lifetime). */
export function expiryMarginMs(lifetimeMs: number): number {
  return Math.max(0, Math.min(MAX_EXPIRY_MARGIN_MS, Math.floor(lifetimeMs / 10)));
}

function reasonOf(err: unknown): string {
  if (err && typeof err === 'object') {
    const r = (err as { reason?: unknown }).reason;
    if (typeof r === 'string' && r) return r;
    const code = (err as { code?: unknown }).code;
    if (typeof code === 'string' && code) return code.toLowerCase();
    if ((err as { name?: unknown }).name === 'AbortError' || (err as { name?: unknown }).name === 'TimeoutError') return 'timeout';
  }
  return 'error';
}

function accountFromArn(arn: string): string | undefined {
  const parts = arn.split(':');
  return parts.length >= 5 && /^\d{12}$/.test(parts[4] ?? '') ? parts[4] : undefined;
}

/**
 * Keeps one profile's credentials fresh. Fetches at start, refreshes in the
 * background at half the actual lifetime (± 10% jitter), retries failures with
 * exponential backoff while the previous credentials keep being served, and
 * stops serving credentials once they are within the expiry margin. Exactly
 * one fetch is in flight at a time. Reads (`lookup`, `status`) never do I/O.
 */
export class CredentialSession {
  readonly profile: string;
  private identityValue: Identity;
  private readonly fetchCredentials: FetchCredentials;
  private backoffInitialMs: number;
  private backoffMaxMs: number;
  private readonly log: Logger;
  private readonly now: () => number;
  private readonly random: () => number;

  private creds?: AwsCredentials;
  /** The service's clock minus ours (CreateSession's Date header). */
  private clockOffsetMs = 0;
  private credsIssuedAt = 0;
  /** lookup()'s answer for the current credentials (one object, not one per request) and until when it holds. */
  private servable: { result: Extract<CredentialLookup, { ok: true }>; issuedAt: number; until: number } | undefined;
  private inflight?: Promise<void>;
  private controller?: AbortController;
  private timer?: NodeJS.Timeout;
  private nextRefreshAt?: number;
  private generation = 0;
  private consecutiveFailures = 0;
  private stopped = false;
  private started = false;
  /** Suspended (idle) and not started again since. */
  private suspended = false;

  private lastRefreshAt?: number;
  private lastRefreshOutcome?: 'success' | 'failure';
  private lastFailure?: FailureInfo;
  private refreshAttempts = 0;
  private refreshSuccesses = 0;
  private readonly failuresByReason = new Map<string, number>();
  private identityReloads = 0;
  private identityReloadFailures = 0;
  private lastIdentityError?: FailureInfo;
  private readonly hops: HopStatus[] = [];
  private readonly waiters = new Set<() => void>();
  private readonly subscribers = new Set<(outcome: RefreshOutcome) => void>();

  constructor(options: SessionOptions) {
    this.profile = options.profile;
    this.identityValue = options.identity;
    this.fetchCredentials = options.fetchCredentials;
    this.backoffInitialMs = Math.max(1, options.backoffInitialMs ?? DEFAULT_BACKOFF_INITIAL_MS);
    this.backoffMaxMs = Math.max(this.backoffInitialMs, options.backoffMaxMs ?? DEFAULT_BACKOFF_MAX_MS);
    this.log = (options.logger ?? silentLogger()).child({ profile: options.profile });
    this.now = options.now ?? Date.now;
    this.random = options.random ?? Math.random;
  }

  get identity(): Identity {
    return this.identityValue;
  }

  /** Starts the first fetch (does not wait for it). */
  start(): void {
    if (this.started || this.stopped) return;
    this.started = true;
    this.suspended = false;
    void this.refresh();
  }

  /** Cancels timers and aborts an in-flight fetch. Served credentials are dropped. */
  stop(): void {
    this.stopped = true;
    this.cancel();
    this.notify();
  }

  /**
   * Stops refreshing and drops the credentials like `stop()`, but the session
   * may be started again (`start()`): an idle pod-identity binding gives its
   * session back until a pod asks again. No-op unless running.
   */
  suspend(): void {
    if (this.stopped || !this.started) return;
    this.started = false;
    this.suspended = true;
    this.cancel();
    this.inflight = undefined;
    this.creds = undefined;
    this.lastFailure = undefined;
    this.consecutiveFailures = 0;
    this.notify();
  }

  /** Supersedes the current generation: no timer, no fetch in flight. */
  private cancel(): void {
    this.generation++;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.nextRefreshAt = undefined;
    this.controller?.abort();
    this.controller = undefined;
  }

  /** Started and not stopped or suspended. */
  get isRunning(): boolean {
    return this.started && !this.stopped;
  }

  /**
   * Changes the retry backoff (config reload) without touching the cached
   * credentials; the next failure uses the new values.
   */
  setBackoff(options: { backoffInitialMs: number; backoffMaxMs: number }): void {
    this.backoffInitialMs = Math.max(1, options.backoffInitialMs);
    this.backoffMaxMs = Math.max(this.backoffInitialMs, options.backoffMaxMs);
  }

  get isStopped(): boolean {
    return this.stopped;
  }

  /**
   * Starts a refresh now unless one is already in flight (single-flight);
   * resolves when that attempt has finished (successfully or not).
   */
  refresh(): Promise<void> {
    if (this.stopped) return Promise.resolve();
    if (this.inflight) return this.inflight;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.nextRefreshAt = undefined;
    const generation = this.generation;
    const controller = new AbortController();
    this.controller = controller;
    const identity = this.identityValue;
    this.refreshAttempts++;
    const started = this.now();
    const run = (async () => {
      let result: AwsCredentials | undefined;
      let error: unknown;
      try {
        result = await this.fetchCredentials(identity, controller.signal);
      } catch (err) {
        error = err;
      }
      if (generation !== this.generation || this.stopped) return; // superseded (identity change or stop)
      if (result) this.onSuccess(result, started, identity);
      else this.onFailure(error);
    })().finally(() => {
      if (this.inflight === run) {
        this.inflight = undefined;
        this.controller = undefined;
      }
      this.notify();
    });
    this.inflight = run;
    return run;
  }

  /**
   * Switches to a new identity (rotated certificate): the current credentials
   * keep being served while a new session is fetched at once with the new
   * identity. An in-flight fetch made with the old identity is abandoned.
   */
  setIdentity(identity: Identity): void {
    if (this.stopped) return;
    this.identityValue = identity;
    this.identityReloads++;
    this.log.info(
      { event: 'identity_reloaded', serial: identity.serialDecimal, notAfter: new Date(identity.certificate.validTo).toISOString() },
      'certificate changed; fetching a new session with it',
    );
    if (this.inflight) {
      this.generation++;
      this.controller?.abort();
      this.inflight = undefined;
      this.controller = undefined;
    }
    this.consecutiveFailures = 0;
    if (this.started) void this.refresh();
  }

  /**
   * Takes over `from`'s cached credentials while they are usable (a reload that
   * changed only settings that do not affect whose credentials they are). This
   * session still fetches its own at start; until then, and during an outage,
   * it serves these.
   */
  adoptCredentials(from: CredentialSession): void {
    const c = from.creds;
    if (c === undefined || !from.isUsable(c, from.serviceNow())) return;
    this.clockOffsetMs = from.clockOffsetMs;
    this.creds = c;
    this.credsIssuedAt = from.credsIssuedAt;
    this.lastRefreshAt = from.lastRefreshAt;
    this.lastRefreshOutcome = from.lastRefreshOutcome;
  }

  /** Records a rejected certificate/key change; the current identity stays. */
  recordIdentityError(err: unknown): void {
    this.identityReloadFailures++;
    this.lastIdentityError = { message: describeError(err), reason: reasonOf(err), at: new Date(this.now()) };
    this.log.error(
      { event: 'identity_reload_failed', reason: this.lastIdentityError.reason, error: this.lastIdentityError.message, serial: this.identityValue.serialDecimal },
      'new certificate or key refused; keeping the current identity',
    );
  }

  /** Credentials to serve now, or why there are none. No I/O. */
  lookup(): CredentialLookup {
    if (this.stopped) return { ok: false, message: `profile "${this.profile}" is stopped (being removed or replaced)` };
    const c = this.creds;
    if (c !== undefined) {
      let s = this.servable;
      if (s === undefined || s.result.credentials !== c || s.issuedAt !== this.credsIssuedAt) {
        s = this.servable = { result: { ok: true, credentials: c, lastUpdated: new Date(this.credsIssuedAt) }, issuedAt: this.credsIssuedAt, until: this.servableUntil(c) };
      }
      if (this.serviceNow() < s.until) return s.result;
    }
    if (this.lastFailure) {
      return {
        ok: false,
        message: `no valid credentials for profile "${this.profile}": last refresh failed at ${this.lastFailure.at.toISOString()}: ${this.lastFailure.message}`,
        at: this.lastFailure.at,
      };
    }
    if (c) {
      return { ok: false, message: `no valid credentials for profile "${this.profile}": the cached credentials expire at ${c.expiration.toISOString()} and a refresh is in progress` };
    }
    if (this.suspended) return { ok: false, message: `profile "${this.profile}" is idle: its session starts again when a client asks for it` };
    return { ok: false, message: `no credentials yet for profile "${this.profile}": the first CreateSession call is in progress` };
  }

  status(): SessionStatus {
    const now = this.serviceNow();
    const failures: Record<string, number> = {};
    for (const [k, v] of this.failuresByReason) failures[k] = v;
    const c = this.creds;
    return {
      profile: this.profile,
      ready: !this.stopped && c !== undefined && this.isUsable(c, now),
      expiration: c?.expiration,
      lastUpdated: c ? new Date(this.credsIssuedAt) : undefined,
      lastRefreshAt: this.lastRefreshAt === undefined ? undefined : new Date(this.lastRefreshAt),
      lastRefreshOutcome: this.lastRefreshOutcome,
      lastFailure: this.lastFailure,
      refreshAttempts: this.refreshAttempts,
      refreshSuccesses: this.refreshSuccesses,
      failuresByReason: failures,
      identityReloads: this.identityReloads,
      identityReloadFailures: this.identityReloadFailures,
      lastIdentityError: this.lastIdentityError,
      certificateSerial: this.identityValue.serialDecimal,
      certificateNotAfter: new Date(this.identityValue.certificate.validTo),
      nextRefreshAt: this.nextRefreshAt === undefined ? undefined : new Date(this.nextRefreshAt),
      clockOffsetMs: this.clockOffsetMs,
      hops: this.hops.map((h) => ({ ...h, failuresByReason: { ...h.failuresByReason } })),
    };
  }

  /** Resolves once `predicate` holds (checked after every refresh outcome) or rejects after `timeoutMs`. */
  waitFor(predicate: (s: CredentialSession) => boolean, timeoutMs: number): Promise<void> {
    if (predicate(this)) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const check = () => {
        if (predicate(this)) {
          cleanup();
          resolve();
        }
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`profile ${this.profile}: condition not reached within ${timeoutMs} ms`));
      }, clampDelay(timeoutMs));
      timer.unref();
      const cleanup = () => {
        clearTimeout(timer);
        this.waiters.delete(check);
      };
      this.waiters.add(check);
    });
  }

  /**
   * Calls `listener` after every refresh attempt: with the new credentials and
   * when the next refresh is due, or with the error and when it is retried.
   * Returns the unsubscribe function. (update writes the credentials file from here.)
   */
  subscribe(listener: (outcome: RefreshOutcome) => void): () => void {
    this.subscribers.add(listener);
    return () => this.subscribers.delete(listener);
  }

  private emit(outcome: RefreshOutcome): void {
    for (const l of [...this.subscribers]) {
      try {
        l(outcome);
      } catch (err) {
        this.log.error({ error: describeError(err) }, 'a refresh subscriber failed');
      }
    }
  }

  private notify(): void {
    for (const w of [...this.waiters]) w();
  }

  private isUsable(c: AwsCredentials, now: number): boolean {
    return now < this.servableUntil(c);
  }

  /** Until when (service clock) `c` may be served: its expiry minus the expiry margin. */
  private servableUntil(c: AwsCredentials): number {
    const expires = c.expiration.getTime();
    return expires - expiryMarginMs(expires - this.credsIssuedAt);
  }

  /**
   * Our clock as the service sees it: expiry margins and refresh times are
   * computed on the service's clock, so a host clock that runs behind does not
   * serve credentials the service already considers expired.
   */
  private serviceNow(): number {
    return this.now() + this.clockOffsetMs;
  }

  private noteClockOffset(offsetMs: number): void {
    const changed = Math.abs(offsetMs - this.clockOffsetMs) >= 1000;
    this.clockOffsetMs = offsetMs;
    if (changed && Math.abs(offsetMs) >= CLOCK_SKEW_WARNING_MS) {
      this.log.warn(
        { event: 'clock_skew', offsetSeconds: Math.round(offsetMs / 1000) },
        `this host's clock is ${Math.round(Math.abs(offsetMs) / 1000)} s ${offsetMs > 0 ? 'behind' : 'ahead of'} the Roles Anywhere service (from its Date header); expiry is computed on the service's clock — fix the host clock (enable NTP): beyond 5 minutes the service refuses every request`,
      );
    }
  }

  /** Counts an AssumeRole hop's outcome (role chaining). */
  private countHop(hop: number, roleArn: string, outcome: { expiration: Date } | { reason: string }): void {
    const h = (this.hops[hop] ??= { hop, roleArn, attempts: 0, successes: 0, failuresByReason: {} });
    h.roleArn = roleArn;
    h.attempts++;
    if ('expiration' in outcome) {
      h.successes++;
      h.expiration = outcome.expiration;
    } else h.failuresByReason[outcome.reason] = (h.failuresByReason[outcome.reason] ?? 0) + 1;
  }

  private onSuccess(result: AwsCredentials, started: number, identity: Identity): void {
    result.chain?.forEach((h, i) => this.countHop(i, h.roleArn, h));
    if (result.clockOffsetMs !== undefined) this.noteClockOffset(result.clockOffsetMs);
    started += this.clockOffsetMs;
    const now = this.serviceNow();
    const exp = result.expiration instanceof Date ? result.expiration.getTime() : NaN;
    if (!Number.isFinite(exp)) {
      this.onFailure(Object.assign(new Error('the service returned credentials without a valid expiration'), { reason: 'invalid_response' }));
      return;
    }
    // Lifetime from the moment we asked: a response that took long counts against it.
    const lifetime = exp - started;
    if (now >= exp - expiryMarginMs(lifetime)) {
      this.onFailure(
        Object.assign(
          new Error(`the service returned credentials that expire at ${new Date(exp).toISOString()}, already past or within the expiry margin (check the clock)`),
          { reason: 'expired_on_arrival' },
        ),
      );
      return;
    }
    const creds: AwsCredentials = { ...result, accountId: result.accountId ?? accountFromArn(result.roleArn) };
    this.creds = creds;
    this.credsIssuedAt = started;
    this.lastRefreshAt = this.now();
    this.lastRefreshOutcome = 'success';
    this.lastFailure = undefined;
    this.refreshSuccesses++;
    this.consecutiveFailures = 0;
    // Refresh at half the actual lifetime, ± 10% of it.
    const jitter = (this.random() * 2 - 1) * 0.1 * lifetime;
    const delay = Math.max(1000, Math.min(lifetime / 2 + jitter, exp - now - expiryMarginMs(lifetime) - 1000));
    this.schedule(delay);
    this.emit({ ok: true, credentials: creds, nextRefreshInMs: delay });
    this.log.info(
      {
        event: 'refresh',
        outcome: 'success',
        expiration: new Date(exp).toISOString(),
        serial: identity.serialDecimal,
        nextRefreshInMs: Math.round(delay),
      },
      'credentials refreshed',
    );
  }

  private onFailure(err: unknown): void {
    const now = this.now();
    const reason = reasonOf(err);
    const hop = err as { hop?: unknown; roleArn?: unknown; completed?: AwsCredentials['chain'] };
    if (typeof hop.hop === 'number' && typeof hop.roleArn === 'string') {
      hop.completed?.forEach((h, i) => this.countHop(i, h.roleArn, h));
      this.countHop(hop.hop, hop.roleArn, { reason });
    }
    const message = describeError(err);
    this.lastRefreshAt = now;
    this.lastRefreshOutcome = 'failure';
    this.lastFailure = { message, reason, at: new Date(now) };
    this.failuresByReason.set(reason, (this.failuresByReason.get(reason) ?? 0) + 1);
    const step = this.consecutiveFailures;
    this.consecutiveFailures++;
    // Jitter: 75%..125% of the step, still capped.
    const delay = backoffDelay(step, { initialMs: this.backoffInitialMs, maxMs: this.backoffMaxMs, jitter: [0.75, 1.25], minMs: 1 }, this.random);
    this.schedule(delay);
    this.emit({ ok: false, error: err, retryInMs: delay });
    const c = this.creds;
    const serving = c !== undefined && this.isUsable(c, this.serviceNow());
    this.log.warn(
      {
        event: 'refresh',
        outcome: 'failure',
        reason,
        ...(typeof hop.hop === 'number' ? { hop: hop.hop, roleArn: hop.roleArn } : {}),
        error: message,
        serial: this.identityValue.serialDecimal,
        retryInMs: Math.round(delay),
        servingCachedUntil: serving ? new Date(c!.expiration.getTime() - expiryMarginMs(c!.expiration.getTime() - this.credsIssuedAt)).toISOString() : undefined,
      },
      serving ? 'refresh failed; still serving the cached credentials' : 'refresh failed; no valid credentials to serve',
    );
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    if (this.timer) clearTimeout(this.timer);
    const due = this.now() + delayMs;
    this.nextRefreshAt = due;
    // A delay beyond what a timer can hold (credentials valid for weeks) is waited in steps.
    this.timer = setTimeout(() => {
      this.timer = undefined;
      const left = due - this.now();
      if (left > 1000) this.schedule(left);
      else void this.refresh();
    }, clampDelay(delayMs));
    this.timer.unref();
  }
}
