// `npm run bench:pods [-- --agents N --bindings B --lifetime S --quota Q --seconds T]`
//
// How many nodes × bindings one account's CreateSession quota sustains. Runs N
// node agents (the real Daemon from dist/, in this process, each with B bound
// profiles whose sessions start together: a whole-cluster restart) against the
// emulator (a child process) enforcing the quota as a shared token bucket (429
// ThrottlingException above it, like the service). Issued credentials live
// `--lifetime` seconds, so the minutes of a real session duration shrink to
// seconds; every figure scales with the lifetime L:
//
//   each session refreshes at L/2 (± 10 % jitter)  →  N·B sessions need 2·N·B/L calls/s
//   sustained while 2·N·B/L ≤ quota                →  N·B ≤ quota · L / 2
//
// (10/s and a 3600 s session: 18,000 node-bindings; 900 s: 4,500; 43,200 s: 216,000.)
// The default run shows one cluster below that line and one above it: the first
// settles with every session fresh after the restart burst; the second cannot
// keep up (throttling never stops and sessions go without credentials).
// Loopback only; the emulator child is killed on exit.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ARNS, fmt, httpRequest, installCleanup, makeCA, makeLeaf, ROOT, sleep, spawnEmulator, stop, table, tempDir } from './lib.js';

const { values: args } = parseArgs({
  options: {
    agents: { type: 'string' },
    bindings: { type: 'string' },
    lifetime: { type: 'string', default: '20' },
    quota: { type: 'string', default: '10' },
    seconds: { type: 'string' },
    quick: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h' },
  },
});
if (args.help) {
  process.stdout.write('Usage: npm run bench:pods [-- --agents N --bindings B] [--lifetime SECONDS] [--quota CALLS_PER_SECOND] [--seconds OBSERVE] [--quick]\n');
  process.exit(0);
}

const { Daemon } = await import(join(ROOT, 'dist', 'server', 'daemon.js'));
const { daemonDeps } = await import(join(ROOT, 'dist', 'cli', 'serve.js'));
const { loadDaemonConfig } = await import(join(ROOT, 'dist', 'config', 'load.js'));
const { createLogger } = await import(join(ROOT, 'dist', 'log.js'));

installCleanup();
const log = (s) => process.stderr.write(s + '\n');
const lifetime = Number(args.lifetime);
const quota = Number(args.quota);
const capacity = (quota * lifetime) / 2;
const observe = Number(args.seconds ?? (args.quick ? lifetime * 2 : lifetime * 4));

// Clusters to run: the one given, else one at 60 % of the capacity and one at 160 %.
const clusters = args.agents
  ? [{ agents: Number(args.agents), bindings: Number(args.bindings ?? 5) }]
  : [
      { agents: Math.max(1, Math.round((capacity * 0.6) / 5)), bindings: 5 },
      { agents: Math.max(1, Math.round((capacity * 1.6) / 5)), bindings: 5 },
    ];

const dir = await tempDir('ra-podsim-');
const ca = await makeCA(dir);
const leaf = await makeLeaf(dir, ca, 'node');
const emu = await spawnEmulator({ caPath: ca.certPath, lifetime });
const control = async (method, path, body) => {
  const r = await httpRequest(emu.port, method, path, body === undefined ? {} : { 'content-type': 'application/json' }, body === undefined ? undefined : JSON.stringify(body));
  if (r.status !== 200) throw new Error(`emulator ${method} ${path} → ${r.status} ${r.body}`);
  return JSON.parse(r.body);
};

async function agentConfig(i, bindings) {
  const profiles = {};
  for (let b = 0; b < bindings; b++) {
    profiles[`binding-${b}`] = {
      certificate: leaf.certPath,
      privateKey: leaf.keyPath,
      trustAnchorArn: ARNS.trustAnchorArn,
      profileArn: ARNS.profileArn,
      roleArn: ARNS.roleArn.replace(/role\/.*/, `role/binding-${b}`),
    };
  }
  const file = join(dir, `agent-${i}.yaml`);
  await writeFile(
    file,
    JSON.stringify({
      listen: ['127.0.0.1:0'],
      tokenFile: join(dir, `agent-${i}.token`),
      imds: { enabled: false },
      region: 'us-east-1',
      endpoint: emu.url,
      withProxy: false,
      sessionDuration: 900,
      profiles,
    }),
  );
  return loadDaemonConfig({ argv: ['--config', file], env: { HOME: dir } });
}

async function run({ agents, bindings }) {
  const sessions = agents * bindings;
  log(`\n${agents} agents × ${bindings} bindings = ${sessions} sessions (capacity at ${quota}/s with ${lifetime} s credentials: ${capacity}); observing ${observe} s`);
  await control('DELETE', '/_emulator/stats');
  await control('POST', '/_emulator/ratelimit', { perSecond: quota });
  const configs = await Promise.all(Array.from({ length: agents }, (_, i) => agentConfig(i, bindings)));
  const logger = await createLogger({ level: 'silent' });
  const started = performance.now();
  const wallStart = Date.now();
  // A whole-cluster restart: every agent starts at once.
  const daemons = await Promise.all(configs.map((c) => Daemon.start(c, daemonDeps(logger))));
  const all = daemons.flatMap((d) => Object.keys(d.currentConfig.profiles).map((name) => d.session(name)));
  const samples = [];
  let allReadyAt;
  const end = started + observe * 1000;
  while (performance.now() < end) {
    await sleep(500);
    const ready = all.filter((s) => s.status().ready).length;
    const t = (performance.now() - started) / 1000;
    samples.push({ t, ready });
    if (allReadyAt === undefined && ready === sessions) allReadyAt = t;
  }
  const stats = await control('GET', '/_emulator/stats');
  await Promise.all(daemons.map((d) => d.close(100)));
  // Steady state: the second half of the observation.
  const steady = samples.filter((s) => s.t >= observe / 2);
  const steadyCalls = stats.calls.filter((c) => c.operation === 'CreateSession' && Date.parse(c.time) >= wallStart + (observe / 2) * 1000);
  const okSteady = steadyCalls.filter((c) => c.outcome === 'ok').length;
  const throttledSteady = steadyCalls.filter((c) => c.outcome === 'ThrottlingException').length;
  const notReady = steady.length ? steady.reduce((a, s) => a + (sessions - s.ready), 0) / (steady.length * sessions) : NaN;
  return {
    agents,
    bindings,
    sessions,
    load: sessions / capacity,
    allReadyAt,
    ok: stats.createSession.ok,
    throttled: stats.createSession.errors.ThrottlingException ?? 0,
    okPerSecondSteady: okSteady / (observe / 2),
    throttledPerSecondSteady: throttledSteady / (observe / 2),
    needPerSecond: (2 * sessions) / lifetime,
    notReady,
  };
}

const results = [];
for (const c of clusters) results.push(await run(c));
await stop(emu.proc);

log('');
process.stdout.write(
  table(
    ['agents×bindings', 'load', 'all ready after', 'CreateSession ok / throttled', 'steady ok/s (need)', 'steady throttled/s', 'session time without credentials'],
    results.map((r) => [
      `${r.agents}×${r.bindings}=${r.sessions}`,
      `${fmt(r.load * 100, 0)} %`,
      r.allReadyAt === undefined ? 'never' : `${fmt(r.allReadyAt)} s`,
      `${r.ok} / ${r.throttled}`,
      `${fmt(r.okPerSecondSteady)} (${fmt(r.needPerSecond)})`,
      fmt(r.throttledPerSecondSteady),
      `${fmt(r.notReady * 100)} %`,
    ]),
  ) + '\n',
);
process.stdout.write(
  `\nQuota ${quota}/s, credentials living ${lifetime} s: sustained while nodes × bindings ≤ ${quota} × ${lifetime} / 2 = ${capacity}.\n` +
    `At ${quota}/s: ${[900, 3600, 43200].map((d) => `${d} s sessions → ${(quota * d) / 2} node-bindings`).join('; ')}.\n`,
);
await writeFile(join(ROOT, 'bench', 'pod-identity-sim.json'), JSON.stringify({ date: new Date().toISOString(), quota, lifetime, observe, results }, null, 2));
process.exit(0);
