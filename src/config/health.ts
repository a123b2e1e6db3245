// The `health.listen` setting: addresses of the health listener (src/server/health.ts),
// which answers only /healthz, /readyz and /metrics. It may be a non-loopback address
// without allowNonLoopback: it never serves credentials.
import { show, typeName, type Problem, type SectionContext } from '../problems.js';
import { parseListenAddress, type ListenAddress } from '../net/listen-address.js';

/** `"0.0.0.0:9912"`, `["0.0.0.0:9912", "[::]:9912"]` (YAML), repeated --health-listen, or a comma-separated environment value. */
export function checkHealthListen(raw: unknown, path: string, problems: Problem[]): ListenAddress[] | undefined {
  const items: unknown[] = typeof raw === 'string' ? raw.split(',').map((s) => s.trim()).filter((s) => s !== '') : Array.isArray(raw) ? raw : [raw];
  if (items.length === 0) {
    problems.push({ path, message: `expected "host:port" or a list of them, e.g. 0.0.0.0:9912, got ${show(raw)}` });
    return undefined;
  }
  const out: ListenAddress[] = [];
  let ok = true;
  items.forEach((item, i) => {
    const where = Array.isArray(raw) ? `${path}[${i}]` : path;
    if (typeof item !== 'string') {
      problems.push({ path: where, message: `expected "host:port", e.g. 0.0.0.0:9912, got ${typeName(item)}` });
      ok = false;
      return;
    }
    const r = parseListenAddress(item);
    if (!r.address) {
      problems.push({ path: where, message: r.error! });
      ok = false;
      return;
    }
    out.push(r.address);
  });
  return ok ? out : undefined;
}

const WILDCARD = new Set(['0.0.0.0', '::']);
const text = (a: ListenAddress) => (a.host.includes(':') ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`);

/** A health address may not be an ordinary listen address (same port on the same or a wildcard host). */
export function finishHealthListen(value: ListenAddress[], ctx: SectionContext): ListenAddress[] | undefined {
  let ok = true;
  value.forEach((a, i) => {
    if (a.port === 0) return;
    const clash = ctx.listen.find((l) => l.port === a.port && (l.host.toLowerCase() === a.host.toLowerCase() || WILDCARD.has(l.host) || WILDCARD.has(a.host)));
    if (clash) {
      ctx.problems.push({
        path: value.length > 1 ? `${ctx.path}[${i}]` : ctx.path,
        message: `${text(a)} overlaps the listen address ${text(clash)}; the health listener needs its own port (e.g. 9912)`,
      });
      ok = false;
    }
  });
  return ok ? value : undefined;
}
