// `npm run bench [-- --quick] [-- --only part,part]`
//
// Benchmarks the built daemon (dist/) as a real process against the local
// emulator, each number next to a baseline measured in the same run:
//   ready      spawn → first /readyz 200, vs a bare `node -e` http server's first 200
//   http       throughput and p50/p99 of GET /v1/credentials and the IMDS credentials
//              route, vs bench/bare-server.js (own process), alternating rounds; load from
//              wrk (own process, 1 thread, 32 connections; autocannon only as a fallback)
//   rss        idle RSS and RSS after 1,000,000 requests, daemon and bare server
//   signing    signX509Request per key type vs openssl (per process and per op)
//   scaling    1/10/100/1000 profiles: ready time, RSS, CreateSession spread at start-up
//              and after an outage
// Prints tables and writes bench/results.json. Loopback only; children are
// killed on exit. Full run ≈ 12 min (the parts' measured durations: docs/benchmarks.md), --quick ≈ 1–2 min.
import { createPrivateKey, sign as cryptoSign } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { parseArgs } from 'node:util';
import { loadGenerator, pinningAvailable } from './load.js';
import { routeRequest, sampledRoute } from './per-request.js';
import {
  ARNS, CLI, cpuMs, memKb, NODE_FLAGS, ROLE_NAME, ROOT, fmt, freePort, httpRequest, installCleanup, makeCA, makeLeaf, median, openssl,
  readyz, rssKb, rssSlopeLastHalf, sampleRss, sleep, spawnDaemon, spawnEmulator, spawnTracked, spread, stop, table, tempDir,
  waitForOutput, waitUntil, writeDaemonConfig,
} from './lib.js';

const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    sizes: { type: 'string' },
    'max-concurrent': { type: 'string' },
    'max-calls-per-second': { type: 'string' },
    only: { type: 'string' },
    sea: { type: 'string' },
    generator: { type: 'string', default: 'wrk' },
    pin: { type: 'string', default: 'auto' },
    nice: { type: 'string' },
    rounds: { type: 'string' },
    'round-seconds': { type: 'string' },
    out: { type: 'string', default: join(ROOT, 'bench', 'results.json') },
    help: { type: 'boolean', short: 'h' },
  },
});
if (args.help) {
  process.stdout.write(
    'Usage: npm run bench [-- --quick] [-- --only ready,http,rss,modules,signing,scaling] [-- --out FILE]\n' +
      '  ready: [--sea FILE] also time the single-file executable (npm run build:sea)\n' +
      '  [--generator wrk|autocannon] load generator (default wrk, installed if missing; autocannon is the fallback)\n' +
      '  [--pin auto|on|off] pin the servers to CPU 0 and wrk to CPU 1 with taskset (auto: when taskset exists and there are ≥ 2 CPUs)\n' +
      '  [--nice N] run the servers and the load generator at niceness N (e.g. -10 as root, on a machine shared with other jobs)\n' +
      '  [--rounds N] [--round-seconds S] alternating rounds per route and their length\n' +
      '  scaling only: [--sizes 1,10,100] profile counts; [--max-concurrent N] [--max-calls-per-second N]\n' +
      '  set refresh.maxConcurrent / refresh.maxCallsPerSecond in the generated config (default: the daemon defaults 4 and 10,\n' +
      '  except that a size needing more than 8 calls/s to stay fresh at the 30 s lifetime gets 1.5 × its need: 1000 profiles 100/s)\n',
  );
  process.exit(0);
}
const QUICK = args.quick;
const PARTS = new Set((args.only ?? 'ready,http,rss,modules,signing,scaling').split(','));

const P = QUICK
  ? { readyRuns: 3, idleRounds: 2, rounds: 2, roundSeconds: 2, warmupSeconds: 1, rssRequests: 60_000, signSeconds: 0.3, dgstRuns: 3, scaleSizes: [1, 50], lifetime: 12, startupObserve: 8, outage: 3, recoveryObserve: 6 }
  : { readyRuns: 7, idleRounds: 5, rounds: 5, roundSeconds: 8, warmupSeconds: 2, rssRequests: 1_000_000, signSeconds: 1.5, dgstRuns: 15, scaleSizes: [1, 10, 100, 1000], lifetime: 30, startupObserve: 30, outage: 12, recoveryObserve: 18 };

if (args.rounds) P.rounds = Number(args.rounds);
if (args['round-seconds']) P.roundSeconds = Number(args['round-seconds']);
if (args.sizes) P.scaleSizes = args.sizes.split(',').map(Number);
const LIMITS = {
  ...(args['max-concurrent'] ? { maxConcurrent: Number(args['max-concurrent']) } : {}),
  ...(args['max-calls-per-second'] ? { maxCallsPerSecond: Number(args['max-calls-per-second']) } : {}),
};

installCleanup();
const log = (s) => process.stderr.write(s + '\n');

// Targets (issue 11), printed next to every measured figure.
const TARGETS = { ratio: 0.95, p99Factor: 1.2, idleRss: 1.2, loadedRss: 1.3, readyMs: 300, rss1000Mb: 150 };

const NEED_LOAD = PARTS.has('http') || PARTS.has('rss');
const gen = NEED_LOAD ? await loadGenerator(args.generator, log) : undefined;
const cpus = (await readFile('/proc/cpuinfo', 'utf8').catch(() => '')).match(/^processor\s*:/gm)?.length ?? 1;
const PIN = args.pin === 'on' || (args.pin === 'auto' && gen?.run !== undefined && !gen.name.startsWith('autocannon') && cpus >= 2 && (await pinningAvailable()));
/** CPU for the servers under test and for the load generator (taskset), or undefined. */
const NICE = args.nice === undefined ? undefined : Number(args.nice);
const CPU = PIN ? { server: '0', load: '1' } : { server: undefined, load: undefined };
/** How the servers under test and the load generator are scheduled (lib.scheduled). */
const SCHED = { server: { cpu: CPU.server, nice: NICE }, load: { cpu: CPU.load, nice: NICE } };
if (gen) log(`bench: load generator ${gen.name} (${gen.note}); ${PIN ? 'servers pinned to CPU 0, load generator to CPU 1 (taskset)' : 'no CPU pinning'}${NICE === undefined ? '' : `, niceness ${NICE}`}`);
const results = { date: new Date().toISOString(), quick: QUICK, node: process.version, machine: await machine(), params: P, cli: relative(ROOT, CLI), nodeFlags: NODE_FLAGS };

async function machine() {
  const cpus = (await readFile('/proc/cpuinfo', 'utf8')).match(/^model name\s*:\s*(.*)$/gm) ?? [];
  let load = '';
  try {
    load = (await readFile('/proc/loadavg', 'utf8')).split(' ').slice(0, 3).join(' ');
  } catch {
    // not Linux
  }
  return { cpus: cpus.length, model: cpus[0]?.replace(/^model name\s*:\s*/, ''), loadAvgAtStart: load };
}

// ---- setup ------------------------------------------------------------------------------------

const dir = tempDir();
log(`bench: ${QUICK ? 'quick' : 'full'} run; temp dir ${dir}`);
const ca = await makeCA(dir);
const leaf = await makeLeaf(dir, ca, 'bench-client', 'p256');
const emu = await spawnEmulator({ caPath: ca.certPath, lifetime: 3600 });
const tokenFile = join(dir, 'token');
const mainProfile = [{ name: 'main', certPath: leaf.certPath, keyPath: leaf.keyPath }];

async function startDaemon(profiles = mainProfile, extra = {}, command = undefined) {
  const port = await freePort();
  const config = await writeDaemonConfig(dir, { port, profiles, endpoint: emu.url, tokenFile, file: `daemon-${port}.yaml`, ...extra });
  const t0 = performance.now();
  const proc = spawnDaemon(config, [], command, SCHED.server);
  return { proc, port, t0, pid: proc.child.pid };
}

// ---- 1. time to ready --------------------------------------------------------------------------

/** Polls `path` every `pollMs` from `t0` until a 200: { ready, listening } in ms. */
async function timeToFirst200(port, path, t0, proc, timeoutMs = 30000, pollMs = 2) {
  let listening;
  for (;;) {
    const now = performance.now();
    if (now - t0 > timeoutMs) throw new Error(`no 200 from ${path} within ${timeoutMs} ms:\n${proc.output().slice(-1500)}`);
    if (proc.child.exitCode !== null) throw new Error(`process exited:\n${proc.output().slice(-1500)}`);
    let status = 0;
    try {
      status = (await httpRequest(port, 'GET', path, {}, undefined, { timeoutMs: 2000 })).status;
    } catch {
      // not listening yet
    }
    if (status !== 0 && listening === undefined) listening = performance.now() - t0;
    if (status === 200) return { ready: performance.now() - t0, listening };
    await sleep(pollMs);
  }
}

async function benchReady() {
  log('ready: spawn → /readyz 200 (daemon) vs spawn → first 200 (bare node -e server)');
  const daemon = [];
  const listening = [];
  const bare = [];
  const sea = [];
  const seaListening = [];
  const seaRss = [];
  const daemonRss = [];
  const bareScript = "require('http').createServer((q,s)=>s.end('ok')).listen(Number(process.argv[1]),'127.0.0.1')";
  for (let i = 0; i < P.readyRuns; i++) {
    const order = i % 2 === 0 ? ['daemon', 'bare', 'sea'] : ['sea', 'bare', 'daemon'];
    for (const which of order) {
      if (which === 'sea' && !args.sea) continue;
      if (which === 'daemon' || which === 'sea') {
        const d = await startDaemon(mainProfile, {}, which === 'sea' ? [args.sea] : undefined);
        const r = await timeToFirst200(d.port, '/readyz', d.t0, d.proc);
        (which === 'sea' ? sea : daemon).push(r.ready);
        (which === 'sea' ? seaListening : listening).push(r.listening);
        await sleep(1000);
        (which === 'sea' ? seaRss : daemonRss).push(await rssKb(d.pid));
        await stop(d.proc);
      } else {
        const port = await freePort();
        const t0 = performance.now();
        const proc = spawnTracked(process.execPath, ['-e', bareScript, String(port)], SCHED.server);
        const r = await timeToFirst200(port, '/', t0, proc);
        bare.push(r.ready);
        await stop(proc);
      }
    }
  }
  results.ready = {
    daemonReadyMs: median(daemon),
    daemonListeningMs: median(listening),
    bareFirst200Ms: median(bare),
    ratio: median(daemon) / median(bare),
    extraMs: median(daemon) - median(bare),
    daemonIdleRssKb: median(daemonRss),
    ...(args.sea ? { seaReadyMs: median(sea), seaListeningMs: median(seaListening), seaIdleRssKb: median(seaRss) } : {}),
    runs: { daemon, listening, bare, ...(args.sea ? { sea, seaListening } : {}) },
  };
}

// ---- 2. throughput and latency ----------------------------------------------------------------

async function startBare(containerBytes, imdsBytes) {
  const port = await freePort();
  const proc = spawnTracked(process.execPath, [join(ROOT, 'bench', 'bare-server.js'), '--port', String(port), '--token-file', tokenFile, '--container-bytes', String(containerBytes), '--imds-bytes', String(imdsBytes), '--role', ROLE_NAME], SCHED.server);
  await waitForOutput(proc, /bare listening on \d+/);
  return { proc, port, pid: proc.child.pid };
}

/** The daemon's body sizes, so the bare server sends equally sized bodies. */
async function bodySizes(d) {
  const c = await sampledRoute('daemon', 'container', d.port, d.token);
  const i = await sampledRoute('daemon', 'imds', d.port, d.token);
  return { container: c.bodyBytes, imds: i.bodyBytes };
}

async function readyDaemon() {
  const d = await startDaemon();
  await waitUntil('daemon ready', async () => (await readyz(d.port)) === 200, 30000, 20);
  return { ...d, token: await readFile(tokenFile, 'utf8') };
}

async function readyBare(sizes) {
  const b = await startBare(sizes.container, sizes.imds);
  // The IMDS route needs no endpoint token.
  const { bodyBytes } = await sampledRoute('bare server', 'imds', b.port, undefined);
  if (bodyBytes !== sizes.imds) throw new Error('bare server IMDS body differs in size');
  return b;
}

/** The request of `route` against a server: { url, headers } (a fresh IMDSv2 token per server). */
const routeTarget = (route, server, token) => routeRequest(route, server.port, token);

const load = (t, seconds, connections = 32) => gen.run({ ...t, seconds, connections, ...SCHED.load });

/** One load run against a server, with the CPU time the server used per request (µs) — robust against other jobs on the machine. */
async function measured(server, t, seconds) {
  const before = cpuMs(server.pid);
  const r = await load(t, seconds);
  r.cpuUsPerRequest = ((cpuMs(server.pid) - before) * 1000) / r.total;
  return r;
}

async function benchHttp() {
  const d = await readyDaemon();
  const sizes = await bodySizes(d);
  const bare = await readyBare(sizes);
  const token = d.token;
  results.http = { generator: gen.name, generatorNote: gen.note, pinned: PIN, nice: NICE, bodyBytes: sizes, connections: 32, roundSeconds: P.roundSeconds, rounds: P.rounds };
  for (const route of ['container', 'imds']) {
    log(`http: ${route} route, ${P.rounds} alternating rounds × ${P.roundSeconds} s per server, ${gen.name}, 32 connections`);
    const targets = { daemon: await routeTarget(route, d, token), bare: await routeTarget(route, bare, token) };
    for (const which of ['daemon', 'bare']) await load(targets[which], P.warmupSeconds);
    const rounds = [];
    for (let r = 0; r < P.rounds; r++) {
      const order = r % 2 === 0 ? ['daemon', 'bare'] : ['bare', 'daemon'];
      const round = {};
      for (const which of order) round[which] = await measured(which === 'daemon' ? d : bare, targets[which], P.roundSeconds);
      round.ratio = round.daemon.rps / round.bare.rps;
      round.cpuRatio = round.daemon.cpuUsPerRequest / round.bare.cpuUsPerRequest;
      round.p99Ratio = round.daemon.p99 / round.bare.p99;
      rounds.push(round);
      log(`  round ${r + 1}: daemon ${fmt(round.daemon.rps, 0)} req/s p99 ${fmt(round.daemon.p99, 2)} ms | bare ${fmt(round.bare.rps, 0)} req/s p99 ${fmt(round.bare.p99, 2)} ms | ratio ${fmt(round.ratio, 3)} (target ≥ ${TARGETS.ratio}) | CPU/request ${fmt(round.daemon.cpuUsPerRequest, 1)} vs ${fmt(round.bare.cpuUsPerRequest, 1)} µs`);
    }
    const pick = (which, k) => median(rounds.map((x) => x[which][k]));
    results.http[route] = {
      daemon: { rps: pick('daemon', 'rps'), p50: pick('daemon', 'p50'), p99: pick('daemon', 'p99') },
      bare: { rps: pick('bare', 'rps'), p50: pick('bare', 'p50'), p99: pick('bare', 'p99') },
      medianRatio: median(rounds.map((x) => x.ratio)),
      p99Ratio: pick('daemon', 'p99') / pick('bare', 'p99'),
      cpuUsPerRequest: { daemon: pick('daemon', 'cpuUsPerRequest'), bare: pick('bare', 'cpuUsPerRequest') },
      cpuRatio: median(rounds.map((x) => x.cpuRatio)),
      non2xx: rounds.reduce((a, x) => a + x.daemon.non2xx + x.bare.non2xx, 0),
      errors: rounds.reduce((a, x) => a + x.daemon.errors + x.bare.errors, 0),
      rounds,
    };
  }
  await stop(d.proc);
  await stop(bare.proc);
}

// ---- 3. memory ---------------------------------------------------------------------------------

/** Drives `total` requests (half container, half IMDS; 16 + 16 connections) at a server in timed wrk runs. → { requests, non2xx, errors } */
async function drive(server, token, total, onBatch) {
  const c = await routeTarget("container", server, token);
  const i = await routeTarget("imds", server, token);
  let requests = 0;
  let non2xx = 0;
  let errors = 0;
  let seconds = 4;
  while (requests < total) {
    const [a, b] = await Promise.all([load(c, seconds, 16), load(i, seconds, 16)]);
    requests += a.total + b.total;
    non2xx += a.non2xx + b.non2xx;
    errors += a.errors + b.errors;
    // Aim the next batch at what is left (at least 1 s, at most 15 s).
    const rate = (a.total + b.total) / seconds;
    seconds = Math.max(1, Math.min(15, Math.ceil((total - requests) / rate)));
    await onBatch?.(requests);
  }
  return { requests, non2xx, errors };
}

/** Medians over rounds of { rss, anon, file } (KiB). */
const medianMem = (xs) => ({ rss: median(xs.map((x) => x.rss)), anon: median(xs.map((x) => x.anon)), file: median(xs.map((x) => x.file)) });

async function benchRss() {
  // Idle: fresh daemons and fresh bare servers in alternating rounds, each ready, then
  // 3 s of nothing; medians. One sample each would read the page cache's mood: the
  // file-backed part (the node binary's pages) moves by ~6 MB between runs.
  const d = await readyDaemon();
  const sizes = await bodySizes(d);
  const bare = await readyBare(sizes);
  const idleRuns = { daemon: [], bare: [] };
  for (let i = 0; i < P.idleRounds; i++) {
    for (const which of i % 2 === 0 ? ['daemon', 'bare'] : ['bare', 'daemon']) {
      const s = which === 'daemon' ? await readyDaemon() : await readyBare(sizes);
      await sleep(3000);
      idleRuns[which].push(memKb(s.pid));
      await stop(s.proc);
    }
  }
  const idle = { daemon: medianMem(idleRuns.daemon), bare: medianMem(idleRuns.bare) };
  log(`rss: idle (median of ${P.idleRounds}) daemon ${fmt(idle.daemon.rss / 1024)} MB, bare ${fmt(idle.bare.rss / 1024)} MB; now ${P.rssRequests} requests at each (half container, half IMDS)`);
  const loaded = {};
  for (const [which, server] of [['daemon', d], ['bare', bare]]) {
    const sampler = sampleRss(server.pid, 500);
    const afterKb = [];
    const t0 = Date.now();
    const r = await drive(server, d.token, P.rssRequests, async () => {
      afterKb.push(rssKb(server.pid));
    });
    const samples = sampler.stop();
    await sleep(1000); // let the GC catch up before reading
    loaded[which] = {
      ...r,
      afterKb: rssKb(server.pid),
      peakKb: Math.max(...samples.map((x) => x[1])),
      afterBatchKb: afterKb,
      durationS: (Date.now() - t0) / 1000,
      lastHalfSlopeKbPerMin: rssSlopeLastHalf(samples),
    };
    log(`  ${which}: ${r.requests} requests in ${fmt(loaded[which].durationS, 0)} s, RSS after ${fmt(loaded[which].afterKb / 1024)} MB (peak ${fmt(loaded[which].peakKb / 1024)} MB)`);
  }
  results.rss = {
    idleKb: idle.daemon.rss,
    bareIdleKb: idle.bare.rss,
    idleRatio: idle.daemon.rss / idle.bare.rss,
    idle,
    idleRuns,
    afterKb: loaded.daemon.afterKb,
    bareAfterKb: loaded.bare.afterKb,
    loadedRatio: loaded.daemon.afterKb / loaded.bare.afterKb,
    requests: loaded.daemon.requests,
    bareRequests: loaded.bare.requests,
    non2xx: loaded.daemon.non2xx + loaded.bare.non2xx,
    errors: loaded.daemon.errors + loaded.bare.errors,
    daemon: loaded.daemon,
    bare: loaded.bare,
  };
  await stop(d.proc);
  await stop(bare.proc);
}

// ---- 3b. what each module costs ------------------------------------------------------------------

/** RSS cost of each production dependency alone, and of serve's modules in load order (bench/module-rss.js). */
async function benchModules() {
  const { execFile } = await import('node:child_process');
  const measure = (specs) =>
    new Promise((resolve, reject) =>
      execFile(process.execPath, ['--expose-gc', ...NODE_FLAGS, join(ROOT, 'bench', 'module-rss.js'), ...specs], { cwd: ROOT }, (err, stdout) => (err ? reject(err) : resolve(JSON.parse(stdout)))),
    );
  const deps = Object.keys(JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')).dependencies);
  results.modules = { alone: {}, serveOrder: undefined };
  for (const dep of deps) {
    log(`modules: ${dep}`);
    results.modules.alone[dep] = (await measure([dep])).steps[0].kb;
  }
  // What `serve` loads, in its order, each step on top of the previous ones.
  results.modules.serveOrder = await measure(['node:http', 'node:https', 'dist/config/load.js', 'yaml', 'dist/log.js', 'dist/identity/load.js', 'dist/rolesanywhere/client.js', 'dist/server/daemon.js', 'dist/cli/serve.js', 'fastify', 'jose']);
}

// ---- 4. signing --------------------------------------------------------------------------------

async function benchSigning() {
  const { loadIdentity } = await import(join(ROOT, 'dist', 'identity', 'load.js'));
  const { signX509Request } = await import(join(ROOT, 'dist', 'signing', 'sigv4-x509.js'));
  const { canonicalParts, formatAmzDate, stringToSign } = await import(join(ROOT, 'dist', 'signing', 'canonical.js'));
  const body = JSON.stringify({ durationSeconds: 3600, ...ARNS });
  const host = 'rolesanywhere.us-east-1.amazonaws.com';
  results.signing = {};
  for (const [keyType, speedAlg] of [['rsa2048', 'rsa2048'], ['rsa4096', 'rsa4096'], ['p256', 'ecdsap256'], ['p384', 'ecdsap384']]) {
    log(`signing: ${keyType}`);
    const l = await makeLeaf(dir, ca, `sign-${keyType}`, keyType);
    const identity = await loadIdentity({ certificate: l.certPath, privateKey: l.keyPath });
    const date = new Date();
    // The exact string signX509Request signs.
    const amzDate = formatAmzDate(date);
    const headers = { 'Content-Type': 'application/json', Host: host, 'X-Amz-Date': amzDate, 'X-Amz-X509': identity.certificateDer.toString('base64') };
    const parts = canonicalParts({ method: 'POST', path: '/sessions', headers, body, region: 'us-east-1', amzDate });
    const sts = stringToSign(identity.signer.algorithm, amzDate, parts.scope, parts.canonicalRequest);
    const stsFile = join(dir, `sts-${keyType}.txt`);
    await writeFile(stsFile, sts);
    const sig = (await signX509Request({ identity, region: 'us-east-1', host, body, date })).Authorization.match(/Signature=([0-9a-f]+)/)[1];
    const sigFile = join(dir, `sig-${keyType}.bin`);
    await openssl(['dgst', '-sha256', '-sign', l.keyPath, '-out', sigFile, stsFile]);
    const opensslSig = (await readFile(sigFile)).toString('hex');
    // RSA PKCS#1 v1.5 is deterministic: the same string gives the same signature.
    // ECDSA is not: openssl verifies our signature over the same file instead.
    let sameSignature = identity.signer.keyAlgorithm === 'RSA' ? sig === opensslSig : undefined;
    if (sameSignature === undefined) {
      const pub = join(dir, `pub-${keyType}.pem`);
      const nodeSig = join(dir, `nodesig-${keyType}.bin`);
      await openssl(['pkey', '-in', l.keyPath, '-pubout', '-out', pub]);
      await writeFile(nodeSig, Buffer.from(sig, 'hex'));
      sameSignature = await openssl(['dgst', '-sha256', '-verify', pub, '-signature', nodeSig, stsFile]).then(() => 'verified', () => false);
    }

    // Signing is async (a signer may be a token or a TPM); awaiting a
    // synchronous function too keeps the two columns comparable.
    const perOp = async (fn) => {
      for (let i = 0; i < 5; i++) await fn();
      let n = 0;
      const t0 = performance.now();
      while (performance.now() - t0 < P.signSeconds * 1000 || n < 10) {
        await fn();
        n++;
      }
      return ((performance.now() - t0) * 1000) / n; // µs
    };
    const nodeRequestUs = await perOp(() => signX509Request({ identity, region: 'us-east-1', host, body }));
    const key = createPrivateKey(await readFile(l.keyPath));
    const stsBuf = Buffer.from(sts, 'utf8');
    const nodeSignUs = await perOp(() => cryptoSign('sha256', stsBuf, key));

    const dgst = [];
    for (let i = 0; i < P.dgstRuns; i++) {
      const t0 = performance.now();
      await openssl(['dgst', '-sha256', '-sign', l.keyPath, '-out', sigFile, stsFile]);
      dgst.push((performance.now() - t0) * 1000);
    }
    let speedUs = NaN;
    try {
      const out = await openssl(['speed', '-seconds', String(Math.max(1, Math.round(P.signSeconds))), speedAlg]);
      const m = /(?:rsa\s+\d+\s+bits|\d+\s+bits\s+ecdsa\s+\([^)]*\))\s+[\d.]+s\s+[\d.]+s\s+([\d.]+)/.exec(out);
      if (m) speedUs = 1e6 / Number(m[1]);
    } catch {
      // openssl speed unavailable
    }
    results.signing[keyType] = {
      nodeSignX509RequestUs: nodeRequestUs,
      nodeCryptoSignUs: nodeSignUs,
      opensslDgstPerProcessUs: median(dgst),
      opensslSpeedPerOpUs: speedUs,
      ratioVsOpensslPerOp: nodeRequestUs / speedUs,
      ratioVsOpensslProcess: nodeRequestUs / median(dgst),
      sameSignatureAsOpenssl: sameSignature,
    };
  }
}

// ---- 5. scaling --------------------------------------------------------------------------------

async function collectCalls(emuCtl) {
  const s = await emuCtl.stats();
  await emuCtl.resetStats();
  return s.calls.filter((c) => c.operation === 'CreateSession').map((c) => ({ t: Date.parse(c.time), ok: c.outcome === 'ok' }));
}

/** The daemon's default refresh.maxCallsPerSecond. */
const DEFAULT_CALLS_PER_SECOND = 10;

/**
 * The limiter settings for n profiles. Each profile refreshes every half lifetime,
 * so n profiles need n / (lifetime / 2) CreateSession calls/s (the README's formula);
 * when that is over 80 % of the default 10/s (1000 profiles at a 30 s lifetime need
 * ~67/s: they would never all be ready), and no limit was given, the step raises
 * maxCallsPerSecond to 1.5 × the need, in tens (100/s for 1000 profiles).
 */
function limitsFor(n) {
  if (LIMITS.maxCallsPerSecond !== undefined) return LIMITS;
  const needed = n / (P.lifetime / 2);
  if (needed <= DEFAULT_CALLS_PER_SECOND * 0.8) return LIMITS;
  return { ...LIMITS, maxCallsPerSecond: Math.ceil(Math.round(needed * 1.5) / 10) * 10 };
}

const limiterText = (l) => `${l.maxConcurrent ?? 'default 4'} in flight, ${l.maxCallsPerSecond ?? `default ${DEFAULT_CALLS_PER_SECOND}`}/s`;

async function benchScaling() {
  results.scaling = { lifetimeS: P.lifetime, outageS: P.outage, backoff: { initialMs: 1000, maxMs: 8000 }, limits: LIMITS, sizes: {} };
  const scaleEmu = await spawnEmulator({ caPath: ca.certPath, lifetime: P.lifetime });
  for (const n of P.scaleSizes) {
    const limits = limitsFor(n);
    log(`scaling: ${n} profile(s), credential lifetime ${P.lifetime} s, limiter ${limiterText(limits)}`);
    const profiles = Array.from({ length: n }, (_, i) => ({ name: `p${String(i + 1).padStart(4, '0')}`, certPath: leaf.certPath, keyPath: leaf.keyPath }));
    await scaleEmu.clearFaults();
    await scaleEmu.resetStats();
    const port = await freePort();
    const config = await writeDaemonConfig(dir, { port, profiles, endpoint: scaleEmu.url, tokenFile, file: `scale-${n}.yaml`, refresh: { backoffInitialMs: 1000, backoffMaxMs: 8000, ...limits } });
    const spawnedAt = Date.now();
    const t0 = performance.now();
    const proc = spawnDaemon(config);
    const entry = { profiles: n, limits, startedAt: new Date(spawnedAt).toISOString() };
    results.scaling.sizes[n] = entry;
    try {
      // Every 20 ms: ready takes seconds here, and at 2 ms the ~5,500 polls of a 1000-profile
      // /readyz body (~80 KB) during start-up were a load test of their own (RSS at ready
      // 162-164 MB in 2 runs of 3, against 133 MB; docs/benchmarks.md).
      const r = await timeToFirst200(port, '/readyz', t0, proc, 240000, 20);
      entry.readyMs = r.ready;
      entry.listeningMs = r.listening;
      await sleep(1000);
      entry.rssKb = rssKb(proc.child.pid);
      const startupEnd = spawnedAt + P.startupObserve * 1000;
      await sleep(Math.max(0, startupEnd - Date.now()));
      const startupCalls = await collectCalls(scaleEmu);
      entry.startup = spread(startupCalls.map((c) => c.t), spawnedAt, startupEnd);
      entry.startup.failed = startupCalls.filter((c) => !c.ok).length;

      // Outage: every CreateSession fails with 503, then clears.
      const outageStart = Date.now();
      await scaleEmu.setFaults([{ kind: 'status', status: 503 }]);
      await sleep(P.outage * 1000);
      await scaleEmu.clearFaults();
      const cleared = Date.now();
      const outageCalls = await collectCalls(scaleEmu);
      entry.outage = spread(outageCalls.map((c) => c.t), outageStart, cleared);
      let readyAgainMs;
      const recoveryEnd = cleared + P.recoveryObserve * 1000;
      while (Date.now() < recoveryEnd) {
        if (readyAgainMs === undefined && (await readyz(port)) === 200) readyAgainMs = Date.now() - cleared;
        await sleep(100);
      }
      const recoveryCalls = await collectCalls(scaleEmu);
      entry.recovery = spread(recoveryCalls.map((c) => c.t), cleared, recoveryEnd);
      entry.recovery.readyAgainMs = readyAgainMs;
      entry.rssAfterKb = rssKb(proc.child.pid);
    } catch (err) {
      entry.error = err instanceof Error ? err.message.split('\n')[0] : String(err);
      log(`  ${n} profiles: ${entry.error}`);
    } finally {
      await stop(proc, 5000);
    }
    entry.durationS = (Date.now() - spawnedAt) / 1000;
    log(`  ready ${fmt(entry.readyMs, 0)} ms, RSS ${fmt(entry.rssKb / 1024)} MB, start-up max ${fmt(entry.startup?.maxPerSecond, 0)}/s vs mean ${fmt(entry.startup?.meanPerSecond)}/s, recovery max ${fmt(entry.recovery?.maxPerSecond, 0)}/s vs mean ${fmt(entry.recovery?.meanPerSecond)}/s; step took ${fmt(entry.durationS, 0)} s`);
  }
  await stop(scaleEmu.proc);
}

// ---- run ---------------------------------------------------------------------------------------

const started = Date.now();
results.partSeconds = {};
for (const [part, run] of [['ready', benchReady], ['http', benchHttp], ['rss', benchRss], ['modules', benchModules], ['signing', benchSigning], ['scaling', benchScaling]]) {
  if (!PARTS.has(part)) continue;
  const t = Date.now();
  await run();
  results.partSeconds[part] = (Date.now() - t) / 1000;
  log(`${part}: took ${fmt(results.partSeconds[part], 0)} s`);
}
await stop(emu.proc);
results.totalSeconds = (Date.now() - started) / 1000;

// ---- report ------------------------------------------------------------------------------------

const out = [];
const target = (ok) => (ok ? 'met' : 'MISSED');
out.push(`rolesanywhere-credentiald benchmark (${QUICK ? 'QUICK — harness check only' : 'full'}), ${results.date}, node ${process.version}, ${results.machine.cpus} CPU(s), load at start ${results.machine.loadAvgAtStart}`);
out.push(`daemon: ${relative(ROOT, CLI)} with ${NODE_FLAGS.join(' ') || 'no V8 flags'}${process.env.BENCH_NODE_FLAGS !== undefined ? ' (BENCH_NODE_FLAGS, not package.json nodeFlags)' : ''}`);
if (results.ready) {
  const r = results.ready;
  out.push('', 'Time to ready (median of ' + P.readyRuns + ' runs)', table(['what', 'ms'], [
    ['daemon: spawn → /readyz 200 (CreateSession via emulator)', `${fmt(r.daemonReadyMs)} (target ≤ ${TARGETS.readyMs} ms: ${target(r.daemonReadyMs <= TARGETS.readyMs)})`],
    ['daemon: spawn → first answer (listening)', fmt(r.daemonListeningMs)],
    ...(r.seaReadyMs !== undefined
      ? [
          ['single-file executable: spawn → /readyz 200', fmt(r.seaReadyMs)],
          ['single-file executable: spawn → first answer (listening)', fmt(r.seaListeningMs)],
          ['RSS 1 s after ready: node dist/cli.js / single-file executable (MB)', `${fmt(r.daemonIdleRssKb / 1024)} / ${fmt(r.seaIdleRssKb / 1024)}`],
        ]
      : []),
    ['baseline: spawn `node -e` http server → first 200', fmt(r.bareFirst200Ms)],
    ['ratio daemon / baseline', fmt(r.ratio, 2)],
  ]));
}
if (results.http) {
  const h = results.http;
  out.push('', `HTTP: load generator ${h.generator} (${h.generatorNote}), 32 connections, ${h.pinned ? 'servers on CPU 0 and the generator on CPU 1 (taskset)' : 'no CPU pinning'}${h.nice === undefined ? '' : `, niceness ${h.nice}`}; ${P.rounds} alternating rounds × ${P.roundSeconds} s per server and route`);
  const rows = [];
  for (const route of ['container', 'imds']) {
    const x = h[route];
    rows.push([route, fmt(x.daemon.rps, 0), fmt(x.bare.rps, 0), `${fmt(x.medianRatio, 3)} (≥ ${TARGETS.ratio}: ${target(x.medianRatio >= TARGETS.ratio)})`, fmt(x.daemon.p50, 2), fmt(x.daemon.p99, 2), fmt(x.bare.p50, 2), fmt(x.bare.p99, 2), `${fmt(x.p99Ratio, 2)} (≤ ${TARGETS.p99Factor}: ${target(x.p99Ratio <= TARGETS.p99Factor)})`, String(x.non2xx + x.errors)]);
  }
  out.push(table(['route', 'daemon req/s', 'bare req/s', 'ratio (median of rounds)', 'daemon p50 ms', 'daemon p99 ms', 'bare p50 ms', 'bare p99 ms', 'p99 daemon/bare', 'non-2xx+errors'], rows));
  for (const route of ['container', 'imds']) {
    out.push(`${route} per-round ratios (target ≥ ${TARGETS.ratio}): ${h[route].rounds.map((x) => fmt(x.ratio, 3)).join(', ')}`);
    out.push(`${route} CPU per request: daemon ${fmt(h[route].cpuUsPerRequest.daemon, 1)} µs, bare ${fmt(h[route].cpuUsPerRequest.bare, 1)} µs, bare/daemon ${fmt(1 / h[route].cpuRatio, 3)} (median of rounds; the throughput ratio the servers would reach if each had a core to itself)`);
  }
}
if (results.rss) {
  const r = results.rss;
  out.push('', 'Memory (VmRSS), daemon vs bare node:http server in the same run', table(['what', 'daemon', 'bare', 'ratio', 'target'], [
    [`idle (ready + 3 s, median of ${r.idleRuns.daemon.length})`, `${fmt(r.idleKb / 1024)} MB`, `${fmt(r.bareIdleKb / 1024)} MB`, fmt(r.idleRatio, 2), `≤ ${TARGETS.idleRss}: ${target(r.idleRatio <= TARGETS.idleRss)}`],
    ['  of which anonymous (own memory)', `${fmt(r.idle.daemon.anon / 1024)} MB`, `${fmt(r.idle.bare.anon / 1024)} MB`, fmt(r.idle.daemon.anon / r.idle.bare.anon, 2), ''],
    ['  of which file pages (node binary, shared)', `${fmt(r.idle.daemon.file / 1024)} MB`, `${fmt(r.idle.bare.file / 1024)} MB`, fmt(r.idle.daemon.file / r.idle.bare.file, 2), ''],
    [`after ${r.requests} / ${r.bareRequests} requests (+1 s)`, `${fmt(r.afterKb / 1024)} MB`, `${fmt(r.bareAfterKb / 1024)} MB`, fmt(r.loadedRatio, 2), `≤ ${TARGETS.loadedRss}: ${target(r.loadedRatio <= TARGETS.loadedRss)}`],
    ['peak during the load', `${fmt(r.daemon.peakKb / 1024)} MB`, `${fmt(r.bare.peakKb / 1024)} MB`, fmt(r.daemon.peakKb / r.bare.peakKb, 2), ''],
    ['RSS slope, last half of the load', `${fmt(r.daemon.lastHalfSlopeKbPerMin / 1024)} MB/min`, `${fmt(r.bare.lastHalfSlopeKbPerMin / 1024)} MB/min`, '', ''],
    ['non-2xx + errors', String(r.non2xx + r.errors), '', '', '0'],
  ]));
}
if (results.modules) {
  const mb = (kb) => fmt(kb / 1024, 1);
  const rows = Object.entries(results.modules.alone).map(([dep, kb]) => [dep, mb(kb.rss), mb(kb.anon), mb(kb.file)]);
  out.push('', `What each production dependency costs alone (RSS after a full GC, on top of bare Node ${NODE_FLAGS.join(' ')}; MB)`, table(['module', 'RSS', 'anon', 'file (Node binary pages)'], rows));
  const so = results.modules.serveOrder;
  out.push('', `serve's modules in load order, each on top of the previous (fastify and jose last: loaded only on first use / with podIdentity); base ${mb(so.base.rss)} MB`,
    table(['module', 'RSS', 'anon', 'file'], so.steps.map((x) => [x.spec, mb(x.kb.rss), mb(x.kb.anon), mb(x.kb.file)])));
}
if (results.signing) {
  const rows = Object.entries(results.signing).map(([k, s]) => [k, fmt(s.nodeSignX509RequestUs), fmt(s.nodeCryptoSignUs), fmt(s.opensslSpeedPerOpUs), fmt(s.opensslDgstPerProcessUs, 0), fmt(s.ratioVsOpensslPerOp, 2), fmt(s.ratioVsOpensslProcess, 4), s.sameSignatureAsOpenssl === 'verified' ? 'openssl verifies ours' : String(s.sameSignatureAsOpenssl)]);
  out.push('', 'Signing one CreateSession (µs per signature)', table(['key', 'signX509Request', 'crypto.sign only', 'openssl speed/op', 'openssl dgst process', 'ratio vs openssl op', 'ratio vs process', 'vs openssl'], rows));
}
if (results.scaling) {
  const rows = Object.values(results.scaling.sizes).map((e) => [
    String(e.profiles),
    limiterText(e.limits),
    fmt(e.readyMs, 0),
    `${fmt(e.rssKb / 1024)} / ${fmt(e.rssAfterKb / 1024)}`,
    e.startup ? `${e.startup.maxPerSecond} / ${fmt(e.startup.meanPerSecond)} (${e.startup.calls} calls)` : 'n/a',
    e.outage ? `${e.outage.calls} (${fmt(e.outage.meanPerSecond)}/s)` : "n/a",
    e.recovery ? `${e.recovery.maxPerSecond} / ${fmt(e.recovery.meanPerSecond)} (${e.recovery.calls} calls)` : 'n/a',
    e.recovery?.readyAgainMs === undefined ? 'not within window' : fmt(e.recovery.readyAgainMs, 0),
    e.error ?? '',
  ]);
  out.push('', `Scaling (lifetime ${P.lifetime} s, start-up window ${P.startupObserve} s, outage ${P.outage} s of 503s, recovery window ${P.recoveryObserve} s; CreateSession calls max-in-1s / mean-per-s)`,
    table(['profiles', 'limiter (calls)', 'ready ms', 'RSS MB ready+1s / end', 'start-up max/mean', 'calls in outage', 'recovery max/mean', 'ready again ms', 'note'], rows));
  const big = results.scaling.sizes[1000];
  if (big?.rssKb !== undefined) {
    const worst = Math.max(big.rssKb, big.rssAfterKb ?? 0) / 1024;
    out.push(`1000 profiles: RSS ${fmt(big.rssKb / 1024)} MB at ready, ${fmt((big.rssAfterKb ?? NaN) / 1024)} MB at the end (target ≤ ${TARGETS.rss1000Mb} MB: ${target(worst <= TARGETS.rss1000Mb)})`);
  }
}
out.push('', `total ${fmt(results.totalSeconds, 0)} s (${Object.entries(results.partSeconds).map(([k, v]) => `${k} ${fmt(v, 0)} s`).join(', ')}); JSON written to ${args.out}`);
await writeFile(args.out, JSON.stringify(results, null, 2) + '\n');
process.stdout.write(out.join('\n') + '\n');
process.exit(0);
