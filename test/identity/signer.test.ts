// The Signer interface and the key-source registry: file keys of every
// supported type sign exactly what the service expects, the loader matches a
// signer to its certificate by public key, and `check` names the key source.
import { verify, X509Certificate } from 'node:crypto';
import t from 'tap';
import { keySourceFor, KEY_SOURCES, openSigner } from '../../src/identity/key-sources.js';
import { loadIdentity } from '../../src/identity/load.js';
import { runCli } from '../helpers/cli.js';
import { makeCA, makeKey, makeLeaf, tempDir } from '../helpers/pki.js';

const dir = await tempDir('ra-signer-');
const ca = await makeCA(dir, 'Signer Test CA');

t.test('file keys: algorithm, signature format, public key', async (t) => {
  for (const [keyType, keyAlgorithm, algorithm] of [
    ['rsa2048', 'RSA', 'AWS4-X509-RSA-SHA256'],
    ['p256', 'EC', 'AWS4-X509-ECDSA-SHA256'],
    ['p384', 'EC', 'AWS4-X509-ECDSA-SHA256'],
  ] as const) {
    const leaf = await makeLeaf(dir, ca, `signer-${keyType}`, { keyType });
    t.equal(keySourceFor(leaf.keyPath).name, 'file', `${keyType}: a path is a file key`);
    const signer = await openSigner(leaf.keyPath);
    t.equal(signer.kind, 'file');
    t.equal(signer.keyAlgorithm, keyAlgorithm, `${keyType}: key algorithm`);
    t.equal(signer.algorithm, algorithm, `${keyType}: SigV4-X509 algorithm`);
    t.equal(signer.describe(), `file ${leaf.keyPath}`, 'describe names the file');
    t.equal(signer.publicKey.type, 'public', 'exposes only the public key');
    const cert = new X509Certificate(leaf.certPem);
    t.ok(signer.publicKey.equals(cert.publicKey), `${keyType}: public key is the certificate's`);
    const data = Buffer.from('AWS4-X509-…\nstring to sign');
    const sig = await signer.sign(data);
    // SHA-256 for every curve (also P-384), ECDSA as DER SEQUENCE{r,s}.
    t.ok(verify('sha256', data, cert.publicKey, sig), `${keyType}: verifies with SHA-256 and the certificate's key`);
    if (keyAlgorithm === 'EC') t.equal(sig[0], 0x30, 'ECDSA signature is DER');
    t.notOk(verify('sha256', Buffer.from('other data'), cert.publicKey, sig), 'and only for the data signed');
  }
  t.equal(KEY_SOURCES.at(-1)?.name, 'file', '"file" is asked last: it claims every spec');
});

t.test('the loader matches a signer to the certificate by public key', async (t) => {
  const leaf = await makeLeaf(dir, ca, 'signer-match', { keyType: 'p256' });
  const otherKey = await makeKey(dir, 'p256', 'signer-other');
  const id = await loadIdentity({ certificate: leaf.certPath, privateKey: leaf.keyPath });
  t.equal(id.signer.describe(), `file ${leaf.keyPath}`);
  await t.rejects(loadIdentity({ certificate: leaf.certPath, privateKey: otherKey }), { reason: 'key_mismatch' });
});

t.test('check names the key source', async (t) => {
  const leaf = await makeLeaf(dir, ca, 'signer-check', { keyType: 'p256' });
  const r = await runCli(['check', '--certificate', leaf.certPath, '--private-key', leaf.keyPath]);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, new RegExp(`^PASS privateKey: EC P-256 key from file ${leaf.keyPath.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`, 'm'));
});
