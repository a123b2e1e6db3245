// SharedIdentities: profiles of one daemon on the same certificate and key share one
// loaded identity, and a rotated file is loaded afresh.
import { copyFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { SharedIdentities } from '../../src/runtime/identity-source.js';
import { makeCA, makeLeaf, tempDir } from '../helpers/pki.js';

const settings = (certificate: string, privateKey: string, extra: Record<string, unknown> = {}) => ({ certificate, privateKey, expiryWarningDays: 14, ...extra });

t.test('profiles on the same files share one identity; other files, passwords or a rotation do not', async (t) => {
  const dir = await tempDir();
  const ca = await makeCA(dir);
  const a = await makeLeaf(dir, ca, 'shared-a');
  const b = await makeLeaf(dir, ca, 'shared-b');
  const shared = new SharedIdentities();

  // 50 profiles starting at once: one load, one identity.
  const many = await Promise.all(Array.from({ length: 50 }, () => shared.load(settings(a.certPath, a.keyPath))));
  t.ok(many.every((id) => id === many[0]), '50 concurrent loads of the same files give one identity object');
  t.equal(await shared.load(settings(a.certPath, a.keyPath)), many[0], 'a later profile on the same files gets it too');

  const other = await shared.load(settings(b.certPath, b.keyPath));
  t.not(other, many[0], 'another certificate and key: another identity');
  t.not(other.serialDecimal, many[0]!.serialDecimal);
  t.not(await shared.load(settings(a.certPath, a.keyPath, { expiryWarningDays: 3 })), many[0], 'other load options: not shared');

  // Rotation: the same path now holds b's certificate and key.
  await copyFile(b.certPath, a.certPath);
  await copyFile(b.keyPath, a.keyPath);
  const rotated = await shared.load(settings(a.certPath, a.keyPath));
  t.not(rotated, many[0], 'after the files change, a new identity is loaded');
  t.equal(rotated.serialDecimal, other.serialDecimal, 'from the new files');
  t.equal(await shared.load(settings(a.certPath, a.keyPath)), rotated, 'and that one is shared from then on');
});

t.test('a failed load is not remembered', async (t) => {
  const dir = await tempDir();
  const ca = await makeCA(dir);
  const leaf = await makeLeaf(dir, ca, 'broken-then-fixed');
  const cert = join(dir, 'cert.pem');
  await writeFile(cert, 'not a certificate\n');
  const shared = new SharedIdentities();
  await t.rejects(shared.load(settings(cert, leaf.keyPath)), 'a bad certificate file is refused');
  await copyFile(leaf.certPath, cert);
  const id = await shared.load(settings(cert, leaf.keyPath));
  t.ok(id.serialDecimal.length > 0, 'once fixed, it loads');
});
