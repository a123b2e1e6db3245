// Runs the built CLI as a user would: the bundle every home runs (dist/bundle/cli.js,
// scripts/bundle.js), a real process, real argv, real environment. `npm test` builds
// first (pretest).
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const CLI = fileURLToPath(new URL('../../dist/bundle/cli.js', import.meta.url));
export const REPO = fileURLToPath(new URL('../../', import.meta.url));
/** The V8 settings every home starts the daemon with (package.json "nodeFlags"): spawned daemons get them too, so tests see its real heap sizes. */
export const NODE_FLAGS: string[] = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { nodeFlags?: string[] }).nodeFlags ?? [];

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface CliOptions {
  env?: NodeJS.ProcessEnv;
  /** Replace the environment instead of extending process.env. */
  cleanEnv?: boolean;
  input?: string;
  cwd?: string;
  timeoutMs?: number;
}

export function runCli(args: string[], opts: CliOptions = {}): Promise<CliResult> {
  return runProcess(process.execPath, [CLI, ...args], opts);
}

export function runProcess(cmd: string, args: string[], opts: CliOptions = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const env = opts.cleanEnv ? { PATH: process.env.PATH, HOME: process.env.HOME, ...opts.env } : { ...process.env, ...opts.env };
    const child = spawn(cmd, args, { env, cwd: opts.cwd, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
    // A child that exits without reading its stdin (openssl, a refused
    // command) closes the pipe first: EPIPE here is not the test's failure.
    child.stdin.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code !== 'EPIPE') reject(err);
    });
    child.stdin.end(opts.input ?? '');
  });
}

/** Environment without the outer shell's AWS_*, ROLESANYWHERE_* and proxy variables, plus `extra`. */
export function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!/^(AWS_|ROLESANYWHERE_)/.test(k) && !/_proxy$/i.test(k)) env[k] = v;
  return { ...env, ...extra };
}

/** Polls `cond` every 100 ms until it holds; throws naming `what` after `timeoutMs`. */
export async function waitFor(cond: () => boolean | Promise<boolean>, what: string, timeoutMs = 30_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** What a process run as another local user (setpriv) executes: paths that user can reach. */
export interface OtherUserRuntime {
  /** This Node (process.execPath, hard-linked or copied), started without tap's NODE_OPTIONS. */
  node: string;
  /** The CLI bundle (dist/bundle, copied). */
  cli: string;
  /** Bundles `source` (CommonJS; may require the repo's node_modules, e.g. the AWS SDK) into one file there. */
  script(name: string, source: string): Promise<string>;
}

/**
 * Node and the CLI for tests that run processes as other users. The clone may sit
 * where others cannot enter (/root, a 0700 home or temp dir), so they get copies in a
 * world-traversable temp directory (removed at exit); the files those processes
 * read are the test's own, in temp dirs too. Gives the reason instead when even the
 * temp directory is closed to other users. `under` puts it in another directory than
 * the temp directory (e.g. /var/tmp, for containers that mount a /tmp of their own).
 */
export async function otherUserRuntime(under?: string): Promise<OtherUserRuntime | { skip: string }> {
  const { chmod, copyFile, cp, link, mkdtemp, stat, writeFile } = await import('node:fs/promises');
  const { rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { dirname, join } = await import('node:path');
  const parent = under ?? tmpdir();
  for (let p = parent; ; p = dirname(p)) {
    if (!((await stat(p)).mode & 0o001)) return { skip: `other users cannot enter ${p}, above ${under ? '' : 'the temp directory '}${parent} (${under ? 'make it world-traversable' : 'set TMPDIR to a world-traversable directory'})` };
    if (dirname(p) === p) break;
  }
  const dir = await mkdtemp(join(parent, 'ra-other-user-'));
  // Removed at exit, not with t.teardown: a root-level teardown registered before the file's first
  // assertion makes tap end the file early when that assertion is asynchronous (t.rejects).
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  await chmod(dir, 0o755);
  const binary = join(dir, 'node-bin');
  // A hard link needs no 120 MB copy and, unlike a symlink, no way through the clone's directories.
  await link(process.execPath, binary).catch(() => copyFile(process.execPath, binary));
  await chmod(binary, 0o755);
  // tap hands every process a test spawns NODE_OPTIONS=--import <its loader in the clone's
  // node_modules>, which another user cannot load: the wrapper starts Node without it.
  const node = join(dir, 'node');
  await writeFile(node, `#!/bin/sh\nunset NODE_OPTIONS\nexec '${binary}' "$@"\n`, { mode: 0o755 });
  const bundle = join(dir, 'bundle');
  await cp(dirname(CLI), bundle, { recursive: true });
  await chmod(bundle, 0o755);
  const script = async (name: string, source: string) => {
    const { build } = await import('esbuild');
    const out = join(dir, name);
    await build({ stdin: { contents: source, resolveDir: REPO, loader: 'js' }, bundle: true, platform: 'node', format: 'cjs', outfile: out, logLevel: 'error' });
    await chmod(out, 0o644);
    return out;
  };
  return { node, cli: join(bundle, 'cli.js'), script };
}
