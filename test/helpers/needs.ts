// Which system packages a test needs, from the one table in scripts/test-deps.js
// (which `npm test` and .ci/run use to install them). A test whose tools are missing
// is skipped with a reason naming the group and the packages that would run it; the
// reporter (scripts/tap-progress.js) lists those reasons in its summary line.
//
//   import { missing, skipFile } from '../helpers/needs.js';
//   const why = missing('tpm'); if (why) skipFile(why);   // whole file (before any test)
//   t.test('…', { skip: missing('aws-cli-debian') ?? false }, async (t) => { … });
import t from 'tap';

type Group = 'openssl' | 'aws-cli-debian' | 'aws-cli' | 'systemd' | 'pkcs11' | 'pkcs11js' | 'tpm' | 'netns' | 'acl' | 'other-user';
// Loaded by URL: scripts/ is plain JavaScript outside the compiled sources.
const deps = (await import(new URL('../../scripts/test-deps.js', import.meta.url).href)) as { missing(id: Group): string | undefined };

/** Why tests of `groups` cannot run here ("needs …: apt-get install …"), or undefined when they can. */
export function missing(...groups: Group[]): string | undefined {
  const why = groups.map((g) => deps.missing(g)).filter(Boolean);
  return why.length ? why.join('; ') : undefined;
}

/**
 * Skips the rest of this test file with `reason` (tap: plan 0 with the reason, written
 * at once) and exits, so no top-level code after it runs.
 */
export function skipFile(reason: string): never {
  t.plan(0, reason);
  process.exit(0);
}
