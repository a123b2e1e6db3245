// `serve` and signals outside steady state: a SIGHUP that arrives while the
// daemon is still starting must not kill it (systemd's ExecReload is kill -HUP,
// and a process killed by SIGHUP counts as a clean exit, so it is not restarted).
import { execFileSync } from 'node:child_process';
import { copyFile, open, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { MAX_CONFIG_BYTES } from '../../src/config/load.js';
import { startFakeServer, freshCredentials } from '../helpers/fake-rolesanywhere.js';
import { httpRequest, serveYaml, spawnServe } from '../helpers/daemon.js';
import { CLI, NODE_FLAGS } from '../helpers/cli.js';
import { dirname } from 'node:path';
import { makeCA, makeLeaf, tempDir } from '../helpers/pki.js';

/** Writes `text` into the FIFO once the daemon opens it for reading (blocks until then). */
async function feedFifo(path: string, text: string): Promise<void> {
  const fh = await open(path, 'w');
  try {
    await fh.writeFile(text);
  } finally {
    await fh.close();
  }
}

t.test('SIGHUP during start-up is applied after start, not fatal; SIGTERM then exits 0', async (t) => {
  const dir = await tempDir();
  const ca = await makeCA(dir);
  const leaf = await makeLeaf(dir, ca, 'serve-signals');
  const fake = await startFakeServer(t, [freshCredentials]);
  // The token file is a FIFO: reading it blocks until the test writes, which holds the daemon inside its start-up.
  const tokenFile = join(dir, 'token');
  execFileSync('mkfifo', ['-m', '600', tokenFile]);
  const token = 'serve-signals-token-0123456789';
  const cfg = join(dir, 'daemon.yaml');
  await writeFile(
    cfg,
    serveYaml({ tokenFile, leaf, endpoint: fake.url }),

  );
  const d = spawnServe(t, ['--config', cfg]);

  // open() for writing returns once the daemon has opened the token file: it is starting.
  const fh = await open(tokenFile, 'w');
  d.child.kill('SIGHUP');
  await fh.writeFile(token).catch(() => undefined);
  await fh.close().catch(() => undefined);

  const port = await d.port().catch(async () => {
    const exit = await d.exited;
    t.fail(`serve died during start-up: ${JSON.stringify(exit)}`);
    return 0;
  });
  if (!port) return;
  // The SIGHUP is honoured once started: the reload reads the token file again.
  await feedFifo(tokenFile, token);
  await d.waitForOutput(/configuration reloaded/);
  t.equal((await httpRequest(port, 'GET', '/healthz')).status, 200, 'serving');

  d.child.kill('SIGTERM');
  const exit = await d.exited;
  t.same(exit, { code: 0, signal: null }, 'exit 0 on SIGTERM');
});

t.test('SIGHUP while the config is still being read (before anything slow) is held, not fatal', async (t) => {
  const dir = await tempDir();
  const ca = await makeCA(dir);
  const leaf = await makeLeaf(dir, ca, 'serve-signals-early');
  const fake = await startFakeServer(t, [freshCredentials]);
  const config = serveYaml({ tokenFile: join(dir, 'token'), leaf, endpoint: fake.url });
  // The config file is a FIFO: serve blocks reading it, before its own reload handler exists.
  const cfg = join(dir, 'daemon.yaml');
  execFileSync('mkfifo', ['-m', '600', cfg]);
  const d = spawnServe(t, ['--config', cfg]);
  const fh = await open(cfg, 'w');
  d.child.kill('SIGHUP');
  await fh.writeFile(config).catch(() => undefined);
  await fh.close().catch(() => undefined);
  const port = await d.port().catch(async () => {
    t.fail(`serve died while reading its config: ${JSON.stringify(await d.exited)}`);
    return 0;
  });
  if (!port) return;
  await feedFifo(cfg, config); // the held SIGHUP reloads: it reads the config again
  await d.waitForOutput(/configuration reloaded/);
  t.equal((await httpRequest(port, 'GET', '/healthz')).status, 200, 'serving');
  d.child.kill('SIGTERM');
  t.same(await d.exited, { code: 0, signal: null }, 'exit 0 on SIGTERM');
});

t.test('SIGHUP while the bundle compiles main.js (the first tens of ms) is held, not fatal', async (t) => {
  const dir = await tempDir();
  const ca = await makeCA(dir);
  const leaf = await makeLeaf(dir, ca, 'serve-signals-entry');
  const fake = await startFakeServer(t, [freshCredentials]);
  const cfg = join(dir, 'daemon.yaml');
  await writeFile(cfg, serveYaml({ tokenFile: join(dir, 'token'), leaf, endpoint: fake.url }));
  // A copy of dist/bundle/ whose main.js stops where the real one would be compiling:
  // it blocks reading a FIFO, then loads the real main.js. The entry (cli.js) is the real one.
  const bundle = join(dir, 'bundle');
  const from = dirname(CLI);
  execFileSync('mkdir', [bundle]);
  for (const f of ['cli.js', 'pkcs11-worker.js', 'package.json']) await copyFile(join(from, f), join(bundle, f));
  await copyFile(join(from, 'main.js'), join(bundle, 'main-real.js'));
  const gate = join(dir, 'gate');
  execFileSync('mkfifo', ['-m', '600', gate]);
  await writeFile(
    join(bundle, 'main.js'),
    `const fs = require('node:fs');\nfs.writeSync(2, 'main.js: loading\\n');\nfs.readFileSync(${JSON.stringify(gate)});\nrequire('./main-real.js');\n`,
  );
  // Without tap's NODE_OPTIONS (its --import installs signal-exit, whose SIGHUP handler would hide the default action).
  const d = spawnServe(t, ['--config', cfg], {}, ['/usr/bin/env', '-u', 'NODE_OPTIONS', process.execPath, ...NODE_FLAGS, join(bundle, 'cli.js')]);
  await d.waitForOutput(/main\.js: loading/);
  d.child.kill('SIGHUP');
  // Opening the FIFO for writing waits for its reader: not if the SIGHUP killed it.
  await Promise.race([feedFifo(gate, ''), d.exited]);
  const port = await d.port().catch(async () => {
    t.fail(`serve died while main.js was loading: ${JSON.stringify(await d.exited)}`);
    return 0;
  });
  if (!port) return;
  await d.waitForOutput(/configuration reloaded/);
  t.pass('the held SIGHUP was applied as a reload once started');
  t.equal((await httpRequest(port, 'GET', '/healthz')).status, 200, 'serving');
  d.child.kill('SIGTERM');
  t.same(await d.exited, { code: 0, signal: null }, 'exit 0 on SIGTERM');
});

t.test('SIGHUP with an oversize config (or /dev/zero) keeps the running configuration', async (t) => {
  const dir = await tempDir();
  const ca = await makeCA(dir);
  const leaf = await makeLeaf(dir, ca, 'serve-oversize');
  const fake = await startFakeServer(t, [freshCredentials]);
  const tokenFile = join(dir, 'token');
  const token = 'serve-oversize-token-0123456789';
  await writeFile(tokenFile, token, { mode: 0o600 });
  const cfg = join(dir, 'daemon.yaml');
  const yaml = serveYaml({ tokenFile, leaf, endpoint: fake.url });
  await writeFile(cfg, yaml);
  const d = spawnServe(t, ['--config', cfg]);
  const port = await d.port();

  // The same config padded past the cap with a comment: valid YAML, refused from its size.
  await writeFile(cfg, yaml + '\n#' + 'x'.repeat(MAX_CONFIG_BYTES) + '\n');
  d.child.kill('SIGHUP');
  await d.waitForOutput(/is \d+ bytes, more than the 1048576 bytes a config file can be/);
  t.equal((await httpRequest(port, 'GET', '/v1/credentials', { authorization: token })).status, 200, 'still serving after the refused reload');

  // The config path now a device with no size: refused once past the cap, not read forever.
  await rm(cfg);
  await symlink('/dev/zero', cfg);
  d.child.kill('SIGHUP');
  await d.waitForOutput(/larger than the 1048576 bytes a config file can be/);
  t.equal((await httpRequest(port, 'GET', '/v1/credentials', { authorization: token })).status, 200, 'still serving after /dev/zero');

  d.child.kill('SIGTERM');
  t.same(await d.exited, { code: 0, signal: null }, 'exit 0 on SIGTERM');
});
