// What an unset shell variable does to a command line, for every command:
//   --endpoint "$UNSET"            → an empty value
//   --endpoint $UNSET --role-arn … → the next option taken for the value
// Each gets one line naming the option and the likely cause, not Node's
// "argument is ambiguous" or a later, unrelated complaint; nothing starts.
import t from 'tap';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runCli } from '../helpers/cli.js';
import { freePort, httpRequest, spawnServe } from '../helpers/daemon.js';
import { startTestEmulator } from '../helpers/emulator.js';
import { convertKey, tempDir } from '../helpers/pki.js';


const ARNS = ['--role-arn', 'arn:aws:iam::123456789012:role/app'];
// [command, option, an option of that command that could follow it]
const cases: [string[], string, string][] = [
  [['serve'], '--endpoint', '--no-imds'],
  [['serve'], '--config', '--no-imds'],
  [['credential-process'], '--endpoint', '--role-arn'],
  [['update'], '--certificate', '--role-arn'],
  [['check'], '--certificate', '--private-key'],
  [['emulator'], '--trust-anchor-ca', '--quiet'],
  [['pki', 'issue'], '--ca-dir', '--force'],
];

t.jobs = 4; // independent processes: run the commands side by side

for (const [command, flag, next] of cases) {
  const name = command.join(' ');
  t.test(`${name} ${flag}`, async (t) => {
    const empty = await runCli([...command, flag, '', ...ARNS], { cleanEnv: true, timeoutMs: 20_000 });
    t.equal(empty.code, 1, 'empty value: exit 1');
    t.match(empty.stderr, `${flag} is empty (an unset shell variable?): give it a value, or leave ${flag} out`);
    t.equal(empty.stderr.trim().split('\n').length, 1, 'one line');

    const inline = await runCli([...command, `${flag}=`, ...ARNS], { cleanEnv: true, timeoutMs: 20_000 });
    t.match(inline.stderr, `${flag} is empty`, `${flag}= too`);

    const swallowed = await runCli([...command, flag, next, ...(next === '--private-key' ? ['k.pem'] : [])], { cleanEnv: true, timeoutMs: 20_000 });
    t.equal(swallowed.code, 1, 'missing value: exit 1');
    t.match(swallowed.stderr, `${flag} needs a value, but the option ${next} follows it (an unset shell variable?)`);
    t.notMatch(swallowed.stderr, /ambiguous/);
  });
}

t.test('a password may be empty, and a value that looks like an option is never echoed', async (t) => {
  const r = await runCli(['credential-process', '--pkcs8-password', '-hunter2', ...ARNS], { cleanEnv: true });
  t.match(r.stderr, /--pkcs8-password needs a value, but an argument starting with "-" follows it/);
  t.notMatch(r.stderr, /hunter2/);
  const ok = await runCli(['credential-process', '--pkcs8-password', '', ...ARNS], { cleanEnv: true });
  t.notMatch(ok.stderr, /--pkcs8-password is empty/, 'an empty password is a password');
  const dash = await runCli(['credential-process', '--endpoint=-x', ...ARNS], { cleanEnv: true });
  t.notMatch(dash.stderr, /needs a value|is empty/, '--flag=VALUE takes a value starting with "-"');
});

// ---- aws_signing_helper's flag spellings (its cmd/*.go), each accepted with its meaning or refused by name ----

const emuDir = await tempDir('ra-helper-flags-');

t.test("credential-process takes every flag of aws_signing_helper's, with its meaning", async (t) => {
  const emu = await startTestEmulator(t, { dir: emuDir });
  const args = [
    'credential-process',
    '--certificate', emu.leaf.certPath,
    '--private-key', emu.leaf.keyPath,
    '--intermediates', emu.ca.certPath,
    '--role-arn', emu.arns.roleArn,
    '--profile-arn', emu.arns.profileArn,
    '--trust-anchor-arn', emu.arns.trustAnchorArn,
    '--session-duration', '900',
    '--region', emu.region,
    '--endpoint', emu.url,
    '--no-verify-ssl',
    '--with-proxy',
    '--debug',
    '--role-session-name', 'helper-flags',
    '--pkcs11-lib', '/nonexistent/libp11.so',
    '--reuse-pin',
  ];
  const r = await runCli(args, { cleanEnv: true });
  t.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { Version: number; Expiration: string };
  t.equal(out.Version, 1);
  const issued = emu.emulator.issued.at(-1)!;
  t.equal(issued.roleSessionName, 'helper-flags', '--role-session-name reached CreateSession');
  // The emulator's expiration is whole seconds (floored), issuedAt has milliseconds.
  t.equal(Math.ceil((issued.expiration.getTime() - issued.issuedAt.getTime()) / 1000), 900, '--session-duration reached CreateSession');
  t.match(r.stderr, /TLS certificate/i, '--no-verify-ssl is warned about');

  // --debug: the causes of an error, which the one-line message leaves out.
  const down = await runCli([...args.slice(0, args.indexOf('--endpoint')), '--endpoint', 'http://127.0.0.1:1', '--debug'], { cleanEnv: true });
  t.equal(down.code, 1);
  t.match(down.stderr, /caused by: /, '--debug prints the causes');
  const quiet = await runCli([...args.slice(0, args.indexOf('--endpoint')), '--endpoint', 'http://127.0.0.1:1'], { cleanEnv: true });
  t.notMatch(quiet.stderr, /caused by: /, 'without --debug, one line');
});

t.test('key password and TPM flags of the helper: --pkcs8-password, --tpm-key-password, --no-tpm-key-password', async (t) => {
  const emu = await startTestEmulator(t, { dir: await tempDir('ra-helper-pw-') });
  const encrypted = await convertKey(emu.leaf.keyPath, 'pkcs8-encrypted', 'helper pw');
  const base = ['credential-process', '--certificate', emu.leaf.certPath, '--role-arn', emu.arns.roleArn, '--profile-arn', emu.arns.profileArn, '--trust-anchor-arn', emu.arns.trustAnchorArn, '--endpoint', emu.url];
  const ok = await runCli([...base, '--private-key', encrypted, '--pkcs8-password', 'helper pw'], { cleanEnv: true });
  t.equal(ok.code, 0, `--pkcs8-password decrypts the key (${ok.stderr.trim()})`);
  const wrong = await runCli([...base, '--private-key', encrypted, '--pkcs8-password', 'nope'], { cleanEnv: true });
  t.equal(wrong.code, 1, 'a wrong --pkcs8-password fails');
  // A file key is not a TPM key: the TPM flags are accepted (parsed) and name what they are for.
  const tpm = await runCli([...base, '--private-key', emu.leaf.keyPath, '--no-tpm-key-password'], { cleanEnv: true });
  t.equal(tpm.code, 0, `--no-tpm-key-password is accepted (${tpm.stderr.trim()})`);
  const both = await runCli([...base, '--private-key', emu.leaf.keyPath, '--tpm-key-password', 'x', '--pkcs8-password', 'y'], { cleanEnv: true });
  t.match(both.stderr, /give either --pkcs8-password or --tpm-key-password, not both/, '--tpm-key-password is the key password, as in the helper');
});

t.test('update takes --profile and --once with the helper\'s meaning', async (t) => {
  const emu = await startTestEmulator(t, { dir: await tempDir('ra-helper-update-') });
  const credentials = join(emu.dir, 'credentials');
  const r = await runCli(
    ['update', '--certificate', emu.leaf.certPath, '--private-key', emu.leaf.keyPath, '--role-arn', emu.arns.roleArn, '--profile-arn', emu.arns.profileArn, '--trust-anchor-arn', emu.arns.trustAnchorArn, '--endpoint', emu.url, '--profile', 'helper', '--once', '--debug'],
    { cleanEnv: true, env: { AWS_SHARED_CREDENTIALS_FILE: credentials } },
  );
  t.equal(r.code, 0, r.stderr);
  t.match(await readFile(credentials, 'utf8'), /^\[helper\]\naws_access_key_id = /m, '--profile names the section; --once exits after one write');
});

t.test('serve takes --port, and --hop-limit at the host default; another hop limit is refused with the way to get it', async (t) => {
  const emu = await startTestEmulator(t, { dir: await tempDir('ra-helper-serve-') });
  const port = await freePort();
  const systemTtl = Number((await readFile('/proc/sys/net/ipv4/ip_default_ttl', 'utf8')).trim());
  const profile = ['--certificate', emu.leaf.certPath, '--private-key', emu.leaf.keyPath, '--role-arn', emu.arns.roleArn, '--profile-arn', emu.arns.profileArn, '--trust-anchor-arn', emu.arns.trustAnchorArn, '--endpoint', emu.url];
  const tokenFile = join(emu.dir, 'token');
  const serve = spawnServe(t, ['--port', String(port), '--hop-limit', String(systemTtl), '--debug', '--token-file', tokenFile, ...profile]);
  t.equal(await serve.port(), port, '--port N listens on 127.0.0.1:N');
  const res = await httpRequest(port, 'PUT', '/latest/api/token', { 'x-aws-ec2-metadata-token-ttl-seconds': '60' });
  t.equal(res.status, 200, 'IMDSv2 answers on it');
  await serve.waitForOutput(/"level":20/);
  t.pass('--debug: debug-level log lines');
  serve.child.kill('SIGTERM');
  await serve.exited;

  const one = await runCli(['serve', '--port', '0', '--hop-limit', String(systemTtl === 1 ? 2 : 1), '--token-file', tokenFile, ...profile], { cleanEnv: true });
  t.equal(one.code, 1);
  t.match(one.stderr, /--hop-limit: Node\.js cannot set the IP TTL of TCP responses, so --hop-limit \d+ cannot be honoured \(this host's default, \d+, is the only value accepted\); remove it: the endpoint listens on loopback only/);
  const bad = await runCli(['serve', '--hop-limit', '0', ...profile], { cleanEnv: true });
  t.match(bad.stderr, /--hop-limit: must be an IP TTL from 1 to 255/);
});

t.test('OS certificate store flags are refused on every helper command, naming what to use', async (t) => {
  const cases: [string, string[]][] = [];
  for (const command of ['credential-process', 'update', 'serve', 'sign-string']) {
    cases.push([command, ['--cert-selector', 'Key=x509Subject,Value=CN=app']], [command, ['--system-store-name', 'MY']], [command, ['--use-latest-expiring-certificate']]);
  }
  cases.push(['read-certificate-data', ['--cert-selector', 'file:///tmp/selector.json']], ['read-certificate-data', ['--system-store-name', 'Root']]);
  for (const [command, flag] of cases) {
    const r = await runCli([command, ...flag], { cleanEnv: true, timeoutMs: 20_000 });
    t.equal(r.code, 1, `${command} ${flag[0]}: exit 1`);
    t.match(r.stderr, `${flag[0]}: OS certificate stores (the Windows certificate store, the macOS Keychain) are not supported on this platform; give the certificate and key with --certificate and --private-key`, `${command} ${flag[0]}: says why and what to use`);
    t.equal(r.stdout, '', 'nothing on stdout');
  }
});

// Issue 21 (5): a PKCS#11 PIN in the command line (`…?pin-value=…`), or
// --pkcs8-password / --tpm-key-password, is readable by every local user in
// /proc/PID/cmdline — and nothing said so. Each command now warns once at start,
// naming the safer form, without the secret.
t.test('secrets given on the command line get one warning naming the safer form, never the secret', async (t) => {
  const uri = 'pkcs11:token=t;object=k;type=private?pin-value=Pin-2718';
  const cases: Array<[string, string[], RegExp]> = [
    ['--pkcs8-password', ['--pkcs8-password', 'Pw-31415'], /--pkcs8-password puts it in the command line, which every local user can read .*; give it with --key-password-file FILE or ROLESANYWHERE_KEY_PASSWORD/],
    ['--tpm-key-password=', ['--tpm-key-password=Pw-31415'], /--tpm-key-password puts it in the command line.*--key-password-file FILE/],
    ['pin-value in --private-key', ['--private-key', uri], /--private-key: the pkcs11: URI's pin-value puts it in the command line.*; use pin-source=file:\/path in the URI, --pkcs11-pin-file FILE or ROLESANYWHERE_PKCS11_PIN/],
    ['pin-value in --certificate', [`--certificate=${uri.replace('private', 'cert')}`], /--certificate: the pkcs11: URI's pin-value/],
  ];
  for (const command of ['check', 'credential-process', 'update', 'serve']) {
    for (const [label, args, re] of cases) {
      const cert = args.some((a) => a.startsWith('--certificate')) ? [] : ['--certificate', '/nonexistent/cert.pem'];
      const extra = command === 'serve' ? ['--listen', '127.0.0.1:0', '--no-imds', '--token-file', '/nonexistent/token'] : [];
      const r = await runCli([command, ...cert, ...args, ...(command === 'check' ? [] : ARNS), ...extra], { cleanEnv: true, timeoutMs: 30_000 });
      const out = r.stdout + r.stderr;
      t.match(out, re, `${command}, ${label}: warned`);
      t.equal(out.match(/puts it in the command line/g)?.length, 1, `${command}, ${label}: once`);
      t.notMatch(out, /31415|2718/, `${command}, ${label}: the secret is not shown`);
    }
  }
  const quiet = await runCli(['check', '--certificate', '/nonexistent/cert.pem', '--key-password-file', '/nonexistent/pw'], { cleanEnv: true });
  t.notMatch(quiet.stderr, /command line/, 'no warning for a password file');
});
