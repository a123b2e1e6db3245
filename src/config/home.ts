import { homedir } from 'node:os';
import { UserError } from '../errors.js';

/**
 * The home directory, for `~/` paths and per-user defaults: $HOME, else the
 * user database's entry. Asked for only when something needs it, so a daemon
 * with HOME unset and a uid that has no passwd entry (a container's numeric
 * user, a systemd DynamicUser) starts as long as its paths are absolute and
 * the token file is given. `what` names what needed it, for the message.
 */
export function homeDirectory(env: NodeJS.ProcessEnv, what: string): string {
  if (env.HOME) return env.HOME;
  try {
    return homedir();
  } catch {
    throw new UserError(`${what} needs a home directory, but HOME is not set and uid ${process.getuid?.() ?? '?'} has no entry in the user database: set HOME, or use absolute paths`, {
      reason: 'no_home',
    });
  }
}
