// Daemon.reload: what a SIGHUP may and may not change while serving.
import { readFile } from 'node:fs/promises';
import t from 'tap';
import type { FetchCredentials } from '../../src/credentials/session.js';
import { loadIdentity } from '../../src/identity/load.js';
import type { AwsCredentials } from '../../src/rolesanywhere/types.js';
import { Daemon } from '../../src/server/daemon.js';
import { daemonConfig, httpRequest, profileFor, ROLE_ARN } from '../helpers/daemon.js';
import { makeCA, makeLeaf, tempDir } from '../helpers/pki.js';

function creds(n: number): AwsCredentials {
  return {
    accessKeyId: `ASIARELOAD${n}`,
    secretAccessKey: `reload-secret-${n}-${Math.random()}`,
    sessionToken: `reload-token-${n}-${Math.random()}`,
    expiration: new Date(Date.now() + 3600_000),
    roleArn: ROLE_ARN,
  };
}

/** A daemon with one profile `main` (a fresh leaf named `leafName`) on 127.0.0.1, ready; closed at teardown. */
async function startReady(t: Tap.Test, leafName: string, fetch: FetchCredentials) {
  const dir = await tempDir();
  const ca = await makeCA(dir);
  const leaf = await makeLeaf(dir, ca, leafName);
  const config = daemonConfig(dir, [profileFor('main', leaf)]);
  const daemon = await Daemon.start(config, { fetchFactory: () => fetch, loadIdentity: (_p, s) => loadIdentity(s) });
  t.teardown(() => daemon.close());
  const port = daemon.addresses[0]!.port;
  const token = await readFile(config.tokenFile, 'utf8');
  await daemon.session('main')!.waitFor((s) => s.status().ready, 10_000);
  return { leaf, config, daemon, port, token };
}

t.test('a reload whose listen change is not applied keeps the DNS-rebinding guard of the addresses still bound', async (t) => {
  const { config, daemon, port, token } = await startReady(t, 'guard', async () => creds(1));
  t.equal((await httpRequest(port, 'GET', '/v1/credentials', { authorization: token, host: `rebind.example:${port}` })).status, 403, 'guarded before');

  // The new config asks for a non-loopback address; it needs a restart, so the daemon still listens on 127.0.0.1 only.
  await daemon.reload({ ...config, listen: [{ host: '0.0.0.0', port: 0 }], allowNonLoopback: true });
  t.same(daemon.addresses.map((a) => a.host), ['127.0.0.1'], 'still bound to loopback only');
  const res = await httpRequest(port, 'GET', '/v1/credentials', { authorization: token, host: `rebind.example:${port}` });
  t.equal(res.status, 403, 'a non-loopback Host is still refused');
  t.notMatch(res.body, /SecretAccessKey/);
});

t.test('a reload that changes only refresh/watch settings keeps serving the cached credentials (no new session during an outage)', async (t) => {
  let n = 0;
  let calls = 0;
  let outage = false;
  const fetch: FetchCredentials = async () => {
    calls++;
    if (outage) throw Object.assign(new Error('ServiceUnavailableException: try later'), { reason: 'service_unavailable' });
    return creds(++n);
  };
  const { config, daemon, port, token } = await startReady(t, 'settings', fetch);
  const before = JSON.parse((await httpRequest(port, 'GET', '/v1/credentials', { authorization: token })).body);
  t.equal(before.AccessKeyId, 'ASIARELOAD1');

  outage = true;
  await daemon.reload({
    ...config,
    refresh: { backoffInitialMs: 300, backoffMaxMs: 2000 },
    watch: { debounceMs: 150, recheckIntervalMs: 2000 },
  });
  const res = await httpRequest(port, 'GET', '/v1/credentials', { authorization: token });
  t.equal(res.status, 200, 'still serving through the outage');
  t.equal(JSON.parse(res.body).AccessKeyId, 'ASIARELOAD1', 'the cached credentials');
  t.equal(calls, 1, 'no new CreateSession was needed');
});

t.test('a reload still running when the daemon closes leaves nothing running', async (t) => {
  const dir = await tempDir();
  const ca = await makeCA(dir);
  const leaf = await makeLeaf(dir, ca, 'close-race');
  let calls = 0;
  const config = daemonConfig(dir, [profileFor('main', leaf)]);
  const daemon = await Daemon.start(config, {
    fetchFactory: () => async () => {
      calls++;
      return creds(calls);
    },
    loadIdentity: (_p, s) => loadIdentity(s),
  });
  await daemon.session('main')!.waitFor((s) => s.status().ready, 10_000);
  // A changed profile: the reload builds a new session and watcher for it.
  const reloading = daemon.reload({ ...config, profiles: { main: profileFor('main', leaf, { roleArn: 'arn:aws:iam::123456789012:role/other' }) } });
  await daemon.close();
  await reloading;
  const session = daemon.session('main');
  t.ok(session === undefined || session.isStopped, 'no session left running after close');
  t.equal(daemon.watchers.size, 0, 'no file watcher left open after close');
  t.equal(calls, 1, 'no CreateSession after close');
});

t.test('a reload that changes a profile\'s non-identity settings keeps its cached credentials through an outage; a new role drops them', async (t) => {
  let n = 0;
  let outage = false;
  const fetch: FetchCredentials = async () => {
    if (outage) throw Object.assign(new Error('ServiceUnavailableException: try later'), { reason: 'service_unavailable' });
    return creds(++n);
  };
  const { leaf, config, daemon, port, token } = await startReady(t, 'profile-settings', fetch);

  outage = true;
  const changed = profileFor('main', leaf, { sessionDuration: 7200, roleSessionName: 'renamed', expiryWarningDays: 30, callers: { users: [process.getuid?.() ?? 0] } });
  await daemon.reload({ ...config, profiles: { main: changed } });
  await daemon.session('main')!.waitFor((s) => s.status().lastRefreshOutcome === 'failure', 10_000);
  const res = await httpRequest(port, 'GET', '/v1/credentials', { authorization: token });
  t.equal(res.status, 200, 'still serving after the reload, during the outage');
  t.equal(JSON.parse(res.body).AccessKeyId, 'ASIARELOAD1', 'the cached credentials');

  await daemon.reload({ ...config, profiles: { main: { ...changed, roleArn: 'arn:aws:iam::123456789012:role/other' } } });
  t.equal((await httpRequest(port, 'GET', '/v1/credentials', { authorization: token })).status, 503, 'another role: the old credentials are not served');
});
