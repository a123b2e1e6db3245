// STS AssumeRole (query API, Version 2011-06-15): one hop of a role chain,
// signed with ordinary SigV4 (aws4) by the previous hop's credentials, sent
// through the same transport as CreateSession (deadlines, proxy, CA bundle).
// The XML answer is size-capped and read by a small targeted parser: only the
// few elements we need, outside any nested markup.
import aws4 from 'aws4';
import { UserError } from '../errors.js';
import { VERSION } from '../version.js';
import { checkRoleArn, parseRoleArn } from './arn.js';
import { classifyFailure, loadCaBundle, retryAfterMs, withRetries, type ClientOptions } from './client.js';
import { parseEndpoint, stsEndpointFor } from './endpoint.js';
import { RolesAnywhereError, sanitizeServiceText, type RolesAnywhereErrorReason } from './errors.js';
import { httpRequest, makeAgent, proxyFor, redactProxy, type TlsOptions } from './transport.js';
import type { AwsCredentials, HopResult } from './types.js';

/** One AssumeRole hop as configured. */
export interface AssumeRoleHop {
  roleArn: string;
  externalId?: string;
  roleSessionName?: string;
  durationSeconds?: number;
}

/** How to reach STS: the Roles Anywhere client's connection options plus the STS endpoint. */
export interface StsOptions extends Omit<ClientOptions, 'endpoint' | 'region'> {
  /** The region to sign for (and of the default endpoint). */
  region: string;
  /** STS endpoint override (https://…, or http:// to a loopback host). */
  stsEndpoint?: string;
}

/** The largest AssumeRole answer read (a real one is about 2 KB). */
export const MAX_STS_BODY = 64 * 1024;

export const EXTERNAL_ID_RE = /^[\w+=,.@:/-]{2,1224}$/;

/** A hop refused or failed: `hop` is its index in assumeRole (0-based, as in `assumeRole[1]`). */
export class AssumeRoleError extends RolesAnywhereError {
  constructor(
    message: string,
    readonly hop: number,
    readonly roleArn: string,
    /** The hops before it, which succeeded. */
    readonly completed: HopResult[],
    init: { reason: RolesAnywhereErrorReason; retryable: boolean; type?: string; status?: number; cause?: unknown },
  ) {
    super(message, init);
    this.name = 'AssumeRoleError';
  }
}

const ENTITIES: Record<string, string> = { lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" };

function decodeXml(text: string): string {
  return text.replace(/&(#x[0-9a-fA-F]{1,6}|#\d{1,7}|lt|gt|amp|quot|apos);/g, (_, e: string) => {
    if (e[0] !== '#') return ENTITIES[e]!;
    const cp = e[1] === 'x' ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10);
    return cp <= 0x10ffff ? String.fromCodePoint(cp) : '';
  });
}

/** The text of the first `<name>…</name>` inside `xml` holding no markup, decoded; undefined when absent. */
export function xmlText(xml: string, name: string): string | undefined {
  const open = `<${name}>`;
  const i = xml.indexOf(open);
  if (i < 0) return undefined;
  const j = xml.indexOf(`</${name}>`, i + open.length);
  if (j < 0) return undefined;
  const inner = xml.slice(i + open.length, j);
  return inner.includes('<') ? undefined : decodeXml(inner).trim();
}

/** The markup between `<name…>` and `</name>`; undefined when absent. */
function xmlElement(xml: string, name: string): string | undefined {
  const m = new RegExp(`<${name}(?:\\s[^>]*)?>`).exec(xml);
  if (!m) return undefined;
  const j = xml.indexOf(`</${name}>`, m.index + m[0].length);
  return j < 0 ? undefined : xml.slice(m.index + m[0].length, j);
}

/** Credentials from an AssumeRoleResponse, or a malformed_response error naming what is missing. */
export function parseAssumeRoleResponse(body: string, roleArn: string, now: Date = new Date()): AwsCredentials {
  const bad = (what: string) =>
    new RolesAnywhereError(`STS answered AssumeRole for ${roleArn} with a malformed response (${what})`, { reason: 'malformed_response', retryable: true });
  const result = xmlElement(body, 'AssumeRoleResult');
  if (result === undefined) throw bad('no AssumeRoleResult');
  const creds = xmlElement(result, 'Credentials');
  if (creds === undefined) throw bad('no Credentials');
  const field = (name: string) => {
    const v = xmlText(creds, name);
    if (!v) throw bad(`Credentials.${name} is missing`);
    return v;
  };
  const accessKeyId = field('AccessKeyId');
  if (!/^[A-Z0-9]{16,128}$/.test(accessKeyId)) throw bad('Credentials.AccessKeyId is not an access key ID');
  const expText = field('Expiration');
  const expiration = new Date(expText);
  if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})$/.test(expText) || Number.isNaN(expiration.getTime())) {
    throw bad(`Credentials.Expiration "${sanitizeServiceText(expText, 40)}" is not an ISO-8601 time`);
  }
  if (expiration.getTime() <= now.getTime()) {
    throw new RolesAnywhereError(`STS returned credentials for ${roleArn} that expire at ${expiration.toISOString()}, which is not in the future: check the system clock (enable NTP)`, {
      reason: 'malformed_response',
      retryable: false,
    });
  }
  const out: AwsCredentials = { accessKeyId, secretAccessKey: field('SecretAccessKey'), sessionToken: field('SessionToken'), expiration, roleArn };
  out.accountId = parseRoleArn(roleArn).accountId;
  const user = xmlElement(result, 'AssumedRoleUser');
  const assumed = user === undefined ? undefined : xmlText(user, 'Arn');
  if (assumed) out.assumedRoleArn = assumed;
  return out;
}

/** STS's error code and message from an ErrorResponse (XML) or a JSON error. */
export function parseStsError(body: string): { code?: string; message?: string } {
  const error = xmlElement(body, 'Error');
  if (error !== undefined) return { code: xmlText(error, 'Code'), message: xmlText(error, 'Message') };
  try {
    const j = JSON.parse(body) as Record<string, unknown>;
    const code = [j.__type, j.Code, j.code].find((v): v is string => typeof v === 'string');
    const message = [j.message, j.Message].find((v): v is string => typeof v === 'string');
    return { code: code?.replace(/^.*#/, ''), message };
  } catch {
    return {};
  }
}

/** The hop's error for an STS error answer: its reason, whether to retry, and what to check. */
function stsServiceError(status: number, code: string | undefined, text: string | undefined, hop: number, hopArn: string, sourceArn: string, completed: HopResult[]): AssumeRoleError {
  const quoted = [code, text ? sanitizeServiceText(text) : undefined].filter(Boolean).join(': ') || `HTTP ${status}`;
  const lead = `assumeRole[${hop}] ${hopArn}: STS refused AssumeRole (${quoted})`;
  const mk = (reason: RolesAnywhereErrorReason, retryable: boolean, hint: string) =>
    new AssumeRoleError(`${lead}: ${hint}`, hop, hopArn, completed, { reason, retryable, type: code, status });
  if (status === 429 || /throttl/i.test(code ?? '')) return mk('throttled', true, 'STS is throttling — retrying later');
  if (status >= 500) return mk('server_error', true, 'a service fault, usually temporary — retrying later');
  if (code === 'ExpiredToken' || code === 'InvalidClientTokenId') {
    return mk('access_denied', false, `the credentials of ${sourceArn} were not accepted — check stsEndpoint points at the STS of the same partition`);
  }
  if (code === 'AccessDenied' || status === 403) {
    return mk('access_denied', false, `check that the trust policy of ${hopArn} allows ${sourceArn} to assume it (sts:AssumeRole), with the externalId it requires`);
  }
  if (code === 'RegionDisabledException') return mk('access_denied', false, 'activate STS in this region for the account, or set stsEndpoint');
  if (code === 'ValidationError' || code === 'MalformedPolicyDocument' || status === 400) {
    return mk('validation', false, `check the role ARN, roleSessionName, durationSeconds (at most the role's maximum session duration; 3600 when chaining) and externalId`);
  }
  return mk('client_error', false, 'check the role ARN and its trust policy');
}

/**
 * One AssumeRole call signed by `source`'s credentials. Retries like
 * CreateSession (network, throttling, service faults); a refusal rejects with
 * an AssumeRoleError naming the hop.
 */
export async function assumeRole(
  source: AwsCredentials,
  hop: AssumeRoleHop & { roleSessionName: string },
  index: number,
  completed: HopResult[],
  options: StsOptions,
  signal?: AbortSignal,
): Promise<AwsCredentials> {
  const o = options;
  const endpoint = o.stsEndpoint ? parseEndpoint(o.stsEndpoint, 'stsEndpoint') : new URL(stsEndpointFor(o.region, { fips: o.fips }));
  const url = new URL(endpoint.pathname.replace(/\/*$/, '/'), endpoint);
  const proxy = (o.withProxy ?? true) ? proxyFor(url, o.env ?? process.env) : undefined;
  const tls: TlsOptions = { rejectUnauthorized: !o.noVerifySsl };
  if (o.caBundle) tls.ca = await loadCaBundle(o.caBundle);
  const agent = await makeAgent(url, tls, proxy);
  const form: Record<string, string> = { Action: 'AssumeRole', Version: '2011-06-15', RoleArn: hop.roleArn, RoleSessionName: hop.roleSessionName };
  if (hop.durationSeconds !== undefined) form.DurationSeconds = String(hop.durationSeconds);
  if (hop.externalId !== undefined) form.ExternalId = hop.externalId;
  const body = new URLSearchParams(form).toString();
  const ctx = { endpoint: endpoint.origin, proxy: proxy ? redactProxy(proxy) : undefined, service: 'STS' };
  const now = o.now ?? (() => new Date());
  try {
    return await withRetries(
      o,
      signal,
      async () => {
        const request = {
          host: url.host,
          path: url.pathname,
          method: 'POST',
          service: 'sts',
          region: o.region,
          body,
          headers: { 'Content-Type': 'application/x-www-form-urlencoded; charset=utf-8', 'User-Agent': o.userAgent ?? `rolesanywhere-credentiald/${VERSION}` },
        };
        aws4.sign(request, { accessKeyId: source.accessKeyId, secretAccessKey: source.secretAccessKey, sessionToken: source.sessionToken });
        const res = await httpRequest(url, {
          method: 'POST',
          headers: request.headers as Record<string, string>,
          body,
          agent,
          tls,
          connectTimeoutMs: o.connectTimeoutMs, // undefined: the transport's defaults
          timeoutMs: o.timeoutMs,
          signal,
          maxBodyBytes: MAX_STS_BODY,
        });
        if (res.status >= 200 && res.status < 300) return parseAssumeRoleResponse(res.body, hop.roleArn, now());
        const { code, message } = parseStsError(res.body);
        const error = stsServiceError(res.status, code, message, index, hop.roleArn, source.assumedRoleArn ?? source.roleArn, completed);
        if (error.reason === 'throttled') error.retryAfterMs = retryAfterMs(res);
        throw error;
      },
      (err) => {
        const e = classifyFailure(err, ctx, proxy);
        if (e instanceof AssumeRoleError) return e;
        return new AssumeRoleError(`assumeRole[${index}] ${hop.roleArn}: ${e.message}`, index, hop.roleArn, completed, {
          reason: e.reason,
          retryable: e.retryable,
          type: e.type,
          status: e.status,
          cause: e.cause ?? e,
        });
      },
    );
  } finally {
    agent.destroy();
  }
}

/**
 * The whole chain from the Roles Anywhere credentials: each hop signed by the
 * previous one's credentials. The result is the last hop's credentials,
 * expiring at the earliest expiration in the chain, with each hop described
 * (`chain`, no secrets). A failed hop rejects with its AssumeRoleError.
 */
export async function assumeRoleChain(
  base: AwsCredentials,
  hops: readonly AssumeRoleHop[],
  defaultSessionName: string,
  options: StsOptions,
  signal?: AbortSignal,
): Promise<AwsCredentials> {
  let current = base;
  let earliest = base.expiration;
  const done: HopResult[] = [];
  for (let i = 0; i < hops.length; i++) {
    const hop = hops[i]!;
    if (!checkRoleArn(hop.roleArn).ok) throw new UserError(`assumeRole[${i}].roleArn is not an IAM role ARN`, { reason: 'invalid_arn' });
    const next = await assumeRole(current, { ...hop, roleSessionName: hop.roleSessionName ?? defaultSessionName }, i, [...done], options, signal);
    done.push({ roleArn: next.roleArn, assumedRoleArn: next.assumedRoleArn, expiration: next.expiration });
    if (next.expiration < earliest) earliest = next.expiration;
    current = next;
  }
  const out: AwsCredentials = { ...current, expiration: earliest, chain: done };
  if (base.clockOffsetMs !== undefined) out.clockOffsetMs = base.clockOffsetMs;
  return out;
}
