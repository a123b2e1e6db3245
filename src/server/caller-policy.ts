// Who may call: the `callers: { users, groups }` setting (names or numeric ids)
// resolved against /etc/passwd and /etc/group into the set of allowed uids per
// profile. The default policy allows only the daemon's own user. Enforced by
// callers.ts (callerCheck), which finds the uid behind a connection.
import { readFile } from 'node:fs/promises';
import type { CallersSpec } from '../config/callers.js';
import { UserError } from '../errors.js';

/** The accounts of /etc/passwd and /etc/group that matter here. */
export interface Accounts {
  users: Array<{ name: string; uid: number; gid: number }>;
  groups: Array<{ name: string; gid: number; members: string[] }>;
}

/** Largest /etc/passwd or /etc/group read (a directory server's dump can be large, but not this large). */
const MAX_ACCOUNTS_FILE_BYTES = 16 * 1024 * 1024;

/** Parses /etc/passwd and /etc/group texts (`name:x:uid:gid:…`, `name:x:gid:a,b`). */
export function parseAccounts(passwd: string, group: string): Accounts {
  const users: Accounts['users'] = [];
  for (const line of passwd.split('\n')) {
    const f = line.split(':');
    if (f.length < 4 || line.startsWith('#') || !/^\d+$/.test(f[2]!) || !/^\d+$/.test(f[3]!)) continue;
    users.push({ name: f[0]!, uid: Number(f[2]), gid: Number(f[3]) });
  }
  const groups: Accounts['groups'] = [];
  for (const line of group.split('\n')) {
    const f = line.split(':');
    if (f.length < 3 || line.startsWith('#') || !/^\d+$/.test(f[2]!)) continue;
    groups.push({ name: f[0]!, gid: Number(f[2]), members: (f[3] ?? '').split(',').map((m) => m.trim()).filter(Boolean) });
  }
  return { users, groups };
}

async function readSmall(path: string): Promise<string> {
  try {
    const text = await readFile(path, 'utf8');
    return text.length > MAX_ACCOUNTS_FILE_BYTES ? '' : text;
  } catch {
    return '';
  }
}

/** Reads the local accounts (missing files read as empty). */
export async function readAccounts(passwd = '/etc/passwd', group = '/etc/group'): Promise<Accounts> {
  return parseAccounts(await readSmall(passwd), await readSmall(group));
}

/** Which uids may get credentials, and how to say so in a refusal. */
export class CallerPolicy {
  constructor(
    private readonly uids: ReadonlySet<number>,
    /** Where this policy comes from, for messages: `callers` or `profiles.NAME.callers`. */
    readonly setting: string,
    /** Configured (`callers:` given), not the default (the daemon's own user). */
    readonly explicit = true,
  ) {}

  allows(uid: number): boolean {
    return this.uids.has(uid);
  }

  /** The allowed uids, sorted (for logs and tests). */
  get allowed(): number[] {
    return [...this.uids].sort((a, b) => a - b);
  }
}

function asId(v: string | number): number | undefined {
  if (typeof v === 'number') return Number.isInteger(v) && v >= 0 ? v : undefined;
  return /^\d+$/.test(v.trim()) ? Number(v.trim()) : undefined;
}

/**
 * Resolves a `callers` setting into the set of allowed uids. No setting →
 * the daemon's own user only. A user matches a group when the group is its
 * primary group (/etc/passwd) or lists it as a member (/etc/group). Unknown
 * names are a UserError naming the setting.
 */
export function resolveCallers(spec: CallersSpec | undefined, accounts: Accounts, selfUid: number, setting = 'callers'): CallerPolicy {
  const uids = new Set<number>();
  if (spec === undefined || (spec.users === undefined && spec.groups === undefined)) {
    uids.add(selfUid);
    return new CallerPolicy(uids, setting, false);
  }
  const problems: string[] = [];
  for (const u of spec.users ?? []) {
    const id = asId(u);
    if (id !== undefined) {
      uids.add(id);
      continue;
    }
    const user = accounts.users.find((a) => a.name === u);
    if (user) uids.add(user.uid);
    else problems.push(`${setting}.users: no local user "${String(u)}" in /etc/passwd; use an existing user name or a numeric uid`);
  }
  for (const g of spec.groups ?? []) {
    let gid = asId(g);
    const group = gid === undefined ? accounts.groups.find((a) => a.name === g) : accounts.groups.find((a) => a.gid === gid);
    if (gid === undefined) {
      if (!group) {
        problems.push(`${setting}.groups: no local group "${String(g)}" in /etc/group; use an existing group name or a numeric gid`);
        continue;
      }
      gid = group.gid;
    }
    for (const user of accounts.users) if (user.gid === gid) uids.add(user.uid);
    for (const member of group?.members ?? []) {
      const user = accounts.users.find((a) => a.name === member);
      if (user) uids.add(user.uid);
    }
  }
  if (problems.length > 0) throw new UserError(problems.join('\n'), { reason: 'callers' });
  return new CallerPolicy(uids, setting);
}

/** The name of `uid` in `accounts`, for messages (`uid 65534 (nobody)`). */
export function describeUid(uid: number, accounts: Accounts | undefined): string {
  const name = accounts?.users.find((u) => u.uid === uid)?.name;
  return name ? `uid ${uid} (${name})` : `uid ${uid}`;
}

/** Which uids may have each profile's credentials. */
export interface CallerState {
  policies: ReadonlyMap<string, CallerPolicy>;
  accounts: Accounts;
  /** allowUnidentifiedCallers: serve local callers whose user cannot be looked up (no readable /proc/net/tcp). */
  allowUnidentified: boolean;
}

/** Resolves every profile's `callers` (inherited from the top level) against the local accounts. */
export function callerStateFor(profiles: Record<string, { callers?: CallersSpec }>, accounts: Accounts, selfUid: number, allowUnidentified = false): CallerState {
  const policies = new Map<string, CallerPolicy>();
  const problems: string[] = [];
  for (const [name, p] of Object.entries(profiles)) {
    try {
      policies.set(name, resolveCallers(p.callers, accounts, selfUid, `callers (top level, or profiles.${name}.callers)`));
    } catch (err) {
      problems.push((err as Error).message);
    }
  }
  if (problems.length > 0) throw new UserError(`invalid callers setting: ${problems.join('; ')}`, { reason: 'callers' });
  return { policies, accounts, allowUnidentified };
}

