// Which secret-file modes `check` fails, warns or passes on, and what fix it
// names, for the user the daemon runs as: real files and modes, a private mount
// namespace in which /etc/passwd and /etc/group say who holds which group, a
// real read-only bind mount, and kubelet's atomic-writer layout (..data) made
// read-only as kubelet mounts it. The CLI runs under setpriv as uid 12345.
import t from 'tap';
import { chmod, chown, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { otherUserRuntime, runProcess, type CliResult } from '../helpers/cli.js';
import { atomicWriter } from '../helpers/kube.js';
import { makeCA, makeLeaf, tempDir } from '../helpers/pki.js';

const UID = 12345;
const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

// uid 12345 runs copies of Node and the CLI (the clone may be closed to it: /root, a 0700 directory).
const rt = process.getuid?.() === 0 ? await otherUserRuntime() : undefined;
if (rt === undefined) {
  t.fail('this test makes mounts and runs the CLI as another uid with setpriv and needs root (.ci/run runs as root)');
} else if ('skip' in rt) {
  t.plan(0, rt.skip);
} else {
  const dir = await tempDir('ra-modes-');
  await chmod(dir, 0o755);
  const ca = await makeCA(dir);
  const leaf = await makeLeaf(dir, ca, 'modes-client');
  await chmod(leaf.certPath, 0o644);
  const keyPem = await readFile(leaf.keyPath, 'utf8');
  // Who holds which group, seen only inside the test's mount namespace: `ra` (the daemon, 12345) alone in
  // group 12345; `bob` also in `team` (4343); `other`'s primary group is `shared` (4242).
  const passwd = join(dir, 'passwd');
  const group = join(dir, 'group');
  await writeFile(passwd, `root:x:0:0:root:/root:/bin/sh\nra:x:${UID}:${UID}::/nonexistent:/bin/false\nbob:x:12346:12346::/nonexistent:/bin/false\nother:x:12347:4242::/nonexistent:/bin/false\n`);
  await writeFile(group, `root:x:0:\nra:x:${UID}:\nbob:x:12346:\nteam:x:4343:ra,bob\nshared:x:4242:ra\n`);

  /** `check` as uid 12345 with `groups`, after `mounts` (shell lines) in a private mount namespace. */
  const checkAs = (groups: number[], key: string, mounts: string[] = []): Promise<CliResult> => {
    const script = [
      `mount --bind ${q(passwd)} /etc/passwd`,
      `mount --bind ${q(group)} /etc/group`,
      ...mounts,
      `exec setpriv --reuid=${UID} --regid=${UID} --groups=${groups.join(',')} ${q(rt.node)} ${q(rt.cli)} check --certificate ${q(leaf.certPath)} --private-key ${q(key)}`,
    ].join('\n');
    return runProcess('unshare', ['-m', '--propagation', 'private', 'sh', '-ec', script], { cleanEnv: true, env: { HOME: undefined } });
  };
  const keyFile = async (name: string, mode: number, gid: number, at = dir) => {
    const p = join(at, name);
    await writeFile(p, keyPem);
    await chown(p, 0, gid);
    await chmod(p, mode);
    return p;
  };
  const modeLine = (r: CliResult) => r.stdout.split('\n').find((l) => l.includes('secretFileMode')) ?? `(no secretFileMode line) ${r.stdout.slice(0, 300)} ${r.stderr.slice(0, 300)}`;

  t.test('group-readable by the daemon\'s own group that holds no other user: PASS', async (t) => {
    const key = await keyFile('own-group.key', 0o640, UID);
    const r = await checkAs([UID], key);
    t.equal(r.code, 0, modeLine(r));
    t.match(modeLine(r), /PASS secretFileMode: key, PKCS#12 and password files are open to no other user/);
  });

  t.test('group-readable by a group that holds other users: WARN naming them, chmod advised', async (t) => {
    const team = await keyFile('team.key', 0o640, 4343);
    const r = await checkAs([UID, 4343], team);
    t.equal(r.code, 0, 'a group only warns');
    t.match(modeLine(r), `WARN secretFileMode: ${team}: the private key file is open to its group (gid 4343, mode 640), a group that also holds the user(s) bob; run chmod 600 ${team}`);
    const shared = await keyFile('shared.key', 0o440, 4242);
    const r2 = await checkAs([UID, 4242], shared);
    t.match(modeLine(r2), /WARN secretFileMode: .*gid 4242, mode 440\), a group that also holds the user\(s\) other;/, "another user's primary group counts");
  });

  t.test('group-readable by a gid /etc/group does not list: WARN (nothing proves it is ours alone)', async (t) => {
    const key = await keyFile('unlisted.key', 0o640, 5555);
    const r = await checkAs([UID, 5555], key);
    t.match(modeLine(r), /WARN secretFileMode: .*gid 5555, mode 640\), a group this system does not list; run chmod 600/);
  });

  t.test('world-readable on a writable filesystem: FAIL, chmod 600', async (t) => {
    const key = await keyFile('open.key', 0o644, 0);
    const r = await checkAs([UID], key);
    t.equal(r.code, 1, 'check fails');
    t.match(modeLine(r), `FAIL secretFileMode: ${key}: the private key file is open to every local user (mode 644); run chmod 600 ${key}`);
  });

  t.test('world-readable on a read-only bind mount: FAIL, and the fix is at the source, not chmod here', async (t) => {
    const src = join(dir, 'ro-src');
    const ro = join(dir, 'ro');
    await mkdir(src, { mode: 0o755 });
    await mkdir(ro, { mode: 0o755 });
    await keyFile('tls.key', 0o644, 0, src);
    const key = join(ro, 'tls.key');
    const r = await checkAs([UID], key, [`mount --bind ${q(src)} ${q(ro)}`, `mount -o remount,bind,ro ${q(ro)}`]);
    t.equal(r.code, 1, 'still exposed: check fails');
    t.match(modeLine(r), `FAIL secretFileMode: ${key}: the private key file is open to every local user (mode 644); it is on a read-only mount (${ro}), where chmod cannot change it; chmod 600 the file where it comes from`);
    t.notMatch(modeLine(r), `run chmod 600 ${key}`);
    // A group only the daemon holds is as fine there as anywhere.
    await chown(join(src, 'tls.key'), 0, UID);
    await chmod(join(src, 'tls.key'), 0o640);
    const own = await checkAs([UID], key, [`mount --bind ${q(src)} ${q(ro)}`, `mount -o remount,bind,ro ${q(ro)}`]);
    t.match(modeLine(own), /PASS secretFileMode/);
  });

  t.test('world-readable on a tmpfs mounted read-only as a whole: FAIL, no chmod advice', async (t) => {
    const mnt = join(dir, 'ro-tmpfs');
    await mkdir(mnt, { mode: 0o755 });
    const key = join(mnt, 'tls.key');
    const r = await checkAs([UID], key, [`mount -t tmpfs -o size=1m,mode=0755 tmpfs ${q(mnt)}`, `cat ${q(leaf.keyPath)} > ${q(key)}`, `chmod 644 ${q(key)}`, `mount -o remount,ro ${q(mnt)}`]);
    t.equal(r.code, 1, 'check fails');
    t.match(modeLine(r), `FAIL secretFileMode: ${key}: the private key file is open to every local user (mode 644); it is on a read-only mount (${mnt}), where chmod cannot change it`);
  });

  t.test("kubelet's Secret volume, 0440 with fsGroup (read through the group): PASS", async (t) => {
    const vol = await atomicWriter(join(dir, 'vol-fsgroup'), { 'tls.key': keyPem }, { defaultMode: 0o440, fsGroup: 2000 });
    const mnt = join(dir, 'mnt-fsgroup');
    await mkdir(mnt, { mode: 0o755 });
    const key = join(mnt, 'tls.key');
    const r = await checkAs([UID, 2000], key, [`mount --bind ${q(vol)} ${q(mnt)}`, `mount -o remount,bind,ro ${q(mnt)}`]);
    t.equal(r.code, 0, modeLine(r));
    t.match(modeLine(r), /PASS secretFileMode/, 'the fsGroup reaches only the pod\'s containers, which may mount the volume anyway');
    // Through ..data, as a config may name it, too.
    const viaData = await checkAs([UID, 2000], join(mnt, '..data', 'tls.key'), [`mount --bind ${q(vol)} ${q(mnt)}`, `mount -o remount,bind,ro ${q(mnt)}`]);
    t.match(modeLine(viaData), /PASS secretFileMode/);
  });

  t.test("kubelet's default 0644 (Secret defaultMode, CSI drivers): WARN naming defaultMode and the CSI setting, never chmod", async (t) => {
    const vol = await atomicWriter(join(dir, 'vol-default'), { 'tls.key': keyPem });
    const mnt = join(dir, 'mnt-default');
    await mkdir(mnt, { mode: 0o755 });
    const key = join(mnt, 'tls.key');
    const r = await checkAs([UID], key, [`mount --bind ${q(vol)} ${q(mnt)}`, `mount -o remount,bind,ro ${q(mnt)}`]);
    t.equal(r.code, 0, 'a warning: only the pod\'s containers reach the volume');
    t.match(modeLine(r), `WARN secretFileMode: ${key}: the private key file is open to every local user (mode 644); it is on a read-only Kubernetes volume (${mnt}), where chmod cannot change it; set defaultMode: 0400`);
    t.match(modeLine(r), /filePermission in the SecretProviderClass/);
    t.notMatch(r.stdout, /run chmod/);
  });
}
