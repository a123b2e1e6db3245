// What `npm run bench:instructions` and `npm run bench:profile` share: the tool each
// needs and wrk, an identity and the emulator, the daemon's and the bare server's
// command lines, and the request each route sends.
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { loadGenerator } from './load.js';
import { CLI, NODE_FLAGS, ROLE_NAME, ROOT, httpRequest, imdsToken, makeCA, makeLeaf, spawnEmulator, tempDir, writeDaemonConfig } from './lib.js';

const run = promisify(execFile);

/**
 * Checks for `tool` (exits 2 saying how to install it) and wrk, then makes a client
 * identity and starts the emulator → { gen, dir, leaf, emu, tokenFile }.
 */
export async function perRequestSetup(script, tool, install, log) {
  try {
    await run(tool, ['--version']);
  } catch {
    log(`${script} needs ${tool} (${install})`);
    process.exit(2);
  }
  const gen = await loadGenerator('wrk', log);
  if (!gen.name.startsWith('wrk')) {
    log(`${script} needs wrk`);
    process.exit(2);
  }
  const dir = tempDir();
  const ca = await makeCA(dir);
  const leaf = await makeLeaf(dir, ca, 'bench-client', 'p256');
  const emu = await spawnEmulator({ caPath: ca.certPath, lifetime: 3600 });
  return { gen, dir, leaf, emu, tokenFile: join(dir, 'token') };
}

/** The daemon's command line on `port` (one profile on the emulator), with `nodeArgs` before the CLI. */
export async function daemonArgv(setup, port, nodeArgs = []) {
  const { dir, leaf, emu, tokenFile } = setup;
  const config = await writeDaemonConfig(dir, { port, profiles: [{ name: 'main', certPath: leaf.certPath, keyPath: leaf.keyPath }], endpoint: emu.url, tokenFile, file: `daemon-${port}.yaml` });
  return [process.execPath, ...NODE_FLAGS, ...nodeArgs, CLI, 'serve', '--config', config];
}

/** The bare server's command line on `port`, sending `bodyBytes` on `route`. */
export function bareArgv(setup, port, route, bodyBytes, nodeArgs = []) {
  return [
    process.execPath, ...nodeArgs, join(ROOT, 'bench', 'bare-server.js'), '--port', String(port), '--token-file', setup.tokenFile, '--role', ROLE_NAME,
    `--${route === 'container' ? 'container' : 'imds'}-bytes`, String(bodyBytes),
  ];
}

/**
 * The request `route` sends to a server on `port` ({ url, headers }), after checking it
 * answers 200 → { target, bodyBytes } (the body's size, for the bare server's).
 */
export async function routeTarget(setup, name, route, port) {
  const token = readFileSync(setup.tokenFile, 'utf8');
  const target =
    route === 'container'
      ? { url: `http://127.0.0.1:${port}/v1/credentials`, headers: { authorization: token } }
      : { url: `http://127.0.0.1:${port}/latest/meta-data/iam/security-credentials/${ROLE_NAME}`, headers: { 'x-aws-ec2-metadata-token': await imdsToken(port) } };
  const sample = await httpRequest(port, 'GET', new URL(target.url).pathname, target.headers);
  if (sample.status !== 200) throw new Error(`${name} answered ${sample.status} before the measurement`);
  return { target, bodyBytes: Buffer.byteLength(sample.body) };
}
