// The single-file executable (`npm run build:sea`): built once for this run from
// the dist/ that `npm test` built, copied ALONE into an empty directory and run
// from there with a PATH that holds no Node, npm or node_modules: --version,
// pki, check, emulator, credential-process (PEM key; a legacy RC2 PKCS#12, whose
// decryption comes from node-forge inside the bundle) and serve with a YAML
// config, fetched by the real AWS SDK through the container endpoint, also
// with pretty (TTY) logging, which must not need a worker thread; and a TPM
// key, signed by the system openssl with its tpm2 provider (swtpm).
import t from 'tap';
import { execFile, spawn, spawnSync } from 'node:child_process';
import { copyFile, mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { fromHttp } from '@aws-sdk/credential-providers';
import { REPO, runProcess } from '../helpers/cli.js';
import { httpRequest, spawnServe, waitUntil } from '../helpers/daemon.js';
import { emulatorProfileYaml, startTestEmulator } from '../helpers/emulator.js';
import { makeLeaf, makePfx, tempDir } from '../helpers/pki.js';
import { startSoftTpm } from '../helpers/swtpm.js';
import { missing as needs } from '../helpers/needs.js';
import { sha } from '../helpers/assert.js';

const run = promisify(execFile);
const pkg = JSON.parse(await readFile(join(REPO, 'package.json'), 'utf8')) as { name: string; version: string };

t.setTimeout(600_000);

const build = await tempDir('ra-sea-build-');
t.teardown(() => rm(build, { recursive: true, force: true }));
// dist/ is fresh (npm test builds first); the script bundles it without rebuilding it.
await run(process.execPath, [join(REPO, 'scripts', 'build-sea.js'), '--out', build], { maxBuffer: 16 * 1024 * 1024, timeout: 400_000 });
const built = await readdir(build);

// Alone in an empty directory.
const home = await tempDir('ra-sea-run-');
t.teardown(() => rm(home, { recursive: true, force: true }));
const exe = join(home, pkg.name);
await copyFile(join(build, pkg.name), exe);
const size = (await stat(exe)).size;
t.comment(`single-file executable: ${(size / 1024 / 1024).toFixed(1)} MB`);

/** No Node anywhere: PATH is the executable's own directory. */
const env = { PATH: home, HOME: home };
const sea = (args: string[]) => runProcess(exe, args, { cleanEnv: true, env, cwd: home });

t.test('--version, pki, check and the emulator run from the lone file', async (t) => {
  t.same(built, [pkg.name], 'the build leaves one file');
  t.same(await readdir(home), [pkg.name], 'alone in its directory');
  const v = await sea(['--version']);
  t.equal(v.code, 0, v.stderr);
  t.equal(v.stdout, `${pkg.version}\n`);
  const help = await sea(['--help']);
  t.notMatch(help.stdout, '(unavailable)', 'every command loads');

  const init = await sea(['pki', 'init', join(home, 'pki')]);
  t.equal(init.code, 0, `pki init (${init.stderr.trim()})`);
  const check = await sea(['check', '--certificate', 'pki/client.pem', '--private-key', 'pki/client.key', '--ca', 'pki/ca.pem']);
  t.equal(check.code, 0, `check (${check.stderr.trim()})`);
  t.match(check.stdout, /PASS/);

  const emu = spawn(exe, ['emulator', '--trust-anchor-ca', 'pki/ca.pem'], { env, cwd: home, stdio: ['ignore', 'pipe', 'pipe'] });
  t.teardown(() => emu.kill('SIGKILL'));
  let out = '';
  emu.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  await waitUntil('emulator URL', () => /http:\/\/127\.0\.0\.1:\d+/.test(out) || emu.exitCode !== null);
  const url = /http:\/\/127\.0\.0\.1:\d+/.exec(out)![0];
  const res = await fetch(`${url}/_emulator/stats`);
  t.equal(res.status, 200, 'the emulator answers');
  emu.kill('SIGTERM');
  const [code] = (await new Promise((r) => emu.on('exit', (...a) => r(a)))) as [number | null];
  t.equal(code, 0, 'emulator stops on SIGTERM');
});

const emu = await startTestEmulator(t);
const arnFlags = ['--trust-anchor-arn', emu.arns.trustAnchorArn, '--profile-arn', emu.arns.profileArn, '--role-arn', emu.arns.roleArn, '--endpoint', emu.url];

t.test('credential-process: PEM key, and a legacy (RC2) PKCS#12 bundle', async (t) => {
  const pem = await sea(['credential-process', '--certificate', emu.leaf.certPath, '--private-key', emu.leaf.keyPath, ...arnFlags]);
  t.equal(pem.code, 0, pem.stderr);
  const out = JSON.parse(pem.stdout) as Record<string, string>;
  const issued = emu.emulator.issued.at(-1)!;
  t.equal(out.AccessKeyId, issued.accessKeyId);
  t.ok(sha(out.SecretAccessKey!) === sha(issued.secretAccessKey), 'the secret as issued');

  const pfx = await makePfx(emu.leaf, [], 'rc2-40', 'sea password');
  const pwFile = join(emu.dir, 'pfx-pass');
  await writeFile(pwFile, 'sea password\n', { mode: 0o600 });
  const legacy = await sea(['credential-process', '--certificate', pfx, '--key-password-file', pwFile, ...arnFlags]);
  t.equal(legacy.code, 0, `RC2 PKCS#12 (${legacy.stderr.trim()})`);
  t.equal((JSON.parse(legacy.stdout) as Record<string, string>).AccessKeyId, emu.emulator.issued.at(-1)!.accessKeyId);
  t.notMatch(legacy.stderr + legacy.stdout, /sea password/, 'the password is not printed');
});

t.test('credential-process with a TPM key: the lone file drives the system openssl and its tpm2 provider', { skip: needs('tpm') ?? false }, async (t) => {
  const tpm = await startSoftTpm(t);
  const key = await tpm.tss2Key('p256');
  const leaf = await makeLeaf(emu.dir, emu.ca, 'sea-tpm', { csrPath: await tpm.csr(key, 'sea-tpm') });
  // Still no Node on PATH; the system tools TPM keys need are.
  const r = await runProcess(exe, ['credential-process', '--certificate', leaf.certPath, '--private-key', key, ...arnFlags], {
    cleanEnv: true,
    env: { ...env, PATH: `${home}:/usr/bin:/bin`, ...tpm.env },
    cwd: home,
  });
  t.equal(r.code, 0, `TPM key (${r.stderr.trim()})`);
  t.equal((JSON.parse(r.stdout || '{}') as Record<string, string>).AccessKeyId, emu.emulator.issued.at(-1)!.accessKeyId);
});

t.test('PKCS#11 keys: the executable says it cannot load the native module', async (t) => {
  const r = await sea(['credential-process', '--certificate', emu.leaf.certPath, '--private-key', 'pkcs11:token=any;object=key', ...arnFlags]);
  t.equal(r.code, 1);
  t.match(r.stderr, /PKCS#11 keys are not available in the single-file executable: it cannot load the native module pkcs11js/);
  t.match(r.stderr, /install the npm package instead/);
  t.equal(r.stdout, '');
});

async function writeConfig(dir: string): Promise<{ config: string; tokenFile: string }> {
  await mkdir(dir, { recursive: true });
  const tokenFile = join(dir, 'token');
  const config = join(dir, 'config.yaml');
  await writeFile(
    config,
    [
      'listen: ["127.0.0.1:0"]',
      `tokenFile: ${tokenFile}`,
      'profiles:',
      ...emulatorProfileYaml(emu),
      '',
    ].join('\n'),
  );
  return { config, tokenFile };
}

t.test('serve with a YAML config; the AWS SDK fetches through the container endpoint', async (t) => {
  const { config, tokenFile } = await writeConfig(join(home, 'serve'));
  const d = spawnServe(t, ['--config', config], env, [exe]);
  const port = await d.port();
  await waitUntil('ready', async () => (await httpRequest(port, 'GET', '/readyz')).status === 200);
  const creds = await fromHttp({ awsContainerCredentialsFullUri: `http://127.0.0.1:${port}/v1/credentials`, awsContainerAuthorizationTokenFile: tokenFile })();
  t.ok(emu.emulator.issued.some((c) => c.accessKeyId === creds.accessKeyId), 'credentials the emulator issued, through the SDK');
  t.match(d.stdout(), /"msg":/, 'JSON log lines when stdout is not a terminal');
  d.child.kill('SIGTERM');
  t.same(await d.exited, { code: 0, signal: null }, 'stops cleanly');
});

t.test('serve on a terminal: pretty logs without a worker thread', async (t) => {
  const { config, tokenFile } = await writeConfig(join(home, 'tty'));
  // script(1) gives the executable a pseudo-terminal as stdout. It runs the
  // daemon in a session of its own, and the daemon takes the terminal's
  // hang-up as a reload, so stopping script does not stop the daemon: stop
  // the daemon itself (found by its unique config path) as well.
  const child = spawn('/usr/bin/script', ['-qfec', `${exe} serve --config ${config}`, '/dev/null'], { env, cwd: home, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  const group = -child.pid!;
  const stopDaemon = (signal: NodeJS.Signals) => spawnSync('pkill', [`-${signal}`, '-f', `serve --config ${config}`]);
  t.teardown(() => {
    stopDaemon('SIGKILL');
    try {
      process.kill(group, 'SIGKILL');
    } catch {
      // already gone
    }
  });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  await waitUntil('export lines', () => /FULL_URI=http:\/\/127\.0\.0\.1:\d+/.test(out) || child.exitCode !== null);
  const port = Number(/FULL_URI=http:\/\/127\.0\.0\.1:(\d+)/.exec(out)?.[1]);
  await waitUntil('ready', async () => (await httpRequest(port, 'GET', '/readyz')).status === 200);
  const creds = await fromHttp({ awsContainerCredentialsFullUri: `http://127.0.0.1:${port}/v1/credentials`, awsContainerAuthorizationTokenFile: tokenFile })();
  t.ok(emu.emulator.issued.some((c) => c.accessKeyId === creds.accessKeyId), 'credentials through the SDK');
  await waitUntil('a pretty log line', () => /INFO.*credentials/.test(out));
  t.notMatch(out, /"msg":/, 'human-readable, not JSON');
  t.notMatch(out, /worker|Cannot find module|unable to determine transport/i);
  stopDaemon('SIGTERM');
  await new Promise((r) => child.on('exit', r));
  await waitUntil('the daemon stopped', () => spawnSync('pgrep', ['-f', `serve --config ${config}`]).status === 1);
});
