// Size caps on identity files: a 40 MB file at the certificate path drove the
// daemon to 4.4 GB and a fatal heap error (and a crash loop on restart). Files
// are now refused from their size before they are read: a clear error at start,
// and a running daemon keeps serving its current identity.
import { readFile, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { loadIdentity, readPasswordFile } from '../../src/identity/load.js';
import { MAX_FILE_BYTES } from '../../src/identity/files.js';
import { hashIdentityFiles } from '../../src/identity/watch.js';
import { runCli, runProcess } from '../helpers/cli.js';
import { fetchJwks } from '../../src/podidentity/jwks.js';
import { Daemon } from '../../src/server/daemon.js';
import { daemonConfig, httpRequest, profileFor, ROLE_ARN } from '../helpers/daemon.js';
import { makeCA, makeLeaf, tempDir } from '../helpers/pki.js';

t.test('each identity file has a cap, checked before reading', async (t) => {
  const dir = await tempDir();
  const ca = await makeCA(dir);
  const leaf = await makeLeaf(dir, ca, 'caps');
  const big = join(dir, 'big');
  await writeFile(big, '');
  await truncate(big, 40 * 1024 * 1024); // 40 MB, sparse
  await t.rejects(loadIdentity({ certificate: big, privateKey: leaf.keyPath }), { message: /big: certificate file is 41943040 bytes, more than the 262144 a certificate file can be/, reason: 'file_too_large' });
  await t.rejects(loadIdentity({ certificate: leaf.certPath, privateKey: big }), { message: /private key file is 41943040 bytes/ });
  await t.rejects(loadIdentity({ certificate: leaf.certPath, privateKey: leaf.keyPath, intermediates: big }), { message: /intermediates file is 41943040 bytes/ });
  await t.rejects(readPasswordFile(big, '--pfx-password-file'), { message: /^--pfx-password-file .*big: password file is 41943040 bytes/ });
  const p12 = join(dir, 'big.p12');
  await writeFile(p12, '');
  await truncate(p12, MAX_FILE_BYTES.certificate! + 1);
  await t.rejects(loadIdentity({ certificate: p12 }), { message: /certificate file is 262145 bytes/ });
  const empty = join(dir, 'empty-pass');
  await writeFile(empty, '');
  t.equal(await readPasswordFile(empty), '', 'an empty password file is still an empty password');
});

t.test('a device without a size (/dev/zero) is read only up to the cap, then refused', async (t) => {
  const dir = await tempDir();
  const ca = await makeCA(dir);
  const leaf = await makeLeaf(dir, ca, 'caps-device');
  await t.rejects(loadIdentity({ certificate: '/dev/zero', privateKey: leaf.keyPath }), {
    message: /^\/dev\/zero: certificate file is more than the 262144 bytes a certificate file can be; check the path/,
    reason: 'file_too_large',
  });
  await t.rejects(loadIdentity({ certificate: leaf.certPath, privateKey: '/dev/zero' }), { message: /private key file is more than the 65536 bytes/ });
  await t.rejects(readPasswordFile('/dev/zero', '--key-password-file'), { message: /^--key-password-file \/dev\/zero: password file is more than the 4096 bytes/ });
  await t.rejects(fetchJwks({ file: '/dev/zero' }), { message: /^\/dev\/zero: JWKS file is more than the 262144 bytes/, reason: 'file_too_large' });
  await t.rejects(fetchJwks({ file: dir }), { message: /is a directory, expected the JWKS file/ });
});

t.test('a running daemon refuses an oversized replacement and keeps serving its identity', async (t) => {
  const dir = await tempDir();
  const ca = await makeCA(dir);
  const leaf = await makeLeaf(dir, ca, 'caps-daemon');
  const config = daemonConfig(dir, [profileFor('main', leaf)]);
  const daemon = await Daemon.start(config, {
    fetchFactory: () => async () => ({ accessKeyId: 'ASIACAPS', secretAccessKey: 's', sessionToken: 't', expiration: new Date(Date.now() + 3600_000), roleArn: ROLE_ARN }),
    loadIdentity: (_p, s) => loadIdentity(s),
  });
  t.teardown(() => daemon.close());
  await daemon.session('main')!.waitFor((s) => s.status().ready, 10_000);
  const serial = daemon.session('main')!.identity.serialDecimal;
  await writeFile(leaf.certPath, '');
  await truncate(leaf.certPath, 40 * 1024 * 1024);
  await daemon.watcher('main')!.check();
  const status = daemon.session('main')!.status();
  t.ok(status.identityReloadFailures >= 1, 'the replacement is refused');
  t.match(status.lastIdentityError?.message, /certificate file is 41943040 bytes/);
  t.equal(daemon.session('main')!.identity.serialDecimal, serial, 'the current identity stays');
  const token = await readFile(config.tokenFile, 'utf8');
  t.equal((await httpRequest(daemon.addresses[0]!.port, 'GET', '/v1/credentials', { authorization: token })).status, 200, 'still serving');
});

// Issue 21 (3): `serve --certificate /dev/zero` read without limit (~750 MB/s):
// the watcher's change detection trusted stat().size (0 for a device) and read
// the whole "file" before the capped loader ever saw it.
t.test('serve --certificate /dev/zero is refused at the cap, not read for ever', async (t) => {
  const dir = await tempDir();
  const ca = await makeCA(dir);
  const leaf = await makeLeaf(dir, ca, 'caps-serve-zero');
  const r = await runCli(
    ['serve', '--certificate', '/dev/zero', '--private-key', leaf.keyPath, '--listen', '127.0.0.1:0', '--token-file', join(dir, 'token'), '--no-imds',
      '--trust-anchor-arn', 'arn:aws:rolesanywhere:us-east-1:123456789012:trust-anchor/a', '--profile-arn', 'arn:aws:rolesanywhere:us-east-1:123456789012:profile/p',
      '--role-arn', 'arn:aws:iam::123456789012:role/r', '--endpoint', 'http://127.0.0.1:9'],
    { timeoutMs: 30_000 },
  );
  t.equal(r.signal, null, 'it ends by itself');
  t.equal(r.code, 1, 'exit 1');
  t.match(r.stderr, /\/dev\/zero: certificate file is more than the 262144 bytes a certificate file can be/);
});

t.test('change detection never reads a device or a pipe; a pipe password is read once and kept', async (t) => {
  const dir = await tempDir();
  const zero = await hashIdentityFiles({ certificate: '/dev/zero' }, ['/dev/urandom']);
  t.equal(await hashIdentityFiles({ certificate: '/dev/zero' }, ['/dev/urandom']), zero, 'devices hash by what they are, stably, without being read');
  const fifo = join(dir, 'pw.fifo');
  await runProcess('mkfifo', [fifo]);
  const writer = runProcess('sh', ['-c', 'printf "s3cret\\n" > "$0"', fifo]);
  const before = await hashIdentityFiles({ certificate: '/dev/null' }, [fifo]);
  t.equal(await readPasswordFile(fifo), 's3cret', 'the loader reads what the writer wrote (the hash consumed nothing)');
  t.equal((await writer).code, 0, 'the writer was not left without a reader');
  t.equal(await readPasswordFile(fifo), 's3cret', 'a second read (a reload) gets the same password, not an empty pipe');
  t.equal(await hashIdentityFiles({ certificate: '/dev/null' }, [fifo]), before, 'the pipe hashes the same after it was read');
});
