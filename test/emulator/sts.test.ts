// STS GetCallerIdentity against the emulator with real clients: the JS SDK v3,
// botocore (aws CLI v1 on PATH) and Debian's AWS CLI v2.
import t from 'tap';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { STSClient, GetCallerIdentityCommand } from '@aws-sdk/client-sts';
import { issueCredentials, startTestEmulator } from '../helpers/emulator.js';
import { missing as needs } from '../helpers/needs.js';

const exec = promisify(execFile);

type Creds = { accessKeyId: string; secretAccessKey: string; sessionToken: string };

async function callerIdentity(url: string, creds: Creds) {
  const { accessKeyId, secretAccessKey, sessionToken } = creds;
  const client = new STSClient({ region: 'us-east-1', endpoint: url, credentials: { accessKeyId, secretAccessKey, sessionToken }, maxAttempts: 1 });
  try {
    return await client.send(new GetCallerIdentityCommand({}));
  } finally {
    client.destroy();
  }
}

async function sdkError(url: string, creds: Creds): Promise<{ name: string; status?: number }> {
  try {
    await callerIdentity(url, creds);
    return { name: 'no error' };
  } catch (err) {
    const e = err as { name: string; $metadata?: { httpStatusCode?: number } };
    return { name: e.name, status: e.$metadata?.httpStatusCode };
  }
}

function cliEnv(creds: Creds): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    AWS_ACCESS_KEY_ID: creds.accessKeyId,
    AWS_SECRET_ACCESS_KEY: creds.secretAccessKey,
    AWS_SESSION_TOKEN: creds.sessionToken,
    AWS_CONFIG_FILE: '/dev/null',
    AWS_SHARED_CREDENTIALS_FILE: '/dev/null',
    AWS_PAGER: '',
    AWS_MAX_ATTEMPTS: '1',
    AWS_EC2_METADATA_DISABLED: 'true',
  };
}

async function awsCli(bin: string, url: string, creds: Creds): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await exec(bin, ['sts', 'get-caller-identity', '--endpoint-url', url, '--region', 'us-east-1', '--output', 'json'], { env: cliEnv(creds), timeout: 60_000 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : 1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

t.test('JS SDK v3 GetCallerIdentity with issued credentials', async (t) => {
  const env = await startTestEmulator(t);
  const creds = await issueCredentials(env, { roleSessionName: 'sdk-session' });
  const out = await callerIdentity(env.url, creds);
  t.equal(out.Arn, 'arn:aws:sts::123456789012:assumed-role/rolesanywhere-test-role/sdk-session');
  t.equal(out.Account, '123456789012');
  t.match(out.UserId, /^AROA[A-Z2-7]{17}:sdk-session$/);
  t.equal(env.emulator.stats.sts.ok, 1);
  t.equal(env.emulator.stats.calls.at(-1)!.accessKeyId, creds.accessKeyId, 'log names the access key id used');

  const wrongSecret = await sdkError(env.url, { ...creds, secretAccessKey: creds.secretAccessKey.slice(0, -1) + (creds.secretAccessKey.endsWith('A') ? 'B' : 'A') });
  t.same(wrongSecret, { name: 'SignatureDoesNotMatch', status: 403 }, 'wrong secret → SignatureDoesNotMatch');
  const wrongToken = await sdkError(env.url, { ...creds, sessionToken: creds.sessionToken.slice(0, -4) + 'AAAA' });
  t.same(wrongToken, { name: 'InvalidClientTokenId', status: 403 }, 'wrong session token → InvalidClientTokenId');
  const unknown = await sdkError(env.url, { ...creds, accessKeyId: 'ASIAAAAAAAAAAAAAAAAA' });
  t.same(unknown, { name: 'InvalidClientTokenId', status: 403 }, 'unknown key → InvalidClientTokenId');
  const { sessionToken: _s, ...noToken } = creds;
  t.same(await sdkError(env.url, noToken as Creds), { name: 'InvalidClientTokenId', status: 403 }, 'missing session token → InvalidClientTokenId');
  t.same(env.emulator.stats.sts.errors, { SignatureDoesNotMatch: 1, InvalidClientTokenId: 3 });
});

t.test('expired credentials are never accepted', async (t) => {
  const env = await startTestEmulator(t, { lifetime: 2 });
  const creds = await issueCredentials(env, { durationSeconds: 900 });
  const expiresAt = Date.parse(creds.expiration);
  t.ok(expiresAt - Date.now() <= 2_000, 'lifetime capped at 2 s');
  // Wait (by condition, generously) until the credential is past its expiration.
  while (Date.now() <= expiresAt + 50) await new Promise((r) => setTimeout(r, 100));
  t.same(await sdkError(env.url, creds), { name: 'ExpiredToken', status: 400 }, 'JS SDK: ExpiredToken');
  const noCli = needs('aws-cli');
  if (noCli) t.skip(`aws CLI v1 with the expired credential: ${noCli}`);
  else {
    const cli = await awsCli('aws', env.url, creds);
    t.not(cli.code, 0, 'aws CLI v1 fails');
    t.match(cli.stderr, /ExpiredToken/, 'aws CLI v1 reports ExpiredToken');
  }
  t.equal(env.emulator.stats.sts.ok, 0);
  t.equal(env.emulator.stats.sts.errors.ExpiredToken, noCli ? 1 : 2);
  // The expiration fault issues an already-expired credential directly.
  env.emulator.setFaults([{ kind: 'expiration', seconds: -10, times: 1 }]);
  const stale = await issueCredentials(env);
  t.ok(Date.parse(stale.expiration) < Date.now(), 'expiration fault: already expired');
  t.same(await sdkError(env.url, stale), { name: 'ExpiredToken', status: 400 });
});

for (const bin of ['aws', '/usr/bin/aws']) {
  t.test(`${bin} sts get-caller-identity --endpoint-url`, { skip: needs(bin === 'aws' ? 'aws-cli' : 'aws-cli-debian') ?? false }, async (t) => {
    const env = await startTestEmulator(t);
    const creds = await issueCredentials(env);
    const ok = await awsCli(bin, env.url, creds);
    t.equal(ok.code, 0, `exit 0 (${ok.stderr.slice(0, 300)})`);
    const out = JSON.parse(ok.stdout || '{}');
    t.equal(out.Arn, `arn:aws:sts::123456789012:assumed-role/rolesanywhere-test-role/${env.leaf.serialDecimal}`);
    t.equal(out.Account, '123456789012');
    t.match(out.UserId, /^AROA[A-Z2-7]{17}:\d+$/);
    const bad = await awsCli(bin, env.url, { ...creds, secretAccessKey: 'x'.repeat(40) });
    t.not(bad.code, 0);
    t.match(bad.stderr, /SignatureDoesNotMatch/);
    t.notOk(bad.stderr.includes(creds.sessionToken), 'no token in the error output');
  });
}

t.test('JSON protocol (X-Amz-Target) and unsupported actions', async (t) => {
  const aws4 = (await import('aws4')).default;
  const env = await startTestEmulator(t);
  const creds = await issueCredentials(env);
  const u = new URL(env.url);
  const send = async (target: string, c: Creds = creds) => {
    const req = aws4.sign(
      { host: u.host, path: '/', method: 'POST', service: 'sts', region: 'us-east-1', body: '{}', headers: { 'Content-Type': 'application/x-amz-json-1.0', 'X-Amz-Target': target } },
      c,
    );
    const { Host: _h, ...headers } = req.headers as Record<string, string>;
    const res = await fetch(env.url + '/', { method: 'POST', headers, body: '{}' });
    return { status: res.status, type: res.headers.get('x-amzn-errortype'), body: (await res.json()) as Record<string, string> };
  };
  const ok = await send('AWSSecurityTokenServiceV20110615.GetCallerIdentity');
  t.equal(ok.status, 200);
  t.equal(ok.body.Account, '123456789012');
  t.match(ok.body.Arn, /assumed-role\/rolesanywhere-test-role\//);
  const bad = await send('AWSSecurityTokenServiceV20110615.GetCallerIdentity', { ...creds, secretAccessKey: 'y'.repeat(40) });
  t.equal(bad.status, 403);
  t.equal(bad.type, 'SignatureDoesNotMatch');
  const other = await send('AWSSecurityTokenServiceV20110615.AssumeRole');
  t.equal(other.status, 400);
  t.equal(other.type, 'InvalidAction');
});

t.test('AssumeRole (JS SDK): ExternalId per role, credentials in the role\'s account, GetCallerIdentity reports the assumed role', async (t) => {
  const { AssumeRoleCommand } = await import('@aws-sdk/client-sts');
  const DEPLOY = 'arn:aws:iam::210987654321:role/Deploy';
  const AUDIT = 'arn:aws:iam::345678901234:role/team/Audit';
  const env = await startTestEmulator(t, { assumableRoles: [{ roleArn: DEPLOY, externalId: 'ext-7' }, { roleArn: AUDIT }] });
  const { expiration: _expiration, ...creds } = await issueCredentials(env);
  const assume = async (c: Creds, input: { RoleArn: string; RoleSessionName: string; ExternalId?: string; DurationSeconds?: number }) => {
    const client = new STSClient({ region: 'us-east-1', endpoint: env.url, credentials: c, maxAttempts: 1 });
    try {
      return await client.send(new AssumeRoleCommand(input));
    } catch (err) {
      const e = err as { name: string; message: string; $metadata?: { httpStatusCode?: number } };
      return { error: e.name, status: e.$metadata?.httpStatusCode, message: e.message };
    } finally {
      client.destroy();
    }
  };
  const got = await assume(creds, { RoleArn: DEPLOY, RoleSessionName: 'ci-deploy', ExternalId: 'ext-7', DurationSeconds: 900 });
  if (!('Credentials' in got) || !got.Credentials) {
    t.fail(`AssumeRole failed: ${JSON.stringify(got)}`);
    return;
  }
  t.equal(got.AssumedRoleUser?.Arn, 'arn:aws:sts::210987654321:assumed-role/Deploy/ci-deploy');
  const c1 = { accessKeyId: got.Credentials.AccessKeyId!, secretAccessKey: got.Credentials.SecretAccessKey!, sessionToken: got.Credentials.SessionToken! };
  t.ok(got.Credentials.Expiration!.getTime() - Date.now() <= 901_000, 'DurationSeconds honoured');
  const who = await callerIdentity(env.url, c1);
  t.equal(who.Account, '210987654321');
  t.equal(who.Arn, 'arn:aws:sts::210987654321:assumed-role/Deploy/ci-deploy');

  const second = await assume(c1, { RoleArn: AUDIT, RoleSessionName: 'audit' });
  t.ok('Credentials' in second && second.Credentials, 'a second hop signed by the first hop\'s credentials');
  if ('Credentials' in second && second.Credentials) {
    const c2 = { accessKeyId: second.Credentials.AccessKeyId!, secretAccessKey: second.Credentials.SecretAccessKey!, sessionToken: second.Credentials.SessionToken! };
    t.equal((await callerIdentity(env.url, c2)).Arn, 'arn:aws:sts::345678901234:assumed-role/Audit/audit', 'role path dropped from the assumed-role ARN, as STS does');
  }

  t.match(await assume(creds, { RoleArn: DEPLOY, RoleSessionName: 'x1', ExternalId: 'ext-8' }), { error: 'AccessDenied', status: 403, message: /is not authorized to perform: sts:AssumeRole on resource: arn:aws:iam::210987654321:role\/Deploy/ });
  t.match(await assume(creds, { RoleArn: DEPLOY, RoleSessionName: 'x1' }), { error: 'AccessDenied', status: 403 }, 'a missing ExternalId is refused');
  t.match(await assume(creds, { RoleArn: 'arn:aws:iam::111111111111:role/Other', RoleSessionName: 'x1' }), { error: 'AccessDenied' }, 'a role it was not told about');
  t.match(await assume(creds, { RoleArn: AUDIT, RoleSessionName: 'bad name' }), { error: 'ValidationError', status: 400 });
  t.match(await assume(creds, { RoleArn: AUDIT, RoleSessionName: 'ok', DurationSeconds: 60 }), { error: 'ValidationError' });
  t.match(await assume({ ...creds, secretAccessKey: 'z'.repeat(40) }, { RoleArn: AUDIT, RoleSessionName: 'ok' }), { error: 'SignatureDoesNotMatch', status: 403 }, 'signed with the wrong secret');
  const reasons = env.emulator.stats.calls.filter((c) => c.operation === 'AssumeRole').map((c) => c.reason ?? c.outcome);
  t.same(reasons, ['ok', 'ok', 'wrong_external_id', 'missing_external_id', 'role_not_assumable', 'invalid_parameters', 'invalid_parameters', 'bad_signature']);
});
