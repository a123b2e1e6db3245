// The source folders, and the files within them, form a one-way graph: read
// every `import … from '…'` in src/ (type-only imports too) and check that no
// folder or file depends (directly or through others) on one that depends back
// on it, and that the Roles Anywhere client stays a pure client that knows
// nothing of the configuration.
import t from 'tap';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { REPO } from '../helpers/cli.js';

const SRC = join(REPO, 'src');

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? sourceFiles(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : []));
}

/** `src/identity/load.ts` → `identity`; files directly in src/ are their own unit (`cli.ts` → `cli.ts`). */
function folderOf(file: string): string {
  const rel = relative(SRC, file).split('/');
  return rel.length > 1 ? rel[0]! : rel[0]!;
}

/** Relative imports (static and dynamic) of a file, resolved to source files. */
function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const specs = [...text.matchAll(/(?:from\s+|import\s*\(\s*|import\s+)'(\.{1,2}\/[^']+)'/g)].map((m) => m[1]!);
  return specs.map((s) => resolve(dirname(file), s).replace(/\.js$/, '.ts'));
}

const files = sourceFiles(SRC);
const fileImports = new Map(files.map((f) => [f, importsOf(f).filter((target) => files.includes(target))]));
const graph = new Map<string, Map<string, string>>(); // folder → (folder it imports → one file that does)
for (const f of files) {
  const from = folderOf(f);
  for (const target of fileImports.get(f)!) {
    const to = folderOf(target);
    if (to === from) continue;
    if (!graph.has(from)) graph.set(from, new Map());
    if (!graph.get(from)!.has(to)) graph.get(from)!.set(to, `${relative(REPO, f)} → ${relative(REPO, target)}`);
  }
}

/** A path from `a` back to `a` through `edges`, if any. */
function cycleFrom(a: string, edges: (node: string) => Iterable<string>): string[] | undefined {
  const seen = new Set<string>();
  const walk = (node: string, path: string[]): string[] | undefined => {
    for (const next of edges(node)) {
      if (next === a) return [...path, next];
      if (seen.has(next)) continue;
      seen.add(next);
      const found = walk(next, [...path, next]);
      if (found) return found;
    }
    return undefined;
  };
  return walk(a, [a]);
}

t.test('the scan sees the source', async (t) => {
  t.ok(files.length > 40, `${files.length} source files`);
  t.ok(graph.get('server')?.has('runtime'), 'server uses the credential pipeline');
});

t.test('no import cycle between folders', async (t) => {
  for (const folder of graph.keys()) {
    const cycle = cycleFrom(folder, (f) => graph.get(f)?.keys() ?? []);
    const detail = cycle ? cycle.slice(0, -1).map((f, i) => graph.get(f)!.get(cycle[i + 1]!)).join('; ') : '';
    t.notOk(cycle, cycle ? `cycle ${cycle.join(' → ')} (${detail})` : `${folder}: no cycle`);
  }
});

t.test('no import cycle between files', async (t) => {
  let cycles = 0;
  for (const file of files) {
    const cycle = cycleFrom(file, (f) => fileImports.get(f) ?? []);
    if (!cycle) continue;
    cycles++;
    t.fail(`cycle ${cycle.map((f) => relative(SRC, f)).join(' → ')}`);
  }
  t.equal(cycles, 0, `${files.length} files, no file on a cycle`);
});

t.test('rolesanywhere/ is a pure client: it imports nothing from config/ or runtime/', async (t) => {
  for (const forbidden of ['config', 'runtime', 'server', 'cli']) {
    t.notOk(graph.get('rolesanywhere')?.has(forbidden), `rolesanywhere/ does not import ${forbidden}/ ${graph.get('rolesanywhere')?.get(forbidden) ?? ''}`);
  }
});
