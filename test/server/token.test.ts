// The endpoint token file in the directories containers really get: kubelet's
// emptyDir (0777 root:root, or 2777 root:fsGroup), a memory-backed one or a
// docker/podman --tmpfs (1777, 3777 with fsGroup). Real directories made here
// as root, the real daemon run as a non-root uid with setpriv, an application
// as its own uid (the AWS SDK), and an attacker uid that plants a file or a
// symbolic link at the token path first. A directory owned by another non-root
// user is still refused, and no message advises changing a directory's mode.
import t, { type Test } from 'tap';
import { chmod, chown, lchown, lstat, mkdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { otherUserRuntime, runProcess } from '../helpers/cli.js';
import { httpRequest, spawnServe, waitUntil, type ServeProcess } from '../helpers/daemon.js';
import { emulatorProfileYaml, startTestEmulator, type TestEmulator } from '../helpers/emulator.js';
import { tempDir } from '../helpers/pki.js';
import { ensureEndpointToken } from '../../src/server/token.js';

// Numeric stand-ins: no /etc/passwd entries needed (as in a container image).
const DAEMON_UID = 61301;
const FS_GROUP = 61300; // the pod's fsGroup
const APP_UID = 61302; // the app container, another uid with the fsGroup
const ATTACKER_UID = 61303;
const OWNER_UID = 61304; // another non-root user owning a directory

const setpriv = (uid: number, gid: number, groups: number[]) => ['setpriv', `--reuid=${uid}`, `--regid=${gid}`, groups.length ? `--groups=${groups.join(',')}` : '--clear-groups'];
const env = { PATH: process.env.PATH, HOME: undefined };
const NO_MODE_ADVICE = /chmod (go-w|[0-7]*7{2,}|o-w|a-w|-t|\+t)|chmod [^ ]* \/tmp/;

// The other uids run copies of Node, the CLI and the SDK (the clone may be closed to them: /root, a 0700 directory).
const rt = process.getuid?.() === 0 ? await otherUserRuntime() : undefined;
if (rt === undefined) {
  t.fail('this test makes root-owned directories and runs the daemon as other uids with setpriv: it needs root (.ci/run runs as root)');
} else if ('skip' in rt) {
  t.plan(0, rt.skip);
} else {
  const base = await tempDir('ra-token-dirs-');
  await chmod(base, 0o755);

  /** A root-owned directory as a runtime makes it. */
  const volume = async (name: string, mode: number, gid = 0) => {
    const dir = join(base, name);
    await mkdir(dir);
    await chown(dir, 0, gid);
    await chmod(dir, mode); // after chown: chown clears setgid
    return dir;
  };

  t.test('in-process: shared directories get a token the daemon writes itself; a reload keeps it while it is that file', async (t) => {
    for (const [mode, gid] of [
      [0o777, 0],
      [0o2777, FS_GROUP],
      [0o1777, 0],
      [0o3777, FS_GROUP],
    ] as const) {
      const dir = await volume(`inproc-${mode.toString(8)}`, mode, gid);
      const path = join(dir, 'token');
      await writeFile(path, 'planted-token-0123456789abcdef', { mode: 0o644 });
      const first = await ensureEndpointToken(path);
      t.equal(first.created, true, `${mode.toString(8)}: a new token, not the one found there`);
      t.not(first.value, 'planted-token-0123456789abcdef');
      t.equal(await readFile(path, 'utf8'), first.value, 'the file holds what the daemon serves');
      const st = await lstat(path);
      t.equal(st.mode & 0o777, gid ? 0o640 : 0o600, `${mode.toString(8)}: file mode`);
      t.equal(st.gid, gid, `${mode.toString(8)}: the directory's group (setgid) or ours`);
      t.match(first.shared, new RegExp(`token directory ${dir} is writable by other users \\(mode ${mode.toString(8)}, owner uid 0, group ${gid}.*accepted because the daemon trusts only a token file it creates there itself.*replaced what was there \\(a file of uid 0\\) without reading it`));
      const again = await ensureEndpointToken(path, first);
      t.equal(again.value, first.value, 'a reload keeps the token while the path is the file it wrote');
      t.equal(again.created, false);
      t.equal(again.shared, undefined, 'nothing to say again');
      // Replaced by another user (same content even, maybe the same inode number): not ours any more.
      await rm(path);
      await writeFile(path, first.value, { mode: 0o600 });
      await chown(path, ATTACKER_UID, ATTACKER_UID);
      const after = await ensureEndpointToken(path, first);
      t.equal(after.created, true, 'a replaced file is not trusted');
      t.not(after.value, first.value);
      t.match(after.shared, new RegExp(`the token file was replaced or removed since this daemon wrote it \\(now a file of uid ${ATTACKER_UID}\\), so it wrote a new one`));
      await rm(path);
      const gone = await ensureEndpointToken(path, after);
      t.equal(gone.created, true, 'a removed file is written again');
      t.equal(await readFile(path, 'utf8'), gone.value);
      t.match(gone.shared, /wrote a new token file/);
      t.notMatch(gone.shared, /replaced/);
    }
  });

  t.test('in-process: a symbolic link at the token path is replaced, never followed', async (t) => {
    const dir = await volume('inproc-link', 0o777);
    const target = join(base, 'link-target');
    await writeFile(target, 'not-the-daemons-file');
    await symlink(target, join(dir, 'token'));
    const tok = await ensureEndpointToken(join(dir, 'token'));
    t.equal(await readFile(target, 'utf8'), 'not-the-daemons-file', 'the link target is untouched');
    t.ok((await lstat(join(dir, 'token'))).isFile(), 'a regular file now');
    t.match(tok.shared, /replaced what was there \(a symbolic link of uid 0\)/);
  });

  t.test('in-process: a private directory is read as before; a directory of another non-root user is refused', async (t) => {
    const priv = await volume('private', 0o755);
    await writeFile(join(priv, 'token'), 'my-own-chosen-token-0123456789', { mode: 0o600 });
    const mine = await ensureEndpointToken(join(priv, 'token'));
    t.equal(mine.value, 'my-own-chosen-token-0123456789', 'a token put in a private directory is used');
    t.equal(mine.shared, undefined);
    for (const mode of [0o755, 0o777, 0o1777]) {
      const theirs = join(base, `theirs-${mode.toString(8)}`);
      await mkdir(theirs);
      await chown(theirs, OWNER_UID, OWNER_UID);
      await chmod(theirs, mode);
      const err = await ensureEndpointToken(join(theirs, 'token')).catch((e: Error) => e);
      t.match(err, { reason: 'token_file_directory', message: new RegExp(`directory ${theirs} belongs to uid ${OWNER_UID}, neither this user \\(uid 0\\) nor root.*\\$XDG_RUNTIME_DIR.*RuntimeDirectory.*pod volume`) }, `${mode.toString(8)}: refused`);
      t.notMatch((err as Error).message, /chmod/, 'no advice to change its mode');
    }
  });

  // ---- the real daemon as a non-root uid ----
  const emu: TestEmulator = await startTestEmulator(t);
  await chmod(emu.dir, 0o755);
  await chmod(emu.leaf.certPath, 0o644);
  await chown(emu.leaf.keyPath, DAEMON_UID, 0);

  // callers: the daemon's uid, the app's, and 0 (this test's own requests).
  const serve = async (t: Test, dir: string, groups: number[] = []) => {
    const config = join(base, `config-${dir.split('/').pop()}.yaml`);
    await writeFile(
      config,
      ['listen: ["127.0.0.1:0"]', `tokenFile: ${join(dir, 'token')}`, `callers: { users: [${DAEMON_UID}, ${APP_UID}, 0] }`, 'profiles:', ...emulatorProfileYaml(emu), ''].join('\n'),
      { mode: 0o644 },
    );
    return spawnServe(t, ['--config', config], env, [...(setpriv(DAEMON_UID, groups[0] ?? DAEMON_UID, groups) as [string, ...string[]]), rt.node, rt.cli]);
  };
  const ready = async (d: ServeProcess) => {
    const port = await d.port();
    await waitUntil('ready', async () => (await httpRequest(port, 'GET', '/readyz')).status === 200);
    return port;
  };
  /** The application: the real AWS SDK as its own uid, with the endpoint and the token file path. */
  const appScript = await rt.script('app.cjs', `require('@aws-sdk/credential-providers').fromHttp({})().then((c) => process.stdout.write(c.accessKeyId), (e) => { process.stderr.write(String(e)); process.exit(1); })`);
  const app = (uid: number, gid: number, groups: number[], port: number, tokenFile: string) => {
    const [cmd, ...pre] = setpriv(uid, gid, groups);
    return runProcess(
      cmd!,
      [...pre, rt.node, appScript],
      { cleanEnv: true, env: { ...env, AWS_CONTAINER_CREDENTIALS_FULL_URI: `http://127.0.0.1:${port}/v1/credentials`, AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE: tokenFile } },
    );
  };

  for (const [mode, what, fsGroup] of [
    [0o777, 'kubelet emptyDir', undefined],
    [0o2777, 'kubelet emptyDir with fsGroup', FS_GROUP],
    [0o1777, 'podman/docker --tmpfs, memory-backed emptyDir', undefined],
    [0o3777, 'memory-backed emptyDir with fsGroup', FS_GROUP],
  ] as const) {
    t.test(`${mode.toString(8)} root${fsGroup ? ':fsGroup' : ''} (${what}): the daemon starts as uid ${DAEMON_UID} and serves`, async (t) => {
      const dir = await volume(`d${mode.toString(8)}`, mode, fsGroup ?? 0);
      const tokenFile = join(dir, 'token');
      const d = await serve(t, dir, fsGroup ? [fsGroup] : []);
      const port = await ready(d);
      const st = await stat(tokenFile);
      t.equal(st.uid, DAEMON_UID, 'the daemon created the file');
      t.equal(st.mode & 0o777, fsGroup ? 0o640 : 0o600, 'group-readable only with fsGroup (setgid)');
      if (fsGroup) t.equal(st.gid, fsGroup, 'group = fsGroup');
      const lines = d.output().split('\n').filter((l) => l.includes('is writable by other users'));
      t.equal(lines.length, 1, 'one log line says what was accepted and why');
      t.match(lines[0], new RegExp(`token directory ${dir} is writable by other users \\(mode ${mode.toString(8)}.*accepted because the daemon trusts only a token file it creates there itself`));
      t.notMatch(d.output(), NO_MODE_ADVICE, 'no advice to change a directory mode');
      // Same uid as the daemon (the example pod), or — with fsGroup — another uid that has the group.
      const self = await app(DAEMON_UID, DAEMON_UID, [], port, tokenFile);
      t.equal(self.code, 0, `same-uid app got credentials (${self.stderr.slice(0, 300)})`);
      t.ok(emu.emulator.issued.some((c) => c.accessKeyId === self.stdout), 'issued by the emulator');
      const other = await app(APP_UID, APP_UID, fsGroup ? [fsGroup] : [], port, tokenFile);
      if (fsGroup) t.equal(other.code, 0, `an app with another uid in the fsGroup got credentials (${other.stderr.slice(0, 300)})`);
      else t.not(other.code, 0, 'without fsGroup another uid cannot read the token');
      d.child.kill('SIGTERM');
      await d.exited;
    });
  }

  t.test('1777: an attacker plants a token file or a symbolic link first: never trusted, and refused with who did it', async (t) => {
    for (const kind of ['file', 'symlink'] as const) {
      const dir = await volume(`attacked-sticky-${kind}`, 0o1777);
      const tokenFile = join(dir, 'token');
      const planted = 'attacker-chosen-token-0123456789';
      const decoy = join(base, `decoy-${kind}`);
      await writeFile(decoy, planted);
      await chown(decoy, ATTACKER_UID, ATTACKER_UID);
      if (kind === 'file') await writeFile(tokenFile, planted, { mode: 0o644 });
      else await symlink(decoy, tokenFile);
      await (kind === 'file' ? chown : lchown)(tokenFile, ATTACKER_UID, ATTACKER_UID);
      const d = await serve(t, dir);
      const exit = await d.exited;
      t.not(exit.code, 0, `${kind}: the daemon does not start with it`);
      t.match(d.stderr(), new RegExp(`token file ${tokenFile} is a ${kind === 'file' ? 'file' : 'symbolic link'} of uid ${ATTACKER_UID}, not created by this daemon.*never trusted.*have uid ${ATTACKER_UID} or root remove it.*\\$XDG_RUNTIME_DIR`));
      t.notMatch(d.output(), NO_MODE_ADVICE);
      t.equal(await readFile(decoy, 'utf8'), planted, 'the link target is untouched');
      t.equal((await lstat(tokenFile)).uid, ATTACKER_UID, 'left as it was');
    }
  });

  t.test('0777 (no sticky bit): an attacker file is replaced, its token refused; replaced again later, a reload writes a new one', async (t) => {
    const dir = await volume('attacked-open', 0o777);
    const tokenFile = join(dir, 'token');
    const planted = 'attacker-chosen-token-0123456789';
    await writeFile(tokenFile, planted, { mode: 0o644 });
    await chown(tokenFile, ATTACKER_UID, ATTACKER_UID);
    const d = await serve(t, dir);
    const port = await ready(d);
    t.match(d.output(), new RegExp(`replaced what was there \\(a file of uid ${ATTACKER_UID}\\) without reading it`));
    const token = await readFile(tokenFile, 'utf8');
    t.not(token, planted);
    t.equal((await httpRequest(port, 'GET', '/v1/credentials', { authorization: planted })).status, 401, 'the planted token gets nothing');
    t.equal((await httpRequest(port, 'GET', '/v1/credentials', { authorization: token })).status, 200);

    // A reload with the file untouched keeps the token.
    const reloaded = () => d.output().split('configuration reloaded').length - 1;
    d.child.kill('SIGHUP');
    await waitUntil('reloaded', () => reloaded() === 1);
    t.equal(await readFile(tokenFile, 'utf8'), token, 'unchanged by a reload');
    t.equal((await httpRequest(port, 'GET', '/v1/credentials', { authorization: token })).status, 200);

    // The attacker swaps it (allowed without a sticky bit); the next reload writes a new token.
    const [cmd, ...pre] = setpriv(ATTACKER_UID, ATTACKER_UID, []);
    const swap = await runProcess(cmd!, [...pre, 'sh', '-c', `rm -f ${tokenFile} && printf %s ${planted} > ${tokenFile}`], { cleanEnv: true, env });
    t.equal(swap.code, 0, swap.stderr);
    d.child.kill('SIGHUP');
    await waitUntil('reloaded again', () => reloaded() === 2);
    t.match(d.output(), new RegExp(`the token file was replaced or removed since this daemon wrote it \\(now a file of uid ${ATTACKER_UID}\\), so it wrote a new one`));
    const fresh = await readFile(tokenFile, 'utf8');
    t.not(fresh, planted);
    t.not(fresh, token);
    t.equal((await stat(tokenFile)).uid, DAEMON_UID);
    t.equal((await httpRequest(port, 'GET', '/v1/credentials', { authorization: planted })).status, 401, 'the planted token still gets nothing');
    t.equal((await httpRequest(port, 'GET', '/v1/credentials', { authorization: fresh })).status, 200, 'the new file is what is served');
    d.child.kill('SIGTERM');
    await d.exited;
  });

  t.test('1777: the file of a previous run of the same uid (a restarted container) is replaced', async (t) => {
    const dir = await volume('restarted', 0o1777);
    const tokenFile = join(dir, 'token');
    await writeFile(tokenFile, 'previous-run-token-0123456789abc', { mode: 0o600 });
    await chown(tokenFile, DAEMON_UID, DAEMON_UID);
    const d = await serve(t, dir);
    await ready(d);
    t.match(d.output(), new RegExp(`replaced what was there \\(a file of uid ${DAEMON_UID}\\)`));
    t.not(await readFile(tokenFile, 'utf8'), 'previous-run-token-0123456789abc');
    d.child.kill('SIGTERM');
    await d.exited;
  });

  t.test('a directory owned by another non-root user is still refused (0777 and 1777 too)', async (t) => {
    for (const mode of [0o755, 0o777, 0o1777]) {
      const dir = join(base, `owned-${mode.toString(8)}`);
      await mkdir(dir);
      await chown(dir, OWNER_UID, OWNER_UID);
      await chmod(dir, mode);
      const d = await serve(t, dir);
      const exit = await d.exited;
      t.not(exit.code, 0, `${mode.toString(8)}: does not start`);
      t.match(d.stderr(), new RegExp(`the token file's directory ${dir} belongs to uid ${OWNER_UID}, neither this user \\(uid ${DAEMON_UID}\\) nor root.*\\$XDG_RUNTIME_DIR/rolesanywhere-credentiald/token, the systemd unit's RuntimeDirectory.*or a pod volume`));
      t.notMatch(d.output(), /chmod/, 'no advice to change the mode of a directory the user does not own');
    }
  });
}

