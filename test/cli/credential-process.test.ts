// credential-process as a real process against the emulator, and the real AWS
// CLIs using it through credential_process. Needs a fresh `npx tsc -p .`.
import t from 'tap';
import { chmod, chown, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CLI, runCli, runProcess, cleanEnv } from '../helpers/cli.js';
import { startTestEmulator, type TestEmulator } from '../helpers/emulator.js';
import { convertKey, makeCA, makeLeaf, makePfx, type CertFiles } from '../helpers/pki.js';
import { sha } from '../helpers/assert.js';
import { missing as needs } from '../helpers/needs.js';

const EXPIRATION_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/;

function arnFlags(env: TestEmulator): string[] {
  return ['--trust-anchor-arn', env.arns.trustAnchorArn, '--profile-arn', env.arns.profileArn, '--role-arn', env.arns.roleArn, '--endpoint', env.url];
}

/** Runs credential-process and checks its output is exactly what the emulator issued last. */
async function expectCredentials(t: Tap.Test, env: TestEmulator, args: string[], extraEnv: Record<string, string> = {}, name = 'credentials') {
  const before = env.emulator.issued.length;
  const r = await runCli(['credential-process', ...args, ...arnFlags(env)], { cleanEnv: true, env: cleanEnv(extraEnv) });
  t.equal(r.code, 0, `${name}: exit 0 (stderr: ${r.stderr.trim()})`);
  t.equal(env.emulator.issued.length, before + 1, `${name}: the emulator issued one session`);
  const issued = env.emulator.issued[env.emulator.issued.length - 1]!;
  let out: Record<string, unknown> = {};
  try {
    out = JSON.parse(r.stdout);
  } catch {
    t.fail(`${name}: stdout is JSON`);
    return;
  }
  t.same(Object.keys(out), ['Version', 'AccessKeyId', 'SecretAccessKey', 'SessionToken', 'Expiration'], `${name}: exact keys in order`);
  t.equal(out.Version, 1);
  t.ok(out.AccessKeyId === issued.accessKeyId, `${name}: AccessKeyId issued by the emulator`);
  t.ok(sha(String(out.SecretAccessKey)) === sha(issued.secretAccessKey), `${name}: SecretAccessKey issued by the emulator`);
  t.ok(sha(String(out.SessionToken)) === sha(issued.sessionToken), `${name}: SessionToken issued by the emulator`);
  t.match(out.Expiration, EXPIRATION_RE, `${name}: Expiration format`);
  t.equal(new Date(String(out.Expiration)).getTime(), issued.expiration.getTime(), `${name}: Expiration as issued`);
  t.equal(r.stdout.split('\n').length, 2, `${name}: one line on stdout`);
}

declare namespace Tap {
  type Test = typeof t;
}

const env = await startTestEmulator(t, { keyType: 'rsa2048' });
const dir = env.dir;

t.test('RSA 2048: PKCS#1, PKCS#8 and encrypted PKCS#8 keys', async (t) => {
  await expectCredentials(t, env, ['--certificate', env.leaf.certPath, '--private-key', await convertKey(env.leaf.keyPath, 'pkcs1')], {}, 'rsa2048 pkcs1');
  await expectCredentials(t, env, ['--certificate', env.leaf.certPath, '--private-key', env.leaf.keyPath], {}, 'rsa2048 pkcs8');
  const enc = await convertKey(env.leaf.keyPath, 'pkcs8-encrypted', 'battery staple');
  await expectCredentials(t, env, ['--certificate', env.leaf.certPath, '--private-key', enc], { ROLESANYWHERE_KEY_PASSWORD: 'battery staple' }, 'rsa2048 encrypted pkcs8');
});

t.test('RSA 4096: PKCS#1, PKCS#8, and encrypted PKCS#8 with the password from file, environment, flag', async (t) => {
  const leaf = await makeLeaf(dir, env.ca, 'rsa4096-client', { keyType: 'rsa4096' });
  const enc = await convertKey(leaf.keyPath, 'pkcs8-encrypted', 'correct horse');
  const pwFile = join(dir, 'pw.txt');
  await writeFile(pwFile, 'correct horse\n', { mode: 0o600 });
  const base = ['--certificate', leaf.certPath, '--private-key', enc];
  await expectCredentials(t, env, ['--certificate', leaf.certPath, '--private-key', await convertKey(leaf.keyPath, 'pkcs1')], {}, 'rsa4096 pkcs1');
  await expectCredentials(t, env, ['--certificate', leaf.certPath, '--private-key', leaf.keyPath], {}, 'rsa4096 pkcs8');
  await expectCredentials(t, env, [...base, '--key-password-file', pwFile], {}, 'rsa4096 --key-password-file');
  await expectCredentials(t, env, base, { ROLESANYWHERE_KEY_PASSWORD: 'correct horse' }, 'rsa4096 ROLESANYWHERE_KEY_PASSWORD');
  await expectCredentials(t, env, [...base, '--pkcs8-password', 'correct horse'], {}, 'rsa4096 --pkcs8-password');

  const wrong = await runCli(['credential-process', ...base, '--pkcs8-password', 'wrong horse', ...arnFlags(env)], { cleanEnv: true, env: cleanEnv() });
  t.equal(wrong.code, 1, 'wrong password: exit 1');
  t.equal(wrong.stdout, '', 'wrong password: nothing on stdout');
  t.notMatch(wrong.stderr, /horse/, 'the password is never printed');
  t.match(wrong.stderr, /password/i);
});

t.test('EC P-256 (SEC1) and P-384', async (t) => {
  const p256 = await makeLeaf(dir, env.ca, 'p256-client', { keyType: 'p256' });
  await expectCredentials(t, env, ['--certificate', p256.certPath, '--private-key', await convertKey(p256.keyPath, 'sec1')], {}, 'p256 sec1');
  const p384 = await makeLeaf(dir, env.ca, 'p384-client', { keyType: 'p384' });
  await expectCredentials(t, env, ['--certificate', p384.certPath, '--private-key', p384.keyPath], {}, 'p384');
});

t.test('PKCS#12 bundles: legacy 3DES, AES-256, RC2-40', async (t) => {
  const leaf = await makeLeaf(dir, env.ca, 'pfx-client', { keyType: 'p256' });
  for (const encoding of ['legacy-3des', 'aes256', 'rc2-40'] as const) {
    let pfx: string;
    try {
      pfx = await makePfx(leaf, [], encoding, 'pfx-pass');
    } catch (err) {
      t.skip(`openssl cannot write ${encoding}: ${(err as Error).message.split('\n')[0]}`);
      continue;
    }
    await expectCredentials(t, env, ['--certificate', pfx, '--pkcs8-password', 'pfx-pass'], {}, `pkcs12 ${encoding}`);
  }
});

t.test('leaf issued by an intermediate: chain sent and verified', async (t) => {
  const chained = await startTestEmulator(t, { chain: true, keyType: 'p256' });
  const withChain = ['--certificate', chained.leaf.certPath, '--private-key', chained.leaf.keyPath];
  await expectCredentials(t, chained, [...withChain, '--intermediates', chained.intermediate!.certPath], {}, 'chain via --intermediates');

  const r = await runCli(['credential-process', ...withChain, ...arnFlags(chained)], { cleanEnv: true, env: cleanEnv() });
  t.equal(r.code, 1, 'without the intermediate: refused');
  t.equal(r.stdout, '');
  t.match(r.stderr, /Roles Anywhere refused the certificate \(AccessDeniedException: Untrusted signing certificate.*its issuer is CN=Emulator Test Intermediate CA.*--intermediates/);
  t.equal(r.stderr.trim().split('\n').length, 1, 'one line');
});

t.test('a key other users can read: the credentials as usual, and the same warning serve logs, on stderr', async (t) => {
  const leaf = await makeLeaf(dir, env.ca, 'exposed-client', { keyType: 'p256' });
  const args = ['credential-process', '--certificate', leaf.certPath, '--private-key', leaf.keyPath, ...arnFlags(env)];
  await chmod(leaf.keyPath, 0o600);
  const quiet = await runCli(args, { cleanEnv: true, env: cleanEnv() });
  t.equal(quiet.code, 0, quiet.stderr);
  t.equal(quiet.stderr, '', 'mode 600: no warning');

  await chmod(leaf.keyPath, 0o644);
  const open = await runCli(args, { cleanEnv: true, env: cleanEnv() });
  t.equal(open.code, 0, open.stderr);
  t.equal(JSON.parse(open.stdout).Version, 1, 'credentials still printed on stdout');
  t.equal(open.stderr, `warning: ${leaf.keyPath}: the private key file is open to every local user (mode 644); run chmod 600 ${leaf.keyPath} (or 640 with a group only the daemon's user is in)\n`);

  t.notMatch(open.stdout, /warning/, 'stdout stays credential_process JSON');
  // A group this process is not in (nogroup, as root), so group access means another user (own groups: test/identity/secret-modes.test.ts).
  if (process.getuid?.() !== 0) return;
  await chmod(leaf.keyPath, 0o640);
  await chown(leaf.keyPath, 0, 65534);
  const group = await runCli(args, { cleanEnv: true, env: cleanEnv() });
  t.equal(group.code, 0, group.stderr);
  t.match(group.stderr, /^warning: .*exposed-client.*: the private key file is open to its group \(gid 65534, mode 640\)/);
  t.notMatch(group.stdout, /warning/, 'stdout stays credential_process JSON');
});

t.test('service refusals through the CLI: untrusted CA, unknown profile, role not in profile', async (t) => {
  const otherDir = dir;
  const otherCa: CertFiles = await makeCA(otherDir, 'Some Other CA');
  const stranger = await makeLeaf(otherDir, otherCa, 'stranger', { keyType: 'p256' });
  const r = await runCli(['credential-process', '--certificate', stranger.certPath, '--private-key', stranger.keyPath, ...arnFlags(env)], { cleanEnv: true, env: cleanEnv() });
  t.equal(r.code, 1);
  t.equal(r.stdout, '');
  t.match(r.stderr, /refused the certificate.*its issuer is CN=Some Other CA/);

  const base = ['--certificate', env.leaf.certPath, '--private-key', env.leaf.keyPath, '--endpoint', env.url, '--trust-anchor-arn', env.arns.trustAnchorArn];
  const otherProfile = env.arns.profileArn.replace(/profile\/.*/, 'profile/00000000-0000-4000-8000-000000000000');
  const nf = await runCli(['credential-process', ...base, '--profile-arn', otherProfile, '--role-arn', env.arns.roleArn], { cleanEnv: true, env: cleanEnv() });
  t.equal(nf.code, 1);
  t.equal(nf.stdout, '');
  t.match(nf.stderr, new RegExp(`could not find a resource in us-east-1 \\(ResourceNotFoundException: .*\\): check that the profile ${otherProfile.replace(/[/.]/g, '\\$&')}`));

  const role = await runCli(['credential-process', ...base, '--profile-arn', env.arns.profileArn, '--role-arn', 'arn:aws:iam::123456789012:role/not-in-profile'], { cleanEnv: true, env: cleanEnv() });
  t.equal(role.code, 1);
  t.equal(role.stdout, '');
  t.match(role.stderr, /would not issue credentials for the role .*arn:aws:iam::123456789012:role\/not-in-profile is listed in the profile/);
});

t.test('bad input: clear message, exit 1, nothing on stdout, no request', async (t) => {
  const callsBefore = env.emulator.stats.calls.length;
  const id = ['--certificate', env.leaf.certPath, '--private-key', env.leaf.keyPath];
  const cases: [string, string[], RegExp][] = [
    ['no flags', [], /missing required --certificate, --trust-anchor-arn, --profile-arn, --role-arn/],
    ['missing role', [...id, '--trust-anchor-arn', env.arns.trustAnchorArn, '--profile-arn', env.arns.profileArn], /missing required --role-arn/],
    ['bad ARN', [...id, '--trust-anchor-arn', 'arn:aws:rolesanywhere:us-east-1:123:trust-anchor/x', '--profile-arn', env.arns.profileArn, '--role-arn', env.arns.roleArn], /--trust-anchor-arn: not a Roles Anywhere trust-anchor ARN/],
    ['region mismatch', [...id, '--trust-anchor-arn', env.arns.trustAnchorArn, '--profile-arn', env.arns.profileArn.replace('us-east-1', 'eu-west-1'), '--role-arn', env.arns.roleArn], /is in region eu-west-1 but the trust anchor is in us-east-1/],
    ['http to a non-loopback host', [...id, ...arnFlags(env).slice(0, 6), '--endpoint', 'http://rolesanywhere.example.com'], /--endpoint: plain http is allowed only for loopback hosts/],
    ['duration out of range', [...id, ...arnFlags(env), '--session-duration', '60'], /--session-duration: must be a whole number of seconds from 900 to 43200/],
    ['unknown flag', [...id, ...arnFlags(env), '--bogus'], /Unknown option '--bogus' — run `credential-process --help`/],
    ['missing key file', ['--certificate', env.leaf.certPath, '--private-key', join(dir, 'nope.key'), ...arnFlags(env)], /nope\.key/],
  ];
  for (const [name, args, re] of cases) {
    const r = await runCli(['credential-process', ...args], { cleanEnv: true, env: cleanEnv() });
    t.equal(r.code, 1, `${name}: exit 1`);
    t.equal(r.stdout, '', `${name}: nothing on stdout`);
    t.match(r.stderr, re, `${name}: message`);
    t.notMatch(r.stderr, /\n\s+at /, `${name}: no stack trace`);
  }
  t.equal(env.emulator.stats.calls.length, callsBefore, 'no request reached the emulator');
});

t.test('--help prints usage and exits 0; --no-verify-ssl warns loudly', async (t) => {
  const h = await runCli(['credential-process', '--help'], { cleanEnv: true, env: cleanEnv() });
  t.equal(h.code, 0);
  t.match(h.stdout, /Usage: rolesanywhere-credentiald credential-process/);
  t.match(h.stdout, /--trust-anchor-arn/);

  const r = await runCli(['credential-process', '--certificate', env.leaf.certPath, '--private-key', env.leaf.keyPath, '--no-verify-ssl', ...arnFlags(env)], {
    cleanEnv: true,
    env: cleanEnv(),
  });
  t.equal(r.code, 0);
  t.match(r.stderr, /WARNING: --no-verify-ssl .*NOT verified/);
  t.ok(JSON.parse(r.stdout).AccessKeyId);
});

t.test('interop: the AWS CLIs use credential_process and call STS with the issued credentials', async (t) => {
  const config = join(dir, 'aws-config');
  const creds = join(dir, 'aws-credentials-empty');
  await writeFile(creds, '');
  const q = (s: string) => `"${s}"`;
  const cmd = [process.execPath, CLI, 'credential-process', '--certificate', env.leaf.certPath, '--private-key', env.leaf.keyPath, ...arnFlags(env)].map(q).join(' ');
  await writeFile(config, `[profile ra]\nregion = us-east-1\ncredential_process = ${cmd}\n`);
  const awsEnv = cleanEnv({ AWS_CONFIG_FILE: config, AWS_SHARED_CREDENTIALS_FILE: creds, AWS_PROFILE: 'ra', AWS_EC2_METADATA_DISABLED: 'true', AWS_PAGER: '' });
  for (const [name, bin] of [
    ['aws CLI v1 (botocore 1.43, PATH)', 'aws'],
    ['AWS CLI v2.9 (/usr/bin/aws)', '/usr/bin/aws'],
  ] as const) {
    const cannot = needs(bin === 'aws' ? 'aws-cli' : 'aws-cli-debian');
    if (cannot) {
      t.skip(`${name}: ${cannot}`);
      continue;
    }
    const before = env.emulator.issued.length;
    const stsBefore = env.emulator.stats.calls.filter((c) => c.operation === 'GetCallerIdentity' && c.outcome === 'ok').length;
    let r;
    try {
      r = await runProcess(bin, ['sts', 'get-caller-identity', '--endpoint-url', env.url, '--output', 'json'], { cleanEnv: true, env: awsEnv, timeoutMs: 60_000 });
    } catch (err) {
      t.fail(`${name}: could not run (${(err as Error).message})`);
      continue;
    }
    t.equal(r.code, 0, `${name}: exit 0 (stderr: ${r.stderr.trim().slice(0, 500)})`);
    t.equal(env.emulator.issued.length, before + 1, `${name}: credential_process ran once`);
    const issued = env.emulator.issued[env.emulator.issued.length - 1]!;
    let id: Record<string, string> = {};
    try {
      id = JSON.parse(r.stdout);
    } catch {
      t.fail(`${name}: JSON output`);
    }
    t.equal(id.Arn, issued.assumedRoleArn, `${name}: STS saw the assumed role`);
    t.equal(id.Account, '123456789012');
    const stsAfter = env.emulator.stats.calls.filter((c) => c.operation === 'GetCallerIdentity' && c.outcome === 'ok');
    t.equal(stsAfter.length, stsBefore + 1, `${name}: the emulator verified one signed STS call`);
    t.equal(stsAfter[stsAfter.length - 1]!.accessKeyId, issued.accessKeyId, `${name}: signed with the issued access key`);
  }
});

t.test('interop: the JS SDK v3 fromProcess provider parses the output and STS accepts the credentials', async (t) => {
  const { fromProcess } = await import('@aws-sdk/credential-providers');
  const { STSClient, GetCallerIdentityCommand } = await import('@aws-sdk/client-sts');
  const config = join(dir, 'aws-config-js');
  const creds = join(dir, 'aws-credentials-empty-js');
  await writeFile(creds, '');
  const q = (s: string) => `"${s}"`;
  const cmd = [process.execPath, CLI, 'credential-process', '--certificate', env.leaf.certPath, '--private-key', env.leaf.keyPath, ...arnFlags(env)].map(q).join(' ');
  await writeFile(config, `[profile ra]\ncredential_process = ${cmd}\n`);
  const before = env.emulator.issued.length;
  const provider = fromProcess({ profile: 'ra', filepath: creds, configFilepath: config, ignoreCache: true });
  const got = await provider();
  t.equal(env.emulator.issued.length, before + 1);
  const issued = env.emulator.issued[env.emulator.issued.length - 1]!;
  t.ok(got.accessKeyId === issued.accessKeyId, 'access key id');
  t.ok(got.secretAccessKey === issued.secretAccessKey && got.sessionToken === issued.sessionToken, 'secret and token');
  t.equal(got.expiration?.getTime(), issued.expiration.getTime(), 'expiration parsed by the SDK');
  const sts = new STSClient({ region: 'us-east-1', endpoint: env.url, credentials: got });
  const id = await sts.send(new GetCallerIdentityCommand({}));
  t.equal(id.Arn, issued.assumedRoleArn);
  sts.destroy();
});

t.test('--assume-role-arn with --external-id prints the hop\'s credentials', async (t) => {
  const DEPLOY = 'arn:aws:iam::210987654321:role/Deploy';
  const chained = await startTestEmulator(t, { assumableRoles: [{ roleArn: DEPLOY, externalId: 'ext-7' }] });
  const id = ['--certificate', chained.leaf.certPath, '--private-key', chained.leaf.keyPath, ...arnFlags(chained)];
  const r = await runCli(['credential-process', ...id, '--assume-role-arn', DEPLOY, '--external-id', 'ext-7', '--sts-endpoint', chained.url], { cleanEnv: true, env: cleanEnv() });
  t.equal(r.code, 0, `exit 0 (stderr: ${r.stderr.trim()})`);
  const out = JSON.parse(r.stdout);
  const hop = chained.emulator.issued.at(-1)!;
  t.equal(hop.roleArn, DEPLOY, 'the last credentials the emulator issued are the hop\'s');
  t.ok(out.AccessKeyId === hop.accessKeyId && sha(out.SecretAccessKey) === sha(hop.secretAccessKey) && sha(out.SessionToken) === sha(hop.sessionToken), "printed: the hop's credentials");
  t.ok(new Date(out.Expiration).getTime() <= hop.expiration.getTime(), 'expiry no later than the hop');
  t.equal(hop.roleSessionName, (await chained.loadIdentity()).serialDecimal, "default session name: the certificate's decimal serial");
  const { STSClient, GetCallerIdentityCommand } = await import('@aws-sdk/client-sts');
  const sts = new STSClient({ region: 'us-east-1', endpoint: chained.url, credentials: { accessKeyId: out.AccessKeyId, secretAccessKey: out.SecretAccessKey, sessionToken: out.SessionToken } });
  t.equal((await sts.send(new GetCallerIdentityCommand({}))).Account, '210987654321', "GetCallerIdentity: the hop's account");
  sts.destroy();

  const viaEnv = await runCli(['credential-process', ...id, '--assume-role-arn', DEPLOY], {
    cleanEnv: true,
    env: cleanEnv({ ROLESANYWHERE_EXTERNAL_ID: 'ext-7', AWS_ENDPOINT_URL_STS: chained.url }),
  });
  t.equal(viaEnv.code, 0, `ROLESANYWHERE_EXTERNAL_ID and AWS_ENDPOINT_URL_STS are honoured (stderr: ${viaEnv.stderr.trim()})`);
  t.equal(chained.emulator.issued.at(-1)!.roleArn, DEPLOY);

  const wrong = await runCli(['credential-process', ...id, '--assume-role-arn', DEPLOY, '--external-id', 'ext-8', '--sts-endpoint', chained.url], { cleanEnv: true, env: cleanEnv() });
  t.equal(wrong.code, 1, 'a wrong ExternalId: exit 1');
  t.equal(wrong.stdout, '');
  t.match(wrong.stderr, /assumeRole\[0\] arn:aws:iam::210987654321:role\/Deploy: STS refused AssumeRole \(AccessDenied: .*\): check that the trust policy/);

  const calls = chained.emulator.stats.calls.length;
  for (const [name, args, re] of [
    ['--external-id alone', ['--external-id', 'ext-7'], /--external-id: is for the role --assume-role-arn names; give --assume-role-arn ARN too/],
    ['a bad role ARN', ['--assume-role-arn', 'arn:aws:iam::2109:role/Deploy'], /--assume-role-arn: not an IAM role ARN .*12 digits/],
    ['a bad ExternalId', ['--assume-role-arn', DEPLOY, '--external-id', 'x'], /--external-id: must be 2-1224 characters/],
  ] as const) {
    const bad = await runCli(['credential-process', ...id, ...args], { cleanEnv: true, env: cleanEnv() });
    t.equal(bad.code, 1, `${name}: exit 1`);
    t.match(bad.stderr, re, `${name}: message`);
  }
  t.equal(chained.emulator.stats.calls.length, calls, 'no request for bad input');
});
