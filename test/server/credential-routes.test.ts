// The credential routes' check pipeline (src/server/credential-routes.ts): extra
// authenticate/authorize steps plug in per route and listener, may be asynchronous,
// may pick the profile, and every refusal is answered in the endpoint's shape and
// counted; requests the routes do not own reach fastify.
import { Agent, request } from 'node:http';
import { connect, type Socket } from 'node:net';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import t, { type Test } from 'tap';
import type { CredentialSession } from '../../src/credentials/session.js';
import type { AwsCredentials } from '../../src/rolesanywhere/types.js';
import { buildApp } from '../../src/server/app.js';
import { endpointTokenCheck, type CredentialSurface } from '../../src/server/credential-routes.js';
import { isThenable, perConnection, type Check } from '../../src/server/checks.js';
import { closeAll, listenAll } from '../../src/server/listen.js';
import { RequestMetrics } from '../../src/server/metrics.js';
import type { ServedProfile, ServerState } from '../../src/server/state.js';
import { TokenVerifier } from '../../src/server/token.js';
import { httpRequest } from '../helpers/daemon.js';

const TOKEN = 'credential-routes-test-token-0123456789';

function served(name: string, ok = true): ServedProfile {
  const credentials: AwsCredentials = {
    accessKeyId: `ASIA${name.toUpperCase()}`,
    secretAccessKey: `secret-${name}`,
    sessionToken: `token-${name}`,
    expiration: new Date(Date.now() + 3600_000),
    roleArn: `arn:aws:iam::123456789012:role/${name}-role`,
  };
  const session = {
    lookup: () => (ok ? { ok: true, credentials, lastUpdated: new Date() } : { ok: false, message: `no credentials for ${name}` }),
  } as unknown as CredentialSession;
  return { session, roleArn: credentials.roleArn, region: 'eu-west-1' };
}

async function serve(t: Test, surface: (defaults: CredentialSurface) => CredentialSurface) {
  const state: ServerState = {
    profiles: new Map([
      ['alpha', served('alpha')],
      ['beta', served('beta')],
      ['down', served('down', false)],
    ]),
    defaultProfile: 'alpha',
    imds: { enabled: true, profile: 'alpha', allowV1: true },
    token: new TokenVerifier(TOKEN),
  };
  const metrics = new RequestMetrics();
  const app = buildApp({ getState: () => state, metrics });
  const bound = await listenAll(app, [{ host: '127.0.0.1', port: 0 }], surface(app.defaultSurface));
  t.teardown(() => closeAll(bound, 0));
  return { port: bound[0]!.port, metrics };
}

const count = (m: RequestMetrics, route: string, status: number) => m.entries().find((e) => e.route === route && e.status === status)?.count ?? 0;

t.test('authorize steps run after the token and the profile, and can refuse (sync and async)', async (t) => {
  const seen: Array<{ route: string; profile: string | undefined }> = [];
  const onlyAlpha: Check = (_req, ctx) => {
    seen.push({ route: ctx.route, profile: ctx.profile });
    return ctx.profile === 'alpha' ? undefined : { status: 403, code: 'AccessDenied', message: `caller may not have ${ctx.profile}` };
  };
  const slowPass: Check = () => new Promise((resolve) => setTimeout(() => resolve(undefined), 5));
  const { port, metrics } = await serve(t, (d) => ({
    container: { authenticate: d.container!.authenticate, authorize: [slowPass, onlyAlpha] },
    imds: { authenticate: d.imds!.authenticate, authorize: [onlyAlpha, slowPass] },
  }));

  const ok = await httpRequest(port, 'GET', '/v1/credentials', { authorization: TOKEN });
  t.equal(ok.status, 200);
  t.equal(JSON.parse(ok.body).AccessKeyId, 'ASIAALPHA');
  const beta = await httpRequest(port, 'GET', '/v1/credentials/beta', { authorization: TOKEN });
  t.equal(beta.status, 403);
  t.same(JSON.parse(beta.body), { Code: 'AccessDenied', Message: 'caller may not have beta' });
  t.match(beta.headers['content-type'], /^application\/json/);

  seen.length = 0;
  const noToken = await httpRequest(port, 'GET', '/v1/credentials/beta');
  t.equal(noToken.status, 401, 'the endpoint token is checked first');
  t.same(seen, [], 'authorize steps never see an unauthenticated request');
  t.equal((await httpRequest(port, 'GET', '/v1/credentials/nope', { authorization: TOKEN })).status, 404, 'unknown profile: 404 before authorize');
  t.same(seen, []);

  const imds = await httpRequest(port, 'GET', '/latest/meta-data/iam/security-credentials/alpha-role');
  t.equal(imds.status, 200, 'IMDS (v1 allowed here) passes both steps');
  t.equal(JSON.parse(imds.body).Code, 'Success');
  t.same(seen, [{ route: 'imds', profile: 'alpha' }]);

  t.equal(count(metrics, '/v1/credentials', 200), 1);
  t.equal(count(metrics, '/v1/credentials/:profile', 403), 1);
  t.equal(count(metrics, '/v1/credentials/:profile', 401), 1);
  t.equal(count(metrics, '/v1/credentials/:profile', 404), 1);
  t.equal(count(metrics, '/latest/*', 200), 1);
});

t.test('an authenticate step can pick the profile (a binding) and replace the endpoint token', async (t) => {
  // Like a service-account token: the Authorization header names a binding.
  const binding: Check = async (req, ctx) => {
    await new Promise((r) => setImmediate(r));
    const m = /^binding (\w+)$/.exec(req.headers.authorization ?? '');
    if (!m) return { status: 401, code: 'AccessDenied', message: 'no binding token' };
    ctx.profile = m[1];
    return undefined;
  };
  const { port } = await serve(t, () => ({ container: { authenticate: [binding], authorize: [] } }));
  const beta = await httpRequest(port, 'GET', '/v1/credentials', { authorization: 'binding beta' });
  t.equal(beta.status, 200);
  t.equal(JSON.parse(beta.body).AccessKeyId, 'ASIABETA');
  t.equal((await httpRequest(port, 'GET', '/v1/credentials', { authorization: TOKEN })).status, 401, 'the endpoint token is not accepted here');
  const down = await httpRequest(port, 'GET', '/v1/credentials', { authorization: 'binding down' });
  t.equal(down.status, 503, 'the expiry/availability check still runs');
  t.equal(JSON.parse(down.body).Code, 'CredentialsUnavailable');
  const imds = await httpRequest(port, 'GET', '/latest/meta-data/iam/security-credentials/alpha-role');
  t.equal(imds.status, 404, 'IMDS not in this surface: fastify answers 404');
  t.match(JSON.parse(imds.body), { Code: 'NotFound' });
});

t.test('a failing check answers 500 without detail; the process keeps serving', async (t) => {
  const broken: Check = async () => {
    throw new Error('lookup exploded: /secret/detail');
  };
  const { port } = await serve(t, (d) => ({ container: { authenticate: [endpointTokenCheck], authorize: [broken] }, imds: d.imds }));
  const res = await httpRequest(port, 'GET', '/v1/credentials', { authorization: TOKEN });
  t.equal(res.status, 500);
  t.same(JSON.parse(res.body), { Code: 'InternalError', Message: 'internal error' });
  t.equal((await httpRequest(port, 'GET', '/latest/meta-data/placement/region')).status, 200);
});

t.test('HEAD, query strings, Host guard and requests the routes do not own', async (t) => {
  const { port } = await serve(t, (d) => d);
  const head = await httpRequest(port, 'HEAD', '/v1/credentials?x=1', { authorization: TOKEN });
  t.equal(head.status, 200);
  t.equal(head.body, '', 'HEAD: no body');
  t.ok(Number(head.headers['content-length']) > 50, 'HEAD: the length of the GET body');
  const foreign = await httpRequest(port, 'GET', '/v1/credentials', { authorization: TOKEN, host: 'rebind.example' });
  t.equal(foreign.status, 403);
  t.notOk(foreign.body.includes('ASIA'));
  const post = await httpRequest(port, 'POST', '/v1/credentials', { authorization: TOKEN });
  t.equal(post.status, 404, 'POST: not a credential route');
  t.equal((await httpRequest(port, 'GET', '/v1/credentials/alpha/extra', { authorization: TOKEN })).status, 404);
  t.equal((await httpRequest(port, 'GET', '/v1/credentialsX', { authorization: TOKEN })).status, 404);
  // An absolute-form target is not served credentials by this path.
  const raw = await new Promise<string>((resolve, reject) => {
    const s = connect(port, '127.0.0.1', () => s.end(`GET http://evil.example/v1/credentials HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: ${TOKEN}\r\nConnection: close\r\n\r\n`));
    let out = '';
    s.on('data', (d) => (out += d));
    s.on('end', () => resolve(out));
    s.on('error', reject);
  });
  t.notMatch(raw, /ASIA/, 'absolute-form: no credentials');
});

t.test('perConnection: one lookup per connection, synchronous once known', async (t) => {
  let lookups = 0;
  const uidOf = perConnection(async (socket: Socket) => {
    lookups++;
    await new Promise((r) => setTimeout(r, 2));
    return socket.remotePort;
  });
  const results: Array<'sync' | 'async'> = [];
  const check: Check = (req) => {
    const v = uidOf(req.socket);
    results.push(isThenable(v) ? 'async' : 'sync');
    return isThenable(v) ? v.then((port) => (port ? undefined : { status: 403, code: 'AccessDenied', message: 'no port' })) : undefined;
  };
  const { port } = await serve(t, (d) => ({ container: { authenticate: d.container!.authenticate, authorize: [check] } }));
  // Three requests on one keep-alive connection, then one on a new connection.
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  t.teardown(() => agent.destroy());
  const get = () =>
    new Promise<number>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, path: '/v1/credentials', agent, headers: { authorization: TOKEN } }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      });
      req.on('error', reject);
      req.end();
    });
  t.same([await get(), await get(), await get()], [200, 200, 200]);
  t.equal(lookups, 1, 'one lookup for the connection');
  t.same(results, ['async', 'sync', 'sync'], 'only the first request waits');
  t.equal((await httpRequest(port, 'GET', '/v1/credentials', { authorization: TOKEN })).status, 200);
  t.equal(lookups, 2, 'a new connection is looked up again');
});

t.test('requests are logged at debug only, following level changes (a reload may change the level)', async (t) => {
  const lines: string[] = [];
  const logger = pino({ level: 'info' }, new Writable({ write: (chunk: Buffer, _enc, done) => (lines.push(chunk.toString('utf8')), done()) }));
  const state: ServerState = {
    profiles: new Map([['alpha', served('alpha')]]),
    defaultProfile: 'alpha',
    imds: { enabled: true, profile: 'alpha', allowV1: false },
    token: new TokenVerifier(TOKEN),
  };
  const app = buildApp({ getState: () => state, logger });
  const bound = await listenAll(app, [{ host: '127.0.0.1', port: 0 }]);
  t.teardown(() => closeAll(bound, 0));
  const port = bound[0]!.port;
  const requestLines = () => lines.map((l) => JSON.parse(l) as { msg: string; route?: string; status?: number; ms?: number }).filter((l) => l.msg === 'request');

  t.equal((await httpRequest(port, 'GET', '/v1/credentials', { authorization: TOKEN })).status, 200);
  t.equal(requestLines().length, 0, 'at info: no request lines');
  logger.level = 'debug';
  t.equal((await httpRequest(port, 'GET', '/v1/credentials', { authorization: TOKEN })).status, 200);
  t.equal((await httpRequest(port, 'GET', '/v1/credentials', { authorization: 'wrong-token-wrong-token' })).status, 401);
  const logged = requestLines();
  t.same(logged.map((l) => [l.route, l.status]), [['/v1/credentials', 200], ['/v1/credentials', 401]], 'at debug: each request, with its route and status');
  t.type(logged[0]!.ms, 'number', 'and its duration');
  t.notOk(lines.join('').includes(TOKEN), 'the endpoint token is not logged');
  logger.level = 'warn';
  t.equal((await httpRequest(port, 'GET', '/v1/credentials', { authorization: TOKEN })).status, 200);
  t.equal(requestLines().length, 2, 'back at warn: no more request lines');
});
