import type { SessionStatus } from '../credentials/session.js';

/** Highest HTTP status code counted per route (anything above is counted as this + 1's slot, never dropped). */
const MAX_STATUS = 599;

/**
 * One route's request counts by status code: an array slot per code, so counting a
 * request is one increment (no map lookups, no hashing of the status number). Get one
 * with `RequestMetrics.counter(route)` once and keep it.
 */
export class RouteCounter {
  private readonly byStatus = new Float64Array(MAX_STATUS + 2);
  hit(status: number): void {
    this.byStatus[status >= 0 && status <= MAX_STATUS ? status | 0 : MAX_STATUS + 1]!++;
  }
  /** [status, count] for every status seen, ascending; an out-of-range status is reported as MAX_STATUS + 1. */
  counts(): Array<[number, number]> {
    const out: Array<[number, number]> = [];
    for (let s = 0; s < this.byStatus.length; s++) if (this.byStatus[s]! > 0) out.push([s, this.byStatus[s]!]);
    return out;
  }
}

/** Counts HTTP requests by route and status code. */
export class RequestMetrics {
  private readonly routes = new Map<string, RouteCounter>();
  readonly startedAt = Date.now();
  /** Credential requests refused because of who the caller is, by uid ('unknown' when it could not be told). */
  readonly callerRefusals = new Map<string, number>();

  /** Open connections over all listeners (set by ConnectionLimits). */
  connectionsOpen: () => number = () => 0;
  /** New connections closed at once by a limit, by reason (max_connections, max_per_user). */
  readonly connectionRefusals = new Map<string, number>();

  recordCallerRefusal(uid: number | undefined): void {
    const key = uid === undefined ? 'unknown' : String(uid);
    this.callerRefusals.set(key, (this.callerRefusals.get(key) ?? 0) + 1);
  }

  /** The counter of `route` (created on first use): the hot paths resolve it once and call `hit` per request. */
  counter(route: string): RouteCounter {
    let c = this.routes.get(route);
    if (c === undefined) {
      c = new RouteCounter();
      this.routes.set(route, c);
    }
    return c;
  }

  record(route: string, status: number): void {
    this.counter(route).hit(status);
  }

  entries(): Array<{ route: string; status: number; count: number }> {
    const out: Array<{ route: string; status: number; count: number }> = [];
    for (const [route, c] of this.routes) for (const [status, count] of c.counts()) out.push({ route, status, count });
    return out;
  }
}

function esc(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

function labels(l: Record<string, string>): string {
  const parts = Object.entries(l).map(([k, v]) => `${k}="${esc(v)}"`);
  return parts.length ? `{${parts.join(',')}}` : '';
}

function num(n: number): string {
  if (Number.isNaN(n)) return 'NaN';
  if (n === Infinity) return '+Inf';
  if (n === -Infinity) return '-Inf';
  return String(n);
}

/** Prometheus text writer: one `family` call per metric family. */
export class MetricsWriter {
  private readonly lines: string[] = [];
  family(name: string, type: 'gauge' | 'counter', help: string, samples: Array<[Record<string, string>, number]>): void {
    this.lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    for (const [l, v] of samples) this.lines.push(`${name}${labels(l)} ${num(v)}`);
  }
  toString(): string {
    return this.lines.join('\n') + '\n';
  }
}

/** Prometheus text exposition (format 0.0.4) of the daemon's state. No secrets. */
export function renderMetrics(statuses: SessionStatus[], requests: RequestMetrics, now = Date.now()): string {
  const w = new MetricsWriter();
  const p = (s: SessionStatus) => ({ profile: s.profile });
  const secs = (d: Date | undefined) => (d ? d.getTime() / 1000 : NaN);
  w.family('rolesanywhere_credentials_valid', 'gauge', 'Whether the profile holds credentials it will serve (1) or not (0).', statuses.map((s) => [p(s), s.ready ? 1 : 0]));
  w.family(
    'rolesanywhere_credentials_expiry_timestamp_seconds',
    'gauge',
    'Expiration of the cached credentials (Unix time).',
    statuses.filter((s) => s.expiration).map((s) => [p(s), secs(s.expiration)]),
  );
  w.family(
    'rolesanywhere_credentials_remaining_seconds',
    'gauge',
    'Seconds until the cached credentials expire (negative when expired).',
    statuses.filter((s) => s.expiration).map((s) => [p(s), Math.round((s.expiration!.getTime() - now) / 1000)]),
  );
  w.family(
    'rolesanywhere_refresh_last_timestamp_seconds',
    'gauge',
    'Time of the last CreateSession attempt outcome (Unix time).',
    statuses.filter((s) => s.lastRefreshAt).map((s) => [p(s), secs(s.lastRefreshAt)]),
  );
  w.family(
    'rolesanywhere_refresh_last_success',
    'gauge',
    'Whether the last CreateSession attempt succeeded (1) or failed (0).',
    statuses.filter((s) => s.lastRefreshOutcome).map((s) => [p(s), s.lastRefreshOutcome === 'success' ? 1 : 0]),
  );
  w.family(
    'rolesanywhere_clock_skew_seconds',
    'gauge',
    "The Roles Anywhere service's clock minus this host's, from the last CreateSession answer (0 within its precision); expiry is computed on the service's clock.",
    statuses.map((s) => [p(s), Math.round(s.clockOffsetMs / 1000)]),
  );
  w.family('rolesanywhere_refresh_attempts_total', 'counter', 'CreateSession attempts.', statuses.map((s) => [p(s), s.refreshAttempts]));
  w.family('rolesanywhere_refresh_successes_total', 'counter', 'Successful CreateSession calls.', statuses.map((s) => [p(s), s.refreshSuccesses]));
  const failures: Array<[Record<string, string>, number]> = [];
  for (const s of statuses) for (const [reason, n] of Object.entries(s.failuresByReason)) failures.push([{ profile: s.profile, reason }, n]);
  w.family('rolesanywhere_refresh_failures_total', 'counter', 'Failed CreateSession attempts by reason.', failures);
  const hops = statuses.flatMap((s) => s.hops.filter(Boolean).map((h) => ({ h, l: { profile: s.profile, hop: String(h.hop), role_arn: h.roleArn } })));
  w.family('rolesanywhere_assume_role_attempts_total', 'counter', 'AssumeRole calls per hop of a role chain (hop = index in assumeRole).', hops.map(({ h, l }) => [l, h.attempts]));
  w.family('rolesanywhere_assume_role_successes_total', 'counter', 'Successful AssumeRole calls per hop of a role chain.', hops.map(({ h, l }) => [l, h.successes]));
  w.family(
    'rolesanywhere_assume_role_failures_total',
    'counter',
    'Failed AssumeRole calls per hop of a role chain, by reason.',
    hops.flatMap(({ h, l }) => Object.entries(h.failuresByReason).map(([reason, n]): [Record<string, string>, number] => [{ ...l, reason }, n])),
  );
  w.family(
    'rolesanywhere_assume_role_expiry_timestamp_seconds',
    'gauge',
    'Expiration of the credentials each hop of a role chain last gave (Unix time).',
    hops.filter(({ h }) => h.expiration).map(({ h, l }) => [l, secs(h.expiration)]),
  );
  w.family('rolesanywhere_certificate_not_after_timestamp_seconds', 'gauge', 'notAfter of the certificate in use (Unix time).', statuses.map((s) => [p(s), secs(s.certificateNotAfter)]));
  w.family('rolesanywhere_certificate_reloads_total', 'counter', 'Certificate/key changes picked up.', statuses.map((s) => [p(s), s.identityReloads]));
  w.family('rolesanywhere_certificate_reload_failures_total', 'counter', 'Certificate/key changes refused (current identity kept).', statuses.map((s) => [p(s), s.identityReloadFailures]));
  w.family(
    'rolesanywhere_http_requests_total',
    'counter',
    'HTTP requests by route and status code.',
    requests.entries().map((e) => [{ route: e.route, code: String(e.status) }, e.count]),
  );
  w.family(
    'rolesanywhere_caller_refusals_total',
    'counter',
    'Credential requests refused because the calling local user is not allowed (callers setting), by uid.',
    [...requests.callerRefusals].map(([uid, n]) => [{ uid }, n]),
  );
  w.family('rolesanywhere_connections_open', 'gauge', 'Open connections over all listeners.', [[{}, requests.connectionsOpen()]]);
  w.family(
    'rolesanywhere_connections_refused_total',
    'counter',
    'New connections closed at once because of connections.max (max_connections) or connections.maxPerUser (max_per_user).',
    [...requests.connectionRefusals].map(([reason, n]) => [{ reason }, n]),
  );
  w.family('rolesanywhere_process_start_time_seconds', 'gauge', 'Start time of the daemon (Unix time).', [[{}, requests.startedAt / 1000]]);
  w.family('rolesanywhere_process_uptime_seconds', 'gauge', 'Seconds since the daemon started.', [[{}, Math.round((now - requests.startedAt) / 1000)]]);
  return w.toString();
}
