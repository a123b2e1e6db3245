// What the daemon shares across requests and profiles: the rendered
// credential bodies (cached per credentials object, never stale after a
// refresh, never served when the session refuses) and one CreateSession
// limiter for all sessions.
import { readFile } from 'node:fs/promises';
import t from 'tap';
import type { FetchCredentials } from '../../src/credentials/session.js';
import { loadIdentity } from '../../src/identity/load.js';
import type { AwsCredentials } from '../../src/rolesanywhere/types.js';
import { BodyCache } from '../../src/server/app.js';
import { Daemon } from '../../src/server/daemon.js';
import { daemonConfig, httpRequest, profileFor, ROLE_ARN, waitUntil } from '../helpers/daemon.js';
import { makeCA, makeLeaf, tempDir } from '../helpers/pki.js';

function creds(n: number, lifetimeMs = 3600_000): AwsCredentials {
  return {
    accessKeyId: `ASIACACHE${n}`,
    secretAccessKey: `cache-secret-${n}-${Math.random()}`,
    sessionToken: `cache-token-${n}-${Math.random()}`,
    expiration: new Date(Date.now() + lifetimeMs),
    roleArn: ROLE_ARN,
  };
}

t.test('BodyCache renders once per credentials object', async (t) => {
  const cache = new BodyCache();
  const a = creds(1);
  const first = cache.containerBody(a);
  t.equal(cache.containerBody(a), first, 'same object: same body');
  t.same(Object.keys(JSON.parse(first)), ['AccessKeyId', 'SecretAccessKey', 'Token', 'Expiration', 'AccountId', 'RoleArn'].filter((k) => k !== 'AccountId'));
  const b = { ...a, accessKeyId: 'ASIAOTHER' };
  t.equal(JSON.parse(cache.containerBody(b)).AccessKeyId, 'ASIAOTHER', 'a new object gets its own body');
  const at = new Date('2026-01-02T03:04:05.678Z');
  const imds = JSON.parse(cache.imdsBody(a, at));
  t.equal(imds.LastUpdated, '2026-01-02T03:04:05Z');
  t.equal(imds.AccessKeyId, a.accessKeyId);
  t.equal(cache.imdsBody(a, new Date(at)), cache.imdsBody(a, at), 'same object and time: cached');
  t.equal(JSON.parse(cache.imdsBody(a, new Date('2026-01-02T04:00:00Z'))).LastUpdated, '2026-01-02T04:00:00Z', 'a different LastUpdated is re-rendered');
});

t.test('after a refresh the new credentials are served with a new body (container and IMDS)', async (t) => {
  const dir = await tempDir();
  const ca = await makeCA(dir);
  const leaf = await makeLeaf(dir, ca, 'cache');
  let n = 0;
  let fail = false;
  const fetch: FetchCredentials = async () => {
    if (fail) throw Object.assign(new Error('ServiceUnavailableException: try later'), { reason: 'service_unavailable' });
    return creds(++n);
  };
  const config = daemonConfig(dir, [profileFor('main', leaf)], { imds: { enabled: true, profile: 'main', allowV1: false } });
  const daemon = await Daemon.start(config, { fetchFactory: () => fetch, loadIdentity: (_p, s) => loadIdentity(s) });
  t.teardown(() => daemon.close());
  const port = daemon.addresses[0]!.port;
  const session = daemon.session('main')!;
  await session.waitFor((s) => s.status().ready, 10_000);
  const token = await readFile(config.tokenFile, 'utf8');
  const imdsToken = (await httpRequest(port, 'PUT', '/latest/api/token', { 'x-aws-ec2-metadata-token-ttl-seconds': '60' })).body;
  const container = async () => JSON.parse((await httpRequest(port, 'GET', '/v1/credentials', { authorization: token })).body);
  const imds = async () => JSON.parse((await httpRequest(port, 'GET', '/latest/meta-data/iam/security-credentials/test-role', { 'x-aws-ec2-metadata-token': imdsToken })).body);

  const c1 = await container();
  const i1 = await imds();
  t.equal(c1.AccessKeyId, 'ASIACACHE1');
  t.equal(i1.AccessKeyId, 'ASIACACHE1');
  t.same(await container(), c1, 'served again from the cache, identical');

  await session.refresh();
  const c2 = await container();
  const i2 = await imds();
  t.equal(c2.AccessKeyId, 'ASIACACHE2', 'the refreshed credentials, not the cached body of the old ones');
  t.not(c2.SecretAccessKey, c1.SecretAccessKey);
  t.not(c2.Token, c1.Token);
  t.equal(i2.AccessKeyId, 'ASIACACHE2');
  t.equal(i2.Token, c2.Token);
  t.ok(i2.LastUpdated >= i1.LastUpdated, 'LastUpdated belongs to the new credentials');

  // A failed refresh keeps serving the current credentials (and their cached body).
  fail = true;
  await session.refresh();
  t.equal((await container()).AccessKeyId, 'ASIACACHE2');
});

t.test('credentials the session refuses are never served, even with a cached body', async (t) => {
  const dir = await tempDir();
  const ca = await makeCA(dir);
  const leaf = await makeLeaf(dir, ca, 'cache-expiry');
  let fail = false;
  const daemon = await Daemon.start(daemonConfig(dir, [profileFor('main', leaf)]), {
    // 3 s credentials; every later refresh fails, so they run into the expiry margin.
    fetchFactory: () => async () => {
      if (fail) throw Object.assign(new Error('ServiceUnavailableException: try later'), { reason: 'service_unavailable' });
      fail = true;
      return creds(7, 3000);
    },
    loadIdentity: (_p, s) => loadIdentity(s),
  });
  t.teardown(() => daemon.close());
  const port = daemon.addresses[0]!.port;
  const session = daemon.session('main')!;
  await session.waitFor((s) => s.status().ready, 10_000);
  const token = await readFile(daemon.currentConfig.tokenFile, 'utf8');
  const first = await httpRequest(port, 'GET', '/v1/credentials', { authorization: token });
  t.equal(first.status, 200, 'served (and now cached)');
  t.match(first.body, /ASIACACHE7/);
  await waitUntil('the session no longer serves them', () => !session.status().ready, 10_000);
  const r = await httpRequest(port, 'GET', '/v1/credentials', { authorization: token });
  t.equal(r.status, 503, 'the session decides, not the cache');
  t.notMatch(r.body, /ASIACACHE7|cache-secret|cache-token/);
});

t.test('all sessions of a daemon share one limiter: never more than maxConcurrent CreateSession calls at once', async (t) => {
  const dir = await tempDir();
  const ca = await makeCA(dir);
  const leaf = await makeLeaf(dir, ca, 'limited');
  const names = Array.from({ length: 12 }, (_, i) => `p${i}`);
  let running = 0;
  let maxRunning = 0;
  let calls = 0;
  const waiting: Array<() => void> = [];
  const fetch: FetchCredentials = (_id, signal) =>
    new Promise((resolve, reject) => {
      calls++;
      running++;
      maxRunning = Math.max(maxRunning, running);
      const done = () => {
        running--;
        resolve(creds(calls));
      };
      waiting.push(done);
      signal.addEventListener('abort', () => {
        running--;
        reject(signal.reason);
      }, { once: true });
    });
  const config = daemonConfig(dir, names.map((n) => profileFor(n, leaf)), {
    imds: { enabled: false, allowV1: false },
    refresh: { backoffInitialMs: 200, backoffMaxMs: 1000, maxConcurrent: 3, maxCallsPerSecond: 1000 },
  });
  const daemon = await Daemon.start(config, { fetchFactory: () => fetch, loadIdentity: (_p, s) => loadIdentity(s) });
  t.teardown(() => daemon.close());
  t.same(daemon.limiter.limits, { maxConcurrent: 3, maxCallsPerSecond: 1000, burst: 1000 });

  await waitUntil('the first calls started', () => running === 3);
  t.equal(daemon.limiter.waiting, 9, 'the other profiles wait for a slot');
  // Let the calls finish one at a time; each finish lets exactly one more start.
  while (calls < names.length || waiting.length > 0) {
    const next = waiting.shift();
    if (!next) {
      await new Promise((r) => setImmediate(r));
      continue;
    }
    next();
    await new Promise((r) => setImmediate(r));
    t.ok(running <= 3, `in flight ${running} ≤ 3`);
  }
  await waitUntil('every profile ready', () => names.every((n) => daemon.session(n)!.status().ready));
  t.equal(maxRunning, 3, 'the cap was reached and never exceeded');
  t.equal(calls, names.length, 'one CreateSession per profile');

  // Reload with other limits applies them to the same limiter without rebuilding the sessions.
  const before = daemon.session('p0');
  await daemon.reload({ ...config, refresh: { ...config.refresh, maxConcurrent: 5, maxCallsPerSecond: 20 } });
  t.equal(daemon.session('p0'), before, 'sessions kept');
  t.same(daemon.limiter.limits, { maxConcurrent: 5, maxCallsPerSecond: 20, burst: 20 });
});

t.test('stopping a daemon aborts fetches still waiting for the limiter', async (t) => {
  const dir = await tempDir();
  const ca = await makeCA(dir);
  const leaf = await makeLeaf(dir, ca, 'limited-stop');
  let started = 0;
  const fetch: FetchCredentials = (_id, signal) =>
    new Promise((_resolve, reject) => {
      started++;
      signal.addEventListener('abort', () => reject(signal.reason), { once: true });
    });
  const config = daemonConfig(dir, ['a', 'b', 'c'].map((n) => profileFor(n, leaf)), {
    imds: { enabled: false, allowV1: false },
    refresh: { backoffInitialMs: 200, backoffMaxMs: 1000, maxConcurrent: 1 },
  });
  const daemon = await Daemon.start(config, { fetchFactory: () => fetch, loadIdentity: (_p, s) => loadIdentity(s) });
  await waitUntil('one call in flight, two waiting', () => daemon.limiter.inFlight === 1 && daemon.limiter.waiting === 2);
  await daemon.close();
  await waitUntil('nothing in flight or waiting', () => daemon.limiter.inFlight === 0 && daemon.limiter.waiting === 0);
  t.equal(started, 1, 'the waiting fetches never started');
});
