// Caller authorization end to end: `serve` with IMDS on, a client process of
// another local user (nobody, run with setpriv) gets 403 from the container
// endpoint, the IMDS token PUT and the IMDS credentials by default, and 200
// once its user is listed in `callers` (SIGHUP reload); the daemon's own user
// needs no configuration.
import { execFile, spawn } from 'node:child_process';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { startFakeServer, freshCredentials } from '../helpers/fake-rolesanywhere.js';
import { CLI, NODE_FLAGS } from '../helpers/cli.js';
import { httpRequest, serveYaml, spawnServe, waitUntil } from '../helpers/daemon.js';
import { DEFAULT_ARNS } from '../helpers/emulator.js';
import { makeNetns } from '../helpers/netns.js';
import { makeCA, makeLeaf, tempDir } from '../helpers/pki.js';
import { otherUserRuntime } from '../helpers/cli.js';

const run = promisify(execFile);

/** A serve config for one profile `main`, with IMDS on and extra top-level and profile lines. */
function configYaml(dir: string, leaf: { certPath: string; keyPath: string }, endpoint: string, top: string, profile = ''): string {
  return serveYaml({ tokenFile: join(dir, 'token'), leaf, endpoint, top: `imds: { enabled: true }\n${top}`, profile });
}
const isRoot = process.getuid?.() === 0;

/**
 * Asks the container endpoint and IMDS as `nobody`; returns the three statuses and the bodies.
 * When nobody gets no IMDS token of its own, it tries `imdsToken` (one another user obtained).
 */
async function asNobody(node: string, port: number, token: string, imdsToken = 'none'): Promise<{ container: number; imdsToken: number; imds: number; bodies: string[] }> {
  const script = `
    const http = require('http');
    const ask = (method, path, headers) => new Promise((res) => {
      const req = http.request({ host: '127.0.0.1', port: ${port}, method, path, headers: { host: '127.0.0.1:${port}', ...headers } }, (r) => {
        let b = ''; r.setEncoding('utf8'); r.on('data', (d) => (b += d)); r.on('end', () => res({ status: r.statusCode, body: b }));
      });
      req.on('error', (e) => res({ status: 0, body: String(e) }));
      req.end();
    });
    (async () => {
      const c = await ask('GET', '/v1/credentials', { authorization: process.env.TOKEN });
      const tk = await ask('PUT', '/latest/api/token', { 'x-aws-ec2-metadata-token-ttl-seconds': '60' });
      const role = 'test-role';
      const i = await ask('GET', '/latest/meta-data/iam/security-credentials/' + role, { 'x-aws-ec2-metadata-token': tk.status === 200 ? tk.body : process.env.IMDS_TOKEN });
      process.stdout.write(JSON.stringify({ container: c.status, imdsToken: tk.status, imds: i.status, bodies: [c.body, tk.status === 200 ? '(token)' : tk.body, i.status === 200 ? '(credentials)' : i.body] }));
    })();
  `;
  const { stdout } = await run('setpriv', ['--reuid=nobody', '--regid=nogroup', '--clear-groups', node, '-e', script], { env: { TOKEN: token, IMDS_TOKEN: imdsToken } });
  return JSON.parse(stdout) as { container: number; imdsToken: number; imds: number; bodies: string[] };
}

t.test('another local user is refused by both routes by default, and served once listed', { skip: isRoot ? false : 'needs root to run a client as another user' }, async (t) => {
  const dir = await tempDir();
  await chmod(dir, 0o755);
  const ca = await makeCA(dir);
  const leaf = await makeLeaf(dir, ca, 'serve-callers');
  const fake = await startFakeServer(t, [freshCredentials]);
  const cfg = join(dir, 'daemon.yaml');
  const yaml = (callers: string) => configYaml(dir, leaf, fake.url, callers);
  await writeFile(cfg, yaml(''));
  const d = spawnServe(t, ['--config', cfg]);
  const port = await d.port();
  const token = await readFile(join(dir, 'token'), 'utf8');
  const rt = await otherUserRuntime();
  if ('skip' in rt) return t.skip(rt.skip);
  await waitUntil('ready', async () => (await httpRequest(port, 'GET', '/readyz')).status === 200);

  // The daemon's own user: no configuration needed.
  t.equal((await httpRequest(port, 'GET', '/v1/credentials', { authorization: token })).status, 200, 'same user: container endpoint 200');
  const own = await httpRequest(port, 'PUT', '/latest/api/token', { 'x-aws-ec2-metadata-token-ttl-seconds': '60' });
  t.equal(own.status, 200, 'same user: IMDS token 200');
  t.equal((await httpRequest(port, 'GET', '/latest/meta-data/iam/security-credentials/test-role', { 'x-aws-ec2-metadata-token': own.body })).status, 200, 'same user: IMDS credentials 200');

  const nobodyUid = Number((await run('id', ['-u', 'nobody'])).stdout.trim());
  const refused = await asNobody(rt.node, port, token, own.body);
  t.equal(refused.container, 403, 'nobody: container endpoint 403 (even with the token)');
  t.equal(refused.imdsToken, 403, 'nobody: IMDS token PUT 403');
  t.equal(refused.imds, 403, "nobody: IMDS credentials 403 (even with the daemon user's IMDS token)");
  for (const b of refused.bodies) {
    t.match(JSON.parse(b).Message, new RegExp(`uid ${nobodyUid} \\(nobody\\).*callers.*users`), 'the refusal names the uid and the setting');
  }
  const metrics = (await httpRequest(port, 'GET', '/metrics')).body;
  t.match(metrics, new RegExp(`rolesanywhere_caller_refusals_total\\{uid="${nobodyUid}"\\} 3`), 'refusals counted by uid');

  // List nobody; SIGHUP reloads.
  await writeFile(cfg, yaml('callers: { users: [nobody, root] }'));
  d.child.kill('SIGHUP');
  await d.waitForOutput(/configuration reloaded/);
  const allowed = await asNobody(rt.node, port, token);
  t.same([allowed.container, allowed.imdsToken, allowed.imds], [200, 200, 200], 'nobody listed: 200 from both routes');

  // A group works too (nogroup is nobody's primary group); root no longer listed → refused.
  await writeFile(cfg, yaml('callers: { groups: [nogroup] }'));
  d.child.kill('SIGHUP');
  await d.waitForOutput(/configuration reloaded[\s\S]*configuration reloaded/);
  t.same(Object.values(await asNobody(rt.node, port, token)).slice(0, 3), [200, 200, 200], 'nobody via its primary group');
  const root = await httpRequest(port, 'GET', '/v1/credentials', { authorization: token });
  t.equal(root.status, 403, 'the daemon user is not implicitly allowed once callers is set');
  t.match(JSON.parse(root.body).Message, /uid 0 \(root\)/);
});

t.test('an unknown user in callers is a start-up error naming the setting', async (t) => {
  const dir = await tempDir();
  const ca = await makeCA(dir);
  const leaf = await makeLeaf(dir, ca, 'serve-callers-bad');
  const cfg = join(dir, 'daemon.yaml');
  await writeFile(cfg, configYaml(dir, leaf, 'http://127.0.0.1:1', 'callers: { users: [1000] }', '    callers: { users: [no-such-user-here], groups: [users, "x y"] }'));
;
  const d = spawnServe(t, ['--config', cfg]);
  const exit = await d.exited;
  t.equal(exit.code, 1);
  t.match(d.stderr(), /profiles\.main\.callers\.groups\[1\]: expected a group name or numeric gid/, 'validated with the config');
  await writeFile(cfg, (await readFile(cfg, 'utf8')).replace(', "x y"', ''));
  const d2 = spawnServe(t, ['--config', cfg]);
  t.equal((await d2.exited).code, 1);
  t.match(d2.stderr(), /profiles\.main\.callers.*no local user "no-such-user-here" in \/etc\/passwd/, 'an unknown name stops the start with the fix');
});

// ---- #21's attacks, reproduced against `serve` ------------------------------------------------

interface Ask {
  host: string;
  port: number;
  method: string;
  path: string;
  headers?: Record<string, string>;
}

/** Runs HTTP requests in order as `user` (setpriv; 'nobody' or a numeric uid) with `node` (otherUserRuntime's), optionally in network namespace `ns`; statuses and Messages. */
async function asUser(node: string, user: string | number, asks: Ask[], ns?: string): Promise<Array<{ status: number; message: string; body: string }>> {
  const script = `
    const http = require('http');
    const asks = JSON.parse(process.env.ASKS);
    (async () => {
      const out = [];
      for (const a of asks) {
        out.push(await new Promise((res) => {
          const req = http.request({ host: a.host, port: a.port, method: a.method, path: a.path, headers: { host: a.host + ':' + a.port, ...a.headers }, agent: false }, (r) => {
            let b = ''; r.setEncoding('utf8'); r.on('data', (d) => (b += d));
            r.on('end', () => { let m = ''; try { m = JSON.parse(b).Message || ''; } catch {} res({ status: r.statusCode, message: r.statusCode === 200 ? '' : m || b.slice(0, 300), body: r.statusCode === 200 && a.path.startsWith('/v1/') ? '' : b.slice(0, 20000) }); });
          });
          req.on('error', (e) => res({ status: 0, message: String(e) }));
          req.end();
        }));
      }
      process.stdout.write(JSON.stringify(out));
    })();
  `;
  const id = user === 'nobody' ? ['--reuid=nobody', '--regid=nogroup'] : [`--reuid=${user}`, `--regid=${user}`];
  const cmd = [...(ns ? ['ip', 'netns', 'exec', ns] : []), 'setpriv', ...id, '--clear-groups', node, '-e', script];
  const { stdout } = await run(cmd[0]!, cmd.slice(1), { env: { ASKS: JSON.stringify(asks) } });
  return JSON.parse(stdout) as Array<{ status: number; message: string; body: string }>;
}

const ALICE = 4101; // a local user listed in callers (a uid without a passwd entry is a user all the same)

t.test(
  "#21 item 1: a non-loopback listener neither opens IMDS to other local users nor switches off the Host guard on loopback",
  { skip: isRoot ? false : 'needs root for a network namespace and clients of other users' },
  async (t) => {
    const made = await makeNetns(t, 'ra-callers');
    if ('skip' in made) return t.skip(made.skip);
    const { ns } = made;
    const rt = await otherUserRuntime();
    if ('skip' in rt) return t.skip(rt.skip);
    // This host (the namespace) has a non-loopback address of its own (on lo: no dummy/veth module needed).
    const HOST_IP = '10.231.0.1';
    await run('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    await run('ip', ['-n', ns, 'addr', 'add', `${HOST_IP}/32`, 'dev', 'lo']);

    const dir = await tempDir();
    await chmod(dir, 0o755);
    const ca = await makeCA(dir, 'Callers Netns CA');
    const leaf = await makeLeaf(dir, ca, 'callers-netns');
    const emulator = spawn('ip', ['netns', 'exec', ns, process.execPath, ...NODE_FLAGS, CLI, 'emulator', '--trust-anchor-ca', ca.certPath, '--quiet'], { stdio: ['ignore', 'pipe', 'inherit'] });
    t.teardown(() => emulator.kill('SIGKILL'));
    let emulatorOut = '';
    emulator.stdout!.setEncoding('utf8').on('data', (c: string) => (emulatorOut += c));
    await waitUntil('the emulator', () => /emulator listening on http/.test(emulatorOut));
    const endpoint = /emulator listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(emulatorOut)![1]!;
    const cfg = join(dir, 'daemon.yaml');
    const yaml = (extra: string) => `listen: ["127.0.0.1:9911", "0.0.0.0:9912"]
allowNonLoopback: true
tokenFile: ${join(dir, 'token')}
imds: { enabled: true${extra} }
callers: { users: [${ALICE}] }
profiles:
  main:
    certificate: ${leaf.certPath}
    privateKey: ${leaf.keyPath}
    trustAnchorArn: ${DEFAULT_ARNS.trustAnchorArn}
    profileArn: ${DEFAULT_ARNS.profileArn}
    roleArn: ${DEFAULT_ARNS.roleArn}
    endpoint: ${endpoint}
`;
    await writeFile(cfg, yaml(''));
    const d = spawnServe(t, ['--config', cfg], {}, ['ip', 'netns', 'exec', ns, process.execPath, ...NODE_FLAGS, CLI]);
    await d.waitForOutput(/serving credentials/);
    t.match(d.output(), /non-loopback address: anyone who can reach it and holds the endpoint token gets AWS credentials from the container endpoint \(local users are still checked against callers\); IMDS is not served there/, 'the warning says what is served there (IMDS needs no token)');
    t.notMatch(d.output(), /any local process over IMDS/);
    const token = await readFile(join(dir, 'token'), 'utf8');
    await waitUntil('ready', async () => (await asUser(rt.node, ALICE, [{ host: '127.0.0.1', port: 9911, method: 'GET', path: '/v1/credentials', headers: { authorization: token } }], ns))[0]!.status === 200);

    const imdsAt = (host: string, port: number): Ask[] => [
      { host, port, method: 'PUT', path: '/latest/api/token', headers: { 'x-aws-ec2-metadata-token-ttl-seconds': '60' } },
    ];
    const containerAt = (host: string, port: number): Ask => ({ host, port, method: 'GET', path: '/v1/credentials', headers: { authorization: token } });
    const nobodyUid = Number((await run('id', ['-u', 'nobody'])).stdout.trim());

    // mallory (nobody, not in callers), at this host's own non-loopback address.
    const [imdsThere, containerThere, imdsLoopback] = await asUser(rt.node, 'nobody', [...imdsAt(HOST_IP, 9912), containerAt(HOST_IP, 9912), ...imdsAt('127.0.0.1', 9911)], ns);
    t.equal(imdsThere!.status, 403, 'mallory: no IMDS token at the non-loopback address');
    t.match(imdsThere!.message, /IMDS is served only on loopback addresses/);
    t.equal(containerThere!.status, 403, 'mallory, with the endpoint token, at the non-loopback address: refused as a local user');
    t.match(containerThere!.message, new RegExp(`uid ${nobodyUid} \\(nobody\\).*callers`));
    t.equal(imdsLoopback!.status, 403, 'mallory on loopback: refused (as before)');

    // alice: served on loopback and, with the token, at the non-loopback address; no IMDS there.
    const alice = await asUser(rt.node, ALICE, [containerAt(HOST_IP, 9912), ...imdsAt('127.0.0.1', 9911), ...imdsAt(HOST_IP, 9912)], ns);
    t.same(alice.map((r) => r.status), [200, 200, 403], 'alice: container endpoint at the non-loopback address, IMDS on loopback only');

    // DNS rebinding against alice's browser: Host evil.example on the loopback listener, a non-loopback listener beside it.
    const rebound = await asUser(rt.node, ALICE, [{ ...imdsAt('127.0.0.1', 9911)[0]!, headers: { host: 'evil.example', 'x-aws-ec2-metadata-token-ttl-seconds': '60' } }, { ...containerAt('127.0.0.1', 9911), headers: { host: 'evil.example', authorization: token } }], ns);
    t.same(rebound.map((r) => r.status), [403, 403], 'Host: evil.example on 127.0.0.1 is refused');
    t.match(rebound[0]!.message, /Host header is not a loopback address/);

    // Even with IMDS opened on non-loopback addresses on purpose, a local user at this host's address is checked.
    await writeFile(cfg, yaml(', onNonLoopbackUnsafe: true'));
    d.child.kill('SIGHUP');
    await d.waitForOutput(/configuration reloaded/);
    const [malloryThere] = await asUser(rt.node, 'nobody', imdsAt(HOST_IP, 9912), ns);
    t.equal(malloryThere!.status, 403, 'mallory at the non-loopback address: refused by callers');
    t.match(malloryThere!.message, new RegExp(`uid ${nobodyUid} \\(nobody\\)`));
    const [aliceToken] = await asUser(rt.node, ALICE, imdsAt(HOST_IP, 9912), ns);
    t.equal(aliceToken!.status, 200, 'alice gets an IMDS token there');
    t.match(d.output(), /refused a local caller that callers does not allow/, 'the refusals are logged');
  },
);

t.test(
  '#21 item 2: with /proc/<pid>/net hidden by a mount, callers fails closed: no start with callers; without, IMDS is refused to every local user',
  { skip: isRoot ? false : 'needs root for a mount namespace and a client of another user' },
  async (t) => {
    const dir = await tempDir();
    await chmod(dir, 0o755);
    const ca = await makeCA(dir);
    const leaf = await makeLeaf(dir, ca, 'serve-callers-mnt');
    const rt = await otherUserRuntime();
    if ('skip' in rt) return t.skip(rt.skip);
    const fake = await startFakeServer(t, [freshCredentials]);
    const empty = join(dir, 'empty');
    await mkdir(empty);
    const cfg = join(dir, 'daemon.yaml');
    // The daemon in a mount namespace of its own, an empty directory mounted over its /proc/<pid>/net ($$ is the pid exec keeps).
    const hidden = ['unshare', '--mount', '--propagation', 'private', 'sh', '-c', `mount --bind ${empty} /proc/$$/net && exec "$0" "$@"`, process.execPath, ...NODE_FLAGS, CLI] as [string, ...string[]];

    await writeFile(cfg, configYaml(dir, leaf, fake.url, `callers: { users: [${ALICE}] }`));
    const refused = spawnServe(t, ['--config', cfg], {}, hidden);
    t.equal((await refused.exited).code, 1, 'callers configured: the daemon does not start');
    t.match(refused.stderr(), /cannot identify local callers: \/proc\/self\/net\/tcp does not exist .*callers setting \(profiles main\) cannot be enforced/);

    await writeFile(cfg, configYaml(dir, leaf, fake.url, ''));
    const d = spawnServe(t, ['--config', cfg], {}, hidden);
    const port = await d.port();
    t.match(d.output(), /local users cannot be told apart, so the container endpoint is served to any local process holding the endpoint token, and IMDS \(which needs no secret\) is refused/);
    await waitUntil('ready', async () => (await httpRequest(port, 'GET', '/readyz')).status === 200);
    const token = await readFile(join(dir, 'token'), 'utf8');
    t.equal((await httpRequest(port, 'GET', '/v1/credentials', { authorization: token })).status, 200, 'the container endpoint, with its token');
    const [imds] = await asUser(rt.node, 'nobody', [{ host: '127.0.0.1', port, method: 'PUT', path: '/latest/api/token', headers: { 'x-aws-ec2-metadata-token-ttl-seconds': '60' } }]);
    t.equal(imds!.status, 403, 'mallory gets no IMDS token');
    t.match(imds!.message, /cannot tell which local user is calling: \/proc\/self\/net\/tcp does not exist/);
  },
);

t.test(
  "#21 item 8 and #24 item 5: a refused user gets /readyz's status but not its reasons, no /metrics, and is logged",
  { skip: isRoot ? false : 'needs root to run a client as another user' },
  async (t) => {
    const dir = await tempDir();
    await chmod(dir, 0o755);
    const ca = await makeCA(dir);
    const leaf = await makeLeaf(dir, ca, 'serve-callers-ready');
    const rt = await otherUserRuntime();
    if ('skip' in rt) return t.skip(rt.skip);
    const cfg = join(dir, 'daemon.yaml');
    // Nothing listens on port 1: the profile is never ready, and /readyz says why (the endpoint, the trust anchor ARN).
    await writeFile(cfg, configYaml(dir, leaf, 'http://127.0.0.1:1', 'callers: { users: [root] }'));
    const d = spawnServe(t, ['--config', cfg]);
    const port = await d.port();
    await waitUntil('a failed refresh', async () => /"reason"/.test((await httpRequest(port, 'GET', '/readyz')).body));
    const own = await httpRequest(port, 'GET', '/readyz');
    t.equal(own.status, 503);
    t.match(JSON.parse(own.body).profiles.main.reason, /./, 'an allowed user reads why');
    t.equal((await httpRequest(port, 'GET', '/metrics')).status, 200, 'and /metrics');

    const [ready, metrics, container] = await asUser(rt.node, 'nobody', [
      { host: '127.0.0.1', port, method: 'GET', path: '/readyz' },
      { host: '127.0.0.1', port, method: 'GET', path: '/metrics' },
      { host: '127.0.0.1', port, method: 'GET', path: '/v1/credentials' },
    ]);
    t.equal(ready!.status, 503, 'mallory: the probe status is kept');
    t.same(JSON.parse(ready!.body).profiles, { main: { ready: false } }, 'but not why (no ARNs, no certificate subject)');
    t.equal(metrics!.status, 403, 'mallory: no /metrics');
    t.match(metrics!.message, /health\.listen/);
    t.equal(container!.status, 401, 'no token: refused before the caller check');
    await asUser(rt.node, 'nobody', [{ host: '127.0.0.1', port, method: 'PUT', path: '/latest/api/token', headers: { 'x-aws-ec2-metadata-token-ttl-seconds': '60' } }]);
    const line = (await d.waitForOutput(/.*refused a local caller that callers does not allow.*/))[0];
    t.match(line, /"uid":\s*\d+/);
    t.match(line, /"user":\s*"nobody"/, 'the user name');
    t.match(line, /"route":\s*"IMDS"/, 'the route');
  },
);

t.test('#21 item 7: connections are limited per local user and overall; the rest are closed at once and counted', { skip: isRoot ? false : 'needs root to run a client as another user' }, async (t) => {
  const dir = await tempDir();
  const ca = await makeCA(dir);
  const leaf = await makeLeaf(dir, ca, 'serve-callers-limits');
  const rt = await otherUserRuntime();
  if ('skip' in rt) return t.skip(rt.skip);
  const cfg = join(dir, 'daemon.yaml');
  await writeFile(cfg, configYaml(dir, leaf, 'http://127.0.0.1:1', 'connections: { max: 100, maxPerUser: 5 }\ncallers: { users: [root, nobody] }'));
  const d = spawnServe(t, ['--config', cfg]);
  const port = await d.port();
  const sockets: Socket[] = [];
  const open = (n: number) => {
    for (let i = 0; i < n; i++) {
      const s = connect({ host: '127.0.0.1', port });
      s.on('error', () => undefined);
      t.teardown(() => s.destroy());
      sockets.push(s);
    }
  };
  const closed = () => sockets.filter((s) => s.closed).length;
  // One user holding idle connections (15,000 of them took the daemon from 79 to 308 MB).
  open(8);
  await waitUntil('3 connections closed', () => closed() >= 3, 4000, 10);
  t.equal(closed(), 3, 'this user: 5 stay open, the next 3 are closed');
  // Asked by another user (this one has no room left).
  const metricsAs = async () => (await asUser(rt.node, 'nobody', [{ host: '127.0.0.1', port, method: 'GET', path: '/metrics' }]))[0]!;
  const asked = await metricsAs();
  t.equal(asked.status, 200, 'another user is served meanwhile');
  const metrics = asked.body;
  t.match(metrics, /rolesanywhere_connections_refused_total\{reason="max_per_user"\} 3/);
  t.match(metrics, /rolesanywhere_connections_open 6/, 'the 5 held and the one asking');
  t.match(d.output(), /closed a new connection: uid \d+ has connections.maxPerUser \(5\) connections open/);
  for (const s of sockets) s.destroy();
  sockets.length = 0;

  await writeFile(cfg, configYaml(dir, leaf, 'http://127.0.0.1:1', 'connections: { max: 4, maxPerUser: 100 }\ncallers: { users: [root, nobody] }'));
  d.child.kill('SIGHUP');
  await d.waitForOutput(/configuration reloaded/);
  await waitUntil('the old connections gone', async () => /rolesanywhere_connections_open 1\n/.test((await metricsAs()).body));
  open(6);
  await waitUntil('2 connections closed', () => closed() >= 2, 4000, 10);
  t.equal(closed(), 2, 'overall: 4 stay open, the next 2 are closed');
  for (const s of sockets) s.destroy();
  await waitUntil('room again', async () => (await metricsAs()).body.includes('reason="max_connections"} 2'));
});
