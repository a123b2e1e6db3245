// The SigV4-X509 signer checked against a canonical request built by hand from
// PROTOCOLS.md §1, and against our verifier (round trip + tampering).
import t from 'tap';
import { createHash, createPrivateKey, verify as cryptoVerify, sign as cryptoSign } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { loadIdentity } from '../../src/identity/load.js';
import { fileSigner } from '../../src/identity/signers/file.js';
import type { Identity } from '../../src/identity/types.js';
import { canonicalParts, formatAmzDate, stringToSign } from '../../src/signing/canonical.js';
import { signX509Request } from '../../src/signing/sigv4-x509.js';
import { parseX509Authorization, verifyX509Request, type ReceivedRequest } from '../../src/signing/verify.js';
import { makeCA, makeKey, makeLeaf, tempDir } from '../helpers/pki.js';

const HOST = 'rolesanywhere.us-east-1.amazonaws.com';
const DATE = new Date(Date.UTC(2024, 0, 2, 3, 4, 5));
const TA = 'arn:aws:rolesanywhere:us-east-1:123456789012:trust-anchor/0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d';
const PROFILE = 'arn:aws:rolesanywhere:us-east-1:123456789012:profile/5e6f7a8b-9c0d-4e1f-a2b3-c4d5e6f7a8b9';
const ROLE = 'arn:aws:iam::123456789012:role/test-role';
const BODY = JSON.stringify({ durationSeconds: 3600, profileArn: PROFILE, roleArn: ROLE, trustAnchorArn: TA });

// The private key itself, read from the identity's key file (the Identity only holds a signer).
const keyFiles = new Map<Identity, import('node:crypto').KeyObject>();
const privateKeyOf = (identity: Identity) => keyFiles.get(identity)!;
const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');
const lower = (h: Record<string, string>) => Object.fromEntries(Object.entries(h).map(([k, v]) => [k.toLowerCase(), v]));

function received(headers: Record<string, string>, body: string, url = '/sessions'): ReceivedRequest {
  return { method: 'POST', url, headers: lower(headers), body: Buffer.from(body) };
}

const dir = await tempDir('ra-sign-');
const root = await makeCA(dir, 'Sign Root CA');
const inter = await makeCA(dir, 'Sign Intermediate CA', { issuer: root });
const identities: Record<string, Identity> = {};
for (const keyType of ['p256', 'p384', 'rsa2048'] as const) {
  const leaf = await makeLeaf(dir, root, `signer-${keyType}`, { keyType });
  identities[keyType] = await loadIdentity({ certificate: leaf.certPath, privateKey: leaf.keyPath });
  keyFiles.set(identities[keyType]!, createPrivateKey(await readFile(leaf.keyPath)));
}
const chainedLeaf = await makeLeaf(dir, inter, 'chained-signer', { keyType: 'p256' });
const makeKeyPath = await makeKey(dir, 'p256', 'other-key');
const chained = await loadIdentity({ certificate: chainedLeaf.certPath, privateKey: chainedLeaf.keyPath, intermediates: inter.certPath });
keyFiles.set(chained, createPrivateKey(await readFile(chainedLeaf.keyPath)));

t.test('known answer: canonical request and string to sign built by hand (PROTOCOLS.md §1)', async (t) => {
  for (const [name, identity] of Object.entries(identities)) {
    const headers = await signX509Request({ identity, region: 'us-east-1', host: HOST, body: BODY, date: DATE });
    const x509 = identity.certificateDer.toString('base64');
    t.equal(headers['X-Amz-Date'], '20240102T030405Z', 'X-Amz-Date is YYYYMMDDTHHMMSSZ');
    t.equal(headers['X-Amz-X509'], x509, 'X-Amz-X509 is standard base64 of the DER');
    t.equal(headers['Content-Type'], 'application/json');
    t.notOk('X-Amz-X509-Chain' in headers, 'no chain header without intermediates');
    const canonical = [
      'POST',
      '/sessions',
      '',
      'content-type:application/json',
      `host:${HOST}`,
      'x-amz-date:20240102T030405Z',
      `x-amz-x509:${x509}`,
      '',
      'content-type;host;x-amz-date;x-amz-x509',
      sha256(BODY),
    ].join('\n');
    const algorithm = identity.signer.keyAlgorithm === 'RSA' ? 'AWS4-X509-RSA-SHA256' : 'AWS4-X509-ECDSA-SHA256';
    const scope = '20240102/us-east-1/rolesanywhere/aws4_request';
    const toSign = `${algorithm}\n20240102T030405Z\n${scope}\n${sha256(canonical)}`;
    const m = /^(\S+) Credential=([^,]+), SignedHeaders=([^,]+), Signature=([0-9a-f]+)$/.exec(headers.Authorization!);
    t.ok(m, `${name}: Authorization has the documented shape`);
    t.equal(m![1], algorithm, `${name}: algorithm`);
    t.equal(m![2], `${identity.serialDecimal}/${scope}`, `${name}: Credential is the decimal serial and the scope`);
    t.equal(m![3], 'content-type;host;x-amz-date;x-amz-x509');
    t.match(identity.serialDecimal, /^\d+$/);
    t.equal(m![4], m![4]!.toLowerCase(), 'signature is lowercase hex');
    const sig = Buffer.from(m![4]!, 'hex');
    if (identity.signer.keyAlgorithm === 'EC') t.equal(sig[0], 0x30, `${name}: ECDSA signature is a DER SEQUENCE, not raw r||s`);
    else t.equal(sig.length, 256, 'RSA-2048 PKCS#1 v1.5 signature is 256 bytes');
    t.ok(cryptoVerify('sha256', Buffer.from(toSign), identity.certificate.publicKey, sig), `${name}: signature verifies over the hand-built string to sign`);
    // Our canonical helper produces exactly the hand-built text.
    const parts = canonicalParts({ method: 'POST', path: '/sessions', headers: { 'Content-Type': 'application/json', Host: HOST, 'X-Amz-Date': '20240102T030405Z', 'X-Amz-X509': x509 }, body: BODY, region: 'us-east-1', amzDate: '20240102T030405Z' });
    t.equal(parts.canonicalRequest, canonical);
    t.equal(stringToSign(algorithm, '20240102T030405Z', parts.scope, parts.canonicalRequest), toSign);
  }
});

t.test('known answer: chain header and ARNs in the query string', async (t) => {
  const query = `?trustAnchorArn=${encodeURIComponent(TA)}&roleArn=${encodeURIComponent(ROLE)}&profileArn=${encodeURIComponent(PROFILE)}`;
  const body = JSON.stringify({ durationSeconds: 900 });
  const headers = await signX509Request({ identity: chained, region: 'us-east-1', host: HOST, path: `/sessions${query}`, body, date: DATE });
  const chainB64 = chained.chain.map((c) => c.raw.toString('base64')).join(',');
  t.equal(headers['X-Amz-X509-Chain'], chainB64, 'chain is comma-joined base64 DER');
  const enc = (s: string) => encodeURIComponent(s).replace(/[!'()*]/g, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase());
  const canonical = [
    'POST',
    '/sessions',
    `profileArn=${enc(PROFILE)}&roleArn=${enc(ROLE)}&trustAnchorArn=${enc(TA)}`,
    'content-type:application/json',
    `host:${HOST}`,
    'x-amz-date:20240102T030405Z',
    `x-amz-x509:${chained.certificateDer.toString('base64')}`,
    `x-amz-x509-chain:${chainB64}`,
    '',
    'content-type;host;x-amz-date;x-amz-x509;x-amz-x509-chain',
    sha256(body),
  ].join('\n');
  t.match(canonical, /arn%3Aaws%3Arolesanywhere%3A/, 'ARN colons are percent-encoded in the canonical query');
  const toSign = `AWS4-X509-ECDSA-SHA256\n20240102T030405Z\n20240102/us-east-1/rolesanywhere/aws4_request\n${sha256(canonical)}`;
  const sig = Buffer.from(headers.Authorization!.split('Signature=')[1]!, 'hex');
  t.ok(cryptoVerify('sha256', Buffer.from(toSign), chained.certificate.publicKey, sig), 'signature verifies over the hand-built canonical request');
  const v = verifyX509Request(received(headers, body, `/sessions${query}`));
  t.equal(v.ok, true, 'verifier accepts it');
  if (v.ok) t.equal(v.chain.length, 1, 'verifier returns the chain');
});

t.test('round trip: sign then verify, for every key type', async (t) => {
  for (const [name, identity] of Object.entries({ ...identities, chained })) {
    const headers = await signX509Request({ identity, region: 'eu-west-2', host: '127.0.0.1:1234', body: BODY });
    const v = verifyX509Request(received(headers, BODY));
    t.equal(v.ok, true, `${name}: verifies`);
    if (v.ok) {
      t.equal(v.serialDecimal, identity.serialDecimal);
      t.equal(v.region, 'eu-west-2');
      t.equal(formatAmzDate(v.amzDate), headers['X-Amz-Date']);
    }
  }
});

t.test('tampering with any signed part fails', async (t) => {
  const identity = chained;
  const headers = await signX509Request({ identity, region: 'us-east-1', host: HOST, body: BODY, date: DATE });
  const expectFail = (label: string, h: Record<string, string>, body = BODY, reason?: string, url?: string) => {
    const v = verifyX509Request(received(h, body, url));
    t.equal(v.ok, false, `${label}: refused`);
    if (!v.ok && reason) t.equal(v.reason, reason, `${label}: reason ${reason}`);
  };
  expectFail('body', headers, BODY.replace('3600', '3601'), 'bad_signature');
  expectFail('path/query', headers, BODY, 'bad_signature', '/sessions?x=1');
  expectFail('host', { ...headers, Host: 'evil.example.com' }, BODY, 'bad_signature');
  expectFail('content-type', { ...headers, 'Content-Type': 'text/plain' }, BODY, 'bad_signature');
  expectFail('x-amz-date (same day)', { ...headers, 'X-Amz-Date': '20240102T030406Z' }, BODY, 'bad_signature');
  expectFail('x-amz-date (other day)', { ...headers, 'X-Amz-Date': '20240103T030405Z' }, BODY, 'scope_date_mismatch');
  expectFail('x-amz-x509-chain', { ...headers, 'X-Amz-X509-Chain': identities.p256!.certificateDer.toString('base64') }, BODY, 'bad_signature');
  expectFail('x-amz-x509 (other cert)', { ...headers, 'X-Amz-X509': identities.p256!.certificateDer.toString('base64') }, BODY, 'serial_mismatch');
  expectFail('x-amz-x509 (RSA cert)', { ...headers, 'X-Amz-X509': identities.rsa2048!.certificateDer.toString('base64') }, BODY, 'algorithm_key_mismatch');
  expectFail('x-amz-x509 (garbage)', { ...headers, 'X-Amz-X509': 'bm90IGEgY2VydA==' }, BODY, 'malformed_certificate');
  const sig = headers.Authorization!.split('Signature=')[1]!;
  const flipped = sig.slice(0, -1) + (sig.endsWith('0') ? '1' : '0');
  expectFail('signature', { ...headers, Authorization: headers.Authorization!.replace(sig, flipped) }, BODY, 'bad_signature');
  expectFail('serial', { ...headers, Authorization: headers.Authorization!.replace(identity.serialDecimal, '12345') }, BODY, 'serial_mismatch');
  expectFail('hex serial', { ...headers, Authorization: headers.Authorization!.replace(identity.serialDecimal, identity.certificate.serialNumber) }, BODY);
  expectFail('algorithm', { ...headers, Authorization: headers.Authorization!.replace('ECDSA', 'RSA') }, BODY, 'algorithm_key_mismatch');
  expectFail('HMAC algorithm', { ...headers, Authorization: headers.Authorization!.replace('AWS4-X509-ECDSA-SHA256', 'AWS4-HMAC-SHA256') }, BODY, 'unsupported_algorithm');
  expectFail('service', { ...headers, Authorization: headers.Authorization!.replace('/rolesanywhere/', '/sts/') }, BODY, 'wrong_service');
  expectFail('region', { ...headers, Authorization: headers.Authorization!.replace('/us-east-1/', '/us-west-2/') }, BODY, 'bad_signature');
  expectFail('chain header dropped from SignedHeaders', { ...headers, Authorization: headers.Authorization!.replace(';x-amz-x509-chain', '') }, BODY, 'header_not_signed');
  const { 'X-Amz-X509-Chain': _c, ...noChain } = headers;
  expectFail('signed chain header removed', noChain, BODY, 'signed_header_absent');
  const { Authorization: _a, ...noAuth } = headers;
  expectFail('no Authorization', noAuth, BODY, 'missing_authorization');
  const { 'X-Amz-X509': _x, ...noX509 } = headers;
  expectFail('no X-Amz-X509', noX509, BODY, 'missing_header');
});

t.test('required headers must be signed; wrong key fails', async (t) => {
  const identity = identities.p256!;
  const amzDate = formatAmzDate(DATE);
  const all: Record<string, string> = { 'content-type': 'application/json', host: HOST, 'x-amz-date': amzDate, 'x-amz-x509': identity.certificateDer.toString('base64') };
  for (const omit of ['content-type', 'host', 'x-amz-x509']) {
    const signed = Object.fromEntries(Object.entries(all).filter(([k]) => k !== omit));
    const parts = canonicalParts({ method: 'POST', path: '/sessions', headers: signed, body: BODY, region: 'us-east-1', amzDate });
    const sig = cryptoSign('sha256', Buffer.from(stringToSign('AWS4-X509-ECDSA-SHA256', amzDate, parts.scope, parts.canonicalRequest)), privateKeyOf(identity)).toString('hex');
    // (canonicalParts always signs Host, so list the headers by hand as a client that omits one would.)
    const list = Object.keys(signed).sort().join(';');
    const auth = `AWS4-X509-ECDSA-SHA256 Credential=${identity.serialDecimal}/${parts.scope}, SignedHeaders=${list}, Signature=${sig}`;
    const v = verifyX509Request(received({ ...all, authorization: auth }, BODY));
    t.equal(v.ok, false, `${omit} unsigned: refused`);
    if (!v.ok) t.equal(v.reason, 'header_not_signed');
  }
  const otherKey = createPrivateKey(await readFile(makeKeyPath));
  const h = await signX509Request({ identity: { ...identity, signer: fileSigner(otherKey, makeKeyPath) }, region: 'us-east-1', host: HOST, body: BODY, date: DATE });
  const v = verifyX509Request(received(h, BODY));
  t.equal(v.ok, false, 'signed with a key that is not the certificate\'s: refused');
  if (!v.ok) t.equal(v.reason, 'bad_signature');
});

t.test('Authorization parsing', async (t) => {
  const good = 'AWS4-X509-RSA-SHA256 Credential=123/20240102/us-east-1/rolesanywhere/aws4_request, SignedHeaders=content-type;host, Signature=abcd';
  const p = parseX509Authorization(good);
  t.notOk('reason' in p);
  if (!('reason' in p)) {
    t.equal(p.serial, '123');
    t.equal(p.region, 'us-east-1');
    t.same(p.signedHeaders, ['content-type', 'host']);
  }
  for (const bad of [
    'AWS4-X509-RSA-SHA256',
    'AWS4-X509-RSA-SHA256 Credential=123/20240102/us-east-1/rolesanywhere, SignedHeaders=host, Signature=ab',
    'AWS4-X509-RSA-SHA256 Credential=abc/20240102/us-east-1/rolesanywhere/aws4_request, SignedHeaders=host, Signature=ab',
    'AWS4-X509-RSA-SHA256 Credential=123/2024012/us-east-1/rolesanywhere/aws4_request, SignedHeaders=host, Signature=ab',
    'AWS4-X509-RSA-SHA256 Credential=123/20240102/us-east-1/rolesanywhere/aws4_request, SignedHeaders=Host, Signature=ab',
    'AWS4-X509-RSA-SHA256 Credential=123/20240102/us-east-1/rolesanywhere/aws4_request, SignedHeaders=host, Signature=xyz',
    'AWS4-X509-RSA-SHA256 Credential=123/20240102/us-east-1/rolesanywhere/aws4_request, SignedHeaders=host, Signature=abc',
  ]) {
    t.ok('reason' in parseX509Authorization(bad), `refused: ${bad.slice(0, 90)}`);
  }
});


t.test('Credential carries the decimal serial for every serial shape, and it verifies', async (t) => {
  // 0x80: high bit set, so the DER INTEGER has a leading zero byte; 20 bytes is
  // the RFC 5280 maximum; a negative serial is non-conforming but exists
  // (RFC 5280 asks users to handle it gracefully), and is sent in signed
  // decimal as AWS's Go helper does (big.Int.String()).
  const cases: Array<[string, string]> = [
    ['0x80', '128'],
    ['0x00ff', '255'],
    ['0x7fffffffffffffffffffffffffffffffffffffff', (2n ** 159n - 1n).toString()],
    ['0xffffffffffffffffffffffffffffffffffffffff', (2n ** 160n - 1n).toString()],
    ['-5', '-5'],
  ];
  for (const [serial, decimal] of cases) {
    const leaf = await makeLeaf(dir, root, `serial-${serial.slice(0, 6)}`, { keyType: 'p256', serial });
    t.equal(leaf.serialDecimal, decimal, `${serial}: openssl agrees on the decimal form`);
    const identity = await loadIdentity({ certificate: leaf.certPath, privateKey: leaf.keyPath });
    t.equal(identity.serialDecimal, decimal, `${serial}: identity serial`);
    const headers = await signX509Request({ identity, region: 'us-east-1', host: HOST, body: BODY, date: DATE });
    t.match(headers.Authorization, new RegExp(` Credential=${decimal}/20240102/us-east-1/rolesanywhere/aws4_request, `), `${serial}: Credential`);
    const v = verifyX509Request(received(headers, BODY));
    t.ok(v.ok, `${serial}: verifies`);
    if (v.ok) t.equal(v.serialDecimal, decimal, `${serial}: verifier's serial`);
  }
});

t.test('certificate headers must be exact: chain joined by "," without spaces, base64 with its padding', async (t) => {
  // Signed correctly over the malformed values, so only the format is at fault.
  const chainedKey = privateKeyOf(chained);
  const signWith = (x509: string, chain: string) => {
    const headers: Record<string, string> = {
      'Content-Type': 'application/json',
      Host: HOST,
      'X-Amz-Date': formatAmzDate(DATE),
      'X-Amz-X509': x509,
      'X-Amz-X509-Chain': chain,
    };
    const parts = canonicalParts({ method: 'POST', path: '/sessions', headers, body: BODY, region: 'us-east-1', amzDate: formatAmzDate(DATE) });
    const toSign = stringToSign('AWS4-X509-ECDSA-SHA256', formatAmzDate(DATE), parts.scope, parts.canonicalRequest);
    const sig = cryptoSign('sha256', Buffer.from(toSign), chainedKey).toString('hex');
    headers.Authorization = `AWS4-X509-ECDSA-SHA256 Credential=${chained.serialDecimal}/${parts.scope}, SignedHeaders=${parts.signedHeaders}, Signature=${sig}`;
    return verifyX509Request(received(headers, BODY));
  };
  const leafB64 = chained.certificateDer.toString('base64');
  const interB64 = chained.chain[0]!.raw.toString('base64');
  t.equal(signWith(leafB64, `${interB64},${interB64}`).ok, true, 'control: exact values verify');
  const spaced = signWith(leafB64, `${interB64}, ${interB64}`);
  t.equal(spaced.ok ? 'ok' : spaced.reason, 'malformed_certificate', 'a space after the comma is refused');
  // Find a certificate whose base64 is padded, and send it without the padding.
  // (Any certificate will do: entries are parsed before the chain is judged.)
  const candidates = [leafB64, interB64, ...Object.values(identities).map((i) => i.certificateDer.toString('base64'))];
  for (let i = 0; i < 30 && !candidates.some((b) => b.endsWith('=')); i++) {
    candidates.push((await readFile((await makeLeaf(dir, root, `padding-${i}`)).certPath, 'utf8')).replace(/-----[^-]+-----|\s/g, ''));
  }
  const padded = candidates.find((b) => b.endsWith('='));
  t.ok(padded, 'one of the test certificates has base64 padding');
  const unpadded = signWith(leafB64, padded!.replace(/=+$/, ''));
  t.equal(unpadded.ok ? 'ok' : unpadded.reason, 'malformed_certificate', 'base64 without its padding is refused');
});
