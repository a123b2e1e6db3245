// health.listen: a second listener that answers only /healthz, /readyz and /metrics
// (for kubelet probes and Prometheus from outside the pod), never a credential or
// IMDS route, and whose /readyz names an unready profile without the service's text.
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { loadDaemonConfig } from '../../src/config/load.js';
import { ConfigError } from '../../src/problems.js';
import type { FetchCredentials } from '../../src/credentials/session.js';
import { loadIdentity } from '../../src/identity/load.js';
import { Daemon } from '../../src/server/daemon.js';
import { daemonConfig, httpRequest, profileFor, ROLE_ARN, TA_ARN, PROFILE_ARN } from '../helpers/daemon.js';
import { rejection } from '../helpers/assert.js';
import { makeCA, makeLeaf, tempDir } from '../helpers/pki.js';

const SECRET_TEXT = 'AccessDeniedException: Untrusted signing certificate CN=secret-subject arn:aws:rolesanywhere:us-east-1:123456789012:trust-anchor/hidden';

t.test('the health listener serves probes and metrics, and nothing else', async (t) => {
  const dir = await tempDir();
  const ca = await makeCA(dir);
  const leaf = await makeLeaf(dir, ca, 'health');
  let n = 0;
  const ok: FetchCredentials = async () => ({
    accessKeyId: `ASIAHEALTH${++n}`,
    secretAccessKey: `health-secret-${n}`,
    sessionToken: `health-token-${n}`,
    expiration: new Date(Date.now() + 3600_000),
    roleArn: ROLE_ARN,
  });
  let failing = true;
  const flaky: FetchCredentials = async (...args) => {
    if (failing) throw Object.assign(new Error(SECRET_TEXT), { reason: 'access_denied' });
    return ok(...args);
  };
  const config = daemonConfig(dir, [profileFor('main', leaf), profileFor('other', leaf)], {
    imds: { enabled: true, profile: 'main', allowV1: false },
    health: { listen: [{ host: '127.0.0.1', port: 0 }] },
  });
  const daemon = await Daemon.start(config, { fetchFactory: (p) => (p.name === 'other' ? flaky : ok), loadIdentity: (_p, s) => loadIdentity(s) });
  t.teardown(() => daemon.close());
  await daemon.session('main')!.waitFor((s) => s.status().ready, 10_000);
  await daemon.session('other')!.waitFor((s) => s.status().lastRefreshOutcome === 'failure', 10_000);
  const port = daemon.addresses[0]!.port;
  const health = daemon.healthAddresses[0]!.port;
  t.not(health, port, 'a listener of its own');
  const token = await readFile(config.tokenFile, 'utf8');
  // kubelet sends the pod's IP as Host: no Host guard here.
  const get = (path: string, headers: Record<string, string> = {}, method = 'GET') => httpRequest(health, method, path, { host: `10.1.2.3:${health}`, ...headers });

  t.equal((await get('/healthz')).status, 200);
  t.same(JSON.parse((await get('/healthz')).body), { status: 'ok' });

  const notReady = await get('/readyz');
  t.equal(notReady.status, 503, 'one profile has no credentials');
  const body = JSON.parse(notReady.body);
  t.match(body.Message, /other/, 'names the profile');
  t.same(body.profiles.other, { ready: false }, 'no reason');
  t.equal(body.profiles.main.ready, true);
  for (const leak of ['Untrusted', 'secret-subject', 'arn:aws', 'AccessDenied']) t.notOk(notReady.body.includes(leak), `no service text (${leak})`);
  // The main listener keeps the reasons (loopback, for operators).
  t.match(JSON.parse((await httpRequest(port, 'GET', '/readyz')).body).profiles.other.reason, /Untrusted/);

  failing = false;
  await daemon.session('other')!.waitFor((s) => s.status().ready, 15_000);
  t.equal((await get('/readyz')).status, 200, 'ready once every profile is');
  t.equal((await get('/readyz', {}, 'HEAD')).status, 200, 'HEAD works for probes too');

  const metrics = await get('/metrics');
  t.equal(metrics.status, 200);
  t.match(metrics.headers['content-type'], /^text\/plain; version=0\.0\.4/);
  t.match(metrics.body, /rolesanywhere_credentials_valid\{profile="main"\} 1/);
  t.notOk(metrics.body.includes('health-secret'), 'no secrets in metrics');

  // Every credential and IMDS route is refused here, with the right token or not.
  const imdsToken = (await httpRequest(port, 'PUT', '/latest/api/token', { 'x-aws-ec2-metadata-token-ttl-seconds': '60' })).body;
  const attempts: Array<[string, string, Record<string, string>]> = [
    ['GET', '/v1/credentials', { authorization: token }],
    ['GET', '/v1/credentials/main', { authorization: token }],
    ['PUT', '/latest/api/token', { 'x-aws-ec2-metadata-token-ttl-seconds': '60' }],
    ['GET', '/latest/meta-data/iam/security-credentials/', { 'x-aws-ec2-metadata-token': imdsToken }],
    ['GET', '/latest/meta-data/iam/security-credentials/test-role', { 'x-aws-ec2-metadata-token': imdsToken }],
    ['GET', '/', {}],
    ['POST', '/healthz', {}],
    ['GET', '/metrics/../v1/credentials', { authorization: token }],
  ];
  for (const [method, path, headers] of attempts) {
    const res = await get(path, headers, method);
    t.equal(res.status, 404, `${method} ${path}: 404`);
    t.notOk(res.body.includes('ASIA') || res.body.includes('secret'), `${method} ${path}: no credentials`);
  }
  // The same requests still work on the main listener.
  t.equal((await httpRequest(port, 'GET', '/v1/credentials/main', { authorization: token })).status, 200);
});

t.test('health.listen in the config: off loopback without allowNonLoopback, its own port, clear errors', async (t) => {
  const dir = await tempDir('ra-health-');
  const file = join(dir, 'config.yaml');
  const profile = `profiles:\n  main:\n    certificate: tls.crt\n    privateKey: tls.key\n    trustAnchorArn: ${TA_ARN}\n    profileArn: ${PROFILE_ARN}\n    roleArn: ${ROLE_ARN}\n`;
  const load = async (yaml: string, argv: string[] = [], env: Record<string, string> = {}) => {
    await writeFile(file, yaml + profile);
    return loadDaemonConfig({ argv: ['--config', file, ...argv], env: { HOME: dir, ...env }, cwd: dir });
  };
  const problems = async (p: Promise<unknown>) => {
    const err = await rejection(p);
    if (!(err instanceof ConfigError)) throw err;
    return err.problems;
  };

  t.same((await load('health:\n  listen: 0.0.0.0:9912\n')).health.listen, [{ host: '0.0.0.0', port: 9912 }], 'a non-loopback address needs no allowNonLoopback');
  t.same((await load('health:\n  listen: ["0.0.0.0:9912", "[::]:9912"]\n')).health.listen, [{ host: '0.0.0.0', port: 9912 }, { host: '::', port: 9912 }]);
  t.same((await load('', ['--health-listen', '0.0.0.0:9912'])).health.listen, [{ host: '0.0.0.0', port: 9912 }], 'flag');
  t.same((await load('', [], { ROLESANYWHERE_HEALTH_LISTEN: '0.0.0.0:9912,[::]:9913' })).health.listen, [{ host: '0.0.0.0', port: 9912 }, { host: '::', port: 9913 }], 'environment');
  t.equal((await load('')).health.listen, undefined, 'off by default');

  t.match(await problems(load('health:\n  listen: 9912\n')), [{ path: 'health.listen', message: /expected "host:port"/ }]);
  t.match(await problems(load('health:\n  listen: "0.0.0.0"\n')), [{ path: 'health.listen', message: /host:port/ }]);
  t.match(await problems(load('health:\n  lisen: 0.0.0.0:9912\n')), [{ path: 'health.lisen', message: /did you mean listen/ }]);
  t.match(await problems(load('listen: ["127.0.0.1:9911"]\nhealth:\n  listen: 0.0.0.0:9911\n')), [{ path: 'health.listen', message: /overlaps the listen address 127\.0\.0\.1:9911.*its own port/ }]);
  t.match(await problems(load('listen: ["127.0.0.1:9911"]\nhealth:\n  listen: ["0.0.0.0:9912", "127.0.0.1:9911"]\n')), [{ path: 'health.listen[1]', message: /overlaps/ }]);
});
