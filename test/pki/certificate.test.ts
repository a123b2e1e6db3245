import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { createCertificate, keyIdentifier, randomSerial, readCertificateFields, type BuiltCertificate } from '../../src/pki/certificate.js';
import { encodeName, parseSubject } from '../../src/pki/name.js';
import { UserError } from '../../src/errors.js';
import { openssl, tempDir } from '../helpers/pki.js';

const YEAR = 365 * 86_400_000;

function keys(kind: 'rsa' | 'p256' | 'p384'): { privateKey: KeyObject; publicKey: KeyObject } {
  if (kind === 'rsa') return generateKeyPairSync('rsa', { modulusLength: 2048 });
  return generateKeyPairSync('ec', { namedCurve: kind === 'p256' ? 'P-256' : 'P-384' });
}

async function save(dir: string, name: string, cert: BuiltCertificate): Promise<string> {
  const p = join(dir, name);
  await writeFile(p, cert.pem);
  return p;
}

function makePair(caKind: 'rsa' | 'p256' | 'p384', leafKind: 'rsa' | 'p256' | 'p384', notAfter = new Date(Date.now() + YEAR)) {
  const caKeys = keys(caKind);
  const ca = createCertificate({
    subject: '/CN=Unit CA/O=Example Org',
    subjectKey: caKeys.privateKey,
    notAfter: new Date(Date.now() + 10 * YEAR),
    ca: true,
    keyUsage: ['keyCertSign', 'cRLSign'],
  });
  const leafKeys = keys(leafKind);
  const leaf = createCertificate({
    subject: 'CN=unit-client,O=Example Org,C=DE',
    subjectKey: leafKeys.publicKey,
    issuer: { certificate: ca.certificate, privateKey: caKeys.privateKey },
    notAfter,
    keyUsage: ['digitalSignature'],
    extendedKeyUsage: ['clientAuth'],
  });
  return { caKeys, ca, leafKeys, leaf };
}

for (const [caKind, leafKind, sigName] of [
  ['rsa', 'rsa', 'sha256WithRSAEncryption'],
  ['p384', 'p256', 'ecdsa-with-SHA384'],
  ['p256', 'p256', 'ecdsa-with-SHA256'],
  ['rsa', 'p256', 'sha256WithRSAEncryption'],
] as const) {
  t.test(`${caKind} CA issues a ${leafKind} client certificate that openssl and Node accept`, async (t) => {
    const dir = await tempDir();
    const { ca, leaf, leafKeys } = makePair(caKind, leafKind);
    const caPath = await save(dir, 'ca.pem', ca);
    const leafPath = await save(dir, 'leaf.pem', leaf);

    t.match(await openssl(['verify', '-CAfile', caPath, leafPath]), /leaf\.pem: OK/);
    t.match(await openssl(['verify', '-CAfile', caPath, caPath]), /OK/, 'the CA verifies as self-signed');

    t.ok(leaf.certificate.checkIssued(ca.certificate), 'checkIssued');
    t.ok(leaf.certificate.verify(ca.certificate.publicKey), 'verify with the CA key');
    t.ok(ca.certificate.verify(ca.certificate.publicKey), 'CA self-signature');
    t.equal(ca.certificate.ca, true);
    t.equal(leaf.certificate.ca, false);
    t.ok(leaf.certificate.publicKey.export({ type: 'spki', format: 'der' }).equals(leafKeys.publicKey.export({ type: 'spki', format: 'der' })));
    t.equal(leaf.signatureAlgorithm, sigName);

    const caText = await openssl(['x509', '-in', caPath, '-noout', '-text']);
    t.match(caText, /Version: 3 \(0x2\)/);
    t.match(caText, /X509v3 Basic Constraints: critical\s+CA:TRUE/);
    t.match(caText, /X509v3 Key Usage: critical\s+Certificate Sign, CRL Sign/);
    t.match(caText, new RegExp(`Signature Algorithm: ${sigName}`));
    t.match(caText, /Subject: CN = Unit CA, O = Example Org/);

    const text = await openssl(['x509', '-in', leafPath, '-noout', '-text']);
    t.match(text, /Version: 3 \(0x2\)/);
    t.match(text, /X509v3 Basic Constraints: critical\s+CA:FALSE/);
    t.match(text, /X509v3 Key Usage: critical\s+Digital Signature\n/);
    t.match(text, /X509v3 Extended Key Usage:\s*\n\s+TLS Web Client Authentication/);
    t.match(text, /Subject: CN = unit-client, O = Example Org, C = DE/);
    t.match(text, /Issuer: CN = Unit CA, O = Example Org/);

    // SKI/AKI link the two, and the SKI is the RFC 5280 method-1 hash (what openssl computes).
    const leafFields = readCertificateFields(leaf.der);
    const caFields = readCertificateFields(ca.der);
    t.ok(caFields.subjectKeyIdentifier?.equals(keyIdentifier(ca.certificate.publicKey)));
    const aki = caFields.subjectKeyIdentifier!.toString('hex').toUpperCase().match(/../g)!.join(':');
    t.match(text, new RegExp(`X509v3 Authority Key Identifier:\\s*\\n\\s+(keyid:)?${aki}`));
    t.ok(leafFields.subjectKeyIdentifier?.equals(keyIdentifier(leafKeys.publicKey)));
    t.equal(leafFields.extensions.get('2.5.29.19')?.critical, true);
    t.equal(leafFields.extensions.get('2.5.29.15')?.critical, true);
    t.equal(leafFields.extensions.get('2.5.29.37')?.critical, false);
    // The issuer name bytes are copied from the CA's subject.
    t.ok(leaf.certificate.issuer === ca.certificate.subject);
  });
}

t.test('validity: whole seconds; dates from 2050 use GeneralizedTime and openssl reads them', async (t) => {
  const dir = await tempDir();
  const notAfter = new Date(Date.UTC(2061, 5, 7, 8, 9, 10, 999));
  const { ca, leaf } = makePair('p256', 'p256', notAfter);
  const leafPath = await save(dir, 'leaf.pem', leaf);
  const caPath = await save(dir, 'ca.pem', ca);
  t.match(await openssl(['x509', '-in', leafPath, '-noout', '-enddate']), /notAfter=Jun {2}7 08:09:10 2061 GMT/);
  t.match(await openssl(['asn1parse', '-in', leafPath]), /GENERALIZEDTIME\s+:20610607080910Z/);
  t.match(await openssl(['asn1parse', '-in', leafPath]), /UTCTIME/, 'notBefore (now) is still a UTCTime');
  t.match(await openssl(['verify', '-CAfile', caPath, leafPath]), /OK/);
  t.equal(new Date(leaf.certificate.validTo).getTime(), Date.UTC(2061, 5, 7, 8, 9, 10));
  // Default notBefore is a few minutes in the past (tolerates clock skew).
  const nb = new Date(leaf.certificate.validFrom).getTime();
  t.ok(nb <= Date.now() - 4 * 60_000 && nb >= Date.now() - 10 * 60_000, 'notBefore ~5 minutes back');
});

t.test('serials: 16 bytes, positive, distinct', async (t) => {
  const seen = new Set<string>();
  for (let i = 0; i < 200; i++) {
    const s = randomSerial();
    t.equal(s.length, 16);
    if ((s[0]! & 0x80) !== 0 || s[0] === 0) t.fail('top bit must be clear and the first byte non-zero');
    seen.add(s.toString('hex'));
  }
  t.equal(seen.size, 200);
  const { leaf } = makePair('p256', 'p256');
  t.match(leaf.certificate.serialNumber, /^[0-7][0-9A-F]{31}$/, 'serial is 16 positive bytes');
  const explicitSerial = createCertificate({
    subject: '/CN=x',
    subjectKey: keys('p256').privateKey,
    notAfter: new Date(Date.now() + YEAR),
    serial: Buffer.from('ff01', 'hex'),
    keyUsage: ['digitalSignature'],
  });
  t.equal(explicitSerial.certificate.serialNumber, 'FF01', 'a high-bit serial stays positive');
});

t.test('subjects: both syntaxes, escapes, encodings, and clear errors', async (t) => {
  t.same(parseSubject('/CN=a/O=b'), [{ type: 'CN', value: 'a' }, { type: 'O', value: 'b' }]);
  t.same(parseSubject('CN=a, O=b ,OU=c'), [{ type: 'CN', value: 'a' }, { type: 'O', value: 'b' }, { type: 'OU', value: 'c' }]);
  t.same(parseSubject('/CN=a\\/b/O=x,y'), [{ type: 'CN', value: 'a/b' }, { type: 'O', value: 'x,y' }]);
  t.same(parseSubject('CN=Doe\\, John'), [{ type: 'CN', value: 'Doe, John' }]);
  t.same(parseSubject('/cn=a/emailAddress=a@b.c'), [{ type: 'CN', value: 'a' }, { type: 'EMAILADDRESS', value: 'a@b.c' }]);
  for (const [bad, re] of [
    ['', /empty/],
    ['/', /empty/],
    ['/CN', /not TYPE=value/],
    ['/XX=1', /unknown subject attribute "XX"; use one of CN/],
    ['/CN=', /empty value/],
    ['/C=USA', /two-letter/],
    ['/CN=' + 'x'.repeat(65), /longer than 64/],
  ] as const) {
    t.throws(() => parseSubject(bad), re, `rejects ${JSON.stringify(bad)}`);
    t.throws(() => parseSubject(bad), UserError);
  }
  const dir = await tempDir();
  const subject = '/CN=Jörg Ünïcode/O=Ex, Inc./C=DE/DC=example/emailAddress=ops@example.com';
  const cert = createCertificate({ subject, subjectKey: keys('p256').privateKey, notAfter: new Date(Date.now() + YEAR), keyUsage: ['digitalSignature'] });
  const p = await save(dir, 'u.pem', cert);
  const out = await openssl(['x509', '-in', p, '-noout', '-subject', '-nameopt', 'utf8,sep_comma_plus_space,dump_nostr']);
  t.match(out, /CN=Jörg Ünïcode, O=Ex, Inc\., C=DE, DC=example, emailAddress=ops@example.com/);
  const asn1 = await openssl(['asn1parse', '-in', p]);
  t.match(asn1, /PRINTABLESTRING\s+:DE/, 'C is a PrintableString');
  t.match(asn1, /IA5STRING\s+:example/, 'DC is an IA5String');
  t.match(asn1, /UTF8STRING/, 'CN is a UTF8String');
  t.equal(encodeName(parseSubject('/CN=a')).toString('hex'), '300c310a300806035504030c0161');
});

t.test('refuses a signing key that does not match the issuer certificate', async (t) => {
  const { ca } = makePair('p256', 'p256');
  const other = keys('p256');
  t.throws(
    () =>
      createCertificate({
        subject: '/CN=x',
        subjectKey: keys('p256').publicKey,
        issuer: { certificate: ca.certificate, privateKey: other.privateKey },
        notAfter: new Date(Date.now() + YEAR),
        keyUsage: ['digitalSignature'],
      }),
    /does not match the issuer certificate/,
  );
  t.throws(
    () => createCertificate({ subject: '/CN=x', subjectKey: keys('p256').publicKey, notAfter: new Date(Date.now() + YEAR), keyUsage: [] }),
    /self-signed certificate needs the private key/,
  );
  const ed = generateKeyPairSync('ed25519');
  t.throws(
    () => createCertificate({ subject: '/CN=x', subjectKey: ed.privateKey, notAfter: new Date(Date.now() + YEAR), keyUsage: [] }),
    /unsupported signing key type ed25519/,
  );
  t.throws(
    () => createCertificate({ subject: '/CN=x', subjectKey: keys('p256').privateKey, notBefore: new Date(), notAfter: new Date(Date.now() - 1000), keyUsage: [] }),
    /notAfter must be later/,
  );
});
