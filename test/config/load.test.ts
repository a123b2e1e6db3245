import t from 'tap';
import { chmod, mkdir, readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { MAX_CONFIG_BYTES, defaultTokenFile, explainConfig, loadDaemonConfig, parseListenAddress, parseServeArgs } from '../../src/config/load.js';
import { ConfigError } from '../../src/problems.js';
import { UserError } from '../../src/errors.js';
import { tempDir } from '../helpers/pki.js';

const TA = 'arn:aws:rolesanywhere:us-east-1:123456789012:trust-anchor/11111111-2222-3333-4444-555555555555';
const PA = 'arn:aws:rolesanywhere:us-east-1:123456789012:profile/66666666-7777-8888-9999-000000000000';
const ROLE = 'arn:aws:iam::123456789012:role/app';
const TA_EU = TA.replace('us-east-1', 'eu-west-1');
const PA_EU = PA.replace('us-east-1', 'eu-west-1');

const PROFILE_YAML = `
    certificate: tls.crt
    privateKey: tls.key
    trustAnchorArn: ${TA}
    profileArn: ${PA}
    roleArn: ${ROLE}`;

async function withFile(yaml: string, name = 'config.yaml'): Promise<{ dir: string; file: string }> {
  const dir = await tempDir('ra-config-');
  const file = join(dir, name);
  await writeFile(file, yaml);
  return { dir, file };
}

async function problems(p: Promise<unknown>): Promise<{ path: string; message: string }[]> {
  try {
    await p;
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  throw new Error('expected a ConfigError');
}

function byPath(ps: { path: string; message: string }[]): Record<string, string> {
  return Object.fromEntries(ps.map((p) => [p.path, p.message]));
}

const FLAGS = ['--certificate', 'c.pem', '--private-key', 'k.pem', '--trust-anchor-arn', TA, '--profile-arn', PA, '--role-arn', ROLE];

t.test('flags alone: defaults', async (t) => {
  const cfg = await loadDaemonConfig({ argv: FLAGS, env: { XDG_RUNTIME_DIR: '/run/user/1000' }, cwd: '/w', uid: 1000 });
  t.same(cfg.listen, [{ host: '127.0.0.1', port: 9911 }]);
  t.equal(cfg.allowNonLoopback, false);
  t.equal(cfg.tokenFile, '/run/user/1000/rolesanywhere-credentiald/token');
  t.same(cfg.imds, { enabled: true, allowV1: false, onNonLoopbackUnsafe: false, profile: 'default' });
  t.same(cfg.connections, { max: 4096, maxPerUser: 256 });
  t.equal(cfg.allowUnidentifiedCallers, false);
  t.equal(cfg.defaultProfile, 'default');
  t.equal(cfg.logLevel, 'info');
  t.same(cfg.refresh, { backoffInitialMs: 1000, backoffMaxMs: 30000 });
  t.same(cfg.watch, { debounceMs: 500, recheckIntervalMs: 60000 });
  t.equal(cfg.profiles.default!.certificate, '/w/c.pem');
  t.equal(cfg.profiles.default!.region, 'us-east-1');
  t.equal(cfg.source, undefined);
});

t.test('default token file', async (t) => {
  t.equal(defaultTokenFile({ RUNTIME_DIRECTORY: '/run/rolesanywhere-credentiald', XDG_RUNTIME_DIR: '/x' }, 61000), '/run/rolesanywhere-credentiald/token');
  t.equal(defaultTokenFile({ XDG_RUNTIME_DIR: '/run/user/0' }, 0), '/run/rolesanywhere-credentiald/token');
  t.equal(defaultTokenFile({ XDG_RUNTIME_DIR: '/run/user/5' }, 5), '/run/user/5/rolesanywhere-credentiald/token');
  t.equal(defaultTokenFile({ HOME: '/home/u' }, 5), '/home/u/.cache/rolesanywhere-credentiald/token');
  t.equal(defaultTokenFile({ HOME: '/home/u', XDG_CACHE_HOME: '/c' }, 5), '/c/rolesanywhere-credentiald/token');
});

t.test('nothing configured', async (t) => {
  await t.rejects(loadDaemonConfig({ argv: [], env: {} }), { message: /^no profile configured: give --config FILE/ });
});

t.test('precedence: flag > env > file, for several fields', async (t) => {
  const { dir, file } = await withFile(`
listen: ["127.0.0.1:1001"]
tokenFile: file-token
logLevel: warn
imds: { enabled: true, allowV1: false }
sessionDuration: 1200
profiles:
  app:${PROFILE_YAML}
`);
  const envAll = {
    ROLESANYWHERE_LISTEN: '127.0.0.1:2001, [::1]:2002',
    ROLESANYWHERE_TOKEN_FILE: '/env/token',
    ROLESANYWHERE_LOG_LEVEL: 'debug',
    ROLESANYWHERE_NO_IMDS: 'true',
    ROLESANYWHERE_IMDS_ALLOW_V1: '1',
    ROLESANYWHERE_SESSION_DURATION: '1800',
    ROLESANYWHERE_ROLE_ARN: 'arn:aws:iam::123456789012:role/from-env',
  };
  // File only.
  let cfg = await loadDaemonConfig({ argv: ['--config', file], env: {}, cwd: '/elsewhere' });
  t.same(cfg.listen, [{ host: '127.0.0.1', port: 1001 }]);
  t.equal(cfg.tokenFile, join(dir, 'file-token'), 'relative to the config file');
  t.equal(cfg.logLevel, 'warn');
  t.equal(cfg.imds.enabled, true);
  t.equal(cfg.profiles.app!.sessionDuration, 1200, 'top-level default applies');
  t.equal(cfg.profiles.app!.roleArn, ROLE);
  t.equal(cfg.profiles.app!.certificate, join(dir, 'tls.crt'));
  t.equal(cfg.source, file);

  // Env beats file.
  cfg = await loadDaemonConfig({ argv: [], env: { ...envAll, ROLESANYWHERE_CONFIG: file }, cwd: '/elsewhere' });
  t.same(cfg.listen, [
    { host: '127.0.0.1', port: 2001 },
    { host: '::1', port: 2002 },
  ]);
  t.equal(cfg.tokenFile, '/env/token');
  t.equal(cfg.logLevel, 'debug');
  t.equal(cfg.imds.enabled, false);
  t.equal(cfg.imds.allowV1, true);
  t.equal(cfg.profiles.app!.sessionDuration, 1800);
  t.equal(cfg.profiles.app!.roleArn, 'arn:aws:iam::123456789012:role/from-env');
  t.equal(cfg.profiles.app!.certificate, join(dir, 'tls.crt'), 'unset fields stay from the file');
  t.equal(cfg.defaultProfile, 'app');

  // Flags beat env.
  cfg = await loadDaemonConfig({
    argv: ['--config', file, '--listen', '127.0.0.1:3001', '--token-file', 'flag-token', '--log-level', 'error', '--imds', '--session-duration', '2400', '--role-arn', 'arn:aws:iam::123456789012:role/from-flag', '--certificate', 'mine.pem'],
    env: envAll,
    cwd: '/cwd',
  });
  t.same(cfg.listen, [{ host: '127.0.0.1', port: 3001 }]);
  t.equal(cfg.tokenFile, '/cwd/flag-token', 'flag paths are relative to the working directory');
  t.equal(cfg.logLevel, 'error');
  t.equal(cfg.imds.enabled, true);
  t.equal(cfg.profiles.app!.sessionDuration, 2400);
  t.equal(cfg.profiles.app!.roleArn, 'arn:aws:iam::123456789012:role/from-flag');
  t.equal(cfg.profiles.app!.certificate, '/cwd/mine.pem');
  t.equal(cfg.profiles.app!.privateKey, join(dir, 'tls.key'));
});

t.test('--port and ROLESANYWHERE_PORT', async (t) => {
  let cfg = await loadDaemonConfig({ argv: [...FLAGS, '--port', '0'], env: {} });
  t.same(cfg.listen, [{ host: '127.0.0.1', port: 0 }]);
  cfg = await loadDaemonConfig({ argv: FLAGS, env: { ROLESANYWHERE_PORT: '9000' } });
  t.same(cfg.listen, [{ host: '127.0.0.1', port: 9000 }]);
  const ps = await problems(loadDaemonConfig({ argv: [...FLAGS, '--port', '1', '--listen', '127.0.0.1:2'], env: {} }));
  t.match(byPath(ps)['--port'], /either --listen or --port/);
});

t.test('listen addresses', async (t) => {
  t.same(parseListenAddress('[::1]:9911').address, { host: '::1', port: 9911 });
  // #21 item 6: a host name is checked by its text but bound by what it resolves to (a private /etc/hosts can make app.localhost 0.0.0.0).
  for (const name of ['localhost:80', 'app.localhost:9911', 'metadata.internal:80']) {
    t.match(parseListenAddress(name).error, /is not an IP address; give an IP address \(127\.0\.0\.1:PORT, \[::1\]:PORT\), not a host name/, name);
  }
  t.match(parseListenAddress('::1:9911').error, /brackets/);
  t.match(parseListenAddress('127.0.0.1').error, /expected "host:port"/);
  t.match(parseListenAddress('127.0.0.1:70000').error, /1\.\.65535/);
  t.match(parseListenAddress('[nope]:1').error, /not an IPv6 address/);

  const { file } = await withFile(`
listen: ["[::1]:9911", 9912, "0.0.0.0:9911", "[::1]:9911", "::1:5", "127.0.0.1:99999"]
profiles:
  app:${PROFILE_YAML}
`);
  const ps = byPath(await problems(loadDaemonConfig({ argv: ['--config', file], env: {} })));
  t.equal(ps['listen[1]'], 'expected "host:port", got a number');
  t.match(ps['listen[2]'], /0\.0\.0\.0:9911 is not a loopback address.*allowNonLoopback: true/);
  t.equal(ps['listen[3]'], 'duplicate of listen[0]');
  t.match(ps['listen[4]'], /brackets/);
  t.match(ps['listen[5]'], /port must be/);

  const ok = await withFile(`
listen: ["0.0.0.0:9911", "[::1]:9911"]
allowNonLoopback: true
profiles:
  app:${PROFILE_YAML}
`);
  const cfg = await loadDaemonConfig({ argv: ['--config', ok.file], env: {} });
  t.equal(cfg.allowNonLoopback, true);
  t.same(cfg.listen, [
    { host: '0.0.0.0', port: 9911 },
    { host: '::1', port: 9911 },
  ]);
  const cfg2 = await loadDaemonConfig({ argv: [...FLAGS, '--listen', '0.0.0.0:1', '--allow-non-loopback'], env: {} });
  t.equal(cfg2.allowNonLoopback, true);
  const ps2 = await problems(loadDaemonConfig({ argv: [...FLAGS, '--listen', '10.1.2.3:1'], env: {} }));
  t.match(ps2[0]!.message, /set --allow-non-loopback/);
  t.equal(ps2[0]!.path, '--listen[0]');
});

t.test('unknown keys at every level suggest the closest key', async (t) => {
  const { file } = await withFile(`
listne: ["127.0.0.1:1"]
imds: { enabeld: true, profile: app }
refresh: { backoffInitalMs: 5 }
watch: { debounce: 5 }
profiles:
  app:${PROFILE_YAML}
    roleArm: x
    zzzzzzzzzzzz: 1
`);
  const ps = byPath(await problems(loadDaemonConfig({ argv: ['--config', file], env: {} })));
  t.equal(ps['listne'], 'unknown key — did you mean listen?');
  t.equal(ps['imds.enabeld'], 'unknown key — did you mean enabled?');
  t.equal(ps['refresh.backoffInitalMs'], 'unknown key — did you mean backoffInitialMs?');
  t.equal(ps['watch.debounce'], 'unknown key — did you mean debounceMs?');
  t.equal(ps['profiles.app.roleArm'], 'unknown key — did you mean roleArn?');
  t.match(ps['profiles.app.zzzzzzzzzzzz'], /^unknown key \(known keys: certificate, /);
});

t.test('all problems reported together, in one message', async (t) => {
  const { file } = await withFile(`
listen: ["0.0.0.0:1"]
logLevel: loud
sessionDuration: 10
refresh: { backoffInitialMs: 5000, backoffMaxMs: 100 }
watch: { debounceMs: -1, recheckIntervalMs: "soon" }
imds: { profile: nope }
profiles:
  app:
    certificate: a.pem
    trustAnchorArn: ${TA}
    profileArn: ${PA_EU}
    roleArn: arn:aws:iam::123:role/x
  "bad name!":${PROFILE_YAML}
  other: [1, 2]
`);
  let err: unknown;
  try {
    await loadDaemonConfig({ argv: ['--config', file], env: {} });
  } catch (e) {
    err = e;
  }
  t.ok(err instanceof ConfigError && err instanceof UserError);
  const e = err as ConfigError;
  const ps = byPath(e.problems);
  t.match(ps['listen[0]'], /not a loopback/);
  t.match(ps['logLevel'], /expected one of fatal, error, warn, info, debug, trace, got "loud"/);
  t.match(ps['sessionDuration'], /900 to 43200/);
  t.match(ps['refresh.backoffMaxMs'], /smaller than refresh.backoffInitialMs/);
  t.match(ps['watch.debounceMs'], /0 to 600000/);
  t.match(ps['watch.recheckIntervalMs'], /milliseconds/);
  t.match(ps['imds.profile'], /no profile named "nope"/);
  t.match(ps['profiles.app.privateKey'], /required/);
  t.match(ps['profiles.app.profileArn'], /eu-west-1 but the trust anchor is in us-east-1/);
  t.match(ps['profiles.app.roleArn'], 'not an IAM role ARN (expected arn:aws:iam::<12-digit account>:role/<name>)');
  t.match(ps['profiles.bad name!'], /letters, digits/);
  t.match(ps['profiles.other'], /expected a mapping of profile settings, got a list/);
  t.equal(e.problems.length, 12);
  t.ok(e.message.startsWith(`invalid configuration (${file}), 12 problems:\n  listen[0]: `), 'header then one line per problem');
  t.equal(e.message.split('\n').length, 13);
});

t.test('YAML syntax errors carry line and column', async (t) => {
  const { file } = await withFile('listen: ["127.0.0.1:1"\nprofiles:\n  a: 1\n');
  const ps = await problems(loadDaemonConfig({ argv: ['--config', file], env: {} }));
  t.match(ps[0]!.path, /^line \d+, column \d+$/);
  t.match(ps[0]!.message, /^YAML syntax error: /);
  const dup = await withFile('listen: []\nlisten: []\n');
  const ps2 = await problems(loadDaemonConfig({ argv: ['--config', dup.file], env: {} }));
  t.equal(ps2[0]!.path, 'line 2, column 1');
  t.match(ps2[0]!.message, /unique/);
});

t.test('an oversize config file is refused before it is read whole', async (t) => {
  const good = `profiles:\n  default:${PROFILE_YAML}\n`;
  const pad = (total: number) => good + '#'.repeat(total - good.length - 1) + '\n';
  const atCap = await withFile(pad(MAX_CONFIG_BYTES));
  const cfg = await loadDaemonConfig({ argv: ['--config', atCap.file], env: {} });
  t.same(Object.keys(cfg.profiles), ['default'], 'a file of exactly the cap loads');
  const over = await withFile(pad(MAX_CONFIG_BYTES + 1));
  await t.rejects(loadDaemonConfig({ argv: ['--config', over.file], env: {} }), {
    message: `config file ${over.file} (from --config) is ${MAX_CONFIG_BYTES + 1} bytes, more than the ${MAX_CONFIG_BYTES} bytes a config file can be; check that the path names the YAML config file`,
    reason: 'file_too_large',
  });
  // A device with no size: refused after the cap, not read forever.
  await t.rejects(loadDaemonConfig({ argv: [], env: { ROLESANYWHERE_CONFIG: '/dev/zero' } }), {
    message: `config file /dev/zero (from ROLESANYWHERE_CONFIG) is larger than the ${MAX_CONFIG_BYTES} bytes a config file can be; check that the path names the YAML config file`,
    reason: 'file_too_large',
  });
});

t.test('empty, missing, non-mapping files', async (t) => {
  const empty = await withFile('# nothing here\n');
  await t.rejects(loadDaemonConfig({ argv: ['--config', empty.file], env: {} }), { message: /config file .* is empty; see config\/daemon.example.yaml/ });
  await t.rejects(loadDaemonConfig({ argv: ['--config', join(empty.dir, 'nope.yaml')], env: {} }), { message: /^config file not found: .*nope.yaml \(from --config\)/ });
  await t.rejects(loadDaemonConfig({ argv: [], env: { ROLESANYWHERE_CONFIG: join(empty.dir, 'nope.yaml') } }), { message: /from ROLESANYWHERE_CONFIG/ });
  await t.rejects(loadDaemonConfig({ argv: ['--config', empty.dir], env: {} }), { message: /is a directory/ });
  const list = await withFile('- a\n- b\n');
  await t.rejects(loadDaemonConfig({ argv: ['--config', list.file], env: {} }), { message: /must be a YAML mapping/ });
  const noProfiles = await withFile('logLevel: info\n');
  const ps = byPath(await problems(loadDaemonConfig({ argv: ['--config', noProfiles.file], env: {} })));
  t.match(ps['profiles'], /^required/);
  if (process.getuid?.() !== 0) {
    const locked = await withFile('logLevel: info\n');
    await chmod(locked.file, 0);
    await t.rejects(loadDaemonConfig({ argv: ['--config', locked.file], env: {} }), { message: /permission denied/ });
  }
});

t.test('IMDS profile rules and defaultProfile', async (t) => {
  const two = `
profiles:
  a:${PROFILE_YAML}
  b:${PROFILE_YAML}
`;
  const { file } = await withFile(two);
  const ps = byPath(await problems(loadDaemonConfig({ argv: ['--config', file], env: {} })));
  t.match(ps['imds.profile'], /required: IMDS serves one profile and there are 2 \(a, b\)/);
  const off = await loadDaemonConfig({ argv: ['--config', file, '--no-imds'], env: {} });
  t.equal(off.imds.enabled, false);
  t.equal(off.defaultProfile, undefined);
  t.same(Object.keys(off.profiles), ['a', 'b']);
  const chosen = await withFile(`imds: { profile: b }\n${two}`);
  const cfg = await loadDaemonConfig({ argv: ['--config', chosen.file], env: {} });
  t.equal(cfg.imds.profile, 'b');
  t.equal(cfg.defaultProfile, 'b');
});

t.test('profile flags with a file', async (t) => {
  const { file } = await withFile(`
region: us-east-1
profiles:
  a:${PROFILE_YAML}
  b:${PROFILE_YAML}
imds: { enabled: false }
`);
  const ps = byPath(await problems(loadDaemonConfig({ argv: ['--config', file, '--role-session-name', 'xx'], env: {} })));
  t.match(ps['command line'], /apply to one profile, but the config has several \(a, b\); add --profile-name NAME/);
  const cfg = await loadDaemonConfig({ argv: ['--config', file, '--profile-name', 'b', '--role-session-name', 'xx'], env: {} });
  t.equal(cfg.profiles.b!.roleSessionName, 'xx');
  t.equal(cfg.profiles.a!.roleSessionName, undefined);
  // A new profile defined entirely by flags next to the file's.
  const cfg2 = await loadDaemonConfig({ argv: ['--config', file, '--profile-name', 'c', ...FLAGS], env: {}, cwd: '/cwd' });
  t.same(Object.keys(cfg2.profiles).sort(), ['a', 'b', 'c']);
  t.equal(cfg2.profiles.c!.certificate, '/cwd/c.pem');
  // Incomplete new profile: errors name the flags.
  const ps3 = byPath(await problems(loadDaemonConfig({ argv: ['--config', file, '--profile-name', 'c', '--certificate', 'x.pem'], env: {} })));
  t.match(ps3['--trust-anchor-arn (or ROLESANYWHERE_TRUST_ANCHOR_ARN)'], /^required/);
  const ps4 = byPath(await problems(loadDaemonConfig({ argv: ['--config', file, '--profile-name', 'zz'], env: {} })));
  t.match(ps4['--profile-name'], /no profile named "zz" in the config \(defined: a, b\)/);
  // Top-level region that contradicts a profile's trust anchor.
  const mism = await withFile(`
region: us-east-1
profiles:
  eu:
    certificate: c.p12
    trustAnchorArn: ${TA_EU}
    profileArn: ${PA_EU}
    roleArn: ${ROLE}
`);
  const ps5 = byPath(await problems(loadDaemonConfig({ argv: ['--config', mism.file], env: {} })));
  t.match(ps5['profiles.eu.region'], /top-level region us-east-1 does not match the trust anchor's region eu-west-1/);
});

t.test('a password source on the command line replaces the file\'s password file', async (t) => {
  const { file } = await withFile(`
profiles:
  app:${PROFILE_YAML}
    keyPasswordFile: pass.txt
`);
  const cfg = await loadDaemonConfig({ argv: ['--config', file], env: {} });
  t.match(cfg.profiles.app!.keyPasswordFile, /pass\.txt$/);
  const cfg2 = await loadDaemonConfig({ argv: ['--config', file], env: { ROLESANYWHERE_KEY_PASSWORD: 's3cret' } });
  t.equal(cfg2.profiles.app!.keyPasswordFile, undefined);
  t.ok(cfg2.profiles.app!.keyPassword === 's3cret');
  const text = explainConfig(cfg2);
  t.notMatch(text, 's3cret', 'explainConfig hides the password');
  t.match(text, /key password: given \(hidden\)/);
});

t.test('unknown flags are UserErrors', async (t) => {
  t.throws(() => parseServeArgs(['--nope']), { name: 'UserError', message: /Unknown option '--nope'.*serve --help/ });
  t.throws(() => parseServeArgs(['stray']), { name: 'UserError' });
});

t.test('loading writes nothing', async (t) => {
  const { dir, file } = await withFile(`
tokenFile: run/token
profiles:
  app:${PROFILE_YAML}
`);
  const runtime = join(dir, 'xdg');
  await mkdir(runtime);
  const before = await readdir(dir);
  const mtime = (await stat(file)).mtimeMs;
  await loadDaemonConfig({ argv: ['--config', file], env: { XDG_RUNTIME_DIR: runtime } });
  await loadDaemonConfig({ argv: FLAGS, env: { XDG_RUNTIME_DIR: runtime }, cwd: dir });
  t.same(await readdir(dir), before, 'no token dir or other file created next to the config');
  t.same(await readdir(runtime), [], 'nothing created in the runtime dir');
  t.equal((await stat(file)).mtimeMs, mtime);
});

t.test('refresh.maxConcurrent and refresh.maxCallsPerSecond (the shared CreateSession limiter)', async (t) => {
  const unset = await withFile(`
profiles:
  app:${PROFILE_YAML}
`);
  const cfg0 = await loadDaemonConfig({ argv: ['--config', unset.file], env: {} });
  t.equal(cfg0.refresh.maxConcurrent, undefined, 'unset: the limiter default (4) applies');
  t.equal(cfg0.refresh.maxCallsPerSecond, undefined, 'unset: the limiter default (10) applies');

  const set = await withFile(`
refresh: { backoffInitialMs: 500, maxConcurrent: 16, maxCallsPerSecond: "50" }
profiles:
  app:${PROFILE_YAML}
`);
  const cfg = await loadDaemonConfig({ argv: ['--config', set.file], env: {} });
  t.same(cfg.refresh, { backoffInitialMs: 500, backoffMaxMs: 30000, maxConcurrent: 16, maxCallsPerSecond: 50 });

  const bad = await withFile(`
refresh: { maxConcurrent: 0, maxCallsPerSecond: 2.5 }
profiles:
  app:${PROFILE_YAML}
`);
  const ps = byPath(await problems(loadDaemonConfig({ argv: ['--config', bad.file], env: {} })));
  t.equal(ps['refresh.maxConcurrent'], 'must be a number of calls from 1 to 1000, got 0');
  t.equal(ps['refresh.maxCallsPerSecond'], 'must be calls per second from 1 to 10000, got 2.5');
  t.equal(Object.keys(ps).length, 2);

  const bad2 = await withFile(`
refresh: { maxConcurrent: 1001, maxCallsPerSecond: "fast", maxCalsPerSecond: 3 }
profiles:
  app:${PROFILE_YAML}
`);
  const ps2 = byPath(await problems(loadDaemonConfig({ argv: ['--config', bad2.file], env: {} })));
  t.match(ps2['refresh.maxConcurrent'], /from 1 to 1000, got 1001/);
  t.match(ps2['refresh.maxCallsPerSecond'], /from 1 to 10000, got "fast"/);
  t.equal(ps2['refresh.maxCalsPerSecond'], 'unknown key — did you mean maxCallsPerSecond?');
});

t.test('messages naming profiles list at most 10 of 1000', async (t) => {
  const names = Array.from({ length: 1000 }, (_, i) => `p${String(i).padStart(4, '0')}`);
  const { file } = await withFile(`profiles:\n${names.map((n) => `  ${n}:${PROFILE_YAML}`).join('\n')}\n`);
  const ps = byPath(await problems(loadDaemonConfig({ argv: ['--config', file], env: {} })));
  t.equal(ps['imds.profile'], 'required: IMDS serves one profile and there are 1000 (p0000, p0001, p0002, p0003, p0004, p0005, p0006, p0007, p0008, p0009 … and 990 more); name one, or set imds.enabled: false');
});
