// ML-DSA end to end through the built CLI (run `npx tsc -p .` first): `pki
// init/issue --key-type ml-dsa-*` make the identities, `check` explains them,
// `credential-process` and `serve` get credentials from the emulator with
// them, and an SDK call with those credentials succeeds. The machine's openssl
// (3.0) has no ML-DSA, so nothing here is made by openssl.
import { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import { fromContainerMetadata } from '@aws-sdk/credential-providers';
import { parseCertificateFields } from '../../src/identity/x509-fields.js';
import { loadIdentity } from '../../src/identity/load.js';
import { CLI, runCli, runProcess } from '../helpers/cli.js';
import { cleanAwsEnv, startEmulatedDaemon } from '../helpers/daemon.js';
import { tempDir } from '../helpers/pki.js';

const SETS = [
  ['ml-dsa-44', '2.16.840.1.101.3.4.3.17'],
  ['ml-dsa-65', '2.16.840.1.101.3.4.3.18'],
  ['ml-dsa-87', '2.16.840.1.101.3.4.3.19'],
] as const;

/** Environment with no AWS_* or ROLESANYWHERE_* variables from the outer shell. */
function cleanEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!/^(AWS_|ROLESANYWHERE_)/.test(k) && !/_proxy$/i.test(k)) env[k] = v;
  return env;
}

for (const [type, oid] of SETS) {
  t.test(`${type}: pki init, check, credential-process, serve + SDK`, async (t) => {
    const dir = join(await tempDir('ra-mldsa-cli-'), 'pki');
    const init = await runCli(['pki', 'init', dir, '--key-type', type, '--client-key-type', type, '--client-name', `${type}-host`]);
    t.equal(init.code, 0, init.stderr);
    t.match(init.stdout, new RegExp(`CA certificate: .*\\(${type.toUpperCase()}, ${type.toUpperCase()}, expires`), 'names the CA key and signature algorithm');
    t.match(init.stdout, new RegExp(`client certificate: .*\\(${type.toUpperCase()}, expires`));
    t.notMatch(init.stdout + init.stderr, /PRIVATE KEY/, 'no key material printed');

    // The certificates as our encoder wrote them: ML-DSA OIDs, AlgorithmIdentifier without parameters.
    for (const f of ['ca.pem', 'client.pem']) {
      const cert = new X509Certificate(await readFile(join(dir, f)));
      const fields = parseCertificateFields(cert.raw);
      t.equal(fields.signatureAlgorithm.oid, oid, `${f}: signature algorithm ${oid}`);
      t.equal(fields.signatureAlgorithm.kind, 'ML-DSA');
      t.equal(cert.publicKey.asymmetricKeyType as string, type, `${f}: ${type} key`);
      // SPKI: SEQUENCE { SEQUENCE { OID } (no NULL), BIT STRING } — the AlgorithmIdentifier is exactly 06 09 <oid> inside 30 0b.
      t.equal(fields.spki.subarray(4, 6).toString('hex'), '300b', `${f}: key AlgorithmIdentifier has no parameters`);
    }
    const ca = new X509Certificate(await readFile(join(dir, 'ca.pem')));
    t.ok(new X509Certificate(await readFile(join(dir, 'client.pem'))).verify(ca.publicKey), 'client certificate verifies with the CA key');

    const check = await runCli(['check', '--certificate', join(dir, 'client.pem'), '--private-key', join(dir, 'client.key'), '--ca', join(dir, 'ca.pem')]);
    t.equal(check.code, 0, check.stdout + check.stderr);
    t.match(check.stdout, new RegExp(`^PASS signatureAlgorithm: signed with ${type.toUpperCase()} \\(FIPS 204\\)$`, 'm'));
    t.match(check.stdout, new RegExp(`^PASS keyType: ${type.toUpperCase()} key$`, 'm'));
    t.match(check.stdout, new RegExp(`^PASS privateKey: ${type.toUpperCase()} key from file ${join(dir, 'client.key')}$`, 'm'), 'names the key type and source');
    t.match(check.stdout, /^PASS keyMatch: private key matches the certificate$/m);
    t.match(check.stdout, /^PASS trustAnchor: /m);
    t.match(check.stdout, /^OK: Roles Anywhere should accept this certificate/m);

    // serve (in process, real HTTP) against an emulator that trusts this CA; an SDK call with what it serves.
    const d = await startEmulatedDaemon(t, {
      emulator: { trustAnchorCaPems: [await readFile(join(dir, 'ca.pem'), 'utf8')] },
      prepare: async () => ({ certificate: join(dir, 'client.pem'), privateKey: join(dir, 'client.key') }),
    });
    await d.daemon.session('main')!.waitFor((s) => s.status().ready, 15_000);
    const env = await cleanAwsEnv({ AWS_CONTAINER_CREDENTIALS_FULL_URI: `http://127.0.0.1:${d.port}/v1/credentials`, AWS_CONTAINER_AUTHORIZATION_TOKEN: d.token });
    const saved = { ...process.env };
    let creds;
    try {
      for (const k of Object.keys(process.env)) delete process.env[k];
      Object.assign(process.env, env);
      creds = await fromContainerMetadata({ timeout: 2000 })();
    } finally {
      for (const k of Object.keys(process.env)) delete process.env[k];
      Object.assign(process.env, saved);
    }
    const identity = await loadIdentity({ certificate: join(dir, 'client.pem'), privateKey: join(dir, 'client.key') });
    const issued = d.emu.emulator.issued.find((c) => c.accessKeyId === creds.accessKeyId);
    t.ok(issued, 'serve serves credentials the emulator issued');
    t.equal(issued?.serial, identity.serialDecimal, 'to the ML-DSA certificate');
    const sts = new STSClient({ region: 'us-east-1', endpoint: d.emu.url, credentials: creds, maxAttempts: 1 });
    try {
      const who = await sts.send(new GetCallerIdentityCommand({}));
      t.equal(who.Account, d.emu.accountId, 'an SDK call with them succeeds');
    } finally {
      sts.destroy();
    }

    // credential-process as a real process against the same emulator.
    const before = d.emu.emulator.issued.length;
    const cp = await runCli(
      [
        'credential-process',
        '--certificate', join(dir, 'client.pem'),
        '--private-key', join(dir, 'client.key'),
        '--trust-anchor-arn', d.emu.arns.trustAnchorArn, '--profile-arn', d.emu.arns.profileArn, '--role-arn', d.emu.arns.roleArn,
        '--endpoint', d.emu.url,
      ],
      { cleanEnv: true, env: cleanEnv() },
    );
    t.equal(cp.code, 0, cp.stderr);
    const out = JSON.parse(cp.stdout) as { AccessKeyId: string };
    t.equal(d.emu.emulator.issued.length, before + 1, 'one more session issued');
    t.equal(d.emu.emulator.issued.at(-1)!.accessKeyId, out.AccessKeyId, 'credential-process printed it');
    t.equal(d.emu.emulator.issued.at(-1)!.serial, identity.serialDecimal);
  });
}

t.test('pki issue --key-type ml-dsa-* from an EC CA, and the default from an ML-DSA CA; PKCS#12 with an ML-DSA key', async (t) => {
  const dir = await tempDir('ra-mldsa-issue-');
  t.equal((await runCli(['pki', 'init', dir, '--key-type', 'ec'])).code, 0);
  const r = await runCli(['pki', 'issue', '--ca-dir', dir, '--name', 'pq-1', '--key-type', 'ml-dsa-87', '--pfx'], { env: { ROLESANYWHERE_PFX_PASSWORD: 'pq pfx' } });
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /ML-DSA-87 key, ecdsa-with-SHA384/);
  const fromPem = await loadIdentity({ certificate: join(dir, 'pq-1.pem'), privateKey: join(dir, 'pq-1.key') });
  t.equal(fromPem.signer.algorithm, 'AWS4-X509-MLDSA');
  const fromPfx = await loadIdentity({ certificate: join(dir, 'pq-1.pfx'), password: 'pq pfx' });
  t.equal(fromPfx.signer.keyAlgorithm, 'ML-DSA', 'the PKCS#12 bundle holds the ML-DSA key');
  t.ok(fromPfx.certificateDer.equals(fromPem.certificateDer));

  const mldsa = await tempDir('ra-mldsa-issue-');
  t.equal((await runCli(['pki', 'init', mldsa, '--key-type', 'ml-dsa-65', '--client-key-type', 'ec'])).code, 0);
  const ec = await loadIdentity({ certificate: join(mldsa, 'client.pem'), privateKey: join(mldsa, 'client.key') });
  t.equal(ec.signer.algorithm, 'AWS4-X509-ECDSA-SHA256', 'an EC client under an ML-DSA CA');
  const r2 = await runCli(['pki', 'issue', '--ca-dir', mldsa, '--name', 'default-type']);
  t.equal(r2.code, 0, r2.stderr);
  t.match(r2.stdout, /ML-DSA-65 key, ML-DSA-65,/, 'default key type follows the ML-DSA CA');

  const bad = await runCli(['pki', 'init', join(dir, 'x'), '--key-type', 'ml-dsa-66']);
  t.equal(bad.code, 1);
  t.match(bad.stderr, /--key-type must be "rsa", "ec", "ml-dsa-44", "ml-dsa-65" or "ml-dsa-87", not "ml-dsa-66"/);
});

// Debian's own Node.js (20 on bookworm) has no ML-DSA: the CLI must say so, not call the files corrupt.
const OLD_NODE = '/usr/bin/node';
const oldNodeLacksMlDsa = await runProcess(OLD_NODE, ['-e', "require('crypto').generateKeyPairSync('ml-dsa-44')"]).then(
  (r) => r.code !== 0,
  () => false,
);
t.test('a Node.js without ML-DSA names the runtime as the problem', { skip: oldNodeLacksMlDsa ? false : `${OLD_NODE} is missing or has ML-DSA` }, async (t) => {
  const dir = join(await tempDir('ra-mldsa-old-'), 'pki');
  t.equal((await runCli(['pki', 'init', dir, '--key-type', 'ml-dsa-44'])).code, 0);
  const runtime = /ML-DSA keys need Node\.js 24\.7 or later built with OpenSSL 3\.5 \(this is Node\.js v\d+/;
  const check = await runProcess(OLD_NODE, [CLI, 'check', '--certificate', join(dir, 'client.pem'), '--private-key', join(dir, 'client.key')]);
  t.equal(check.code, 1);
  t.equal(check.stdout, '', 'nothing on stdout');
  t.match(check.stderr, /client\.pem: certificate #1 has an ML-DSA key; /);
  t.match(check.stderr, runtime);
  // A classic certificate with an ML-DSA key file: the key is named.
  const ec = await tempDir('ra-mldsa-old-');
  t.equal((await runCli(['pki', 'init', ec, '--key-type', 'ec'])).code, 0);
  const key = await runProcess(OLD_NODE, [CLI, 'check', '--certificate', join(ec, 'client.pem'), '--private-key', join(dir, 'client.key')]);
  t.equal(key.code, 1);
  t.match(key.stderr, /client\.key: ML-DSA keys need Node\.js 24\.7/);
  const init = await runProcess(OLD_NODE, [CLI, 'pki', 'init', join(ec, 'new'), '--key-type', 'ml-dsa-65']);
  t.equal(init.code, 1);
  t.match(init.stderr, /--key-type ml-dsa-65: ML-DSA keys need Node\.js 24\.7/);
  await t.rejects(readFile(join(ec, 'new', 'ca.pem')), 'nothing written');
});
