// Health, readiness and metrics: what /healthz, /readyz and /metrics answer, shared by
// the main listeners (fastify routes, src/server/app.ts) and the optional health
// listener (`health.listen`, `healthHandler` below), which answers only these three
// paths so that kubelet probes and Prometheus can reach them from outside the pod
// while the credential routes stay on loopback.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { isThenable } from './checks.js';
import { errorBody, hostRefusal } from './credential-routes.js';
import { renderMetrics, type RequestMetrics } from './metrics.js';
import type { ServerState } from './state.js';
import { isoSeconds } from '../timers.js';
import { nameList } from '../problems.js';

export const METRICS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

export const HEALTHZ_BODY = '{"status":"ok"}';

interface ProfileReadiness {
  ready: boolean;
  expiration?: string;
  /** Why not ready: the session's message (may carry ARNs, subjects, the service's text). */
  reason?: string;
}

/**
 * The /readyz answer: 200 when every profile has credentials it will serve, else 503
 * naming the profiles that do not. `reasons: false` leaves out why (the session's
 * message carries the service's error text, ARNs and certificate subjects): for
 * listeners reachable from outside.
 */
export function readiness(state: ServerState, reasons: boolean | ((profile: string) => boolean)): { status: 200 | 503; body: Record<string, unknown> } {
  const profiles: Record<string, ProfileReadiness> = {};
  const notReady: string[] = [];
  for (const [name, p] of state.profiles) {
    const found = p.session.lookup();
    if (found.ok) {
      profiles[name] = { ready: true, expiration: isoSeconds(found.credentials.expiration) };
      continue;
    }
    profiles[name] = (typeof reasons === 'function' ? reasons(name) : reasons) ? { ready: false, reason: found.message } : { ready: false };
    // A pod-identity binding's session that is idle (stopped until a pod asks) is not "not ready".
    if (!(p.onDemand && !p.session.isRunning)) notReady.push(name);
  }
  if (notReady.length === 0) return { status: 200, body: { status: 'ready', profiles } };
  return { status: 503, body: { Code: 'NotReady', Message: `profiles without valid credentials: ${nameList(notReady)}`, status: 'not_ready', profiles } };
}

/** The /metrics text (Prometheus exposition 0.0.4). */
export function metricsText(state: ServerState, metrics: RequestMetrics): string {
  return renderMetrics([...state.profiles.values()].map((p) => p.session.status()), metrics) + (state.extraMetrics?.() ?? '');
}

const HEALTH_ROUTES = new Set(['/healthz', '/readyz', '/metrics']);

/** What a caller may see beyond the status codes: why a profile is not ready (/readyz), and /metrics. */
export interface HealthAccess {
  reasons: (profile: string) => boolean;
  metrics: boolean;
}

export interface HealthRoutesOptions {
  getState: () => ServerState;
  metrics: RequestMetrics;
  /**
   * /readyz says why a profile is not ready (true), or only which (the health listener), or
   * as `access` decides per caller (the main listeners: only to callers allowed that profile).
   */
  reasons: boolean;
  /** Per caller: which reasons it may read and whether it may read /metrics (default: `reasons`, and /metrics). */
  access?: (req: IncomingMessage, state: ServerState) => HealthAccess | Promise<HealthAccess>;
  /** Refuse requests whose Host is not loopback on connections made to a loopback address (the main listeners). */
  hostGuard: boolean;
}

const METRICS_REFUSED = errorBody(
  'AccessDenied',
  "/metrics here is served only to the local users callers allows; list the user in callers, or scrape the health listener (health.listen), which serves /metrics to anyone who can reach it",
);

function send(res: ServerResponse, status: number, type: string, body: string): void {
  res.writeHead(status, ['content-type', type, 'cache-control', 'no-store', 'content-length', String(Buffer.byteLength(body))]);
  res.end(body);
}

/**
 * GET (or HEAD) /healthz, /readyz and /metrics as a node:http handler that returns false
 * for every other request. Served without fastify on every listener: probes poll /readyz
 * from the first milliseconds, and loading fastify for them would delay readiness and
 * cost its memory in every pod.
 */
export function healthRoutes(options: HealthRoutesOptions): (req: IncomingMessage, res: ServerResponse) => boolean {
  const { getState, metrics, reasons, hostGuard, access } = options;
  const answer = (res: ServerResponse, path: string, state: ServerState, allowed: HealthAccess | undefined): void => {
    let status: number;
    if (path === '/healthz') {
      status = 200;
      send(res, status, 'application/json; charset=utf-8', HEALTHZ_BODY);
    } else if (path === '/readyz') {
      const r = readiness(state, allowed?.reasons ?? reasons);
      status = r.status;
      send(res, status, 'application/json; charset=utf-8', JSON.stringify(r.body));
    } else if (allowed !== undefined && !allowed.metrics) {
      status = 403;
      send(res, status, 'application/json; charset=utf-8', METRICS_REFUSED);
    } else {
      status = 200;
      send(res, status, METRICS_CONTENT_TYPE, metricsText(state, metrics));
    }
    metrics.record(path, status);
  };
  return (req, res) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') return false;
    const url = req.url ?? '';
    const q = url.indexOf('?');
    const path = q === -1 ? url : url.slice(0, q);
    if (!HEALTH_ROUTES.has(path)) return false;
    const state = getState();
    const denied = hostGuard ? hostRefusal(req) : undefined;
    if (denied !== undefined) {
      send(res, denied.status, 'application/json; charset=utf-8', errorBody(denied.code, denied.message));
      metrics.record(path, denied.status);
      return true;
    }
    // /healthz says nothing about anyone: no lookup of who is asking.
    const allowed = access === undefined || path === '/healthz' ? undefined : access(req, state);
    if (isThenable<HealthAccess>(allowed)) {
      allowed.then(
        (a) => {
          if (!res.destroyed) answer(res, path, state, a);
        },
        () => {
          if (!res.destroyed) answer(res, path, state, NO_DETAILS);
        },
      );
    } else answer(res, path, state, allowed);
    return true;
  };
}

/** No reasons, no /metrics. */
export const NO_DETAILS: HealthAccess = { reasons: () => false, metrics: false };

const NOT_HERE = errorBody('NotFound', 'this listener answers only GET /healthz, /readyz and /metrics');

/**
 * The health listener: GET (or HEAD) /healthz, /readyz and /metrics, and 404 for
 * everything else — the credential and IMDS routes included. No Host guard (it serves
 * nothing secret, and kubelet sends the pod's IP); /readyz without reasons.
 */
export function healthHandler(getState: () => ServerState, metrics: RequestMetrics): (req: IncomingMessage, res: ServerResponse) => void {
  const routes = healthRoutes({ getState, metrics, reasons: false, hostGuard: false });
  return (req, res) => {
    if (routes(req, res)) return;
    send(res, 404, 'application/json; charset=utf-8', NOT_HERE);
    metrics.record('unmatched', 404);
  };
}
