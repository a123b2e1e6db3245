// Pod identity end to end: a "cluster" (the test's own RSA and EC keys) mints
// projected service-account tokens; the daemon, configured through the real
// config loader, verifies them and serves each service account the role of its
// binding over a real socket; real SDKs and the aws CLI use the credentials
// for an STS call the emulator verifies.
import t from 'tap';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import { fromContainerMetadata, fromHttp, fromNodeProviderChain } from '@aws-sdk/credential-providers';
import type { AwsCredentialIdentity } from '@aws-sdk/types';
import { loadDaemonConfig } from '../../src/config/load.js';
import { Daemon } from '../../src/server/daemon.js';
import { runProcess } from '../helpers/cli.js';
import { cleanAwsEnv, withEnv, httpRequest, startLoggedDaemon, waitUntil } from '../helpers/daemon.js';
import { DEFAULT_ARNS, startTestEmulator, type TestEmulator } from '../helpers/emulator.js';
import { algNone, AUDIENCE, ISSUER, makeCluster, makeKey, serveJwks, tampered, type Cluster } from '../helpers/kube.js';
import { tempDir } from '../helpers/pki.js';

const ACCOUNT = '123456789012';
const ROLE = {
  checkout: `arn:aws:iam::${ACCOUNT}:role/checkout`,
  batch: `arn:aws:iam::${ACCOUNT}:role/batch-readonly`,
  crowd: `arn:aws:iam::${ACCOUNT}:role/crowd`,
};


interface Agent {
  emu: TestEmulator;
  daemon: Daemon;
  cluster: Cluster;
  dir: string;
  /** Pod-identity listener port. */
  port: number;
  /** Ordinary listener port. */
  adminPort: number;
  logs(): string;
  get(token: string | undefined): Promise<{ status: number; body: string; json: any }>;
  createSessions(role: string): number;
}

/** Emulator + cluster + a daemon started from YAML through the real config loader. */
async function startAgent(
  t: Tap.Test,
  podIdentity: (dir: string, cluster: Cluster) => Promise<Record<string, unknown>>,
  /** Extra settings per profile (e.g. a role chain), given the emulator. */
  extra: (emu: TestEmulator) => Record<string, Record<string, unknown>> = () => ({}),
): Promise<Agent> {
  const emu = await startTestEmulator(t, { strictArns: false, trustAnchorArns: [DEFAULT_ARNS.trustAnchorArn], profileArns: [DEFAULT_ARNS.profileArn], roleArns: Object.values(ROLE) });
  const dir = await tempDir('ra-pod-');
  const cluster = await makeCluster(dir);
  const profile = (roleArn: string) => ({
    certificate: emu.identitySource.certificate,
    privateKey: emu.identitySource.privateKey,
    trustAnchorArn: DEFAULT_ARNS.trustAnchorArn,
    profileArn: DEFAULT_ARNS.profileArn,
    roleArn,
    endpoint: emu.url,
  });
  const yaml = {
    listen: ['127.0.0.1:0'],
    tokenFile: join(dir, 'endpoint-token'),
    imds: { enabled: false },
    refresh: { backoffInitialMs: 200, backoffMaxMs: 1000 },
    profiles: {
      checkout: { ...profile(ROLE.checkout), ...extra(emu).checkout },
      batch: { ...profile(ROLE.batch), ...extra(emu).batch },
      crowd: { ...profile(ROLE.crowd), ...extra(emu).crowd },
    },
    podIdentity: await podIdentity(dir, cluster),
  };
  const file = join(dir, 'agent.yaml');
  await writeFile(file, JSON.stringify(yaml, null, 2)); // JSON is YAML
  const config = await loadDaemonConfig({ argv: ['--config', file], env: { HOME: dir } });
  const { daemon, logs } = await startLoggedDaemon(t, config);
  const port = daemon.podAddresses[0]!.port;
  return {
    emu,
    daemon,
    cluster,
    dir,
    port,
    adminPort: daemon.addresses[0]!.port,
    logs,
    async get(token) {
      const r = await httpRequest(port, 'GET', '/v1/credentials', token === undefined ? {} : { authorization: token });
      let json: any;
      try {
        json = JSON.parse(r.body);
      } catch {
        json = undefined;
      }
      return { status: r.status, body: r.body, json };
    },
    createSessions: (role) => emu.emulator.issued.filter((c) => c.roleArn === role).length,
  };
}

const fileJwks = (over: Record<string, unknown> = {}) => async (_dir: string, cluster: Cluster) => ({
  listen: ['127.0.0.1:0'],
  issuer: ISSUER,
  audiences: [AUDIENCE],
  jwks: { file: cluster.jwksFile, refetchIntervalSeconds: 1 },
  bindings: [
    { namespace: 'shop', serviceAccount: 'checkout', profile: 'checkout' },
    { namespace: 'batch', serviceAccount: '*', profile: 'batch' },
    { namespace: 'crowd', serviceAccount: 'web', profile: 'crowd' },
  ],
  idleTimeoutSeconds: 0,
  ...over,
});

async function sts(emu: TestEmulator, creds: AwsCredentialIdentity): Promise<{ Account?: string; Arn?: string }> {
  const client = new STSClient({ region: 'us-east-1', endpoint: emu.url, credentials: async () => creds, maxAttempts: 1 });
  try {
    return await client.send(new GetCallerIdentityCommand({}));
  } finally {
    client.destroy();
  }
}

t.test('pod identity with a JWKS file', async (t) => {
  const a = await startAgent(t, fileJwks());
  const uri = `http://127.0.0.1:${a.port}/v1/credentials`;
  const tokenFile = async (name: string, token: string) => {
    const f = join(a.dir, name);
    await writeFile(f, token);
    return f;
  };

  t.test('no CreateSession before a pod asks (sessions start on demand)', async (t) => {
    t.equal(a.emu.emulator.stats.createSession.total, 0);
    const ready = await httpRequest(a.adminPort, 'GET', '/readyz');
    t.equal(ready.status, 200, 'idle binding sessions do not make the daemon unready');
  });

  t.test('JS SDK fromHttp with the token file gets the bound role; STS accepts it', async (t) => {
    const f = await tokenFile('checkout.token', await a.cluster.mint({ namespace: 'shop', serviceAccount: 'checkout' }));
    const creds = await fromHttp({ awsContainerCredentialsFullUri: uri, awsContainerAuthorizationTokenFile: f })();
    t.ok(a.emu.emulator.issued.some((c) => c.accessKeyId === creds.accessKeyId && c.roleArn === ROLE.checkout), 'the checkout role\'s credentials');
    const out = await sts(a.emu, creds);
    t.equal(out.Account, ACCOUNT);
    t.match(out.Arn, /:assumed-role\/checkout\//);
  });

  t.test('the default chain with only the two env vars (as in a pod), ES256 token, another SA → another role', async (t) => {
    const f = await tokenFile('batch.token', await a.cluster.mint({ namespace: 'batch', serviceAccount: 'report', key: 'ec' }));
    const env = await cleanAwsEnv({ AWS_CONTAINER_CREDENTIALS_FULL_URI: uri, AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE: f });
    const creds = await withEnv(env, () => fromNodeProviderChain()());
    const out = await sts(a.emu, creds);
    t.match(out.Arn, /:assumed-role\/batch-readonly\//, 'batch/* binding');
  });

  t.test('fromContainerMetadata with the token in AWS_CONTAINER_AUTHORIZATION_TOKEN', async (t) => {
    const token = await a.cluster.mint({ namespace: 'shop', serviceAccount: 'checkout', podName: 'checkout-2' });
    const env = await cleanAwsEnv({ AWS_CONTAINER_CREDENTIALS_FULL_URI: uri, AWS_CONTAINER_AUTHORIZATION_TOKEN: token });
    const creds = await withEnv(env, () => fromContainerMetadata({ timeout: 5000 })());
    t.match((await sts(a.emu, creds)).Arn, /:assumed-role\/checkout\//);
  });

  t.test('aws CLI with the token file', async (t) => {
    const f = await tokenFile('cli.token', await a.cluster.mint({ namespace: 'batch', serviceAccount: 'nightly' }));
    const env = await cleanAwsEnv({ AWS_CONTAINER_CREDENTIALS_FULL_URI: uri, AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE: f });
    const r = await runProcess('aws', ['sts', 'get-caller-identity', '--endpoint-url', a.emu.url, '--output', 'json'], { env, cleanEnv: true, timeoutMs: 45_000 });
    t.equal(r.code, 0, r.code === 0 ? 'exit 0' : `exit ${r.code}: ${r.stderr.slice(0, 500)}`);
    if (r.code === 0) t.match(JSON.parse(r.stdout).Arn, /:assumed-role\/batch-readonly\//);
  });

  t.test('the answer is exactly the container endpoint\'s', async (t) => {
    const r = await a.get(await a.cluster.mint({ namespace: 'shop', serviceAccount: 'checkout' }));
    t.equal(r.status, 200);
    t.same(Object.keys(r.json), ['AccessKeyId', 'SecretAccessKey', 'Token', 'Expiration', 'AccountId', 'RoleArn']);
    t.equal(r.json.RoleArn, ROLE.checkout);
    t.match(r.json.Expiration, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    const linkLocal = await httpRequest(a.port, 'GET', '/v1/credentials', { authorization: await a.cluster.mint({ namespace: 'shop', serviceAccount: 'checkout' }), host: '169.254.170.23' });
    t.equal(linkLocal.status, 200, 'Host 169.254.170.23 is fine here: the token is the guard');
    const ordinary = await httpRequest(a.adminPort, 'GET', '/v1/credentials', { authorization: 'x', host: '169.254.170.23' });
    t.equal(ordinary.status, 403, 'the loopback listener keeps its Host guard');
  });

  t.test('an unbound service account gets 403 naming it', async (t) => {
    const r = await a.get(await a.cluster.mint({ namespace: 'shop', serviceAccount: 'intruder' }));
    t.equal(r.status, 403);
    t.equal(r.json.Code, 'AccessDenied');
    t.match(r.json.Message, /service account shop\/intruder is not bound/);
  });

  t.test('bad tokens get 401 saying which check failed, never the token', async (t) => {
    const ok = { namespace: 'shop', serviceAccount: 'checkout' };
    const stranger = await makeKey('rsa-1', 'RS256'); // same kid, another key
    const unknown = await makeKey('other-kid', 'ES256');
    const good = await a.cluster.mint(ok);
    const cases: Array<[string, string, RegExp]> = [
      ['expired', await a.cluster.mint({ ...ok, expiresIn: -120 }), /\(expired\)/],
      ['not yet valid', await a.cluster.mint({ ...ok, notBefore: 600 }), /\(not_yet_valid\)/],
      ['wrong issuer', await a.cluster.mint({ ...ok, issuer: 'https://evil.example' }), /\(issuer\).*not https:\/\/kubernetes\.default\.svc\.cluster\.local/],
      ['wrong audience', await a.cluster.mint({ ...ok, audience: 'sts.amazonaws.com' }), /\(audience\).*rolesanywhere-credentiald/],
      ['wrong key, known kid', await a.cluster.mint({ ...ok, key: stranger }), /\(signature\)/],
      ['wrong key, unknown kid', await a.cluster.mint({ ...ok, key: unknown }), /\(unknown_key\)/],
      ['alg none', algNone(good), /\(algorithm\)/],
      ['tampered', tampered(good, (c) => (c['kubernetes.io'].namespace = 'batch')), /\(signature\)/],
      ['no pod binding', await a.cluster.mint({ ...ok, noPod: true }), /\(claims\).*not bound to a pod/],
      ['not a JWT', 'hello-there', /\(malformed\)/],
      ['too large', 'a'.repeat(9000), /\(too_large\)/],
    ];
    for (const [what, token, re] of cases) {
      const r = await a.get(token);
      t.equal(r.status, 401, `${what}: 401`);
      t.match(r.json?.Message, re, `${what}: says which check failed`);
      t.notOk(r.body.includes(token.split('.')[1] ?? token), `${what}: token not echoed`);
    }
    const none = await a.get(undefined);
    t.equal(none.status, 401);
    t.match(none.json.Message, /missing Authorization header/);
    t.notOk(a.logs().includes(good.split('.')[2]!), 'no token in the logs');
  });

  t.test('a rotated token file keeps working', async (t) => {
    const f = join(a.dir, 'rotating.token');
    await writeFile(f, await a.cluster.mint({ namespace: 'shop', serviceAccount: 'checkout', podName: 'rot', podUid: 'uid-rot' }));
    const p = fromHttp({ awsContainerCredentialsFullUri: uri, awsContainerAuthorizationTokenFile: f });
    const first = await p();
    // kubelet rewrites the file with a fresh token; the old one expires.
    await writeFile(f, await a.cluster.mint({ namespace: 'shop', serviceAccount: 'checkout', podName: 'rot', podUid: 'uid-rot', expiresIn: 7200 }));
    const second = await fromHttp({ awsContainerCredentialsFullUri: uri, awsContainerAuthorizationTokenFile: f })();
    t.equal(second.accessKeyId, first.accessKeyId, 'same binding, same cached credentials');
  });

  t.test('a JWKS key rotation (new kid) is picked up', async (t) => {
    const next = await makeKey('rsa-2', 'RS256');
    a.cluster.published = [next, a.cluster.ec];
    await a.cluster.writeJwks();
    const before = a.daemon.podIdentity!.verifier.fetches;
    // The key set is re-fetched on an unknown kid at most every refetchIntervalSeconds (1 s here).
    await new Promise((r) => setTimeout(r, 1100));
    const r = await a.get(await a.cluster.mint({ namespace: 'shop', serviceAccount: 'checkout', key: next }));
    t.equal(r.status, 200, 'token signed with the new key accepted');
    t.equal(a.daemon.podIdentity!.verifier.fetches, before + 1, 'one re-fetch');
    const old = await a.get(await a.cluster.mint({ namespace: 'shop', serviceAccount: 'checkout', podName: 'late' }));
    t.equal(old.status, 401, 'the removed key no longer verifies');
    t.equal(a.daemon.podIdentity!.verifier.fetches, before + 1, 'unknown kid within the interval: no second fetch');
    // And back: the old key is published again and picked up after the interval.
    a.cluster.published = [a.cluster.rsa, a.cluster.ec, next];
    await a.cluster.writeJwks();
    await new Promise((r) => setTimeout(r, 1100));
    t.equal((await a.get(await a.cluster.mint({ namespace: 'shop', serviceAccount: 'checkout', podName: 'later' }))).status, 200);
  });

  t.test('100 distinct pod tokens for one binding cause one CreateSession', async (t) => {
    t.equal(a.createSessions(ROLE.crowd), 0, 'no session yet');
    const tokens = await Promise.all(Array.from({ length: 100 }, (_, i) => a.cluster.mint({ namespace: 'crowd', serviceAccount: 'web', podName: `web-${i}`, podUid: `uid-web-${i}`, key: i % 2 ? 'ec' : 'rsa' })));
    const answers = await Promise.all(tokens.map((tok) => a.get(tok)));
    t.same([...new Set(answers.map((r) => `${r.status} ${r.status === 200 ? '' : r.body}`))], ['200 '], 'all 100 answered');
    t.equal(new Set(answers.map((r) => r.json.AccessKeyId)).size, 1, 'the same credentials');
    t.equal(a.createSessions(ROLE.crowd), 1, 'one CreateSession');
    // Again, from the verified-token cache.
    await Promise.all(tokens.slice(0, 10).map((tok) => a.get(tok)));
    t.equal(a.createSessions(ROLE.crowd), 1);
    const m = (await httpRequest(a.adminPort, 'GET', '/metrics')).body;
    t.match(m, /rolesanywhere_pod_identity_distinct_pods\{binding="crowd\/web"\} 100\n/);
    t.match(m, /rolesanywhere_pod_identity_requests_total\{binding="crowd\/web"\} 110\n/);
    t.match(m, /rolesanywhere_pod_identity_refusals_total\{binding="",reason="unbound"\} 1\n/);
    t.match(m, /rolesanywhere_pod_identity_refusals_total\{binding="",reason="expired"\} 1\n/);
    for (const tok of tokens.slice(0, 3)) t.notOk(m.includes(tok.split('.')[2]!), 'no token in metrics');
  });

  t.test('other paths and methods are not served on the pod listener', async (t) => {
    t.equal((await httpRequest(a.port, 'GET', '/v1/credentials/checkout')).status, 404);
    t.equal((await httpRequest(a.port, 'GET', '/latest/meta-data/iam/security-credentials/')).status, 404);
    t.equal((await httpRequest(a.port, 'GET', '/metrics')).status, 404);
    t.equal((await httpRequest(a.port, 'PUT', '/latest/api/token')).status, 404);
    t.equal((await httpRequest(a.port, 'GET', '/healthz')).status, 404);
  });
});

t.test('pod identity with the JWKS from the API server URL (https, cluster CA, bearer token)', async (t) => {
  let bearer = 'agent-token-1';
  let server: Awaited<ReturnType<typeof serveJwks>> | undefined;
  const a = await startAgent(t, async (dir, cluster) => {
    server = await serveJwks(t, cluster, { dir, tls: true, bearer: () => bearer });
    const tokenFile = join(dir, 'agent-sa-token');
    await writeFile(tokenFile, bearer + '\n');
    return {
      listen: ['127.0.0.1:0'],
      issuer: ISSUER,
      audiences: ['other', AUDIENCE],
      jwks: { url: server.url, caFile: server.caFile, tokenFile, refetchIntervalSeconds: 1 },
      bindings: [{ namespace: 'shop', serviceAccount: 'checkout', profile: 'checkout' }],
    };
  });
  const r = await a.get(await a.cluster.mint({ namespace: 'shop', serviceAccount: 'checkout' }));
  t.equal(r.status, 200, 'verified against keys fetched over https with the bearer token');
  t.equal(r.json.RoleArn, ROLE.checkout);

  // The agent's own token rotates: the file is re-read on the next fetch.
  bearer = 'agent-token-2';
  await writeFile(join(a.dir, 'agent-sa-token'), bearer);
  const next = await makeKey('rsa-2', 'RS256');
  a.cluster.published.push(next);
  await new Promise((r) => setTimeout(r, 1100));
  const hits = server!.hits;
  const r2 = await a.get(await a.cluster.mint({ namespace: 'shop', serviceAccount: 'checkout', key: next }));
  t.equal(r2.status, 200, 'new kid fetched from the URL with the rotated bearer token');
  t.equal(server!.hits, hits + 1);
});

t.test('idle binding sessions stop and start again on the next request', async (t) => {
  const a = await startAgent(t, fileJwks({ idleTimeoutSeconds: 1 }));
  const token = await a.cluster.mint({ namespace: 'shop', serviceAccount: 'checkout' });
  t.equal((await a.get(token)).status, 200);
  t.equal(a.createSessions(ROLE.checkout), 1);
  await waitUntil('the idle session is stopped', () => !a.daemon.session('checkout')!.isRunning, 20_000);
  t.match(a.logs(), /stopping its session until one does/);
  const again = await a.get(token);
  t.equal(again.status, 200, 'served again after a restart of the session');
  t.equal(a.createSessions(ROLE.checkout), 2, 'a new CreateSession');
});

t.test('a reload with new bindings takes effect; an unchanged podIdentity keeps its verified-token cache', async (t) => {
  const a = await startAgent(t, fileJwks());
  const token = await a.cluster.mint({ namespace: 'shop', serviceAccount: 'intruder' });
  t.equal((await a.get(token)).status, 403);
  const service = a.daemon.podIdentity!;
  // Same podIdentity, other change (log level): the service and its cache stay.
  await a.daemon.reload({ ...a.daemon.currentConfig, logLevel: 'warn' });
  t.equal(a.daemon.podIdentity, service, 'unchanged podIdentity: same service');
  const pi = a.daemon.currentConfig.podIdentity!;
  await a.daemon.reload({ ...a.daemon.currentConfig, podIdentity: { ...pi, bindings: [...pi.bindings, { namespace: 'shop', serviceAccount: 'intruder', profile: 'batch' }] } });
  t.not(a.daemon.podIdentity, service, 'a new service for the new bindings');
  const r = await a.get(token);
  t.equal(r.status, 200, 'now bound');
  t.equal(r.json.RoleArn, ROLE.batch);
});

t.test('a JWKS URL refusing the agent at start: 503 naming the fix, then served once it answers', async (t) => {
  const bearer = 'the-right-token';
  const a = await startAgent(t, async (dir, cluster) => {
    const server = await serveJwks(t, cluster, { bearer: () => bearer });
    const tokenFile = join(dir, 'agent-sa-token');
    await writeFile(tokenFile, 'a-wrong-token');
    return {
      listen: ['127.0.0.1:0'],
      issuer: ISSUER,
      audiences: [AUDIENCE],
      jwks: { url: server.url, tokenFile, refetchIntervalSeconds: 1 },
      bindings: [{ namespace: 'shop', serviceAccount: 'checkout', profile: 'checkout' }],
    };
  });
  t.match(a.logs(), /cannot fetch the cluster signing keys/, 'started anyway, and said why');
  const token = await a.cluster.mint({ namespace: 'shop', serviceAccount: 'checkout' });
  const r = await a.get(token);
  t.equal(r.status, 503);
  t.match(r.json.Message, /signing keys are not loaded .*answered 401; give podIdentity\.jwks\.tokenFile and bind the agent's service account to the system:service-account-issuer-discovery ClusterRole/);
  await writeFile(join(a.dir, 'agent-sa-token'), bearer);
  await new Promise((r) => setTimeout(r, 1100));
  t.equal((await a.get(token)).status, 200, 'keys fetched on a later request');
});

t.test('a binding to a chained profile serves the last role of the chain', async (t) => {
  const AUDIT = 'arn:aws:iam::345678901234:role/Audit';
  const a = await startAgent(t, fileJwks(), (emu) => ({ batch: { assumeRole: [{ roleArn: AUDIT, externalId: 'ext-7' }], stsEndpoint: emu.url } }));
  const r = await a.get(await a.cluster.mint({ namespace: 'batch', serviceAccount: 'report' }));
  t.equal(r.status, 200, r.body.slice(0, 300));
  t.equal(r.json.RoleArn, AUDIT);
  t.equal(r.json.AccountId, '345678901234');
  const id = await sts(a.emu, { accessKeyId: r.json.AccessKeyId, secretAccessKey: r.json.SecretAccessKey, sessionToken: r.json.Token });
  t.equal(id.Account, '345678901234', 'GetCallerIdentity: the chained role\'s account');
  t.match(id.Arn, /^arn:aws:sts::345678901234:assumed-role\/Audit\/\d+$/);
  const checkout = await a.get(await a.cluster.mint({ namespace: 'shop', serviceAccount: 'checkout' }));
  t.equal(checkout.json.RoleArn, ROLE.checkout, 'other bindings are unchanged');
});
