// Permission errors say how to fix them for the user the daemon really runs as:
// a systemd DynamicUser (uid from 61184..65519, different at every start) is told
// to grant its group, not its uid; a directory that cannot be entered is named
// as the problem instead of the file. Real processes under setpriv, real modes.
import t from 'tap';
import { execFile } from 'node:child_process';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { otherUserRuntime, runProcess } from '../helpers/cli.js';
import { makeCA, makeLeaf, tempDir } from '../helpers/pki.js';
import { missing as needs } from '../helpers/needs.js';

const run = promisify(execFile);

// The other uid runs copies of Node and the CLI (the clone may be closed to it).
const cannot = needs('other-user');
const rt = cannot ? { skip: cannot } : await otherUserRuntime();
if ('skip' in rt) {
  t.plan(0, rt.skip);
} else {
  const dir = await tempDir('ra-perm-');
  await chmod(dir, 0o755);
  const ca = await makeCA(dir);
  const leaf = await makeLeaf(dir, ca, 'perm-client');
  await chmod(leaf.certPath, 0o644);
  await chmod(leaf.keyPath, 0o600); // root:root 0600: nobody else may read it
  // A group to stand in for `rolesanywhere`: the system's gid 4 (adm on Debian), looked up by name.
  const group = (await run('getent', ['group', '4'])).stdout.split(':')[0]!;
  const as = (uid: number, ...args: string[]) =>
    runProcess('setpriv', [`--reuid=${uid}`, `--regid=${uid}`, '--groups=4', rt.node, rt.cli, 'check', ...args], { cleanEnv: true, env: { HOME: undefined } });

  t.test('a DynamicUser is told to grant its group, not its uid', async (t) => {
    const r = await as(61200, '--certificate', leaf.certPath, '--private-key', leaf.keyPath);
    t.equal(r.code, 1);
    t.match(r.stderr, `${leaf.keyPath}: permission denied reading the private key file; this runs as a systemd DynamicUser (uid 61200 changes between starts), so grant its group: chgrp ${group} ${leaf.keyPath} && chmod g+r ${leaf.keyPath}`);
    t.notMatch(r.stderr, /readable by uid 61200/);
  });

  t.test('an ordinary uid is told to make the file readable by it', async (t) => {
    const r = await as(12345, '--certificate', leaf.certPath, '--private-key', leaf.keyPath);
    t.equal(r.code, 1);
    t.match(r.stderr, `${leaf.keyPath}: permission denied reading the private key file; make it readable by uid 12345`);
  });

  t.test('a directory that cannot be entered is named, not the file', async (t) => {
    const locked = join(dir, 'locked');
    await mkdir(locked, { mode: 0o700 });
    const cert = join(locked, 'client.pem');
    await writeFile(cert, ca.certPem, { mode: 0o644 });
    for (const uid of [61200, 12345]) {
      const r = await as(uid, '--certificate', cert);
      t.equal(r.code, 1);
      t.match(r.stderr, `${cert}: permission denied reading the certificate file; the directory ${locked} is not searchable by this process; `);
      t.match(r.stderr, uid === 61200 ? `chgrp ${group} ${locked} && chmod g+x ${locked}` : `make it searchable (x) by uid 12345`);
    }
  });
}
