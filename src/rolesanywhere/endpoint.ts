import { UserError } from '../errors.js';
import { isLoopbackHostname } from '../net/loopback.js';
import type { SessionParameters } from './types.js';
import { assertRegion, parseProfileArn, parseRoleArn, parseTrustAnchorArn, partitionOfRegion } from './arn.js';

export const MIN_DURATION_SECONDS = 900;
export const MAX_DURATION_SECONDS = 43200;
const ROLE_SESSION_NAME_RE = /^[\w+=,.@-]{2,64}$/;

/** The role session name rule: 2 to 64 of letters, digits and _+=,.@- (as STS requires). */
export function isValidRoleSessionName(name: string): boolean {
  return ROLE_SESSION_NAME_RE.test(name);
}

/**
 * The region to call: `region` when given, else the trust anchor ARN's.
 * A trust anchor and a profile in different regions can never work together,
 * so that is reported here, before any request.
 */
export function resolveRegion(trustAnchorArn: string, profileArn: string, region?: string): string {
  const ta = parseTrustAnchorArn(trustAnchorArn);
  const profile = parseProfileArn(profileArn);
  if (ta.region !== profile.region) {
    throw new UserError(
      `the trust anchor is in ${ta.region} but the profile is in ${profile.region}: ` +
        'Roles Anywhere needs both in the same region — use a trust anchor and profile from one region',
      { reason: 'region_mismatch' },
    );
  }
  if (ta.accountId !== profile.accountId) {
    throw new UserError(
      `the trust anchor belongs to account ${ta.accountId} but the profile to account ${profile.accountId}: ` +
        'use a trust anchor and profile from the same account',
      { reason: 'account_mismatch' },
    );
  }
  if (region === undefined || region === '') return ta.region;
  assertRegion(region);
  if (region !== ta.region) {
    throw new UserError(
      `--region ${region} differs from the trust anchor's region ${ta.region}: ` +
        'Roles Anywhere resources are regional — drop --region or use the ARNs of that region',
      { reason: 'region_mismatch' },
    );
  }
  return region;
}

/** Checks every session parameter; returns the region to call. Throws UserError naming the bad flag. */
export function validateSessionParameters(params: SessionParameters, region?: string): string {
  const resolved = resolveRegion(params.trustAnchorArn, params.profileArn, region);
  const role = parseRoleArn(params.roleArn);
  if (role.partition !== partitionOfRegion(resolved)) {
    throw new UserError(`--role-arn is in partition ${role.partition} but the trust anchor is in ${partitionOfRegion(resolved)}: use a role from the same partition`, {
      reason: 'invalid_arn',
    });
  }
  const d = params.durationSeconds;
  if (d !== undefined && (!Number.isInteger(d) || d < MIN_DURATION_SECONDS || d > MAX_DURATION_SECONDS)) {
    throw new UserError(`--session-duration ${d} is out of range: give whole seconds from ${MIN_DURATION_SECONDS} to ${MAX_DURATION_SECONDS}`, {
      reason: 'invalid_duration',
    });
  }
  const n = params.roleSessionName;
  if (n !== undefined && !isValidRoleSessionName(n)) {
    throw new UserError('--role-session-name must be 2 to 64 characters of letters, digits and +=,.@_-', {
      reason: 'invalid_session_name',
    });
  }
  return resolved;
}

/**
 * Regions with FIPS endpoints (botocore 1.43 endpoints.json, the `fips` variants):
 * Roles Anywhere has rolesanywhere-fips.<region> only in these; STS has
 * sts-fips.<region> in the four US commercial regions, and in GovCloud its
 * regular endpoint is the FIPS one. No other region (Canada included) has either.
 */
export const FIPS_REGIONS = {
  rolesanywhere: ['us-east-1', 'us-east-2', 'us-west-1', 'us-west-2', 'us-gov-east-1', 'us-gov-west-1'],
  sts: ['us-east-1', 'us-east-2', 'us-west-1', 'us-west-2', 'us-gov-east-1', 'us-gov-west-1'],
} as const;

/** Why `service` has no FIPS endpoint in `region` (a message naming the fix), or undefined when it has one. */
export function fipsProblem(service: keyof typeof FIPS_REGIONS, region: string): string | undefined {
  const regions: readonly string[] = FIPS_REGIONS[service];
  if (regions.includes(region)) return undefined;
  const name = service === 'sts' ? 'STS' : 'Roles Anywhere';
  const override = service === 'sts' ? 'stsEndpoint (--sts-endpoint)' : 'endpoint (--endpoint)';
  return `${name} has no FIPS endpoint in ${region} (it has one in ${regions.join(', ')}): drop fips (--fips), use one of those regions, or name an endpoint with ${override}`;
}

function dnsSuffix(region: string): string {
  return region.startsWith('cn-') ? 'amazonaws.com.cn' : 'amazonaws.com';
}

/** The public Roles Anywhere endpoint of a region (FIPS: only where it exists, else a UserError). */
export function endpointFor(region: string, options: { fips?: boolean } = {}): string {
  assertRegion(region);
  if (options.fips) {
    const problem = fipsProblem('rolesanywhere', region);
    if (problem) throw new UserError(problem, { reason: 'no_fips_endpoint' });
  }
  const service = options.fips ? 'rolesanywhere-fips' : 'rolesanywhere';
  return `https://${service}.${region}.${dnsSuffix(region)}`;
}

/** The regional STS endpoint (FIPS: sts-fips.<region>, GovCloud's regular one; elsewhere a UserError). */
export function stsEndpointFor(region: string, options: { fips?: boolean } = {}): string {
  assertRegion(region);
  if (options.fips) {
    const problem = fipsProblem('sts', region);
    if (problem) throw new UserError(problem, { reason: 'no_fips_endpoint' });
    if (!region.startsWith('us-gov-')) return `https://sts-fips.${region}.amazonaws.com`;
  }
  return `https://sts.${region}.${dnsSuffix(region)}`;
}

/**
 * The endpoint override rules, in one place (the settings check of `endpoint`
 * uses them too): `https://` anything; `http://` only for a loopback host,
 * because the request carries a signed proof of the certificate and the
 * response carries secrets. A problem comes without the flag or key name, for
 * the caller to put in front.
 */
export function checkEndpointUrl(value: string): { url: URL } | { problem: string; reason: 'invalid_endpoint' | 'insecure_endpoint' } {
  const url = URL.parse(value);
  if (!url) {
    // Whatever comes before an @ may be a user:password part: never echo it.
    const at = value.lastIndexOf('@');
    const shown = at < 0 ? value : `…@${value.slice(at + 1)}`;
    return {
      problem: `"${shown.slice(0, 200)}" is not a URL: give e.g. https://rolesanywhere.us-east-1.amazonaws.com`,
      reason: 'invalid_endpoint',
    };
  }
  if (url.username || url.password) {
    return { problem: 'must not contain a user name or password: remove the user:password@ part', reason: 'invalid_endpoint' };
  }
  if (url.search || url.hash) {
    return { problem: 'must not contain a query string or fragment: give only scheme, host, port and optional path', reason: 'invalid_endpoint' };
  }
  if (url.protocol === 'https:') return { url };
  if (url.protocol === 'http:') {
    if (isLoopbackHostname(url.hostname)) return { url };
    return {
      problem:
        `plain http is allowed only for loopback hosts (127.0.0.1, [::1], localhost): ${url.origin} is plain http to a host ` +
        'that is not loopback, and the response carries AWS secret keys — use https://',
      reason: 'insecure_endpoint',
    };
  }
  return { problem: `unsupported scheme ${url.protocol.replace(/:$/, '')}: the endpoint must be an https:// URL`, reason: 'invalid_endpoint' };
}

/** Validates an endpoint override (see checkEndpointUrl); throws a UserError led by `label`. */
export function parseEndpoint(value: string, label = '--endpoint'): URL {
  const r = checkEndpointUrl(value);
  if ('problem' in r) throw new UserError(`${label}: ${r.problem}`, { reason: r.reason });
  return r.url;
}
