// `check` as a user runs it: a real process on real openssl-made files.
import { spawn } from 'node:child_process';
import { chmod, chown, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { otherUserRuntime, runCli, type CliResult } from '../helpers/cli.js';
import { convertKey, makeCA, makeChain, makeLeaf, makePfx, tempDir } from '../helpers/pki.js';

const PASSWORD = 'cli-check-Secret-42';
const dir = await tempDir();
const { root, intermediate, leaf } = await makeChain(dir, 'p256');
const ca = await makeCA(dir, 'Check CA');

function assertOneLineError(t: Tap, r: CliResult, pattern: RegExp, name: string): void {
  t.equal(r.code, 1, `${name}: exit 1`);
  t.equal(r.stdout, '', `${name}: nothing on stdout`);
  const lines = r.stderr.trimEnd().split('\n');
  t.equal(lines.length, 1, `${name}: one line on stderr`);
  t.match(lines[0], /^rolesanywhere-credentiald: /, `${name}: prefixed`);
  t.match(lines[0], pattern, name);
  t.notMatch(r.stderr, /\n\s+at /, `${name}: no stack`);
  t.notOk(r.stderr.includes(PASSWORD), `${name}: no password`);
}
type Tap = typeof t;

const cleanEnv = { ROLESANYWHERE_KEY_PASSWORD: '' };
const check = (args: string[], env: NodeJS.ProcessEnv = {}) => runCli(['check', ...args], { env: { ...cleanEnv, ...env } });

t.test('--help', async (t) => {
  const r = await check(['--help']);
  t.equal(r.code, 0);
  t.match(r.stdout, /Usage: rolesanywhere-credentiald check --certificate FILE/);
  t.match(r.stdout, /--key-password-file/);
});

t.test('a good certificate, key, chain and CA', async (t) => {
  const r = await check(['--certificate', leaf.certPath, '--private-key', leaf.keyPath, '--intermediates', intermediate.certPath, '--ca', root.certPath]);
  t.equal(r.code, 0, 'exit 0');
  t.equal(r.stderr, '');
  for (const id of ['version', 'basicConstraints', 'keyUsage', 'signatureAlgorithm', 'keyType', 'size', 'validity', 'expiry', 'privateKey', 'keyMatch', 'chain\\[0\\]', 'trustAnchor', 'ca\\.basicConstraints', 'ca\\.keyUsage']) {
    t.match(r.stdout, new RegExp(`^PASS ${id}: `, 'm'), `PASS ${id}`);
  }
  t.notMatch(r.stdout, /^FAIL /m, 'no failures');
  t.match(r.stdout, new RegExp(`^INFO serial \\(decimal, as CloudTrail logs it\\): ${leaf.serialDecimal}$`, 'm'), 'decimal serial');
  t.match(r.stdout, /^INFO days left: 36[45] /m, 'days left');
  t.match(r.stdout, /^OK: Roles Anywhere should accept this certificate$/m);
});

t.test('PKCS#12 with the password from a file and from the environment', async (t) => {
  const pfx = await makePfx(leaf, [intermediate, root], 'aes256', PASSWORD);
  const pwFile = join(dir, 'pw.txt');
  await writeFile(pwFile, PASSWORD + '\n', { mode: 0o600 });
  let r = await check(['--certificate', pfx, '--key-password-file', pwFile, '--ca', root.certPath]);
  t.equal(r.code, 0, 'password file');
  t.match(r.stdout, /^PASS keyMatch: private key matches the certificate$/m);
  t.match(r.stdout, /^INFO chain: self-signed CN=Test Root CA in the chain is not sent/m);
  r = await check(['--certificate', pfx, '--ca', root.certPath], { ROLESANYWHERE_KEY_PASSWORD: PASSWORD });
  t.equal(r.code, 0, 'environment');
  r = await check(['--certificate', pfx, '--pkcs8-password', PASSWORD]);
  t.equal(r.code, 0, '--pkcs8-password');
  t.notOk(r.stdout.includes(PASSWORD), 'password not echoed');
  assertOneLineError(t, await check(['--certificate', pfx]), /PKCS#12 bundle is encrypted; give its password with --key-password-file FILE or ROLESANYWHERE_KEY_PASSWORD/, 'missing password');
  // A password file, not --pkcs8-password: that flag adds its own warning line (the password is on the command line).
  const wrongFile = join(dir, 'wrong-pw.txt');
  await writeFile(wrongFile, 'nope\n', { mode: 0o600 });
  assertOneLineError(t, await check(['--certificate', pfx, '--key-password-file', wrongFile]), /wrong password for the PKCS#12 bundle/, 'wrong password');
});

t.test('each failing rule is named with its fix, exit 1', async (t) => {
  const cases: Array<[string, Parameters<typeof makeLeaf>[3], RegExp]> = [
    ['ca-true', { caTrue: true }, /^FAIL basicConstraints: has basicConstraints CA:TRUE; .* — reissue it with CA:FALSE$/m],
    ['no-digsig', { keyUsage: 'critical,keyEncipherment', keyType: 'rsa2048' }, /^FAIL keyUsage: has keyUsage keyEncipherment without digitalSignature.* — reissue it with keyUsage=critical,digitalSignature$/m],
    ['sha1', { digest: 'sha1' }, /^FAIL signatureAlgorithm: is signed with sha1WithRSAEncryption; Roles Anywhere needs SHA-256 or stronger — /m],
    ['v1', { noExtensions: true }, /^FAIL version: is an X\.509 v1 certificate; Roles Anywhere needs v3 — /m],
    ['expired', { days: -1 }, /^FAIL validity: expired at .* — renew the certificate$/m],
    ['ed25519', { keyType: 'ed25519' }, /^FAIL keyType: has an Ed25519 key; Roles Anywhere supports RSA \(2048 bits or more\), EC P-256\/P-384 and ML-DSA-44\/65\/87 keys — /m],
    ['dsa', { keyType: 'dsa' }, /^FAIL keyType: has a DSA 2048-bit key; /m],
  ];
  for (const [name, opts, pattern] of cases) {
    const l = await makeLeaf(dir, ca, `check-${name}`, opts);
    const r = await check(['--certificate', l.certPath, '--private-key', l.keyPath, '--ca', ca.certPath]);
    t.equal(r.code, 1, `${name}: exit 1`);
    t.match(r.stdout, pattern, `${name}: rule named`);
    t.match(r.stdout, /^FAILED: \d+ rules? failed/m, `${name}: summary`);
    t.equal(r.stderr, '', `${name}: nothing on stderr`);
  }
  const ed = await makeLeaf(dir, ca, 'check-ed-key', { keyType: 'ed25519' });
  const r = await check(['--certificate', ed.certPath, '--private-key', ed.keyPath]);
  t.match(r.stdout, /^FAIL privateKey: Ed25519 keys are not supported; Roles Anywhere supports RSA/m, 'private key type named');
});

t.test('warnings do not fail', async (t) => {
  const soon = await makeLeaf(dir, ca, 'check-soon', { days: 3 });
  const r = await check(['--certificate', soon.certPath, '--private-key', soon.keyPath, '--ca', ca.certPath]);
  t.equal(r.code, 0);
  t.match(r.stdout, /^WARN expiry: expires in [23] days .* — renew the certificate soon$/m);
  t.match(r.stdout, /^OK: Roles Anywhere should accept this certificate \(1 warning\)$/m);
  const later = await check(['--certificate', soon.certPath, '--private-key', soon.keyPath, '--expiry-warning-days', '1']);
  t.match(later.stdout, /^PASS expiry: /m, '--expiry-warning-days respected');
  const noKey = await check(['--certificate', soon.certPath]);
  t.equal(noKey.code, 0, 'no key: still 0');
  t.match(noKey.stdout, /^WARN keyMatch: no private key given/m);
});

t.test('key mismatch and chain problems are FAIL lines', async (t) => {
  const other = await makeLeaf(dir, ca, 'check-other');
  let r = await check(['--certificate', leaf.certPath, '--private-key', other.keyPath]);
  t.equal(r.code, 1);
  t.match(r.stdout, /^FAIL keyMatch: private key .* does not match the certificate .* — use the key the certificate was issued for$/m);
  r = await check(['--certificate', leaf.certPath, '--private-key', leaf.keyPath, '--ca', root.certPath]);
  t.equal(r.code, 1, 'missing intermediate');
  t.match(r.stdout, /^FAIL trustAnchor: the leaf \(issuer CN=Test Intermediate CA\) was not issued by the CA \(CN=Test Root CA\) — give the intermediate certificates with --intermediates/m);
  r = await check(['--certificate', leaf.certPath, '--private-key', leaf.keyPath, '--intermediates', intermediate.certPath, '--ca', ca.certPath]);
  t.equal(r.code, 1, 'wrong CA');
  t.match(r.stdout, /^FAIL trustAnchor: /m);
  r = await check(['--certificate', leaf.certPath, '--private-key', leaf.keyPath, '--intermediates', intermediate.certPath, '--ca', leaf.certPath]);
  t.equal(r.code, 1, 'leaf given as CA');
  t.match(r.stdout, /^FAIL trustAnchor: /m);
});

t.test('unreadable input: one line on stderr, exit 1, nothing on stdout', async (t) => {
  const garbage = join(dir, 'garbage.pem');
  await writeFile(garbage, 'not a certificate');
  const empty = join(dir, 'empty.pem');
  await writeFile(empty, '');
  const encKey = await convertKey(leaf.keyPath, 'pkcs8-encrypted', PASSWORD);
  const wrongKeyPw = join(dir, 'wrong-key-pw.txt');
  await writeFile(wrongKeyPw, `${PASSWORD}x\n`, { mode: 0o600 });
  const cases: Array<[string[], RegExp, string]> = [
    [[], /check: --certificate FILE is required/, 'no certificate flag'],
    [['--certificate', join(dir, 'missing.pem')], /missing\.pem: certificate file not found/, 'missing file'],
    [['--certificate', dir], /is a directory, expected the certificate file/, 'directory'],
    [['--certificate', empty], /empty\.pem: certificate file is empty/, 'empty file'],
    [['--certificate', garbage], /garbage\.pem: not a PEM or DER certificate or a PKCS#12 bundle/, 'garbage'],
    [['--certificate', leaf.certPath, '--private-key', encKey], /private key is encrypted; give its password with --key-password-file FILE or ROLESANYWHERE_KEY_PASSWORD/, 'encrypted key, no password'],
    [['--certificate', leaf.certPath, '--private-key', encKey, '--key-password-file', wrongKeyPw], /wrong password for the encrypted private key/, 'wrong key password'],
    [['--certificate', leaf.certPath, '--ca', garbage], /garbage\.pem: CA certificate file is not a PEM or DER certificate/, 'garbage CA'],
    [['--certificate', leaf.certPath, '--key-password-file', join(dir, 'no-pw')], /no-pw: password file not found/, 'missing password file'],
    [['--certificate', leaf.certPath, '--expiry-warning-days', 'soon'], /--expiry-warning-days must be a whole number of days/, 'bad number'],
    [['--certificate', leaf.certPath, '--bogus'], /check: Unknown option '--bogus'/, 'unknown flag'],
  ];
  for (const [args, pattern, name] of cases) assertOneLineError(t, await check(args), pattern, name);
});

t.test('permission denied, as an unprivileged user', async (t) => {
  if (process.getuid?.() !== 0) {
    t.comment('not root: cannot switch user; covered by the EACCES mapping unit test');
    return;
  }
  // uid 65534 runs copies of Node and the CLI in a directory it can enter: the clone may not be (/root, 0700).
  const rt = await otherUserRuntime();
  if ('skip' in rt) {
    t.skip(rt.skip);
    return;
  }
  const secret = join(dir, 'secret.pem');
  await writeFile(secret, leaf.certPem);
  await chmod(secret, 0o600);
  await chmod(dir, 0o755);
  const r = await new Promise<CliResult>((resolve, reject) => {
    // `env -i`: a clean environment, free of the test runner's NODE_OPTIONS hooks
    // (which would try to write coverage files as the unprivileged user).
    const child = spawn('env', ['-i', `PATH=${process.env.PATH ?? '/usr/bin:/bin'}`, rt.node, rt.cli, 'check', '--certificate', secret], {
      uid: 65534,
      gid: 65534,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
  assertOneLineError(t, r, /secret\.pem: permission denied reading the certificate file; make it readable by (user \S+ \()?uid 65534/, 'permission denied');
});

t.test('secret files open to other users: FAIL for everyone, WARN for a group, PASS for the owner only; serve warns', async (t) => {
  const dir = await tempDir();
  const ca = await makeCA(dir);
  const leaf = await makeLeaf(dir, ca, 'modes');
  await chmod(leaf.keyPath, 0o644);
  const open = await check(['--certificate', leaf.certPath, '--private-key', leaf.keyPath]);
  t.equal(open.code, 1, 'exit 1');
  t.match(open.stdout, new RegExp(`FAIL secretFileMode: .*modes.*key.*: the private key file is open to every local user \\(mode 644\\); run chmod 600`));
  await chmod(leaf.keyPath, 0o640);
  if (process.getuid?.() === 0) await chown(leaf.keyPath, 0, 65534); // nogroup: not a group of this process (more cases in test/identity/secret-modes.test.ts)
  const group = await check(['--certificate', leaf.certPath, '--private-key', leaf.keyPath]);
  t.equal(group.code, 0, 'a group-readable key only warns');
  t.match(group.stdout, /WARN secretFileMode: .*open to its group \(gid \d+, mode 640\)/);
  const pass = join(dir, 'pass');
  await writeFile(pass, 'pw\n', { mode: 0o604 });
  await chmod(pass, 0o604);
  await chmod(leaf.keyPath, 0o600);
  const pwOpen = await check(['--certificate', leaf.certPath, '--private-key', leaf.keyPath, '--key-password-file', pass]);
  t.match(pwOpen.stdout, /FAIL secretFileMode: .*pass: the password file is open to every local user/);
  const closed = await check(['--certificate', leaf.certPath, '--private-key', leaf.keyPath]);
  t.match(closed.stdout, /PASS secretFileMode: key, PKCS#12 and password files are open to no other user/);

  // serve logs a warning for the same file.
  const { Daemon } = await import('../../src/server/daemon.js');
  const { loadIdentity } = await import('../../src/identity/load.js');
  const { daemonConfig, profileFor } = await import('../helpers/daemon.js');
  const { createLogger } = await import('../../src/log.js');
  const { Writable } = await import('node:stream');
  await chmod(leaf.keyPath, 0o644);
  let logged = '';
  const logger = await createLogger({ level: "info", destination: new Writable({ write: (c, _e, cb) => ((logged += String(c)), cb()) }) });
  const daemon = await Daemon.start(daemonConfig(dir, [profileFor('main', leaf)]), {
    fetchFactory: () => async () => ({ accessKeyId: 'A', secretAccessKey: 's', sessionToken: 't', expiration: new Date(Date.now() + 3600_000), roleArn: 'arn:aws:iam::123456789012:role/r' }),
    loadIdentity: (_p, s) => loadIdentity(s),
    logger,
  });
  await daemon.close();
  t.match(logged, /secret_file_exposed.*the private key file is open to every local user \(mode 644\)/);
});
