// `serve` and SIGHUP before its reload handler exists. A SIGHUP's default action
// is to terminate (exit 129), and systemd counts that as a clean exit, so
// `Restart=on-failure` would not bring the daemon back. The CLI entry point holds
// SIGHUP for `serve` before it loads anything (the command module, the config,
// the identities); serve applies a held SIGHUP as a reload once it has started.
// This module imports nothing, so holding costs nothing.
//
// The bundle's entry (scripts/bundle.js) holds it even earlier, before it compiles the
// 3 MB main.js (tens of ms), and main.js carries its own copy of this module: the state
// lives on `process` under a registered symbol so that both copies share it. (Node's own
// start-up, before any JavaScript runs, cannot be covered: the unit restarts the daemon
// if a SIGHUP kills it then, RestartForceExitStatus=SIGHUP.)

interface Hold {
  listener?: () => void;
  held: boolean;
}

const KEY = Symbol.for('rolesanywhere-credentiald.early-sighup');
const hold: Hold = ((process as unknown as Record<symbol, Hold | undefined>)[KEY] ??= { held: false });

/** From now on a SIGHUP is remembered instead of killing the process. Idempotent. */
export function holdSighup(): void {
  if (hold.listener) return;
  hold.listener = () => {
    hold.held = true;
  };
  process.on('SIGHUP', hold.listener);
}

/** Stops holding (install the real handler first); true when a SIGHUP arrived meanwhile. */
export function releaseSighup(): boolean {
  if (hold.listener) process.removeListener('SIGHUP', hold.listener);
  hold.listener = undefined;
  const was = hold.held;
  hold.held = false;
  return was;
}
