// Time: timer delays, the one retry backoff, and the one date format.
//
// Timer delays. Node's setTimeout/setInterval (and timers/promises) take at most
// 2^31-1 ms (~24.8 days); a longer delay fires after 1 ms instead — an
// `Expiration` a month away once turned the refresh schedule into a CreateSession
// storm. Every computed delay goes through clampDelay (test/timers.test.ts checks).

/** The longest delay a Node timer honours. */
export const MAX_TIMER_DELAY_MS = 2 ** 31 - 1;

/** `ms` limited to 0..MAX_TIMER_DELAY_MS (NaN → 0). A clamped timer fires early; callers re-check when it does. */
export function clampDelay(ms: number): number {
  if (!(ms > 0)) return 0;
  return Math.min(ms, MAX_TIMER_DELAY_MS);
}

/** `YYYY-MM-DDTHH:MM:SSZ`: whole seconds (rounded down) — what the service sends and botocore and the JS SDK parse strictly. */
export function isoSeconds(d: Date | number | string): string {
  return new Date(d).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/**
 * How a retry waits: step n (0 for the first retry) is initialMs·2^n, capped at
 * maxMs, then multiplied by a random factor in [jitter[0], jitter[1]) and kept
 * within minMs..maxMs. [0, 1] is "full jitter" (the client's in-call retries),
 * [0.75, 1.25] ±25 % (the session's retry schedule).
 */
export interface BackoffPolicy {
  initialMs: number;
  maxMs: number;
  jitter: readonly [number, number];
  minMs?: number;
}

/** The delay before retry `step` (0-based) under `policy`; `random` in [0, 1) is injected by tests. */
export function backoffDelay(step: number, policy: BackoffPolicy, random: () => number = Math.random): number {
  const base = Math.min(policy.maxMs, policy.initialMs * 2 ** Math.min(step, 30));
  const [low, high] = policy.jitter;
  return Math.max(policy.minMs ?? 0, Math.min(policy.maxMs, Math.floor(base * (low + (high - low) * random()))));
}
