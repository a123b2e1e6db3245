// What `npm run bench:instructions`, `bench:profile` and `bench:allocations` share: the tool each
// needs and wrk, an identity and the emulator, the daemon's and the bare server's
// command lines, and the request each route sends.
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { loadGenerator } from './load.js';
import { CLI, NODE_FLAGS, ROLE_NAME, ROOT, freePort, httpRequest, imdsToken, makeCA, makeLeaf, readyz, spawnEmulator, spawnTracked, stop, tempDir, waitUntil, writeDaemonConfig } from './lib.js';

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

/** The request `route` sends to a server on `port` with the endpoint `token` → { url, headers } (IMDS: with a fresh IMDSv2 token from that server). */
export async function routeRequest(route, port, token) {
  if (route === 'container') return { url: `http://127.0.0.1:${port}/v1/credentials`, headers: { authorization: token } };
  return { url: `http://127.0.0.1:${port}/latest/meta-data/iam/security-credentials/${ROLE_NAME}`, headers: { 'x-aws-ec2-metadata-token': await imdsToken(port) } };
}

/** routeRequest, after checking the server answers it 200 → { target, bodyBytes } (the body's size, for the bare server's). */
export async function sampledRoute(name, route, port, token) {
  const target = await routeRequest(route, port, token);
  const sample = await httpRequest(port, 'GET', new URL(target.url).pathname, target.headers);
  if (sample.status !== 200) throw new Error(`${name} answered ${sample.status} before the measurement`);
  return { target, bodyBytes: Buffer.byteLength(sample.body) };
}

/** sampledRoute with the endpoint token of `setup`. */
export const routeTarget = (setup, name, route, port) => sampledRoute(name, route, port, readFileSync(setup.tokenFile, 'utf8'));

/**
 * Starts a server (`argvFor(port)`: its command line) pinned to CPU 0, as `npm run bench`
 * runs it, and waits until it serves (/readyz 200: the daemon once it holds credentials,
 * the bare server once it listens) → { proc, pid, port, target, bodyBytes } (see
 * routeTarget). `env`: its environment (default: this process's).
 */
export async function startPinned(setup, name, route, argvFor, env) {
  const port = await freePort();
  const argv = await argvFor(port);
  const proc = spawnTracked(argv[0], argv.slice(1), { cpu: '0', ...(env === undefined ? {} : { env }) });
  try {
    await waitUntil(`${name} ready`, async () => (await readyz(port)) === 200, 30_000, 20);
    return { proc, pid: proc.child.pid, port, ...(await routeTarget(setup, name, route, port)) };
  } catch (err) {
    await stop(proc);
    throw err;
  }
}

/** `seconds` of wrk load on `target` from CPU 1 with 32 connections, as `npm run bench` drives it. */
export const pinnedLoad = (setup, target, seconds) => setup.gen.run({ ...target, seconds, connections: 32, cpu: '1' });

/** Throws when any of `runs` (wrk results) had a non-2xx answer or an error: a measurement of refusals is not one of serving. */
export function allAnswered(name, ...runs) {
  const non2xx = runs.reduce((n, r) => n + r.non2xx, 0);
  const errors = runs.reduce((n, r) => n + r.errors, 0);
  if (non2xx + errors > 0) throw new Error(`${name}: ${non2xx} non-2xx answers, ${errors} errors`);
}
