// The credential routes' checks, as plain functions (see credential-routes.ts for the
// order they run in): what a check sees and answers, and the memo that keeps a
// per-connection lookup on the synchronous path. A leaf module: the routes and the
// checks (callers.ts, pod-identity.ts) import it, it imports neither.
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { ServerState } from './state.js';

/** An answer that refuses the request: HTTP status and the endpoint's `{Code, Message}`. */
export interface Refusal {
  status: number;
  code: string;
  message: string;
}

export type CredentialRoute = 'container' | 'imds';

/** What a check sees besides the request. */
export interface CheckContext {
  /** The state of this request (swapped as a whole on reload). */
  readonly state: ServerState;
  readonly route: CredentialRoute;
  /**
   * In `authenticate`: the profile named in the path (container route) or undefined; a
   * check may set it (a binding that picks the profile). In `authorize`: the profile that
   * will be served.
   */
  profile: string | undefined;
}

/** One step of a route's checks: undefined = pass, a Refusal = answer with it. */
export type Check = (req: IncomingMessage, ctx: CheckContext) => Refusal | undefined | Promise<Refusal | undefined>;

/**
 * Memoizes an asynchronous per-connection lookup (such as the caller's uid from
 * /proc/net/tcp) for checks: returns the value once the connection's first lookup
 * has finished — synchronously, so later requests on a keep-alive connection stay on
 * the synchronous path — and the pending promise until then. A rejected lookup is
 * not remembered (the next request tries again).
 */
export function perConnection<T>(lookup: (socket: Socket) => Promise<T>): (socket: Socket) => T | Promise<T> {
  const known = new WeakMap<Socket, { value: T }>();
  const pending = new WeakMap<Socket, Promise<T>>();
  return (socket) => {
    const hit = known.get(socket);
    if (hit !== undefined) return hit.value;
    let p = pending.get(socket);
    if (p === undefined) {
      p = lookup(socket).then(
        (value) => {
          known.set(socket, { value });
          pending.delete(socket);
          return value;
        },
        (err: unknown) => {
          pending.delete(socket);
          throw err;
        },
      );
      pending.set(socket, p);
    }
    return p;
  };
}

export function refusal(status: number, code: string, message: string): Refusal {
  return { status, code, message };
}

/** Whether a check's (or a `perConnection` lookup's) result is a promise. */
export function isThenable<T>(v: unknown): v is Promise<T> {
  return typeof v === 'object' && v !== null && typeof (v as { then?: unknown }).then === 'function';
}

