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
