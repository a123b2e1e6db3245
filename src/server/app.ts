import type { IncomingMessage, ServerResponse } from 'node:http';
import Fastify, { type FastifyInstance, type FastifyReply } from 'fastify';
import type { Logger } from '../log.js';
import { silentLogger } from '../log.js';
import { BodyCache, credentialRoutes, defaultSurface, errorBody, formatExpiration, hostRefusal, type CredentialSurface } from './credential-routes.js';
import { callerCheck, type CallerLookup } from './callers.js';
import { ImdsTokenStore, parseTtl } from './imds-tokens.js';
import { renderMetrics, RequestMetrics } from './metrics.js';
import type { ServerState } from './state.js';

export type { ServedProfile, ServerState } from './state.js';
export { BodyCache, formatExpiration, roleNameOf } from './credential-routes.js';

export interface AppOptions {
  getState: () => ServerState;
  metrics?: RequestMetrics;
  imdsTokens?: ImdsTokenStore;
  logger?: Logger;
  /** Identifies loopback callers; with it, the credential routes and the IMDS token PUT check the state's `callers` policies. */
  callers?: CallerLookup;
}

export type RequestHandler = (req: IncomingMessage, res: ServerResponse) => void;

/** The daemon's HTTP application: the credential routes (src/server/credential-routes.ts) in front of fastify. */
export interface DaemonApp {
  /** Everything but the credential routes: IMDS token PUT, health, metrics, 404s. */
  readonly fastify: FastifyInstance;
  /** The checks the ordinary listeners run (endpoint token; IMDSv2 token). */
  readonly defaultSurface: CredentialSurface;
  /** The node:http request handler of a listener serving `surface`'s credential routes, then fastify. Call after `ready()`. */
  handler(surface?: CredentialSurface): RequestHandler;
  ready(): Promise<void>;
  close(): Promise<void>;
}

function sendError(reply: FastifyReply, status: number, code: string, message: string): FastifyReply {
  return reply.code(status).header('content-type', 'application/json; charset=utf-8').header('cache-control', 'no-store').send(errorBody(code, message));
}

/**
 * The HTTP application: the container-credentials endpoint and IMDS (served by
 * credential-routes.ts before fastify sees the request), the IMDS token PUT,
 * health and metrics (fastify). Build once; bind it to sockets with `listenAll`
 * (src/server/listen.ts).
 */
export function buildApp(options: AppOptions): DaemonApp {
  const metrics = options.metrics ?? new RequestMetrics();
  const imdsTokens = options.imdsTokens ?? new ImdsTokenStore();
  const log = options.logger ?? silentLogger();
  const bodies = new BodyCache();
  const app = Fastify({
    logger: false,
    bodyLimit: 1024,
    return503OnClosing: true,
    // Keep paths exact: IMDS distinguishes `security-credentials/` from `security-credentials`.
    routerOptions: { maxParamLength: 256, ignoreTrailingSlash: false },
    // Errors raised before routing (bad percent-encoding, an over-long path) get the
    // endpoint's {Code, Message} shape too, instead of fastify's own JSON.
    frameworkErrors: (err, _req, reply) => {
      const status = typeof err.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 400;
      return sendError(reply, status, 'BadRequest', status === 414 ? 'a path segment is too long' : 'the request path is not valid (bad percent-encoding)');
    },
  });

  app.addHook('onRequest', async (req, reply) => {
    const denied = hostRefusal(options.getState(), req.raw);
    if (denied) return sendError(reply, denied.status, denied.code, denied.message);
  });

  app.addHook('onResponse', async (req, reply) => {
    const route = req.routeOptions.url ?? 'unmatched';
    metrics.record(route, reply.statusCode);
    log.debug({ method: req.method, route, status: reply.statusCode, ms: Math.round(reply.elapsedTime) }, 'request');
  });

  app.setNotFoundHandler((req, reply) => sendError(reply, 404, 'NotFound', `no such path: ${req.method} ${req.url.split('?')[0]!.slice(0, 200)}`));

  app.setErrorHandler((err: { statusCode?: number; code?: string; message?: string }, _req, reply) => {
    const status = typeof err.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 600 ? err.statusCode : 500;
    if (status >= 500) log.error({ error: err.message, code: err.code }, 'request handler error');
    return sendError(reply, status, status === 500 ? 'InternalError' : 'BadRequest', status === 500 ? 'internal error' : (err.message ?? 'bad request'));
  });

  // GET /v1/credentials[/<profile>] and GET /latest/… : credential-routes.ts.
  const surface = defaultSurface(imdsTokens);
  const checkCaller = options.callers ? callerCheck(options.callers, (c) => metrics.recordCallerRefusal(c.kind === 'local' ? c.uid : undefined)) : undefined;
  if (checkCaller) {
    surface.container!.authorize.push(checkCaller);
    surface.imds!.authorize.push(checkCaller);
  }

  app.put('/latest/api/token', async (req, reply) => {
    const state = options.getState();
    if (!state.imds.enabled) return sendError(reply, 404, 'NotFound', 'the instance metadata endpoint is disabled');
    // Only callers allowed the IMDS profile's credentials get tokens (so others cannot fill the token store either).
    const denied = checkCaller ? await checkCaller(req.raw, { state, route: 'imds', profile: state.imds.profile }) : undefined;
    if (denied) return sendError(reply, denied.status, denied.code, denied.message);
    if (req.headers['x-forwarded-for'] !== undefined) {
      return sendError(reply, 403, 'Forbidden', 'token requests carrying X-Forwarded-For are refused (proxied requests cannot obtain IMDS tokens)');
    }
    const ttl = parseTtl(req.headers['x-aws-ec2-metadata-token-ttl-seconds']);
    if (ttl === undefined) {
      return sendError(reply, 400, 'BadRequest', 'X-aws-ec2-metadata-token-ttl-seconds must be an integer between 1 and 21600');
    }
    // Token store fairness is per caller: its uid when known, else its address.
    const caller = options.callers?.known(req.raw.socket);
    const token = imdsTokens.issue(ttl, caller?.kind === 'local' ? `uid:${caller.uid}` : `addr:${req.raw.socket.remoteAddress ?? ''}`);
    return reply
      .code(200)
      .header('content-type', 'text/plain')
      .header('cache-control', 'no-store')
      .header('x-aws-ec2-metadata-token-ttl-seconds', String(ttl))
      .send(token);
  });

  // ---- health and metrics -------------------------------------------------------------------

  app.get('/healthz', (_req, reply) => reply.code(200).header('cache-control', 'no-store').send({ status: 'ok' }));

  app.get('/readyz', (_req, reply) => {
    const state = options.getState();
    const profiles: Record<string, { ready: boolean; expiration?: string; reason?: string }> = {};
    const notReady: string[] = [];
    for (const [name, p] of state.profiles) {
      const found = p.session.lookup();
      if (found.ok) profiles[name] = { ready: true, expiration: formatExpiration(found.credentials.expiration) };
      else if (p.onDemand && !p.session.isRunning) profiles[name] = { ready: false, reason: found.message };
      else {
        profiles[name] = { ready: false, reason: found.message };
        notReady.push(name);
      }
    }
    reply.header('cache-control', 'no-store');
    if (notReady.length === 0) return reply.code(200).send({ status: 'ready', profiles });
    return reply.code(503).send({ Code: 'NotReady', Message: `profiles without valid credentials: ${notReady.join(', ')}`, status: 'not_ready', profiles });
  });

  app.get('/metrics', (_req, reply) => {
    const state = options.getState();
    const body = renderMetrics(
      [...state.profiles.values()].map((p) => p.session.status()),
      metrics,
    ) + (state.extraMetrics?.() ?? '');
    return reply.code(200).header('content-type', 'text/plain; version=0.0.4; charset=utf-8').header('cache-control', 'no-store').send(body);
  });

  return {
    fastify: app,
    defaultSurface: surface,
    handler(s = surface) {
      const credentials = credentialRoutes({ getState: options.getState, metrics, bodies, logger: log, surface: s });
      const otherwise = s.otherwise;
      if (otherwise) {
        const body = errorBody(otherwise.code, otherwise.message);
        return (req, res) => {
          if (credentials(req, res)) return;
          res.writeHead(otherwise.status, ['content-type', 'application/json; charset=utf-8', 'cache-control', 'no-store', 'content-length', String(Buffer.byteLength(body))]);
          res.end(body);
          metrics.record('unmatched', otherwise.status);
        };
      }
      const routing = app.routing;
      return (req, res) => {
        if (!credentials(req, res)) routing(req, res);
      };
    },
    ready: async () => {
      await app.ready();
    },
    close: () => app.close(),
  };
}
