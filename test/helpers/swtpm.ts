// Test helper: a private software TPM 2.0 (Debian's swtpm) on a Unix socket in
// a temp dir, with keys made by the real TPM tools (tpm2-openssl, tpm2-tools).
//
//   import { startSoftTpm, haveSoftTpm } from '../helpers/swtpm.js';
//
//   const tpm = await startSoftTpm(t);         // started now, stopped (and its dir removed) at teardown
//   tpm.env                                    // { TPM2OPENSSL_TCTI, TPM2TOOLS_TCTI } pointing at it
//   await tpm.tss2Key('p256', { password })    // TSS2 PEM key file made by `openssl genpkey -provider tpm2`
//   await tpm.persistentKey('rsa2048', 0x81000002, { password })   // tpm2_createprimary/create/load/evictcontrol
//   await tpm.csr(spec, name, password?)       // CSR signed in the TPM (`openssl req -provider tpm2`)
//   await tpm.stop(); await tpm.start();       // the TPM going away and coming back (state kept)
//
// swtpm has no resource manager: it holds only ~3 loaded objects, so every
// tpm2_* step is followed by `tpm2_flushcontext -t`, and all TPM use from the
// helper goes through one queue. Each test file gets its own swtpm, so files
// running in parallel never share one.
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { tempDir } from './pki.js';

const run = promisify(execFile);

/** Whether swtpm, tpm2-tools and the openssl tpm2 provider are installed (.ci/run installs them). */
export function haveSoftTpm(): boolean {
  const ok = (cmd: string, args: string[]) => spawnSync(cmd, args, { stdio: 'ignore' }).status === 0;
  return ok('swtpm', ['--version']) && ok('tpm2_flushcontext', ['--version']) && tpm2ProviderInstalled();
}

function tpm2ProviderInstalled(): boolean {
  // `openssl list -providers -provider tpm2` would need a TPM to initialise; look for the module instead.
  const r = spawnSync('openssl', ['version', '-m'], { encoding: 'utf8' });
  const dir = /MODULESDIR: "([^"]+)"/.exec(r.stdout ?? '')?.[1];
  return dir !== undefined && existsSync(join(dir, 'tpm2.so'));
}

export type TpmKeyType = 'rsa2048' | 'p256';

export interface SoftTpm {
  dir: string;
  socket: string;
  /** TCTI configuration string for this TPM. */
  tcti: string;
  env: { TPM2OPENSSL_TCTI: string; TPM2TOOLS_TCTI: string };
  running(): boolean;
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Runs a tpm2_* tool against this TPM, then flushes transient objects. */
  tool(cmd: string, args: string[]): Promise<string>;
  /** Runs openssl with the tpm2 provider loaded against this TPM. */
  openssl(args: string[]): Promise<string>;
  /** A TSS2 PEM key file (`-----BEGIN TSS2 PRIVATE KEY-----`) created in the TPM. */
  tss2Key(type: TpmKeyType, opts?: { password?: string; name?: string }): Promise<string>;
  /** A key made persistent at `handle`; returns the spec `handle:0x…`. */
  persistentKey(type: TpmKeyType, handle: number, opts?: { password?: string }): Promise<string>;
  /** Gives the persistent key at `handle` a new password (re-persisted under the same handle). */
  changePersistentAuth(handle: number, oldPassword: string, newPassword: string): Promise<void>;
  /** A CSR signed with the TPM key (`spec` is a TSS2 PEM path or `handle:0x…`). */
  csr(spec: string, commonName: string, password?: string): Promise<string>;
  /** Loaded transient objects right now (should be 0 between operations). */
  transientHandles(): Promise<string[]>;
}

let queue: Promise<unknown> = Promise.resolve();
/** Serializes TPM use by this helper (swtpm has no resource manager). */
function serial<T>(fn: () => Promise<T>): Promise<T> {
  const next = queue.then(fn, fn);
  queue = next.catch(() => undefined);
  return next;
}

export async function startSoftTpm(t: { teardown(fn: () => unknown): void }): Promise<SoftTpm> {
  const dir = await tempDir('ra-swtpm-');
  const socket = join(dir, 'tpm.sock');
  // tcti-swtpm finds the control channel at `<path>.ctrl`.
  const tcti = `swtpm:path=${socket}`;
  const env = { TPM2OPENSSL_TCTI: tcti, TPM2TOOLS_TCTI: tcti };
  const childEnv = { ...process.env, ...env };
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  let pwCounter = 0;

  const start = async (): Promise<void> => {
    if (child) return;
    await rm(socket, { force: true });
    await rm(`${socket}.ctrl`, { force: true });
    const c = spawn(
      'swtpm',
      ['socket', '--tpm2', '--tpmstate', `dir=${dir}`, '--server', `type=unixio,path=${socket}`, '--ctrl', `type=unixio,path=${socket}.ctrl`, '--flags', 'not-need-init,startup-clear'],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let stderr = '';
    c.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child = c;
    exited = new Promise((resolve) => c.on('exit', () => resolve()));
    let gone = false;
    void exited.then(() => {
      gone = true;
      if (child === c) child = undefined;
    });
    // Readiness: both sockets exist (polled; not a timing assertion).
    for (let i = 0; !(existsSync(socket) && existsSync(`${socket}.ctrl`)); i++) {
      if (gone) throw new Error(`swtpm exited at start: ${stderr.trim()}`);
      if (i > 400) throw new Error('swtpm did not create its sockets within 20 s');
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  const stop = async (): Promise<void> => {
    const c = child;
    if (!c) return;
    c.kill('SIGTERM');
    await exited;
  };

  const tool = (cmd: string, args: string[]) =>
    serial(async () => {
      try {
        const { stdout } = await run(cmd, args, { env: childEnv, cwd: dir, maxBuffer: 4 * 1024 * 1024 });
        return stdout;
      } finally {
        await run('tpm2_flushcontext', ['-t'], { env: childEnv }).catch(() => undefined);
      }
    });
  const openssl = (args: string[]) =>
    serial(async () => {
      const { stdout } = await run('openssl', args, { env: childEnv, cwd: dir, maxBuffer: 4 * 1024 * 1024 });
      return stdout;
    });
  const passFile = async (password: string): Promise<string> => {
    const p = join(dir, `pass-${++pwCounter}`);
    await writeFile(p, password, { mode: 0o600 });
    return p;
  };

  await start();
  t.teardown(async () => {
    await stop();
    await rm(dir, { recursive: true, force: true });
  });
  // A wrong-password test must not lock the TPM (swtpm allows 3 failures, then 1000 s lockout).
  // The failed-authorization counter must not decay during a test that counts it (with a 1 s
  // recovery time a slow CI run saw it drop between two reads); 1000 tries never lock out a suite.
  await tool('tpm2_dictionarylockout', ['--setup-parameters', '--max-tries=1000', '--recovery-time=600', '--lockout-recovery-time=1']);

  let keyCounter = 0;
  const tpm: SoftTpm = {
    dir,
    socket,
    tcti,
    env,
    running: () => child !== undefined,
    start,
    stop,
    tool,
    openssl,
    async tss2Key(type, opts = {}) {
      const out = join(dir, `${opts.name ?? type}-${++keyCounter}.tss2.pem`);
      const alg = type === 'rsa2048' ? ['-algorithm', 'RSA', '-pkeyopt', 'bits:2048'] : ['-algorithm', 'EC', '-pkeyopt', 'group:P-256'];
      // user-auth is only a pkeyopt; this is a test fixture's password.
      const auth = opts.password !== undefined ? ['-pkeyopt', `user-auth:${opts.password}`] : [];
      await openssl(['genpkey', '-provider', 'tpm2', '-provider', 'default', ...alg, ...auth, '-out', out]);
      return out;
    },
    async persistentKey(type, handle, opts = {}) {
      const base = join(dir, `persist-${handle.toString(16)}`);
      const hex = `0x${handle.toString(16)}`;
      await tool('tpm2_createprimary', ['-C', 'o', '-g', 'sha256', '-G', 'ecc', '-c', `${base}.primary.ctx`]);
      const auth = opts.password !== undefined ? ['-p', `file:${await passFile(opts.password)}`] : [];
      await tool('tpm2_create', [
        '-C', `${base}.primary.ctx`, '-G', type === 'rsa2048' ? 'rsa2048' : 'ecc256', ...auth,
        '-a', 'fixedtpm|fixedparent|sensitivedataorigin|userwithauth|sign',
        '-u', `${base}.pub`, '-r', `${base}.priv`,
      ]);
      await tool('tpm2_load', ['-C', `${base}.primary.ctx`, '-u', `${base}.pub`, '-r', `${base}.priv`, '-c', `${base}.ctx`]);
      await tool('tpm2_evictcontrol', ['-C', 'o', '-c', `${base}.ctx`, hex]);
      return `handle:${hex}`;
    },
    async changePersistentAuth(handle, oldPassword, newPassword) {
      const base = join(dir, `persist-${handle.toString(16)}`);
      const hex = `0x${handle.toString(16)}`;
      await tool('tpm2_changeauth', ['-c', hex, '-C', `${base}.primary.ctx`, '-p', `file:${await passFile(oldPassword)}`, '-r', `${base}.priv`, `file:${await passFile(newPassword)}`]);
      await tool('tpm2_evictcontrol', ['-C', 'o', '-c', hex]);
      await tool('tpm2_load', ['-C', `${base}.primary.ctx`, '-u', `${base}.pub`, '-r', `${base}.priv`, '-c', `${base}.ctx`]);
      await tool('tpm2_evictcontrol', ['-C', 'o', '-c', `${base}.ctx`, hex]);
    },
    async csr(spec, commonName, password) {
      const out = join(dir, `csr-${++keyCounter}.pem`);
      const key = spec.startsWith('handle:') && password !== undefined ? `${spec}?pass` : spec;
      const pass = password !== undefined ? ['-passin', `file:${await passFile(password)}`] : [];
      await openssl(['req', '-new', '-provider', 'tpm2', '-provider', 'default', '-key', key, ...pass, '-subj', `/CN=${commonName}`, '-sha256', '-out', out]);
      return out;
    },
    async transientHandles() {
      const out = await serial(async () => (await run('tpm2_getcap', ['handles-transient'], { env: childEnv })).stdout);
      return out.split('\n').map((l) => l.replace(/^-\s*/, '').trim()).filter(Boolean);
    },
  };
  return tpm;
}
