// `npm pack` / `npm publish` hooks (prepack, and postpack with --after).
//
// prepack: rebuild dist/ and the bundle (`npm run build`) from scratch (no stale modules of renamed sources ship)
// and put the lockfile in the package as npm-shrinkwrap.json, so an install of
// the tarball gets exactly the dependency versions the tests ran with (npm
// skips the dev dependencies listed in it) and needs no registry metadata.
// postpack: remove the shrinkwrap again; in the clone package-lock.json rules.
//
// The build runs here and not in `prepare`: `prepare` also runs on
// `npm ci --omit=dev`, where the compiler (a dev dependency) is missing.
import { execFileSync } from 'node:child_process';
import { copyFileSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const shrinkwrap = `${root}npm-shrinkwrap.json`;

if (process.argv.includes('--after')) {
  rmSync(shrinkwrap, { force: true });
} else {
  rmSync(`${root}dist`, { recursive: true, force: true });
  // The one build (package.json "build": tsc, then the bundle); npm runs this hook and says where it is.
  execFileSync(process.execPath, [process.env.npm_execpath, 'run', 'build', '--silent'], { cwd: root, stdio: 'inherit' });
  copyFileSync(`${root}package-lock.json`, shrinkwrap);
}
