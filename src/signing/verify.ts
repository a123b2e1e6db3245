// Verifies a SigV4-X509 signed Roles Anywhere request the way the service
// does: rebuild the canonical request from what was RECEIVED (method, raw path
// and query, the listed signed headers, the raw body), then check the
// signature with the leaf certificate's public key. See PROTOCOLS.md §1.
import { serialDecimal as serialDecimalOf } from '../identity/serial.js';
import aws4 from 'aws4';
import { timingSafeEqual, verify as cryptoVerify, X509Certificate } from 'node:crypto';
import { keyAlgorithmOfKey, SIGNING_ALGORITHMS, type KeyAlgorithm, type SigningAlgorithm } from '../identity/signer.js';
import { canonicalParts, formatAmzDate, parseAmzDate, SERVICE, sha256Hex, stringToSign } from './canonical.js';

/** Algorithm name → the key algorithm it needs (the inverse of the signer's table). */
export const X509_ALGORITHMS = Object.fromEntries(Object.entries(SIGNING_ALGORITHMS).map(([k, a]) => [a, k])) as Record<SigningAlgorithm, KeyAlgorithm>;
export type X509Algorithm = SigningAlgorithm;

/** Why a request failed verification (stable strings: used in stats and tests). */
export type VerifyFailureReason =
  | 'missing_authorization'
  | 'malformed_authorization'
  | 'unsupported_algorithm'
  | 'missing_header'
  | 'malformed_date'
  | 'malformed_certificate'
  | 'unsupported_key'
  | 'algorithm_key_mismatch'
  | 'header_not_signed'
  | 'signed_header_absent'
  | 'wrong_service'
  | 'serial_mismatch'
  | 'scope_date_mismatch'
  | 'body_hash_mismatch'
  | 'bad_signature';

export interface ParsedX509Authorization {
  algorithm: X509Algorithm;
  /** Serial number as sent (decimal). */
  serial: string;
  /** `YYYYMMDD` */
  scopeDate: string;
  region: string;
  service: string;
  /** `<date>/<region>/<service>/aws4_request` */
  scope: string;
  /** Lowercase header names in the order sent. */
  signedHeaders: string[];
  /** Hex as sent. */
  signature: string;
}

/** A request as the server received it. */
export interface ReceivedRequest {
  method: string;
  /** Raw request target: path plus query string, exactly as received. */
  url: string;
  /** Header names lowercased (as node:http gives them). */
  headers: Record<string, string | string[] | undefined>;
  /** Raw body bytes. */
  body: Buffer | string;
}

export type VerifyResult =
  | {
      ok: true;
      authorization: ParsedX509Authorization;
      certificate: X509Certificate;
      /** Intermediates from X-Amz-X509-Chain, in the order sent. */
      chain: X509Certificate[];
      /** Leaf serial in decimal. */
      serialDecimal: string;
      /** The X-Amz-Date value. */
      amzDate: Date;
      /** Region from the credential scope. */
      region: string;
    }
  | {
      ok: false;
      reason: VerifyFailureReason;
      /** One line naming the problem; never contains secrets. */
      message: string;
      /** What was parsed before the failure (for logs: serial, region). */
      authorization?: ParsedX509Authorization;
      certificate?: X509Certificate;
    };

type Failure = Extract<VerifyResult, { ok: false }>;

function fail(reason: VerifyFailureReason, message: string, extra: Partial<Failure> = {}): Failure {
  return { ok: false, reason, message, ...extra };
}

const AUTH_RE =
  /^(AWS4-X509-(?:RSA-SHA256|ECDSA-SHA256|MLDSA))\s+Credential\s*=\s*([^,\s]+)\s*,\s*SignedHeaders\s*=\s*([^,\s]+)\s*,\s*Signature\s*=\s*([0-9a-fA-F]+)\s*$/;

/** Parses an X.509 SigV4 Authorization header; a string is the failure message. */
export function parseX509Authorization(value: string): ParsedX509Authorization | { reason: VerifyFailureReason; message: string } {
  const algo = value.trim().split(/\s+/, 1)[0] ?? '';
  if (!Object.hasOwn(X509_ALGORITHMS, algo)) {
    return {
      reason: 'unsupported_algorithm',
      message: `Authorization algorithm "${algo.slice(0, 40)}" is not supported; expected AWS4-X509-RSA-SHA256, AWS4-X509-ECDSA-SHA256 or AWS4-X509-MLDSA`,
    };
  }
  const m = AUTH_RE.exec(value.trim());
  if (!m) {
    return {
      reason: 'malformed_authorization',
      message: 'Authorization header is malformed; expected "<algorithm> Credential=<serial>/<date>/<region>/rolesanywhere/aws4_request, SignedHeaders=<h1;h2>, Signature=<hex>"',
    };
  }
  const cred = m[2]!.split('/');
  if (cred.length !== 5 || cred.some((p) => p === '') || cred[4] !== 'aws4_request' || !/^\d{8}$/.test(cred[1]!) || !/^-?\d+$/.test(cred[0]!)) {
    return {
      reason: 'malformed_authorization',
      message: 'Authorization Credential is malformed; expected <serial in decimal>/<YYYYMMDD>/<region>/rolesanywhere/aws4_request',
    };
  }
  const signedHeaders = m[3]!.split(';');
  if (signedHeaders.some((h) => h === '' || h !== h.toLowerCase())) {
    return { reason: 'malformed_authorization', message: 'Authorization SignedHeaders must be lowercase header names separated by ";"' };
  }
  if (m[4]!.length % 2 !== 0) {
    return { reason: 'malformed_authorization', message: 'Authorization Signature is not valid hex' };
  }
  return {
    algorithm: m[1] as X509Algorithm,
    serial: cred[0]!,
    scopeDate: cred[1]!,
    region: cred[2]!,
    service: cred[3]!,
    scope: cred.slice(1).join('/'),
    signedHeaders,
    signature: m[4]!,
  };
}

function header(req: ReceivedRequest, name: string): string | undefined {
  const v = req.headers[name];
  if (v === undefined) return undefined;
  return Array.isArray(v) ? v.join(',') : v;
}

/**
 * Parses standard base64 DER (with its padding, nothing around it) into a
 * certificate; undefined when it is not one. Strict like the service, so a
 * client that pads wrongly or joins the chain with ", " is caught here.
 */
export function parseBase64Certificate(b64: string): X509Certificate | undefined {
  const text = b64;
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(text) || text.length % 4 !== 0) return undefined;
  try {
    return new X509Certificate(Buffer.from(text, 'base64'));
  } catch {
    return undefined;
  }
}

/** The serial number of a certificate in decimal. */

const REQUIRED_SIGNED = ['content-type', 'host', 'x-amz-date', 'x-amz-x509'];

/**
 * Verifies a received Roles Anywhere request. Does NOT check trust (the chain
 * to a CA), validity periods, clock skew or the region: those are the
 * caller's policy (see src/emulator/).
 */
export function verifyX509Request(req: ReceivedRequest): VerifyResult {
  const authValue = header(req, 'authorization');
  if (!authValue) return fail('missing_authorization', 'Authorization header is missing');
  const parsed = parseX509Authorization(authValue);
  if ('reason' in parsed) return fail(parsed.reason, parsed.message);
  const authorization = parsed;

  const x509 = header(req, 'x-amz-x509');
  if (!x509) return fail('missing_header', 'X-Amz-X509 header is missing; it must carry the base64 DER of the signing certificate', { authorization });
  const certificate = parseBase64Certificate(x509);
  if (!certificate) return fail('malformed_certificate', 'X-Amz-X509 is not a base64-encoded DER X.509 certificate', { authorization });

  const chainValue = header(req, 'x-amz-x509-chain');
  const chain: X509Certificate[] = [];
  if (chainValue !== undefined) {
    const parts = chainValue.split(',');
    for (let i = 0; i < parts.length; i++) {
      const c = parseBase64Certificate(parts[i]!);
      if (!c) {
        return fail('malformed_certificate', `X-Amz-X509-Chain entry ${i + 1} is not a base64-encoded DER X.509 certificate (entries are separated by "," with no spaces)`, {
          authorization,
          certificate,
        });
      }
      chain.push(c);
    }
  }

  const keyType = certificate.publicKey.asymmetricKeyType;
  const keyAlg = keyAlgorithmOfKey(certificate.publicKey);
  if (!keyAlg) {
    return fail('unsupported_key', `signing certificate has a ${keyType ?? 'unknown'} key; only RSA, EC and ML-DSA keys are supported`, { authorization, certificate });
  }
  if (X509_ALGORITHMS[authorization.algorithm] !== keyAlg) {
    return fail('algorithm_key_mismatch', `Authorization algorithm ${authorization.algorithm} does not match the certificate's ${keyAlg} key`, {
      authorization,
      certificate,
    });
  }

  const required = chainValue !== undefined ? [...REQUIRED_SIGNED, 'x-amz-x509-chain'] : REQUIRED_SIGNED;
  for (const h of required) {
    if (!authorization.signedHeaders.includes(h)) {
      return fail('header_not_signed', `header ${h} must be signed (listed in SignedHeaders)`, { authorization, certificate });
    }
  }
  const signedValues: Record<string, string> = {};
  for (const h of authorization.signedHeaders) {
    const v = header(req, h);
    if (v === undefined) return fail('signed_header_absent', `signed header ${h} is not present in the request`, { authorization, certificate });
    signedValues[h] = v;
  }

  if (authorization.service !== SERVICE) {
    return fail('wrong_service', `credential scope service is "${authorization.service.slice(0, 40)}"; expected "${SERVICE}"`, { authorization, certificate });
  }
  const serialDecimal = serialDecimalOf(certificate);
  if (authorization.serial !== serialDecimal) {
    return fail('serial_mismatch', `Credential serial ${authorization.serial.slice(0, 60)} does not match the certificate's serial number ${serialDecimal} (it must be the decimal serial)`, {
      authorization,
      certificate,
    });
  }
  const amzDateValue = signedValues['x-amz-date']!;
  const amzDate = parseAmzDate(amzDateValue.trim());
  if (!amzDate) return fail('malformed_date', 'X-Amz-Date is malformed; expected YYYYMMDDTHHMMSSZ in UTC', { authorization, certificate });
  if (amzDateValue.trim().slice(0, 8) !== authorization.scopeDate) {
    return fail('scope_date_mismatch', `credential scope date ${authorization.scopeDate} does not match the X-Amz-Date date ${amzDateValue.trim().slice(0, 8)}`, {
      authorization,
      certificate,
    });
  }
  const body = typeof req.body === 'string' ? Buffer.from(req.body, 'utf8') : req.body;
  const contentSha = signedValues['x-amz-content-sha256'];
  if (contentSha !== undefined && contentSha.trim().toLowerCase() !== sha256Hex(body)) {
    return fail('body_hash_mismatch', 'X-Amz-Content-Sha256 does not match the request body', { authorization, certificate });
  }

  const parts = canonicalParts({
    method: req.method,
    path: req.url,
    headers: signedValues,
    // aws4 hashes a Buffer as-is: the RAW received body, whatever its encoding.
    body: body as unknown as string,
    region: authorization.region,
    service: authorization.service,
    amzDate: amzDateValue.trim(),
  });
  if (parts.signedHeaders !== authorization.signedHeaders.join(';')) {
    return fail('malformed_authorization', 'Authorization SignedHeaders must be sorted and must not list unsignable headers (authorization, user-agent, ...)', {
      authorization,
      certificate,
    });
  }
  const toSign = stringToSign(authorization.algorithm, amzDateValue.trim(), parts.scope, parts.canonicalRequest);
  let good = false;
  try {
    // ML-DSA: pure, empty context, over the string to sign itself (PROTOCOLS.md §5); the others over its SHA-256.
    const digest = keyAlg === 'ML-DSA' ? null : 'sha256';
    good = cryptoVerify(digest, Buffer.from(toSign, 'utf8'), certificate.publicKey, Buffer.from(authorization.signature, 'hex'));
  } catch {
    good = false;
  }
  if (!good) return fail('bad_signature', 'Invalid signature: the signature does not match the request and the certificate\'s public key', { authorization, certificate });
  return { ok: true, authorization, certificate, chain, serialDecimal, amzDate, region: authorization.region };
}

// ---- ordinary SigV4 (HMAC) with temporary credentials ----

/** A secret the verifier knows: what an access key id was issued with. */
export interface HmacSecret {
  secretAccessKey: string;
  sessionToken: string;
  expiration: Date;
}

/** Why an HMAC-signed request was refused: the AWS error to answer (status, code, message) and a stable reason. */
export interface HmacFailure {
  ok: false;
  status: number;
  code: string;
  message: string;
  reason: string;
  accessKeyId?: string;
}

const HMAC_AUTH_RE = /^AWS4-HMAC-SHA256\s+Credential\s*=\s*([^,\s]+)\s*,\s*SignedHeaders\s*=\s*([^,\s]+)\s*,\s*Signature\s*=\s*([0-9a-f]{64})\s*$/;

/**
 * Verifies an ordinary SigV4 (AWS4-HMAC-SHA256) request made with temporary
 * credentials the caller issued (`lookup`): the session token, expiry, clock
 * skew, body hash, and the signature recomputed with aws4 from what was
 * received. Answers like STS does.
 */
export function verifyHmacRequest(
  req: ReceivedRequest,
  lookup: (accessKeyId: string) => HmacSecret | undefined,
  now: Date,
  maxSkewMs: number,
): { ok: true; accessKeyId: string; region: string; service: string } | HmacFailure {
  const refuse = (status: number, code: string, message: string, reason: string, accessKeyId?: string): HmacFailure => ({ ok: false, status, code, message, reason, accessKeyId });
  const auth = header(req, 'authorization');
  if (!auth) return refuse(403, 'MissingAuthenticationToken', 'Request is missing Authentication Token', 'missing_authorization');
  const m = HMAC_AUTH_RE.exec(auth.trim());
  const cred = m?.[1]!.split('/');
  if (!m || !cred || cred.length !== 5 || cred[4] !== 'aws4_request') {
    return refuse(400, 'IncompleteSignature', 'Authorization header requires Credential, SignedHeaders and Signature in AWS4-HMAC-SHA256 format', 'malformed_authorization');
  }
  const [accessKeyId, scopeDate, region, service] = cred as [string, string, string, string, string];
  const issued = lookup(accessKeyId);
  if (!issued) return refuse(403, 'InvalidClientTokenId', 'The security token included in the request is invalid.', 'unknown_access_key', accessKeyId);
  const token = header(req, 'x-amz-security-token');
  if (token === undefined || token.length !== issued.sessionToken.length || !timingSafeEqual(Buffer.from(token), Buffer.from(issued.sessionToken))) {
    return refuse(403, 'InvalidClientTokenId', 'The security token included in the request is invalid.', token === undefined ? 'missing_session_token' : 'wrong_session_token', accessKeyId);
  }
  if (now.getTime() >= issued.expiration.getTime()) {
    return refuse(400, 'ExpiredToken', 'The security token included in the request is expired', 'expired', accessKeyId);
  }
  const signedHeaders = m[2]!.split(';');
  if (!signedHeaders.includes('host') || !signedHeaders.includes('x-amz-date')) {
    return refuse(400, 'IncompleteSignature', 'host and x-amz-date must be signed', 'header_not_signed', accessKeyId);
  }
  const values: Record<string, string> = {};
  for (const h of signedHeaders) {
    const val = header(req, h);
    if (val === undefined) return refuse(400, 'IncompleteSignature', `signed header ${h} is missing`, 'signed_header_absent', accessKeyId);
    values[h] = val;
  }
  const amzDate = values['x-amz-date']!.trim();
  const date = parseAmzDate(amzDate);
  if (!date || amzDate.slice(0, 8) !== scopeDate) {
    return refuse(400, 'IncompleteSignature', 'X-Amz-Date must be YYYYMMDDTHHMMSSZ and match the credential scope date', 'malformed_date', accessKeyId);
  }
  if (Math.abs(now.getTime() - date.getTime()) > maxSkewMs) {
    return refuse(
      403,
      'SignatureDoesNotMatch',
      `Signature expired: ${amzDate} is now earlier than ${formatAmzDate(new Date(now.getTime() - maxSkewMs))} (${formatAmzDate(now)} - 5 min.)`,
      'clock_skew',
      accessKeyId,
    );
  }
  const body = typeof req.body === 'string' ? Buffer.from(req.body) : req.body;
  const contentSha = values['x-amz-content-sha256'];
  if (contentSha !== undefined && contentSha.trim() !== sha256Hex(body) && contentSha.trim() !== 'UNSIGNED-PAYLOAD') {
    return refuse(400, 'XAmzContentSHA256Mismatch', 'The provided x-amz-content-sha256 header does not match what was computed.', 'body_hash_mismatch', accessKeyId);
  }
  const include: Record<string, boolean> = {};
  for (const h of signedHeaders) include[h] = true;
  const signer = new aws4.RequestSigner(
    {
      method: req.method,
      path: req.url,
      headers: values,
      body: body as unknown as string,
      service,
      region,
      host: values.host,
      doNotModifyHeaders: true,
      extraHeadersToInclude: include,
    } as aws4.Request,
    { accessKeyId, secretAccessKey: issued.secretAccessKey, sessionToken: issued.sessionToken },
  ) as aws4.RequestSigner & { datetime: string; signature(): string; signedHeaders(): string };
  signer.datetime = amzDate;
  const expected = signer.signature();
  if (signer.signedHeaders() !== signedHeaders.join(';') || !timingSafeEqual(Buffer.from(expected), Buffer.from(m[3]!))) {
    return refuse(
      403,
      'SignatureDoesNotMatch',
      'The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.',
      'bad_signature',
      accessKeyId,
    );
  }
  return { ok: true, accessKeyId, region, service };
}
