// What each module costs in RSS: `node --expose-gc bench/module-rss.js SPEC...` imports the
// specs one after another (a package name, or a path under dist/) in this fresh process and
// prints, as one JSON line, the RSS after a full GC before and after each import. Run once
// per spec alone (its own cost on top of bare Node) and once cumulatively (what serve loads,
// in order). fastify is also instantiated and made ready, since that is what it costs.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const ROOT = new URL('..', import.meta.url).pathname;
/** { rss, anon, file } in KiB after a full GC (file: pages of the node binary and other mapped files). */
const rss = () => {
  globalThis.gc();
  globalThis.gc();
  const status = readFileSync('/proc/self/status', 'utf8');
  const kb = (k) => Number(new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(status)?.[1] ?? NaN);
  return { rss: kb('VmRSS'), anon: kb('RssAnon'), file: kb('RssFile') };
};
const minus = (a, b) => ({ rss: a.rss - b.rss, anon: a.anon - b.anon, file: a.file - b.file });
const keep = [];
const steps = [];
let last = rss();
const base = last;
for (const spec of process.argv.slice(2)) {
  const url = spec.startsWith('dist/') ? pathToFileURL(join(ROOT, spec)).href : spec;
  const m = await import(url);
  if (spec === 'fastify') {
    const app = m.default({ logger: false });
    app.get('/x', () => 'x');
    await app.ready();
    keep.push(app);
  }
  keep.push(m);
  await new Promise((r) => setTimeout(r, 20));
  const now = rss();
  steps.push({ spec, kb: minus(now, last) });
  last = now;
}
process.stdout.write(JSON.stringify({ base, steps, total: last }) + '\n');
