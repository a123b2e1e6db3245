// Helpers for daemon tests: a DaemonConfig for test identities, raw HTTP
// requests (node:http, so any Host/header can be sent), waiting for conditions.
import { request } from 'node:http';
import { join } from 'node:path';
import type { DaemonConfig, ProfileConfig } from '../../src/config/types.js';
import type { CertFiles } from './pki.js';

export const ROLE_ARN = 'arn:aws:iam::123456789012:role/test-role';
export const TA_ARN = 'arn:aws:rolesanywhere:us-east-1:123456789012:trust-anchor/11111111-2222-3333-4444-555555555555';
export const PROFILE_ARN = 'arn:aws:rolesanywhere:us-east-1:123456789012:profile/66666666-7777-8888-9999-000000000000';

export function profileFor(name: string, leaf: Pick<CertFiles, 'certPath' | 'keyPath'>, extra: Partial<ProfileConfig> = {}): ProfileConfig {
  return {
    name,
    certificate: leaf.certPath,
    privateKey: leaf.keyPath,
    trustAnchorArn: TA_ARN,
    profileArn: PROFILE_ARN,
    roleArn: ROLE_ARN,
    region: 'us-east-1',
    noVerifySsl: false,
    withProxy: false,
    sessionDuration: 3600,
    expiryWarningDays: 7,
    ...extra,
  };
}

export function daemonConfig(dir: string, profiles: ProfileConfig[], extra: Partial<DaemonConfig> = {}): DaemonConfig {
  return {
    listen: [{ host: '127.0.0.1', port: 0 }],
    allowNonLoopback: false,
    allowUnidentifiedCallers: false,
    tokenFile: join(dir, 'token'),
    imds: { enabled: true, allowV1: false },
    profiles: Object.fromEntries(profiles.map((p) => [p.name, p])),
    logLevel: 'info',
    refresh: { backoffInitialMs: 200, backoffMaxMs: 1000 },
    watch: { debounceMs: 100, recheckIntervalMs: 1000 },
    connections: { max: 4096, maxPerUser: 256 },
    ...extra,
  };
}

/** A `serve` YAML config: loopback port 0, the token file, one profile `main`, plus extra top-level and profile lines. */
export function serveYaml(o: { tokenFile: string; leaf: Pick<CertFiles, 'certPath' | 'keyPath'>; endpoint: string; top?: string; profile?: string }): string {
  return `listen: ["127.0.0.1:0"]
tokenFile: ${o.tokenFile}
${o.top ?? ''}
profiles:
  main:
    certificate: ${o.leaf.certPath}
    privateKey: ${o.leaf.keyPath}
    trustAnchorArn: ${TA_ARN}
    profileArn: ${PROFILE_ARN}
    roleArn: ${ROLE_ARN}
    endpoint: ${o.endpoint}
${o.profile ?? ''}
`;
}

export interface RawResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** One HTTP request to 127.0.0.1:port with exactly the given headers (Host defaults to 127.0.0.1:port). */
export function httpRequest(port: number, method: string, path: string, headers: Record<string, string> = {}, host = '127.0.0.1'): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const h: Record<string, string> = { host: `127.0.0.1:${port}`, ...headers };
    const req = request({ host, port, method, path, headers: h, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

export async function waitUntil(what: string, cond: () => boolean | Promise<boolean>, timeoutMs = 20_000, intervalMs = 50): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await cond()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

import { spawn, type ChildProcess } from 'node:child_process';
import { CLI, NODE_FLAGS } from './cli.js';

export interface ServeProcess {
  child: ChildProcess;
  /** Everything written so far (stdout + stderr). */
  output(): string;
  stdout(): string;
  stderr(): string;
  /** Resolves with the first match of `re` in the combined output. */
  waitForOutput(re: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  /** The container endpoint port (from the printed export line). */
  port(): Promise<number>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/**
 * Spawns `serve` as a real process. Killed (SIGKILL) at teardown if still running.
 * `command`: how to start the CLI (default: this Node with the package's nodeFlags and dist/cli.js, as every home
 * starts it; the single-file executable alone).
 */
export function spawnServe(
  t: { teardown(fn: () => unknown): void },
  args: string[],
  env: NodeJS.ProcessEnv = {},
  command: [string, ...string[]] = [process.execPath, ...NODE_FLAGS, CLI],
): ServeProcess {
  const [cmd, ...pre] = command;
  const child = spawn(cmd, [...pre, 'serve', ...args], {
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let so = '';
  let se = '';
  const waiters = new Set<() => void>();
  child.stdout!.setEncoding('utf8').on('data', (d: string) => {
    out += d;
    so += d;
    for (const w of [...waiters]) w();
  });
  child.stderr!.setEncoding('utf8').on('data', (d: string) => {
    out += d;
    se += d;
    for (const w of [...waiters]) w();
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.on('exit', (code, signal) => {
      for (const w of [...waiters]) w();
      resolve({ code, signal });
    });
  });
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  const waitForOutput = (re: RegExp, timeoutMs = 20_000) =>
    new Promise<RegExpMatchArray>((resolve, reject) => {
      const check = () => {
        const m = out.match(re);
        if (m) {
          cleanup();
          resolve(m);
        } else if (child.exitCode !== null || child.signalCode !== null) {
          cleanup();
          reject(new Error(`serve exited before printing ${re}`));
        }
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`timed out waiting for ${re} in serve output`));
      }, timeoutMs);
      const cleanup = () => {
        clearTimeout(timer);
        waiters.delete(check);
      };
      waiters.add(check);
      check();
    });
  return {
    child,
    output: () => out,
    stdout: () => so,
    stderr: () => se,
    waitForOutput,
    port: async () => Number((await waitForOutput(/AWS_CONTAINER_CREDENTIALS_FULL_URI=http:\/\/127\.0\.0\.1:(\d+)/))[1]),
    exited,
  };
}

// ---- daemon in process against the emulator --------------------------------------------------

import { writeFile as writeFileP } from 'node:fs/promises';
import { daemonDeps } from '../../src/cli/serve.js';
import { createLogger } from '../../src/log.js';
import { Daemon } from '../../src/server/daemon.js';
import { startTestEmulator, type TestEmulator, type TestEmulatorOptions } from './emulator.js';
import { tempDir } from './pki.js';
import { Writable } from 'node:stream';
import { createServer } from 'node:net';

export interface EmulatedDaemon {
  emu: TestEmulator;
  daemon: Daemon;
  config: DaemonConfig;
  port: number;
  token: string;
  dir: string;
  /** Everything the daemon logged (JSON lines). */
  logs(): string;
}

/** The emulator + an in-process daemon whose single profile `main` uses it. */
export async function startEmulatedDaemon(
  t: { teardown(fn: () => unknown): void },
  opts: {
    emulator?: TestEmulatorOptions;
    profile?: Partial<ProfileConfig>;
    config?: Partial<DaemonConfig>;
    /** Runs after the emulator starts; its result overrides profile fields (e.g. certificate paths). */
    prepare?: (emu: TestEmulator) => Promise<Partial<ProfileConfig>>;
  } = {},
): Promise<EmulatedDaemon> {
  const emu = await startTestEmulator(t, opts.emulator);
  const prepared = opts.prepare ? await opts.prepare(emu) : {};
  const dir = await tempDir('ra-daemon-');
  const profile = profileFor('main', { certPath: emu.identitySource.certificate, keyPath: emu.identitySource.privateKey! }, {
    ...emu.arns,
    region: emu.region,
    endpoint: emu.url,
    ...(emu.identitySource.intermediates ? { intermediates: emu.identitySource.intermediates } : {}),
    ...opts.profile,
    ...prepared,
  });
  const config = daemonConfig(dir, [profile], opts.config);
  const { daemon, logs } = await startLoggedDaemon(t, config);
  const token = await readFileP(config.tokenFile, 'utf8');
  return { emu, daemon, config, port: daemon.addresses[0]!.port, token, dir, logs };
}

/** An in-process daemon for `config`, logging at debug level into a string (closed at teardown). */
export async function startLoggedDaemon(t: { teardown(fn: () => unknown): void }, config: DaemonConfig): Promise<{ daemon: Daemon; logs(): string }> {
  let logText = '';
  const sink = new Writable({
    write(chunk, _enc, cb) {
      logText += chunk.toString();
      cb();
    },
  });
  const daemon = await Daemon.start(config, daemonDeps(await createLogger({ level: 'debug', destination: sink, pretty: false })));
  t.teardown(() => daemon.close(500));
  return { daemon, logs: () => logText };
}

/** A port free on 127.0.0.1 now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

import { readFile as readFileP } from 'node:fs/promises';

/** A clean environment for AWS clients: no AWS_* from the outside, empty config files, us-east-1. */
export async function cleanAwsEnv(extra: NodeJS.ProcessEnv = {}): Promise<NodeJS.ProcessEnv> {
  const dir = await tempDir('ra-awsenv-');
  const cfg = join(dir, 'config');
  const creds = join(dir, 'credentials');
  await writeFileP(cfg, '');
  await writeFileP(creds, '');
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    AWS_CONFIG_FILE: cfg,
    AWS_SHARED_CREDENTIALS_FILE: creds,
    AWS_REGION: 'us-east-1',
    AWS_DEFAULT_REGION: 'us-east-1',
    AWS_PAGER: '',
  };
  for (const k of Object.keys(process.env)) if (k.startsWith('PYENV')) env[k] = process.env[k];
  return { ...env, ...extra };
}

const savedEnv = { ...process.env };
/** Runs `fn` with process.env replaced by `env` (SDK providers read it), then restores it. */
export async function withEnv<T>(env: NodeJS.ProcessEnv, fn: () => Promise<T>): Promise<T> {
  for (const k of Object.keys(process.env)) delete process.env[k];
  Object.assign(process.env, env);
  try {
    return await fn();
  } finally {
    for (const k of Object.keys(process.env)) delete process.env[k];
    Object.assign(process.env, savedEnv);
  }
}
