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
