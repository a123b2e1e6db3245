// STS GetCallerIdentity stand-in: proves which credentials a client used and
// that they were valid (ordinary SigV4 HMAC, the issued secret, the matching
// session token, not expired). Real clients (@aws-sdk/client-sts, botocore,
// AWS CLI v1 and v2) send the query protocol: form POST
// `Action=GetCallerIdentity&Version=2011-06-15`, XML answer. The JSON
// protocol (`X-Amz-Target: AWSSecurityTokenServiceV20110615.GetCallerIdentity`)
// is also accepted.
import aws4 from 'aws4';
import { timingSafeEqual } from 'node:crypto';
import { formatAmzDate, parseAmzDate, sha256Hex } from '../signing/canonical.js';
import { headerValue, type Answer, type ReceivedRequest } from './http.js';
import { requestId, type CallRecord, type EmulatorState } from './state.js';

const XMLNS = 'https://sts.amazonaws.com/doc/2011-06-15/';
export const STS_TARGET_PREFIX = 'AWSSecurityTokenServiceV20110615.';

export interface StsResult {
  answer: Answer;
  call: Omit<CallRecord, 'time' | 'operation'>;
}

type Protocol = 'query' | 'json';

function xmlEscape(s: string): string {
  return s.replace(/[<>&'"]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', "'": '&apos;', '"': '&quot;' })[c]!);
}

export function stsError(protocol: Protocol, status: number, code: string, message: string): Answer {
  const rid = requestId();
  if (protocol === 'json') {
    return {
      status,
      headers: { 'Content-Type': 'application/x-amz-json-1.0', 'X-Amzn-RequestId': rid, 'X-Amzn-ErrorType': code, 'x-amzn-query-error': `${code};Sender` },
      body: JSON.stringify({ __type: `com.amazonaws.sts#${code}`, message }),
    };
  }
  const type = status >= 500 ? 'Receiver' : 'Sender';
  return {
    status,
    headers: { 'Content-Type': 'text/xml', 'x-amzn-RequestId': rid },
    body:
      `<ErrorResponse xmlns="${XMLNS}">\n  <Error>\n    <Type>${type}</Type>\n    <Code>${xmlEscape(code)}</Code>\n` +
      `    <Message>${xmlEscape(message)}</Message>\n  </Error>\n  <RequestId>${rid}</RequestId>\n</ErrorResponse>\n`,
  };
}

/** Is this request meant for STS (query Action or JSON target)? */
export function isStsRequest(req: ReceivedRequest): boolean {
  const target = headerValue(req, 'x-amz-target');
  if (target?.startsWith(STS_TARGET_PREFIX)) return true;
  const path = req.url.split('?')[0];
  if (path !== '/') return false;
  return /(?:^|&)Action=/.test(req.url.split('?')[1] ?? '') || /(?:^|&)Action=/.test(req.body.toString());
}

const AUTH_RE = /^AWS4-HMAC-SHA256\s+Credential\s*=\s*([^,\s]+)\s*,\s*SignedHeaders\s*=\s*([^,\s]+)\s*,\s*Signature\s*=\s*([0-9a-f]{64})\s*$/;

export function getCallerIdentity(state: EmulatorState, req: ReceivedRequest): StsResult {
  const target = headerValue(req, 'x-amz-target');
  const protocol: Protocol = target?.startsWith(STS_TARGET_PREFIX) ? 'json' : 'query';
  const refuse = (status: number, code: string, message: string, reason: string, accessKeyId?: string): StsResult => ({
    answer: stsError(protocol, status, code, message),
    call: { outcome: code, reason, message, accessKeyId },
  });

  let action: string | null;
  if (protocol === 'json') action = target!.slice(STS_TARGET_PREFIX.length);
  else {
    const form = new URLSearchParams(req.method === 'GET' ? (req.url.split('?')[1] ?? '') : req.body.toString());
    action = form.get('Action');
    const version = form.get('Version');
    if (action && version !== '2011-06-15') return refuse(400, 'InvalidParameterValue', `Version must be 2011-06-15`, 'bad_version');
  }
  if (action !== 'GetCallerIdentity') {
    return refuse(400, 'InvalidAction', `Could not find operation ${String(action).slice(0, 60)} for version 2011-06-15 (this emulator supports only GetCallerIdentity)`, 'unsupported_action');
  }

  const auth = headerValue(req, 'authorization');
  if (!auth) return refuse(403, 'MissingAuthenticationToken', 'Request is missing Authentication Token', 'missing_authorization');
  const m = AUTH_RE.exec(auth.trim());
  const cred = m?.[1]!.split('/');
  if (!m || !cred || cred.length !== 5 || cred[4] !== 'aws4_request') {
    return refuse(400, 'IncompleteSignature', 'Authorization header requires Credential, SignedHeaders and Signature in AWS4-HMAC-SHA256 format', 'malformed_authorization');
  }
  const [accessKeyId, scopeDate, region, service] = cred as [string, string, string, string, string];
  const issued = state.byAccessKey.get(accessKeyId);
  if (!issued) return refuse(403, 'InvalidClientTokenId', 'The security token included in the request is invalid.', 'unknown_access_key', accessKeyId);
  const token = headerValue(req, 'x-amz-security-token');
  if (token === undefined || token.length !== issued.sessionToken.length || !timingSafeEqual(Buffer.from(token), Buffer.from(issued.sessionToken))) {
    return refuse(403, 'InvalidClientTokenId', 'The security token included in the request is invalid.', token === undefined ? 'missing_session_token' : 'wrong_session_token', accessKeyId);
  }
  const now = state.now();
  if (now.getTime() >= issued.expiration.getTime()) {
    return refuse(400, 'ExpiredToken', 'The security token included in the request is expired', 'expired', accessKeyId);
  }

  const signedHeaders = m[2]!.split(';');
  if (!signedHeaders.includes('host') || !signedHeaders.includes('x-amz-date')) {
    return refuse(400, 'IncompleteSignature', 'host and x-amz-date must be signed', 'header_not_signed', accessKeyId);
  }
  const values: Record<string, string> = {};
  for (const h of signedHeaders) {
    const val = headerValue(req, h);
    if (val === undefined) return refuse(400, 'IncompleteSignature', `signed header ${h} is missing`, 'signed_header_absent', accessKeyId);
    values[h] = val;
  }
  const amzDate = values['x-amz-date']!.trim();
  const date = parseAmzDate(amzDate);
  if (!date || amzDate.slice(0, 8) !== scopeDate) {
    return refuse(400, 'IncompleteSignature', 'X-Amz-Date must be YYYYMMDDTHHMMSSZ and match the credential scope date', 'malformed_date', accessKeyId);
  }
  const skew = state.policy.maxSkewSeconds * 1000;
  if (Math.abs(now.getTime() - date.getTime()) > skew) {
    return refuse(
      403,
      'SignatureDoesNotMatch',
      `Signature expired: ${amzDate} is now earlier than ${formatAmzDate(new Date(now.getTime() - skew))} (${formatAmzDate(now)} - 5 min.)`,
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

  const rid = requestId();
  const answer: Answer =
    protocol === 'json'
      ? {
          status: 200,
          headers: { 'Content-Type': 'application/x-amz-json-1.0', 'X-Amzn-RequestId': rid },
          body: JSON.stringify({ UserId: issued.assumedRoleId, Account: issued.accountId, Arn: issued.assumedRoleArn }),
        }
      : {
          status: 200,
          headers: { 'Content-Type': 'text/xml', 'x-amzn-RequestId': rid },
          body:
            `<GetCallerIdentityResponse xmlns="${XMLNS}">\n  <GetCallerIdentityResult>\n` +
            `    <Arn>${xmlEscape(issued.assumedRoleArn)}</Arn>\n    <UserId>${xmlEscape(issued.assumedRoleId)}</UserId>\n` +
            `    <Account>${issued.accountId}</Account>\n  </GetCallerIdentityResult>\n` +
            `  <ResponseMetadata>\n    <RequestId>${rid}</RequestId>\n  </ResponseMetadata>\n</GetCallerIdentityResponse>\n`,
        };
  return { answer, call: { outcome: 'ok', accessKeyId } };
}
