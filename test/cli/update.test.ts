// `update` as a real process against the emulator; the AWS CLI then uses the
// written profile. Needs a fresh `npx tsc -p .`.
import t from 'tap';
import { spawn } from 'node:child_process';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CLI, runCli, runProcess, cleanEnv, waitFor } from '../helpers/cli.js';
import { startTestEmulator, type TestEmulator } from '../helpers/emulator.js';
import { makeCA, makeLeaf, tempDir } from '../helpers/pki.js';

function flags(env: TestEmulator): string[] {
  return [
    '--certificate', env.leaf.certPath,
    '--private-key', env.leaf.keyPath,
    '--trust-anchor-arn', env.arns.trustAnchorArn,
    '--profile-arn', env.arns.profileArn,
    '--role-arn', env.arns.roleArn,
    '--endpoint', env.url,
  ];
}

const env = await startTestEmulator(t);

// A hand-edited credentials file: comments, other profiles, odd spacing,
// CRLF line endings, an unknown key in the target section.
const PREFIX = [
  '# managed by hand — do not touch\r\n',
  '[default]\r\n',
  'aws_access_key_id=AKIAIOSFODNN7EXAMPLE\r\n',
  'aws_secret_access_key =  wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\r\n',
  '\r\n',
  ';   another comment  \r\n',
  '[ra]\r\n',
  '   \r\n',
].join('');
const SUFFIX = [
  '\r\n',
  '[zzz]\r\n',
  'aws_access_key_id   :   AKIAZZZ\r\n',
  'trailing = spaces   \r\n',
].join('');
const sectionBody = (id: string, secret: string, token: string) =>
  `aws_access_key_id = ${id}\r\nregion=us-east-1\r\naws_secret_access_key=${secret}\r\naws_session_token =${token}\r\n`;

t.test('update --once writes the profile, leaves every other byte, and the AWS CLI uses it', async (t) => {
  const dir = await tempDir('ra-update-');
  const file = join(dir, 'credentials');
  await writeFile(file, PREFIX + sectionBody('ASIAOLDOLDOLDOLD', 'oldsecret', 'oldtoken') + SUFFIX, { mode: 0o644 });
  const r = await runCli(['update', '--once', '--profile', 'ra', ...flags(env)], { cleanEnv: true, env: cleanEnv({ AWS_SHARED_CREDENTIALS_FILE: file }) });
  t.equal(r.code, 0, `exit 0 (stderr: ${r.stderr.trim()})`);
  t.equal(r.stdout, '');
  const issued = env.emulator.issued[env.emulator.issued.length - 1]!;
  const afterBytes = await readFile(file);
  const after = afterBytes.toString('utf8');
  const expected = PREFIX + sectionBody(issued.accessKeyId, issued.secretAccessKey, issued.sessionToken) + SUFFIX;
  if (after !== expected) {
    let i = 0;
    while (after[i] === expected[i]) i++;
    t.comment(`first difference at byte ${i}: ${JSON.stringify(after.slice(Math.max(0, i - 40), i + 20).replaceAll(issued.secretAccessKey, '<secret>').replaceAll(issued.sessionToken, '<token>'))} vs ${JSON.stringify(expected.slice(Math.max(0, i - 40), i + 20).replaceAll(issued.secretAccessKey, '<secret>').replaceAll(issued.sessionToken, '<token>'))}`);
  }
  t.ok(afterBytes.equals(Buffer.from(expected, 'utf8')), 'only the three managed values changed (byte-identical otherwise)');
  t.equal((await stat(file)).mode & 0o777, 0o600, 'mode 0600');
  t.match(r.stderr, /wrote profile \[ra\] to .*credentials; credentials expire at \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ/);
  t.notOk(r.stderr.includes(issued.secretAccessKey) || r.stderr.includes(issued.sessionToken), 'no secrets on stderr');

  const empty = join(dir, 'config');
  await writeFile(empty, '');
  const aws = await runProcess('aws', ['sts', 'get-caller-identity', '--profile', 'ra', '--region', 'us-east-1', '--endpoint-url', env.url, '--output', 'json'], {
    cleanEnv: true,
    env: cleanEnv({ AWS_SHARED_CREDENTIALS_FILE: file, AWS_CONFIG_FILE: empty, AWS_EC2_METADATA_DISABLED: 'true' }),
  });
  t.equal(aws.code, 0, `aws exit 0 (stderr: ${aws.stderr.trim().slice(0, 400)})`);
  const id = JSON.parse(aws.stdout || '{}') as Record<string, string>;
  t.equal(id.Arn, issued.assumedRoleArn, 'STS saw the written credentials');
  const sts = env.emulator.stats.calls.filter((c) => c.operation === 'GetCallerIdentity' && c.outcome === 'ok');
  t.equal(sts[sts.length - 1]?.accessKeyId, issued.accessKeyId);
});

t.test('update --once without AWS_SHARED_CREDENTIALS_FILE creates ~/.aws (0700) and credentials (0600)', async (t) => {
  const home = await tempDir('ra-home-');
  const r = await runCli(['update', '--once', ...flags(env)], { cleanEnv: true, env: cleanEnv({ HOME: home }) });
  t.equal(r.code, 0, r.stderr);
  t.equal((await stat(join(home, '.aws'))).mode & 0o777, 0o700);
  const file = join(home, '.aws', 'credentials');
  t.equal((await stat(file)).mode & 0o777, 0o600);
  const issued = env.emulator.issued[env.emulator.issued.length - 1]!;
  t.ok((await readFile(file, 'utf8')) === `[default]\naws_access_key_id = ${issued.accessKeyId}\naws_secret_access_key = ${issued.secretAccessKey}\naws_session_token = ${issued.sessionToken}\n`);
});

t.test('update errors: one line, exit 1, file untouched', async (t) => {
  const dir = await tempDir('ra-update-');
  const file = join(dir, 'credentials');
  const orig = '[keep]\nx = 1\n';
  await writeFile(file, orig, { mode: 0o600 });
  const otherCa = await makeCA(dir, 'Unrelated CA');
  const stranger = await makeLeaf(dir, otherCa, 'stranger');
  const f = flags(env);
  f[1] = stranger.certPath;
  f[3] = stranger.keyPath;
  for (const args of [['--once'], []]) {
    const r = await runCli(['update', ...args, ...f], { cleanEnv: true, env: cleanEnv({ AWS_SHARED_CREDENTIALS_FILE: file }) });
    t.equal(r.code, 1, `update ${args.join(' ')}: exit 1 on an untrusted certificate`);
    t.match(r.stderr, /refused the certificate.*its issuer is CN=Unrelated CA/);
  }
  const bad = await runCli(['update', '--once', '--profile', 'a]b', ...flags(env)], { cleanEnv: true, env: cleanEnv({ AWS_SHARED_CREDENTIALS_FILE: file }) });
  t.equal(bad.code, 1);
  t.match(bad.stderr, /--profile "a\]b" is not a usable profile name/);
  t.equal(await readFile(file, 'utf8'), orig, 'file untouched');
});

t.test('update keeps refreshing at half the lifetime, survives outages, exits 0 on SIGTERM', async (t) => {
  const short = await startTestEmulator(t, { lifetime: 4 });
  const dir = await tempDir('ra-update-');
  const file = join(dir, 'credentials');
  const child = spawn(process.execPath, [CLI, 'update', '--profile', 'ra', ...flags(short)], {
    env: cleanEnv({ AWS_SHARED_CREDENTIALS_FILE: file }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('close', (code, signal) => resolve({ code, signal })));
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });

  const keyInFile = async () => /aws_access_key_id = (\S+)/.exec(await readFile(file, 'utf8').catch(() => ''))?.[1];
  await waitFor(async () => (await keyInFile()) !== undefined, 'the first write');
  const first = await keyInFile();
  await waitFor(async () => short.emulator.issued.length >= 3 && (await keyInFile()) === short.emulator.issued[short.emulator.issued.length - 1]!.accessKeyId, 'two refreshes');
  t.not(await keyInFile(), first, 'the file was refreshed with new credentials');
  const refreshes = [...stderr.matchAll(/wrote profile \[ra\]/g)].length;
  t.ok(refreshes >= 3, `one stderr line per refresh (${refreshes})`);
  t.match(stderr, /next refresh in [12]s/, 'refresh scheduled at about half of the 4 s lifetime');

  // An outage longer than one CreateSession's retries: update logs it and retries.
  short.emulator.setFaults([{ kind: 'status', status: 503, times: 6 }]);
  const issuedBefore = short.emulator.issued.length;
  await waitFor(() => /refresh failed \(.*service fault.*\); retrying in/.test(stderr), 'a logged failed refresh');
  await waitFor(() => short.emulator.issued.length > issuedBefore, 'recovery after the outage');
  await waitFor(async () => (await keyInFile()) === short.emulator.issued[short.emulator.issued.length - 1]!.accessKeyId, 'the recovered credentials written');

  child.kill('SIGTERM');
  const { code, signal } = await exited;
  t.equal(code, 0, 'exit 0 on SIGTERM');
  t.equal(signal, null);
  t.match(stderr, /SIGTERM received, exiting/);
  for (const c of short.emulator.issued) {
    if (stderr.includes(c.secretAccessKey) || stderr.includes(c.sessionToken)) t.fail('a secret appeared on stderr');
  }
  t.equal((await stat(file)).mode & 0o777, 0o600);
});

t.test('update exits 0 on SIGINT while waiting', async (t) => {
  const dir = await tempDir('ra-update-');
  const file = join(dir, 'credentials');
  const child = spawn(process.execPath, [CLI, 'update', ...flags(env)], { env: cleanEnv({ AWS_SHARED_CREDENTIALS_FILE: file }), stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  await waitFor(() => /next refresh in/.test(stderr), 'the first write');
  child.kill('SIGINT');
  t.equal(await exited, 0);
});

t.test('update with --assume-role-arn writes the hop\'s credentials and keeps refreshing the chain', async (t) => {
  const DEPLOY = 'arn:aws:iam::210987654321:role/Deploy';
  const chained = await startTestEmulator(t, { lifetime: 4, assumableRoles: [{ roleArn: DEPLOY, externalId: 'ext-7' }] });
  const dir = await tempDir('ra-update-');
  const file = join(dir, 'credentials');
  const hopFlags = ['--assume-role-arn', DEPLOY, '--external-id', 'ext-7', '--sts-endpoint', chained.url];
  const once = await runCli(['update', '--once', '--profile', 'ra', ...flags(chained), ...hopFlags], { cleanEnv: true, env: cleanEnv({ AWS_SHARED_CREDENTIALS_FILE: file }) });
  t.equal(once.code, 0, `--once: exit 0 (stderr: ${once.stderr.trim()})`);
  const keyInFile = async () => /aws_access_key_id = (\S+)/.exec(await readFile(file, 'utf8').catch(() => ''))?.[1];
  const hops = () => chained.emulator.issued.filter((c) => c.roleArn === DEPLOY);
  t.equal(await keyInFile(), hops().at(-1)!.accessKeyId, "--once wrote the hop's access key");

  const child = spawn(process.execPath, [CLI, 'update', '--profile', 'ra', ...flags(chained), ...hopFlags], { env: cleanEnv({ AWS_SHARED_CREDENTIALS_FILE: file }), stdio: ['ignore', 'ignore', 'pipe'] });
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  const before = hops().length;
  await waitFor(async () => hops().length >= before + 2 && (await keyInFile()) === hops().at(-1)!.accessKeyId, 'two refreshes of the chain written');
  child.kill('SIGTERM');
  t.equal(await exited, 0, 'exit 0 on SIGTERM');
});
