import type { IncomingMessage, ServerResponse } from 'node:http';
import type { FastifyInstance } from 'fastify';
import type { Logger } from '../log.js';
import { silentLogger } from '../log.js';
import { callerCheck, healthAccess, refusalLogger, type CallerLookup } from './callers.js';
import { BodyCache, credentialRoutes, defaultSurface, errorBody, type CredentialSurface } from './credential-routes.js';
import { healthRoutes } from './health.js';
import { ImdsTokenStore } from './imds-tokens.js';
import { RequestMetrics } from './metrics.js';
import type { ServerState } from './state.js';

export type { ServedProfile, ServerState } from './state.js';
export { BodyCache, roleNameOf } from './credential-routes.js';

export interface AppOptions {
  getState: () => ServerState;
  metrics?: RequestMetrics;
  imdsTokens?: ImdsTokenStore;
  logger?: Logger;
  /** Identifies local callers; with it, the credential routes and the IMDS token PUT check the state's `callers` policies, and /readyz's reasons and /metrics go only to allowed callers. */
  callers?: CallerLookup;
}

export type RequestHandler = (req: IncomingMessage, res: ServerResponse) => void;

/** The daemon's HTTP application: the credential routes (src/server/credential-routes.ts) in front of fastify. */
export interface DaemonApp {
  /** The checks the ordinary listeners run (endpoint token; IMDSv2 token). */
  readonly defaultSurface: CredentialSurface;
  /** The node:http request handler of a listener serving `surface`'s credential routes, then fastify (or `surface.otherwise`). */
  handler(surface?: CredentialSurface): RequestHandler;
  /** The fastify part (health, metrics, 404s), loading it if not yet loaded. */
  fastify(): Promise<FastifyInstance>;
  ready(): Promise<void>;
  close(): Promise<void>;
}

function sendRaw(res: ServerResponse, status: number, body: string): void {
  res.writeHead(status, ['content-type', 'application/json; charset=utf-8', 'cache-control', 'no-store', 'content-length', String(Buffer.byteLength(body))]);
  res.end(body);
}

/**
 * The HTTP application: the container-credentials endpoint and IMDS (credential-routes.ts)
 * and /healthz, /readyz, /metrics (health.ts) straight from node:http, then fastify for
 * every other path (fastify-app.ts: the endpoint's 404s and error answers, and any route
 * the application adds that is neither hot nor polled). Fastify is loaded on the first
 * request that needs it, so a daemon that only serves credentials and probes never loads
 * it. Build once; bind it to sockets with `listenAll` (src/server/listen.ts).
 */
export function buildApp(options: AppOptions): DaemonApp {
  const metrics = options.metrics ?? new RequestMetrics();
  const imdsTokens = options.imdsTokens ?? new ImdsTokenStore();
  const log = options.logger ?? silentLogger();
  const bodies = new BodyCache();

  let routing: RequestHandler | undefined;
  let loading: Promise<FastifyInstance> | undefined;
  let closed = false;
  const load = (): Promise<FastifyInstance> =>
    (loading ??= import('./fastify-app.js').then(async ({ buildFastify }) => {
      const f = buildFastify(metrics, log);
      await f.ready();
      routing = f.routing;
      return f;
    }));
  /** Hands a request to fastify, loading it first if needed (the request waits; its body stays buffered). */
  const toFastify: RequestHandler = (req, res) => {
    if (routing !== undefined) return routing(req, res);
    load().then(
      () => routing!(req, res),
      (err: unknown) => {
        log.error({ error: err instanceof Error ? err.message : String(err) }, 'cannot load the HTTP application');
        if (!res.headersSent) sendRaw(res, 500, errorBody('InternalError', 'internal error'));
      },
    );
  };

  const callers = options.callers;
  const health = healthRoutes({ getState: options.getState, metrics, reasons: true, hostGuard: true, access: callers && healthAccess(callers) });
  const surface = defaultSurface(imdsTokens);
  if (callers) {
    const logRefusal = refusalLogger(log);
    const checkCaller = callerCheck(callers, (r) => {
      metrics.recordCallerRefusal(r.caller.kind === 'local' ? r.caller.uid : undefined);
      logRefusal(r);
    });
    surface.container!.authorize.push(checkCaller);
    surface.imds!.authorize.push(checkCaller);
    // Only callers allowed the IMDS profile's credentials get tokens (so others cannot fill the token store either).
    (surface.imds!.token ??= []).push(checkCaller);
  }
  // Token store fairness is per caller: its uid when known, else its address.
  const tokenOwner = callers
    ? (req: IncomingMessage) => {
        const caller = callers.known(req.socket);
        return caller?.kind === 'local' ? `uid:${caller.uid}` : `addr:${req.socket.remoteAddress ?? ''}`;
      }
    : undefined;
  return {
    defaultSurface: surface,
    handler(s = surface) {
      const credentials = credentialRoutes({ getState: options.getState, metrics, bodies, imdsTokens, tokenOwner, logger: log, surface: s });
      const otherwise = s.otherwise;
      if (otherwise) {
        const body = errorBody(otherwise.code, otherwise.message);
        return (req, res) => {
          if (credentials(req, res)) return;
          sendRaw(res, otherwise.status, body);
          metrics.record('unmatched', otherwise.status);
        };
      }
      return (req, res) => {
        if (!credentials(req, res) && !health(req, res)) toFastify(req, res);
      };
    },
    fastify: load,
    ready: async () => {
      if (closed) throw new Error('the application is closed');
    },
    close: async () => {
      closed = true;
      if (loading) await (await loading.catch(() => undefined))?.close();
    },
  };
}
