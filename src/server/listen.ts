import { createServer, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { UserError } from '../errors.js';
import type { ListenAddress } from '../config/types.js';
import type { DaemonApp, RequestHandler } from './app.js';
import type { CredentialSurface } from './credential-routes.js';
import { clampDelay } from '../timers.js';

/** Largest accepted request head; larger → 431. */
export const MAX_HEADER_BYTES = 16 * 1024;

/**
 * A connection whose client has stopped reading: answers are queued and none of it has
 * been written for this long → the connection is closed (see `closeStalledWriters`).
 */
export const STALLED_WRITE_MS = 30_000;

export interface BoundServer {
  server: Server;
  /** The address as configured. */
  requested: ListenAddress;
  /** The port actually bound (differs when 0 was requested). */
  port: number;
  host: string;
}

/** `http://host:port` with IPv6 brackets. */
export function urlHost(host: string, port: number): string {
  const h = host.replace(/^\[|\]$/g, '');
  return h.includes(':') ? `[${h}]:${port}` : `${h}:${port}`;
}

/**
 * Binds the app (or a plain request handler) to every address (one node http server each, all sharing the
 * same routing, state and metrics), serving `surface`'s credential routes (default:
 * the app's ordinary ones). On any failure the servers already bound are closed
 * and a UserError names the address.
 *
 * With `warn`, IPv6 loopback ([::1]) on a host with IPv6 disabled is skipped with
 * a warning as long as another address is bound: a config listing both loopbacks
 * then runs on IPv4-only hosts too.
 */
export async function listenAll(
  app: DaemonApp | RequestHandler,
  addresses: ListenAddress[],
  surface?: CredentialSurface,
  warn?: (message: string) => void,
  stalledWriteMs = STALLED_WRITE_MS,
): Promise<BoundServer[]> {
  // A plain handler (the health listener's) is bound as it is.
  let handler: RequestHandler;
  if (typeof app === 'function') handler = app;
  else {
    await app.ready();
    handler = app.handler(surface);
  }
  const bound: BoundServer[] = [];
  const skipped: string[] = [];
  try {
    for (const addr of addresses) {
      const server = createServer(
        {
          maxHeaderSize: MAX_HEADER_BYTES,
          requestTimeout: 10_000,
          headersTimeout: 5_000,
          keepAliveTimeout: 5_000,
          // Node checks the two timeouts above only this often (default 30 s): a slowloris
          // client would otherwise hold its socket ~30 s instead of 5.
          connectionsCheckingInterval: 1_000,
        },
        handler,
      );
      closeStalledWriters(server, stalledWriteMs);
      const host = addr.host.replace(/^\[|\]$/g, '');
      await new Promise<void>((resolve, reject) => {
        const onError = (err: NodeJS.ErrnoException) => {
          server.removeListener('listening', onListening);
          const where = `${urlHost(host, addr.port)}`;
          if (warn && host === '::1' && (err.code === 'EADDRNOTAVAIL' || err.code === 'EAFNOSUPPORT')) {
            skipped.push(where);
            reject(new UserError(`cannot listen on ${where}: IPv6 is disabled on this host; listen on 127.0.0.1 instead`, { reason: 'address_unavailable' }));
          } else if (err.code === 'EADDRINUSE') reject(new UserError(`cannot listen on ${where}: the address is already in use (another daemon running?); stop it or choose another --listen address`, { reason: 'address_in_use' }));
          else if (err.code === 'EADDRNOTAVAIL') reject(new UserError(`cannot listen on ${where}: no such local address on this machine; choose another --listen address`, { reason: 'address_unavailable' }));
          else if (err.code === 'EACCES') reject(new UserError(`cannot listen on ${where}: permission denied (ports below 1024 need privileges); choose a port above 1024`, { reason: 'address_denied' }));
          else reject(new UserError(`cannot listen on ${where}: ${err.code ?? err.message}`, { reason: 'listen_failed' }));
        };
        const onListening = () => {
          server.removeListener('error', onError);
          resolve();
        };
        server.once('error', onError);
        server.once('listening', onListening);
        server.listen({ host, port: addr.port, exclusive: true });
      }).catch((err: unknown) => {
        if (!skipped.includes(urlHost(host, addr.port))) throw err;
      });
      if (!server.listening) continue;
      const info = server.address() as AddressInfo;
      bound.push({ server, requested: addr, port: info.port, host });
    }
    if (bound.length === 0 && skipped.length > 0) {
      throw new UserError(`cannot listen on ${skipped.join(', ')}: IPv6 is disabled on this host; listen on 127.0.0.1 instead`, { reason: 'address_unavailable' });
    }
  } catch (err) {
    await closeAll(bound, 0);
    throw err;
  }
  for (const where of skipped) warn?.(`not listening on ${where}: IPv6 is disabled on this host (serving on the other addresses)`);
  return bound;
}

/**
 * Closes connections whose client stopped reading (output queued, nothing written
 * for `stalledMs`), checked a few times per `stalledMs`. The other ways a client can
 * hold a connection are covered by the server's own timeouts: headersTimeout (a
 * connection that sends no complete request head), requestTimeout (a request that
 * is never finished) and keepAliveTimeout (idle between requests).
 *
 * Why not `server.setTimeout()`: an idle-socket timeout is refreshed on every read
 * and write, i.e. timer-list work on every request of the hot path; this sweep costs
 * nothing per request (docs/benchmarks.md).
 */
export function closeStalledWriters(server: Server, stalledMs: number): void {
  const sockets = new Set<Socket>();
  const seen = new WeakMap<Socket, { written: number; since: number }>();
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  const timer = setInterval(
    () => {
      const now = Date.now();
      for (const socket of sockets) {
        if (socket.writableLength === 0) {
          seen.delete(socket);
          continue;
        }
        const last = seen.get(socket);
        if (last === undefined || last.written !== socket.bytesWritten) seen.set(socket, { written: socket.bytesWritten, since: now });
        else if (now - last.since >= stalledMs) socket.destroy();
      }
    },
    clampDelay(Math.max(10, Math.floor(stalledMs / 3))),
  );
  timer.unref();
  server.once('close', () => clearInterval(timer));
}

/**
 * Stops accepting connections, lets in-flight requests finish (up to `graceMs`),
 * then drops what is left.
 */
export async function closeAll(bound: BoundServer[], graceMs = 5_000): Promise<void> {
  await Promise.all(
    bound.map(
      ({ server }) =>
        new Promise<void>((resolve) => {
          if (!server.listening) return resolve();
          const timer = setTimeout(() => server.closeAllConnections(), clampDelay(graceMs));
          timer.unref();
          server.close(() => {
            clearTimeout(timer);
            resolve();
          });
          server.closeIdleConnections();
        }),
    ),
  );
}

