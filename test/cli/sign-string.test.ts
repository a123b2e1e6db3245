// `sign-string` as aws_signing_helper's: the same fixed message, the same
// output in each format, for every key source. The expected message is built
// here from openssl's own encodings of the public key (PKCS#1 RSAPublicKey DER,
// the uncompressed EC point), RSA signatures are compared byte for byte with
// `openssl dgst -sign`, and ECDSA ones (random) are verified by openssl over
// the same message. Token (SoftHSM) and TPM (swtpm) keys sign through the same
// command and verify with their public keys.
import t from 'tap';
import { createHash, createPublicKey, generateKeyPairSync, verify as cryptoVerify, type KeyObject } from 'node:crypto';
import { spawn } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CLI } from '../helpers/cli.js';
import { makeCA, makeKey, makeLeaf, openssl, tempDir } from '../helpers/pki.js';
import { createToken, softhsmMissing } from '../helpers/softhsm.js';
import { haveSoftTpm, startSoftTpm } from '../helpers/swtpm.js';
import { mlDsaUnsupported } from '../../src/identity/signer.js';

const DIGESTS = ['SHA256', 'SHA384', 'SHA512'] as const;
const PREFIX = 'AWS Roles Anywhere Credential Helper Signing Test1';

/** Runs the CLI keeping stdout as bytes (for --format bin). */
function sign(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; stdout: Buffer; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, 'sign-string', ...args], { env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env } });
    const out: Buffer[] = [];
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout: Buffer.concat(out), stderr }));
  });
}

const dir = await tempDir('ra-sign-string-');
const ca = await makeCA(dir, 'Sign String CA');

/** The helper's message, from openssl's encodings of the key (not our code's). */
async function expectedMessage(keyPath: string, type: 'rsa' | 'ec'): Promise<Buffer> {
  const out = join(dir, `pub-${Math.random().toString(36).slice(2)}.der`);
  if (type === 'rsa') {
    await openssl(['rsa', '-in', keyPath, '-RSAPublicKey_out', '-outform', 'DER', '-out', out]);
    return Buffer.concat([Buffer.from(PREFIX), createHash('sha256').update('IAM RA').update(await readFile(out)).digest()]);
  }
  await openssl(['ec', '-in', keyPath, '-pubout', '-conv_form', 'uncompressed', '-outform', 'DER', '-out', out]);
  const spki = await readFile(out);
  // The SPKI ends with the BIT STRING holding the point: 0x04 ‖ X ‖ Y.
  const size = spki.length > 100 ? 97 : 65;
  const point = spki.subarray(spki.length - size);
  return Buffer.concat([Buffer.from(PREFIX), createHash('sha256').update('IAM RA').update(point).digest()]);
}

async function opensslVerify(pub: KeyObject, digest: string, message: Buffer, signature: Buffer): Promise<boolean> {
  const id = Math.random().toString(36).slice(2);
  const [p, m, s] = ['pub.pem', 'msg', 'sig'].map((f) => join(dir, `${id}-${f}`)) as [string, string, string];
  await writeFile(p, pub.export({ type: 'spki', format: 'pem' }));
  await writeFile(m, message);
  await writeFile(s, signature);
  try {
    await openssl(['dgst', `-${digest.toLowerCase()}`, '-verify', p, '-signature', s, m]);
    return true;
  } catch {
    return false;
  }
}

t.test('RSA file key: byte-identical to openssl dgst -sign in every digest and format', async (t) => {
  const leaf = await makeLeaf(dir, ca, 'rsa-client', { keyType: 'rsa2048' });
  const message = await expectedMessage(leaf.keyPath, 'rsa');
  await writeFile(join(dir, 'rsa-msg'), message);
  for (const digest of DIGESTS) {
    await openssl(['dgst', `-${digest.toLowerCase()}`, '-sign', leaf.keyPath, '-out', join(dir, `rsa-${digest}.sig`), join(dir, 'rsa-msg')]);
    const expected = await readFile(join(dir, `rsa-${digest}.sig`));
    const flags = ['--certificate', leaf.certPath, '--private-key', leaf.keyPath, '--digest', digest];
    const json = await sign([...flags, '--format', 'json']);
    t.equal(json.code, 0, json.stderr);
    t.equal(json.stdout.toString(), `"${expected.toString('hex')}"`, `${digest} json: the hex in a JSON string, no newline`);
    const text = await sign([...flags, '--format', 'text']);
    t.equal(text.stdout.toString(), expected.toString('hex'), `${digest} text: bare hex`);
    const bin = await sign([...flags, '--format', 'bin']);
    t.ok(bin.stdout.equals(expected), `${digest} bin: the signature bytes`);
  }
  const byDefault = await sign(['--certificate', leaf.certPath, '--private-key', leaf.keyPath]);
  t.equal(byDefault.stdout.toString(), `"${(await readFile(join(dir, 'rsa-SHA256.sig'))).toString('hex')}"`, 'default: SHA256, json (the helper\'s defaults)');
});

for (const keyType of ['p256', 'p384'] as const) {
  t.test(`EC ${keyType} file key: openssl verifies the signature over the helper's message`, async (t) => {
    const leaf = await makeLeaf(dir, ca, `${keyType}-client`, { keyType });
    const message = await expectedMessage(leaf.keyPath, 'ec');
    const pub = createPublicKey(await readFile(leaf.certPath));
    for (const digest of DIGESTS) {
      const r = await sign(['--certificate', leaf.certPath, '--private-key', leaf.keyPath, '--digest', digest, '--format', 'bin']);
      t.equal(r.code, 0, r.stderr);
      t.ok(await opensslVerify(pub, digest, message, r.stdout), `${digest}: verifies (DER ECDSA-Sig-Value)`);
      t.notOk(await opensslVerify(pub, digest, Buffer.concat([message, Buffer.from('x')]), r.stdout), `${digest}: and not over another message`);
    }
    const text = await sign(['--certificate', leaf.certPath, '--private-key', leaf.keyPath, '--format', 'text']);
    t.match(text.stdout.toString(), /^30[0-9a-f]+$/, 'text: hex of a DER SEQUENCE');
  });
}

t.test('a key without a certificate signs; a mismatched certificate is noted, bad input refused', async (t) => {
  const leaf = await makeLeaf(dir, ca, 'lone-client', { keyType: 'rsa2048' });
  const other = await makeKey(dir, 'rsa2048', 'other');
  const r = await sign(['--private-key', other, '--format', 'text']);
  t.equal(r.code, 0, r.stderr);
  const msg = await expectedMessage(other, 'rsa');
  t.ok(await opensslVerify(createPublicKey(await readFile(other)), 'SHA256', msg, Buffer.from(r.stdout.toString(), 'hex')), 'signed with the key itself');
  const mismatch = await sign(['--certificate', leaf.certPath, '--private-key', other]);
  t.equal(mismatch.code, 0, 'signs anyway, as the helper does');
  t.match(mismatch.stderr, /note: the key \(file .*other\.key\) does not match the certificate/);
  const ed = await makeKey(dir, 'ed25519', 'ed');
  const bad = await sign(['--private-key', ed]);
  t.equal(bad.code, 1);
  t.match(bad.stderr, /Ed25519/);
  t.equal(bad.stdout.length, 0, 'nothing on stdout');
  const digest = await sign(['--private-key', other, '--digest', 'MD5']);
  t.match(digest.stderr, /--digest: expected one of sha256, sha384, sha512, got "MD5"/);
  const format = await sign(['--private-key', other, '--format', 'pem']);
  t.match(format.stderr, /--format: expected one of json, text, bin/);
  const none = await sign([]);
  t.match(none.stderr, /sign-string: give the key with --private-key/);
  const store = await sign(['--cert-selector', 'Key=x509Subject,Value=CN=x']);
  t.match(store.stderr, /--cert-selector: OS certificate stores .* are not supported on this platform; give the certificate and key with --certificate and --private-key/);
});

t.test('ML-DSA: the message without a key suffix, signed as helper 1.8 does (pure, no digest)', { skip: mlDsaUnsupported() }, async (t) => {
  for (const type of ['ml-dsa-44', 'ml-dsa-65'] as const) {
    const { privateKey, publicKey } = generateKeyPairSync(type as 'ml-dsa-44');
    const keyPath = join(dir, `${type}.key`);
    await writeFile(keyPath, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
    const r = await sign(['--private-key', keyPath, '--format', 'bin', '--digest', 'SHA512']);
    t.equal(r.code, 0, r.stderr);
    t.ok(cryptoVerify(null, Buffer.from(PREFIX), publicKey, r.stdout), `${type}: verifies over "…Signing Test1" itself`);
  }
});

t.test('PKCS#11 token keys sign the same message (SoftHSM)', { skip: softhsmMissing() }, async (t) => {
  const tok = await createToken(t, 'sign-string');
  const pinFile = join(tok.dir, 'pin');
  await writeFile(pinFile, tok.pin, { mode: 0o600 });
  const env = { SOFTHSM2_CONF: tok.conf };
  for (const [type, id] of [
    ['rsa2048', '01'],
    ['p256', '02'],
  ] as const) {
    const pub = await tok.keypair(type, `key-${id}`, id);
    const { certPath } = await tok.issue(ca, id, `cert-${id}`);
    const spki = pub.export({ type: 'spki', format: 'der' });
    const bytes = type === 'rsa2048' ? pub.export({ type: 'pkcs1', format: 'der' }) : spki.subarray(spki.length - 65);
    const message = Buffer.concat([Buffer.from(PREFIX), createHash('sha256').update('IAM RA').update(bytes).digest()]);
    for (const digest of DIGESTS) {
      const byKey = await sign(['--private-key', `pkcs11:token=${tok.label};object=key-${id};type=private`, '--pkcs11-lib', tok.module, '--pkcs11-pin-file', pinFile, '--digest', digest, '--format', 'bin'], env);
      t.equal(byKey.code, 0, byKey.stderr);
      t.ok(await opensslVerify(pub, digest, message, byKey.stdout), `${type} ${digest}: the token key's signature verifies`);
    }
    // A certificate on the token brings its key; a PIN in the URI works as in the helper.
    const byCert = await sign(['--certificate', `pkcs11:token=${tok.label};object=cert-${id}?pin-value=${tok.pin}`, '--pkcs11-lib', tok.module, '--format', 'bin'], env);
    t.equal(byCert.code, 0, byCert.stderr);
    t.ok(await opensslVerify(pub, 'SHA256', message, byCert.stdout), `${type}: by the certificate's URI`);
    t.notMatch(byCert.stderr, new RegExp(tok.pin), 'the PIN is not echoed');
    const withFile = await sign(['--certificate', certPath, '--private-key', `pkcs11:token=${tok.label};id=%${id}`, '--pkcs11-lib', tok.module, '--pkcs11-pin-file', pinFile, '--format', 'bin'], env);
    t.ok(await opensslVerify(pub, 'SHA256', message, withFile.stdout), `${type}: certificate file + token key`);
  }
});

t.test('TPM keys sign the same message (swtpm)', { skip: haveSoftTpm() ? false : 'swtpm, tpm2-tools or the tpm2 openssl provider missing' }, async (t) => {
  const tpm = await startSoftTpm(t);
  for (const type of ['rsa2048', 'p256'] as const) {
    const keyPath = await tpm.tss2Key(type, { name: `ss-${type}` });
    const pubPem = await tpm.openssl(['pkey', '-provider', 'tpm2', '-provider', 'default', '-in', keyPath, '-pubout']);
    const pub = createPublicKey(pubPem);
    const spki = pub.export({ type: 'spki', format: 'der' });
    const bytes = type === 'rsa2048' ? pub.export({ type: 'pkcs1', format: 'der' }) : spki.subarray(spki.length - 65);
    const message = Buffer.concat([Buffer.from(PREFIX), createHash('sha256').update('IAM RA').update(bytes).digest()]);
    for (const digest of DIGESTS) {
      // One CLI process at a time: TPM use stays serial.
      const r = await sign(['--private-key', keyPath, '--digest', digest, '--format', 'bin'], tpm.env);
      t.equal(r.code, 0, r.stderr);
      t.ok(await opensslVerify(pub, digest, message, r.stdout), `${type} ${digest}: the TPM's signature verifies`);
    }
  }
  const handle = await tpm.persistentKey('p256', 0x81000011);
  const r = await sign(['--private-key', handle, '--no-tpm-key-password', '--format', 'text'], tpm.env);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout.toString(), /^30[0-9a-f]+$/, 'a persistent handle signs too');
});
