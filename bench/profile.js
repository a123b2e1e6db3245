// `npm run bench:profile [-- --route container,imds] [-- --warm 20] [-- --seconds 10] [-- --sched] [-- --bare-flags '--max-semi-space-size=2']`
//
// Where each server's CPU goes per request, the kernel included: the daemon and
// bench/bare-server.js, one after the other, each pinned to CPU 0 with wrk on CPU 1
// (as `npm run bench` runs them), get `--warm` seconds of load, then `--seconds` more
// while `perf record -e cpu-clock` samples every thread of the server (a software
// clock: it works in VMs without hardware counters). Node runs with --perf-basic-prof
// so JIT frames have names. Reported per 100,000 requests, so the two servers compare
// however fast the host ran each:
//   - samples by kind of code (kernel, JavaScript, V8's megamorphic property access,
//     other V8 builtins, GC, the rest of node, libc) and by thread (main, V8 workers,
//     libuv workers);
//   - context switches of each kind of thread (from /proc/<pid>/task/*/status);
//   - the symbols whose samples differ most;
//   - with --sched: a scheduler trace of CPU 0 (perf sched:sched_switch) over the same
//     window: how often and how long the main thread was runnable but off the CPU
//     (preempted), and which threads ran instead. Every such gap delays every request
//     in flight, so this is where a latency tail beyond the main thread's own work
//     comes from.
// --bare-flags runs the bare server with V8 flags too (by default it has none, as a
// plain `node server.js` would): with the daemon's own (package.json nodeFlags), the
// two compare at the same young generation, so what is left is the daemon's code.
// What `npm run bench:instructions` cannot see (kernel work, scheduling, cache
// misses) shows here; what this cannot resolve (differences under ~2 %: samples are
// at 2 kHz on a noisy host) the instruction counts can.
//
// Needs perf (Debian: linux-perf) and wrk. ≈ 1 min per route.
import { execFile, spawn } from 'node:child_process';
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs, promisify } from 'node:util';
import { NODE_FLAGS, fmt, installCleanup, stop, table } from './lib.js';
import { allAnswered, bareArgv, daemonArgv, perRequestSetup, pinnedLoad, startPinned } from './per-request.js';

const run = promisify(execFile);
const { values: args } = parseArgs({
  options: {
    route: { type: 'string', default: 'container,imds' },
    warm: { type: 'string', default: '20' },
    seconds: { type: 'string', default: '10' },
    top: { type: 'string', default: '15' },
    sched: { type: 'boolean', default: false },
    'bare-flags': { type: 'string', default: '' },
  },
});
const log = (s) => process.stderr.write(s + '\n');
installCleanup();

const setup = await perRequestSetup('bench:profile', 'perf', 'apt-get install linux-perf', log);
const { dir, emu } = setup;
const PER = 100_000;
const bareFlags = args['bare-flags'].split(/\s+/).filter(Boolean);

/** A thread's kind from its name: Node names its threads. */
const threadKind = (comm) => (comm === 'MainThread' || comm === 'node' ? 'main' : comm.startsWith('V8') ? 'V8 workers' : comm.startsWith('libuv') ? 'libuv workers' : 'other threads');

/** Context switches of each kind of thread so far. */
function switches(pid) {
  const out = {};
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const status = readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8');
      const kind = threadKind(/^Name:\s*(.*)$/m.exec(status)[1]);
      const voluntary = Number(/^voluntary_ctxt_switches:\s*(\d+)/m.exec(status)[1]);
      const preempted = Number(/^nonvoluntary_ctxt_switches:\s*(\d+)/m.exec(status)[1]);
      out[kind] ??= { all: 0, preempted: 0 };
      out[kind].all += voluntary + preempted;
      out[kind].preempted += preempted;
    } catch {
      // the thread ended
    }
  }
  return out;
}

/** What kind of code a sampled symbol is. */
function codeKind(dso, sym) {
  if (dso.includes('kernel')) return 'kernel (syscalls, TCP, scheduler)';
  if (dso.startsWith('[JIT]') || dso.includes('perf-')) return 'JavaScript (JIT code)';
  if (/^Builtins_\w*IC_Megamorphic|^Builtins_\w*ICTrampoline_Megamorphic/.test(sym)) return "V8: megamorphic property access";
  if (/Scaveng|Heap::|MarkCompact|Marking|Sweep|GC|RecordWrite|ConcurrentMark|Evacuat|IterateObjectCache|RootScavenge/.test(sym)) return 'V8: GC and write barrier';
  if (sym.startsWith('Builtins_')) return 'V8: other builtins (ICs, calls, strings)';
  if (dso === 'node') return 'node/V8 C++ (http parser, bindings, runtime)';
  return 'libc and other libraries';
}

/** Samples per symbol, thread kind and code kind, from a perf.data file. */
async function samples(file) {
  const { stdout } = await run('perf', ['report', '-i', file, '--no-children', '-g', 'none', '-n', '--sort', 'comm,dso,sym', '--stdio', '-t', '|'], { maxBuffer: 256 << 20 });
  const bySym = new Map();
  const byThread = {};
  const byCode = {};
  let total = 0;
  for (const line of stdout.split('\n')) {
    if (line.startsWith('#') || !line.includes('|')) continue;
    const f = line.split('|').map((x) => x.trim());
    const n = Number(f[1]);
    if (f.length < 5 || !Number.isFinite(n)) continue;
    const [comm, dsoRaw, symRaw] = [f[2], f[3], f[4]];
    const dso = dsoRaw.replace(/\[JIT\] tid \d+/, '[JIT]').replace(/^perf-\d+\.map$/, '[JIT]');
    const sym = symRaw.replace(/^\[[.k]\]\s*/, '').replace(/^(JS|LazyCompile):/, '');
    const thread = threadKind(comm);
    const key = `${thread} | ${dso} | ${sym}`;
    bySym.set(key, (bySym.get(key) ?? 0) + n);
    byThread[thread] = (byThread[thread] ?? 0) + n;
    const code = codeKind(dso, sym);
    byCode[code] = (byCode[code] ?? 0) + n;
    total += n;
  }
  return { bySym, byThread, byCode, total };
}

/**
 * The main thread's preemptions in a sched_switch trace of its CPU: gaps between being
 * switched out while runnable (prev_state R) and switched back in, with who ran meanwhile.
 */
async function preemptions(file, pid) {
  const { stdout } = await run('perf', ['script', '-i', file], { maxBuffer: 512 << 20 });
  const re = /\s(\d+\.\d+):\s+sched:sched_switch:\s+prev_comm=(.*?) prev_pid=(\d+) prev_prio=\d+ prev_state=(\S+) ==> next_comm=(.*?) next_pid=(\d+)/;
  const own = new Set(readdirSync(`/proc/${pid}/task`).map(Number));
  const gaps = [];
  const ran = {};
  let out; // { at, last, runnable }
  for (const line of stdout.split('\n')) {
    const m = re.exec(line);
    if (!m) continue;
    const t = Number(m[1]) * 1000;
    const [prevComm, prevPid, prevState, nextPid] = [m[2], Number(m[3]), m[4], Number(m[6])];
    if (prevPid === pid) {
      out = { at: t, last: t, runnable: prevState.startsWith('R') };
      continue;
    }
    if (out === undefined) continue;
    if (out.runnable) {
      const who = own.has(prevPid) ? `own ${threadKind(prevComm)}` : prevPid === 0 ? 'idle' : 'other processes';
      ran[who] = (ran[who] ?? 0) + (t - out.last);
    }
    out.last = t;
    if (nextPid === pid) {
      if (out.runnable) gaps.push(t - out.at);
      out = undefined;
    }
  }
  gaps.sort((a, b) => a - b);
  return { gaps: gaps.length, over1ms: gaps.filter((g) => g > 1).length, over2ms: gaps.filter((g) => g > 2).length, ms: gaps.reduce((a, b) => a + b, 0), max: gaps.at(-1) ?? 0, ran };
}

/** Starts a server pinned to CPU 0 with --perf-basic-prof, loads it, samples it under load → per-request figures. */
async function profile(name, route, argvFor) {
  const { proc, pid, target, bodyBytes: size } = await startPinned(setup, name, route, argvFor);
  try {
    bodyBytes[route] ??= size;
    const warm = await pinnedLoad(setup, target, Number(args.warm));
    const data = join(dir, `perf-${name}-${route}.data`);
    const cs0 = switches(pid);
    const perf = spawn('perf', ['record', '-q', '-e', 'cpu-clock', '-F', '2000', '-p', String(pid), '-o', data], { stdio: 'ignore' });
    const schedData = join(dir, `sched-${name}-${route}.data`);
    const sched = args.sched ? spawn('perf', ['record', '-q', '-e', 'sched:sched_switch', '-C', '0', '-o', schedData], { stdio: 'ignore' }) : undefined;
    const r = await pinnedLoad(setup, target, Number(args.seconds));
    const cs1 = switches(pid);
    for (const p of [perf, sched]) {
      if (p === undefined) continue;
      p.kill('SIGINT');
      await new Promise((resolve) => p.once('close', resolve));
    }
    allAnswered(name, warm, r);
    const s = await samples(data);
    const cs = {};
    for (const kind of Object.keys(cs1)) cs[kind] = { all: cs1[kind].all - (cs0[kind]?.all ?? 0), preempted: cs1[kind].preempted - (cs0[kind]?.preempted ?? 0) };
    const pre = sched === undefined ? undefined : await preemptions(schedData, pid);
    log(`  ${name} ${route}: ${r.total} requests sampled (${fmt(r.rps, 0)} req/s, p99 ${fmt(r.p99, 2)} ms, after ${warm.total} to warm up), ${s.total} samples`);
    return { requests: r.total, rps: r.rps, p99: r.p99, ...s, cs, pre };
  } finally {
    await stop(proc, 10_000);
    rmSync(`/tmp/perf-${pid}.map`, { force: true });
  }
}

const per = (n, requests) => (n * PER) / requests;
const bodyBytes = {};
const results = { date: new Date().toISOString(), node: process.version, nodeFlags: NODE_FLAGS, bareFlags, warmS: Number(args.warm), seconds: Number(args.seconds), routes: {} };
let out = `\nCPU profile per ${PER.toLocaleString('en')} requests (perf cpu-clock at 2 kHz, all threads, kernel included), daemon (${NODE_FLAGS.join(' ') || 'no V8 flags'}) vs bare node:http server (${bareFlags.join(' ') || 'no V8 flags'}), ${results.date}, node ${process.version}\n`;
for (const route of args.route.split(',')) {
  log(`profile: ${route} route (${args.warm} s warm-up, ${args.seconds} s sampled, wrk 32 connections, servers on CPU 0, wrk on CPU 1)`);
  const daemon = await profile('daemon', route, (port) => daemonArgv(setup, port, ['--perf-basic-prof']));
  const bare = await profile('bare', route, async (port) => bareArgv(setup, port, route, bodyBytes[route], [...bareFlags, '--perf-basic-prof']));
  const d = (n) => per(n, daemon.requests);
  const b = (n) => per(n, bare.requests);
  const gap = d(daemon.total) - b(bare.total);
  const rowsFor = (dm, bm) =>
    [...new Set([...Object.keys(dm), ...Object.keys(bm)])]
      .map((k) => [k, d(dm[k] ?? 0), b(bm[k] ?? 0)])
      .sort((x, y) => y[1] - y[2] - (x[1] - x[2]))
      .map(([k, x, y]) => [k, fmt(x, 0), fmt(y, 0), `${x - y >= 0 ? '+' : ''}${fmt(x - y, 0)}`, gap > 0 ? `${fmt((100 * (x - y)) / gap, 0)} %` : '']);
  const total = ['total', fmt(d(daemon.total), 0), fmt(b(bare.total), 0), `${gap >= 0 ? '+' : ''}${fmt(gap, 0)}`, `bare/daemon ${fmt(b(bare.total) / d(daemon.total), 3)}`];
  out += `\n${route} route: ${daemon.requests} / ${bare.requests} requests sampled (${fmt(daemon.rps, 0)} / ${fmt(bare.rps, 0)} req/s)\n`;
  out += table(['samples by kind of code', 'daemon', 'bare', 'difference', 'share of the gap'], [...rowsFor(daemon.byCode, bare.byCode), total]) + '\n';
  out += table(['samples by thread', 'daemon', 'bare', 'difference', 'share of the gap'], [...rowsFor(daemon.byThread, bare.byThread), total]) + '\n';
  const kinds = [...new Set([...Object.keys(daemon.cs), ...Object.keys(bare.cs)])];
  out += table(
    ['context switches', 'daemon', 'bare', 'of which preempted: daemon', 'bare'],
    kinds.map((k) => [k, fmt(d(daemon.cs[k]?.all ?? 0), 0), fmt(b(bare.cs[k]?.all ?? 0), 0), fmt(d(daemon.cs[k]?.preempted ?? 0), 0), fmt(b(bare.cs[k]?.preempted ?? 0), 0)]),
  ) + '\n';
  if (daemon.pre && bare.pre) {
    const kindsRan = [...new Set([...Object.keys(daemon.pre.ran), ...Object.keys(bare.pre.ran)])].sort();
    out += table(
      ['main thread preempted (CPU 0 trace)', 'daemon', 'bare'],
      [
        ['p99 latency (wrk), ms', fmt(daemon.p99, 2), fmt(bare.p99, 2)],
        ['preemptions per 100k requests', fmt(d(daemon.pre.gaps), 0), fmt(b(bare.pre.gaps), 0)],
        ['  of which longer than 1 ms / 2 ms', `${fmt(d(daemon.pre.over1ms), 1)} / ${fmt(d(daemon.pre.over2ms), 1)}`, `${fmt(b(bare.pre.over1ms), 1)} / ${fmt(b(bare.pre.over2ms), 1)}`],
        ['  time off the CPU, ms per 100k requests (longest, ms)', `${fmt(d(daemon.pre.ms), 1)} (${fmt(daemon.pre.max, 2)})`, `${fmt(b(bare.pre.ms), 1)} (${fmt(bare.pre.max, 2)})`],
        ...kindsRan.map((k) => [`  ran meanwhile: ${k}, ms per 100k requests`, fmt(d(daemon.pre.ran[k] ?? 0), 1), fmt(b(bare.pre.ran[k] ?? 0), 1)]),
      ],
    ) + '\n';
  }
  const syms = [...new Set([...daemon.bySym.keys(), ...bare.bySym.keys()])].map((k) => [k, d(daemon.bySym.get(k) ?? 0), b(bare.bySym.get(k) ?? 0)]);
  syms.sort((x, y) => y[1] - y[2] - (x[1] - x[2]));
  const top = Number(args.top);
  const symRows = (list) => list.map(([k, x, y]) => [`${x - y >= 0 ? '+' : ''}${fmt(x - y, 0)}`, fmt(x, 0), fmt(y, 0), k.length > 110 ? k.slice(0, 107) + '...' : k]);
  out += `symbols the daemon spends most on beyond the bare server (thread | code | symbol):\n${table(['difference', 'daemon', 'bare', 'symbol'], symRows(syms.slice(0, top)))}\n`;
  out += `and where it spends less:\n${table(['difference', 'daemon', 'bare', 'symbol'], symRows(syms.slice(-Math.min(8, top)).reverse()))}\n`;
  results.routes[route] = {
    daemon: { requests: daemon.requests, rps: daemon.rps, p99: daemon.p99, samples: daemon.total, byCode: daemon.byCode, byThread: daemon.byThread, switches: daemon.cs, preemptions: daemon.pre },
    bare: { requests: bare.requests, rps: bare.rps, p99: bare.p99, samples: bare.total, byCode: bare.byCode, byThread: bare.byThread, switches: bare.cs, preemptions: bare.pre },
    samplesRatio: b(bare.total) / d(daemon.total),
  };
}
await stop(emu.proc);
process.stdout.write(out + JSON.stringify(results) + '\n');
