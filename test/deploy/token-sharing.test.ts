// The README's recipe for sharing the endpoint token under DynamicUser=, run as
// written (paths and group names swapped for test ones): the daemon, as a
// transient uid in the key group, reads the token through the group; an
// application, as another uid in the clients group only, reads it through the
// ACL and gets credentials with the AWS SDK — and cannot read the private key.
// A third uid in neither group can read neither. Real setfacl, real processes
// under setpriv.
import t from 'tap';
import { execFile } from 'node:child_process';
import { chmod, chown, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { otherUserRuntime, runProcess } from '../helpers/cli.js';
import { httpRequest, spawnServe, waitUntil } from '../helpers/daemon.js';
import { emulatorProfileYaml, startTestEmulator } from '../helpers/emulator.js';
import { tempDir } from '../helpers/pki.js';
import { sectionFrom } from '../helpers/readme.js';
import { missing as needs } from '../helpers/needs.js';

const run = promisify(execFile);
const heading = '**Sharing the endpoint token under `DynamicUser=`:**';
const guide = (() => {
  try {
    return sectionFrom(heading);
  } catch {
    return undefined;
  }
})();
const at = guide ? 0 : -1;
const recipe = guide ? /```sh\n([\s\S]*?)```/.exec(guide)?.[1] : undefined;

// Numeric stand-ins: no /etc/passwd or /etc/group entries needed.
const DAEMON_UID = 61201; // in systemd's DynamicUser range
const KEY_GID = 62011; // `rolesanywhere`: may read keys (and the token, through the file's group)
const CLIENTS_GID = 62010; // `rolesanywhere-clients`: the applications
const APP_UID = 62020;
const OTHER_UID = 62030;

// The daemon's and the application's uids run copies of Node, the CLI and the SDK (the clone may be closed to them).
const cannot = needs('acl', 'other-user');
const rt = cannot ? { skip: cannot } : await otherUserRuntime();
if ('skip' in rt) {
  t.plan(0, rt.skip);
} else if (at < 0 || !recipe) {
  t.fail('the docs have no "Sharing the endpoint token under DynamicUser=" recipe block');
} else {
  const etc = await tempDir('ra-token-share-');
  await chmod(etc, 0o755);
  const tokenFile = join(etc, 'etc-ra', 'token');
  const script = recipe
    .replaceAll('/etc/rolesanywhere-credentiald', join(etc, 'etc-ra'))
    .replaceAll('g:rolesanywhere-clients:', `g:${CLIENTS_GID}:`)
    .replaceAll('root:rolesanywhere ', `root:${KEY_GID} `);
  t.notMatch(script, /rolesanywhere(?!-credentiald)/, 'every group name was substituted');

  t.test('the recipe runs as written', async (t) => {
    await run('sh', ['-e', '-c', script]);
    const token = await readFile(tokenFile, 'utf8');
    t.match(token, /^[0-9a-f]{64}$/, 'a 256-bit token without a newline');
    const st = await stat(tokenFile);
    t.equal(st.mode & 0o777, 0o640);
    t.equal(st.gid, KEY_GID);
    const acl = (await run('getfacl', ['-n', '-p', tokenFile])).stdout;
    t.match(acl, new RegExp(`^group:${CLIENTS_GID}:r--`, 'm'), 'the clients group may read it');
    t.match(acl, /^other::---/m, 'nobody else');
  });

  const emu = await startTestEmulator(t);
  await chmod(emu.dir, 0o755);
  await chmod(emu.leaf.certPath, 0o644);
  await chown(emu.leaf.keyPath, 0, KEY_GID);
  await chmod(emu.leaf.keyPath, 0o640); // as the README says for keys: root:rolesanywhere 0640
  const config = join(etc, 'config.yaml');
  await writeFile(
    config,
    [
      'listen: ["127.0.0.1:0"]',
      `tokenFile: ${tokenFile}`,
      `callers: { users: [${APP_UID}] }`,
      'profiles:',
      ...emulatorProfileYaml(emu),
      '',
    ].join('\n'),
    { mode: 0o644 },
  );
  const setpriv = (uid: number, gid: number, groups: number[]) => ['setpriv', `--reuid=${uid}`, `--regid=${gid}`, groups.length ? `--groups=${groups.join(',')}` : '--clear-groups'] as const;
  const env = { PATH: process.env.PATH, HOME: undefined };

  t.test('the daemon (DynamicUser + key group) and an application (clients group, ACL) share it', async (t) => {
    const d = spawnServe(t, ['--config', config], env, [...setpriv(DAEMON_UID, DAEMON_UID, [KEY_GID]), rt.node, rt.cli]);
    const port = await d.port();
    await waitUntil('ready', async () => (await httpRequest(port, 'GET', '/readyz')).status === 200);
    t.notMatch(d.output(), /token file [^"]*(chmod|open to every local user|ends with a line break)/, 'no warning about the shared token');

    // The application: the real AWS SDK, with only what serve printed for it.
    const app_ = await rt.script('app.cjs', `require('@aws-sdk/credential-providers').fromHttp({})().then((c) => process.stdout.write(c.accessKeyId), (e) => { process.stderr.write(String(e)); process.exit(1); })`);
    const app = await runProcess(
      setpriv(APP_UID, CLIENTS_GID, [])[0],
      [
        ...setpriv(APP_UID, CLIENTS_GID, []).slice(1),
        rt.node,
        app_,
      ],
      { cleanEnv: true, env: { ...env, AWS_CONTAINER_CREDENTIALS_FULL_URI: `http://127.0.0.1:${port}/v1/credentials`, AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE: tokenFile } },
    );
    t.equal(app.code, 0, `the application got credentials (${app.stderr.slice(0, 300)})`);
    t.ok(emu.emulator.issued.some((c) => c.accessKeyId === app.stdout), 'issued by the emulator, through the daemon');

    const cat = (uid: number, gid: number, file: string) => runProcess('setpriv', [...setpriv(uid, gid, []).slice(1), 'cat', file], { cleanEnv: true, env });
    t.not((await cat(APP_UID, CLIENTS_GID, emu.leaf.keyPath)).code, 0, 'the application cannot read the private key');
    t.not((await cat(OTHER_UID, OTHER_UID, tokenFile)).code, 0, 'a user in neither group cannot read the token');
    d.child.kill('SIGTERM');
    await d.exited;
  });
}
