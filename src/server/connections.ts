// Connection limits: at most connections.max open connections over all listeners, and
// at most connections.maxPerUser from one local user (uid, from the caller lookup made
// when the connection is accepted). A connection over a limit is closed at once: it
// costs its socket, never a request's work. Idle connections hold memory (~15 KB
// each), so without a cap one local user could hold thousands and slow everyone.
import type { Server } from 'node:net';
import type { Socket } from 'node:net';
import type { Logger } from '../log.js';
import type { CallerLookup, Caller } from './callers.js';
import { isThenable } from './checks.js';
import type { RequestMetrics } from './metrics.js';

export interface ConnectionLimitSettings {
  max: number;
  maxPerUser: number;
}

/** How often a refused connection is logged at most (per reason). */
const LOG_INTERVAL_MS = 60_000;

export class ConnectionLimits {
  private open = 0;
  private readonly perUid = new Map<number, number>();
  private readonly loggedAt = new Map<string, number>();

  constructor(
    private settings: ConnectionLimitSettings,
    private readonly metrics: RequestMetrics,
    private readonly lookup: CallerLookup | undefined,
    private readonly log: Logger,
  ) {
    metrics.connectionsOpen = () => this.open;
  }

  /** New limits (reload): connections already open stay. */
  configure(settings: ConnectionLimitSettings): void {
    this.settings = settings;
  }

  /** Counts (and limits) the connections `server` accepts. */
  watch(server: Server): void {
    server.on('connection', (socket: Socket) => this.accept(socket));
  }

  private accept(socket: Socket): void {
    if (this.open >= this.settings.max) return this.refuse(socket, 'max_connections', `connections.max (${this.settings.max}) connections are open`);
    this.open++;
    socket.once('close', () => this.open--);
    if (this.lookup === undefined) return;
    // Looked up now (once per connection, the answer kept for its requests): a burst shares one table read.
    const caller = this.lookup.callerOf(socket);
    if (isThenable<Caller>(caller)) caller.then((c) => this.count(socket, c), () => undefined);
    else this.count(socket, caller);
  }

  private count(socket: Socket, caller: Caller): void {
    if (caller.kind !== 'local' || socket.destroyed) return;
    const uid = caller.uid;
    const n = (this.perUid.get(uid) ?? 0) + 1;
    if (n > this.settings.maxPerUser) return this.refuse(socket, 'max_per_user', `uid ${uid} has connections.maxPerUser (${this.settings.maxPerUser}) connections open`, uid);
    this.perUid.set(uid, n);
    socket.once('close', () => {
      const m = (this.perUid.get(uid) ?? 1) - 1;
      if (m <= 0) this.perUid.delete(uid);
      else this.perUid.set(uid, m);
    });
  }

  private refuse(socket: Socket, reason: string, why: string, uid?: number): void {
    socket.destroy();
    this.metrics.connectionRefusals.set(reason, (this.metrics.connectionRefusals.get(reason) ?? 0) + 1);
    const now = Date.now();
    if (now - (this.loggedAt.get(reason) ?? -Infinity) < LOG_INTERVAL_MS) return;
    this.loggedAt.set(reason, now);
    this.log.warn({ reason, ...(uid !== undefined ? { uid } : {}) }, `closed a new connection: ${why} (logged once a minute; rolesanywhere_connections_refused_total counts them)`);
  }
}
