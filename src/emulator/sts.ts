// STS GetCallerIdentity and AssumeRole stand-in. GetCallerIdentity proves which credentials a client used and
// that they were valid (ordinary SigV4 HMAC, the issued secret, the matching
// session token, not expired). Real clients (@aws-sdk/client-sts, botocore,
// AWS CLI v1 and v2) send the query protocol: form POST
// `Action=GetCallerIdentity&Version=2011-06-15`, XML answer. The JSON
// protocol (`X-Amz-Target: AWSSecurityTokenServiceV20110615.GetCallerIdentity`)
// is also accepted.
import { verifyHmacRequest } from '../signing/verify.js';
import { headerValue, type Answer, type ReceivedRequest } from './http.js';
import {
  isoSeconds,
  newAccessKeyId,
  newSecretAccessKey,
  newSessionToken,
  rememberIssued,
  requestId,
  roleIdFor,
  type CallRecord,
  type EmulatorState,
  type IssuedCredential,
} from './state.js';

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


const ROLE_ARN = /^arn:(aws|aws-cn|aws-us-gov):iam::(\d{12}):role\/((?:[\w+=,.@-]+\/)*)([\w+=,.@-]{1,64})$/;
const SESSION_NAME = /^[\w+=,.@-]{2,64}$/;
const EXTERNAL_ID = /^[\w+=,.@:/-]{2,1224}$/;

/** The action of an STS request (query Action or JSON target); undefined when none. */
export function stsAction(req: ReceivedRequest): string | undefined {
  const target = headerValue(req, 'x-amz-target');
  if (target?.startsWith(STS_TARGET_PREFIX)) return target.slice(STS_TARGET_PREFIX.length);
  return stsForm(req).get('Action') ?? undefined;
}

function stsForm(req: ReceivedRequest): URLSearchParams {
  return new URLSearchParams(req.method === 'GET' ? (req.url.split('?')[1] ?? '') : req.body.toString());
}

/** GetCallerIdentity or AssumeRole: the request verified as STS does, answered in its protocol. */
export function handleSts(state: EmulatorState, req: ReceivedRequest): StsResult {
  const target = headerValue(req, 'x-amz-target');
  const protocol: Protocol = target?.startsWith(STS_TARGET_PREFIX) ? 'json' : 'query';
  const refuse = (status: number, code: string, message: string, reason: string, accessKeyId?: string): StsResult => ({
    answer: stsError(protocol, status, code, message),
    call: { outcome: code, reason, message, accessKeyId },
  });

  const form = stsForm(req);
  const action = stsAction(req);
  if (protocol === 'query' && action && form.get('Version') !== '2011-06-15') return refuse(400, 'InvalidParameterValue', `Version must be 2011-06-15`, 'bad_version');
  if (action !== 'GetCallerIdentity' && !(action === 'AssumeRole' && protocol === 'query')) {
    return refuse(400, 'InvalidAction', `Could not find operation ${String(action).slice(0, 60)} for version 2011-06-15 (this emulator supports GetCallerIdentity, and AssumeRole over the query protocol)`, 'unsupported_action');
  }

  const v = verifyHmacRequest(req, (id) => state.byAccessKey.get(id), state.now(), state.policy.maxSkewSeconds * 1000);
  if (!v.ok) return refuse(v.status, v.code, v.message, v.reason, v.accessKeyId);
  const caller = state.byAccessKey.get(v.accessKeyId)!;
  const rid = requestId();
  if (action === 'AssumeRole') return assumeRole(state, form, caller, refuse);

  const answer: Answer =
    protocol === 'json'
      ? {
          status: 200,
          headers: { 'Content-Type': 'application/x-amz-json-1.0', 'X-Amzn-RequestId': rid },
          body: JSON.stringify({ UserId: caller.assumedRoleId, Account: caller.accountId, Arn: caller.assumedRoleArn }),
        }
      : {
          status: 200,
          headers: { 'Content-Type': 'text/xml', 'x-amzn-RequestId': rid },
          body:
            `<GetCallerIdentityResponse xmlns="${XMLNS}">\n  <GetCallerIdentityResult>\n` +
            `    <Arn>${xmlEscape(caller.assumedRoleArn)}</Arn>\n    <UserId>${xmlEscape(caller.assumedRoleId)}</UserId>\n` +
            `    <Account>${caller.accountId}</Account>\n  </GetCallerIdentityResult>\n` +
            `  <ResponseMetadata>\n    <RequestId>${rid}</RequestId>\n  </ResponseMetadata>\n</GetCallerIdentityResponse>\n`,
        };
  return { answer, call: { outcome: 'ok', accessKeyId: v.accessKeyId } };
}

/**
 * AssumeRole signed by credentials the emulator issued: the parameters checked
 * like STS does; a role it was told about (assumableRoles) must be named with
 * its ExternalId; when it was told about any, other roles are refused.
 * Credentials are issued in the role's account.
 */
function assumeRole(
  state: EmulatorState,
  form: URLSearchParams,
  caller: IssuedCredential,
  refuse: (status: number, code: string, message: string, reason: string, accessKeyId?: string) => StsResult,
): StsResult {
  const roleArn = form.get('RoleArn') ?? '';
  const sessionName = form.get('RoleSessionName') ?? '';
  const externalId = form.get('ExternalId');
  const durationText = form.get('DurationSeconds');
  const errors: string[] = [];
  const roleM = ROLE_ARN.exec(roleArn);
  if (!roleM) errors.push(`Value '${roleArn.slice(0, 200)}' at 'roleArn' failed to satisfy constraint: Member must be an IAM role ARN`);
  if (!SESSION_NAME.test(sessionName)) errors.push(`Value '${sessionName.slice(0, 64)}' at 'roleSessionName' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]{2,64}`);
  if (externalId !== null && !EXTERNAL_ID.test(externalId)) errors.push("Value at 'externalId' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\w+=,.@:\\/-]{2,1224}");
  let duration = 3600;
  if (durationText !== null) {
    const d = /^\d+$/.test(durationText) ? Number(durationText) : NaN;
    if (!(d >= 900 && d <= 43200)) errors.push(`Value '${durationText.slice(0, 20)}' at 'durationSeconds' failed to satisfy constraint: Member must have value between 900 and 43200`);
    else duration = d;
  }
  if (errors.length > 0) {
    return refuse(400, 'ValidationError', `${errors.length} validation error${errors.length > 1 ? 's' : ''} detected: ${errors.join('; ')}`, 'invalid_parameters', caller.accessKeyId);
  }
  const denied = `User: ${caller.assumedRoleArn} is not authorized to perform: sts:AssumeRole on resource: ${roleArn}`;
  const known = state.policy.assumableRoles;
  const target = known?.find((r) => r.roleArn === roleArn);
  if (known && known.length > 0 && !target) return refuse(403, 'AccessDenied', denied, 'role_not_assumable', caller.accessKeyId);
  if (target?.externalId !== undefined && externalId !== target.externalId) {
    return refuse(403, 'AccessDenied', denied, externalId === null ? 'missing_external_id' : 'wrong_external_id', caller.accessKeyId);
  }
  const now = state.now();
  const lifetime = Math.min(duration, state.lifetimeSeconds);
  const accountId = roleM![2]!;
  const assumedRoleId = `${roleIdFor(roleArn)}:${sessionName}`;
  const issued: IssuedCredential = {
    accessKeyId: newAccessKeyId(),
    secretAccessKey: newSecretAccessKey(),
    sessionToken: newSessionToken(),
    expiration: new Date(Math.floor((now.getTime() + lifetime * 1000) / 1000) * 1000),
    issuedAt: now,
    roleArn,
    accountId,
    assumedRoleArn: `arn:${roleM![1]}:sts::${accountId}:assumed-role/${roleM![4]}/${sessionName}`,
    assumedRoleId,
    roleSessionName: sessionName,
    trustAnchorArn: caller.trustAnchorArn,
    profileArn: caller.profileArn,
    serial: caller.serial,
    sourceIdentity: caller.sourceIdentity,
  };
  rememberIssued(state, issued);
  const rid = requestId();
  return {
    answer: {
      status: 200,
      headers: { 'Content-Type': 'text/xml', 'x-amzn-RequestId': rid },
      body:
        `<AssumeRoleResponse xmlns="${XMLNS}">\n  <AssumeRoleResult>\n    <AssumedRoleUser>\n` +
        `      <AssumedRoleId>${xmlEscape(assumedRoleId)}</AssumedRoleId>\n      <Arn>${xmlEscape(issued.assumedRoleArn)}</Arn>\n    </AssumedRoleUser>\n` +
        `    <Credentials>\n      <AccessKeyId>${issued.accessKeyId}</AccessKeyId>\n      <SecretAccessKey>${xmlEscape(issued.secretAccessKey)}</SecretAccessKey>\n` +
        `      <SessionToken>${xmlEscape(issued.sessionToken)}</SessionToken>\n      <Expiration>${isoSeconds(issued.expiration)}</Expiration>\n    </Credentials>\n` +
        `  </AssumeRoleResult>\n  <ResponseMetadata>\n    <RequestId>${rid}</RequestId>\n  </ResponseMetadata>\n</AssumeRoleResponse>\n`,
    },
    call: { outcome: 'ok', accessKeyId: issued.accessKeyId },
  };
}
