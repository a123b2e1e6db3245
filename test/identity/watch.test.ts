// Certificate rotation without restart, against the emulator: atomic rename,
// the Kubernetes `..data` symlink swap, and refused invalid replacements.
import { copyFile, mkdir, readFile, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { httpRequest, startEmulatedDaemon, waitUntil, type EmulatedDaemon } from '../helpers/daemon.js';
import { convertKey, makeLeaf, tempDir } from '../helpers/pki.js';

/** Requests the container endpoint in a loop until stopped; returns non-200 statuses seen. */
function keepRequesting(d: EmulatedDaemon) {
  let stop = false;
  const bad: number[] = [];
  let count = 0;
  const done = (async () => {
    while (!stop) {
      const r = await httpRequest(d.port, 'GET', '/v1/credentials', { authorization: d.token });
      count++;
      if (r.status !== 200) bad.push(r.status);
      await new Promise((res) => setTimeout(res, 50));
    }
  })();
  return {
    async finish() {
      stop = true;
      await done;
      return { bad, count };
    },
  };
}

const usedSerial = (d: EmulatedDaemon, serial: string) =>
  d.emu.emulator.stats.calls.some((c) => c.operation === 'CreateSession' && c.outcome === 'ok' && c.serial === serial);

t.test('plain atomic rename of the cert and key', async (t) => {
  const certDir = await tempDir('ra-rot-');
  const d = await startEmulatedDaemon(t, {
    prepare: async (emu) => {
      await copyFile(emu.identitySource.certificate, join(certDir, 'client.pem'));
      await copyFile(emu.identitySource.privateKey!, join(certDir, 'client.key'));
      return { certificate: join(certDir, 'client.pem'), privateKey: join(certDir, 'client.key') };
    },
  });
  const session = d.daemon.session('main')!;
  await session.waitFor((s) => s.status().ready, 15_000);
  const oldSerial = session.status().certificateSerial;
  t.equal(oldSerial, d.emu.leaf.serialDecimal);
  const load = keepRequesting(d);

  const next = await makeLeaf(await tempDir(), d.emu.ca, 'rotated-client');
  await copyFile(next.keyPath, join(certDir, 'client.key.tmp'));
  await copyFile(next.certPath, join(certDir, 'client.pem.tmp'));
  await rename(join(certDir, 'client.key.tmp'), join(certDir, 'client.key'));
  await rename(join(certDir, 'client.pem.tmp'), join(certDir, 'client.pem'));

  await waitUntil('CreateSession with the new serial', () => usedSerial(d, next.serialDecimal), 20_000);
  await waitUntil('new identity in use', () => session.status().certificateSerial === next.serialDecimal && session.status().ready, 10_000);
  const { bad, count } = await load.finish();
  t.same(bad, [], `every request during rotation succeeded (${count})`);
  t.ok(session.status().identityReloads >= 1);
  const served = JSON.parse((await httpRequest(d.port, 'GET', '/v1/credentials', { authorization: d.token })).body);
  const issued = d.emu.emulator.issued.find((c) => c.accessKeyId === served.AccessKeyId);
  t.equal(issued?.serial, next.serialDecimal, 'served credentials come from the new certificate');
});

t.test('Kubernetes ..data symlink swap; invalid replacements refused', async (t) => {
  const secretDir = await tempDir('ra-k8s-');
  const v1 = join(secretDir, '..2025_01_01_00_00_00.000000001');
  const d = await startEmulatedDaemon(t, {
    prepare: async (emu) => {
      await mkdir(v1);
      await copyFile(emu.identitySource.certificate, join(v1, 'tls.crt'));
      await copyFile(emu.identitySource.privateKey!, join(v1, 'tls.key'));
      await symlink('..2025_01_01_00_00_00.000000001', join(secretDir, '..data'));
      await symlink('..data/tls.crt', join(secretDir, 'tls.crt'));
      await symlink('..data/tls.key', join(secretDir, 'tls.key'));
      return { certificate: join(secretDir, 'tls.crt'), privateKey: join(secretDir, 'tls.key') };
    },
  });
  const session = d.daemon.session('main')!;
  await session.waitFor((s) => s.status().ready, 15_000);
  let version = 1;
  const swap = async (cert: string | Buffer, key: string | Buffer) => {
    version++;
    const name = `..2025_01_01_00_00_00.00000000${version}`;
    const dir = join(secretDir, name);
    await mkdir(dir);
    await writeFile(join(dir, 'tls.crt'), cert);
    await writeFile(join(dir, 'tls.key'), key);
    const old = await readFile(join(secretDir, 'tls.crt'));
    void old;
    await symlink(name, join(secretDir, '..data_tmp'));
    await rename(join(secretDir, '..data_tmp'), join(secretDir, '..data'));
  };
  const load = keepRequesting(d);

  // 1. A valid new pair via the swap.
  const next = await makeLeaf(await tempDir(), d.emu.ca, 'k8s-rotated');
  await swap(await readFile(next.certPath), await readFile(next.keyPath));
  await rm(v1, { recursive: true });
  await waitUntil('CreateSession with the swapped-in serial', () => usedSerial(d, next.serialDecimal), 20_000);
  await waitUntil('new identity ready', () => session.status().certificateSerial === next.serialDecimal && session.status().ready, 10_000);

  // 2. A certificate whose key is not the one installed: refused, identity kept.
  const other = await makeLeaf(await tempDir(), d.emu.ca, 'mismatched');
  const failuresBefore = session.status().identityReloadFailures;
  await swap(await readFile(other.certPath), await readFile(next.keyPath));
  await waitUntil('mismatched pair refused', () => session.status().identityReloadFailures > failuresBefore, 20_000);
  t.equal(session.status().certificateSerial, next.serialDecimal, 'identity kept after a mismatched pair');
  t.match(session.status().lastIdentityError?.message, /does not match|match/i);

  // 3. Garbage: refused too.
  const f2 = session.status().identityReloadFailures;
  await swap('not a certificate\n', 'not a key\n');
  await waitUntil('garbage refused', () => session.status().identityReloadFailures > f2, 20_000);
  t.equal(session.status().certificateSerial, next.serialDecimal, 'identity kept after garbage');
  t.notOk(usedSerial(d, other.serialDecimal), 'the refused certificate was never used');

  const { bad, count } = await load.finish();
  t.same(bad, [], `every request succeeded throughout (${count})`);
  const metrics = (await httpRequest(d.port, 'GET', '/metrics')).body;
  t.match(metrics, /rolesanywhere_certificate_reload_failures_total\{profile="main"\} [2-9]/);
  t.ok(d.logs().includes('new certificate or key refused'), 'refusal logged');
});

t.test('an encrypted key re-keyed before its password file: refused, then picked up when the password arrives', async (t) => {
  const certDir = await tempDir('ra-rot-pw-');
  const pwFile = join(certDir, 'key.pass');
  const d = await startEmulatedDaemon(t, {
    prepare: async (emu) => {
      await writeFile(pwFile, 'first password\n', { mode: 0o600 });
      await copyFile(emu.identitySource.certificate, join(certDir, 'client.pem'));
      await copyFile(await convertKey(emu.identitySource.privateKey!, 'pkcs8-encrypted', 'first password'), join(certDir, 'client.key'));
      return { certificate: join(certDir, 'client.pem'), privateKey: join(certDir, 'client.key'), keyPasswordFile: pwFile };
    },
  });
  const session = d.daemon.session('main')!;
  await session.waitFor((s) => s.status().ready, 15_000);

  // The new pair arrives with a key encrypted under a new password; the password file is updated last.
  const next = await makeLeaf(await tempDir(), d.emu.ca, 'rekeyed-client');
  const failuresBefore = session.status().identityReloadFailures;
  await copyFile(await convertKey(next.keyPath, 'pkcs8-encrypted', 'second password'), join(certDir, 'client.key.tmp'));
  await copyFile(next.certPath, join(certDir, 'client.pem.tmp'));
  await rename(join(certDir, 'client.key.tmp'), join(certDir, 'client.key'));
  await rename(join(certDir, 'client.pem.tmp'), join(certDir, 'client.pem'));
  await waitUntil('pair with the stale password refused', () => session.status().identityReloadFailures > failuresBefore, 20_000);
  t.match(session.status().lastIdentityError?.message, /password/i, 'the refusal names the password');
  t.equal(session.status().certificateSerial, d.emu.leaf.serialDecimal, 'old identity kept meanwhile');

  await writeFile(join(certDir, 'key.pass.tmp'), 'second password\n', { mode: 0o600 });
  await rename(join(certDir, 'key.pass.tmp'), pwFile);
  await waitUntil('CreateSession with the re-keyed serial', () => usedSerial(d, next.serialDecimal), 20_000);
  t.equal(session.status().certificateSerial, next.serialDecimal, 'the new identity is in use once its password is there');
  t.notMatch(d.logs(), /first password|second password/, 'passwords never logged');
});
