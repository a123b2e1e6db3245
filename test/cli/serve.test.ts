// `serve` as a real process: start-up errors, SIGHUP reloads, SIGTERM.
import { createServer } from 'node:net';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { fakeCredentials, PROFILE_ARN, ROLE_ARN, startFakeServer, TA_ARN, freshCredentials } from '../helpers/fake-rolesanywhere.js';
import { httpRequest, spawnServe } from '../helpers/daemon.js';
import { runCli } from '../helpers/cli.js';
import { makeCA, makeLeaf, tempDir } from '../helpers/pki.js';

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

async function refused(port: number): Promise<boolean> {
  try {
    await httpRequest(port, 'GET', '/healthz');
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ECONNREFUSED';
  }
}

async function setup() {
  const dir = await tempDir();
  const ca = await makeCA(dir);
  const leaf = await makeLeaf(dir, ca, 'serve-cli');
  return { dir, leaf };
}

function yaml(o: { endpoint: string; certificate: string; privateKey: string; tokenFile: string; extraProfile?: boolean; port?: number }): string {
  const profile = (name: string) => `  ${name}:
    certificate: ${o.certificate}
    privateKey: ${o.privateKey}
    trustAnchorArn: ${TA_ARN}
    profileArn: ${PROFILE_ARN}
    roleArn: ${ROLE_ARN}
    endpoint: ${o.endpoint}
`;
  return `listen: ["127.0.0.1:${o.port ?? 0}"]
tokenFile: ${o.tokenFile}
imds:
  profile: main
profiles:
${profile('main')}${o.extraProfile ? profile('second') : ''}`;
}

t.test('invalid config → exit 1, every problem listed, nothing listening', async (t) => {
  const { dir } = await setup();
  const port = await freePort();
  const cfg = join(dir, 'bad.yaml');
  await writeFile(cfg, `listen: ["127.0.0.1:${port}"]\nprofiles:\n  main:\n    certificate: /nonexistent.pem\n    roleArn: nope\n`);
  const r = await runCli(['serve', '--config', cfg], { cleanEnv: true, timeoutMs: 20_000 });
  t.equal(r.code, 1);
  t.match(r.stderr, /invalid configuration/);
  t.notMatch(r.stderr, /\n\s+at /, 'no stack trace');
  t.ok(await refused(port), 'nothing listening');
});

t.test('address in use → clear error, exit 1', async (t) => {
  const { dir, leaf } = await setup();
  const blocker = createServer();
  await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise((r) => blocker.close(r)));
  const port = (blocker.address() as { port: number }).port;
  const fake = await startFakeServer(t, [{ status: 201, body: fakeCredentials() }]);
  const cfg = join(dir, 'c.yaml');
  await writeFile(cfg, yaml({ endpoint: fake.url, certificate: leaf.certPath, privateKey: leaf.keyPath, tokenFile: join(dir, 'tok'), port }));
  const r = await runCli(['serve', '--config', cfg], { cleanEnv: true, timeoutMs: 20_000 });
  t.equal(r.code, 1);
  t.match(r.stderr, new RegExp(`cannot listen on 127\\.0\\.0\\.1:${port}: the address is already in use`));
});

t.test('SIGHUP reloads (invalid refused, valid applied); SIGTERM exits 0', async (t) => {
  const { dir, leaf } = await setup();
  const fake = await startFakeServer(t, [freshCredentials]);
  const tokenFile = join(dir, 'run', 'token');
  const cfg = join(dir, 'daemon.yaml');
  const base = { endpoint: fake.url, certificate: leaf.certPath, privateKey: leaf.keyPath, tokenFile };
  await writeFile(cfg, yaml(base));
  const d = spawnServe(t, ['--config', cfg]);
  const port = await d.port();
  t.match(d.stderr(), /export AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=.*run\/token/);
  t.match(d.stderr(), new RegExp(`export AWS_EC2_METADATA_SERVICE_ENDPOINT=http://127\\.0\\.0\\.1:${port}/`));
  const token = await readFile(tokenFile, 'utf8');
  t.notOk(d.output().includes(token), 'token never printed');
  const get = (path: string) => httpRequest(port, 'GET', path, { authorization: token });
  await d.waitForOutput(/"outcome":"success"/);
  t.equal((await get('/v1/credentials')).status, 200);
  t.equal((await get('/v1/credentials/second')).status, 404);

  // Invalid config: refused, old one kept.
  await writeFile(cfg, 'listen: [oops\n');
  d.child.kill('SIGHUP');
  await d.waitForOutput(/new configuration refused/);
  t.equal((await get('/v1/credentials')).status, 200, 'still serving after a bad reload');

  // Valid changed config: applied.
  await writeFile(cfg, yaml({ ...base, extraProfile: true }));
  d.child.kill('SIGHUP');
  await d.waitForOutput(/configuration reloaded/);
  const deadline = Date.now() + 15_000;
  let status = 0;
  while (Date.now() < deadline && (status = (await get('/v1/credentials/second')).status) !== 200) await new Promise((r) => setTimeout(r, 100));
  t.equal(status, 200, 'added profile served');
  t.equal((await get('/v1/credentials/main')).status, 200);

  d.child.kill('SIGTERM');
  const exit = await d.exited;
  t.equal(exit.code, 0, 'exit 0 on SIGTERM');
  t.ok(await refused(port), 'no longer listening');
});
