// The same identity and password inputs give the same answer in check,
// credential-process, update and serve: one password resolution for all four
// (src/config/profile.ts passwordInput → src/runtime/identity-source.ts).
// Real processes, a real encrypted key, the emulator as the service.
import t from 'tap';
import { spawn } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CLI, runCli, runProcess, type CliResult, cleanEnv } from '../helpers/cli.js';
import { startTestEmulator, type TestEmulator } from '../helpers/emulator.js';
import { convertKey, tempDir } from '../helpers/pki.js';

const PASSWORD = 'one-Password-for-all-4';

type Answer = { ok: true } | { ok: false; error: string };

/** The error text without the command's own prefix, so the four commands compare. */
function errorOf(r: CliResult): string {
  const line = r.stderr.trim().split('\n').find((l) => /encrypted|password/i.test(l)) ?? r.stderr.trim().split('\n').at(-1) ?? '';
  return line.replace(/^.*?(\/[^\s:]+: )/, '$1').replace(/"msg":.*$/, '').trim();
}

/** Starts serve and waits for it to be serving (answer ok) or to exit (answer = its error). */
async function serveAnswer(args: string[], env: NodeJS.ProcessEnv, dir: string, shell?: string): Promise<Answer> {
  const argv = [CLI, 'serve', '--listen', '127.0.0.1:0', '--token-file', join(dir, 'token'), '--no-imds', ...args];
  // With `shell`, bash runs the command with `shell` appended (`$0` is node): process substitution needs a shell.
  const child = spawn(shell ? 'bash' : process.execPath, shell ? ['-c', `exec "$0" "$@" ${shell}`, process.execPath, ...argv] : argv, {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  let stdout = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  return new Promise((resolve) => {
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
      if (stderr.includes('Point AWS SDKs')) {
        child.kill('SIGTERM');
        resolve({ ok: true });
      }
    });
    child.on('close', (code) => {
      if (!stderr.includes('Point AWS SDKs')) resolve({ ok: false, error: `exit ${code}: ${errorOf({ code, signal: null, stdout, stderr })}` });
    });
  });
}

async function answers(env: TestEmulator, key: string, extraArgs: string[], extraEnv: Record<string, string>, dir: string): Promise<Record<string, Answer>> {
  const identity = ['--certificate', env.leaf.certPath, '--private-key', key, ...extraArgs];
  const arns = ['--trust-anchor-arn', env.arns.trustAnchorArn, '--profile-arn', env.arns.profileArn, '--role-arn', env.arns.roleArn, '--endpoint', env.url];
  const e = cleanEnv({ ...extraEnv, AWS_SHARED_CREDENTIALS_FILE: join(dir, 'credentials') });
  const answer = (r: CliResult): Answer => (r.code === 0 ? { ok: true } : { ok: false, error: `exit ${r.code}: ${errorOf(r)}` });
  return {
    check: answer(await runCli(['check', ...identity], { cleanEnv: true, env: e })),
    'credential-process': answer(await runCli(['credential-process', ...identity, ...arns], { cleanEnv: true, env: e })),
    update: answer(await runCli(['update', '--once', ...identity, ...arns], { cleanEnv: true, env: e })),
    serve: await serveAnswer([...identity, ...arns], e, dir),
  };
}

const env = await startTestEmulator(t);
const dir = await tempDir('ra-pw-');
const key = await convertKey(env.leaf.keyPath, 'pkcs8-encrypted', PASSWORD);
const pwFile = join(dir, 'pw');
await writeFile(pwFile, `${PASSWORD}\n`, { mode: 0o600 });
const emptyFile = join(dir, 'empty-pw');
await writeFile(emptyFile, '', { mode: 0o600 });

const CASES: { name: string; args: string[]; env: Record<string, string>; ok: boolean; error?: RegExp }[] = [
  { name: 'password file (--key-password-file)', args: ['--key-password-file', pwFile], env: {}, ok: true },
  { name: 'password file (ROLESANYWHERE_KEY_PASSWORD_FILE)', args: [], env: { ROLESANYWHERE_KEY_PASSWORD_FILE: pwFile }, ok: true },
  { name: 'env var ROLESANYWHERE_KEY_PASSWORD', args: [], env: { ROLESANYWHERE_KEY_PASSWORD: PASSWORD }, ok: true },
  { name: 'env var ROLESANYWHERE_PKCS8_PASSWORD', args: [], env: { ROLESANYWHERE_PKCS8_PASSWORD: PASSWORD }, ok: true },
  { name: '--pkcs8-password', args: ['--pkcs8-password', PASSWORD], env: {}, ok: true },
  { name: 'flag beats env', args: ['--key-password-file', pwFile], env: { ROLESANYWHERE_KEY_PASSWORD: 'wrong' }, ok: true },
  { name: 'empty env var (= unset)', args: [], env: { ROLESANYWHERE_KEY_PASSWORD: '' }, ok: false, error: /private key is encrypted; give its password/ },
  { name: 'none', args: [], env: {}, ok: false, error: /private key is encrypted; give its password/ },
  { name: 'empty password file (a real, wrong, empty password)', args: ['--key-password-file', emptyFile], env: {}, ok: false, error: /wrong password for the encrypted private key/ },
  { name: 'wrong password in the env', args: [], env: { ROLESANYWHERE_KEY_PASSWORD: 'wrong' }, ok: false, error: /wrong password for the encrypted private key/ },
];

for (const c of CASES) {
  t.test(c.name, async (t) => {
    const got = await answers(env, key, c.args, c.env, dir);
    const first = got.check!;
    for (const [command, answer] of Object.entries(got)) {
      t.equal(answer.ok, c.ok, `${command}: ${c.ok ? 'accepted' : 'refused'} (${answer.ok ? 'ok' : answer.error})`);
      if (!answer.ok && c.error) t.match(answer.error, c.error, `${command}: the same reason`);
      if (!answer.ok) t.notMatch(answer.error, PASSWORD, `${command}: the password is not echoed`);
      if (!answer.ok && !first.ok) t.equal(answer.error.replace(/^exit \d+: /, ''), first.error.replace(/^exit \d+: /, ''), `${command}: the same message as check`);
    }
  });
}

t.test('update wrote the credentials the emulator issued', async (t) => {
  const text = await readFile(join(dir, 'credentials'), 'utf8');
  t.match(text, /aws_access_key_id = /);
});

// Issue 21 (3): serve hashed the password file for change detection before
// loading, which consumed a pipe, so `--key-password-file <(…)` worked with
// credential-process and failed in serve with "wrong password" (with a TPM key,
// a dictionary-attack try).
t.test('a password from a pipe (--key-password-file <(…)) works in serve as in credential-process', async (t) => {
  const identity = ['--certificate', env.leaf.certPath, '--private-key', key];
  const arns = ['--trust-anchor-arn', env.arns.trustAnchorArn, '--profile-arn', env.arns.profileArn, '--role-arn', env.arns.roleArn, '--endpoint', env.url];
  const e = cleanEnv({ PW: PASSWORD, AWS_SHARED_CREDENTIALS_FILE: join(dir, 'credentials') });
  const pipe = `--key-password-file <(printf '%s\\n' "$PW")`;
  const cp = await runProcess('bash', ['-c', `exec "$0" "$@" ${pipe}`, process.execPath, CLI, 'credential-process', ...identity, ...arns], { cleanEnv: true, env: e });
  t.equal(cp.code, 0, `credential-process: ${cp.stderr}`);
  const served = await serveAnswer([...identity, ...arns], e, dir, pipe);
  t.same(served, { ok: true }, 'serve starts serving with the password read once from the pipe');
});
