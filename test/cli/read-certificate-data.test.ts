// `read-certificate-data` as aws_signing_helper's: for a certificate file its
// JSON (keyType, base64 DER, decimal serial, supported algorithms, in that
// order, no newline) with every field taken from openssl here; for a pkcs11:
// URI its list of every matching certificate (SHA-1 fingerprint, subject and
// issuer as Go prints names, hex serial, a URI naming the certificate).
import t from 'tap';
import { X509Certificate } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runCli } from '../helpers/cli.js';
import { makeCA, makeLeaf, openssl, tempDir } from '../helpers/pki.js';
import { createToken, softhsmMissing } from '../helpers/softhsm.js';
import { goNameString, parseCertificateFields } from '../../src/identity/x509-fields.js';
import { mlDsaUnsupported } from '../../src/identity/signer.js';
import { sequence, set, oid, utf8String, printableString, ia5String } from '../../src/asn1/encoder.js';

const dir = await tempDir('ra-read-cert-');
const ca = await makeCA(dir, 'Read Cert CA');

async function derBase64(certPath: string): Promise<string> {
  const out = join(dir, `${Math.random().toString(36).slice(2)}.der`);
  await openssl(['x509', '-in', certPath, '-outform', 'DER', '-out', out]);
  return (await readFile(out)).toString('base64');
}

for (const [keyType, name] of [
  ['rsa2048', 'RSA'],
  ['p256', 'EC'],
  ['p384', 'EC'],
] as const) {
  t.test(`${keyType} certificate file: the helper's JSON`, async (t) => {
    const leaf = await makeLeaf(dir, ca, `${keyType}-reader`, { keyType, serial: keyType === 'p384' ? '0x00f1e2d3c4b5a697' : undefined });
    const r = await runCli(['read-certificate-data', '--certificate', leaf.certPath]);
    t.equal(r.code, 0, r.stderr);
    const expected =
      `{"keyType":"${name}","certificateData":"${await derBase64(leaf.certPath)}","serialNumber":"${leaf.serialDecimal}",` +
      `"supportedAlgorithms":["${name}SHA256","${name}SHA384","${name}SHA512"]}`;
    t.equal(r.stdout, expected, 'field for field, in the helper\'s order, no newline');
    // A chain file: the first certificate, as the helper reads it.
    const bundle = join(dir, `${keyType}-bundle.pem`);
    await writeFile(bundle, leaf.certPem + ca.certPem);
    t.equal((await runCli(['read-certificate-data', '--certificate', bundle])).stdout, expected, 'a bundle: its first certificate');
  });
}

t.test('ML-DSA certificate: the variant as key type and only algorithm, as helper 1.8 prints it', { skip: mlDsaUnsupported() }, async (t) => {
  const pki = join(dir, 'mldsa');
  const init = await runCli(['pki', 'init', pki, '--key-type', 'ml-dsa-65', '--client-key-type', 'ml-dsa-65']);
  t.equal(init.code, 0, init.stderr);
  const certPath = join(pki, 'client.pem');
  const r = await runCli(['read-certificate-data', '--certificate', certPath]);
  t.equal(r.code, 0, r.stderr);
  const serial = new X509Certificate(await readFile(certPath)).serialNumber; // openssl 3.0 here cannot read ML-DSA
  const data = JSON.parse(r.stdout) as Record<string, unknown>;
  t.same(Object.keys(data), ['keyType', 'certificateData', 'serialNumber', 'supportedAlgorithms']);
  t.equal(data.keyType, 'ML-DSA-65');
  t.same(data.supportedAlgorithms, ['ML-DSA-65']);
  t.equal(data.certificateData, Buffer.from((await readFile(certPath, 'utf8')).replace(/-----[^-]+-----|\s/g, ''), 'base64').toString('base64'));
  t.equal(data.serialNumber, BigInt(`0x${serial}`).toString(10));
});

t.test('bad input: a clear error, nothing on stdout', async (t) => {
  const none = await runCli(['read-certificate-data']);
  t.equal(none.code, 1);
  t.match(none.stderr, /give --certificate FILE/);
  const missing = await runCli(['read-certificate-data', '--certificate', join(dir, 'nope.pem')]);
  t.equal(missing.code, 1);
  t.match(missing.stderr, /nope\.pem/);
  t.equal(missing.stdout, '');
  const store = await runCli(['read-certificate-data', '--cert-selector', 'Key=x509Subject,Value=CN=x']);
  t.match(store.stderr, /--cert-selector: OS certificate stores .* not supported on this platform/);
  const sys = await runCli(['read-certificate-data', '--system-store-name', 'MY']);
  t.match(sys.stderr, /--system-store-name: OS certificate stores .* not supported on this platform/);
});

t.test("names as Go's pkix.Name.String() prints them", async (t) => {
  const atv = (type: string, value: Buffer) => set(sequence(oid(type), value));
  const name = sequence(
    atv('2.5.4.6', printableString('US')),
    atv('2.5.4.10', utf8String('Acme, Inc.')),
    atv('2.5.4.11', utf8String('Ops')),
    atv('2.5.4.11', utf8String('#2 team')),
    atv('1.2.840.113549.1.9.1', ia5String('ops@example.com')),
    atv('2.5.4.3', utf8String(' web+1 ')),
  );
  t.equal(
    goNameString(name),
    'CN=\\ web\\+1\\ ,OU=Ops+OU=\\#2 team,O=Acme\\, Inc.,C=US,1.2.840.113549.1.9.1=#0c0f6f7073406578616d706c652e636f6d',
    "Go's order, escaping, multi-valued OU, other types as OID=#hex (re-encoded as a UTF8String)",
  );
  const leaf = await makeLeaf(dir, ca, 'plain-name');
  const fields = parseCertificateFields(Buffer.from(await derBase64(leaf.certPath), 'base64'));
  t.equal(goNameString(fields.subjectName), 'CN=plain-name');
  t.equal(goNameString(fields.issuerName), 'CN=Read Cert CA');
});

t.test('pkcs11: URI: the helper\'s list of every matching certificate (SoftHSM)', { skip: softhsmMissing() }, async (t) => {
  const tok = await createToken(t, 'reader');
  const env = { SOFTHSM2_CONF: tok.conf };
  await tok.keypair('rsa2048', 'k1', '01');
  await tok.keypair('p256', 'k2', '02');
  const c1 = await tok.issue(ca, '01', 'cert-one', { subject: '/C=US/O=Acme/CN=one' });
  const c2 = await tok.issue(ca, '02', 'cert-two');
  const lib = ['--pkcs11-lib', tok.module];
  const entry = async (i: number, certPath: string) => {
    const fp = (await openssl(['x509', '-in', certPath, '-noout', '-fingerprint', '-sha1'])).trim().replace(/^.*=/, '').replace(/:/g, '').toLowerCase();
    const serial = (await openssl(['x509', '-in', certPath, '-noout', '-serial'])).trim().replace(/^serial=0*/, '');
    return { head: `${i}) Hex Fingerprint: ${fp}\n`, serial: `Serial Number: ${serial}\n` };
  };
  const all = await runCli(['read-certificate-data', '--certificate', `pkcs11:token=${tok.label}`, ...lib], { cleanEnv: true, env });
  t.equal(all.code, 0, all.stderr);
  t.match(all.stdout, /^Matching identities\n1\) Hex Fingerprint: /, "the helper's heading");
  const blocks = all.stdout.replace(/^Matching identities\n/, '').split(/\n\n/).filter(Boolean);
  t.equal(blocks.length, 2, 'one entry per certificate on the token');
  const e1 = await entry(1, c1.certPath);
  const e2 = await entry(2, c2.certPath);
  const one = blocks.find((b) => b.includes('Subject: CN=one'))!;
  const two = blocks.find((b) => b.includes('Subject: CN=cert-two'))!;
  t.ok(one && two, 'both certificates listed');
  t.match(one, 'Subject: CN=one,O=Acme,C=US\nIssuer: CN=Read Cert CA\n', "subject and issuer as Go prints them");
  t.ok(one.includes(e1.serial.trim()) && two.includes(e2.serial.trim()), 'serials in upper-case hex, as the helper prints them');
  t.ok(all.stdout.includes(e1.head.slice(3)) && all.stdout.includes(e2.head.slice(3)), 'SHA-1 fingerprints of the DER');
  const uri = /URI: (pkcs11:\S+)/.exec(one)?.[1];
  t.match(uri, /^pkcs11:token=reader;manufacturer=SoftHSM%20project;serial=[0-9a-f]+;model=SoftHSM%20v2;slot-description=/, 'a URI naming the token…');
  t.match(uri, /;object=cert-one;type=cert;id=%01$/, '…and the certificate');

  const single = await runCli(['read-certificate-data', '--certificate', uri!, ...lib], { cleanEnv: true, env });
  t.equal(single.code, 0, single.stderr);
  t.equal(single.stdout, `Matching identities\n1) ${one.slice(3)}\n\n`, 'the listed URI names exactly that certificate');
  const none = await runCli(['read-certificate-data', '--certificate', `pkcs11:token=${tok.label};object=absent`, ...lib], { cleanEnv: true, env });
  t.equal(none.stdout, 'No matching identities\n', "the helper's answer for no match");
});
