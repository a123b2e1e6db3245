// The TPM key source against a real software TPM (swtpm) with keys made by
// the real TPM tools: TSS2 PEM files and persistent handles, RSA 2048 and EC
// P-256, with and without a password; what happens when the TPM goes away.
import t from 'tap';
import { verify, X509Certificate } from 'node:crypto';
import { execFile } from 'node:child_process';
import { copyFile, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { UserError } from '../../src/errors.js';
import { keySourceFor, openSigner } from '../../src/identity/key-sources.js';
import { loadIdentity } from '../../src/identity/load.js';
import type { Signer } from '../../src/identity/signer.js';
import type { Identity } from '../../src/identity/types.js';
import { IdentityWatcher } from '../../src/identity/watch.js';
import { claims, parseHandle } from '../../src/identity/signers/tpm.js';
import { makeCA, makeKey, makeLeaf, tempDir } from '../helpers/pki.js';
import { haveSoftTpm, startSoftTpm, type SoftTpm } from '../helpers/swtpm.js';
import { missing as needs, skipFile } from '../helpers/needs.js';

if (!haveSoftTpm()) skipFile(needs('tpm') ?? 'swtpm, tpm2-tools or the openssl tpm2 provider does not run');

const run = promisify(execFile);

const lockoutCounter = async (tpm: SoftTpm) => {
  const out = await tpm.tool('tpm2_getcap', ['properties-variable']);
  return parseInt(/TPM2_PT_LOCKOUT_COUNTER:\s*(0x[0-9a-fA-F]+)/.exec(out)![1]!, 16);
};

const reasonOf = (err: unknown) => (err instanceof UserError ? err.reason : `not a UserError: ${String(err)}`);

t.test('TPM signer', async (t) => {
  const tpm = await startSoftTpm(t);
  Object.assign(process.env, tpm.env);
  t.teardown(() => {
    delete process.env.TPM2OPENSSL_TCTI;
    delete process.env.TPM2TOOLS_TCTI;
  });
  const dir = await tempDir('ra-tpm-');
  const ca = await makeCA(dir, 'TPM Test CA');
  const PASSWORD = 'tpm-Secret-4711';

  const keys = [
    { what: 'EC P-256 TSS2 key file', spec: await tpm.tss2Key('p256'), alg: 'AWS4-X509-ECDSA-SHA256' },
    { what: 'RSA 2048 TSS2 key file', spec: await tpm.tss2Key('rsa2048'), alg: 'AWS4-X509-RSA-SHA256' },
    { what: 'EC P-256 TSS2 key file with a password', spec: await tpm.tss2Key('p256', { password: PASSWORD }), alg: 'AWS4-X509-ECDSA-SHA256', password: PASSWORD },
    { what: 'RSA 2048 persistent handle', spec: await tpm.persistentKey('rsa2048', 0x81000001), alg: 'AWS4-X509-RSA-SHA256' },
    { what: 'EC P-256 persistent handle', spec: await tpm.persistentKey('p256', 0x81000002), alg: 'AWS4-X509-ECDSA-SHA256' },
    { what: 'RSA 2048 persistent handle with a password', spec: await tpm.persistentKey('rsa2048', 0x81000003, { password: PASSWORD }), alg: 'AWS4-X509-RSA-SHA256', password: PASSWORD },
  ];

  t.test('claims TSS2 key files and handles, nothing else', async (t) => {
    const plain = await makeKey(dir, 'p256', 'plain');
    t.ok(claims(keys[0]!.spec), 'TSS2 PEM file');
    t.ok(claims('handle:0x81000001'), 'handle');
    t.notOk(claims(plain), 'a PKCS#8 key file is the file source’s');
    t.notOk(claims(join(dir, 'missing.pem')), 'a missing file is the file source’s (it reports it)');
    // A pipe is never peeked at: that would eat the key the file source then reads (`--private-key <(…)`).
    const fifo = join(dir, 'key.fifo');
    await run('mkfifo', [fifo]);
    t.notOk(claims(fifo), 'a FIFO is the file source’s, and claims() does not block on it');
    t.equal(keySourceFor(keys[0]!.spec).name, 'tpm');
    t.equal(keySourceFor(plain).name, 'file');
    t.equal(parseHandle('handle:0x81000001'), 0x81000001);
    for (const bad of ['handle:', 'handle:81000001', 'handle:0x01000001', 'handle:0xzz', 'handle:0x8100000100']) {
      t.throws(() => parseHandle(bad), { reason: 'tpm_handle_invalid' }, bad);
    }
  });

  for (const k of keys) {
    t.test(`${k.what}: signs what the certificate's key verifies`, async (t) => {
      const csr = await tpm.csr(k.spec, 'tpm-client', k.password);
      const leaf = await makeLeaf(dir, ca, 'tpm-client', { csrPath: csr });
      const cert = new X509Certificate(leaf.certPem);
      const signer = await openSigner(k.spec, k.password === undefined ? {} : { password: k.password });
      t.equal(signer.kind, 'tpm');
      t.equal(signer.algorithm, k.alg);
      t.ok(signer.publicKey.equals(cert.publicKey), 'public key read from the TPM matches the certificate made from its CSR');
      t.match(signer.describe(), k.spec.startsWith('handle:') ? /^tpm handle 0x8100000\d \(TCTI swtpm:path=/ : /^tpm key file /);
      t.notMatch(signer.describe(), PASSWORD);
      for (const data of [Buffer.from('AWS4-X509-ECDSA-SHA256\n20260101T000000Z\nscope\nabc'), Buffer.alloc(0), Buffer.alloc(5000, 7)]) {
        const sig = await signer.sign(data);
        t.ok(verify('sha256', data, cert.publicKey, sig), `signature over ${data.length} bytes verifies with the certificate`);
        if (k.alg.includes('ECDSA')) t.equal(sig[0], 0x30, 'ECDSA signature is DER SEQUENCE{r,s}');
        else t.equal(sig.length, 256, 'RSA 2048 PKCS#1 v1.5 signature');
      }
      t.same(await tpm.transientHandles(), [], 'no objects left loaded in the TPM');
    });
  }

  t.test('passwords', async (t) => {
    const withPw = keys.filter((k) => k.password);
    for (const k of withPw) {
      const before = await lockoutCounter(tpm);
      const err = await openSigner(k.spec, { password: 'wrong-password' }).catch((e: unknown) => e);
      t.equal(reasonOf(err), 'tpm_password_wrong', `${k.what}: wrong password refused`);
      t.match((err as Error).message, /wrong TPM key password/);
      t.notMatch((err as Error).message, /wrong-password|tpm-Secret/, 'no password in the message');
      t.equal(await lockoutCounter(tpm), before + 1, 'exactly one failed authorization reached the TPM');
    }
    const file = keys.find((k) => k.password && !k.spec.startsWith('handle:'))!;
    const err = await openSigner(file.spec).catch((e: unknown) => e);
    t.equal(reasonOf(err), 'password_required', 'TSS2 key with a password and none given');
    t.match((err as Error).message, /has a password; give its password with --key-password-file/);
    const plainFile = keys[0]!;
    t.equal(reasonOf(await openSigner(plainFile.spec, { password: 'x' }).catch((e: unknown) => e)), 'tpm_password_conflict', 'password for a key without one');
    t.equal(reasonOf(await openSigner(plainFile.spec, { password: 'x', noTpmKeyPassword: true }).catch((e: unknown) => e)), 'tpm_password_conflict');
    const handle = keys.find((k) => k.password && k.spec.startsWith('handle:'))!;
    const noPw = await openSigner(handle.spec).catch((e: unknown) => e);
    t.equal(reasonOf(noPw), 'tpm_password_wrong', 'handle with a password, none given');
    t.match((noPw as Error).message, /the TPM key has a password/);
    const ok = await openSigner(handle.spec, { password: PASSWORD });
    const data = Buffer.from('x');
    t.ok(verify('sha256', data, ok.publicKey, await ok.sign(data)), 'right password works');
    const noFlag = await openSigner(keys[3]!.spec, { noTpmKeyPassword: true });
    t.equal(noFlag.kind, 'tpm', '--no-tpm-key-password with a handle that has none');
  });

  t.test('a password that stops working is tried once, not on every refresh (dictionary-attack lockout)', async (t) => {
    const spec = await tpm.persistentKey('p256', 0x81000004, { password: 'first' });
    const signer = await openSigner(spec, { password: 'first' });
    await tpm.changePersistentAuth(0x81000004, 'first', 'second');
    const before = await lockoutCounter(tpm);
    const first = await signer.sign(Buffer.from('x')).catch((e: unknown) => e);
    t.equal(reasonOf(first), 'tpm_password_wrong', 'the TPM refuses the old password');
    t.equal(await lockoutCounter(tpm), before + 1, 'one failed authorization');
    const again = await signer.sign(Buffer.from('y')).catch((e: unknown) => e);
    t.equal(reasonOf(again), 'tpm_password_wrong', 'still refused');
    t.equal(await lockoutCounter(tpm), before + 1, 'without asking the TPM again');
    const reopened = await openSigner(spec, { password: 'second' });
    const data = Buffer.from('z');
    t.ok(verify('sha256', data, reopened.publicKey, await reopened.sign(data)), 'reopened with the new password, it signs');
  });

  t.test('bad specs and missing keys', async (t) => {
    const missing = await openSigner('handle:0x81000009').catch((e: unknown) => e);
    t.equal(reasonOf(missing), 'tpm_key_not_found');
    t.match((missing as Error).message, /^tpm handle 0x81000009: no key at this persistent handle/);
    const corrupt = join(dir, 'corrupt.tss2.pem');
    await writeFile(corrupt, '-----BEGIN TSS2 PRIVATE KEY-----\nMAMCAQA=\n-----END TSS2 PRIVATE KEY-----\n');
    t.equal(reasonOf(await openSigner(corrupt).catch((e: unknown) => e)), 'key_corrupt');
  });

  t.test('missing tools: no tpm2 provider, no openssl', async (t) => {
    const saved = { PATH: process.env.PATH, OPENSSL_MODULES: process.env.OPENSSL_MODULES };
    t.teardown(() => {
      process.env.PATH = saved.PATH;
      if (saved.OPENSSL_MODULES === undefined) delete process.env.OPENSSL_MODULES;
      else process.env.OPENSSL_MODULES = saved.OPENSSL_MODULES;
    });
    process.env.OPENSSL_MODULES = await tempDir('ra-no-modules-');
    const noProvider = await openSigner(keys[0]!.spec).catch((e: unknown) => e);
    t.equal(reasonOf(noProvider), 'tpm_tools_missing', 'openssl without its tpm2 provider');
    t.match((noProvider as Error).message, /openssl cannot load its TPM 2\.0 provider; install it \(Debian\/Ubuntu: apt install tpm2-openssl\)/);
    delete process.env.OPENSSL_MODULES;
    process.env.PATH = await tempDir('ra-empty-path-');
    const noOpenssl = await openSigner(keys[0]!.spec).catch((e: unknown) => e);
    t.equal(reasonOf(noOpenssl), 'tpm_tools_missing', 'no openssl at all');
    t.match((noOpenssl as Error).message, /the openssl command was not found/);
  });

  t.test('a TPM without free object slots (no resource manager, objects left loaded by others)', async (t) => {
    const env = { ...process.env, ...tpm.env };
    for (let i = 0; i < 3; i++) await run('tpm2_createprimary', ['-C', 'o', '-G', 'ecc', '-c', join(tpm.dir, `hog-${i}.ctx`)], { env });
    const err = await openSigner(keys[0]!.spec).catch((e: unknown) => e);
    t.equal(reasonOf(err), 'tpm_busy');
    t.match((err as Error).message, /no free object slots .* use the kernel resource manager \(\/dev\/tpmrm0\)/);
    await run('tpm2_flushcontext', ['-t'], { env });
    t.equal((await openSigner(keys[0]!.spec)).kind, 'tpm', 'works once they are flushed');
  });

  t.test('a key file from another TPM', async (t) => {
    const other = await startSoftTpm(t);
    const foreign = await other.tss2Key('p256');
    await other.stop();
    const err = await openSigner(foreign).catch((e: unknown) => e);
    t.equal(reasonOf(err), 'tpm_key_not_loadable');
    t.match((err as Error).message, /made by another TPM/);
  });

  t.test('TPM unreachable, then back', async (t) => {
    const k = keys[0]!;
    const signer: Signer = await openSigner(k.spec);
    await tpm.stop();
    const openErr = await openSigner(k.spec).catch((e: unknown) => e);
    t.equal(reasonOf(openErr), 'tpm_unreachable', 'open fails clearly');
    t.match((openErr as Error).message, /TPM not reachable through TCTI "swtpm:path=.*" while reading the public key; check that the TPM/);
    const signErr = await signer.sign(Buffer.from('x')).catch((e: unknown) => e);
    t.equal(reasonOf(signErr), 'tpm_unreachable', 'signing fails clearly');
    await tpm.start();
    const data = Buffer.from('after the TPM came back');
    t.ok(verify('sha256', data, signer.publicKey, await signer.sign(data)), 'the same signer works again');
  });

  t.test('a certificate rotated while the TPM is away is taken once it is back', async (t) => {
    const live = await tempDir('ra-tpm-live-');
    const source = { certificate: join(live, 'client.pem'), privateKey: join(live, 'client.tss2.pem') };
    const firstKey = keys[0]!.spec;
    const nextKey = await tpm.tss2Key('p256', { name: 'next' });
    const first = await makeLeaf(dir, ca, 'first', { csrPath: await tpm.csr(firstKey, 'first') });
    const next = await makeLeaf(dir, ca, 'next', { csrPath: await tpm.csr(nextKey, 'next') });
    await copyFile(first.certPath, source.certificate);
    await copyFile(firstKey, source.privateKey);
    const errors: Array<{ reason?: string }> = [];
    const identities: Identity[] = [];
    const watcher = new IdentityWatcher({
      source,
      load: (s) => loadIdentity(s),
      recheckIntervalMs: 0,
      onError: (err) => errors.push(err as { reason?: string }),
      onIdentity: (id) => identities.push(id),
    });
    t.teardown(() => watcher.close());
    t.equal((await watcher.loadInitial()).serialDecimal, first.serialDecimal);

    await tpm.stop();
    await copyFile(nextKey, source.privateKey);
    await copyFile(next.certPath, source.certificate);
    await watcher.check();
    t.same(errors.map((e) => e.reason), ['tpm_unreachable'], 'refused while the TPM is away');
    t.equal(identities.length, 0);
    await tpm.start();
    // The files do not change again; the next (periodic) check takes them.
    await watcher.check();
    t.same(identities.map((i) => i.serialDecimal), [next.serialDecimal], 'the rotated certificate and key are picked up');
  });

  t.test('nothing left loaded', async (t) => {
    t.same(await tpm.transientHandles(), []);
  });
});

// Issue 21 (9): TPM openssl children inherited the whole environment, including
// ROLESANYWHERE_KEY_PASSWORD and other profiles' PINs. A fake `openssl` first on
// PATH writes the environment it was given, through the real code path.
t.test('openssl children get a minimal environment: no passwords, PINs or AWS keys', async (t) => {
  const dir = await tempDir('ra-tpm-env-');
  const dump = join(dir, 'env.txt');
  await writeFile(join(dir, 'openssl'), `#!/bin/sh\nenv -0 > '${dump}'\nexit 1\n`, { mode: 0o755 });
  const secrets = {
    ROLESANYWHERE_KEY_PASSWORD: 'env-Password-1',
    ROLESANYWHERE_PKCS8_PASSWORD: 'env-Password-2',
    ROLESANYWHERE_PKCS11_PIN: 'env-Pin-3',
    AWS_SECRET_ACCESS_KEY: 'env-Secret-4',
    OTHER_PROFILE_PIN: 'env-Pin-5',
  };
  const saved = { ...process.env };
  t.teardown(() => {
    for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k];
    Object.assign(process.env, saved);
  });
  Object.assign(process.env, secrets, { PATH: `${dir}:${process.env.PATH}`, TPM2OPENSSL_TCTI: 'swtpm:host=127.0.0.1,port=1', OPENSSL_MODULES: '/usr/lib/x86_64-linux-gnu/ossl-modules' });
  const err = await openSigner('handle:0x81000001', { password: 'fd3-Password-6' }).catch((e: unknown) => e);
  t.ok(err instanceof UserError, 'the fake openssl fails the open');
  const seen = Object.fromEntries((await readFile(dump, 'utf8')).split('\0').filter(Boolean).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
  t.equal(seen.PATH, process.env.PATH, 'PATH is passed');
  t.equal(seen.TPM2OPENSSL_TCTI, 'swtpm:host=127.0.0.1,port=1', 'the TCTI is passed');
  t.equal(seen.OPENSSL_MODULES, '/usr/lib/x86_64-linux-gnu/ossl-modules', "openssl's provider directory is passed");
  for (const [k, v] of Object.entries(secrets)) {
    t.notOk(k in seen, `${k} is not passed`);
    t.notOk(Object.values(seen).includes(v), `${k}'s value appears nowhere`);
  }
  t.notOk(Object.values(seen).some((v) => v.includes('fd3-Password-6')), 'the key password is not in the environment (it goes through fd 3)');
  // sh adds PWD, SHLVL and _; tap's process-info hook adds NODE_OPTIONS and _TAPJS_* to every child the test process spawns.
  const added = (k: string) => ['PWD', 'SHLVL', '_', 'NODE_OPTIONS'].includes(k) || k.startsWith('_TAPJS_');
  t.same(Object.keys(seen).filter((k) => !['PATH', 'TPM2OPENSSL_TCTI', 'OPENSSL_MODULES'].includes(k) && !added(k)), [], 'nothing else');
});
