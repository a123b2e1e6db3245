import { certificateBlocks } from '../identity/pem.js';
import { readInputFile } from '../identity/files.js';
import { oneLineName } from '../identity/requirements.js';
import { X509Certificate } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { rootCertificates } from 'node:tls';
import { abortReason, UserError } from '../errors.js';
import type { Identity } from '../identity/types.js';
import { signX509Request } from '../signing/sigv4-x509.js';
import { VERSION } from '../version.js';
import { parseRoleArn } from './arn.js';
import { endpointFor, parseEndpoint, validateSessionParameters } from './endpoint.js';
import { type ErrorContext, RolesAnywhereError, sanitizeServiceText, serviceError, transportError } from './errors.js';
import {
  type HttpResponse,
  type ProxyEnv,
  ProxyRefusedError,
  TimeoutError,
  type TlsOptions,
  httpRequest,
  makeAgent,
  proxyFor,
  proxyRefusedError,
  redactProxy,
} from './transport.js';
import type { AwsCredentials, SessionParameters } from './types.js';
import { clampDelay } from '../timers.js';
import { backoffDelay } from '../timers.js';

export const DEFAULT_DURATION_SECONDS = 3600;

/** How to reach Roles Anywhere (not which session to create). */
export interface ClientOptions {
  /** Region to call; default: the trust anchor ARN's region. */
  region?: string;
  /** Endpoint URL override (https://…, or http:// to a loopback host). */
  endpoint?: string;
  /** Use the FIPS endpoint (ignored with `endpoint`). */
  fips?: boolean;
  /** PEM file of extra trusted roots, added to Node's default roots. */
  caBundle?: string;
  /** Skip TLS certificate verification. Dangerous; the CLI warns loudly. */
  noVerifySsl?: boolean;
  /** Honour HTTPS_PROXY/https_proxy/NO_PROXY/no_proxy (default true). */
  withProxy?: boolean;
  /** Environment to read proxy variables from (default process.env). */
  env?: ProxyEnv;
  /** TCP connect + TLS handshake deadline per attempt (default 5000 ms). */
  connectTimeoutMs?: number;
  /** Whole-attempt deadline (default 15000 ms). */
  timeoutMs?: number;
  /** Attempts including the first (default 4). */
  maxAttempts?: number;
  /** Backoff base (default 250 ms); delay before retry n is random in [0, min(maxDelayMs, base·2^(n-1))). */
  baseDelayMs?: number;
  /** Backoff cap (default 5000 ms). */
  maxDelayMs?: number;
  userAgent?: string;
  /** Called before each retry (for logging); the error message is safe to log. */
  onRetry?: (info: RetryInfo) => void;
  /** Clock, for tests. */
  now?: () => Date;
  /** Random in [0,1), for tests. */
  random?: () => number;
}

export interface RetryInfo {
  /** The attempt that failed (1-based). */
  attempt: number;
  maxAttempts: number;
  delayMs: number;
  error: RolesAnywhereError;
}

/** Reads a --ca-bundle and returns Node's default roots plus its certificates. */
export async function loadCaBundle(path: string): Promise<string[]> {
  let text: string;
  try {
    text = (await readInputFile(path, 'CA certificate')).toString('utf8');
  } catch (err) {
    if (!(err instanceof UserError)) throw err;
    throw new UserError(`--ca-bundle ${err.message}; give the path of a PEM file of CA certificates`, { reason: 'invalid_ca_bundle', cause: err });
  }
  const blocks = certificateBlocks(text);
  if (blocks.length === 0) {
    throw new UserError(`--ca-bundle ${path} contains no PEM certificate: give a file of -----BEGIN CERTIFICATE----- blocks`, {
      reason: 'invalid_ca_bundle',
    });
  }
  blocks.forEach((b, i) => {
    try {
      new X509Certificate(b);
    } catch {
      throw new UserError(`--ca-bundle ${path}: certificate #${i + 1} cannot be parsed: fix or remove it`, { reason: 'invalid_ca_bundle' });
    }
  });
  return [...rootCertificates, ...blocks];
}

/** Turns a 2xx CreateSession body into credentials, or throws a malformed_response error. */
/**
 * The service's clock minus ours from a response's Date header (whole seconds),
 * the request sent at `sentAt` and answered at `receivedAt` (our clock). 0 when
 * the difference is within what the header and the round trip can tell;
 * undefined without a usable header.
 */
export function clockOffsetFromDate(date: string | undefined, sentAt: number, receivedAt: number): number | undefined {
  if (!date) return undefined;
  const service = Date.parse(date);
  if (!Number.isFinite(service)) return undefined;
  // The header is truncated to the second: the service's time was in [service, service + 1 s).
  const offset = service + 500 - (sentAt + receivedAt) / 2;
  const precision = 500 + (receivedAt - sentAt) / 2 + 1000;
  return Math.abs(offset) <= precision ? 0 : Math.round(offset);
}

export function parseCreateSessionResponse(body: string, params: SessionParameters, now: Date = new Date()): AwsCredentials {
  const bad = (why: string, retryable = true) =>
    new RolesAnywhereError(`Roles Anywhere returned an unusable CreateSession answer (${why}): this is a service fault — retry later`, {
      reason: 'malformed_response',
      retryable,
    });
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch {
    throw bad('the body is not JSON');
  }
  const set = (json as { credentialSet?: unknown })?.credentialSet;
  if (!Array.isArray(set)) throw bad('no credentialSet');
  if (set.length === 0) throw bad('credentialSet is empty');
  const first = set[0] as {
    credentials?: Record<string, unknown>;
    assumedRoleUser?: { arn?: unknown };
    roleArn?: unknown;
  };
  const c = first?.credentials;
  if (!c || typeof c !== 'object') throw bad('credentialSet[0] has no credentials');
  for (const field of ['accessKeyId', 'secretAccessKey', 'sessionToken', 'expiration'] as const) {
    if (typeof c[field] !== 'string' || (c[field] as string).length === 0) throw bad(`credentials.${field} is missing`);
  }
  const accessKeyId = c.accessKeyId as string;
  if (!/^[A-Z0-9]{16,128}$/.test(accessKeyId)) throw bad('credentials.accessKeyId is not an access key ID');
  const expText = c.expiration as string;
  // ISO-8601 with a zone; Date.parse also takes looser forms, so insist on the shape.
  if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})$/.test(expText)) {
    throw bad(`credentials.expiration "${sanitizeServiceText(expText, 40)}" is not an ISO-8601 time`);
  }
  const expiration = new Date(expText);
  if (Number.isNaN(expiration.getTime())) throw bad(`credentials.expiration "${sanitizeServiceText(expText, 40)}" is not a valid time`);
  if (expiration.getTime() <= now.getTime()) {
    throw new RolesAnywhereError(
      `Roles Anywhere returned credentials that expire at ${expiration.toISOString()}, which is not in the future: check the system clock (enable NTP)`,
      { reason: 'malformed_response', retryable: false },
    );
  }
  const roleArn = typeof first.roleArn === 'string' && first.roleArn ? first.roleArn : params.roleArn;
  let accountId: string | undefined;
  try {
    accountId = parseRoleArn(roleArn).accountId;
  } catch {
    accountId = undefined;
  }
  const assumed = first.assumedRoleUser?.arn;
  const creds: AwsCredentials = {
    accessKeyId,
    secretAccessKey: c.secretAccessKey as string,
    sessionToken: c.sessionToken as string,
    expiration,
    roleArn,
  };
  if (accountId) creds.accountId = accountId;
  if (typeof assumed === 'string' && assumed) creds.assumedRoleArn = assumed;
  return creds;
}

export function firstHeader(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

/** Error type and message from an error answer (header X-Amzn-ErrorType, JSON __type/code, message/Message). */
export function parseErrorResponse(res: HttpResponse): { type?: string; message?: string } {
  let type = firstHeader(res.headers['x-amzn-errortype']);
  let message: string | undefined;
  try {
    const j = JSON.parse(res.body) as Record<string, unknown>;
    if (!type) type = [j.__type, j.code, j.Code].find((v): v is string => typeof v === 'string');
    message = [j.message, j.Message, j.errorMessage].find((v): v is string => typeof v === 'string');
  } catch {
    // Non-JSON error page (a load balancer, a proxy): quote the start of it if it is text.
    const ct = firstHeader(res.headers['content-type']) ?? '';
    if (res.body && !/html/i.test(ct) && !/^\s*</.test(res.body)) message = res.body.slice(0, 200);
  }
  return { type, message };
}

export function retryAfterMs(res: HttpResponse): number | undefined {
  const v = firstHeader(res.headers['retry-after']);
  if (!v) return undefined;
  const s = Number(v);
  if (Number.isFinite(s) && s >= 0) return s * 1000;
  const d = Date.parse(v);
  return Number.isNaN(d) ? undefined : Math.max(0, d - Date.now());
}

/**
 * A Roles Anywhere client for one set of connection options. Safe to reuse;
 * each `createSession` reads the CA bundle and proxy environment afresh.
 */
export class RolesAnywhereClient {
  constructor(readonly options: ClientOptions = {}) {}

  /**
   * CreateSession with retries (network errors, timeouts, 429, 5xx, malformed
   * 2xx answers) and exponential backoff with full jitter. Rejects with a
   * RolesAnywhereError (or a UserError for bad parameters, before any request),
   * or with the signal's reason when aborted.
   */
  async createSession(identity: Identity, params: SessionParameters, signal?: AbortSignal): Promise<AwsCredentials> {
    const o = this.options;
    const region = validateSessionParameters(params, o.region);
    const endpoint = o.endpoint ? parseEndpoint(o.endpoint) : new URL(endpointFor(region, { fips: o.fips }));
    const url = new URL(`${endpoint.pathname.replace(/\/+$/, '')}/sessions`, endpoint);
    const withProxy = o.withProxy ?? true;
    const proxy = withProxy ? proxyFor(url, o.env ?? process.env) : undefined;
    const tls: TlsOptions = { rejectUnauthorized: !o.noVerifySsl };
    if (o.caBundle) tls.ca = await loadCaBundle(o.caBundle);
    const agent = await makeAgent(url, tls, proxy);

    const now = o.now ?? (() => new Date());

    const body = JSON.stringify({
      durationSeconds: params.durationSeconds ?? DEFAULT_DURATION_SECONDS,
      profileArn: params.profileArn,
      roleArn: params.roleArn,
      trustAnchorArn: params.trustAnchorArn,
      ...(params.roleSessionName ? { roleSessionName: params.roleSessionName } : {}),
    });
    const ctx: ErrorContext = {
      endpoint: endpoint.origin,
      region,
      trustAnchorArn: params.trustAnchorArn,
      profileArn: params.profileArn,
      roleArn: params.roleArn,
      certIssuer: oneLineName(identity.certificate.issuer),
      certSubject: oneLineName(identity.certificate.subject),
      certNotBefore: identity.certificate.validFrom,
      certNotAfter: identity.certificate.validTo,
      chainLength: identity.chain.length,
      proxy: proxy ? redactProxy(proxy) : undefined,
    };

    try {
      return await withRetries(o, signal, async () => {
        // Sign per attempt: X-Amz-Date must be current.
        const headers = await signX509Request({ identity, region, host: url.host, path: url.pathname, body, date: now() });
        headers['User-Agent'] = o.userAgent ?? `rolesanywhere-credentiald/${VERSION}`;
        headers.Accept = 'application/json';
        const sentAt = now().getTime();
        const res = await httpRequest(url, {
          method: 'POST',
          headers,
          body,
          agent,
          tls,
          connectTimeoutMs: o.connectTimeoutMs, // undefined: the transport's defaults
          timeoutMs: o.timeoutMs,
          signal,
        });
        if (res.status >= 200 && res.status < 300) {
          const received = now();
          const creds = parseCreateSessionResponse(res.body, params, received);
          const offset = clockOffsetFromDate(firstHeader(res.headers.date), sentAt, received.getTime());
          if (offset !== undefined) creds.clockOffsetMs = offset;
          return creds;
        }
        const { type, message } = parseErrorResponse(res);
        const error = serviceError(res.status, type, message, ctx);
        if (error.reason === 'throttled') error.retryAfterMs = retryAfterMs(res);
        throw error;
      }, (err) => classifyFailure(err, ctx, proxy));
    } finally {
      agent.destroy();
    }
  }
}

/** A failed attempt as a RolesAnywhereError (the service's own, a refusing proxy, a timeout, a network failure). */
export function classifyFailure(err: unknown, ctx: Pick<ErrorContext, 'endpoint' | 'proxy' | 'service'>, proxy: URL | undefined): RolesAnywhereError {
  if (err instanceof RolesAnywhereError) return err;
  if (err instanceof ProxyRefusedError && proxy) return proxyRefusedError(err, proxy, ctx.service);
  if (err instanceof TimeoutError) {
    return new RolesAnywhereError(
      `${ctx.service ?? 'Roles Anywhere'} at ${ctx.endpoint}${ctx.proxy ? ` via proxy ${ctx.proxy}` : ''} did not answer in time (${err.message}): ` +
        'check network access to the endpoint' + (ctx.proxy ? ' and the proxy' : ', and set HTTPS_PROXY if this network needs a proxy'),
      { reason: 'timeout', retryable: true, cause: err },
    );
  }
  return transportError(err, ctx);
}

/**
 * Runs `attempt` until it succeeds, fails for good (not retryable), or
 * `maxAttempts` is spent, with exponential backoff and full jitter between
 * attempts (at least a throttling answer's Retry-After). `classify` turns a
 * failure into a RolesAnywhereError; a plain UserError (bad parameters) and
 * an abort end at once.
 */
export async function withRetries<T>(
  o: Pick<ClientOptions, 'maxAttempts' | 'baseDelayMs' | 'maxDelayMs' | 'random' | 'onRetry'>,
  signal: AbortSignal | undefined,
  attempt: () => Promise<T>,
  classify: (err: unknown) => RolesAnywhereError,
): Promise<T> {
  const maxAttempts = Math.max(1, Math.floor(o.maxAttempts ?? 4));
  const baseDelayMs = Math.max(0, o.baseDelayMs ?? 250);
  const maxDelayMs = Math.max(baseDelayMs, o.maxDelayMs ?? 5000);
  const random = o.random ?? Math.random;
  for (let n = 1; ; n++) {
    if (signal?.aborted) throw abortReason(signal);
    let error: RolesAnywhereError;
    try {
      return await attempt();
    } catch (err) {
      if (signal?.aborted) throw abortReason(signal);
      if (err instanceof UserError && !(err instanceof RolesAnywhereError)) throw err;
      error = classify(err);
    }
    if (!error.retryable || n >= maxAttempts) {
      // The same error (its class and fields kept), saying it was retried.
      if (n > 1 && error.retryable) error.message = `${error.message} (gave up after ${n} attempts)`;
      throw error;
    }
    const minDelay = Math.min(error.retryAfterMs ?? 0, maxDelayMs);
    const delayMs = backoffDelay(n - 1, { initialMs: baseDelayMs, maxMs: maxDelayMs, jitter: [0, 1], minMs: minDelay }, random);
    o.onRetry?.({ attempt: n, maxAttempts, delayMs, error });
    if (delayMs > 0) {
      try {
        await sleep(clampDelay(delayMs), undefined, { signal });
      } catch {
        throw abortReason(signal!);
      }
    }
  }
}

/** One-shot CreateSession (see RolesAnywhereClient.createSession). */
export function createSession(identity: Identity, params: SessionParameters, options: ClientOptions = {}, signal?: AbortSignal): Promise<AwsCredentials> {
  return new RolesAnywhereClient(options).createSession(identity, params, signal);
}
