// The two credential routes — the container endpoint (GET /v1/credentials[/<profile>])
// and IMDS (PUT /latest/api/token, GET /latest/…) — served straight from node:http, in
// front of fastify.
//
// Why not as fastify routes: these are the only routes clients call often, and fastify's
// per-request machinery (request/reply objects, hooks, router, serializers) cost ~30–40 %
// of their throughput (see docs/benchmarks.md). Only this module serves them: fastify has
// no such routes, so a request this module declines (another method, another path, an
// absolute-form target) reaches fastify and gets its 404.
//
// Every GET runs, in this order:
//   1. the Host guard (DNS rebinding), on connections made to a loopback address; IMDS is
//      refused on the others unless imds.onNonLoopbackUnsafe;
//   2. the route's `authenticate` checks — who is asking (default: the endpoint token for
//      the container route, the IMDSv2 session token for IMDS); a check may pick the
//      profile (`ctx.profile`), e.g. from a service-account binding;
//   3. profile resolution (the path's profile, the default profile, the IMDS profile);
//   4. the route's `authorize` checks — may this caller have this profile's credentials;
//   5. `session.lookup()`: held and outside the expiry margin, else 503;
//   6. the cached body; the request is counted in the route/status metrics.
// The IMDS token PUT runs the Host guard, then `imds.token` checks (the IMDS profile in
// `ctx.profile`), then refuses proxied requests and bad TTLs, and issues a token.
//
// Checks are plain functions (see `Check`): return undefined to pass or a `Refusal` to
// answer with. A check may return a promise (e.g. a first lookup it must do I/O for), but
// should answer synchronously from a cache (per socket, per token) whenever it can: the
// synchronous path allocates no promise, the asynchronous one costs a promise, closures
// and a microtask turn per request. `perConnection()` (checks.ts) memoizes a per-connection
// lookup that way (value once known, a promise only while the first lookup runs).
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from '../log.js';
import { isLoopbackHostHeader, isLoopbackHostname } from '../net/loopback.js';
import type { AwsCredentials } from '../rolesanywhere/types.js';
import { parseTtl, type ImdsTokenStore } from './imds-tokens.js';
import type { RequestMetrics, RouteCounter } from './metrics.js';
import type { ServedProfile, ServerState } from './state.js';
import { isThenable, refusal, type Check, type CheckContext, type CredentialRoute, type Refusal } from './checks.js';
import { nameList } from '../problems.js';
import { isoSeconds } from '../timers.js';

export interface RouteChecks {
  /** Before the profile is resolved: who is asking. */
  authenticate: Check[];
  /** After the profile is resolved, before the cache is read: may this caller have it. */
  authorize: Check[];
  /** IMDS only: checks for PUT /latest/api/token (`ctx.profile` is the IMDS profile); default none. */
  token?: Check[];
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
  imdsToken: '/latest/api/token',
} as const;

/** The longest profile name accepted in the path; longer → 414. */
export const MAX_PATH_SEGMENT = 256;

export const HOST_REFUSAL: Refusal = {
  status: 403,
  code: 'AccessDenied',
  message: 'the Host header is not a loopback address; this endpoint only answers requests addressed to localhost, 127.0.0.1 or [::1]',
};

export const TARGET_REFUSAL: Refusal = {
  status: 403,
  code: 'AccessDenied',
  message: 'the request target names a host that is not a loopback address; this endpoint only answers requests addressed to localhost, 127.0.0.1 or [::1]',
};

/**
 * The path (and query) of an absolute-form request target (`GET http://host/path`),
 * else the target as it is. Such targets are legal (RFC 9112 §3.2.2); hostRefusal
 * checks their authority.
 */
export function originForm(url: string): string {
  if (url.charCodeAt(0) === 47 /* / */) return url;
  const u = URL.parse(url);
  return u ? `${u.pathname}${u.search}` : url;
}

/**
 * `fn` remembering its last argument and result: a client repeats the same Host,
 * request target and metadata path on every request of its connection, so the
 * hot path parses each once, not per request.
 */
export function lastCallMemo<K, V>(fn: (key: K) => V): (key: K) => V {
  let called = false;
  let lastKey: K;
  let lastValue: V;
  return (key) => {
    if (!called || key !== lastKey) {
      lastValue = fn(key);
      lastKey = key;
      called = true;
    }
    return lastValue;
  };
}

const hostIsLoopback = lastCallMemo(isLoopbackHostHeader);
const addressIsLoopback = lastCallMemo(isLoopbackHostname);

/** Whether the connection of `req` was made to a loopback address (our end of it; a wildcard listener has both kinds). */
export function toLoopback(req: IncomingMessage): boolean {
  return addressIsLoopback(req.socket.localAddress ?? '');
}

/**
 * The DNS-rebinding guard, shared by these routes, the health routes and fastify's hook: on a
 * connection made to a loopback address, a refusal when the Host (or an absolute-form target)
 * is not a loopback name. Decided per connection, so a non-loopback listener beside a loopback
 * one does not switch it off there.
 */
export function hostRefusal(req: IncomingMessage): Refusal | undefined {
  if (!toLoopback(req)) return undefined;
  const url = req.url;
  if (url !== undefined && url.charCodeAt(0) !== 47 /* / */ && url !== '*') {
    // Absolute-form: the target's authority replaces the Host header (RFC 9112 §3.2.2), so it is what the guard checks.
    const target = URL.parse(url);
    const ok = target !== null && (target.protocol === 'http:' || target.protocol === 'https:') && !target.username && !target.password && isLoopbackHostname(target.hostname);
    return ok ? undefined : TARGET_REFUSAL;
  }
  return hostIsLoopback(req.headers.host) ? undefined : HOST_REFUSAL;
}

export const IMDS_DISABLED = refusal(404, 'NotFound', 'the instance metadata endpoint is disabled');

export const IMDS_OFF_LOOPBACK = refusal(
  403,
  'AccessDenied',
  'IMDS is served only on loopback addresses (it needs no secret, so every client that can connect here would get credentials); connect to 127.0.0.1 or [::1], use the container endpoint with its token, or set imds.onNonLoopbackUnsafe: true',
);

/** Why IMDS is not served on this request's connection, if it is not. */
function imdsRefusal(state: ServerState, req: IncomingMessage): Refusal | undefined {
  if (!state.imds.enabled) return IMDS_DISABLED;
  if (!state.imds.onNonLoopback && !toLoopback(req)) return IMDS_OFF_LOOPBACK;
  return undefined;
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
    Expiration: isoSeconds(c.expiration),
  };
  if (c.accountId) body.AccountId = c.accountId;
  body.RoleArn = c.roleArn;
  return JSON.stringify(body);
}

function imdsBody(c: AwsCredentials, lastUpdated: Date): string {
  return JSON.stringify({
    Code: 'Success',
    LastUpdated: isoSeconds(lastUpdated),
    Type: 'AWS-HMAC',
    AccessKeyId: c.accessKeyId,
    SecretAccessKey: c.secretAccessKey,
    Token: c.sessionToken,
    Expiration: isoSeconds(c.expiration),
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

export interface CredentialRoutesOptions {
  getState: () => ServerState;
  metrics: RequestMetrics;
  bodies: BodyCache;
  imdsTokens: ImdsTokenStore;
  /** Whom the IMDS token store counts a new token against (its eviction is fair per owner); default: one owner. */
  tokenOwner?: (req: IncomingMessage) => string;
  logger: Logger;
  surface: CredentialSurface;
}

const CONTAINER_PREFIX = '/v1/credentials';
const TOKEN_PATH = '/latest/api/token';
const IMDS_PREFIX = '/latest/';
const ROLE_PREFIX = '/latest/meta-data/iam/security-credentials/';
const JSON_ERROR = 'application/json; charset=utf-8';

const NO_CHECKS: Check[] = [];

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

// Every request of a profile asks for the same role name.
const roleNameCached = lastCallMemo(roleNameOf);

/** What an IMDS GET path asks for. */
type ImdsPath = { kind: 'roles' | 'zone' | 'region' | 'other' } | { kind: 'role'; role: string };

function imdsPath(path: string): ImdsPath {
  switch (path) {
    case '/latest/meta-data/iam/security-credentials/':
    case '/latest/meta-data/iam/security-credentials':
      return { kind: 'roles' };
    case '/latest/meta-data/placement/availability-zone':
      return { kind: 'zone' };
    case '/latest/meta-data/placement/region':
      return { kind: 'region' };
  }
  if (!path.startsWith(ROLE_PREFIX)) return { kind: 'other' };
  let role = path.slice(ROLE_PREFIX.length);
  if (role.includes('%')) {
    try {
      role = decodeURIComponent(role);
    } catch {
      role = '';
    }
  }
  return { kind: 'role', role };
}

// A client polls the same metadata path.
const imdsPathCached = lastCallMemo(imdsPath);

interface Shared {
  bodies: BodyCache;
  imdsTokens: ImdsTokenStore;
  tokenOwner: ((req: IncomingMessage) => string) | undefined;
  log: Logger;
  /** Whether the logger is at debug (then every request is logged with its duration); follows level changes. */
  debug: { on: boolean };
}

/** What is fixed per route label: the route, its checks and its request counter (resolved once, not per request). */
interface RouteInfo {
  readonly route: CredentialRoute;
  readonly checks: RouteChecks;
  readonly label: string;
  readonly counter: RouteCounter;
}

const debugFlags = new WeakMap<Logger, { on: boolean }>();
/** One `{on}` flag per logger, kept current by pino's level-change event (a reload may change the level). */
function debugFlag(log: Logger): { on: boolean } {
  let flag = debugFlags.get(log);
  if (flag === undefined) {
    const f = { on: log.isLevelEnabled('debug') };
    debugFlags.set(log, f);
    (log as Partial<Pick<Logger, 'on'>>).on?.('level-change', () => {
      f.on = log.isLevelEnabled('debug');
    });
    flag = f;
  }
  return flag;
}

/**
 * One request on a credential route, from the checks to the answer. It is the
 * checks' context too, so the synchronous path allocates this one object and
 * no closures.
 */
class Exchange implements CheckContext {
  profile: string | undefined;
  private served: ServedProfile | undefined;
  private authorized = false;

  readonly route: CredentialRoute;
  private readonly started: number;

  constructor(
    private readonly shared: Shared,
    private readonly req: IncomingMessage,
    private readonly res: ServerResponse,
    readonly state: ServerState,
    private readonly info: RouteInfo,
    private readonly path: string,
  ) {
    this.route = info.route;
    this.started = shared.debug.on ? performance.now() : 0;
  }

  /** Authenticate, resolve the profile, authorize, answer. */
  start(): void {
    this.check(this.info.checks.authenticate);
  }

  /** PUT /latest/api/token: the token checks, then issue. */
  startToken(): void {
    this.profile = this.state.imds.profile;
    this.authorized = true;
    this.check(this.info.checks.token ?? NO_CHECKS);
  }

  private check(checks: Check[]): void {
    const r = checks.length === 0 ? undefined : runChecks(checks, 0, this.req, this);
    if (r === undefined) return this.passed();
    if (isThenable<Refusal | undefined>(r)) {
      r.then(
        (x) => {
          if (this.res.destroyed) return;
          if (x === undefined) this.passed();
          else this.refuse(x);
        },
        (err: unknown) => this.fail(err),
      );
      return;
    }
    this.refuse(r);
  }

  private passed(): void {
    try {
      if (this.authorized) return this.serve();
      this.authorized = true; // the next pass is the authorize checks'
      const state = this.state;
      let name = this.profile;
      if (this.route === 'container') {
        if (name === undefined) {
          name = state.defaultProfile;
          if (name === undefined) return this.refuse(refusal(404, 'NotFound', `no default profile is configured; request /v1/credentials/<profile> (profiles: ${nameList([...state.profiles.keys()])})`));
        }
        this.served = state.profiles.get(name);
        if (this.served === undefined) return this.refuse(refusal(404, 'NotFound', `unknown profile "${name.slice(0, 100)}"`));
      } else {
        name ??= state.imds.profile;
        this.served = name === undefined ? undefined : state.profiles.get(name);
        if (this.served === undefined) return this.refuse(refusal(404, 'NotFound', 'no profile is served over IMDS'));
      }
      this.profile = name;
      this.check(this.info.checks.authorize);
    } catch (err) {
      this.fail(err);
    }
  }

  private serve(): void {
    if (this.req.method === 'PUT') return this.issueToken();
    const profile = this.served!;
    if (this.route === 'container') {
      const found = profile.session.lookup();
      if (!found.ok) return this.refuse(refusal(503, 'CredentialsUnavailable', found.message));
      return this.answer(200, 'application/json', this.shared.bodies.containerBody(found.credentials));
    }
    const path = this.path;
    const roleName = roleNameCached(profile.roleArn);
    const asked = imdsPathCached(path);
    switch (asked.kind) {
      case 'roles':
        return this.answer(200, 'text/plain', roleName);
      case 'zone':
        return this.answer(200, 'text/plain', `${profile.region}a`);
      case 'region':
        return this.answer(200, 'text/plain', profile.region);
      case 'role': {
        if (asked.role !== roleName) return this.refuse(refusal(404, 'NotFound', 'no such role'));
        const found = profile.session.lookup();
        if (!found.ok) return this.refuse(refusal(503, 'CredentialsUnavailable', found.message));
        return this.answer(200, 'application/json', this.shared.bodies.imdsBody(found.credentials, found.lastUpdated));
      }
    }
    return this.refuse(refusal(404, 'NotFound', `no such metadata path: ${path.slice(0, 200)}`));
  }

  private issueToken(): void {
    const headers = this.req.headers;
    if (headers['x-forwarded-for'] !== undefined) {
      return this.refuse(refusal(403, 'Forbidden', 'token requests carrying X-Forwarded-For are refused (proxied requests cannot obtain IMDS tokens)'));
    }
    const ttl = parseTtl(headers['x-aws-ec2-metadata-token-ttl-seconds']);
    if (ttl === undefined) return this.refuse(refusal(400, 'BadRequest', 'X-aws-ec2-metadata-token-ttl-seconds must be an integer between 1 and 21600'));
    // The Go SDK requires the TTL echoed back.
    const token = this.shared.imdsTokens.issue(ttl, this.shared.tokenOwner?.(this.req));
    this.answer(200, 'text/plain', token, ['x-aws-ec2-metadata-token-ttl-seconds', String(ttl)]);
  }

  answer(status: number, contentType: string, body: Buffer | string, extra?: string[]): void {
    const res = this.res;
    const head = ['content-type', contentType, 'cache-control', 'no-store', 'content-length', String(typeof body === 'string' ? Buffer.byteLength(body) : body.length)];
    if (extra !== undefined) head.push(...extra);
    res.writeHead(status, head);
    res.end(body);
    this.info.counter.hit(status);
    if (this.started !== 0) this.shared.log.debug({ method: this.req.method, route: this.info.label, status, ms: Math.round(performance.now() - this.started) }, 'request');
  }

  refuse(r: Refusal): void {
    this.answer(r.status, JSON_ERROR, errorBody(r.code, r.message));
  }

  fail(err: unknown): void {
    this.shared.log.error({ error: err instanceof Error ? err.message : String(err), route: this.info.label }, 'request handler error');
    if (!this.res.headersSent) this.refuse(refusal(500, 'InternalError', 'internal error'));
    else this.res.destroy();
  }
}

/**
 * The credential routes of one listener as a node:http request handler that returns
 * false for every request it does not serve (hand those to fastify).
 */
export function credentialRoutes(options: CredentialRoutesOptions): (req: IncomingMessage, res: ServerResponse) => boolean {
  const { getState, surface } = options;
  const log = options.logger;
  const shared: Shared = { bodies: options.bodies, imdsTokens: options.imdsTokens, tokenOwner: options.tokenOwner, log, debug: debugFlag(log) };
  const info = (route: CredentialRoute, checks: RouteChecks | undefined, label: string): RouteInfo | undefined =>
    checks === undefined ? undefined : { route, checks, label, counter: options.metrics.counter(label) };
  const routes = {
    container: info('container', surface.container, ROUTE_LABELS.container),
    containerNamed: info('container', surface.container, ROUTE_LABELS.containerNamed),
    imds: info('imds', surface.imds, ROUTE_LABELS.imds),
    imdsToken: info('imds', surface.imds, ROUTE_LABELS.imdsToken),
  };

  const putToken = (req: IncomingMessage, res: ServerResponse): boolean => {
    const url = req.url ?? '';
    const q = url.indexOf('?');
    const route = routes.imdsToken;
    if ((q === -1 ? url : url.slice(0, q)) !== TOKEN_PATH || route === undefined) return false;
    const state = getState();
    const exchange = new Exchange(shared, req, res, state, route, TOKEN_PATH);
    try {
      const denied = (surface.noHostGuard ? undefined : hostRefusal(req)) ?? imdsRefusal(state, req);
      if (denied !== undefined) exchange.refuse(denied);
      else exchange.startToken();
    } catch (err) {
      exchange.fail(err);
    }
    return true;
  };

  /** Where a GET/HEAD target routes: its route, its path (no query or fragment) and, for the container route, the profile segment; undefined = not ours. */
  const target = (raw: string): { route: RouteInfo; path: string; segment: string | undefined } | undefined => {
    const url = originForm(raw);
    let end = url.indexOf('?');
    const hash = url.indexOf('#');
    if (hash !== -1 && (end === -1 || hash < end)) end = hash;
    const path = end === -1 ? url : url.slice(0, end);
    let route: RouteInfo | undefined;
    let segment: string | undefined;
    if (path.startsWith(CONTAINER_PREFIX)) {
      if (path.length === CONTAINER_PREFIX.length) route = routes.container;
      else if (path.charCodeAt(CONTAINER_PREFIX.length) === 47 /* / */) {
        segment = path.slice(CONTAINER_PREFIX.length + 1);
        if (segment.length === 0 || segment.includes('/')) return undefined;
        route = routes.containerNamed;
      } else return undefined;
    } else if (path.startsWith(IMDS_PREFIX)) route = routes.imds;
    return route === undefined ? undefined : { route, path, segment };
  };
  const targetCached = lastCallMemo(target);

  return (req, res) => {
    const method = req.method;
    if (method === 'PUT') return putToken(req, res);
    if (method !== 'GET' && method !== 'HEAD') return false;
    const url = req.url ?? '';
    const t = targetCached(url);
    if (t === undefined) return false;
    const { route, path, segment } = t;

    const state = getState();
    const exchange = new Exchange(shared, req, res, state, route, path);
    try {
      const denied = surface.noHostGuard ? undefined : hostRefusal(req);
      if (denied !== undefined) {
        exchange.refuse(denied);
        return true;
      }
      if (route.route === 'imds') {
        const off = imdsRefusal(state, req);
        if (off !== undefined) exchange.refuse(off);
        else exchange.start();
        return true;
      }
      if (segment !== undefined) {
        if (segment.length > MAX_PATH_SEGMENT) {
          exchange.refuse(refusal(414, 'BadRequest', 'a path segment is too long'));
          return true;
        }
        try {
          exchange.profile = decodeURIComponent(segment);
        } catch {
          exchange.refuse(refusal(400, 'BadRequest', 'the request path is not valid (bad percent-encoding)'));
          return true;
        }
      }
      exchange.start();
    } catch (err) {
      exchange.fail(err);
    }
    return true;
  };
}
