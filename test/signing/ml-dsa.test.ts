// ML-DSA (FIPS 204) identities, as AWS's helper 1.8 signs them: algorithm
// AWS4-X509-MLDSA, pure ML-DSA with an empty context over the string to sign
// itself (PROTOCOLS.md §5). Signatures are checked by an independent
// implementation (@noble/post-quantum), keys load in every PKCS#8 form
// OpenSSL 3.5 writes, and the emulator verifies requests and ML-DSA-signed
// chains. (The machine's openssl is 3.0, which has no ML-DSA: keys and
// certificates here come from Node's crypto and our own DER encoder.)
import t from 'tap';
import { createHash, createPrivateKey, generateKeyPairSync, verify as cryptoVerify, X509Certificate, type KeyObject } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ml_dsa44, ml_dsa65, ml_dsa87 } from '@noble/post-quantum/ml-dsa.js';
import { startEmulator } from '../../src/emulator/server.js';
import { loadIdentity } from '../../src/identity/load.js';
import type { Identity } from '../../src/identity/types.js';
import { createCertificate, type BuiltCertificate } from '../../src/pki/certificate.js';
import { algorithm, integer, octetString, sequence } from '../../src/asn1/encoder.js';
import { canonicalParts, stringToSign } from '../../src/signing/canonical.js';
import { signX509Request } from '../../src/signing/sigv4-x509.js';
import { callCreateSession, DEFAULT_ARNS } from '../helpers/emulator.js';
import { makeCA, tempDir } from '../helpers/pki.js';

const SETS = [
  { type: 'ml-dsa-44', oid: '2.16.840.1.101.3.4.3.17', noble: ml_dsa44, sig: 2420 },
  { type: 'ml-dsa-65', oid: '2.16.840.1.101.3.4.3.18', noble: ml_dsa65, sig: 3309 },
  { type: 'ml-dsa-87', oid: '2.16.840.1.101.3.4.3.19', noble: ml_dsa87, sig: 4627 },
] as const;
const YEAR = 365 * 86_400_000;
const HOST = 'rolesanywhere.us-east-1.amazonaws.com';
const BODY = JSON.stringify({ durationSeconds: 900, ...DEFAULT_ARNS });

const dir = await tempDir('ra-mldsa-');
let n = 0;
const pem = (der: Buffer, label: string) => `-----BEGIN ${label}-----\n${der.toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n$/, '')}\n-----END ${label}-----\n`;
async function write(name: string, content: string | Buffer): Promise<string> {
  const p = join(dir, `${++n}-${name}`);
  await writeFile(p, content, { mode: 0o600 });
  return p;
}
/** The FIPS 204 encoded public key (JWK "AKP" pub). */
const rawPublicKey = (key: KeyObject) => Buffer.from((key.export({ format: 'jwk' }) as { pub: string }).pub, 'base64url');
/** The 32-byte seed of a key Node generated (Node writes the seed-only PKCS#8 form). */
const seedOf = (key: KeyObject) => key.export({ type: 'pkcs8', format: 'der' }).subarray(-32);

function newCa(type: string, name: string, issuer?: { cert: BuiltCertificate; key: KeyObject }) {
  const keys = generateKeyPairSync(type as 'ml-dsa-65');
  const cert = createCertificate({
    subject: `/CN=${name}`,
    subjectKey: issuer ? keys.publicKey : keys.privateKey,
    ...(issuer ? { issuer: { certificate: issuer.cert.certificate, privateKey: issuer.key } } : {}),
    notAfter: new Date(Date.now() + YEAR),
    ca: true,
    keyUsage: ['keyCertSign', 'cRLSign'],
  });
  return { cert, key: keys.privateKey };
}
function newLeaf(subjectKey: KeyObject, issuer: { cert: BuiltCertificate; key: KeyObject }, name: string) {
  return createCertificate({
    subject: `/CN=${name}`,
    subjectKey,
    issuer: { certificate: issuer.cert.certificate, privateKey: issuer.key },
    notAfter: new Date(Date.now() + YEAR / 2),
    keyUsage: ['digitalSignature'],
    extendedKeyUsage: ['clientAuth'],
  });
}

/** What the service checks: the string to sign rebuilt from the headers, verified by an independent ML-DSA. */
function verifyIndependently(headers: Record<string, string>, identity: Identity, noble: (typeof SETS)[number]['noble']) {
  const m = /^(\S+) Credential=[^/]+\/([^,]+), SignedHeaders=([^,]+), Signature=([0-9a-f]+)$/.exec(headers.Authorization!)!;
  const signed = Object.fromEntries(Object.entries(headers).filter(([k]) => m[3]!.split(';').includes(k.toLowerCase())));
  const parts = canonicalParts({ method: 'POST', path: '/sessions', headers: signed, body: BODY, region: 'us-east-1', amzDate: headers['X-Amz-Date']! });
  const toSign = Buffer.from(stringToSign(m[1]!, headers['X-Amz-Date']!, parts.scope, parts.canonicalRequest));
  const sig = Buffer.from(m[4]!, 'hex');
  const pub = rawPublicKey(identity.certificate.publicKey);
  return {
    algorithm: m[1],
    sig,
    pure: noble.verify(sig, toSign, pub),
    preHashed: noble.verify(sig, createHash('sha256').update(toSign).digest(), pub),
    withContext: noble.verify(sig, toSign, pub, { context: Buffer.from('rolesanywhere') }),
  };
}

// Every trust anchor exists before the emulator starts: one ML-DSA CA per parameter set, an
// ML-DSA-87 root for the chain tests, and a classic RSA CA made by openssl.
const cas = Object.fromEntries(SETS.map((s) => [s.type, newCa(s.type, `${s.type} CA`)]));
const root87 = newCa('ml-dsa-87', 'ML-DSA-87 Root');
const rsaCa = await makeCA(dir, 'Classic RSA CA');
const emulator = await startEmulator({ trustAnchorCaPems: [...Object.values(cas).map((c) => c.cert.pem), root87.cert.pem, rsaCa.certPem], quiet: true });
t.teardown(() => emulator.close());
const lastCall = () => emulator.stats.calls[emulator.stats.calls.length - 1]!;

for (const set of SETS) {
  t.test(`${set.type}: key forms, signature, emulator`, async (t) => {
    const ca = cas[set.type]!;
    const keys = generateKeyPairSync(set.type as 'ml-dsa-65');
    const leaf = newLeaf(keys.publicKey, ca, `${set.type}-client`);
    const certPath = await write('client.pem', leaf.pem);

    // Node's keys are FIPS 204 keys: an independent implementation derives the same public key from the seed.
    const seed = seedOf(keys.privateKey);
    const ref = set.noble.keygen(seed);
    t.ok(Buffer.from(ref.publicKey).equals(rawPublicKey(keys.publicKey)), 'same public key from the seed in both implementations');

    // PKCS#8 privateKey CHOICE (RFC 9881; OpenSSL 3.5 writes "both" when it knows the seed, "expandedKey" when not).
    const wrap = (inner: Buffer) => sequence(integer(0), algorithm(set.oid), octetString(inner));
    const seedDer = keys.privateKey.export({ type: 'pkcs8', format: 'der' });
    const expandedDer = wrap(octetString(Buffer.from(ref.secretKey)));
    const bothDer = wrap(sequence(octetString(seed), octetString(Buffer.from(ref.secretKey))));
    const forms: Array<[string, string | Buffer, string?]> = [
      ['seed-only PEM (Node, pki)', keys.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString()],
      ['seed-only DER', seedDer],
      ['expandedKey PEM (openssl, key without seed)', pem(expandedDer, 'PRIVATE KEY')],
      ['both PEM (openssl genpkey default)', pem(bothDer, 'PRIVATE KEY')],
      ['both DER', bothDer],
      ['encrypted PKCS#8', keys.privateKey.export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: 'pq pass' }).toString(), 'pq pass'],
    ];
    for (const [label, content, password] of forms) {
      const keyPath = await write('client.key', content);
      const identity = await loadIdentity({ certificate: certPath, privateKey: keyPath, ...(password ? { password } : {}) });
      t.equal(identity.signer.keyAlgorithm, 'ML-DSA', `${label}: ML-DSA key`);
      t.equal(identity.signer.algorithm, 'AWS4-X509-MLDSA', `${label}: AWS4-X509-MLDSA`);
      const headers = await signX509Request({ identity, region: 'us-east-1', host: HOST, body: BODY });
      const v = verifyIndependently(headers, identity, set.noble);
      t.equal(v.algorithm, 'AWS4-X509-MLDSA', `${label}: algorithm in the Authorization header`);
      t.equal(v.sig.length, set.sig, `${label}: ${set.type} signature size`);
      t.ok(v.pure, `${label}: pure ML-DSA, empty context, over the string to sign (independent verifier)`);
      t.notOk(v.preHashed, `${label}: not over a SHA-256 pre-hash`);
      t.notOk(v.withContext, `${label}: no context string`);
    }

    // A "both" key whose seed and expanded key disagree is refused, not silently used.
    const other = set.noble.keygen(seedOf(generateKeyPairSync(set.type as 'ml-dsa-65').privateKey));
    const mixed = await write('mixed.key', pem(wrap(sequence(octetString(seed), octetString(Buffer.from(other.secretKey)))), 'PRIVATE KEY'));
    await t.rejects(loadIdentity({ certificate: certPath, privateKey: mixed }), { reason: 'key_corrupt', message: /mixed\.key: the PRIVATE KEY block is not a valid private key/ }, 'inconsistent seed/expanded key refused');
    // And a key of another parameter set does not match the certificate.
    const wrongSet = generateKeyPairSync(set.type === 'ml-dsa-65' ? 'ml-dsa-44' : 'ml-dsa-65').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    await t.rejects(loadIdentity({ certificate: certPath, privateKey: await write('wrong.key', wrongSet) }), { reason: 'key_mismatch' });

    // The emulator verifies ML-DSA requests.
    const identity = await loadIdentity({ certificate: certPath, privateKey: await write('client.key', seedDer) });
    const ok = await callCreateSession(emulator.url, identity, { arns: DEFAULT_ARNS, durationSeconds: 900 });
    t.equal(ok.status, 201, `emulator accepts it (${ok.json?.message ?? ''})`);
    t.equal(lastCall().serial, identity.serialDecimal);

    const tampered = await callCreateSession(emulator.url, identity, {
      arns: DEFAULT_ARNS,
      mutate: (h) => {
        h.Authorization = h.Authorization!.replace(/Signature=([0-9a-f]{10})([0-9a-f])/, (_m, a: string, b: string) => `Signature=${a}${b === '0' ? '1' : '0'}`);
      },
    });
    t.equal(tampered.status, 403, 'a signature with one changed nibble is refused');
    t.equal(tampered.errorType, 'AccessDeniedException');
    t.equal(lastCall().reason, 'bad_signature');

    const tamperedBody = await callCreateSession(emulator.url, identity, { arns: DEFAULT_ARNS, durationSeconds: 900, sendBody: BODY.replace('900', '901') });
    t.equal(tamperedBody.status, 403, 'a changed body is refused');
    t.equal(lastCall().reason, 'bad_signature');

    const renamed = await callCreateSession(emulator.url, identity, {
      arns: DEFAULT_ARNS,
      mutate: (h) => {
        h.Authorization = h.Authorization!.replace('AWS4-X509-MLDSA', 'AWS4-X509-ECDSA-SHA256');
      },
    });
    t.equal(renamed.status, 403, 'an ML-DSA certificate with the ECDSA algorithm name is refused');
    t.equal(lastCall().reason, 'algorithm_key_mismatch');
  });
}

t.test('ML-DSA-signed chains, mixed with classic keys', async (t) => {
  // ML-DSA-87 root → ML-DSA-44 intermediate → EC P-256 leaf (made by openssl).
  const inter = newCa('ml-dsa-44', 'ML-DSA-44 Intermediate', root87);
  const ecKeyPair = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const ecLeaf = newLeaf(ecKeyPair.publicKey, inter, 'ec-under-ml-dsa');
  const ecIdentity = await loadIdentity({
    certificate: await write('ec.pem', ecLeaf.pem),
    privateKey: await write('ec.key', ecKeyPair.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString()),
    intermediates: await write('inter.pem', inter.cert.pem),
  });
  t.equal(ecIdentity.signer.algorithm, 'AWS4-X509-ECDSA-SHA256');
  const r = await callCreateSession(emulator.url, ecIdentity, { arns: DEFAULT_ARNS });
  t.equal(r.status, 201, `EC leaf through an ML-DSA chain is trusted (${r.json?.message ?? ''})`);

  // ML-DSA-65 leaf issued by ML-DSA-44 intermediate.
  const mlKeys = generateKeyPairSync('ml-dsa-65');
  const mlLeaf = newLeaf(mlKeys.publicKey, inter, 'ml-dsa-65-under-ml-dsa-44');
  const mlIdentity = await loadIdentity({
    certificate: await write('ml.pem', mlLeaf.pem + inter.cert.pem),
    privateKey: await write('ml.key', mlKeys.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString()),
  });
  t.equal(mlIdentity.chain.length, 1, 'intermediate from the certificate file');
  const r2 = await callCreateSession(emulator.url, mlIdentity, { arns: DEFAULT_ARNS });
  t.equal(r2.status, 201, `ML-DSA leaf and chain verified (${r2.json?.message ?? ''})`);

  // A forged intermediate: same name, other ML-DSA key, so its signature on the leaf and the root's on it fail.
  const forged = newCa('ml-dsa-44', 'ML-DSA-44 Intermediate');
  const r3 = await callCreateSession(emulator.url, mlIdentity, {
    arns: DEFAULT_ARNS,
    mutate: (h) => {
      h['X-Amz-X509-Chain'] = forged.cert.der.toString('base64');
    },
  });
  t.equal(r3.status, 403, 'forged ML-DSA intermediate refused');

  // ML-DSA leaf under an RSA CA made by openssl.
  const rsaCaKey = createPrivateKey(await readFile(rsaCa.keyPath));
  const underRsa = createCertificate({
    subject: '/CN=ml-dsa-under-rsa',
    subjectKey: mlKeys.publicKey,
    issuer: { certificate: new X509Certificate(rsaCa.certPem), privateKey: rsaCaKey },
    notAfter: new Date(Date.now() + YEAR / 2),
    keyUsage: ['digitalSignature'],
  });
  const id4 = await loadIdentity({ certificate: await write('under-rsa.pem', underRsa.pem), privateKey: await write('ml2.key', mlKeys.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString()) });
  const r4 = await callCreateSession(emulator.url, id4, { arns: DEFAULT_ARNS });
  t.equal(r4.status, 201, `ML-DSA leaf under an RSA CA (${r4.json?.message ?? ''})`);
});

t.test('the signer output verifies with Node too, and only with ML-DSA semantics', async (t) => {
  const keys = generateKeyPairSync('ml-dsa-44');
  const ca = newCa('ml-dsa-44', 'Node check CA');
  const leaf = newLeaf(keys.publicKey, ca, 'node-check');
  const identity = await loadIdentity({ certificate: await write('nc.pem', leaf.pem), privateKey: await write('nc.key', keys.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString()) });
  const data = Buffer.from('AWS4-X509-MLDSA\n20240102T030405Z\nscope\nhash');
  const sig = await identity.signer.sign(data);
  t.ok(cryptoVerify(null, data, keys.publicKey, sig), 'verifies with crypto.verify(null, …)');
  t.notOk(cryptoVerify(null, Buffer.concat([data, Buffer.from('x')]), keys.publicKey, sig), 'not for other data');
});
