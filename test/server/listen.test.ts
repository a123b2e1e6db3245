import t from 'tap';
import { loadIdentity } from '../../src/identity/load.js';
import { Daemon } from '../../src/server/daemon.js';
import { ImdsTokenStore, parseTtl } from '../../src/server/imds-tokens.js';
import { isLoopbackHostHeader as isLoopbackHost } from '../../src/net/loopback.js';
import { daemonConfig, httpRequest, profileFor, ROLE_ARN } from '../helpers/daemon.js';
import { makeCA, makeLeaf, tempDir } from '../helpers/pki.js';
import { request } from 'node:http';

t.test('several listen addresses, IPv6 included, share one state', async (t) => {
  const dir = await tempDir();
  const ca = await makeCA(dir);
  const leaf = await makeLeaf(dir, ca, 'multi');
  const daemon = await Daemon.start(daemonConfig(dir, [profileFor('default', leaf)], { listen: [{ host: '127.0.0.1', port: 0 }, { host: '::1', port: 0 }] }), {
    fetchFactory: () => async () => ({ accessKeyId: 'ASIAX', secretAccessKey: 's', sessionToken: 't', expiration: new Date(Date.now() + 3600_000), roleArn: ROLE_ARN }),
    loadIdentity: (_p, s) => loadIdentity(s),
  });
  t.teardown(() => daemon.close());
  t.equal(daemon.addresses.length, 2);
  t.match(daemon.exportLines()[0], /^export AWS_CONTAINER_CREDENTIALS_FULL_URI=http:\/\/127\.0\.0\.1:\d+\/v1\/credentials$/);
  const v6port = daemon.addresses[1]!.port;
  const status = await new Promise<number>((resolve, reject) => {
    const req = request({ host: '::1', port: v6port, path: '/healthz', headers: { host: `[::1]:${v6port}` } }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    req.end();
  });
  t.equal(status, 200, 'IPv6 loopback answers');
  t.equal((await httpRequest(daemon.addresses[0]!.port, 'GET', '/healthz')).status, 200);
  const metrics = (await httpRequest(daemon.addresses[0]!.port, 'GET', '/metrics')).body;
  t.match(metrics, /rolesanywhere_http_requests_total\{route="\/healthz",code="200"\} 2/, 'both listeners count into one registry');
});

t.test('IMDS token store: expiry and bounded size', async (t) => {
  let now = 1_000_000;
  const store = new ImdsTokenStore(3, () => now);
  const a = store.issue(10);
  const b = store.issue(10);
  t.ok(store.valid(a) && store.valid(b));
  now += 10_000;
  t.notOk(store.valid(a), 'expired');
  const c = store.issue(100);
  const d = store.issue(100);
  const e = store.issue(100);
  const f = store.issue(100);
  t.ok(store.size <= 3, 'bounded');
  t.notOk(store.valid(c), 'oldest evicted');
  t.ok(store.valid(d) && store.valid(e) && store.valid(f));
  t.notOk(store.valid(undefined));
  t.notOk(store.valid(['x']));
});

t.test('TTL parsing and Host check', async (t) => {
  t.equal(parseTtl('1'), 1);
  t.equal(parseTtl('21600'), 21600);
  for (const bad of [undefined, '', '0', '21601', '1e3', 'abc', '-1', '2.5']) t.equal(parseTtl(bad), undefined, String(bad));
  for (const ok of ['localhost', 'LOCALHOST:80', '127.0.0.1', '127.9.8.7:9911', '[::1]', '[::1]:9911']) t.ok(isLoopbackHost(ok), ok);
  for (const bad of [undefined, '', 'example.com', '127.0.0.1.evil.com', 'localhost.evil.com', '169.254.169.254', '[::2]:1', '10.0.0.1:9911', '[::1]x']) {
    t.notOk(isLoopbackHost(bad), String(bad));
  }
});

t.test('IMDS token store: one caller flooding it cannot evict another caller\'s token', async (t) => {
  const store = new ImdsTokenStore(100, Date.now, 20);
  const legit = store.issue(21600, 'uid:1000');
  for (let i = 0; i < 10_000; i++) store.issue(60, 'uid:2000');
  t.ok(store.valid(legit), "the other caller's token survives 10,000 PUTs");
  t.ok(store.size <= 21, `the flooder keeps at most its share (${store.size} tokens held)`);
  // A full store drops the oldest token of the caller holding the most.
  const many = new ImdsTokenStore(10, Date.now, 100);
  const first = many.issue(60, 'a');
  for (let i = 0; i < 8; i++) many.issue(60, 'b');
  const mine = many.issue(60, 'c');
  many.issue(60, 'd');
  t.ok(many.valid(first) && many.valid(mine), 'single tokens of other callers kept');
  t.equal(many.size, 10);
});
