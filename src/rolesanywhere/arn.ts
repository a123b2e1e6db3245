import { UserError } from '../errors.js';

/** Partitions Roles Anywhere runs in. */
export const PARTITIONS = ['aws', 'aws-cn', 'aws-us-gov'] as const;
export type Partition = (typeof PARTITIONS)[number];

/** e.g. us-east-1, eu-central-2, cn-north-1, us-gov-west-1, ap-southeast-5 */
const REGION_RE = /^[a-z]{2}(?:-[a-z]+)+-\d{1,2}$/;
const ACCOUNT_RE = /^\d{12}$/;
/**
 * Trust anchor / profile IDs. Real ones are UUIDs, but examples and tests use
 * short placeholders, so the rule is the broader one config always accepted.
 */
const ID_RE = /^[A-Za-z0-9-]+$/;
/** IAM role path + name: path segments and a name of [\w+=,.@-], name 1..64. */
const ROLE_RESOURCE_RE = /^role\/(?:[\w+=,.@-]+\/)*[\w+=,.@-]{1,64}$/;

export interface RolesAnywhereArn {
  partition: Partition;
  region: string;
  accountId: string;
  kind: 'trust-anchor' | 'profile';
  id: string;
  arn: string;
}

export interface RoleArn {
  partition: Partition;
  accountId: string;
  /** Role name without its path. */
  name: string;
  arn: string;
}

export function isValidRegion(region: string): boolean {
  return REGION_RE.test(region);
}

/** The partition a region belongs to. */
export function partitionOfRegion(region: string): Partition {
  if (region.startsWith('cn-')) return 'aws-cn';
  if (region.startsWith('us-gov-')) return 'aws-us-gov';
  return 'aws';
}

/** Throws a UserError naming the flag when `region` is not a region name. */
export function assertRegion(region: string, label = '--region'): string {
  if (!isValidRegion(region)) {
    throw new UserError(`${label} "${clip(region)}" is not an AWS region name: use a region such as us-east-1`, {
      reason: 'invalid_region',
    });
  }
  return region;
}

function clip(value: string): string {
  const oneLine = value.replace(/[\r\n\t]/g, ' ');
  return oneLine.length > 120 ? `${oneLine.slice(0, 117)}...` : oneLine;
}

/** Splits an ARN into its six fields and checks the partition; a reason string when it is not one. */
function splitArn(value: string): { partition: Partition; service: string; region: string; account: string; resource: string } | string {
  const parts = value.split(':');
  if (parts.length !== 6 || parts[0] !== 'arn') return 'not an ARN';
  const [, partition, service, region, account, resource] = parts as [string, string, string, string, string, string];
  if (!(PARTITIONS as readonly string[]).includes(partition)) return `unknown partition "${partition}"`;
  return { partition: partition as Partition, service, region, account, resource };
}

/** What is wrong with an ARN: `why` for messages; `otherKind` when it is the other Roles Anywhere kind. */
export interface ArnProblem {
  why: string;
  otherKind?: RolesAnywhereArn['kind'];
}

export type ArnCheck<T> = { ok: true; arn: T } | ({ ok: false } & ArnProblem);

/**
 * The one rule for trust anchor and profile ARNs (used by the client and by
 * config validation, which word their messages differently).
 */
export function checkRolesAnywhereArn(value: string, kind: RolesAnywhereArn['kind']): ArnCheck<RolesAnywhereArn> {
  const fail = (why: string, otherKind?: RolesAnywhereArn['kind']): ArnCheck<RolesAnywhereArn> =>
    otherKind ? { ok: false, why, otherKind } : { ok: false, why };
  const fields = splitArn(value);
  if (typeof fields === 'string') return fail(fields);
  const { partition, service, region, account, resource } = fields;
  if (service !== 'rolesanywhere') {
    return fail(service === 'iam' ? 'this is an IAM ARN — did you swap the role and profile flags?' : `service is "${service}", not rolesanywhere`);
  }
  if (!isValidRegion(region)) return fail(`bad region "${region}"`);
  if (partitionOfRegion(region) !== partition) return fail(`region ${region} is not in partition ${partition}`);
  if (!ACCOUNT_RE.test(account)) return fail('the account ID must be 12 digits');
  const slash = resource.indexOf('/');
  const type = slash < 0 ? resource : resource.slice(0, slash);
  const id = slash < 0 ? '' : resource.slice(slash + 1);
  if (type !== kind) {
    return type === 'trust-anchor' || type === 'profile'
      ? fail(`this is a ${type} ARN — check which flag it was given to`, type)
      : fail(`resource type "${type}" is not ${kind}`);
  }
  if (!ID_RE.test(id)) return fail('the ID must be letters, digits and dashes (Roles Anywhere IDs are UUIDs)');
  return { ok: true, arn: { partition, region, accountId: account, kind, id, arn: value } };
}

function parseRolesAnywhereArn(value: string, kind: RolesAnywhereArn['kind'], label: string): RolesAnywhereArn {
  const r = checkRolesAnywhereArn(value, kind);
  if (r.ok) return r.arn;
  throw new UserError(`${label} "${clip(value)}" is not a Roles Anywhere ${kind} ARN (${r.why}): expected arn:aws:rolesanywhere:<region>:<account-id>:${kind}/<id>`, {
    reason: 'invalid_arn',
  });
}

export function parseTrustAnchorArn(value: string, label = '--trust-anchor-arn'): RolesAnywhereArn {
  return parseRolesAnywhereArn(value, 'trust-anchor', label);
}

export function parseProfileArn(value: string, label = '--profile-arn'): RolesAnywhereArn {
  return parseRolesAnywhereArn(value, 'profile', label);
}

/** The one rule for IAM role ARNs. */
export function checkRoleArn(value: string): ArnCheck<RoleArn> {
  const fail = (why: string): ArnCheck<RoleArn> => ({ ok: false, why });
  const fields = splitArn(value);
  if (typeof fields === 'string') return fail(fields);
  const { partition, service, region, account, resource } = fields;
  if (service !== 'iam') {
    return fail(service === 'rolesanywhere' ? 'this is a Roles Anywhere ARN — did you swap the role and profile flags?' : `service is "${service}", not iam`);
  }
  if (region !== '') return fail('IAM ARNs have no region');
  if (!ACCOUNT_RE.test(account)) return fail('the account ID must be 12 digits');
  if (!ROLE_RESOURCE_RE.test(resource)) return fail('the resource must be role/<optional path/>name');
  const name = resource.slice(resource.lastIndexOf('/') + 1);
  return { ok: true, arn: { partition, accountId: account, name, arn: value } };
}

export function parseRoleArn(value: string, label = '--role-arn'): RoleArn {
  const r = checkRoleArn(value);
  if (r.ok) return r.arn;
  throw new UserError(`${label} "${clip(value)}" is not an IAM role ARN (${r.why}): expected arn:aws:iam::<account-id>:role/<name>`, {
    reason: 'invalid_arn',
  });
}
