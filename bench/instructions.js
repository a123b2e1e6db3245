// `npm run bench:instructions [-- --route container,imds] [-- --warm 40] [-- --measure 30]`
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
// Needs valgrind and wrk (Debian packages). ≈ 2–3 min per route.
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs, promisify } from 'node:util';
import { NODE_FLAGS, fmt, freePort, installCleanup, readyz, spawnTracked, stop, table, waitUntil } from './lib.js';
import { bareArgv, daemonArgv, perRequestSetup, routeTarget } from './per-request.js';

const run = promisify(execFile);
const { values: args } = parseArgs({
  options: {
    route: { type: 'string', default: 'container,imds' },
    warm: { type: 'string', default: '40' },
    measure: { type: 'string', default: '30' },
    connections: { type: 'string', default: '8' },
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
  const proc = spawnTracked('valgrind', ['--tool=callgrind', '--instr-atstart=no', '--separate-threads=yes', `--callgrind-out-file=${out}.%p`, ...argv]);
  await waitUntil(`${name} ready under valgrind`, async () => (await readyz(port)) === 200, 180_000, 500);
  return { proc, port, pid: proc.child.pid, out };
}

/** Instructions per request, main thread and all threads, from the dump callgrind wrote when asked (part 1). */
function totals(server, requests) {
  const prefix = `${server.out.split('/').pop()}.${server.pid}.1-`;
  let main = 0;
  let all = 0;
  for (const f of readdirSync(dir).filter((f) => f.startsWith(prefix))) {
    const m = /^totals:\s*(\d+)/m.exec(readFileSync(join(dir, f), 'utf8'));
    const n = m ? Number(m[1]) : 0;
    all += n;
    if (f.endsWith('-01')) main += n;
  }
  return { main: main / requests, all: all / requests };
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
    if (r.non2xx + r.errors + warm.non2xx + warm.errors > 0) throw new Error(`${name}: ${r.non2xx + warm.non2xx} non-2xx answers, ${r.errors + warm.errors} errors`);
    const t = totals(server, r.total);
    log(`  ${name} ${route}: ${r.total} requests measured (after ${warm.total} to warm up): ${fmt(t.main, 0)} instructions per request on the main thread, ${fmt(t.all, 0)} on all threads`);
    return { requests: r.total, warmRequests: warm.total, ...t };
  } finally {
    await stop(server.proc, 10_000);
  }
}

/** The daemon's body size per route (measured first), for the bare server's. */
const bodyBytes = {};
const results = { date: new Date().toISOString(), node: process.version, warmS: Number(args.warm), measureS: Number(args.measure), connections: Number(args.connections), routes: {} };
const rows = [];
for (const route of args.route.split(',')) {
  log(`instructions: ${route} route (callgrind; ${args.warm} s warm-up, ${args.measure} s measured, wrk ${args.connections} connections)`);
  const daemon = await measure('daemon', route, (port) => daemonArgv(setup, port));
  const bare = await measure('bare', route, async (port) => bareArgv(setup, port, route, bodyBytes[route]));
  results.routes[route] = { daemon, bare, mainRatio: bare.main / daemon.main, allRatio: bare.all / daemon.all };
  rows.push([route, fmt(daemon.main, 0), fmt(bare.main, 0), fmt(bare.main / daemon.main, 3), fmt(daemon.all, 0), fmt(bare.all, 0), fmt(bare.all / daemon.all, 3)]);
}
await stop(emu.proc);
process.stdout.write(
  `\nInstructions per request (callgrind), daemon (${NODE_FLAGS.join(' ') || 'no V8 flags'}) vs bare node:http server, ${results.date}, node ${process.version}\n` +
    table(['route', 'daemon main', 'bare main', 'bare/daemon', 'daemon all threads', 'bare all threads', 'bare/daemon'], rows) +
    '\n(bare/daemon: the throughput ratio if CPU were only these instructions; the target for the wall-clock ratio is ≥ 0.95)\n',
);
process.stdout.write(JSON.stringify(results) + '\n');
