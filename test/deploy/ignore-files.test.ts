// Local state the README's commands leave in a clone stays out of git and out
// of the Docker build context: `pki init ./pki` (CA keys), `npm pack` tarballs,
// the single-file executable (sea/, ~120 MB).
import t from 'tap';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { REPO, runProcess } from '../helpers/cli.js';

/** Whether git (the real one) ignores `path` in this clone. */
async function gitIgnores(path: string): Promise<boolean> {
  const res = await runProcess('git', ['-C', REPO, 'check-ignore', '--no-index', '-q', path]);
  if (res.code !== 0 && res.code !== 1) throw new Error(`git check-ignore ${path}: ${res.stderr}`);
  return res.code === 0;
}

t.test('.gitignore: pki/ output, tarballs and sea/ are ignored; the pki sources are not', async (t) => {
  for (const p of ['pki/ca.key', 'pki/client.pem', 'rolesanywhere-credentiald-0.1.0.tgz', 'sea/rolesanywhere-credentiald', 'bench/results.json']) {
    t.ok(await gitIgnores(p), `${p} is ignored`);
  }
  for (const p of ['src/pki/ca.ts', 'test/pki/certificate.test.ts', 'package.json', 'test/fixtures/x.pem']) {
    t.notOk(await gitIgnores(p), `${p} is not ignored`);
  }
});

t.test('.dockerignore: local state stays out of the build context', async (t) => {
  const lines = (await readFile(join(REPO, '.dockerignore'), 'utf8')).split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
  // Docker matches each pattern from the context root: `pki` is ./pki only, never src/pki.
  for (const p of ['sea', 'pki', '*.tgz', 'node_modules', 'dist', '**/*.key', '**/*.p12', '**/*.pfx']) t.ok(lines.includes(p), `.dockerignore excludes ${p}`);
  t.notOk(lines.some((l) => /(^|\/)src($|\/)/.test(l) || l === '**/pki'), 'src/ (and src/pki) stays in the context');
});
