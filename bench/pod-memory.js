// `npm run bench:pod-memory [-- --bindings 1,10 --pods 0,10,100,1000,2000 --again 3 --settle-ms 2000 --hold]`
//
// Node-agent memory per pod: the real daemon (dist/bundle/cli.js `serve`, with
// package.json "nodeFlags", plus --expose-gc and bench/gc-probe.js so a signal
// can force a full GC) as a node agent with B podIdentity bindings, and the real
// emulator (`cli.js emulator`), both child processes. This process plays the
// cluster (an issuer as `pki pod-token` makes, one projected token per pod) and
// the pods: pod i is namespace ns-(i mod B), service account sa-i, pod pod-i
// (every pod has its own token, service account and pod UID), and fetches
// GET /v1/credentials on the agent's pod-identity listener (loopback standing in
// for 169.254.170.23) twice — a verification, then a cache hit — on its own
// connection, closed afterwards (--hold: kept open, as an SDK's keep-alive agent
// holds it for a while).
//
// After each step (P pods in all) it waits --settle-ms, reads VmRSS, forces a
// full GC in the agent, waits 1 s and reads VmRSS, RssAnon and V8's used heap.
// Per pod: the least-squares slope over the steps with P ≥ 100 (the bindings'
// sessions have started and the request path is compiled) of VmRSS and of the
// used heap (what the agent retains: verified-token cache entry, binding match,
// the pod-UID counter). P = 0 is the idle agent (no session yet: sessions start
// on a binding's first pod, the default). Then --again rounds refetch the same
// pods with no new one, to show how much of the RSS growth is request churn
// (allocator and heap high-water) rather than per-pod state. Loopback only; both
// children are killed and the temp dir removed on exit.
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { Agent, request } from 'node:http';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ARNS, CLI, fmt, freePort, installCleanup, makeCA, makeLeaf, memKb, NODE_FLAGS, readyz, ROOT, sleep, slope, spawnEmulator, spawnTracked, stop, table, tempDir, waitUntil } from './lib.js';

const { values: args } = parseArgs({
  options: {
    bindings: { type: 'string', default: '1,10' },
    pods: { type: 'string', default: '0,10,100,1000,2000' },
    'settle-ms': { type: 'string', default: '2000' },
    concurrency: { type: 'string', default: '16' },
    again: { type: 'string', default: '3' },
    hold: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h' },
  },
});
if (args.help) {
  process.stdout.write('Usage: npm run bench:pod-memory [-- --bindings 1,10] [--pods 0,10,100,1000,2000] [--again ROUNDS] [--settle-ms MS] [--concurrency N] [--hold]\n');
  process.exit(0);
}
const list = (s, what) => {
  const xs = s.split(',').map((x) => Number(x.trim()));
  if (xs.some((x) => !Number.isInteger(x) || x < 0)) throw new Error(`--${what} takes whole numbers separated by commas, not "${s}"`);
  return xs;
};
const bindingCounts = list(args.bindings, 'bindings').filter((b) => b > 0);
const steps = [...new Set([0, ...list(args.pods, 'pods')])].sort((a, b) => a - b);
const settleMs = Number(args['settle-ms']);
const concurrency = Math.max(1, Number(args.concurrency));

const { createPodIssuer, mintPodToken } = await import(join(ROOT, 'dist', 'podidentity', 'issuer.js'));

installCleanup();
const log = (s) => process.stderr.write(s + '\n');
const dir = tempDir('ra-podmem-');
const ca = await makeCA(dir);
const leaf = await makeLeaf(dir, ca, 'node');
const emu = await spawnEmulator({ caPath: ca.certPath });
const issuer = await createPodIssuer({ dir: join(dir, 'cluster') });

/** One GET /v1/credentials with the pod's token; → status. */
function fetchCredentials(port, token, agent) {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/v1/credentials', headers: { authorization: token }, agent }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
      res.on('error', reject);
    });
    req.setTimeout(15000, () => req.destroy(new Error('no answer within 15 s')));
    req.on('error', reject);
    req.end();
  });
}

async function run(bindings) {
  const sub = join(dir, `b${bindings}`);
  const port = await freePort();
  const podPort = await freePort();
  const profiles = {};
  const podBindings = [];
  for (let b = 0; b < bindings; b++) {
    profiles[`binding-${b}`] = {
      certificate: leaf.certPath,
      privateKey: leaf.keyPath,
      trustAnchorArn: ARNS.trustAnchorArn,
      profileArn: ARNS.profileArn,
      roleArn: ARNS.roleArn.replace(/role\/.*/, `role/binding-${b}`),
    };
    podBindings.push({ namespace: `ns-${b}`, serviceAccount: '*', profile: `binding-${b}` });
  }
  const config = `${sub}.yaml`;
  await writeFile(
    config,
    JSON.stringify({
      listen: [`127.0.0.1:${port}`],
      tokenFile: `${sub}.token`,
      logLevel: 'warn',
      imds: { enabled: false },
      region: 'us-east-1',
      endpoint: emu.url,
      withProxy: false,
      profiles,
      podIdentity: { listen: [`127.0.0.1:${podPort}`], issuer: issuer.issuer, audiences: [issuer.audience], jwks: { file: issuer.paths.jwks }, bindings: podBindings },
    }),
  );
  const gcOut = `${sub}.gc.json`;
  const daemon = spawnTracked(process.execPath, [...NODE_FLAGS, '--expose-gc', '--import', join(ROOT, 'bench', 'gc-probe.js'), CLI, 'serve', '--config', config], {
    env: { PATH: process.env.PATH, HOME: process.env.HOME, BENCH_GC_OUT: gcOut },
  });
  const pid = daemon.child.pid;
  let gcs = 0;
  /** A full GC in the agent (bench/gc-probe.js) → V8's heap figures after it (bytes). */
  const fullGc = async () => {
    gcs++;
    daemon.child.kill('SIGUSR2');
    let r;
    await waitUntil('the agent to report a full GC', () => {
      r = JSON.parse(readFileSync(gcOut, 'utf8'));
      return r.n === gcs;
    }, 10000, 20);
    return r;
  };
  await waitUntil('the node agent to answer /readyz', async () => (await readyz(port)) !== 0, 30000);
  await waitUntil('the pod-identity listener', async () => (await fetchCredentials(podPort, 'Bearer x', false)) === 401, 30000);

  const rows = [];
  /** --hold: each pod's keep-alive agent (its one connection), by token. */
  const held = new Map();
  /** Every pod in `tokens` fetches twice (a verification, then a cache hit) on its own connection. */
  const fetchAll = async (tokens, label) => {
    let next = 0;
    let bad = 0;
    await Promise.all(
      Array.from({ length: Math.min(concurrency, tokens.length) }, async () => {
        while (next < tokens.length) {
          const token = tokens[next++];
          let agent = false;
          if (args.hold) {
            agent = held.get(token) ?? new Agent({ keepAlive: true, maxSockets: 1 });
            held.set(token, agent);
          }
          for (let k = 0; k < 2; k++) if ((await fetchCredentials(podPort, token, agent)) !== 200) bad++;
        }
      }),
    );
    if (bad) throw new Error(`${bad} of ${tokens.length * 2} pod requests were not answered 200 (B=${bindings}, ${label}):\n${daemon.output().slice(-2000)}`);
  };
  const sample = async (label) => {
    await sleep(settleMs);
    const settled = memKb(pid);
    const v8 = await fullGc();
    const heapKb = v8.usedHeapBytes / 1024;
    await sleep(1000);
    const m = memKb(pid);
    log(`  B=${bindings} ${label}: VmRSS ${settled.rss} kB after ${settleMs} ms; after a full GC: VmRSS ${m.rss} kB, RssAnon ${m.anon} kB, V8 heap used ${Math.round(heapKb)} kB`);
    return { rssSettledKb: settled.rss, rssKb: m.rss, anonKb: m.anon, heapKb, v8 };
  };
  const tokens = [];
  for (const p of steps) {
    // Mint this step's new pods' tokens first (this process's work, not the agent's), then fetch.
    const fresh = [];
    for (let i = tokens.length; i < p; i++) {
      const { token } = await mintPodToken(issuer, { namespace: `ns-${i % bindings}`, serviceAccount: `sa-${i}`, podName: `pod-${i}` });
      fresh.push(token);
    }
    await fetchAll(fresh, `P=${p}`);
    tokens.push(...fresh);
    rows.push({ pods: p, ...(await sample(`P=${p}`)) });
  }
  // The same pods once more (no new pod): what the agent's memory does with requests alone.
  const again = [];
  for (let k = 1; k <= Number(args.again); k++) {
    await fetchAll(tokens, `P=${tokens.length} again ×${k}`);
    again.push(await sample(`P=${tokens.length} again ×${k}`));
  }
  for (const a of held.values()) a.destroy();
  await stop(daemon);
  const tail = rows.filter((r) => r.pods >= 100);
  return {
    bindings,
    rows,
    idleKb: rows[0].rssKb,
    kbPerPod: slope(tail.map((r) => [r.pods, r.rssKb])),
    settledKbPerPod: slope(tail.map((r) => [r.pods, r.rssSettledKb])),
    heapKbPerPod: slope(tail.map((r) => [r.pods, r.heapKb])),
    again,
  };
}

const loadavg = (await import('node:os')).loadavg().map((x) => x.toFixed(1)).join(' ');
log(`node-agent memory per pod; load average ${loadavg}; settle ${settleMs} ms; connections ${args.hold ? 'held open' : 'closed'} after each pod`);
const results = [];
for (const b of bindingCounts) results.push(await run(b));
await stop(emu.proc);

process.stdout.write(
  '\n' +
    table(
      ['bindings', ...steps.map((p) => `P=${p} RSS`), ...(Number(args.again) > 0 ? [`same pods ×${args.again} again`] : []), 'KB/pod: RSS', 'RSS before GC', 'V8 heap'],
      results.map((r) => [
        String(r.bindings),
        ...r.rows.map((x) => `${fmt(x.rssKb / 1024)} MB`),
        ...(r.again.length ? [r.again.map((x) => fmt(x.rssKb / 1024)).join(' / ') + ' MB'] : []),
        fmt(r.kbPerPod, 2),
        fmt(r.settledKbPerPod, 2),
        fmt(r.heapKbPerPod, 2),
      ]),
    ) +
    '\n',
);
process.stdout.write(
  `(load average at start ${loadavg}. RSS columns: VmRSS after a full GC and ${settleMs} + 1000 ms; P=0 is the idle agent before any pod.\n` +
    ` KB/pod: least-squares slope over P ≥ 100 of VmRSS after the GC, of VmRSS after ${settleMs} ms without one, and of V8's used heap after the GC.\n` +
    ` Each pod fetched twice on its own connection, ${args.hold ? 'held open until the sample' : 'closed after'}; "same pods again": every pod fetched twice more, no new pod, after each round.)\n`,
);
await writeFile(
  join(ROOT, 'bench', 'pod-memory.json'),
  JSON.stringify({ date: new Date().toISOString(), loadavg, settleMs, hold: args.hold, steps, results }, null, 2),
);
process.exit(0);
