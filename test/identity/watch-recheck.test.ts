// A rotated certificate refused only because of the time (not valid yet on
// this machine's clock) is tried again by later checks, not remembered as bad.
import { copyFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { loadIdentity } from '../../src/identity/load.js';
import type { Identity } from '../../src/identity/types.js';
import { IdentityWatcher } from '../../src/identity/watch.js';
import { makeCA, makeLeaf, tempDir } from '../helpers/pki.js';

t.test('a certificate not yet valid when it appears is picked up once the clock has reached its notBefore', async (t) => {
  const dir = await tempDir();
  const ca = await makeCA(dir);
  const first = await makeLeaf(dir, ca, 'first');
  const next = await makeLeaf(dir, ca, 'next');
  const live = await tempDir();
  const source = { certificate: join(live, 'client.pem'), privateKey: join(live, 'client.key') };
  await copyFile(first.certPath, source.certificate);
  await copyFile(first.keyPath, source.privateKey);

  // The clock the loader checks validity against: behind the issuer's at first (a skewed node).
  let clock = new Date();
  const errors: Array<{ reason?: string }> = [];
  const identities: Identity[] = [];
  const watcher = new IdentityWatcher({
    source,
    load: (s) => loadIdentity(s, { now: clock }),
    recheckIntervalMs: 0,
    onError: (err) => errors.push(err as { reason?: string }),
    onIdentity: (id) => identities.push(id),
  });
  t.teardown(() => watcher.close());
  t.equal((await watcher.loadInitial()).serialDecimal, first.serialDecimal);

  clock = new Date(Date.now() - 2 * 86_400_000);
  await copyFile(next.keyPath, source.privateKey);
  await copyFile(next.certPath, source.certificate);
  await watcher.check();
  t.equal(identities.length, 0, 'refused while not yet valid');
  t.equal(errors.length, 1);
  t.equal(errors[0]!.reason, 'cert_rule_validity');

  // The files do not change again; the clock catches up. The next check (the periodic re-check) takes it.
  clock = new Date();
  await watcher.check();
  t.same(identities.map((i) => i.serialDecimal), [next.serialDecimal], 'the new certificate is picked up');
});
