// `npm run bench:allocations [-- --route container,imds] [-- --warm 10] [-- --seconds 5] [-- --top 12]`
//
// Bytes the JavaScript heap allocates per request, and where, daemon vs
// bench/bare-server.js: each server runs pinned to CPU 0 with bench/alloc-probe.js
// preloaded, gets `--warm` seconds of wrk load (CPU 1, 32 connections), then
// `--seconds` more while V8's sampling heap profiler records every allocation,
// including objects the scavenger has already freed. Allocation is what drives the
// young-generation scavenges (with --max-semi-space-size=2, one every ~2 MB), and each
// scavenge wakes V8's helper threads on the server's core, so this tells whether the
// daemon pays more GC per request than the bare server and which code would be to
// blame. Sites are the allocating function and its two callers, per request; the
// figures are estimates from samples (one per ~2 KB allocated), good to a few per cent.
//
// Needs wrk. ≈ 40 s per route.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { NODE_FLAGS, ROOT, fmt, installCleanup, sleep, stop, table, waitUntil } from './lib.js';
import { allAnswered, bareArgv, daemonArgv, perRequestSetup, pinnedLoad, startPinned } from './per-request.js';

const { values: args } = parseArgs({
  options: {
    route: { type: 'string', default: 'container,imds' },
    warm: { type: 'string', default: '10' },
    seconds: { type: 'string', default: '5' },
    top: { type: 'string', default: '12' },
  },
});
const log = (s) => process.stderr.write(s + '\n');
installCleanup();

const setup = await perRequestSetup('bench:allocations', 'taskset', 'util-linux', log);
const { dir, emu } = setup;
const probe = ['--import', join(ROOT, 'bench', 'alloc-probe.js')];

/** Bytes per allocation site (function < caller < caller's caller) and in all, from a sampling heap profile. */
function sites(profile) {
  const bySite = new Map();
  let total = 0;
  const frame = (n) => `${n.callFrame.functionName || '(anonymous)'} ${n.callFrame.url.replace(/^.*\//, '')}:${n.callFrame.lineNumber + 1}`;
  const walk = (node, callers) => {
    const here = [frame(node), ...callers].slice(0, 3);
    if (node.selfSize > 0) {
      total += node.selfSize;
      const site = here.join(' < ');
      bySite.set(site, (bySite.get(site) ?? 0) + node.selfSize);
    }
    for (const child of node.children) walk(child, here);
  };
  walk(profile.head, []);
  return { bySite, total };
}

/** Starts a server with the probe, loads it, samples its allocations under load → bytes per request by site. */
async function allocations(name, route, argvFor) {
  const out = join(dir, `alloc-${name}-${route}.json`);
  const { proc, target, bodyBytes: size } = await startPinned(setup, name, route, argvFor, { ...process.env, BENCH_ALLOC_OUT: out });
  try {
    bodyBytes[route] ??= size;
    const warm = await pinnedLoad(setup, target, Number(args.warm));
    proc.child.kill('SIGUSR2');
    await sleep(100);
    const r = await pinnedLoad(setup, target, Number(args.seconds));
    proc.child.kill('SIGUSR2');
    let profile;
    // The probe renames the finished file into place; until then reading it throws, and waitUntil tries again.
    await waitUntil(`${name}'s allocation profile`, () => (profile = JSON.parse(readFileSync(out, 'utf8'))), 60_000, 200);
    allAnswered(name, warm, r);
    const s = sites(profile);
    log(`  ${name} ${route}: ${r.total} requests sampled (${fmt(r.rps, 0)} req/s), ${fmt(s.total / r.total, 0)} bytes allocated per request`);
    return { requests: r.total, ...s };
  } finally {
    await stop(proc, 10_000);
  }
}

const bodyBytes = {};
const results = { date: new Date().toISOString(), node: process.version, nodeFlags: NODE_FLAGS, routes: {} };
let report = `\nJavaScript heap allocation per request (V8 sampling heap profiler, freed objects included), daemon (${NODE_FLAGS.join(' ') || 'no V8 flags'}) vs bare node:http server, ${results.date}, node ${process.version}\n`;
for (const route of args.route.split(',')) {
  log(`allocations: ${route} route (${args.warm} s warm-up, ${args.seconds} s sampled, wrk 32 connections, servers on CPU 0, wrk on CPU 1)`);
  const daemon = await allocations('daemon', route, (port) => daemonArgv(setup, port, probe));
  const bare = await allocations('bare', route, async (port) => bareArgv(setup, port, route, bodyBytes[route], probe));
  const d = daemon.total / daemon.requests;
  const b = bare.total / bare.requests;
  report += `\n${route} route: ${fmt(d, 0)} bytes per request (daemon) vs ${fmt(b, 0)} (bare): daemon/bare ${fmt(d / b, 3)}\n`;
  const top = Number(args.top);
  const rows = (bySite, requests) => [...bySite].sort((x, y) => y[1] - x[1]).slice(0, top).map(([site, n]) => [fmt(n / requests, 0), site.length > 120 ? site.slice(0, 117) + '...' : site]);
  report += `daemon, where (function < caller < its caller):\n${table(['bytes/request', 'site'], rows(daemon.bySite, daemon.requests))}\n`;
  report += `bare server:\n${table(['bytes/request', 'site'], rows(bare.bySite, bare.requests))}\n`;
  results.routes[route] = { daemonBytesPerRequest: d, bareBytesPerRequest: b, ratio: d / b, requests: { daemon: daemon.requests, bare: bare.requests } };
}
await stop(emu.proc);
process.stdout.write(report + JSON.stringify(results) + '\n');
