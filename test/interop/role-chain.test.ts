// Role chaining end to end: the daemon gets Roles Anywhere credentials from the
// emulator, assumes a role in a second account and then one in a third
// (STS AssumeRole on the emulator, ExternalId checked), and serves the last
// role's credentials; the JS SDK and the AWS CLIs call GetCallerIdentity with
// them. A profile whose hop is refused is unready with STS's reason while the
// others serve; with 20-second credentials the whole chain refreshes.
import t from 'tap';
import { GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import { fromHttp } from '@aws-sdk/credential-providers';
import { readFile } from 'node:fs/promises';
import { runProcess } from '../helpers/cli.js';
import { cleanAwsEnv, daemonConfig, httpRequest, profileFor, startEmulatedDaemon, startLoggedDaemon, waitUntil } from '../helpers/daemon.js';
import { startTestEmulator } from '../helpers/emulator.js';
import { tempDir } from '../helpers/pki.js';
import type { ProfileConfig } from '../../src/config/types.js';

const DEPLOY = 'arn:aws:iam::210987654321:role/Deploy';
const AUDIT = 'arn:aws:iam::345678901234:role/Audit';

async function callerIdentity(endpoint: string, credentials: { accessKeyId: string; secretAccessKey: string; sessionToken?: string }) {
  const client = new STSClient({ region: 'us-east-1', endpoint, credentials, maxAttempts: 1 });
  try {
    return await client.send(new GetCallerIdentityCommand({}));
  } finally {
    client.destroy();
  }
}

t.test('a two-hop chain into two other accounts, served to the JS SDK and the AWS CLIs', async (t) => {
  const emu = await startTestEmulator(t, { assumableRoles: [{ roleArn: DEPLOY, externalId: 'ext-7' }, { roleArn: AUDIT }] });
  const dir = await tempDir('ra-chain-');
  const base = (name: string, extra: Partial<ProfileConfig>) =>
    profileFor(name, { certPath: emu.leaf.certPath, keyPath: emu.leaf.keyPath }, { ...emu.arns, region: emu.region, endpoint: emu.url, stsEndpoint: emu.url, ...extra });
  const config = daemonConfig(dir, [
    base('chain', { assumeRole: [{ roleArn: DEPLOY, externalId: 'ext-7', roleSessionName: 'ci-deploy', durationSeconds: 3600 }, { roleArn: AUDIT }] }),
    base('plain', {}),
    base('wrong', { assumeRole: [{ roleArn: DEPLOY, externalId: 'not-ext-7' }, { roleArn: AUDIT }] }),
  ]);
  config.imds = { enabled: true, allowV1: false, profile: 'chain' };
  config.defaultProfile = 'chain';
  const { daemon, logs } = await startLoggedDaemon(t, config);
  const port = daemon.addresses[0]!.port;
  const token = await readFile(config.tokenFile, 'utf8');
  await daemon.session('chain')!.waitFor((s) => s.status().ready, 15_000);
  await daemon.session('plain')!.waitFor((s) => s.status().ready, 15_000);
  await daemon.session('wrong')!.waitFor((s) => s.status().lastRefreshOutcome === 'failure', 15_000);
  const serial = (await emu.loadIdentity()).serialDecimal;

  t.test('the emulator saw each hop signed by the one before, with its session name', async (t) => {
    const deploy = emu.emulator.issued.filter((c) => c.roleArn === DEPLOY);
    const audit = emu.emulator.issued.filter((c) => c.roleArn === AUDIT);
    t.ok(deploy.length >= 1 && audit.length >= 1, 'both roles issued');
    t.equal(deploy[0]!.roleSessionName, 'ci-deploy', 'configured roleSessionName');
    t.equal(audit[0]!.roleSessionName, serial, "default roleSessionName: the certificate's serial in decimal");
    t.equal(deploy[0]!.accountId, '210987654321');
    t.ok(emu.emulator.stats.calls.some((c) => c.operation === 'AssumeRole' && c.reason === 'wrong_external_id'), 'the wrong ExternalId was refused');
  });

  t.test('the container endpoint serves the last role, in its account', async (t) => {
    const res = await httpRequest(port, 'GET', '/v1/credentials', { authorization: token });
    t.equal(res.status, 200);
    const body = JSON.parse(res.body);
    t.equal(body.RoleArn, AUDIT);
    t.equal(body.AccountId, '345678901234');
    const last = emu.emulator.issued.filter((c) => c.roleArn === AUDIT).at(-1)!;
    t.ok(body.AccessKeyId === last.accessKeyId, "the last hop's access key");
    const deploy = emu.emulator.issued.filter((c) => c.roleArn === DEPLOY && c.roleSessionName === 'ci-deploy').at(-1)!;
    const expiry = new Date(body.Expiration).getTime();
    t.ok(expiry <= last.expiration.getTime() && expiry <= deploy.expiration.getTime(), 'expiry no later than any hop');
  });

  t.test('JS SDK fromHttp → GetCallerIdentity reports the last hop', async (t) => {
    const provider = fromHttp({ awsContainerCredentialsFullUri: `http://127.0.0.1:${port}/v1/credentials`, awsContainerAuthorizationTokenFile: config.tokenFile });
    const out = await callerIdentity(emu.url, await provider());
    t.equal(out.Account, '345678901234');
    t.equal(out.Arn, `arn:aws:sts::345678901234:assumed-role/Audit/${serial}`);
  });

  const cli = async (bin: string, extra: NodeJS.ProcessEnv) => {
    const env = await cleanAwsEnv(extra);
    return runProcess(bin, ['sts', 'get-caller-identity', '--endpoint-url', emu.url, '--output', 'json'], { env, cleanEnv: true, timeoutMs: 45_000 });
  };
  for (const [bin, how, extra] of [
    ['/usr/bin/aws', 'container endpoint', { AWS_CONTAINER_CREDENTIALS_FULL_URI: `http://127.0.0.1:${port}/v1/credentials`, AWS_CONTAINER_AUTHORIZATION_TOKEN: token }],
    ['/usr/bin/aws', 'IMDSv2', { AWS_EC2_METADATA_SERVICE_ENDPOINT: `http://127.0.0.1:${port}/` }],
    ['aws', 'container endpoint', { AWS_CONTAINER_CREDENTIALS_FULL_URI: `http://127.0.0.1:${port}/v1/credentials`, AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE: config.tokenFile }],
  ] as const) {
    t.test(`${bin} over the ${how} → GetCallerIdentity reports the last hop`, async (t) => {
      const r = await cli(bin, extra);
      t.equal(r.code, 0, r.code === 0 ? 'exit 0' : `exit ${r.code}: ${r.stderr.slice(0, 400)}`);
      if (r.code !== 0) return;
      const out = JSON.parse(r.stdout);
      t.equal(out.Account, '345678901234');
      t.equal(out.Arn, `arn:aws:sts::345678901234:assumed-role/Audit/${serial}`);
    });
  }

  t.test('the wrong ExternalId: that profile is unready with the reason and the hop; the others serve', async (t) => {
    const ready = await httpRequest(port, 'GET', '/readyz');
    t.equal(ready.status, 503);
    const body = JSON.parse(ready.body);
    t.equal(body.profiles.chain.ready, true);
    t.equal(body.profiles.plain.ready, true);
    t.equal(body.profiles.wrong.ready, false);
    t.match(body.profiles.wrong.reason, /assumeRole\[0\] arn:aws:iam::210987654321:role\/Deploy: STS refused AssumeRole \(AccessDenied: User: .* is not authorized to perform: sts:AssumeRole/);
    const refused = await httpRequest(port, 'GET', '/v1/credentials/wrong', { authorization: token });
    t.equal(refused.status, 503);
    t.match(refused.body, /assumeRole\[0\]/);
    const plain = await httpRequest(port, 'GET', '/v1/credentials/plain', { authorization: token });
    t.equal(plain.status, 200);
    t.equal(JSON.parse(plain.body).RoleArn, emu.arns.roleArn, 'the profile without a chain serves the Roles Anywhere role');
    const line = logs().split('\n').find((l) => l.includes('"profile":"wrong"') && l.includes('"event":"refresh"') && l.includes('"outcome":"failure"'));
    t.ok(line, 'the failure is logged');
    if (line) {
      const rec = JSON.parse(line);
      t.equal(rec.hop, 0);
      t.equal(rec.roleArn, DEPLOY);
      t.equal(rec.reason, 'access_denied');
    }
  });

  t.test('an STS outage: the refresh fails at the hop and the cached chain keeps being served', async (t) => {
    const session = daemon.session('chain')!;
    const served = JSON.parse((await httpRequest(port, 'GET', '/v1/credentials', { authorization: token })).body).AccessKeyId;
    emu.emulator.setFaults([{ kind: 'status', status: 503, operation: 'AssumeRole' }]);
    t.teardown(() => emu.emulator.clearFaults());
    await session.refresh();
    t.equal(session.status().lastRefreshOutcome, 'failure');
    t.match(session.status().lastFailure?.message, /^assumeRole\[\d\] .*service fault/);
    const during = await httpRequest(port, 'GET', '/v1/credentials', { authorization: token });
    t.equal(during.status, 200, 'still served');
    t.equal(JSON.parse(during.body).AccessKeyId, served, 'the cached chain credentials');
    t.equal((await httpRequest(port, 'GET', '/readyz')).status, 503, 'readyz still 503 only because of "wrong"');
    t.equal(JSON.parse((await httpRequest(port, 'GET', '/readyz')).body).profiles.chain.ready, true);
  });

  t.test('metrics per hop', async (t) => {
    const m = (await httpRequest(port, 'GET', '/metrics')).body;
    t.match(m, /rolesanywhere_assume_role_successes_total\{profile="chain",hop="0",role_arn="arn:aws:iam::210987654321:role\/Deploy"\} [1-9]/);
    t.match(m, /rolesanywhere_assume_role_successes_total\{profile="chain",hop="1",role_arn="arn:aws:iam::345678901234:role\/Audit"\} [1-9]/);
    t.match(m, /rolesanywhere_assume_role_failures_total\{profile="wrong",hop="0",role_arn="arn:aws:iam::210987654321:role\/Deploy",reason="access_denied"\} [1-9]/);
    t.match(m, /rolesanywhere_assume_role_expiry_timestamp_seconds\{profile="chain",hop="1",[^}]*\} \d+/);
    t.notMatch(m, /profile="plain",hop=/, 'no hop series for a profile without a chain');
  });
});

t.test('with 20-second credentials the whole chain refreshes and keeps serving', async (t) => {
  const d = await startEmulatedDaemon(t, {
    emulator: { lifetime: 20, assumableRoles: [{ roleArn: DEPLOY, externalId: 'ext-7' }, { roleArn: AUDIT }] },
    profile: { assumeRole: [{ roleArn: DEPLOY, externalId: 'ext-7' }, { roleArn: AUDIT }] },
    prepare: async (emu) => ({ stsEndpoint: emu.url }),
  });
  const session = d.daemon.session('main')!;
  await session.waitFor((s) => s.status().ready, 15_000);
  const first = JSON.parse((await httpRequest(d.port, 'GET', '/v1/credentials', { authorization: d.token })).body);
  t.ok(new Date(first.Expiration).getTime() - Date.now() <= 20_000, 'served credentials live at most 20 s');
  await waitUntil('a second refresh of the whole chain', () => session.status().refreshSuccesses >= 3, 60_000, 200);
  const audit = d.emu.emulator.issued.filter((c) => c.roleArn === AUDIT);
  const created = d.emu.emulator.stats.createSession.ok;
  t.ok(audit.length >= 3, `each refresh assumed the last role again (${audit.length})`);
  t.ok(created >= 3, `and began with a new CreateSession (${created})`);
  const now = JSON.parse((await httpRequest(d.port, 'GET', '/v1/credentials', { authorization: d.token })).body);
  t.not(now.AccessKeyId, first.AccessKeyId, 'new credentials served');
  const out = await callerIdentity(d.emu.url, { accessKeyId: now.AccessKeyId, secretAccessKey: now.SecretAccessKey, sessionToken: now.Token });
  t.equal(out.Account, '345678901234', 'STS accepts the refreshed last hop');
});
