// The CLI keeps Node's compile cache in a directory of the user's own (0700), never in
// a shared one, and not at all when there is none or it is switched off.
import { chown, mkdir, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { compileCacheDir } from '../../src/cli/compile-cache.js';
import { runCli } from '../helpers/cli.js';
import { tempDir } from '../helpers/pki.js';

t.test('where the cache goes', async (t) => {
  t.equal(compileCacheDir({ HOME: '/home/u' }), '/home/u/.cache/rolesanywhere-credentiald/compile-cache');
  t.equal(compileCacheDir({ HOME: '/home/u', XDG_CACHE_HOME: '/x/cache' }), '/x/cache/rolesanywhere-credentiald/compile-cache');
  t.equal(compileCacheDir({ HOME: '/home/u', CACHE_DIRECTORY: '/var/cache/rolesanywhere-credentiald:/var/cache/other' }), '/var/cache/rolesanywhere-credentiald/compile-cache', "systemd's CacheDirectory=");
  t.equal(compileCacheDir({}), undefined, 'no home: no cache (never /tmp)');
  t.equal(compileCacheDir({ HOME: '/' }), undefined);
  t.equal(compileCacheDir({ HOME: 'relative' }), undefined);
  t.equal(compileCacheDir({ HOME: '/home/u', NODE_DISABLE_COMPILE_CACHE: '1' }), undefined, 'switched off');
  t.equal(compileCacheDir({ HOME: '/home/u', NODE_COMPILE_CACHE: '/elsewhere' }), undefined, "Node's own switch wins");
});

t.test('a command fills the cache in a private directory', async (t) => {
  const home = await tempDir('ra-cc-');
  const r = await runCli(['--help'], { cleanEnv: true, env: { HOME: home } });
  t.equal(r.code, 0, '--help ran');
  const dir = join(home, '.cache', 'rolesanywhere-credentiald', 'compile-cache');
  for (const d of [join(home, '.cache'), join(home, '.cache', 'rolesanywhere-credentiald'), dir]) t.equal((await stat(d)).mode & 0o777, 0o700, `${d.slice(home.length)} is 0700`);
  const versions = await readdir(dir);
  t.equal(versions.length, 1, 'one cache per Node version');
  // The bundle's entry (dist/bundle/cli.js) turns the cache on before it loads main.js,
  // the whole program: its code cache is the big one.
  const caches = await readdir(join(dir, versions[0]!));
  const sizes = await Promise.all(caches.map(async (f) => (await stat(join(dir, versions[0]!, f))).size));
  t.ok(sizes.some((s) => s > 100_000), `a code cache for the program (sizes: ${sizes.join(', ')})`);

  const off = await tempDir('ra-cc-off-');
  await runCli(['--help'], { cleanEnv: true, env: { HOME: off, NODE_DISABLE_COMPILE_CACHE: '1' } });
  t.same(await readdir(off), [], 'nothing written when switched off');
});

// Issue 21 (theoretical): under `sudo -E` HOME is the invoking user's, and root
// used a code cache in it — code another user can write, run as root.
t.test("a HOME that is another user's (sudo -E) gets no cache", { skip: process.geteuid?.() === 0 ? false : 'needs root to chown a directory to another user' }, async (t) => {
  const home = await tempDir('ra-cc-sudo-');
  await chown(home, 1, 1); // the "daemon" user: the invoking user under sudo -E
  const r = await runCli(['--help'], { cleanEnv: true, env: { HOME: home } });
  t.equal(r.code, 0, '--help ran');
  t.same(await readdir(home), [], "nothing is created in the other user's home");
  // A cache directory planted by that user is not used either.
  const planted = join(home, '.cache', 'rolesanywhere-credentiald', 'compile-cache');
  await mkdir(planted, { recursive: true });
  for (const d of [join(home, '.cache'), join(home, '.cache', 'rolesanywhere-credentiald'), planted]) await chown(d, 1, 1);
  await runCli(['--help'], { cleanEnv: true, env: { HOME: home } });
  t.same(await readdir(planted), [], 'the planted directory stays empty');
  // The same directories made root's own: used.
  for (const d of [home, join(home, '.cache'), join(home, '.cache', 'rolesanywhere-credentiald'), planted]) await chown(d, 0, 0);
  await runCli(['--help'], { cleanEnv: true, env: { HOME: home } });
  t.equal((await readdir(planted)).length, 1, 'a cache once every directory is our own');
});
