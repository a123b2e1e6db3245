// The `callers:` setting (who may have a profile's credentials): its shape and
// its validator, a row of the settings table. Enforced by src/server/callers.ts.
import { isPlainObject, show, typeName, unknownKeyMessage, type Problem } from '../problems.js';

/** `callers:` as configured: user and group names or numeric ids. */
export interface CallersSpec {
  users?: Array<string | number>;
  groups?: Array<string | number>;
}

/**
 * Validates a `callers:` mapping from the config file (settings table row):
 * `users` and `groups`, each a list of names or numeric ids. Names are
 * resolved when the daemon starts or reloads (resolveCallers).
 */
export function validateCallers(raw: unknown, path: string, problems: Problem[]): CallersSpec | undefined {
  if (!isPlainObject(raw)) {
    problems.push({ path, message: `expected a mapping with users: [...] and/or groups: [...], got ${typeName(raw)}` });
    return undefined;
  }
  const before = problems.length;
  const out: CallersSpec = {};
  for (const key of Object.keys(raw)) {
    if (key !== 'users' && key !== 'groups') problems.push({ path: `${path}.${key}`, message: unknownKeyMessage(key, ['users', 'groups']) });
  }
  for (const key of ['users', 'groups'] as const) {
    const list = raw[key];
    if (list === undefined || list === null) continue;
    if (!Array.isArray(list)) {
      problems.push({ path: `${path}.${key}`, message: `expected a list of ${key === 'users' ? 'user names or uids' : 'group names or gids'}, got ${typeName(list)}` });
      continue;
    }
    const items: Array<string | number> = [];
    list.forEach((item: unknown, i) => {
      if ((typeof item === 'number' && Number.isInteger(item) && item >= 0 && item < 2 ** 32) || (typeof item === 'string' && /^[^\s:,]+$/.test(item))) items.push(item);
      else problems.push({ path: `${path}.${key}[${i}]`, message: `expected a ${key === 'users' ? 'user name or numeric uid' : 'group name or numeric gid'}, got ${show(item)}` });
    });
    out[key] = items;
  }
  return problems.length > before ? undefined : out;
}
