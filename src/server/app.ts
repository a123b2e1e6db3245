import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { CredentialSession } from '../credentials/session.js';
import type { Logger } from '../log.js';
import { silentLogger } from '../log.js';
import { isLoopbackHostHeader } from '../net/loopback.js';
import type { AwsCredentials } from '../rolesanywhere/types.js';
import { ImdsTokenStore, parseTtl } from './imds-tokens.js';
import { renderMetrics, RequestMetrics } from './metrics.js';
import type { TokenVerifier } from './token.js';

export interface ServedProfile {
  session: CredentialSession;
  roleArn: string;
  region: string;
}

/** What the routes read. Swapped as a whole on reload; routes never do I/O. */
export interface ServerState {
  profiles: Map<string, ServedProfile>;
  /** Served at GET /v1/credentials. */
  defaultProfile?: string;
  imds: { enabled: boolean; profile?: string; allowV1: boolean };
  token: TokenVerifier;
  /** Every listen address is loopback: refuse requests whose Host is not a loopback name (DNS rebinding). */
  loopbackOnly: boolean;
}

export interface AppOptions {
  getState: () => ServerState;
  metrics?: RequestMetrics;
  imdsTokens?: ImdsTokenStore;
  logger?: Logger;
}

/** `YYYY-MM-DDTHH:MM:SSZ` (no fractional seconds; rounded down). */
export function formatExpiration(d: Date): string {
  return d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** Last path segment of a role ARN (`arn:aws:iam::1:role/path/Name` → `Name`). */
export function roleNameOf(roleArn: string): string {
  const resource = roleArn.split(':').slice(5).join(':');
  const parts = resource.split('/');
  return parts[parts.length - 1] || resource;
}

function sendError(reply: FastifyReply, status: number, code: string, message: string): FastifyReply {
  return reply.code(status).header('content-type', 'application/json; charset=utf-8').header('cache-control', 'no-store').send(JSON.stringify({ Code: code, Message: message }));
}

function containerBody(c: AwsCredentials): string {
  const body: Record<string, string> = {
    AccessKeyId: c.accessKeyId,
    SecretAccessKey: c.secretAccessKey,
    Token: c.sessionToken,
    Expiration: formatExpiration(c.expiration),
  };
  if (c.accountId) body.AccountId = c.accountId;
  body.RoleArn = c.roleArn;
  return JSON.stringify(body);
}

function imdsBody(c: AwsCredentials, lastUpdated: Date): string {
  return JSON.stringify({
    Code: 'Success',
    LastUpdated: formatExpiration(lastUpdated),
    Type: 'AWS-HMAC',
    AccessKeyId: c.accessKeyId,
    SecretAccessKey: c.secretAccessKey,
    Token: c.sessionToken,
    Expiration: formatExpiration(c.expiration),
  });
}

/**
 * Rendered credential bodies, one per credentials object. A session replaces
 * its credentials object on every refresh (and `lastUpdated` is set with it),
 * so a refreshed credential gets a new entry and an old body can never be
 * served for new credentials; old entries go with their object. Only a
 * renderer: whether credentials may be served is decided by `lookup()` on
 * every request, before the cache is read.
 */
export class BodyCache {
  private readonly container = new WeakMap<AwsCredentials, string>();
  private readonly imds = new WeakMap<AwsCredentials, { lastUpdatedMs: number; body: string }>();

  containerBody(c: AwsCredentials): string {
    let body = this.container.get(c);
    if (body === undefined) {
      body = containerBody(c);
      this.container.set(c, body);
    }
    return body;
  }

  imdsBody(c: AwsCredentials, lastUpdated: Date): string {
    const cached = this.imds.get(c);
    // lastUpdated is set together with the credentials object; checked anyway (one number compare).
    if (cached !== undefined && cached.lastUpdatedMs === lastUpdated.getTime()) return cached.body;
    const body = imdsBody(c, lastUpdated);
    this.imds.set(c, { lastUpdatedMs: lastUpdated.getTime(), body });
    return body;
  }
}

/**
 * The HTTP application: container-credentials endpoint, IMDSv2, health and
 * metrics. Build once; bind it to sockets with `listenAll` (src/server/listen.ts).
 */
export function buildApp(options: AppOptions): FastifyInstance {
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
    // Errors raised before routing (bad percent-encoding, an over-long parameter) get the
    // endpoint's {Code, Message} shape too, instead of fastify's own JSON.
    frameworkErrors: (err, _req, reply) => {
      const status = typeof err.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 400;
      return sendError(reply, status, 'BadRequest', status === 414 ? 'a path segment is too long' : 'the request path is not valid (bad percent-encoding)');
    },
  });

  app.addHook('onRequest', async (req, reply) => {
    const state = options.getState();
    if (state.loopbackOnly && !isLoopbackHostHeader(req.headers.host)) {
      return sendError(reply, 403, 'AccessDenied', 'the Host header is not a loopback address; this endpoint only answers requests addressed to localhost, 127.0.0.1 or [::1]');
    }
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

  // ---- container credentials endpoint -------------------------------------------------------

  const serveContainer = (req: FastifyRequest, reply: FastifyReply, profileName: string | undefined) => {
    const state = options.getState();
    if (!state.token.matches(req.headers.authorization)) {
      return sendError(
        reply,
        401,
        'AccessDenied',
        req.headers.authorization === undefined
          ? 'missing Authorization header: send the endpoint token (AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE)'
          : 'the Authorization header does not match the endpoint token',
      );
    }
    if (profileName === undefined) {
      profileName = state.defaultProfile;
      if (profileName === undefined) {
        return sendError(reply, 404, 'NotFound', `no default profile is configured; request /v1/credentials/<profile> (profiles: ${[...state.profiles.keys()].join(', ')})`);
      }
    }
    const profile = state.profiles.get(profileName);
    if (!profile) return sendError(reply, 404, 'NotFound', `unknown profile "${profileName.slice(0, 100)}"`);
    const found = profile.session.lookup();
    if (!found.ok) return sendError(reply, 503, 'CredentialsUnavailable', found.message);
    return reply.code(200).header('content-type', 'application/json').header('cache-control', 'no-store').send(bodies.containerBody(found.credentials));
  };

  app.get('/v1/credentials', (req, reply) => serveContainer(req, reply, undefined));
  app.get<{ Params: { profile: string } }>('/v1/credentials/:profile', (req, reply) => serveContainer(req, reply, req.params.profile));

  // ---- IMDSv2 ---------------------------------------------------------------------------------

  app.put('/latest/api/token', (req, reply) => {
    const state = options.getState();
    if (!state.imds.enabled) return sendError(reply, 404, 'NotFound', 'the instance metadata endpoint is disabled');
    if (req.headers['x-forwarded-for'] !== undefined) {
      return sendError(reply, 403, 'Forbidden', 'token requests carrying X-Forwarded-For are refused (proxied requests cannot obtain IMDS tokens)');
    }
    const ttl = parseTtl(req.headers['x-aws-ec2-metadata-token-ttl-seconds']);
    if (ttl === undefined) {
      return sendError(reply, 400, 'BadRequest', 'X-aws-ec2-metadata-token-ttl-seconds must be an integer between 1 and 21600');
    }
    const token = imdsTokens.issue(ttl);
    return reply
      .code(200)
      .header('content-type', 'text/plain')
      .header('cache-control', 'no-store')
      .header('x-aws-ec2-metadata-token-ttl-seconds', String(ttl))
      .send(token);
  });

  app.get('/latest/*', (req, reply) => {
    const state = options.getState();
    if (!state.imds.enabled) return sendError(reply, 404, 'NotFound', 'the instance metadata endpoint is disabled');
    const tokenHeader = req.headers['x-aws-ec2-metadata-token'];
    if (!imdsTokens.valid(tokenHeader) && !(state.imds.allowV1 && tokenHeader === undefined)) {
      return sendError(
        reply,
        401,
        'Unauthorized',
        tokenHeader === undefined ? 'IMDSv2 required: get a token with PUT /latest/api/token and send it in X-aws-ec2-metadata-token' : 'the metadata token is invalid or expired; request a new one',
      );
    }
    const path = req.url.split('?')[0]!;
    const profileName = state.imds.profile;
    const profile = profileName === undefined ? undefined : state.profiles.get(profileName);
    if (!profile) return sendError(reply, 404, 'NotFound', 'no profile is served over IMDS');
    const text = (body: string) => reply.code(200).header('content-type', 'text/plain').header('cache-control', 'no-store').send(body);
    const roleName = roleNameOf(profile.roleArn);
    switch (path) {
      case '/latest/meta-data/iam/security-credentials/':
      case '/latest/meta-data/iam/security-credentials':
        return text(roleName);
      case '/latest/meta-data/placement/availability-zone':
        return text(`${profile.region}a`);
      case '/latest/meta-data/placement/region':
        return text(profile.region);
    }
    const prefix = '/latest/meta-data/iam/security-credentials/';
    if (path.startsWith(prefix)) {
      let role: string;
      try {
        role = decodeURIComponent(path.slice(prefix.length));
      } catch {
        role = '';
      }
      if (role !== roleName) return sendError(reply, 404, 'NotFound', 'no such role');
      const found = profile.session.lookup();
      if (!found.ok) return sendError(reply, 503, 'CredentialsUnavailable', found.message);
      return reply.code(200).header('content-type', 'application/json').header('cache-control', 'no-store').send(bodies.imdsBody(found.credentials, found.lastUpdated));
    }
    return sendError(reply, 404, 'NotFound', `no such metadata path: ${path.slice(0, 200)}`);
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
    );
    return reply.code(200).header('content-type', 'text/plain; version=0.0.4; charset=utf-8').header('cache-control', 'no-store').send(body);
  });

  return app;
}
