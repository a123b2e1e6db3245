// What an unset shell variable does to a command line, for every command:
//   --endpoint "$UNSET"            → an empty value
//   --endpoint $UNSET --role-arn … → the next option taken for the value
// Each gets one line naming the option and the likely cause, not Node's
// "argument is ambiguous" or a later, unrelated complaint; nothing starts.
import t from 'tap';
import { runCli } from '../helpers/cli.js';

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
