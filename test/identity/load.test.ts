// loadIdentity accepts every supported format, made by the openssl CLI, and
// the loaded key really signs for the certificate.
import { createVerify, sign, verify, X509Certificate } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import forge from 'node-forge';
import t from 'tap';
import { describeIdentity, formatIdentity, identityFingerprint, loadIdentity, readPasswordFile } from '../../src/identity/load.js';
import type { Identity } from '../../src/identity/types.js';
import { convertKey, makeCA, makeChain, makeLeaf, makePfx, openssl, tempDir, type CertFiles } from '../helpers/pki.js';

const PASSWORD = 'correct horse battery staple';

async function assertSigns(t: Tap.Test, id: Identity, expectAlg: 'RSA' | 'EC'): Promise<void> {
  t.equal(id.signer.keyAlgorithm, expectAlg, 'key algorithm');
  const data = Buffer.from('string to sign');
  const sig = await id.signer.sign(data);
  t.ok(verify('sha256', data, id.certificate.publicKey, sig), 'signature by the loaded key verifies with the certificate');
  // And with an independent verifier object API.
  t.ok(createVerify('sha256').update(data).verify(id.certificate.publicKey, sig), 'createVerify agrees');
}

// tap's types are global-free; declare the bit we use.
declare namespace Tap {
  type Test = typeof t;
}

t.test('key formats', async (t) => {
  const dir = await tempDir();
  const ca = await makeCA(dir, 'Load Test CA');
  const cases: Array<{ keyType: 'rsa2048' | 'rsa4096' | 'p256' | 'p384'; alg: 'RSA' | 'EC'; formats: string[] }> = [
    { keyType: 'rsa2048', alg: 'RSA', formats: ['pkcs1', 'pkcs8', 'pkcs8-encrypted', 'pkcs1-encrypted', 'der', 'der-pkcs1', 'der-encrypted'] },
    { keyType: 'rsa4096', alg: 'RSA', formats: ['pkcs1', 'pkcs8', 'pkcs8-encrypted'] },
    { keyType: 'p256', alg: 'EC', formats: ['sec1', 'pkcs8', 'pkcs8-encrypted', 'sec1-encrypted', 'der', 'der-sec1', 'sec1-with-params'] },
    { keyType: 'p384', alg: 'EC', formats: ['sec1', 'pkcs8', 'pkcs8-encrypted', 'der'] },
  ];
  for (const c of cases) {
    const leaf = await makeLeaf(dir, ca, `client-${c.keyType}`, { keyType: c.keyType });
    for (const format of c.formats) {
      let keyPath: string;
      let password: string | undefined;
      switch (format) {
        case 'pkcs8-encrypted':
        case 'pkcs1-encrypted':
          password = PASSWORD;
          keyPath = await convertKey(leaf.keyPath, format, PASSWORD);
          break;
        case 'sec1-encrypted':
          password = PASSWORD;
          keyPath = `${leaf.keyPath}.sec1enc`;
          await openssl(['ec', '-in', leaf.keyPath, '-aes256', '-passout', `pass:${PASSWORD}`, '-out', keyPath]);
          break;
        case 'der-pkcs1':
          keyPath = `${leaf.keyPath}.pkcs1.der`;
          await openssl(['rsa', '-in', leaf.keyPath, '-traditional', '-outform', 'DER', '-out', keyPath]);
          break;
        case 'der-sec1':
          keyPath = `${leaf.keyPath}.sec1.der`;
          await openssl(['ec', '-in', leaf.keyPath, '-outform', 'DER', '-out', keyPath]);
          break;
        case 'der-encrypted':
          password = PASSWORD;
          keyPath = `${leaf.keyPath}.p8e.der`;
          await openssl(['pkcs8', '-topk8', '-v2', 'aes-256-cbc', '-in', leaf.keyPath, '-outform', 'DER', '-passout', `pass:${PASSWORD}`, '-out', keyPath]);
          break;
        case 'sec1-with-params':
          // What `openssl ecparam -genkey` writes: an EC PARAMETERS block, then the SEC1 key.
          keyPath = `${leaf.keyPath}.params.pem`;
          await writeFile(
            keyPath,
            (await openssl(['ecparam', '-name', 'prime256v1'])) + (await readFile(await convertKey(leaf.keyPath, 'sec1'), 'utf8')),
          );
          break;
        default:
          keyPath = await convertKey(leaf.keyPath, format as 'pkcs1' | 'pkcs8' | 'sec1' | 'der');
      }
      const id = await loadIdentity({ certificate: leaf.certPath, privateKey: keyPath, password });
      t.test(`${c.keyType} ${format}`, async (t) => {
        await assertSigns(t, id, c.alg);
        t.equal(id.serialDecimal, leaf.serialDecimal, 'serial in decimal');
        t.same(id.warnings, [], 'no warnings');
        t.equal(id.chain.length, 0, 'no chain');
      });
    }
  }
});

t.test('a password is ignored for an unencrypted key', async (t) => {
  const dir = await tempDir();
  const ca = await makeCA(dir);
  const leaf = await makeLeaf(dir, ca, 'plain');
  const id = await loadIdentity({ certificate: leaf.certPath, privateKey: leaf.keyPath, password: 'unused' });
  await assertSigns(t, id, 'EC');
});

t.test('DER certificate file', async (t) => {
  const dir = await tempDir();
  const ca = await makeCA(dir);
  const leaf = await makeLeaf(dir, ca, 'der-cert', { keyType: 'rsa2048' });
  const der = join(dir, 'leaf.der');
  await openssl(['x509', '-in', leaf.certPath, '-outform', 'DER', '-out', der]);
  const id = await loadIdentity({ certificate: der, privateKey: leaf.keyPath });
  await assertSigns(t, id, 'RSA');
  t.ok(id.certificateDer.equals(await readFile(der)), 'leaf DER is the file as given');
});

t.test('chain from the certificate file and from intermediates', async (t) => {
  const dir = await tempDir();
  const { root, intermediate, leaf } = await makeChain(dir, 'p256');
  const interDer = new X509Certificate(intermediate.certPem).raw;

  // leaf + intermediate in one file
  const bundle = join(dir, 'fullchain.pem');
  await writeFile(bundle, leaf.certPem + intermediate.certPem);
  let id = await loadIdentity({ certificate: bundle, privateKey: leaf.keyPath });
  t.equal(id.chain.length, 1, 'one intermediate from the certificate file');
  t.ok(id.chain[0]!.raw.equals(interDer), 'it is the intermediate');
  t.ok(id.certificateDer.equals(new X509Certificate(leaf.certPem).raw), 'first block is the leaf');

  // intermediates file
  id = await loadIdentity({ certificate: leaf.certPath, privateKey: leaf.keyPath, intermediates: intermediate.certPath });
  t.equal(id.chain.length, 1, 'one intermediate from --intermediates');
  t.ok(id.chain[0]!.raw.equals(interDer));

  // both, plus the root and a duplicate: the root (self-signed) is not sent, duplicates collapse
  const inter2 = join(dir, 'inter-and-root.pem');
  await writeFile(inter2, intermediate.certPem + root.certPem + leaf.certPem);
  id = await loadIdentity({ certificate: bundle, privateKey: leaf.keyPath, intermediates: inter2 });
  t.equal(id.chain.length, 1, 'root, duplicate and leaf copy dropped');
  t.ok(id.chain[0]!.raw.equals(interDer));

  // Two intermediates, nearest the leaf first, order kept as given.
  const inter2b = await makeCA(dir, 'Second Intermediate', { issuer: intermediate });
  const leaf2 = await makeLeaf(dir, inter2b, 'deep-client', { keyType: 'p384' });
  const ints = join(dir, 'two-ints.pem');
  await writeFile(ints, inter2b.certPem + intermediate.certPem);
  id = await loadIdentity({ certificate: leaf2.certPath, privateKey: leaf2.keyPath, intermediates: ints });
  t.same(
    id.chain.map((c) => c.subject),
    ['CN=Second Intermediate', 'CN=Test Intermediate CA'],
    'chain order as given, nearest the leaf first',
  );
  await assertSigns(t, id, 'EC');
});

t.test('key in the certificate file', async (t) => {
  const dir = await tempDir();
  const ca = await makeCA(dir);
  const leaf = await makeLeaf(dir, ca, 'combined');
  const combined = join(dir, 'combined.pem');
  await writeFile(combined, leaf.certPem + (await readFile(leaf.keyPath, 'utf8')));
  const id = await loadIdentity({ certificate: combined });
  await assertSigns(t, id, 'EC');
});

t.test('PKCS#12 bundles', async (t) => {
  const dir = await tempDir();
  const { root, intermediate, leaf } = await makeChain(dir, 'p256');
  const rsaLeaf = await makeLeaf(dir, intermediate, 'rsa-pfx-client', { keyType: 'rsa2048' });
  const interDer = new X509Certificate(intermediate.certPem).raw;
  for (const encoding of ['legacy-3des', 'aes256', 'rc2-40'] as const) {
    for (const [label, l, chain] of [
      ['EC, no chain', leaf, []],
      ['EC, with chain', leaf, [intermediate, root]],
      ['RSA, with chain', rsaLeaf, [intermediate]],
    ] as Array<[string, CertFiles, CertFiles[]]>) {
      const pfx = await makePfx(l, chain, encoding, PASSWORD);
      const id = await loadIdentity({ certificate: pfx, password: PASSWORD });
      t.test(`${encoding}: ${label}`, async (t) => {
        await assertSigns(t, id, l === leaf ? 'EC' : 'RSA');
        t.ok(id.certificateDer.equals(new X509Certificate(l.certPem).raw), 'leaf DER identical to the original');
        t.equal(id.serialDecimal, l.serialDecimal);
        t.equal(id.chain.length, chain.length ? 1 : 0, 'intermediate kept, root dropped');
        if (chain.length) t.ok(id.chain[0]!.raw.equals(interDer), 'chain is the intermediate, byte for byte');
      });
    }
  }
  // Leaf identified by key, whatever the bag order: a forge-made bundle (a third,
  // independent PKCS#12 writer) with the intermediate's bag before the leaf's.
  const forgeKey = forge.pki.privateKeyFromPem(await readFile(rsaLeaf.keyPath, 'utf8'));
  const asn1 = forge.pkcs12.toPkcs12Asn1(
    forgeKey,
    [forge.pki.certificateFromPem(intermediate.certPem), forge.pki.certificateFromPem(rsaLeaf.certPem)],
    PASSWORD,
    { algorithm: '3des' },
  );
  const odd = join(dir, 'odd-order.p12');
  await writeFile(odd, Buffer.from(forge.asn1.toDer(asn1).getBytes(), 'binary'));
  const oddId = await loadIdentity({ certificate: odd, password: PASSWORD });
  t.equal(oddId.certificate.subject, 'CN=rsa-pfx-client', 'leaf found by matching the key, not by position');
  t.equal(oddId.chain.length, 1, 'the intermediate is the chain');
  await assertSigns(t, oddId, 'RSA');
  // Empty password, given or not.
  const emptyPw = await makePfx(leaf, [], 'aes256', '');
  await assertSigns(t, await loadIdentity({ certificate: emptyPw }), 'EC');
  await assertSigns(t, await loadIdentity({ certificate: emptyPw, password: '' }), 'EC');
  // Detected by content whatever the extension.
  const renamed = join(dir, 'bundle.bin');
  await writeFile(renamed, await readFile(await makePfx(leaf, [], 'legacy-3des', PASSWORD)));
  await assertSigns(t, await loadIdentity({ certificate: renamed, password: PASSWORD }), 'EC');
  // Non-ASCII password (PKCS#12 KDF uses BMPString, PBES2 uses UTF-8).
  for (const encoding of ['legacy-3des', 'aes256'] as const) {
    const pfx = await makePfx(leaf, [], encoding, 'pässwörd-ü');
    await assertSigns(t, await loadIdentity({ certificate: pfx, password: 'pässwörd-ü' }), 'EC');
  }
});

t.test('expiring soon is a warning, not an error', async (t) => {
  const dir = await tempDir();
  const ca = await makeCA(dir);
  const leaf = await makeLeaf(dir, ca, 'soon', { days: 3 });
  const id = await loadIdentity({ certificate: leaf.certPath, privateKey: leaf.keyPath }, { expiryWarningDays: 7 });
  t.equal(id.warnings.length, 1);
  t.match(id.warnings[0], /expires in [23] days/);
  t.match(id.warnings[0], leaf.certPath);
  const quiet = await loadIdentity({ certificate: leaf.certPath, privateKey: leaf.keyPath }, { expiryWarningDays: 1 });
  t.same(quiet.warnings, [], 'threshold respected');
});

t.test('readPasswordFile strips exactly one trailing newline', async (t) => {
  const dir = await tempDir();
  const cases: Array<[string, string]> = [
    ['secret\n', 'secret'],
    ['secret\r\n', 'secret'],
    ['secret', 'secret'],
    ['secret\n\n', 'secret\n'],
    [' spaced secret \n', ' spaced secret '],
    ['', ''],
  ];
  let i = 0;
  for (const [content, expected] of cases) {
    const p = join(dir, `pw${i++}`);
    await writeFile(p, content);
    t.equal(await readPasswordFile(p), expected, JSON.stringify(content));
  }
  await t.rejects(readPasswordFile(join(dir, 'missing')), { name: 'UserError', message: /missing: password file not found/ });
  await t.rejects(readPasswordFile(dir), { name: 'UserError', message: /is a directory/ });
});

t.test('identityFingerprint changes only when file content changes', async (t) => {
  const dir = await tempDir();
  const ca = await makeCA(dir);
  const leaf = await makeLeaf(dir, ca, 'fp');
  const src = { certificate: leaf.certPath, privateKey: leaf.keyPath };
  const a = await identityFingerprint(src);
  t.match(a, /^[0-9a-f]{64}$/);
  t.equal(await identityFingerprint(src), a, 'stable');
  t.equal(await identityFingerprint({ ...src, password: 'x' }), a, 'password not part of it');
  await writeFile(leaf.certPath, leaf.certPem); // same bytes rewritten
  t.equal(await identityFingerprint(src), a, 'rewrite with same bytes: unchanged');
  const other = await makeLeaf(dir, ca, 'fp2');
  await writeFile(leaf.certPath, other.certPem);
  const b = await identityFingerprint(src);
  t.not(b, a, 'new certificate content: changed');
  const c = await identityFingerprint({ ...src, certificate: join(dir, 'gone.pem') });
  t.not(c, b, 'missing file: changed, no throw');
});

t.test('describeIdentity has no secrets and the expected fields', async (t) => {
  const dir = await tempDir();
  const ca = await makeCA(dir, 'Describe CA');
  const leaf = await makeLeaf(dir, ca, 'describe-me', { keyType: 'p384' });
  const id = await loadIdentity({ certificate: leaf.certPath, privateKey: leaf.keyPath });
  const d = describeIdentity(id);
  t.equal(d.subject, 'CN=describe-me');
  t.equal(d.issuer, 'CN=Describe CA');
  t.equal(d.serial, leaf.serialDecimal);
  t.equal(d.keyType, 'EC P-384');
  t.match(d.notAfter, /^\d{4}-\d\d-\d\dT/);
  const line = formatIdentity(id);
  t.match(line, /subject="CN=describe-me"/);
  const keyPem = await readFile(leaf.keyPath, 'utf8');
  const keyBody = keyPem.split('\n')[1]!;
  t.notOk(JSON.stringify(d).includes(keyBody) || line.includes(keyBody), 'no key material');
});
