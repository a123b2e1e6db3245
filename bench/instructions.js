// `npm run bench:instructions [-- --route container,imds] [-- --warm 40] [-- --measure 30] [-- --cache-sim]`
//
// CPU cost per request as instruction counts, daemon vs bench/bare-server.js, measured
// the same way in the same run: each server runs under valgrind's callgrind (an
// instruction counter; it counts the same for the same work whatever else the machine
// is doing, unlike seconds), gets `--warm` seconds of wrk load with instrumentation off
// (so V8 has tiered up its code), then `--measure` seconds with it on. Reported per
// request: instructions on the main thread (JavaScript, node:http, the event loop) and
// on all threads (plus GC helpers and the optimizing compiler). Kernel work (the
// socket syscalls, the same for both servers) is not counted, so the ratios here are
// lower bounds of the wall-clock throughput ratio `npm run bench` measures.
//
// With `--cache-sim`, callgrind also simulates the caches (the first-level instruction
// and data caches and the last-level cache, sized like this machine's) and the report
// adds misses per request and callgrind's cycle estimate, instructions + 10 × L1 misses
// + 100 × last-level misses: what an instruction count misses when a larger program
// touches more memory per request. A simulation of one process alone, not the host's
// shared caches; slower, so ≈ 4–5 min per route.
//
// Needs valgrind and wrk (Debian packages). ≈ 2–3 min per route.
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs, promisify } from 'node:util';
import { NODE_FLAGS, fmt, freePort, installCleanup, readyz, spawnTracked, stop, table, waitUntil } from './lib.js';
import { allAnswered, bareArgv, daemonArgv, perRequestSetup, routeTarget } from './per-request.js';

const run = promisify(execFile);
const { values: args } = parseArgs({
  options: {
    route: { type: 'string', default: 'container,imds' },
    warm: { type: 'string', default: '40' },
    measure: { type: 'string', default: '30' },
    connections: { type: 'string', default: '8' },
    'cache-sim': { type: 'boolean', default: false },
  },
});
const log = (s) => process.stderr.write(s + '\n');
installCleanup();

const setup = await perRequestSetup('bench:instructions', 'valgrind', 'apt-get install valgrind', log);
const { gen, dir, emu } = setup;

/** Starts `argv` under callgrind (instrumentation off), waits for /readyz → { proc, port, pid, out } (pid: valgrind's, which is the program's). */
async function underCallgrind(name, argvFor) {
  const port = await freePort();
  const out = join(dir, `cg-${name}`);
  const argv = await argvFor(port);
  const sim = args['cache-sim'] ? ['--cache-sim=yes'] : [];
  const proc = spawnTracked('valgrind', ['--tool=callgrind', ...sim, '--instr-atstart=no', '--separate-threads=yes', `--callgrind-out-file=${out}.%p`, ...argv]);
  await waitUntil(`${name} ready under valgrind`, async () => (await readyz(port)) === 200, 180_000, 500);
  return { proc, port, pid: proc.child.pid, out };
}

/** Callgrind's events in a dump (`events: Ir Dr …`) with their totals. */
function eventTotals(text) {
  const names = /^events:\s*(.+)$/m.exec(text)?.[1].trim().split(/\s+/) ?? ['Ir'];
  const values = /^totals:\s*(.+)$/m.exec(text)?.[1].trim().split(/\s+/).map(Number) ?? [];
  return Object.fromEntries(names.map((n, i) => [n, values[i] ?? 0]));
}

/**
 * Per request, from the dump callgrind wrote when asked (part 1): instructions on the
 * main thread and on all threads; with --cache-sim also the main thread's L1 misses
 * (instruction + data), last-level misses and the cycle estimate.
 */
function totals(server, requests) {
  const prefix = `${server.out.split('/').pop()}.${server.pid}.1-`;
  let main = 0;
  let all = 0;
  let l1 = 0;
  let ll = 0;
  for (const f of readdirSync(dir).filter((f) => f.startsWith(prefix))) {
    const e = eventTotals(readFileSync(join(dir, f), 'utf8'));
    all += e.Ir ?? 0;
    if (!f.endsWith('-01')) continue;
    main += e.Ir ?? 0;
    l1 += (e.I1mr ?? 0) + (e.D1mr ?? 0) + (e.D1mw ?? 0);
    ll += (e.ILmr ?? 0) + (e.DLmr ?? 0) + (e.DLmw ?? 0);
  }
  const t = { main: main / requests, all: all / requests };
  return args['cache-sim'] ? { ...t, l1Misses: l1 / requests, llMisses: ll / requests, cycles: (main + 10 * l1 + 100 * ll) / requests } : t;
}

async function measure(name, route, argvFor) {
  const server = await underCallgrind(name, argvFor);
  try {
    const { target, bodyBytes: size } = await routeTarget(setup, name, route, server.port);
    // The bare server sends bodies of the daemon's size.
    bodyBytes[route] ??= size;
    const connections = Number(args.connections);
    const warm = await gen.run({ ...target, seconds: Number(args.warm), connections });
    await run('callgrind_control', ['-i', 'on', String(server.pid)]);
    const r = await gen.run({ ...target, seconds: Number(args.measure), connections });
    await run('callgrind_control', ['-i', 'off', String(server.pid)]);
    await run('callgrind_control', ['-d', String(server.pid)]);
    allAnswered(name, warm, r);
    const t = totals(server, r.total);
    const misses = t.cycles === undefined ? '' : `; main thread: ${fmt(t.l1Misses, 0)} L1 and ${fmt(t.llMisses, 0)} last-level misses, ${fmt(t.cycles, 0)} estimated cycles`;
    log(`  ${name} ${route}: ${r.total} requests measured (after ${warm.total} to warm up): ${fmt(t.main, 0)} instructions per request on the main thread, ${fmt(t.all, 0)} on all threads${misses}`);
    return { requests: r.total, warmRequests: warm.total, ...t };
  } finally {
    await stop(server.proc, 10_000);
  }
}

/** The daemon's body size per route (measured first), for the bare server's. */
const bodyBytes = {};
const results = { date: new Date().toISOString(), node: process.version, warmS: Number(args.warm), measureS: Number(args.measure), connections: Number(args.connections), routes: {} };
const rows = [];
const cacheRows = [];
for (const route of args.route.split(',')) {
  log(`instructions: ${route} route (callgrind; ${args.warm} s warm-up, ${args.measure} s measured, wrk ${args.connections} connections)`);
  const daemon = await measure('daemon', route, (port) => daemonArgv(setup, port));
  const bare = await measure('bare', route, async (port) => bareArgv(setup, port, route, bodyBytes[route]));
  results.routes[route] = { daemon, bare, mainRatio: bare.main / daemon.main, allRatio: bare.all / daemon.all };
  rows.push([route, fmt(daemon.main, 0), fmt(bare.main, 0), fmt(bare.main / daemon.main, 3), fmt(daemon.all, 0), fmt(bare.all, 0), fmt(bare.all / daemon.all, 3)]);
  if (args['cache-sim']) {
    results.routes[route].cyclesRatio = bare.cycles / daemon.cycles;
    cacheRows.push([route, fmt(daemon.l1Misses, 0), fmt(bare.l1Misses, 0), fmt(daemon.llMisses, 0), fmt(bare.llMisses, 0), fmt(daemon.cycles, 0), fmt(bare.cycles, 0), fmt(bare.cycles / daemon.cycles, 3)]);
  }
}
await stop(emu.proc);
process.stdout.write(
  `\nInstructions per request (callgrind), daemon (${NODE_FLAGS.join(' ') || 'no V8 flags'}) vs bare node:http server, ${results.date}, node ${process.version}\n` +
    table(['route', 'daemon main', 'bare main', 'bare/daemon', 'daemon all threads', 'bare all threads', 'bare/daemon'], rows) +
    '\n(bare/daemon: the throughput ratio if CPU were only these instructions; the target for the wall-clock ratio is ≥ 0.95)\n',
);
if (cacheRows.length > 0) {
  process.stdout.write(
    '\nSimulated cache misses per request, main thread (callgrind --cache-sim; cycles estimated as instructions + 10 × L1 misses + 100 × last-level misses)\n' +
      table(['route', 'daemon L1 misses', 'bare L1 misses', 'daemon LL misses', 'bare LL misses', 'daemon cycles', 'bare cycles', 'bare/daemon'], cacheRows) +
      '\n',
  );
}
process.stdout.write(JSON.stringify(results) + '\n');
