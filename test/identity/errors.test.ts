// Every bad input gives one specific, one-line UserError naming the file and
// the problem, and never the password or key material.
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import forge from 'node-forge';
import t from 'tap';
import { UserError } from '../../src/errors.js';
import { parseDer, type Asn1 } from '../../src/asn1/reader.js';
import { fileError } from '../../src/identity/files.js';
import { loadIdentity } from '../../src/identity/load.js';
import type { IdentitySource } from '../../src/identity/types.js';
import { convertKey, makeCA, makeLeaf, makePfx, openssl, tempDir } from '../helpers/pki.js';

const PASSWORD = 'Sup3r-s3cret-pw';

const dir = await tempDir();
const ca = await makeCA(dir, 'Errors CA');
const leaf = await makeLeaf(dir, ca, 'errors-client', { keyType: 'p256' });
const rsaLeaf = await makeLeaf(dir, ca, 'errors-rsa', { keyType: 'rsa2048' });
const keyPem = await readFile(leaf.keyPath, 'utf8');
const keyBody = keyPem.split('\n')[1]!;

async function expectError(t: Tap, source: IdentitySource, pattern: RegExp, name: string): Promise<void> {
  try {
    await loadIdentity(source);
    t.fail(`${name}: loaded, expected an error`);
  } catch (err) {
    t.ok(err instanceof UserError, `${name}: a UserError`);
    const msg = (err as Error).message;
    t.match(msg, pattern, name);
    t.notOk(msg.includes('\n'), `${name}: one line`);
    t.notOk(msg.includes(PASSWORD), `${name}: no password in the message`);
    t.notOk(msg.includes(keyBody), `${name}: no key material in the message`);
  }
}
type Tap = typeof t;

const file = (name: string) => join(dir, name);
async function write(name: string, content: string | Buffer): Promise<string> {
  await writeFile(file(name), content);
  return file(name);
}

t.test('unreadable certificate files', async (t) => {
  await expectError(t, { certificate: file('nope.pem'), privateKey: leaf.keyPath }, /nope\.pem: certificate file not found/, 'missing');
  await mkdir(file('a-dir'), { recursive: true });
  await expectError(t, { certificate: file('a-dir'), privateKey: leaf.keyPath }, /a-dir: is a directory, expected the certificate file/, 'directory');
  await expectError(t, { certificate: await write('empty.pem', ''), privateKey: leaf.keyPath }, /empty\.pem: certificate file is empty/, 'empty');
  await expectError(t, { certificate: await write('blank.pem', '\n  \n'), privateKey: leaf.keyPath }, /blank\.pem: certificate file is empty/, 'whitespace only');
  // Permission errors: root reads anything, so check the mapping itself.
  const e = fileError('/etc/ra/tls.crt', 'certificate', Object.assign(new Error('x'), { code: 'EACCES' }));
  t.match(e.message, /^\/etc\/ra\/tls\.crt: permission denied reading the certificate file; make it readable by /);
});

t.test('garbage and truncated certificates', async (t) => {
  await expectError(t, { certificate: await write('garbage.pem', 'hello, this is not a certificate\n'), privateKey: leaf.keyPath }, /garbage\.pem: not a PEM or DER certificate or a PKCS#12 bundle/, 'garbage text');
  await expectError(t, { certificate: await write('random.der', Buffer.from([0x30, 0x82, 0x05, 0x00, 1, 2, 3])), privateKey: leaf.keyPath }, /random\.der: not a PEM or DER certificate/, 'truncated DER');
  const lines = leaf.certPem.trim().split('\n');
  await expectError(t, { certificate: await write('noend.pem', lines.slice(0, -3).join('\n') + '\n'), privateKey: leaf.keyPath }, /noend\.pem: PEM block "CERTIFICATE" has no END line \(truncated file\?\)/, 'truncated PEM');
  const badB64 = [lines[0], lines[1], '!!!! not base64 !!!!', ...lines.slice(2)].join('\n');
  await expectError(t, { certificate: await write('badb64.pem', badB64), privateKey: leaf.keyPath }, /badb64\.pem: PEM block "CERTIFICATE" #1 has corrupt base64/, 'corrupt base64');
  const cut = [lines[0], ...lines.slice(1, 4), lines[lines.length - 1]].join('\n');
  await expectError(t, { certificate: await write('cut.pem', cut), privateKey: leaf.keyPath }, /cut\.pem: certificate #1 is not a valid X\.509 certificate/, 'truncated DER inside PEM');
  const der = file('leaf.der');
  await openssl(['x509', '-in', leaf.certPath, '-outform', 'DER', '-out', der]);
  await writeFile(file('leaf-cut.der'), (await readFile(der)).subarray(0, 200));
  await expectError(t, { certificate: file('leaf-cut.der'), privateKey: leaf.keyPath }, /leaf-cut\.der: not a PEM or DER certificate/, 'truncated DER file');
});

t.test('PEM without a certificate', async (t) => {
  const pub = await openssl(['pkey', '-in', leaf.keyPath, '-pubout']);
  await expectError(t, { certificate: await write('pub.pem', pub), privateKey: leaf.keyPath }, /pub\.pem: no CERTIFICATE PEM block found/, 'public key only');
  await expectError(t, { certificate: leaf.keyPath, privateKey: leaf.certPath }, /contains a private key but no certificate; did you swap/, 'swapped paths');
  const derKey = await convertKey(leaf.keyPath, 'der');
  await expectError(t, { certificate: derKey }, /contains a private key, not a certificate; did you swap/, 'DER key as certificate');
});

t.test('key files', async (t) => {
  await expectError(t, { certificate: leaf.certPath }, /no private key given; give the key file/, 'no key given');
  await expectError(t, { certificate: leaf.certPath, privateKey: file('nokey.pem') }, /nokey\.pem: private key file not found/, 'missing key');
  await expectError(t, { certificate: leaf.certPath, privateKey: await write('empty.key', '') }, /empty\.key: private key file is empty/, 'empty key');
  await expectError(t, { certificate: leaf.certPath, privateKey: leaf.certPath }, /contains a certificate but no private key/, 'certificate as key');
  await expectError(t, { certificate: leaf.certPath, privateKey: await write('junk.key', 'junk junk junk') }, /junk\.key: not a PEM or DER private key/, 'garbage key');
  const lines = keyPem.trim().split('\n');
  await expectError(t, { certificate: leaf.certPath, privateKey: await write('trunc.key', lines.slice(0, -1).join('\n')) }, /trunc\.key: PEM block "PRIVATE KEY" has no END line/, 'truncated key PEM');
  const corrupt = [lines[0], lines[1], lines[lines.length - 1]].join('\n');
  await expectError(t, { certificate: leaf.certPath, privateKey: await write('corrupt.key', corrupt) }, /corrupt\.key: the PRIVATE KEY block is not a valid private key/, 'corrupt key DER in PEM');
  const pub = await openssl(['pkey', '-in', leaf.keyPath, '-pubout']);
  await expectError(t, { certificate: leaf.certPath, privateKey: await write('pub.key', pub) }, /pub\.key: contains a public key, not a private key/, 'public key as key');
});

t.test('passwords', async (t) => {
  const p8 = await convertKey(rsaLeaf.keyPath, 'pkcs8-encrypted', PASSWORD);
  const p1 = await convertKey(rsaLeaf.keyPath, 'pkcs1-encrypted', PASSWORD);
  const p8der = `${rsaLeaf.keyPath}.enc.der`;
  await openssl(['pkcs8', '-topk8', '-v2', 'aes-256-cbc', '-in', rsaLeaf.keyPath, '-outform', 'DER', '-passout', `pass:${PASSWORD}`, '-out', p8der]);
  for (const [name, keyPath] of [['encrypted PKCS#8', p8], ['encrypted traditional PEM', p1], ['encrypted PKCS#8 DER', p8der]] as const) {
    await expectError(t, { certificate: rsaLeaf.certPath, privateKey: keyPath }, /private key is encrypted; give its password with --key-password-file FILE or ROLESANYWHERE_KEY_PASSWORD/, `${name}: missing password`);
    await expectError(t, { certificate: rsaLeaf.certPath, privateKey: keyPath, password: 'wrong' + PASSWORD }, /wrong password for the encrypted private key/, `${name}: wrong password`);
  }
  for (const encoding of ['legacy-3des', 'aes256', 'rc2-40'] as const) {
    const pfx = await makePfx(leaf, [ca], encoding, PASSWORD);
    await expectError(t, { certificate: pfx }, /PKCS#12 bundle is encrypted; give its password with --key-password-file FILE or ROLESANYWHERE_KEY_PASSWORD/, `${encoding}: missing password`);
    await expectError(t, { certificate: pfx, password: PASSWORD + 'x' }, /wrong password for the PKCS#12 bundle/, `${encoding}: wrong password`);
  }
});

t.test('PKCS#12 content problems', async (t) => {
  const noKey = file('nokey.p12');
  await openssl(['pkcs12', '-export', '-nokeys', '-in', leaf.certPath, '-passout', `pass:${PASSWORD}`, '-out', noKey]);
  await expectError(t, { certificate: noKey, password: PASSWORD }, /nokey\.p12: PKCS#12 bundle has no private key/, 'no key');
  const noCert = file('nocert.p12');
  await openssl(['pkcs12', '-export', '-nocerts', '-inkey', leaf.keyPath, '-passout', `pass:${PASSWORD}`, '-out', noCert]);
  await expectError(t, { certificate: noCert, password: PASSWORD }, /nocert\.p12: PKCS#12 bundle has no certificate/, 'no certificate');
  const pfx = await makePfx(leaf, [], 'aes256', PASSWORD);
  await expectError(t, { certificate: pfx, privateKey: leaf.keyPath, password: PASSWORD }, /is a PKCS#12 bundle, which holds its own private key; leave out the private key/, 'PFX plus a key');
  await writeFile(file('cut.p12'), (await readFile(pfx)).subarray(0, 300));
  await expectError(t, { certificate: file('cut.p12'), password: PASSWORD }, /cut\.p12: PKCS#12 bundle is corrupt or truncated/, 'truncated PFX');
  await expectError(t, { certificate: await write('text.pfx', 'not a bundle at all'), password: PASSWORD }, /text\.pfx: PKCS#12 bundle is corrupt or truncated/, 'garbage .pfx');
  // A bundle whose key matches none of its certificates (forge writes what openssl refuses to).
  const forgeKey = forge.pki.privateKeyFromPem(await readFile(rsaLeaf.keyPath, 'utf8'));
  const asn1 = forge.pkcs12.toPkcs12Asn1(forgeKey, [forge.pki.certificateFromPem(ca.certPem)], PASSWORD, { algorithm: '3des' });
  const mismatched = await write('mismatch.p12', Buffer.from(forge.asn1.toDer(asn1).getBytes(), 'binary'));
  await expectError(t, { certificate: mismatched, password: PASSWORD }, /mismatch\.p12: none of the 1 certificates in the PKCS#12 bundle matches its private key/, 'key matches no certificate');
});

t.test('key and certificate do not match', async (t) => {
  await expectError(t, { certificate: leaf.certPath, privateKey: rsaLeaf.keyPath }, /errors-rsa-\d+\.key: private key .* does not match the certificate .*errors-client.*\(different public keys\); use the key the certificate was issued for/, 'mismatch');
  // Chain first, leaf second: the key matches the second certificate.
  const reversed = await write('reversed.pem', ca.certPem + leaf.certPem);
  await expectError(t, { certificate: reversed, privateKey: leaf.keyPath }, /reversed\.pem: the private key matches certificate #2 in the file, not the first one; put the client \(leaf\) certificate first/, 'leaf not first');
});

t.test('unsupported key types name the type and what is supported', async (t) => {
  const supported = /Roles Anywhere supports RSA \(2048 bits or more\), EC P-256\/P-384 and ML-DSA-44\/65\/87/;
  for (const keyType of ['ed25519', 'dsa'] as const) {
    const l = await makeLeaf(dir, ca, `bad-${keyType}`, { keyType });
    await expectError(t, { certificate: l.certPath, privateKey: l.keyPath }, new RegExp(`${keyType === 'dsa' ? 'DSA 2048-bit' : 'Ed25519'} keys are not supported; ${supported.source}`), keyType);
  }
  const p521 = join(dir, 'p521.key');
  await openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-521', '-out', p521]);
  const l521 = await makeLeaf(dir, ca, 'bad-p521', { keyPath: p521 });
  await expectError(t, { certificate: l521.certPath, privateKey: p521 }, new RegExp(`EC P-521 keys are not supported; ${supported.source}`), 'P-521');
  const k1 = join(dir, 'k1.key');
  await openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:secp256k1', '-out', k1]);
  const lk1 = await makeLeaf(dir, ca, 'bad-k1', { keyPath: k1 });
  await expectError(t, { certificate: lk1.certPath, privateKey: k1 }, /EC secp256k1 keys are not supported/, 'secp256k1');
  const rsa1024 = join(dir, 'rsa1024.key');
  await openssl(['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:1024', '-out', rsa1024]);
  const l1024 = await makeLeaf(dir, ca, 'bad-1024', { keyPath: rsa1024 });
  await expectError(t, { certificate: l1024.certPath, privateKey: rsa1024 }, /RSA key is only 1024 bits; use RSA 2048 bits or more/, 'RSA 1024');
  const sshKey = await write('id_ed25519', '-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n');
  await expectError(t, { certificate: leaf.certPath, privateKey: sshKey }, /OpenSSH private key format is not supported; convert it with `ssh-keygen -p -m PKCS8/, 'OpenSSH key');
});

t.test('intermediates file problems', async (t) => {
  await expectError(t, { certificate: leaf.certPath, privateKey: leaf.keyPath, intermediates: file('no-ints.pem') }, /no-ints\.pem: intermediates file not found/, 'missing');
  await expectError(t, { certificate: leaf.certPath, privateKey: leaf.keyPath, intermediates: leaf.keyPath }, /no CERTIFICATE PEM block found in the intermediates file/, 'no certificate');
  await expectError(t, { certificate: leaf.certPath, privateKey: leaf.keyPath, intermediates: await write('ints.bin', 'xyz') }, /ints\.bin: intermediates file is not a PEM or DER certificate/, 'garbage');
});

/** DER TLV with a definite length. */
function tlv(tag: number, content: Buffer): Buffer {
  const n = content.length;
  const len = n < 0x80 ? Buffer.from([n]) : (() => {
    const bytes: number[] = [];
    for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
    return Buffer.from([0x80 | bytes.length, ...bytes]);
  })();
  return Buffer.concat([Buffer.from([tag]), len, content]);
}

/**
 * Re-encodes an openssl-made PKCS#12 with every INTEGER equal to `from`
 * replaced by `to`, descending into OCTET STRINGs that hold DER (the
 * AuthenticatedSafe and SafeContents). Used to forge hostile iteration counts.
 */
function replaceIntegers(der: Buffer, from: bigint, to: bigint): Buffer {
  const intBytes = (v: bigint) => {
    let hex = v.toString(16);
    if (hex.length % 2) hex = '0' + hex;
    if (parseInt(hex.slice(0, 2), 16) & 0x80) hex = '00' + hex;
    return Buffer.from(hex, 'hex');
  };
  const walk = (node: Asn1): Buffer => {
    if (node.tag === 0x02 && node.value.length > 0 && BigInt('0x' + node.value.toString('hex')) === from) return tlv(0x02, intBytes(to));
    if (node.constructed) return tlv(node.tag, Buffer.concat(node.children.map(walk)));
    if (node.tag === 0x04) {
      try {
        const inner = parseDer(node.value);
        if (inner.tag === 0x30) return tlv(0x04, walk(inner));
      } catch {
        // not DER inside: ciphertext, a digest, a salt
      }
    }
    return node.raw;
  };
  return walk(parseDer(der));
}

t.test('PKCS#12 with absurd iteration counts is refused at once instead of hanging', async (t) => {
  const huge = 2n ** 31n - 1n;
  const cases: Array<[string, string[]]> = [
    ['MAC (PKCS#12 KDF)', []],
    ['PBES2/PBKDF2 key, no MAC', ['-nomac']],
    ['PBE-SHA1-3DES key, no MAC', ['-nomac', '-keypbe', 'PBE-SHA1-3DES', '-certpbe', 'PBE-SHA1-3DES']],
  ];
  for (const [name, extra] of cases) {
    const made = file(`iter-${cases.findIndex((c) => c[0] === name)}.p12`);
    await openssl(['pkcs12', '-export', '-inkey', leaf.keyPath, '-in', leaf.certPath, '-passout', `pass:${PASSWORD}`, '-iter', '2048', ...extra, '-out', made]);
    const hostile = await write(`hostile-${cases.findIndex((c) => c[0] === name)}.p12`, replaceIntegers(await readFile(made), 2048n, huge));
    await expectError(t, { certificate: hostile, password: PASSWORD }, /hostile-\d\.p12: PKCS#12 bundle uses an unsupported iteration count 2147483647/, name);
  }
});
