// `pki issue --csr`: certificates for keys pki never sees (made in a token or a
// TPM). CSRs come from `openssl req` (RSA, EC) — an independent implementation —
// and, for ML-DSA (which the machine's openssl 3.0 lacks), from Node's crypto
// with our DER encoder. Each issued certificate is checked by openssl, by
// `check`, and used end to end against the emulator with the key that made the CSR.
import { X509Certificate, generateKeyPairSync, sign } from 'node:crypto';
import { readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { startEmulator } from '../../src/emulator/server.js';
import { algorithm, bitString, integer, oid, sequence, set, utf8String } from '../../src/asn1/encoder.js';
import { encodeName, parseSubject } from '../../src/pki/name.js';
import { runCli } from '../helpers/cli.js';
import { parseDer } from '../../src/asn1/reader.js';
import { DEFAULT_ARNS } from '../helpers/emulator.js';
import { makeKey, openssl, tempDir, type KeyType } from '../helpers/pki.js';

const dir = await tempDir('ra-csr-');
const ca = join(dir, 'ca');
t.equal((await runCli(['pki', 'init', ca, '--key-type', 'ec'])).code, 0, 'pki init');
const caPem = await readFile(join(ca, 'ca.pem'), 'utf8');
const emulator = await startEmulator({ trustAnchorCaPems: [caPem], quiet: true });
t.teardown(() => emulator.close());

const files = async () => (await readdir(ca)).sort();
const arnFlags = ['--trust-anchor-arn', DEFAULT_ARNS.trustAnchorArn, '--profile-arn', DEFAULT_ARNS.profileArn, '--role-arn', DEFAULT_ARNS.roleArn, '--endpoint', emulator.url];

/** The issued certificate: openssl's view, check, and credentials from the emulator with the CSR's key. */
async function useIt(t: Tap.Test, certPath: string, keyPath: string): Promise<void> {
  t.match(await openssl(['verify', '-CAfile', join(ca, 'ca.pem'), certPath]), /: OK/, 'openssl verifies it against the CA');
  const text = await openssl(['x509', '-in', certPath, '-noout', '-text']);
  t.match(text, /Version: 3 \(0x2\)/);
  t.match(text, /X509v3 Basic Constraints: critical\s+CA:FALSE/);
  t.match(text, /X509v3 Key Usage: critical\s+Digital Signature\n/);
  t.match(text, /TLS Web Client Authentication/);
  t.match(text, /Signature Algorithm: ecdsa-with-SHA384/);
  const check = await runCli(['check', '--certificate', certPath, '--private-key', keyPath, '--ca', join(ca, 'ca.pem')]);
  t.equal(check.code, 0, `check passes every rule:\n${check.stdout}${check.stderr}`);
  t.notMatch(check.stdout, /^(FAIL|WARN)/m, 'no failure or warning');
  const before = emulator.issued.length;
  const cp = await runCli(['credential-process', '--certificate', certPath, '--private-key', keyPath, ...arnFlags]);
  t.equal(cp.code, 0, `credential-process: ${cp.stderr}`);
  t.equal(emulator.issued.length, before + 1, 'the emulator issued credentials for it');
  t.equal(emulator.issued.at(-1)!.accessKeyId, (JSON.parse(cp.stdout) as { AccessKeyId: string }).AccessKeyId);
}

declare namespace Tap {
  type Test = typeof t;
}

for (const keyType of ['rsa2048', 'p256', 'p384'] as const) {
  t.test(`openssl req with an ${keyType} key → pki issue --csr`, async (t) => {
    const key = await makeKey(dir, keyType, `csr-${keyType}`);
    const csr = join(dir, `${keyType}.csr`);
    await openssl(['req', '-new', '-key', key, '-subj', `/CN=hsm-${keyType}/O=Example Corp/OU=Fleet`, '-sha256', '-out', csr]);
    const before = await files();
    const r = await runCli(['pki', 'issue', '--ca-dir', ca, '--name', `hsm-${keyType}`, '--csr', csr]);
    t.equal(r.code, 0, r.stderr);
    t.match(r.stdout, /the request's own signature verified/);
    t.match(r.stdout, /--private-key KEY/, 'says the key stays where it is');
    t.notMatch(r.stdout + r.stderr, /PRIVATE KEY/);
    t.same(await files(), [...before, `hsm-${keyType}.pem`].sort(), 'writes only NAME.pem (no key file)');
    const certPath = join(ca, `hsm-${keyType}.pem`);
    const cert = new X509Certificate(await readFile(certPath));
    t.equal(cert.subject, `CN=hsm-${keyType}\nO=Example Corp\nOU=Fleet`, 'subject taken from the CSR');
    t.equal(
      (await openssl(['x509', '-in', certPath, '-noout', '-pubkey'])).trim(),
      (await openssl(['req', '-in', csr, '-noout', '-pubkey'])).trim(),
      'certifies exactly the CSR\'s public key',
    );
    await useIt(t, certPath, key);
  });
}

t.test('DER CSR, --subject override, and requested extensions ignored (a CSR asking for CA:TRUE still gets CA:FALSE)', async (t) => {
  const key = await makeKey(dir, 'p256', 'csr-der');
  const csr = join(dir, 'ca-true.csr.der');
  await openssl(['req', '-new', '-key', key, '-subj', '/CN=wants-ca', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign', '-outform', 'DER', '-out', csr]);
  const r = await runCli(['pki', 'issue', '--ca-dir', ca, '--name', 'der-csr', '--csr', csr, '--subject', '/CN=override/O=Ops', '--days', '30']);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /subject from --subject/);
  const certPath = join(ca, 'der-csr.pem');
  const cert = new X509Certificate(await readFile(certPath));
  t.equal(cert.subject, 'CN=override\nO=Ops');
  t.equal(cert.ca, false);
  const days = (new Date(cert.validTo).getTime() - Date.now()) / 86_400_000;
  t.ok(days > 29 && days < 31, '--days applies');
  await useIt(t, certPath, key);
});

t.test('ML-DSA CSRs (built with Node and our DER encoder) for ML-DSA-44/65/87', async (t) => {
  for (const [type, oid] of [['ml-dsa-44', '2.16.840.1.101.3.4.3.17'], ['ml-dsa-65', '2.16.840.1.101.3.4.3.18'], ['ml-dsa-87', '2.16.840.1.101.3.4.3.19']] as const) {
    const keys = generateKeyPairSync(type);
    const spki = keys.publicKey.export({ type: 'spki', format: 'der' });
    const info = sequence(integer(0), encodeName(parseSubject(`/CN=pq-${type}`)), spki, Buffer.from([0xa0, 0x00]));
    const csr = sequence(info, algorithm(oid), bitString(sign(null, info, keys.privateKey)));
    const csrPath = join(dir, `${type}.csr`);
    await writeFile(csrPath, `-----BEGIN CERTIFICATE REQUEST-----\n${csr.toString('base64').replace(/(.{64})/g, '$1\n')}\n-----END CERTIFICATE REQUEST-----\n`);
    const keyPath = join(dir, `${type}.key`);
    await writeFile(keyPath, keys.privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
    const r = await runCli(['pki', 'issue', '--ca-dir', ca, '--name', `pq-${type}`, '--csr', csrPath]);
    t.equal(r.code, 0, r.stderr);
    t.match(r.stdout, new RegExp(`${type.toUpperCase()} key`));
    const certPath = join(ca, `pq-${type}.pem`);
    const cert = new X509Certificate(await readFile(certPath));
    t.ok(cert.publicKey.equals(keys.publicKey), `${type}: certifies the CSR's key`);
    const check = await runCli(['check', '--certificate', certPath, '--private-key', keyPath, '--ca', join(ca, 'ca.pem')]);
    t.equal(check.code, 0, check.stdout);
    const cp = await runCli(['credential-process', '--certificate', certPath, '--private-key', keyPath, ...arnFlags]);
    t.equal(cp.code, 0, `${type}: credentials from the emulator (${cp.stderr})`);

    // The same request with one byte of the subject changed: its ML-DSA signature no longer verifies.
    const bad = Buffer.from(csr);
    bad[bad.indexOf(Buffer.from(`pq-${type}`))] ^= 0x01;
    const badPath = join(dir, `${type}-tampered.csr`);
    await writeFile(badPath, bad);
    const refused = await runCli(['pki', 'issue', '--ca-dir', ca, '--name', `pq-bad-${type}`, '--csr', badPath]);
    t.equal(refused.code, 1);
    t.match(refused.stderr, /signature does not verify with its own public key/);
  }
});

t.test('refused requests: tampered, RSA-1024, Ed25519, SHA-1, not a CSR, too large, wrong flags — nothing written', async (t) => {
  const key = await makeKey(dir, 'p256', 'csr-refused');
  const good = join(dir, 'good.csr.der');
  await openssl(['req', '-new', '-key', key, '-subj', '/CN=intact', '-outform', 'DER', '-out', good]);
  const der = await readFile(good);
  const tampered = Buffer.from(der);
  tampered[tampered.indexOf(Buffer.from('intact'))] = 'X'.charCodeAt(0);
  const tamperedPath = join(dir, 'tampered.csr');
  await writeFile(tamperedPath, tampered);
  // Someone else's key in the request, the original signature kept.
  const otherKey = await makeKey(dir, 'p256', 'csr-other');
  const otherCsr = join(dir, 'other.csr.der');
  await openssl(['req', '-new', '-key', otherKey, '-subj', '/CN=intact', '-outform', 'DER', '-out', otherCsr]);
  const [otherInfo] = parseDer(await readFile(otherCsr)).children;
  const [, sigAlg, sig] = parseDer(der).children;
  const spliced = sequence(otherInfo!.raw, sigAlg!.raw, sig!.raw);
  const splicedPath = join(dir, 'spliced.csr');
  await writeFile(splicedPath, spliced);

  const keyCsr = async (keyType: KeyType, extra: string[] = []) => {
    const k = await makeKey(dir, keyType, `csr-${keyType}-${extra.join('')}`);
    const out = join(dir, `${keyType}${extra.join('')}.csr`);
    await openssl(['req', '-new', '-key', k, '-subj', '/CN=weak', ...extra, '-out', out]);
    return out;
  };
  const rsa1024 = join(dir, 'rsa1024.csr');
  await openssl(['req', '-new', '-newkey', 'rsa:1024', '-nodes', '-keyout', join(dir, 'rsa1024.key'), '-subj', '/CN=small', '-out', rsa1024]);
  const big = join(dir, 'big.csr');
  await writeFile(big, Buffer.alloc(70 * 1024, 0x41));

  const cases: Array<[string, string[], RegExp]> = [
    ['tampered subject', ['--csr', tamperedPath], /tampered\.csr: the request's signature does not verify with its own public key/],
    ['signature of another key', ['--csr', splicedPath], /spliced\.csr: the request's signature does not verify/],
    ['RSA-1024', ['--csr', rsa1024], /rsa1024\.csr: the request's key cannot be used: RSA key is only 1024 bits; use RSA 2048 bits or more/],
    ['Ed25519', ['--csr', await keyCsr('ed25519')], /the request's key cannot be used: Ed25519 keys are not supported/],
    ['SHA-1 signed', ['--csr', await keyCsr('p256', ['-sha1'])], /is signed with ecdsa-with-SHA1; sign it with SHA-256 or stronger/],
    ['a certificate', ['--csr', join(ca, 'ca.pem')], /ca\.pem: no CERTIFICATE REQUEST PEM block \(found CERTIFICATE\)/],
    ['missing file', ['--csr', key.replace(/\.key$/, '.nope')], /certificate request file not found/],
    ['truncated', ['--csr', await (async () => { const p = join(dir, 'trunc.csr'); await writeFile(p, der.subarray(0, 40)); return p; })()], /trunc\.csr: not a PKCS#10 certificate request/],
    ['too large', ['--csr', big], /big\.csr: certificate request file is 71680 bytes, more than the 65536/],
    ['with --key-type', ['--csr', good, '--key-type', 'ec'], /--key-type does not go with --csr/],
    ['with --pfx', ['--csr', good, '--pfx'], /--pfx needs the private key, but a CSR carries only the public key/],
  ];
  const before = await files();
  for (const [label, args, re] of cases) {
    const r = await runCli(['pki', 'issue', '--ca-dir', ca, '--name', 'refused', ...args], { env: { ROLESANYWHERE_PFX_PASSWORD: 'x' } });
    t.equal(r.code, 1, `${label}: exit 1`);
    t.match(r.stderr, re, `${label}: message`);
    t.equal(r.stdout, '', `${label}: nothing on stdout`);
    t.equal(r.stderr.trim().split('\n').length, 1, `${label}: one line`);
  }
  t.same(await files(), before, 'nothing was written');
});

// With an OpenSSL that has ML-DSA (3.5+), the key and CSR come from openssl itself (genpkey writes the seed + expanded form).
const opensslMlDsa = await openssl(['list', '-signature-algorithms']).then((out) => /ML-DSA-65/i.test(out), () => false);
t.test('openssl genpkey/req ML-DSA-65 → pki issue --csr → credentials', { skip: opensslMlDsa ? false : 'this openssl has no ML-DSA (OpenSSL < 3.5)' }, async (t) => {
  const key = join(dir, 'openssl-mldsa.key');
  const csr = join(dir, 'openssl-mldsa.csr');
  await openssl(['genpkey', '-algorithm', 'ML-DSA-65', '-out', key]);
  await openssl(['req', '-new', '-key', key, '-subj', '/CN=openssl-ml-dsa', '-out', csr]);
  const r = await runCli(['pki', 'issue', '--ca-dir', ca, '--name', 'openssl-mldsa', '--csr', csr]);
  t.equal(r.code, 0, r.stderr);
  await useIt(t, join(ca, 'openssl-mldsa.pem'), key);
});

// Issue 21 (10): the requester's subject was signed as written — two CNs, a
// multi-valued RDN, a NUL inside the CN and an empty RDN were all issued.
t.test('requester subjects with two CNs, a multi-valued or empty RDN, or a control character are refused; --subject overrides', async (t) => {
  const keys = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const spki = keys.publicKey.export({ type: 'spki', format: 'der' });
  const atv = (type: string, value: string) => sequence(oid(type), utf8String(value));
  const CN = '2.5.4.3';
  const O = '2.5.4.10';
  const csrWith = async (label: string, name: Buffer) => {
    const info = sequence(integer(0), name, spki, Buffer.from([0xa0, 0x00]));
    const csr = sequence(info, algorithm('1.2.840.10045.4.3.2'), bitString(sign('sha256', info, keys.privateKey)));
    const path = join(dir, `subject-${label}.csr`);
    await writeFile(path, csr);
    return path;
  };
  const key = await makeKey(dir, 'p256', 'csr-subjects');
  const opensslCsr = async (label: string, subj: string) => {
    const path = join(dir, `subject-${label}.csr`);
    await openssl(['req', '-new', '-key', key, '-subj', subj, '-out', path]);
    return path;
  };
  const cases: Array<[string, string, RegExp]> = [
    ['two CNs (openssl)', await opensslCsr('two-cn', '/CN=alice/CN=admin'), /has more than one CN/],
    ['multi-valued RDN (openssl)', await opensslCsr('multi', '/CN=alice+O=Example'), /has a multi-valued RDN/],
    ['two CNs', await csrWith('two-cn-der', sequence(set(atv(CN, 'alice')), set(atv(CN, 'admin')))), /has more than one CN/],
    ['NUL in the CN', await csrWith('nul', sequence(set(atv(CN, 'admin\0.evil')))), /has a control character \(such as NUL\) in its CN/],
    ['escape in O', await csrWith('esc', sequence(set(atv(CN, 'a')), set(atv(O, 'x\x1b[2J')))), /control character .* in its O/],
    ['empty RDN', await csrWith('empty-rdn', sequence(set(atv(CN, 'alice')), set())), /has an empty RDN/],
  ];
  const before = await files();
  for (const [label, csr, re] of cases) {
    const r = await runCli(['pki', 'issue', '--ca-dir', ca, '--name', 'odd-subject', '--csr', csr]);
    t.equal(r.code, 1, `${label}: exit 1`);
    t.match(r.stderr, re, `${label}: names the problem`);
    t.match(r.stderr, /give the certificate's subject with --subject/, `${label}: suggests --subject`);
    t.equal(r.stderr.trim().split('\n').length, 1, `${label}: one line`);
  }
  t.same(await files(), before, 'nothing was written');
  const ok = await runCli(['pki', 'issue', '--ca-dir', ca, '--name', 'odd-subject', '--csr', cases[3]![1], '--subject', '/CN=alice']);
  t.equal(ok.code, 0, ok.stderr);
  t.equal(new X509Certificate(await readFile(join(ca, 'odd-subject.pem'))).subject, 'CN=alice', '--subject replaces the refused one');
});
