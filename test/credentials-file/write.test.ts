import t from 'tap';
import { chmod, lstat, mkdir, readdir, readFile, stat, symlink, writeFile } from 'node:fs/promises';
import { spawn } from 'node:child_process';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { readIni } from '../../src/credentials-file/ini.js';
import { credentialsFilePath, writeCredentialsProfile } from '../../src/credentials-file/write.js';
import type { AwsCredentials } from '../../src/rolesanywhere/types.js';
import { tempDir } from '../helpers/pki.js';

const creds = (n: number): AwsCredentials => ({
  accessKeyId: `ASIATEST${String(n).padStart(8, '0')}`,
  secretAccessKey: `secret-${n}`,
  sessionToken: `token-${n}`,
  expiration: new Date(Date.now() + 3600e3),
  roleArn: 'arn:aws:iam::123456789012:role/r',
});

t.test('credentialsFilePath follows AWS_SHARED_CREDENTIALS_FILE, else ~/.aws/credentials', async (t) => {
  t.equal(credentialsFilePath({ HOME: '/home/u' }), '/home/u/.aws/credentials');
  t.equal(credentialsFilePath({ HOME: '/home/u', AWS_SHARED_CREDENTIALS_FILE: '/etc/x' }), '/etc/x');
  t.equal(credentialsFilePath({ HOME: '/home/u', AWS_SHARED_CREDENTIALS_FILE: '~/c' }), '/home/u/c');
});

t.test('creates the directory 0700 and the file 0600', async (t) => {
  const home = await tempDir('ra-write-');
  const path = join(home, '.aws', 'credentials');
  const r = await writeCredentialsProfile(path, 'default', creds(1));
  t.equal(r.created, true);
  t.equal((await stat(join(home, '.aws'))).mode & 0o777, 0o700);
  t.equal((await stat(path)).mode & 0o777, 0o600);
  t.equal(await readFile(path, 'utf8'), '[default]\naws_access_key_id = ASIATEST00000001\naws_secret_access_key = secret-1\naws_session_token = token-1\n');
  t.same(await readdir(join(home, '.aws')), ['credentials'], 'no temp file left');
});

t.test('replaces atomically, keeps other bytes, narrows a wide mode, keeps a stricter one', async (t) => {
  const dir = await tempDir('ra-write-');
  const path = join(dir, 'credentials');
  const orig = '# hand edited\r\n[other]\r\naws_access_key_id=AKIAOTHER\r\n\r\n[ra]\r\naws_access_key_id = OLD\r\nregion=eu-west-1\r\n';
  await writeFile(path, orig, { mode: 0o644 });
  await chmod(path, 0o644);
  const inoBefore = (await stat(path)).ino;
  await writeCredentialsProfile(path, 'ra', creds(2));
  const st = await stat(path);
  t.not(st.ino, inoBefore, 'a new file was renamed into place');
  t.equal(st.mode & 0o777, 0o600, 'group/world bits dropped');
  t.equal(
    await readFile(path, 'utf8'),
    '# hand edited\r\n[other]\r\naws_access_key_id=AKIAOTHER\r\n\r\n[ra]\r\naws_access_key_id = ASIATEST00000002\r\nregion=eu-west-1\r\naws_secret_access_key = secret-2\r\naws_session_token = token-2\r\n',
  );
  await chmod(path, 0o400);
  await writeCredentialsProfile(path, 'ra', creds(3));
  t.equal((await stat(path)).mode & 0o777, 0o400, 'stricter mode kept');
  t.match(await readFile(path, 'utf8'), /aws_access_key_id = ASIATEST00000003\r\n/);
  t.same((await readdir(dir)).sort(), ['credentials']);
});

t.test('a symlinked credentials file stays a symlink', async (t) => {
  const dir = await tempDir('ra-write-');
  await mkdir(join(dir, 'real'));
  const real = join(dir, 'real', 'creds');
  await writeFile(real, '[x]\nk = v\n', { mode: 0o600 });
  const link = join(dir, 'credentials');
  await symlink(real, link);
  await writeCredentialsProfile(link, 'ra', creds(4));
  t.ok((await lstat(link)).isSymbolicLink(), 'link kept');
  t.match(await readFile(real, 'utf8'), /^\[x\]\nk = v\n\n\[ra\]\naws_access_key_id = ASIATEST00000004\n/);
});

t.test('errors are clear and change nothing', async (t) => {
  const dir = await tempDir('ra-write-');
  const path = join(dir, 'credentials');
  const orig = '[ra]\na = 1\n[ra]\nb = 2\n';
  await writeFile(path, orig, { mode: 0o600 });
  await t.rejects(writeCredentialsProfile(path, 'ra', creds(5)), { message: /has the section \[ra\] 2 times/ });
  t.equal(await readFile(path, 'utf8'), orig, 'unchanged');
  await t.rejects(writeCredentialsProfile(dir, 'ra', creds(5)), { message: /is not a regular file/ });
  if (process.getuid?.() !== 0) {
    const ro = join(dir, 'ro');
    await mkdir(ro, { mode: 0o500 });
    await t.rejects(writeCredentialsProfile(join(ro, 'credentials'), 'ra', creds(5)), { message: /cannot create a temporary file in .*\(EACCES\): check the permissions/ });
  }
});

t.test('concurrent writers of different profiles never revert each other (lock around read-modify-rename)', async (t) => {
  const dir = await tempDir('ra-write-');
  const path = join(dir, 'credentials');
  // In one process: eight writers interleave at every await.
  for (let round = 0; round < 5; round++) {
    await Promise.all(Array.from({ length: 8 }, (_, p) => writeCredentialsProfile(path, `p${p}`, creds(round * 100 + p))));
    const view = readIni(await readFile(path, 'latin1'));
    if (!view.ok) return t.fail('file unreadable');
    for (let p = 0; p < 8; p++) t.equal(view.sections[`p${p}`]?.aws_access_key_id, creds(round * 100 + p).accessKeyId, `round ${round}: p${p} has its latest write`);
  }
  t.same((await readdir(dir)).sort(), ['credentials'], 'no lock or temp file left');
});

t.test('concurrent update processes (one per profile) keep every profile fresh', async (t) => {
  const dir = await tempDir('ra-write-');
  const path = join(dir, 'credentials');
  const writer = new URL('../../dist/credentials-file/write.js', import.meta.url).href;
  const script = `
    const { writeCredentialsProfile } = await import(${JSON.stringify(writer)});
    const [path, profile] = process.argv.slice(1);
    for (let i = 0; i < 20; i++) await writeCredentialsProfile(path, profile, { accessKeyId: 'ASIA' + profile + '_' + i, secretAccessKey: 's', sessionToken: 't', expiration: new Date(), roleArn: 'r' });
  `;
  const run = (profile: string) =>
    new Promise<number | null>((res) => spawn(process.execPath, ['--input-type=module', '-e', script, path, profile], { stdio: 'inherit' }).on('exit', res));
  const profiles = ['a', 'b', 'c', 'd', 'e', 'f'];
  t.same(await Promise.all(profiles.map(run)), profiles.map(() => 0), 'every writer exits 0');
  const view = readIni(await readFile(path, 'latin1'));
  if (!view.ok) return t.fail('file unreadable');
  for (const p of profiles) t.equal(view.sections[p]?.aws_access_key_id, `ASIA${p}_19`, `[${p}] holds its last write`);
});

t.test('a stale lock (holder gone) is broken; a live holder makes the writer wait, then give up with the fix', async (t) => {
  const dir = await tempDir('ra-write-');
  const path = join(dir, 'credentials');
  const dead = spawn(process.execPath, ['-e', '0']);
  await new Promise((res) => dead.on('exit', res));
  await writeFile(`${path}.lock`, `${dead.pid} ${hostname()} 2020-01-01T00:00:00Z\n`);
  await writeCredentialsProfile(path, 'default', creds(1));
  t.match(await readFile(path, 'utf8'), /ASIATEST00000001/, 'written after breaking the stale lock');
  t.rejects(lstat(`${path}.lock`), { code: 'ENOENT' }, 'lock removed');

  await writeFile(`${path}.lock`, `${process.pid} ${hostname()} now\n`);
  await t.rejects(writeCredentialsProfile(path, 'default', creds(2), { timeoutMs: 300 }), {
    message: new RegExp(`locked by another writer \\(pid ${process.pid} on .*if no other update is running, delete ${path.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}\\.lock`),
  });
  t.match(await readFile(path, 'utf8'), /ASIATEST00000001/, 'nothing changed');
});

t.test('a dangling symlink stays a link: its target is created', async (t) => {
  const dir = await tempDir('ra-write-');
  const link = join(dir, 'credentials');
  await mkdir(join(dir, 'real'));
  await symlink('real/creds', link);
  await writeCredentialsProfile(link, 'default', creds(3));
  t.ok((await lstat(link)).isSymbolicLink(), 'still a symbolic link');
  t.match(await readFile(join(dir, 'real', 'creds'), 'utf8'), /ASIATEST00000003/, 'the target holds the credentials');
});
