// The `assumeRole:` setting (a chain of STS AssumeRole hops after
// CreateSession): its validator, a row of the settings table. Run by
// src/rolesanywhere/sts.ts through the credential pipeline.
import { checkRoleArn } from '../rolesanywhere/arn.js';
import { isValidRoleSessionName, MAX_DURATION_SECONDS, MIN_DURATION_SECONDS } from '../rolesanywhere/endpoint.js';
import { EXTERNAL_ID_RE, type AssumeRoleHop } from '../rolesanywhere/sts.js';
import { isPlainObject, show, typeName, unknownKeyMessage, type Problem } from '../problems.js';

/** More hops than this is a mistake (each one is a call on every refresh). */
export const MAX_HOPS = 10;
const HOP_KEYS = ['roleArn', 'externalId', 'roleSessionName', 'durationSeconds'];

/** The problem with a role ARN (for messages), or undefined. */
export function roleArnProblem(value: unknown): string | undefined {
  if (typeof value !== 'string' || value.trim() === '') return `required: the IAM role to assume (arn:aws:iam::<account>:role/<name>), got ${show(value)}`;
  const r = checkRoleArn(value.trim());
  return r.ok ? undefined : `not an IAM role ARN (expected arn:aws:iam::<12-digit account>:role/<name>), got ${show(value)}: ${r.why}`;
}

/** The problem with an ExternalId (for messages), or undefined. */
export function externalIdProblem(value: unknown): string | undefined {
  return typeof value === 'string' && EXTERNAL_ID_RE.test(value) ? undefined : `must be 2-1224 characters of letters, digits and _+=,.@:/- , got ${show(value)}`;
}

/**
 * Validates `assumeRole:`: a list of hops `{ roleArn, externalId?, roleSessionName?,
 * durationSeconds? }` from the config file, or one role ARN (the
 * --assume-role-arn flag or its environment variable).
 */
export function validateAssumeRole(raw: unknown, path: string, problems: Problem[]): AssumeRoleHop[] | undefined {
  if (typeof raw === 'string') {
    const problem = roleArnProblem(raw);
    if (problem) problems.push({ path, message: problem });
    return problem ? undefined : [{ roleArn: raw.trim() }];
  }
  if (!Array.isArray(raw)) {
    problems.push({ path, message: `expected a list of roles to assume in turn ([{ roleArn: arn:aws:iam::<account>:role/<name>, externalId: … }]), got ${typeName(raw)}` });
    return undefined;
  }
  if (raw.length > MAX_HOPS) {
    problems.push({ path, message: `has ${raw.length} roles; chain at most ${MAX_HOPS}` });
    return undefined;
  }
  const before = problems.length;
  const out: AssumeRoleHop[] = [];
  raw.forEach((item: unknown, i) => {
    const at = `${path}[${i}]`;
    if (!isPlainObject(item)) {
      problems.push({ path: at, message: `expected a mapping { roleArn: …, externalId: …, roleSessionName: …, durationSeconds: … }, got ${typeName(item)}` });
      return;
    }
    for (const key of Object.keys(item)) if (!HOP_KEYS.includes(key)) problems.push({ path: `${at}.${key}`, message: unknownKeyMessage(key, HOP_KEYS) });
    const hop: AssumeRoleHop = { roleArn: '' };
    const arnProblem = roleArnProblem(item.roleArn);
    if (arnProblem) problems.push({ path: `${at}.roleArn`, message: arnProblem });
    else hop.roleArn = (item.roleArn as string).trim();
    if (item.externalId !== undefined && item.externalId !== null) {
      const p = externalIdProblem(item.externalId);
      if (p) problems.push({ path: `${at}.externalId`, message: p });
      else hop.externalId = item.externalId as string;
    }
    if (item.roleSessionName !== undefined && item.roleSessionName !== null) {
      const n = item.roleSessionName;
      if (typeof n === 'string' && isValidRoleSessionName(n)) hop.roleSessionName = n;
      else problems.push({ path: `${at}.roleSessionName`, message: `must be 2-64 characters of letters, digits and _+=,.@- , got ${show(n)}` });
    }
    if (item.durationSeconds !== undefined && item.durationSeconds !== null) {
      const d = item.durationSeconds;
      if (typeof d === 'number' && Number.isInteger(d) && d >= MIN_DURATION_SECONDS && d <= MAX_DURATION_SECONDS) hop.durationSeconds = d;
      else problems.push({ path: `${at}.durationSeconds`, message: `must be a whole number of seconds from ${MIN_DURATION_SECONDS} to ${MAX_DURATION_SECONDS}, got ${show(d)}` });
    }
    out.push(hop);
  });
  return problems.length > before ? undefined : out;
}
