// The two credential routes — the container endpoint (GET /v1/credentials[/<profile>])
// and IMDS (GET /latest/…) — served straight from node:http, in front of fastify.
//
// Why not as fastify routes: these are the only routes clients call often, and fastify's
// per-request machinery (request/reply objects, hooks, router, serializers) cost ~30–40 %
// of their throughput (see docs/benchmarks.md). Only this module serves them: fastify has
// no such routes, so a request this module declines (another method, another path, an
// absolute-form target) reaches fastify and gets its 404.
//
// Every request runs, in this order:
//   1. the Host guard (DNS rebinding), when every listen address is loopback;
//   2. the route's `authenticate` checks — who is asking (default: the endpoint token for
//      the container route, the IMDSv2 session token for IMDS); a check may pick the
//      profile (`ctx.profile`), e.g. from a service-account binding;
//   3. profile resolution (the path's profile, the default profile, the IMDS profile);
//   4. the route's `authorize` checks — may this caller have this profile's credentials;
//   5. `session.lookup()`: held and outside the expiry margin, else 503;
//   6. the cached body; the request is counted in the route/status metrics.
//
// Checks are plain functions (see `Check`): return undefined to pass or a `Refusal` to
// answer with. A check may return a promise (e.g. a first lookup it must do I/O for), but
// should answer synchronously from a cache (per socket, per token) whenever it can: the
// synchronous path allocates no promise.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from '../log.js';
import { isLoopbackHostHeader } from '../net/loopback.js';
import type { AwsCredentials } from '../rolesanywhere/types.js';
import type { ImdsTokenStore } from './imds-tokens.js';
import type { RequestMetrics } from './metrics.js';
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

export interface RouteChecks {
  /** Before the profile is resolved: who is asking. */
  authenticate: Check[];
  /** After the profile is resolved, before the cache is read: may this caller have it. */
  authorize: Check[];
}

/** Which credential routes a listener serves, and with which checks. A route left out is not served (404 from fastify). */
export interface CredentialSurface {
  container?: RouteChecks;
  imds?: RouteChecks;
  /**
   * Skip the Host guard: for a listener whose every request is authenticated by a
   * per-caller token (pod identity on 169.254.170.23), not by being on loopback.
   */
  noHostGuard?: boolean;
  /** Answer every request the credential routes decline with this (instead of handing it to fastify). */
  otherwise?: Refusal;
}

/** Route labels in `rolesanywhere_http_requests_total` (the same as when these were fastify routes). */
export const ROUTE_LABELS = {
  container: '/v1/credentials',
  containerNamed: '/v1/credentials/:profile',
  imds: '/latest/*',
} as const;

/** The longest profile name accepted in the path; longer → 414. */
export const MAX_PATH_SEGMENT = 256;

export const HOST_REFUSAL: Refusal = {
  status: 403,
  code: 'AccessDenied',
  message: 'the Host header is not a loopback address; this endpoint only answers requests addressed to localhost, 127.0.0.1 or [::1]',
};

// One-entry memo: clients send the same Host on every request.
let lastHost: string | undefined;
let lastHostOk = false;

/** The DNS-rebinding guard, shared by these routes and fastify's hook: a refusal when the Host is not loopback on a loopback-only server. */
export function hostRefusal(state: ServerState, req: IncomingMessage): Refusal | undefined {
  if (!state.loopbackOnly) return undefined;
  const host = req.headers.host;
  if (host !== lastHost || host === undefined) {
    lastHostOk = isLoopbackHostHeader(host);
    lastHost = host;
  }
  return lastHostOk ? undefined : HOST_REFUSAL;
}

export function refusal(status: number, code: string, message: string): Refusal {
  return { status, code, message };
}

// ---- default checks -------------------------------------------------------------------------

const NO_TOKEN = refusal(401, 'AccessDenied', 'missing Authorization header: send the endpoint token (AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE)');
const BAD_TOKEN = refusal(401, 'AccessDenied', 'the Authorization header does not match the endpoint token');

/** The container route's default authentication: the Authorization header is the endpoint token (SHA-256 + timingSafeEqual). */
export const endpointTokenCheck: Check = (req, ctx) => {
  const presented = req.headers.authorization;
  if (ctx.state.token.matches(presented)) return undefined;
  return presented === undefined ? NO_TOKEN : BAD_TOKEN;
};

const NO_IMDS_TOKEN = refusal(401, 'Unauthorized', 'IMDSv2 required: get a token with PUT /latest/api/token and send it in X-aws-ec2-metadata-token');
const BAD_IMDS_TOKEN = refusal(401, 'Unauthorized', 'the metadata token is invalid or expired; request a new one');

/** IMDS's default authentication: a valid IMDSv2 session token (or none, when IMDSv1 is allowed). */
export function imdsTokenCheck(tokens: ImdsTokenStore): Check {
  return (req, ctx) => {
    const presented = req.headers['x-aws-ec2-metadata-token'];
    if (tokens.valid(presented) || (ctx.state.imds.allowV1 && presented === undefined)) return undefined;
    return presented === undefined ? NO_IMDS_TOKEN : BAD_IMDS_TOKEN;
  };
}

/** What the ordinary (loopback) listeners serve. */
export function defaultSurface(tokens: ImdsTokenStore): CredentialSurface {
  return {
    container: { authenticate: [endpointTokenCheck], authorize: [] },
    imds: { authenticate: [imdsTokenCheck(tokens)], authorize: [] },
  };
}

// ---- bodies ---------------------------------------------------------------------------------

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
 * Rendered credential bodies (UTF-8 bytes), one per credentials object. A session
 * replaces its credentials object on every refresh (and `lastUpdated` is set with it),
 * so a refreshed credential gets a new entry and an old body can never be served for
 * new credentials; old entries go with their object. Only a renderer: whether
 * credentials may be served is decided by `lookup()` on every request, before the
 * cache is read.
 */
export class BodyCache {
  private readonly container = new WeakMap<AwsCredentials, Buffer>();
  private readonly imds = new WeakMap<AwsCredentials, { lastUpdatedMs: number; body: Buffer }>();

  containerBody(c: AwsCredentials): Buffer {
    let body = this.container.get(c);
    if (body === undefined) {
      body = Buffer.from(containerBody(c), 'utf8');
      this.container.set(c, body);
    }
    return body;
  }

  imdsBody(c: AwsCredentials, lastUpdated: Date): Buffer {
    const cached = this.imds.get(c);
    // lastUpdated is set together with the credentials object; checked anyway (one number compare).
    if (cached !== undefined && cached.lastUpdatedMs === lastUpdated.getTime()) return cached.body;
    const body = Buffer.from(imdsBody(c, lastUpdated), 'utf8');
    this.imds.set(c, { lastUpdatedMs: lastUpdated.getTime(), body });
    return body;
  }
}

// ---- answering ------------------------------------------------------------------------------

/** The endpoint's error body: JSON `{Code, Message}`. */
export function errorBody(code: string, message: string): string {
  return JSON.stringify({ Code: code, Message: message });
}

function send(res: ServerResponse, status: number, contentType: string, body: Buffer | string): void {
  res.writeHead(status, ['content-type', contentType, 'cache-control', 'no-store', 'content-length', String(typeof body === 'string' ? Buffer.byteLength(body) : body.length)]);
  res.end(body);
}

export interface CredentialRoutesOptions {
  getState: () => ServerState;
  metrics: RequestMetrics;
  bodies: BodyCache;
  logger: Logger;
  surface: CredentialSurface;
}

const CONTAINER_PREFIX = '/v1/credentials';
const IMDS_PREFIX = '/latest/';
const ROLE_PREFIX = '/latest/meta-data/iam/security-credentials/';

function isThenable<T>(v: unknown): v is Promise<T> {
  return typeof v === 'object' && v !== null && typeof (v as { then?: unknown }).then === 'function';
}

/**
 * Runs `checks[i..]`; synchronous while every check is. Returns the first refusal,
 * undefined when all pass, or a promise of that when a check went asynchronous.
 */
function runChecks(checks: Check[], i: number, req: IncomingMessage, ctx: CheckContext): Refusal | undefined | Promise<Refusal | undefined> {
  for (; i < checks.length; i++) {
    const r = checks[i]!(req, ctx);
    if (r === undefined) continue;
    if (isThenable<Refusal | undefined>(r)) {
      const next = i + 1;
      return r.then((x) => x ?? runChecks(checks, next, req, ctx));
    }
    return r;
  }
  return undefined;
}

/**
 * The credential routes of one listener as a node:http request handler that returns
 * false for every request it does not serve (hand those to fastify).
 */
export function credentialRoutes(options: CredentialRoutesOptions): (req: IncomingMessage, res: ServerResponse) => boolean {
  const { getState, metrics, bodies, logger: log, surface } = options;

  const answer = (req: IncomingMessage, res: ServerResponse, label: string, status: number, contentType: string, body: Buffer | string, started: number): void => {
    send(res, status, contentType, body);
    metrics.record(label, status);
    if (started !== 0) log.debug({ method: req.method, route: label, status, ms: Math.round(performance.now() - started) }, 'request');
  };
  const refuse = (req: IncomingMessage, res: ServerResponse, label: string, r: Refusal, started: number): void =>
    answer(req, res, label, r.status, 'application/json; charset=utf-8', errorBody(r.code, r.message), started);
  const fail = (req: IncomingMessage, res: ServerResponse, label: string, err: unknown, started: number): void => {
    log.error({ error: err instanceof Error ? err.message : String(err), route: label }, 'request handler error');
    if (!res.headersSent) refuse(req, res, label, refusal(500, 'InternalError', 'internal error'), started);
    else res.destroy();
  };

  /** Runs `checks`, then `next` — synchronously unless a check returns a promise. */
  const after = (req: IncomingMessage, res: ServerResponse, label: string, started: number, checks: Check[], ctx: CheckContext, next: () => void): void => {
    const r = checks.length === 0 ? undefined : runChecks(checks, 0, req, ctx);
    if (r === undefined) return next();
    if (isThenable<Refusal | undefined>(r)) {
      r.then(
        (x) => (x === undefined ? next() : refuse(req, res, label, x, started)),
        (err: unknown) => fail(req, res, label, err, started),
      );
      return;
    }
    refuse(req, res, label, r, started);
  };

  const serveContainer = (req: IncomingMessage, res: ServerResponse, state: ServerState, checks: RouteChecks, named: string | undefined, label: string, started: number): void => {
    const ctx: CheckContext = { state, route: 'container', profile: named };
    after(req, res, label, started, checks.authenticate, ctx, () => {
      let name = ctx.profile;
      if (name === undefined) {
        name = state.defaultProfile;
        if (name === undefined) {
          return refuse(req, res, label, refusal(404, 'NotFound', `no default profile is configured; request /v1/credentials/<profile> (profiles: ${[...state.profiles.keys()].join(', ')})`), started);
        }
      }
      const profile = state.profiles.get(name);
      if (!profile) return refuse(req, res, label, refusal(404, 'NotFound', `unknown profile "${name.slice(0, 100)}"`), started);
      ctx.profile = name;
      after(req, res, label, started, checks.authorize, ctx, () => {
        const found = profile.session.lookup();
        if (!found.ok) return refuse(req, res, label, refusal(503, 'CredentialsUnavailable', found.message), started);
        answer(req, res, label, 200, 'application/json', bodies.containerBody(found.credentials), started);
      });
    });
  };

  const serveImds = (req: IncomingMessage, res: ServerResponse, state: ServerState, checks: RouteChecks, path: string, started: number): void => {
    const label = ROUTE_LABELS.imds;
    if (!state.imds.enabled) return refuse(req, res, label, refusal(404, 'NotFound', 'the instance metadata endpoint is disabled'), started);
    const ctx: CheckContext = { state, route: 'imds', profile: undefined };
    after(req, res, label, started, checks.authenticate, ctx, () => {
      const name = ctx.profile ?? state.imds.profile;
      const profile = name === undefined ? undefined : state.profiles.get(name);
      if (!profile) return refuse(req, res, label, refusal(404, 'NotFound', 'no profile is served over IMDS'), started);
      ctx.profile = name;
      after(req, res, label, started, checks.authorize, ctx, () => {
        const roleName = roleNameOf(profile.roleArn);
        switch (path) {
          case '/latest/meta-data/iam/security-credentials/':
          case '/latest/meta-data/iam/security-credentials':
            return answer(req, res, label, 200, 'text/plain', roleName, started);
          case '/latest/meta-data/placement/availability-zone':
            return answer(req, res, label, 200, 'text/plain', `${profile.region}a`, started);
          case '/latest/meta-data/placement/region':
            return answer(req, res, label, 200, 'text/plain', profile.region, started);
        }
        if (path.startsWith(ROLE_PREFIX)) {
          let role: string;
          try {
            role = decodeURIComponent(path.slice(ROLE_PREFIX.length));
          } catch {
            role = '';
          }
          if (role !== roleName) return refuse(req, res, label, refusal(404, 'NotFound', 'no such role'), started);
          const found = profile.session.lookup();
          if (!found.ok) return refuse(req, res, label, refusal(503, 'CredentialsUnavailable', found.message), started);
          return answer(req, res, label, 200, 'application/json', bodies.imdsBody(found.credentials, found.lastUpdated), started);
        }
        return refuse(req, res, label, refusal(404, 'NotFound', `no such metadata path: ${path.slice(0, 200)}`), started);
      });
    });
  };

  return (req, res) => {
    const method = req.method;
    if (method !== 'GET' && method !== 'HEAD') return false;
    const url = req.url ?? '';
    let end = url.indexOf('?');
    const hash = url.indexOf('#');
    if (hash !== -1 && (end === -1 || hash < end)) end = hash;
    const path = end === -1 ? url : url.slice(0, end);

    let kind: 0 | 1 | 2 | 3 = 0; // 1 container, 2 container named, 3 IMDS
    let segment = '';
    if (path.startsWith(CONTAINER_PREFIX)) {
      if (path.length === CONTAINER_PREFIX.length) kind = 1;
      else if (path.charCodeAt(CONTAINER_PREFIX.length) === 47 /* / */) {
        segment = path.slice(CONTAINER_PREFIX.length + 1);
        if (segment.length === 0 || segment.includes('/')) return false;
        kind = 2;
      } else return false;
      if (surface.container === undefined) return false;
    } else if (path.startsWith(IMDS_PREFIX)) {
      if (surface.imds === undefined) return false;
      kind = 3;
    } else return false;

    const started = log.isLevelEnabled('debug') ? performance.now() : 0;
    const label = kind === 1 ? ROUTE_LABELS.container : kind === 2 ? ROUTE_LABELS.containerNamed : ROUTE_LABELS.imds;
    try {
      const state = getState();
      const denied = surface.noHostGuard ? undefined : hostRefusal(state, req);
      if (denied !== undefined) {
        refuse(req, res, label, denied, started);
        return true;
      }
      if (kind === 3) serveImds(req, res, state, surface.imds!, path, started);
      else {
        let named: string | undefined;
        if (kind === 2) {
          if (segment.length > MAX_PATH_SEGMENT) {
            refuse(req, res, label, refusal(414, 'BadRequest', 'a path segment is too long'), started);
            return true;
          }
          try {
            named = decodeURIComponent(segment);
          } catch {
            refuse(req, res, label, refusal(400, 'BadRequest', 'the request path is not valid (bad percent-encoding)'), started);
            return true;
          }
        }
        serveContainer(req, res, state, surface.container!, named, label, started);
      }
    } catch (err) {
      fail(req, res, label, err, started);
    }
    return true;
  };
}
