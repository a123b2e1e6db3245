import type { FetchCredentials } from './session.js';
import { abortReason } from '../errors.js';
import { clampDelay } from '../timers.js';

/** Concurrent CreateSession calls across all profiles of a daemon (default). */
export const DEFAULT_MAX_CONCURRENT = 4;
/** CreateSession calls per second across all profiles of a daemon (default). */
export const DEFAULT_MAX_CALLS_PER_SECOND = 10;

export interface LimiterOptions {
  /** At most this many calls run at once (default 4). */
  maxConcurrent?: number;
  /** Token bucket refill rate: calls per second (default 10). */
  maxCallsPerSecond?: number;
  /** Token bucket size: calls that may start back to back after a quiet period (default: one second's worth). */
  burst?: number;
  /** Clock in ms (monotonic); tests may inject. */
  now?: () => number;
}

interface Waiter {
  grant: (release: () => void) => void;
  reject: (err: unknown) => void;
  signal?: AbortSignal;
  onAbort?: () => void;
}

/**
 * One limiter shared by every credential session of a daemon: caps the number
 * of CreateSession calls in flight and their start rate (token bucket), so
 * hundreds of profiles neither stampede at start-up nor multiply their retries
 * during an outage. It only delays the start of a call, first come first
 * served; each session keeps its own schedule and backoff. With few profiles
 * it is invisible: the bucket starts full, so the first calls go out at once.
 */
export class CallLimiter {
  private maxConcurrent: number;
  private rate: number;
  private burst: number;
  private tokens: number;
  private lastRefill: number;
  private active = 0;
  private readonly queue: Waiter[] = [];
  private timer?: NodeJS.Timeout;
  private readonly now: () => number;
  /** Calls granted so far (metrics, tests). */
  granted = 0;

  constructor(options: LimiterOptions = {}) {
    this.now = options.now ?? (() => performance.now());
    const limits = CallLimiter.normalize(options);
    this.maxConcurrent = limits.maxConcurrent;
    this.rate = limits.maxCallsPerSecond;
    this.burst = limits.burst;
    // Starts full: the first calls of a small daemon go out at once.
    this.tokens = this.burst;
    this.lastRefill = this.now();
  }

  private static normalize(options: Pick<LimiterOptions, 'maxConcurrent' | 'maxCallsPerSecond' | 'burst'>): { maxConcurrent: number; maxCallsPerSecond: number; burst: number } {
    const maxConcurrent = Math.max(1, Math.floor(options.maxConcurrent ?? DEFAULT_MAX_CONCURRENT));
    const maxCallsPerSecond = Math.max(0.001, options.maxCallsPerSecond ?? DEFAULT_MAX_CALLS_PER_SECOND);
    const burst = Math.max(1, Math.floor(options.burst ?? maxCallsPerSecond));
    return { maxConcurrent, maxCallsPerSecond, burst };
  }

  /** Changes the limits (config reload); waiting calls are re-evaluated at once. */
  configure(options: Pick<LimiterOptions, 'maxConcurrent' | 'maxCallsPerSecond' | 'burst'>): void {
    this.refill();
    const limits = CallLimiter.normalize(options);
    this.maxConcurrent = limits.maxConcurrent;
    this.rate = limits.maxCallsPerSecond;
    this.burst = limits.burst;
    this.tokens = Math.min(this.tokens, this.burst);
    this.pump();
  }

  /** Calls running now. */
  get inFlight(): number {
    return this.active;
  }

  /** Calls waiting for a slot or a token. */
  get waiting(): number {
    return this.queue.length;
  }

  get limits(): { maxConcurrent: number; maxCallsPerSecond: number; burst: number } {
    return { maxConcurrent: this.maxConcurrent, maxCallsPerSecond: this.rate, burst: this.burst };
  }

  /**
   * Waits for a concurrency slot and a rate token; resolves with the function
   * that gives the slot back (idempotent). Rejects with the signal's reason if
   * it aborts first — having taken nothing.
   */
  acquire(signal?: AbortSignal): Promise<() => void> {
    if (signal?.aborted) return Promise.reject(abortReason(signal));
    return new Promise<() => void>((resolve, reject) => {
      const waiter: Waiter = { grant: resolve, reject, signal };
      if (signal) {
        waiter.onAbort = () => {
          const i = this.queue.indexOf(waiter);
          if (i < 0) return; // already granted
          this.queue.splice(i, 1);
          reject(abortReason(signal));
          // The head may have changed; it may be startable now.
          this.pump();
        };
        signal.addEventListener('abort', waiter.onAbort, { once: true });
      }
      this.queue.push(waiter);
      this.pump();
    });
  }

  /** Runs `fn` once a slot and a token are available; the slot is held until it settles. */
  async run<T>(fn: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    const release = await this.acquire(signal);
    try {
      return await fn();
    } finally {
      release();
    }
  }

  /** A FetchCredentials that goes through this limiter. */
  wrap(fetch: FetchCredentials): FetchCredentials {
    return (identity, signal) => this.run(() => fetch(identity, signal), signal);
  }

  private refill(): void {
    const now = this.now();
    const elapsed = Math.max(0, now - this.lastRefill);
    this.lastRefill = now;
    this.tokens = Math.min(this.burst, this.tokens + (elapsed / 1000) * this.rate);
  }

  private pump(): void {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    this.refill();
    while (this.queue.length > 0 && this.active < this.maxConcurrent && this.tokens >= 1) {
      const waiter = this.queue.shift()!;
      if (waiter.signal && waiter.onAbort) waiter.signal.removeEventListener('abort', waiter.onAbort);
      this.tokens -= 1;
      this.active++;
      this.granted++;
      let released = false;
      waiter.grant(() => {
        if (released) return;
        released = true;
        this.active--;
        this.pump();
      });
    }
    // Waiting only for a token (a slot is free): wake up when the next one is due.
    if (this.queue.length > 0 && this.active < this.maxConcurrent && this.tokens < 1) {
      const waitMs = Math.max(1, Math.ceil(((1 - this.tokens) / this.rate) * 1000));
      this.timer = setTimeout(() => {
        this.timer = undefined;
        this.pump();
      }, clampDelay(waitMs));
      // Not unref'd: a waiting call is pending work, like its socket will be. The
      // timer exists only while calls wait (an abort removes them and clears it).
    }
  }
}
