// PKCS#12 key derivation: a bundle of 8 key bags at 10 M iterations each held
// the event loop for ~40 s. One bundle now has a total work budget (refused at
// once beyond it), and the derivations run off the event loop (PBKDF2 in
// libuv's pool) or yield to it (the PKCS#12 KDF), so the daemon keeps answering.
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { MAX_PKCS12_WORK, parsePkcs12 } from '../../src/identity/pkcs12.js';
import { algorithm, explicit, integer, octetString, oid, sequence } from '../../src/asn1/encoder.js';
import { makeCA, makeLeaf, openssl, tempDir } from '../helpers/pki.js';

/** A ContentInfo of type data holding `content`. */
const data = (content: Buffer) => sequence(oid('1.2.840.113549.1.7.1'), explicit(0, octetString(content)));

/** A shrouded key bag encrypted with PBES2 (PBKDF2-SHA256 at `iterations`, AES-256-CBC); the ciphertext is random. */
function shroudedKeyBag(iterations: number): Buffer {
  const pbkdf2 = algorithm('1.2.840.113549.1.5.12', sequence(octetString(randomBytes(16)), integer(iterations), algorithm('1.2.840.113549.2.9', null)));
  const pbes2 = algorithm('1.2.840.113549.1.5.13', sequence(pbkdf2, algorithm('2.16.840.1.101.3.4.1.42', octetString(randomBytes(16)))));
  return sequence(oid('1.2.840.113549.1.12.10.1.2'), explicit(0, sequence(pbes2, octetString(randomBytes(48)))));
}

t.test('8 key bags at 10 M iterations: refused at once, before any derivation', async (t) => {
  const safeContents = sequence(...Array.from({ length: 8 }, () => shroudedKeyBag(10_000_000)));
  const pfx = sequence(integer(3), data(sequence(data(safeContents))));
  await t.rejects(parsePkcs12(pfx, 'pw', '/x/evil.p12'), {
    message: new RegExp(`/x/evil\\.p12: PKCS#12 bundle asks for more than ${MAX_PKCS12_WORK} key-derivation iterations in all.*re-export it`),
    reason: 'pkcs12_too_costly',
  });
});

t.test('a bundle with large iteration counts is read while the event loop keeps running', async (t) => {
  const dir = await tempDir();
  const ca = await makeCA(dir);
  const leaf = await makeLeaf(dir, ca, 'slow-p12');
  const out = join(dir, 'slow.p12');
  await openssl(['pkcs12', '-export', '-inkey', leaf.keyPath, '-in', leaf.certPath, '-passout', 'pass:pw', '-iter', '400000', '-certpbe', 'AES-256-CBC', '-keypbe', 'AES-256-CBC', '-macalg', 'sha256', '-out', out]);
  const bytes = await readFile(out);
  let turns = 0;
  let parsing = true;
  const spin = () => {
    turns++;
    if (parsing) setImmediate(spin);
  };
  setImmediate(spin);
  const contents = await parsePkcs12(bytes, 'pw', out);
  parsing = false;
  t.equal(contents.keys.length, 1, 'the key');
  t.equal(contents.certs.length, 1, 'the certificate');
  t.ok(turns > 20, `the event loop ran ${turns} times during the derivations (0 when they block it)`);
});
