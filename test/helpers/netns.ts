// A network namespace of the test's own (unique name, deleted at teardown), or
// the reason there is none here (not root, no `ip netns`): skip with it.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';

export const run = promisify(execFile);

export async function makeNetns(t: { teardown(fn: () => unknown): void }, prefix: string): Promise<{ ns: string } | { skip: string }> {
  if (process.getuid?.() !== 0) return { skip: 'needs root to create a network namespace' };
  const ns = `${prefix}-${randomBytes(4).toString('hex')}`;
  try {
    await run('ip', ['netns', 'add', ns]);
  } catch {
    return { skip: 'cannot create a network namespace here' };
  }
  t.teardown(() => run('ip', ['netns', 'del', ns]).catch(() => undefined));
  return { ns };
}
