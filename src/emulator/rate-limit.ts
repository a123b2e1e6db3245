// The account's CreateSession quota, as the emulator enforces it: a token
// bucket shared by every caller (every node agent of a "cluster"). A call
// finding the bucket empty is refused at once with 429 ThrottlingException,
// like the service does; nothing waits.

export interface RateLimit {
  /** Calls per second the bucket refills (IAM Roles Anywhere's default CreateSession quota is 10). */
  perSecond: number;
  /** Calls that may arrive back to back after a quiet period (default: one second's worth). */
  burst?: number;
}

/** Validates a rate limit from an untrusted source (control API, CLI); throws Error with a clear message. */
export function parseRateLimit(input: unknown): RateLimit {
  const r = (typeof input === 'number' ? { perSecond: input } : input) as Record<string, unknown> | null;
  if (!r || typeof r !== 'object') throw new Error('rate limit: expected {"perSecond": N, "burst": M}');
  const perSecond = r.perSecond;
  if (typeof perSecond !== 'number' || !(perSecond > 0) || perSecond > 100_000) throw new Error('rate limit: perSecond must be a number above 0 (and at most 100000)');
  if (r.burst !== undefined && (!Number.isInteger(r.burst) || (r.burst as number) < 1)) throw new Error('rate limit: burst must be a positive integer');
  return r.burst === undefined ? { perSecond } : { perSecond, burst: r.burst as number };
}

export class RateLimiter {
  readonly limit: RateLimit;
  private readonly burst: number;
  private tokens: number;
  private last: number;

  constructor(limit: RateLimit, private readonly now: () => number = () => performance.now()) {
    this.limit = limit;
    this.burst = Math.max(1, Math.floor(limit.burst ?? limit.perSecond));
    this.tokens = this.burst;
    this.last = now();
  }

  /** Takes one call's token; false = over the quota. */
  take(): boolean {
    const t = this.now();
    this.tokens = Math.min(this.burst, this.tokens + ((t - this.last) / 1000) * this.limit.perSecond);
    this.last = t;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}
