// Caller authorization end to end: `serve` with IMDS on, a client process of
// another local user (nobody, run with setpriv) gets 403 from the container
// endpoint, the IMDS token PUT and the IMDS credentials by default, and 200
// once its user is listed in `callers` (SIGHUP reload); the daemon's own user
// needs no configuration.
import { execFile } from 'node:child_process';
import { chmod, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { startFakeServer, freshCredentials } from '../helpers/fake-rolesanywhere.js';
import { httpRequest, serveYaml, spawnServe, waitUntil } from '../helpers/daemon.js';
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
