// Real AWS SDK for JavaScript v3 credential providers against the daemon, then
// an STS call the emulator verifies (it refuses unknown or expired credentials).
import t from 'tap';
import { GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import { fromContainerMetadata, fromHttp, fromInstanceMetadata, fromNodeProviderChain } from '@aws-sdk/credential-providers';
import type { AwsCredentialIdentityProvider } from '@aws-sdk/types';
import { cleanAwsEnv, withEnv, httpRequest, startEmulatedDaemon } from '../helpers/daemon.js';


t.test('JS SDK v3 providers get credentials that STS accepts', async (t) => {
  const d = await startEmulatedDaemon(t);
  await d.daemon.session('main')!.waitFor((s) => s.status().ready, 15_000);
  const base = `http://127.0.0.1:${d.port}`;
  const uri = `${base}/v1/credentials`;
  const sts = async (provider: AwsCredentialIdentityProvider) => {
    const client = new STSClient({ region: 'us-east-1', endpoint: d.emu.url, credentials: provider, maxAttempts: 1 });
    try {
      return await client.send(new GetCallerIdentityCommand({}));
    } finally {
      client.destroy();
    }
  };
  const check = (t: Tap.Test, out: { Account?: string; Arn?: string }) => {
    t.equal(out.Account, d.emu.accountId);
    t.match(out.Arn, /^arn:aws:sts::123456789012:assumed-role\/rolesanywhere-test-role\//);
  };
  const issuedKeys = () => new Set(d.emu.emulator.issued.map((c) => c.accessKeyId));

  t.test('fromContainerMetadata (env token)', async (t) => {
    const env = await cleanAwsEnv({ AWS_CONTAINER_CREDENTIALS_FULL_URI: uri, AWS_CONTAINER_AUTHORIZATION_TOKEN: d.token });
    const creds = await withEnv(env, () => fromContainerMetadata({ timeout: 2000 })());
    t.ok(issuedKeys().has(creds.accessKeyId), 'an access key the emulator issued');
    t.ok(creds.expiration && creds.expiration.getTime() > Date.now() + 10 * 60_000, 'long remaining lifetime');
    check(t, await sts(async () => creds));
  });

  t.test('fromHttp (token file)', async (t) => {
    const provider = fromHttp({ awsContainerCredentialsFullUri: uri, awsContainerAuthorizationTokenFile: d.config.tokenFile });
    const creds = await provider();
    t.ok(issuedKeys().has(creds.accessKeyId));
    const raw = JSON.parse((await httpRequest(d.port, 'GET', '/v1/credentials', { authorization: d.token })).body);
    t.equal(raw.AccountId, d.emu.accountId, 'AccountId served');
    check(t, await sts(provider));
  });

  t.test('fromInstanceMetadata (IMDSv2)', async (t) => {
    const env = await cleanAwsEnv({ AWS_EC2_METADATA_SERVICE_ENDPOINT: `${base}/` });
    const creds = await withEnv(env, () => fromInstanceMetadata({ timeout: 2000, maxRetries: 0 })());
    t.ok(issuedKeys().has(creds.accessKeyId));
    check(t, await sts(async () => creds));
  });

  t.test('fromNodeProviderChain with only the container env vars', async (t) => {
    const env = await cleanAwsEnv({ AWS_CONTAINER_CREDENTIALS_FULL_URI: uri, AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE: d.config.tokenFile });
    const creds = await withEnv(env, () => fromNodeProviderChain()());
    t.ok(issuedKeys().has(creds.accessKeyId));
    check(t, await sts(async () => creds));
  });

  t.test('fromNodeProviderChain with only AWS_EC2_METADATA_SERVICE_ENDPOINT', async (t) => {
    const env = await cleanAwsEnv({ AWS_EC2_METADATA_SERVICE_ENDPOINT: `${base}/` });
    const creds = await withEnv(env, () => fromNodeProviderChain()());
    t.ok(issuedKeys().has(creds.accessKeyId));
    check(t, await sts(async () => creds));
  });

  t.test('many clients cause no extra CreateSession calls', async (t) => {
    const before = d.emu.emulator.stats.createSession.total;
    const results = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        i % 2 === 0
          ? httpRequest(d.port, 'GET', '/v1/credentials', { authorization: d.token }).then((r) => r.status)
          : fromHttp({ awsContainerCredentialsFullUri: uri, awsContainerAuthorizationTokenFile: d.config.tokenFile })().then(() => 200),
      ),
    );
    t.ok(results.every((s) => s === 200), '50 requests answered');
    t.equal(d.emu.emulator.stats.createSession.total, before, 'no CreateSession calls caused by clients');
    t.equal(d.emu.emulator.stats.createSession.total, 1, 'one CreateSession overall');
  });
});
