// Roles Anywhere CreateSession, checked the way the service checks it.
import { formatAmzDate } from '../signing/canonical.js';
import { verifyX509Request, type VerifyFailureReason } from '../signing/verify.js';
import { verifyChain } from './chain.js';
import type { FaultRule } from './faults.js';
import { headerValue, json, restJsonError, type Answer, type ReceivedRequest } from './http.js';
import {
  isoSeconds,
  newAccessKeyId,
  newSecretAccessKey,
  newSessionToken,
  rememberIssued,
  roleIdFor,
  stableUuid,
  type CallRecord,
  type EmulatorState,
  type IssuedCredential,
} from './state.js';

export const UUID_RE = /^[a-f0-9]{8}-[a-f0-9]{4}-[a-f0-9]{4}-[a-f0-9]{4}-[a-f0-9]{12}$/;
const PARTITION = '(aws|aws-cn|aws-us-gov|aws-iso|aws-iso-b)';
const TRUST_ANCHOR_ARN = new RegExp(`^arn:${PARTITION}:rolesanywhere:([a-z0-9-]+):(\\d{12}):trust-anchor/([a-f0-9-]{36})$`);
const PROFILE_ARN = new RegExp(`^arn:${PARTITION}:rolesanywhere:([a-z0-9-]+):(\\d{12}):profile/([a-f0-9-]{36})$`);
const ROLE_ARN = new RegExp(`^arn:${PARTITION}:iam::(\\d{12}):role/((?:[\\w+=,.@-]+/)*)([\\w+=,.@-]{1,64})$`);
const SESSION_NAME = /^[\w+=,.@-]{2,64}$/;
const MAX_CERT_BYTES = 16 * 1024;
/** Issued credentials remembered (for STS and `issued`); the oldest are forgotten beyond this. */

export interface CreateSessionResult {
  answer: Answer;
  call: Omit<CallRecord, 'time' | 'operation'>;
}

function refuse(status: number, type: string, message: string, reason: string, serial?: string): CreateSessionResult {
  return { answer: restJsonError(status, type, message), call: { outcome: type, reason, message, serial } };
}

const VERIFY_STATUS: Partial<Record<VerifyFailureReason, [number, string]>> = {
  missing_authorization: [403, 'AccessDeniedException'],
  unsupported_algorithm: [403, 'AccessDeniedException'],
};

function paramsFrom(req: ReceivedRequest): { params: Record<string, unknown>; error?: string } {
  const query = new URL(req.url, 'http://x').searchParams;
  const params: Record<string, unknown> = {};
  for (const k of ['trustAnchorArn', 'profileArn', 'roleArn', 'roleSessionName', 'durationSeconds']) {
    const v = query.get(k);
    if (v !== null) params[k] = k === 'durationSeconds' && /^\d+$/.test(v) ? Number(v) : v;
  }
  const text = req.body.toString();
  if (text.trim() === '') return { params };
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return { params, error: 'Request body is not valid JSON' };
  }
  if (!body || typeof body !== 'object' || Array.isArray(body)) return { params, error: 'Request body must be a JSON object' };
  for (const [k, v] of Object.entries(body)) if (v !== undefined && v !== null) params[k] = v;
  return { params };
}

/**
 * Handles POST /sessions. `fault` is a terminal fault the caller already
 * decided on (`empty-set` / `expiration` need the request processed first).
 */
export function createSession(state: EmulatorState, req: ReceivedRequest, fault?: FaultRule): CreateSessionResult {
  const now = state.now();
  const { policy } = state;

  const x509 = headerValue(req, 'x-amz-x509');
  if (x509 && Buffer.byteLength(x509) > Math.ceil((MAX_CERT_BYTES * 4) / 3) + 4) {
    return refuse(400, 'ValidationException', 'Signing certificate is larger than 16 KB', 'certificate_too_large');
  }

  const v = verifyX509Request(req);
  if (!v.ok) {
    const [status, type] = VERIFY_STATUS[v.reason] ?? [403, 'AccessDeniedException'];
    const message = v.reason === 'bad_signature' ? 'Invalid signature' : v.message;
    return refuse(status, type, message, v.reason, v.authorization?.serial);
  }
  const serial = v.serialDecimal;

  const chain = verifyChain(v.certificate, v.chain, policy.anchors, now);
  if (!chain.ok) {
    const message =
      chain.reason === 'expired' && chain.message.startsWith('Signing')
        ? `Signing certificate expired: ${chain.message}`
        : chain.message;
    return refuse(403, 'AccessDeniedException', message, chain.reason, serial);
  }

  const skewMs = now.getTime() - v.amzDate.getTime();
  if (Math.abs(skewMs) > policy.maxSkewSeconds * 1000) {
    const limit = Math.round(policy.maxSkewSeconds / 60);
    const message =
      skewMs > 0
        ? `Signature expired: ${formatAmzDate(v.amzDate)} is now earlier than ${formatAmzDate(new Date(now.getTime() - policy.maxSkewSeconds * 1000))} (${formatAmzDate(now)} - ${limit} min.); check the clock (clock skew over ${limit} minutes)`
        : `Signature not yet current: ${formatAmzDate(v.amzDate)} is still later than ${formatAmzDate(new Date(now.getTime() + policy.maxSkewSeconds * 1000))} (${formatAmzDate(now)} + ${limit} min.); check the clock (clock skew over ${limit} minutes)`;
    return refuse(403, 'AccessDeniedException', message, 'clock_skew', serial);
  }

  if (policy.region && v.region !== policy.region) {
    return refuse(403, 'AccessDeniedException', `Credential should be scoped to a valid region: this endpoint is ${policy.region}, the signature is scoped to ${v.region}`, 'region_mismatch', serial);
  }

  const { params, error } = paramsFrom(req);
  if (error) return refuse(400, 'ValidationException', error, 'bad_body', serial);
  const errors: string[] = [];
  const str = (k: string): string | undefined => (typeof params[k] === 'string' ? (params[k] as string) : undefined);
  const ta = str('trustAnchorArn');
  const profile = str('profileArn');
  const role = str('roleArn');
  const taM = ta ? TRUST_ANCHOR_ARN.exec(ta) : null;
  const profM = profile ? PROFILE_ARN.exec(profile) : null;
  const roleM = role ? ROLE_ARN.exec(role) : null;
  if (!ta) errors.push("Value null at 'trustAnchorArn' failed to satisfy constraint: Member must not be null");
  else if (!taM) errors.push(`Value '${ta.slice(0, 200)}' at 'trustAnchorArn' failed to satisfy constraint: Member must be a trust anchor ARN (arn:aws:rolesanywhere:<region>:<account>:trust-anchor/<uuid>)`);
  if (!profile) errors.push("Value null at 'profileArn' failed to satisfy constraint: Member must not be null");
  else if (!profM) errors.push(`Value '${profile.slice(0, 200)}' at 'profileArn' failed to satisfy constraint: Member must be a profile ARN (arn:aws:rolesanywhere:<region>:<account>:profile/<uuid>)`);
  if (!role) errors.push("Value null at 'roleArn' failed to satisfy constraint: Member must not be null");
  else if (!roleM) errors.push(`Value '${role.slice(0, 200)}' at 'roleArn' failed to satisfy constraint: Member must be an IAM role ARN (arn:aws:iam::<account>:role/<name>)`);
  let duration = 3600;
  if (params.durationSeconds !== undefined) {
    const d = params.durationSeconds;
    if (typeof d !== 'number' || !Number.isInteger(d)) errors.push(`Value '${String(d).slice(0, 40)}' at 'durationSeconds' failed to satisfy constraint: Member must be an integer`);
    else if (d < 900) errors.push(`Value '${d}' at 'durationSeconds' failed to satisfy constraint: Member must have value greater than or equal to 900`);
    else if (d > 43200) errors.push(`Value '${d}' at 'durationSeconds' failed to satisfy constraint: Member must have value less than or equal to 43200`);
    else duration = d;
  }
  const sessionName = str('roleSessionName');
  if (params.roleSessionName !== undefined && (!sessionName || !SESSION_NAME.test(sessionName))) {
    errors.push("Value at 'roleSessionName' failed to satisfy constraint: Member must be 2..64 characters of [A-Za-z0-9+=,.@_-]");
  }
  if (errors.length > 0) {
    return refuse(400, 'ValidationException', `${errors.length} validation error${errors.length > 1 ? 's' : ''} detected: ${errors.join('; ')}`, 'invalid_parameters', serial);
  }
  const taRegion = taM![2]!;
  const profRegion = profM![2]!;
  if (taRegion !== v.region || profRegion !== v.region) {
    return refuse(
      400,
      'ValidationException',
      `Region mismatch: the request is signed for ${v.region}, the trust anchor is in ${taRegion} and the profile is in ${profRegion}; they must all match`,
      'region_mismatch',
      serial,
    );
  }
  if (policy.trustAnchorArns && !policy.trustAnchorArns.includes(ta!)) {
    return refuse(404, 'ResourceNotFoundException', `Trust anchor ${ta} not found`, 'unknown_trust_anchor', serial);
  }
  if (policy.profileArns && !policy.profileArns.includes(profile!)) {
    return refuse(404, 'ResourceNotFoundException', `Profile ${profile} not found`, 'unknown_profile', serial);
  }
  if (policy.roleArns && !policy.roleArns.includes(role!)) {
    return refuse(403, 'AccessDeniedException', `Role ${role} is not one of the profile's roles`, 'role_not_in_profile', serial);
  }

  const subjectCn = /(?:^|\n)CN=([^\n]*)/.exec(v.certificate.subject)?.[1] ?? '';
  const subjectArn = `arn:${taM![1]}:rolesanywhere:${v.region}:${taM![3]}:subject/${stableUuid(ta!, v.certificate.subject)}`;

  if (fault?.kind === 'empty-set') {
    return { answer: json(201, { credentialSet: [], subjectArn }), call: { outcome: 'fault:empty-set', serial } };
  }

  const accountId = roleM![2]!;
  const roleName = roleM![4]!;
  const roleSessionName = sessionName ?? serial;
  const assumedRoleId = `${roleIdFor(role!)}:${roleSessionName}`;
  const assumedRoleArn = `arn:${roleM![1]}:sts::${accountId}:assumed-role/${roleName}/${roleSessionName}`;
  const lifetime = fault?.kind === 'expiration' ? fault.seconds : Math.min(duration, state.lifetimeSeconds);
  const expiration = new Date(Math.floor((now.getTime() + lifetime * 1000) / 1000) * 1000);
  const issued: IssuedCredential = {
    accessKeyId: newAccessKeyId(),
    secretAccessKey: newSecretAccessKey(),
    sessionToken: newSessionToken(),
    expiration,
    issuedAt: now,
    roleArn: role!,
    accountId,
    assumedRoleArn,
    assumedRoleId,
    roleSessionName,
    trustAnchorArn: ta!,
    profileArn: profile!,
    serial,
    sourceIdentity: subjectCn,
  };
  rememberIssued(state, issued);

  return {
    answer: json(201, {
      credentialSet: [
        {
          assumedRoleUser: { arn: assumedRoleArn, assumedRoleId },
          credentials: {
            accessKeyId: issued.accessKeyId,
            expiration: isoSeconds(expiration),
            secretAccessKey: issued.secretAccessKey,
            sessionToken: issued.sessionToken,
          },
          packedPolicySize: 0,
          roleArn: role,
          sourceIdentity: subjectCn,
        },
      ],
      subjectArn,
    }),
    call: { outcome: 'ok', serial, accessKeyId: issued.accessKeyId },
  };
}
