// `serve` as a uid with no passwd entry and no HOME (a container's numeric user,
// a systemd DynamicUser before nss-systemd): it starts when the token file is
// given, and says what to set when a default needs the home directory.
import t from 'tap';
import { execFile } from 'node:child_process';
import { chmod, chown, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { otherUserRuntime, runProcess } from '../helpers/cli.js';
import { httpRequest, spawnServe } from '../helpers/daemon.js';
import { startTestEmulator } from '../helpers/emulator.js';
import { tempDir } from '../helpers/pki.js';
import { missing as needs } from '../helpers/needs.js';

const run = promisify(execFile);
const UID = 12345;

// The other uid runs copies of Node and the CLI (the clone may be closed to it).
const cannot = needs('other-user');
const rt = cannot ? { skip: cannot } : await otherUserRuntime();
if ('skip' in rt) {
  t.plan(0, rt.skip);
} else {
  t.rejects(run('getent', ['passwd', String(UID)]), `uid ${UID} has no passwd entry`);
  const emu = await startTestEmulator(t);
  const dir = await tempDir('ra-nohome-');
  await chmod(dir, 0o755);
  await chmod(emu.dir, 0o755);
  await chmod(emu.leaf.certPath, 0o644);
  await chown(emu.leaf.keyPath, UID, UID);
  const run_ = join(dir, 'run');
  await mkdir(run_);
  await chown(run_, UID, UID);
  const asUnknown = [`--reuid=${UID}`, `--regid=${UID}`, '--clear-groups', rt.node, rt.cli];
  const profile = [
    '--certificate', emu.leaf.certPath, '--private-key', emu.leaf.keyPath,
    '--trust-anchor-arn', emu.arns.trustAnchorArn, '--profile-arn', emu.arns.profileArn, '--role-arn', emu.arns.roleArn,
    '--endpoint', emu.url, '--listen', '127.0.0.1:0',
  ];
  // No HOME, no XDG_*: only PATH (undefined drops the HOME the helpers pass on).
  const env = { PATH: process.env.PATH, HOME: undefined };

  t.test('with --token-file it starts and serves', async (t) => {
    const tokenFile = join(run_, 'token');
    const d = spawnServe(t, [...profile, '--token-file', tokenFile], env, ['setpriv', ...asUnknown]);
    const port = await d.port();
    await d.waitForOutput(/"outcome":"success"/);
    t.equal((await httpRequest(port, 'GET', '/readyz')).status, 200, 'ready: it holds credentials');
    // A client running as the same unknown uid (callers default to the daemon's own user).
    const fetchAs = await runProcess('setpriv', [...asUnknown.slice(0, -1), '-e', `fetch('http://127.0.0.1:${port}/v1/credentials', { headers: { authorization: require('fs').readFileSync(${JSON.stringify(tokenFile)}, 'utf8') } }).then(r => process.stdout.write(String(r.status)))`], { cleanEnv: true, env });
    t.equal(fetchAs.stdout, '200', `credentials served (${fetchAs.stderr.slice(0, 200)})`);
    t.notMatch(d.output(), /uv_os_homedir|ENOENT/);
    d.child.kill('SIGTERM');
    t.same(await d.exited, { code: 0, signal: null });
  });

  t.test('without one, the error says what needs a home and what to set', async (t) => {
    const r = await runProcess('setpriv', [...asUnknown, 'serve', ...profile], { cleanEnv: true, env, cwd: run_ });
    t.equal(r.code, 1);
    t.match(r.stderr, /the default token file .* needs a home directory, but HOME is not set and uid 12345 has no entry in the user database/);
    t.match(r.stderr, /--token-file/);
    t.notMatch(r.stderr, /uv_os_homedir/);
  });
}
