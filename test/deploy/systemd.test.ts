import t from 'tap';
import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { loadDaemonConfig, SERVE_OPTIONS } from '../../src/config/load.js';
import { envName } from '../../src/config/profile.js';
import { REPO } from '../helpers/cli.js';
import { tempDir } from '../helpers/pki.js';
import { missing as needs } from '../helpers/needs.js';

const run = promisify(execFile);
const UNIT = join(REPO, 'systemd', 'rolesanywhere-credentiald.service');

/** [section, key, value] for every directive, continuation lines joined. */
async function directives(path: string): Promise<[string, string, string][]> {
  const text = (await readFile(path, 'utf8')).replace(/\\\n/g, ' ');
  const out: [string, string, string][] = [];
  let section = '';
  for (const line of text.split('\n')) {
    const l = line.trim();
    if (!l || l.startsWith('#') || l.startsWith(';')) continue;
    const s = /^\[(.+)\]$/.exec(l);
    if (s) {
      section = s[1]!;
      continue;
    }
    const eq = l.indexOf('=');
    out.push([section, l.slice(0, eq).trim(), l.slice(eq + 1).trim()]);
  }
  return out;
}

async function haveSystemdAnalyze(): Promise<boolean> {
  return run('systemd-analyze', ['--version']).then(
    () => true,
    () => false,
  );
}

t.test('systemd-analyze verify accepts the unit (no unknown directives)', { skip: needs('systemd') ?? false }, async (t) => {
  if (!(await haveSystemdAnalyze())) {
    t.fail('systemd-analyze is on PATH but does not run');
    return;
  }
  // verify checks that ExecStart's binary exists: point it at this Node.
  const dir = await tempDir('ra-unit-');
  const copy = join(dir, 'rolesanywhere-credentiald.service');
  const text = await readFile(UNIT, 'utf8');
  t.match(text, /^ExecStart=\/usr\/local\/bin\/rolesanywhere-credentiald serve /m, 'runs the single-file executable');
  await writeFile(copy, text.replace(/^ExecStart=\/usr\/local\/bin\/rolesanywhere-credentiald /m, `ExecStart=${process.execPath} `));
  const res = await run('systemd-analyze', ['verify', copy]).then(
    (r) => ({ code: 0, stderr: r.stderr, stdout: r.stdout }),
    (e: { code?: number; stderr?: string; stdout?: string }) => ({ code: e.code ?? -1, stderr: e.stderr ?? '', stdout: e.stdout ?? '' }),
  );
  t.equal(res.code, 0, 'exit 0');
  const ours = `${res.stdout}\n${res.stderr}`.split('\n').filter((l) => l.includes('rolesanywhere-credentiald'));
  t.same(ours, [], 'no warnings about the unit');

  // Offline security review: hardened (systemd rates 0 = best .. 10 = unprotected).
  const sec = await run('systemd-analyze', ['security', '--offline=true', copy]).then(
    (r) => r.stdout,
    (e: { stdout?: string }) => e.stdout ?? '',
  );
  const m = /Overall exposure level for .*: ([\d.]+)/.exec(sec);
  t.ok(m, 'security review ran');
  if (m) t.ok(Number(m[1]) <= 1.6, `exposure level ${m[1]} is at most 1.6`);
});

t.test('required directives and hardening are present', async (t) => {
  const d = await directives(UNIT);
  const get = (key: string) => d.filter(([, k]) => k === key).map(([, , v]) => v);
  const expect: [string, string][] = [
    ['Type', 'notify'],
    ['NotifyAccess', 'all'],
    ['DynamicUser', 'yes'],
    ['NoNewPrivileges', 'yes'],
    ['ProtectSystem', 'strict'],
    ['ProtectHome', 'yes'],
    ['PrivateTmp', 'yes'],
    ['RuntimeDirectory', 'rolesanywhere-credentiald'],
    ['RestrictAddressFamilies', 'AF_INET AF_INET6 AF_UNIX'],
    ['CapabilityBoundingSet', ''],
    ['AmbientCapabilities', ''],
    ['LimitCORE', '0'],
    ['PrivateMounts', 'yes'],
    ['Restart', 'on-failure'],
    ['ExecReload', '/bin/kill -HUP $MAINPID'],
  ];
  for (const [k, v] of expect) t.same(get(k), [v], `${k}=${v}`);
  t.match(get('RuntimeDirectoryMode')[0], /^07[0-5]0$/, 'runtime directory closed to others');
  t.same(get('MemoryDenyWriteExecute').filter((v) => v !== 'no'), [], 'MemoryDenyWriteExecute not set: it breaks V8');
  // Caller authorization reads other users' socket owners from /proc/net/tcp.
  t.same(get('PrivateUsers').filter((v) => v !== 'no'), [], 'PrivateUsers not set: it maps other users to nobody');
  t.same(get('ProcSubset').filter((v) => v !== 'all'), [], 'ProcSubset not set: it hides /proc/net');
  for (const [section, k] of d) {
    if (['Service'].includes(section)) continue;
    t.ok(['Unit', 'Install'].includes(section), `${k} in a known section`);
  }
  const [exec] = get('ExecStart');
  t.match(exec, /\bserve --config \/etc\/rolesanywhere-credentiald\/config\.yaml$/);
});

t.test('the unit\'s command and environment give the documented token path', async (t) => {
  const d = await directives(UNIT);
  const exec = d.find(([, k]) => k === 'ExecStart')![2].split(/\s+/);
  const runtimeDir = d.find(([, k]) => k === 'RuntimeDirectory')![2];
  const args = exec.slice(exec.indexOf('serve') + 1);
  const dir = await tempDir('ra-unit-');
  const cfgFile = join(dir, 'config.yaml');
  await writeFile(cfgFile, await readFile(join(REPO, 'config', 'systemd-host.yaml'), 'utf8'));
  // systemd exports RUNTIME_DIRECTORY for RuntimeDirectory=; a DynamicUser is not root.
  const env = { RUNTIME_DIRECTORY: `/run/${runtimeDir}` };
  const cfg = await loadDaemonConfig({ argv: args.map((a) => (a.endsWith('config.yaml') ? cfgFile : a)), env, uid: 61234 });
  t.equal(cfg.tokenFile, `/run/${runtimeDir}/token`);
  // Without tokenFile in the file, the default lands in the runtime directory too.
  await writeFile(cfgFile, (await readFile(cfgFile, 'utf8')).replace(/^tokenFile:.*$/m, ''));
  const cfg2 = await loadDaemonConfig({ argv: ['--config', cfgFile], env, uid: 61234 });
  t.equal(cfg2.tokenFile, `/run/${runtimeDir}/token`);
});

t.test('env.example names only real variables', async (t) => {
  const text = await readFile(join(REPO, 'systemd', 'rolesanywhere-credentiald.env.example'), 'utf8');
  const known = new Set([...Object.keys(SERVE_OPTIONS).map(envName), envName('key-password'), envName('config')]);
  const named = [...text.matchAll(/\b(ROLESANYWHERE_[A-Z0-9_]+)=/g)].map((m) => m[1]!);
  t.ok(named.length > 0);
  for (const n of named) t.ok(known.has(n), `${n} is a known variable`);
  const sysusers = await readFile(join(REPO, 'systemd', 'rolesanywhere-credentiald.sysusers'), 'utf8');
  const d = await directives(UNIT);
  const group = d.find(([, k]) => k === 'SupplementaryGroups')?.[2];
  t.ok(group, 'a supplementary group for certificate access');
  t.match(sysusers, new RegExp(`^g ${group} `, 'm'), 'sysusers.d creates that group');
});
