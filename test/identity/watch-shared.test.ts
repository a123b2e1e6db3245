// Identity watchers share their chokidar watchers through a WatcherRegistry:
// profiles on the same files need one underlying watcher, every profile still
// sees every rotation, and closing one profile's watcher leaves the others
// working. (Rotation details themselves: test/identity/watch.test.ts.)
import { copyFile, mkdir, rename, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { loadIdentity } from '../../src/identity/load.js';
import type { Identity } from '../../src/identity/types.js';
import { IdentityWatcher, WatcherRegistry } from '../../src/identity/watch.js';
import { Daemon } from '../../src/server/daemon.js';
import { daemonConfig, profileFor, ROLE_ARN, waitUntil } from '../helpers/daemon.js';
import { makeCA, makeLeaf, tempDir, type CertFiles } from '../helpers/pki.js';

async function install(dir: string, leaf: CertFiles, cert = 'client.pem', key = 'client.key'): Promise<void> {
  await copyFile(leaf.keyPath, join(dir, `${key}.tmp`));
  await copyFile(leaf.certPath, join(dir, `${cert}.tmp`));
  await rename(join(dir, `${key}.tmp`), join(dir, key));
  await rename(join(dir, `${cert}.tmp`), join(dir, cert));
}

function watcherFor(registry: WatcherRegistry, dir: string, seen: Identity[], errors: unknown[] = []) {
  return new IdentityWatcher({
    source: { certificate: join(dir, 'client.pem'), privateKey: join(dir, 'client.key') },
    load: (s) => loadIdentity(s),
    debounceMs: 50,
    recheckIntervalMs: 0, // events only: no periodic re-check to hide a missed event
    registry,
    onIdentity: (id) => seen.push(id),
    onError: (err) => errors.push(err),
  });
}

t.test('two watchers on the same files: one underlying watcher, both see rotations, closing one keeps the other', async (t) => {
  const pki = await tempDir('ra-shared-pki-');
  const ca = await makeCA(pki);
  const dir = await tempDir('ra-shared-');
  await install(dir, await makeLeaf(pki, ca, 'v1'));

  const registry = new WatcherRegistry();
  const seenA: Identity[] = [];
  const seenB: Identity[] = [];
  const a = watcherFor(registry, dir, seenA);
  const b = watcherFor(registry, dir, seenB);
  t.teardown(() => Promise.all([a.close(), b.close()]));
  await a.loadInitial();
  await b.loadInitial();
  await Promise.all([a.watch(), b.watch()]);
  t.equal(registry.size, 1, 'one chokidar watcher for both');
  t.same(registry.directories(), [{ dir, listeners: 2 }]);

  const v2 = await makeLeaf(pki, ca, 'v2');
  await install(dir, v2);
  await waitUntil('both watchers report v2', () => seenA.some((i) => i.serialDecimal === v2.serialDecimal) && seenB.some((i) => i.serialDecimal === v2.serialDecimal));

  await a.close();
  t.equal(registry.size, 1, 'the watcher stays open for the remaining listener');
  t.same(registry.directories(), [{ dir, listeners: 1 }]);
  const countA = seenA.length;

  const v3 = await makeLeaf(pki, ca, 'v3');
  await install(dir, v3);
  await waitUntil('the remaining watcher reports v3', () => seenB.some((i) => i.serialDecimal === v3.serialDecimal));
  t.equal(seenA.length, countA, 'the closed watcher reports nothing more');

  await b.close();
  t.equal(registry.size, 0, 'the last listener closes the underlying watcher');
  await b.close(); // idempotent
  t.equal(registry.size, 0);
});

t.test('Kubernetes ..data swap seen by two watchers sharing the directories; an invalid pair refused by both', async (t) => {
  const pki = await tempDir('ra-shared-pki-');
  const ca = await makeCA(pki);
  const secretDir = await tempDir('ra-shared-k8s-');
  const v1 = await makeLeaf(pki, ca, 'k1');
  await mkdir(join(secretDir, '..v1'));
  await copyFile(v1.certPath, join(secretDir, '..v1', 'client.pem'));
  await copyFile(v1.keyPath, join(secretDir, '..v1', 'client.key'));
  await symlink('..v1', join(secretDir, '..data'));
  await symlink('..data/client.pem', join(secretDir, 'client.pem'));
  await symlink('..data/client.key', join(secretDir, 'client.key'));
  const swap = async (name: string, cert: string, key: string) => {
    await mkdir(join(secretDir, name));
    await copyFile(cert, join(secretDir, name, 'client.pem'));
    await copyFile(key, join(secretDir, name, 'client.key'));
    await symlink(name, join(secretDir, '..data_tmp'));
    await rename(join(secretDir, '..data_tmp'), join(secretDir, '..data'));
  };

  const registry = new WatcherRegistry();
  const seenA: Identity[] = [];
  const seenB: Identity[] = [];
  const errA: unknown[] = [];
  const errB: unknown[] = [];
  const a = watcherFor(registry, secretDir, seenA, errA);
  const b = watcherFor(registry, secretDir, seenB, errB);
  t.teardown(() => Promise.all([a.close(), b.close()]));
  await a.loadInitial();
  await b.loadInitial();
  await Promise.all([a.watch(), b.watch()]);
  t.equal(registry.size, 2, 'the secret directory and the resolved ..v1 directory, each watched once');
  t.same(registry.directories().map((d) => d.listeners), [2, 2]);

  const k2 = await makeLeaf(pki, ca, 'k2');
  await swap('..v2', k2.certPath, k2.keyPath);
  await waitUntil('both see the swapped-in certificate', () => seenA.some((i) => i.serialDecimal === k2.serialDecimal) && seenB.some((i) => i.serialDecimal === k2.serialDecimal));

  const other = await makeLeaf(pki, ca, 'mismatch');
  await swap('..v3', other.certPath, k2.keyPath);
  await waitUntil('both refuse the mismatched pair', () => errA.length > 0 && errB.length > 0);
  t.notOk(seenA.some((i) => i.serialDecimal === other.serialDecimal) || seenB.some((i) => i.serialDecimal === other.serialDecimal), 'never reported as a new identity');
  t.match(String((errA[0] as Error).message), /does not match/);
});

t.test('a daemon with several profiles on the same files opens one file watcher', async (t) => {
  const dir = await tempDir('ra-shared-daemon-');
  const ca = await makeCA(dir);
  const leaf = await makeLeaf(dir, ca, 'shared');
  const names = ['p1', 'p2', 'p3', 'p4', 'p5'];
  const config = daemonConfig(dir, names.map((n) => profileFor(n, leaf)), { imds: { enabled: false, allowV1: false } });
  const daemon = await Daemon.start(config, {
    fetchFactory: () => async () => ({ accessKeyId: 'ASIASHARED', secretAccessKey: 'x', sessionToken: 'y', expiration: new Date(Date.now() + 3600_000), roleArn: ROLE_ARN }),
    loadIdentity: (_p, s) => loadIdentity(s),
  });
  t.teardown(() => daemon.close());
  await waitUntil('every profile watching', () => daemon.watchers.directories().some((d) => d.listeners === names.length));
  t.equal(daemon.watchers.size, 1, `${names.length} profiles, one underlying watcher`);
  await daemon.close();
  t.equal(daemon.watchers.size, 0, 'closed with the daemon');
});
