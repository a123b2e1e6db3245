// The fastify part of the application: the endpoint's JSON 404 and error answers for
// everything the credential routes (credential-routes.ts) and the health routes
// (health.ts) do not serve, and the place for any route that is neither hot nor polled.
// Loaded on the first such request (src/server/app.ts): fastify is the largest single
// cost in the daemon's memory and start-up (docs/benchmarks.md).
import Fastify, { type FastifyInstance, type FastifyReply } from 'fastify';
import type { Logger } from '../log.js';
import { errorBody, hostRefusal } from './credential-routes.js';
import type { RequestMetrics } from './metrics.js';

function sendError(reply: FastifyReply, status: number, code: string, message: string): FastifyReply {
  return reply.code(status).header('content-type', 'application/json; charset=utf-8').header('cache-control', 'no-store').send(errorBody(code, message));
}

// No route has a schema: compilers that are never called, so fastify does not load ajv
// and fast-json-stringify's compiler (≈ 4 MB of RSS).
const noSchemas = () => () => () => {
  throw new Error('routes of this application have no schemas');
};

export function buildFastify(metrics: RequestMetrics, log: Logger): FastifyInstance {
  const app = Fastify({
    logger: false,
    bodyLimit: 1024,
    return503OnClosing: true,
    schemaController: { compilersFactory: { buildValidator: noSchemas, buildSerializer: noSchemas } },
    // Keep paths exact (no trailing-slash folding).
    routerOptions: { maxParamLength: 256, ignoreTrailingSlash: false },
    // Errors raised before routing (bad percent-encoding, an over-long path) get the
    // endpoint's {Code, Message} shape too, instead of fastify's own JSON.
    frameworkErrors: (err, _req, reply) => {
      const status = typeof err.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 400;
      return sendError(reply, status, 'BadRequest', status === 414 ? 'a path segment is too long' : 'the request path is not valid (bad percent-encoding)');
    },
  });

  app.addHook('onRequest', async (req, reply) => {
    const denied = hostRefusal(req.raw);
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

  return app;
}
