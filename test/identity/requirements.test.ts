// Each Roles Anywhere certificate rule, on real openssl-made certificates:
// checkCertificateRules reports it, loadIdentity refuses (or warns) with a
// message naming the rule, the file and the fix.
import { X509Certificate } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { UserError } from '../../src/errors.js';
import { loadIdentity } from '../../src/identity/load.js';
import { checkCaRules, checkCertificateRules, checkChain, type RuleResult } from '../../src/identity/requirements.js';
import { parseCertificateFields } from '../../src/identity/x509-fields.js';
import { makeCA, makeChain, makeKey, makeLeaf, openssl, tempDir, type CertFiles } from '../helpers/pki.js';

const dir = await tempDir();
const ca = await makeCA(dir, 'Rules CA');

async function certOf(c: CertFiles): Promise<X509Certificate> {
  return new X509Certificate(await readFile(c.certPath));
}

function failed(results: RuleResult[]): string[] {
  return results.filter((r) => !r.ok).map((r) => `${r.severity}:${r.id}`);
}

async function loadError(c: CertFiles, opts = {}): Promise<string> {
  try {
    await loadIdentity({ certificate: c.certPath, privateKey: c.keyPath }, opts);
  } catch (err) {
    if (!(err instanceof UserError)) throw err;
    return err.message;
  }
  return '(loaded)';
}

/** A leaf with a custom extension file (for shapes makeLeaf does not offer). */
async function customLeaf(name: string, ext: string, opts: { keyType?: 'p256' | 'rsa2048'; sigopts?: string[]; issuer?: CertFiles } = {}): Promise<CertFiles> {
  const keyPath = await makeKey(dir, opts.keyType ?? 'p256', name);
  const csr = join(dir, `${name}.csr`);
  const certPath = join(dir, `${name}.pem`);
  const extPath = join(dir, `${name}.ext`);
  await writeFile(extPath, ext);
  await openssl(['req', '-new', '-key', keyPath, '-subj', `/CN=${name}`, '-out', csr]);
  const issuer = opts.issuer ?? ca;
  await openssl(['x509', '-req', '-in', csr, '-CA', issuer.certPath, '-CAkey', issuer.keyPath, '-set_serial', '4242', '-days', '30', '-sha256', ...(opts.sigopts ?? []), '-extfile', extPath, '-out', certPath]);
  return { dir, name, certPath, keyPath, certPem: await readFile(certPath, 'utf8'), serialDecimal: '4242' };
}

t.test('a good certificate passes every rule', async (t) => {
  const leaf = await makeLeaf(dir, ca, 'good', { keyType: 'p384' });
  const results = checkCertificateRules(await certOf(leaf));
  t.same(failed(results), []);
  t.same(
    results.map((r) => r.id),
    ['version', 'basicConstraints', 'keyUsage', 'signatureAlgorithm', 'keyType', 'size', 'validity', 'expiry'],
  );
  const fields = parseCertificateFields((await certOf(leaf)).raw);
  t.equal(fields.version, 3);
  t.equal(fields.serial.toString(), leaf.serialDecimal, 'serial parsed from DER matches openssl');
  t.equal(fields.signatureAlgorithm.name, 'sha256WithRSAEncryption');
  t.equal(fields.basicConstraints?.ca, false);
  t.ok(fields.keyUsage?.usages.has('digitalSignature'));
});

t.test('CA:TRUE leaf', async (t) => {
  const leaf = await makeLeaf(dir, ca, 'ca-true-leaf', { caTrue: true });
  t.same(failed(checkCertificateRules(await certOf(leaf))), ['error:basicConstraints']);
  const msg = await loadError(leaf);
  t.equal(msg, `${leaf.certPath}: certificate has basicConstraints CA:TRUE; Roles Anywhere needs an end-entity certificate — reissue it with CA:FALSE`);
});

t.test('keyUsage without digitalSignature, and absent', async (t) => {
  const leaf = await makeLeaf(dir, ca, 'ke-only', { keyType: 'rsa2048', keyUsage: 'critical,keyEncipherment' });
  t.same(failed(checkCertificateRules(await certOf(leaf))), ['error:keyUsage']);
  t.match(await loadError(leaf), /ke-only-\d+\.pem: certificate has keyUsage keyEncipherment without digitalSignature, which Roles Anywhere needs — reissue it with keyUsage=critical,digitalSignature/);
  const none = await makeLeaf(dir, ca, 'no-ku', { keyUsage: '' });
  t.same(failed(checkCertificateRules(await certOf(none))), ['error:keyUsage']);
  t.match(await loadError(none), /certificate has no keyUsage extension; Roles Anywhere needs digitalSignature — reissue it with keyUsage=critical,digitalSignature/);
});

t.test('SHA-1 signature', async (t) => {
  const leaf = await makeLeaf(dir, ca, 'sha1', { digest: 'sha1' });
  t.same(failed(checkCertificateRules(await certOf(leaf))), ['error:signatureAlgorithm']);
  t.match(await loadError(leaf), /certificate is signed with sha1WithRSAEncryption; Roles Anywhere needs SHA-256 or stronger — reissue it/);
});

t.test('strong signatures pass: ECDSA SHA-384, RSASSA-PSS SHA-256', async (t) => {
  const ecCa = await makeCA(dir, 'EC CA', { keyType: 'p384' });
  const leafKey = await makeKey(dir, 'p256', 'ecdsa384-leaf');
  const csr = join(dir, 'ecdsa384.csr');
  const certPath = join(dir, 'ecdsa384.pem');
  await openssl(['req', '-new', '-key', leafKey, '-subj', '/CN=ecdsa384', '-out', csr]);
  await writeFile(join(dir, 'e.ext'), 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n');
  await openssl(['x509', '-req', '-in', csr, '-CA', ecCa.certPath, '-CAkey', ecCa.keyPath, '-set_serial', '7', '-days', '30', '-sha384', '-extfile', join(dir, 'e.ext'), '-out', certPath]);
  const r = checkCertificateRules(new X509Certificate(await readFile(certPath)));
  t.same(failed(r), []);
  t.match(r.find((x) => x.id === 'signatureAlgorithm')!.summary, /ecdsa-with-SHA384/);

  const pss = await customLeaf('pss-leaf', 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n', {
    sigopts: ['-sigopt', 'rsa_padding_mode:pss', '-sigopt', 'rsa_pss_saltlen:32'],
  });
  const pr = checkCertificateRules(await certOf(pss));
  t.same(failed(pr), []);
  t.match(pr.find((x) => x.id === 'signatureAlgorithm')!.summary, /RSASSA-PSS with SHA256/);
});

t.test('v1 certificate', async (t) => {
  const leaf = await makeLeaf(dir, ca, 'v1', { noExtensions: true });
  const f = failed(checkCertificateRules(await certOf(leaf)));
  t.ok(f.includes('error:version'), 'version fails');
  t.match(await loadError(leaf), /v1-\d+\.pem: certificate is an X\.509 v1 certificate; Roles Anywhere needs v3 — reissue it with extensions/);
});

t.test('absent basicConstraints is only a warning', async (t) => {
  const leaf = await customLeaf('no-bc', 'keyUsage=critical,digitalSignature\n');
  t.same(failed(checkCertificateRules(await certOf(leaf))), ['warning:basicConstraints']);
  const id = await loadIdentity({ certificate: leaf.certPath, privateKey: leaf.keyPath });
  t.equal(id.warnings.length, 1);
  t.match(id.warnings[0], /has no basicConstraints extension .* reissue it with basicConstraints=critical,CA:FALSE/);
});

t.test('expired and not yet valid', async (t) => {
  const leaf = await makeLeaf(dir, ca, 'expired', { days: -1 });
  t.same(failed(checkCertificateRules(await certOf(leaf))), ['error:validity']);
  t.match(await loadError(leaf), /expired-\d+\.pem: certificate expired at \d{4}-\d\d-\d\dT[\d:.]+Z — renew the certificate/);

  const fresh = await makeLeaf(dir, ca, 'fresh', { days: 30 });
  const past = new Date(Date.now() - 3 * 86_400_000);
  t.same(failed(checkCertificateRules(await certOf(fresh), { now: past })), ['error:validity']);
  t.match(await loadError(fresh, { now: past }), /certificate is not valid until .* — wait until then, or check this machine's clock/);
  const future = new Date(Date.now() + 40 * 86_400_000);
  t.match(await loadError(fresh, { now: future }), /certificate expired at/);
});

t.test('expiring soon is a warning', async (t) => {
  const leaf = await makeLeaf(dir, ca, 'soon', { days: 2 });
  const r = checkCertificateRules(await certOf(leaf), { expiryWarningDays: 7 });
  t.same(failed(r), ['warning:expiry']);
  t.match(r.find((x) => x.id === 'expiry')!.summary, /expires in [12] days?/);
  t.same(failed(checkCertificateRules(await certOf(leaf), { expiryWarningDays: 1 })), [], 'below threshold: no warning');
});

t.test('unsupported certificate key types', async (t) => {
  for (const [keyType, name] of [['ed25519', 'Ed25519'], ['dsa', 'DSA 2048-bit']] as const) {
    const leaf = await makeLeaf(dir, ca, `kt-${keyType}`, { keyType });
    const r = checkCertificateRules(await certOf(leaf));
    t.same(failed(r), ['error:keyType'], keyType);
    t.match(r.find((x) => x.id === 'keyType')!.summary, new RegExp(`has an? ${name} key; Roles Anywhere supports RSA \\(2048 bits or more\\), EC P-256/P-384 and ML-DSA-44/65/87 keys`));
  }
  const rsa1024 = join(dir, 'cert-rsa1024.key');
  await openssl(['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:1024', '-out', rsa1024]);
  const small = await makeLeaf(dir, ca, 'kt-1024', { keyPath: rsa1024 });
  t.match(checkCertificateRules(await certOf(small)).find((x) => x.id === 'keyType')!.summary, /has an RSA 1024-bit key; Roles Anywhere needs RSA keys of 2048 bits or more/);
});

t.test('certificate over 16 KB', async (t) => {
  const names = Array.from({ length: 700 }, (_, i) => `DNS:host-${i}-padding-padding.example.com`).join(',');
  const leaf = await customLeaf('huge', `basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nsubjectAltName=${names}\n`);
  const r = checkCertificateRules(await certOf(leaf));
  t.same(failed(r), ['error:size']);
  t.match(await loadError(leaf), /certificate is \d+ bytes DER; Roles Anywhere accepts at most 16384/);
});

t.test('chain and trust anchor checks', async (t) => {
  const { root, intermediate, leaf } = await makeChain(dir, 'p256');
  const [rootC, interC, leafC] = await Promise.all([certOf(root), certOf(intermediate), certOf(leaf)]);
  t.same(failed(checkChain(leafC, [interC], [rootC])), [], 'leaf → intermediate → root passes');
  const ids = checkChain(leafC, [interC], [rootC]).map((r) => r.id);
  t.ok(ids.includes('trustAnchor') && ids.includes('ca.keyUsage') && ids.includes('chain[0].basicConstraints'));

  const missing = checkChain(leafC, [], [rootC]);
  t.same(failed(missing), ['error:trustAnchor'], 'missing intermediate');
  t.match(missing.find((r) => r.id === 'trustAnchor')!.fix, /--intermediates/);

  const other = await makeCA(dir, 'Unrelated CA');
  t.same(failed(checkChain(leafC, [interC], [await certOf(other)])), ['error:trustAnchor'], 'wrong CA');

  // Wrong order: a second intermediate given after the first.
  const inter2 = await makeCA(dir, 'Lower Intermediate', { issuer: intermediate });
  const deep = await makeLeaf(dir, inter2, 'deep');
  const wrongOrder = checkChain(await certOf(deep), [interC, await certOf(inter2)], [rootC]);
  t.ok(failed(wrongOrder).includes('error:chain[0]'), 'wrong order reported');
  t.match(wrongOrder.find((r) => r.id === 'chain[0]')!.fix, /nearest the leaf first/);

  // A "CA" without keyCertSign and one with CA:FALSE.
  const badCaKey = await makeKey(dir, 'rsa2048', 'bad-ca');
  const badCaPath = join(dir, 'bad-ca.pem');
  const cnf = join(dir, 'bad-ca.cnf');
  await writeFile(cnf, '[req]\ndistinguished_name=dn\n[dn]\n[v3]\nbasicConstraints=critical,CA:TRUE\nkeyUsage=critical,digitalSignature\n');
  await openssl(['req', '-x509', '-new', '-key', badCaKey, '-subj', '/CN=No KeyCertSign CA', '-days', '30', '-sha256', '-extensions', 'v3', '-config', cnf, '-out', badCaPath]);
  const badCa = new X509Certificate(await readFile(badCaPath));
  t.same(failed(checkCaRules(badCa, 'ca')), ['error:ca.keyUsage']);
  t.same(failed(checkCaRules(leafC, 'ca')), ['error:ca.basicConstraints', 'error:ca.keyUsage'], 'end-entity used as a CA');
});
