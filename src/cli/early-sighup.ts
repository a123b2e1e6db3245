// `serve` and SIGHUP before its reload handler exists. A SIGHUP's default action
// is to terminate (exit 129), and systemd counts that as a clean exit, so
// `Restart=on-failure` would not bring the daemon back. The CLI entry point holds
// SIGHUP for `serve` before it loads anything (the command module, the config,
// the identities); serve applies a held SIGHUP as a reload once it has started.
// This module imports nothing, so holding costs nothing.

let listener: (() => void) | undefined;
let held = false;

/** From now on a SIGHUP is remembered instead of killing the process. Idempotent. */
export function holdSighup(): void {
  if (listener) return;
  listener = () => {
    held = true;
  };
  process.on('SIGHUP', listener);
}

/** Stops holding (install the real handler first); true when a SIGHUP arrived meanwhile. */
export function releaseSighup(): boolean {
  if (listener) process.removeListener('SIGHUP', listener);
  listener = undefined;
  const was = held;
  held = false;
  return was;
}
