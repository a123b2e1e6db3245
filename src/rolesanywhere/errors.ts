import { UserError } from '../errors.js';

/**
 * Short labels for metrics and tests. `retryable` says whether sending the
 * same request again soon may succeed (network trouble, throttling, service
 * faults), as opposed to something a person must fix first.
 */
export type RolesAnywhereErrorReason =
  | 'access_denied'
  | 'validation'
  | 'not_found'
  | 'throttled'
  | 'server_error'
  | 'client_error'
  | 'network'
  | 'dns'
  | 'timeout'
  | 'malformed_response'
  | 'tls'
  | 'proxy';

export interface RolesAnywhereErrorInit {
  reason: RolesAnywhereErrorReason;
  retryable: boolean;
  /** Service error type, e.g. AccessDeniedException. */
  type?: string;
  /** HTTP status, when the service answered. */
  status?: number;
  cause?: unknown;
}

export class RolesAnywhereError extends UserError {
  override readonly reason: RolesAnywhereErrorReason;
  readonly type?: string;
  readonly status?: number;
  readonly retryable: boolean;
  /** A throttling answer's Retry-After: wait at least this long before the next attempt. */
  retryAfterMs?: number;

  constructor(message: string, init: RolesAnywhereErrorInit) {
    super(message, { reason: init.reason, cause: init.cause });
    this.name = 'RolesAnywhereError';
    this.reason = init.reason;
    this.type = init.type;
    this.status = init.status;
    this.retryable = init.retryable;
  }
}

/** What the message builder may mention (never secrets). */
export interface ErrorContext {
  endpoint: string;
  region: string;
  trustAnchorArn: string;
  profileArn: string;
  roleArn: string;
  /** Leaf certificate issuer and subject, one-line. */
  certIssuer?: string;
  certSubject?: string;
  certNotBefore?: string;
  certNotAfter?: string;
  /** Number of intermediates sent. */
  chainLength?: number;
  /** Whether a proxy was used, and which (credentials stripped). */
  proxy?: string;
  /** The service named in messages (default "Roles Anywhere"). */
  service?: string;
}

/** One line, printable, bounded: the service's text is quoted into our messages. */
export function sanitizeServiceText(text: string, max = 300): string {
  // eslint-disable-next-line no-control-regex
  const clean = text.replace(/[\u0000-\u001f\u007f]+/g, ' ').replace(/\s+/g, ' ').trim();
  return clean.length > max ? `${clean.slice(0, max - 3)}...` : clean;
}

/** `AccessDeniedException:http://…` or `com.amazon…#AccessDeniedException` → `AccessDeniedException`. */
export function normalizeErrorType(raw: string | undefined): string | undefined {
  if (!raw) return undefined;
  let t = raw.split(':')[0]!;
  if (t.includes('#')) t = t.slice(t.lastIndexOf('#') + 1);
  t = t.trim();
  return /^[A-Za-z0-9_.]{1,100}$/.test(t) ? t : undefined;
}

const STATUS_TEXT: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
};

/** Builds the error for a non-2xx answer from the service. */
export function serviceError(status: number, rawType: string | undefined, rawMessage: string | undefined, ctx: ErrorContext): RolesAnywhereError {
  const type = normalizeErrorType(rawType);
  const text = rawMessage ? sanitizeServiceText(rawMessage) : '';
  const quoted = type ? (text ? `${type}: ${text}` : type) : text ? `HTTP ${status}: ${text}` : `HTTP ${status}${STATUS_TEXT[status] ? ` ${STATUS_TEXT[status]}` : ''}`;
  const lower = `${type ?? ''} ${text}`.toLowerCase();
  const mk = (reason: RolesAnywhereErrorReason, retryable: boolean, message: string) =>
    new RolesAnywhereError(message, { reason, retryable, type, status });

  if (status === 429 || /throttl|toomanyrequests|rate exceeded/.test(lower)) {
    return mk('throttled', true, `Roles Anywhere throttled the request (${quoted}): CreateSession is rate-limited per account — retry later and avoid calling it more often than needed`);
  }
  if (status >= 500) {
    return mk('server_error', true, `Roles Anywhere had a service fault at ${ctx.endpoint} (${quoted}): this is usually temporary — retry later`);
  }
  if (type === 'AccessDeniedException' || status === 403 || status === 401) {
    if (/untrusted signing certificate|untrusted certificate|not trusted|trust anchor.*(certificate|chain)|chain/.test(lower)) {
      const issuer = ctx.certIssuer ? ` — its issuer is ${ctx.certIssuer}` : '';
      const chainHint = ctx.chainLength
        ? `${ctx.chainLength} intermediate certificate(s) were sent; check they lead to the trust anchor's CA`
        : 'no intermediates were sent — if the issuer is an intermediate CA, pass it with --intermediates';
      return mk(
        'access_denied',
        false,
        `Roles Anywhere refused the certificate (${quoted}): the certificate must chain to the trust anchor's CA${issuer}; ` +
          `check the trust anchor's CA bundle (${ctx.trustAnchorArn}) — ${chainHint}`,
      );
    }
    if (/expired|not yet valid|notbefore|notafter|validity/.test(lower) && /cert/.test(lower)) {
      const validity = ctx.certNotAfter ? ` (valid ${ctx.certNotBefore ?? '?'} to ${ctx.certNotAfter})` : '';
      return mk('access_denied', false, `Roles Anywhere refused the certificate as outside its validity period (${quoted})${validity}: renew the certificate, and check the system clock`);
    }
    if (/scoped to a valid region|credential should be scoped|wrong region/.test(lower)) {
      return mk('access_denied', false, `Roles Anywhere rejected the request's region (${quoted}): the request was signed for ${ctx.region} — check --region and --endpoint point at the trust anchor's region`);
    }
    if (/end-entity|basicconstraints|key ?usage|signature algorithm|sha-?1|key size|too large|larger than/.test(lower)) {
      return mk(
        'access_denied',
        false,
        `Roles Anywhere rejected the certificate (${quoted}): it must be an end-entity certificate (CA:FALSE) with digitalSignature key usage, signed with SHA-256 or stronger — run \`rolesanywhere-credentiald check\` with the same flags for details`,
      );
    }
    if (/signature expired|skew|clock|request time|date.*(too|differ)|time.*(too|differ)|x-amz-date/.test(lower)) {
      return mk('access_denied', false, `Roles Anywhere rejected the request time (${quoted}): the request's X-Amz-Date is too far from the service's clock — check the system clock (enable NTP)`);
    }
    if (/signature/.test(lower)) {
      return mk(
        'access_denied',
        false,
        `Roles Anywhere could not verify the request signature (${quoted}): check that --private-key is the key of --certificate and that nothing between us and the service (a proxy) rewrites the request`,
      );
    }
    if (/role|assume|profile|not authorized|session polic/.test(lower)) {
      return mk(
        'access_denied',
        false,
        `Roles Anywhere would not issue credentials for the role (${quoted}): check that ${ctx.roleArn} is listed in the profile ${ctx.profileArn}, ` +
          'that the profile and trust anchor are enabled, and that the role\'s trust policy allows rolesanywhere.amazonaws.com (with any conditions on the certificate)',
      );
    }
    if (/disabled|not enabled/.test(lower)) {
      return mk('access_denied', false, `Roles Anywhere denied the request (${quoted}): enable the trust anchor ${ctx.trustAnchorArn} and the profile ${ctx.profileArn}`);
    }
    return mk(
      'access_denied',
      false,
      `Roles Anywhere denied the request (${quoted}): check that the certificate chains to the trust anchor, the trust anchor and profile are enabled, ` +
        `and the role ${ctx.roleArn} is in the profile and trusts rolesanywhere.amazonaws.com`,
    );
  }
  if (type === 'ResourceNotFoundException' || status === 404) {
    const which = /trust.?anchor/.test(lower)
      ? `the trust anchor ${ctx.trustAnchorArn}`
      : /profile/.test(lower)
        ? `the profile ${ctx.profileArn}`
        : /role/.test(lower)
          ? `the role ${ctx.roleArn}`
          : `the trust anchor ${ctx.trustAnchorArn} or the profile ${ctx.profileArn}`;
    return mk('not_found', false, `Roles Anywhere could not find a resource in ${ctx.region} (${quoted}): check that ${which} exists in that region and account, and the ARN is spelled right`);
  }
  if (type === 'ValidationException' || status === 400 || status === 422) {
    const hint = /duration/.test(lower)
      ? 'check --session-duration (900..43200 seconds, and not above the profile\'s maximum session duration)'
      : /session ?name/.test(lower)
        ? 'check --role-session-name'
        : 'check the ARNs, --session-duration and --role-session-name';
    return mk('validation', false, `Roles Anywhere rejected the request as invalid (${quoted}): ${hint}`);
  }
  return mk('client_error', false, `Roles Anywhere refused the request (${quoted}): check the flags and the certificate`);
}

const TLS_CODES = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'CERT_SIGNATURE_FAILURE',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'ERR_TLS_HANDSHAKE_TIMEOUT',
  'HOSTNAME_MISMATCH',
]);

const NETWORK_TEXT: Record<string, string> = {
  ECONNREFUSED: 'connection refused',
  ECONNRESET: 'connection reset',
  EPIPE: 'connection closed while sending',
  ETIMEDOUT: 'connection timed out',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  ENETDOWN: 'network down',
  EAI_AGAIN: 'temporary DNS failure',
  ENOTFOUND: 'host name not found',
  ECONNABORTED: 'connection aborted',
  UND_ERR_SOCKET: 'socket error',
};

/** Maps a transport failure (no HTTP answer) to an actionable error. */
export function transportError(err: unknown, ctx: Pick<ErrorContext, 'endpoint' | 'proxy' | 'service'>): RolesAnywhereError {
  if (err instanceof RolesAnywhereError) return err;
  const e = err as NodeJS.ErrnoException & { code?: string };
  const code = typeof e?.code === 'string' ? e.code : '';
  const msg = sanitizeServiceText(e instanceof Error ? e.message : String(err), 200);
  const via = ctx.proxy ? ` via proxy ${ctx.proxy}` : '';
  if (TLS_CODES.has(code) || code.startsWith('ERR_SSL') || code.startsWith('ERR_TLS') || /certificate|ssl|tls/i.test(code)) {
    return new RolesAnywhereError(
      `TLS verification of ${ctx.endpoint}${via} failed (${code}: ${msg}): if the endpoint or a TLS-intercepting proxy uses a private CA, ` +
        'pass that CA with --ca-bundle FILE',
      { reason: 'tls', retryable: false, cause: err },
    );
  }
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN' || code === 'EAI_FAIL' || code === 'EAI_NONAME') {
    const host = (e as { hostname?: string }).hostname ?? new URL(ctx.endpoint).hostname;
    return new RolesAnywhereError(
      `cannot resolve ${host} (${code}: ${NETWORK_TEXT[code] ?? 'DNS failure'}): check --endpoint/--region and DNS; ` +
        (ctx.proxy ? 'check the proxy host name in HTTPS_PROXY' : 'if this network needs a proxy, set HTTPS_PROXY'),
      { reason: 'dns', retryable: true, cause: err },
    );
  }
  const what = NETWORK_TEXT[code] ?? (msg || 'network error');
  return new RolesAnywhereError(
    `cannot reach ${ctx.service ?? 'Roles Anywhere'} at ${ctx.endpoint}${via} (${code ? `${code}: ` : ''}${what}): check network access to the endpoint` +
      (ctx.proxy ? ' and the proxy' : ', and set HTTPS_PROXY if this network needs a proxy'),
    { reason: 'network', retryable: true, cause: err },
  );
}
