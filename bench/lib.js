// Shared harness for `npm run bench` and `npm run test:soak`: test PKI via the
// openssl CLI, the emulator and the daemon as real child processes (loopback
// only), small HTTP helpers, /proc RSS sampling and statistics. Every child
// and temp dir is tracked and removed on exit, failure or Ctrl-C.
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { request, Agent } from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

export const ROOT = fileURLToPath(new URL('..', import.meta.url));
/** The CLI under test, as every home runs it (the bundle); BENCH_CLI=/path/to/cli.js compares another build with the same harness. */
export const CLI = process.env.BENCH_CLI || join(ROOT, 'dist', 'bundle', 'cli.js');
/**
 * The V8 settings every home starts the daemon with (package.json "nodeFlags"); the bench
 * does too. BENCH_NODE_FLAGS='--max-semi-space-size=8 …' measures other settings instead.
 */
export const NODE_FLAGS = process.env.BENCH_NODE_FLAGS !== undefined
  ? process.env.BENCH_NODE_FLAGS.split(/\s+/).filter(Boolean)
  : JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).nodeFlags ?? [];

export const ARNS = {
  trustAnchorArn: 'arn:aws:rolesanywhere:us-east-1:123456789012:trust-anchor/0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d',
  profileArn: 'arn:aws:rolesanywhere:us-east-1:123456789012:profile/5e6f7a8b-9c0d-4e1f-a2b3-c4d5e6f7a8b9',
  roleArn: 'arn:aws:iam::123456789012:role/bench-role',
};
export const ROLE_NAME = 'bench-role';

// ---- cleanup ----------------------------------------------------------------------------------

/** @type {Set<import('node:child_process').ChildProcess>} */
const children = new Set();
/** @type {Set<string>} */
const dirs = new Set();

function cleanupSync() {
  for (const c of children) {
    if (c.exitCode === null && c.signalCode === null) {
      try {
        c.kill('SIGKILL');
      } catch {
        // already gone
      }
    }
  }
  children.clear();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  dirs.clear();
}

let installed = false;
/** Kills every child we started and removes temp dirs on exit, on SIGINT/SIGTERM and on a crash. */
export function installCleanup() {
  if (installed) return;
  installed = true;
  process.on('exit', cleanupSync);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.on(sig, () => {
      process.stderr.write(`\n${sig}: stopping children and exiting\n`);
      cleanupSync();
      process.exit(130);
    });
  }
  process.on('uncaughtException', (err) => {
    process.stderr.write(`fatal: ${err && err.stack ? err.stack : String(err)}\n`);
    cleanupSync();
    process.exit(1);
  });
  process.on('unhandledRejection', (err) => {
    process.stderr.write(`fatal (unhandled rejection): ${err && /** @type {any} */ (err).stack ? /** @type {any} */ (err).stack : String(err)}\n`);
    cleanupSync();
    process.exit(1);
  });
}

/** A temp dir removed at exit. */
export function tempDir(prefix = 'ra-bench-') {
  const d = mkdtempSync(join(tmpdir(), prefix));
  dirs.add(d);
  return d;
}

/**
 * The command line that runs `cmd` pinned to CPUs `cpu` (e.g. "0", with taskset) and at
 * niceness `nice` (with nice). Both exec the command, so the pid is the command's.
 */
export function scheduled({ cpu, nice } = {}, cmd, args) {
  if (cpu !== undefined) [cmd, args] = ['taskset', ['-c', cpu, cmd, ...args]];
  if (nice !== undefined) [cmd, args] = ['nice', ['-n', String(nice), cmd, ...args]];
  return [cmd, args];
}

/** Spawns a tracked child (killed at exit). Keeps the last 64 KB of its output. `opts.cpu`/`opts.nice`: see scheduled(). */
export function spawnTracked(cmd, args, opts = {}) {
  const { cpu, nice, ...spawnOpts } = opts;
  [cmd, args] = scheduled({ cpu, nice }, cmd, args);
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...spawnOpts });
  children.add(child);
  let out = '';
  const keep = (d) => {
    out += d;
    if (out.length > 65536) out = out.slice(-65536);
  };
  child.stdout?.setEncoding('utf8').on('data', keep);
  child.stderr?.setEncoding('utf8').on('data', keep);
  const exited = new Promise((resolve) =>
    child.on('exit', (code, signal) => {
      children.delete(child);
      resolve({ code, signal });
    }),
  );
  return { child, exited, output: () => out };
}

/** SIGTERM, then SIGKILL after `graceMs`. */
export async function stop(proc, graceMs = 3000) {
  const { child, exited } = proc;
  if (child.exitCode !== null || child.signalCode !== null) return exited;
  child.kill('SIGTERM');
  const t = setTimeout(() => child.kill('SIGKILL'), graceMs);
  const r = await exited;
  clearTimeout(t);
  return r;
}

// ---- PKI (openssl CLI) ------------------------------------------------------------------------

const run = promisify(execFile);
export async function openssl(args) {
  const { stdout } = await run('openssl', args, { maxBuffer: 16 * 1024 * 1024 });
  return stdout;
}

const KEYSPEC = {
  rsa2048: ['-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048'],
  rsa4096: ['-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:4096'],
  p256: ['-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256'],
  p384: ['-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-384'],
};

let serialCounter = 0;
function randomSerial() {
  let hex = '';
  for (let i = 0; i < 15; i++) hex += Math.floor(Math.random() * 256).toString(16).padStart(2, '0');
  return '0x1' + hex + (++serialCounter).toString(16).padStart(2, '0');
}

/** A root CA (RSA 2048). → { certPath, keyPath } */
export async function makeCA(dir, name = 'Bench Root CA') {
  const keyPath = join(dir, 'ca.key');
  const certPath = join(dir, 'ca.pem');
  const cnf = join(dir, 'ca.cnf');
  await writeFile(cnf, '[req]\ndistinguished_name=dn\n[dn]\n[v3]\nbasicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\n');
  await openssl(['genpkey', ...KEYSPEC.rsa2048, '-out', keyPath]);
  await openssl(['req', '-x509', '-new', '-key', keyPath, '-subj', `/CN=${name}`, '-days', '400', '-sha256', '-extensions', 'v3', '-config', cnf, '-out', certPath]);
  return { certPath, keyPath };
}

/**
 * A client certificate issued by `ca`, written as `<base>.pem` / `<base>.key`.
 * → { certPath, keyPath, serialDecimal }
 */
export async function makeLeaf(dir, ca, base, keyType = 'p256') {
  const keyPath = join(dir, `${base}.key`);
  const certPath = join(dir, `${base}.pem`);
  const csr = join(dir, `${base}.csr`);
  const ext = join(dir, `${base}.ext`);
  await openssl(['genpkey', ...KEYSPEC[keyType], '-out', keyPath]);
  await openssl(['req', '-new', '-key', keyPath, '-subj', `/CN=${base}`, '-out', csr]);
  await writeFile(ext, 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n');
  const serial = randomSerial();
  await openssl(['x509', '-req', '-in', csr, '-CA', ca.certPath, '-CAkey', ca.keyPath, '-set_serial', serial, '-days', '90', '-sha256', '-extfile', ext, '-out', certPath]);
  return { certPath, keyPath, serialDecimal: BigInt(serial).toString(10) };
}

// ---- processes --------------------------------------------------------------------------------

/** A free loopback port (bind 0, close). */
export async function freePort() {
  const s = createServer();
  await new Promise((r) => s.listen(0, '127.0.0.1', r));
  const port = s.address().port;
  await new Promise((r) => s.close(r));
  return port;
}

/** Resolves with the first match of `re` in a tracked process's output. */
export async function waitForOutput(proc, re, timeoutMs = 20000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const m = proc.output().match(re);
    if (m) return m;
    if (proc.child.exitCode !== null || proc.child.signalCode !== null) throw new Error(`process exited before printing ${re}:\n${proc.output().slice(-2000)}`);
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${re}:\n${proc.output().slice(-2000)}`);
    await sleep(10);
  }
}

/**
 * The emulator CLI as a child process. → { proc, url, port, stats(), setFaults(rules), clearFaults(), resetStats(), setLifetime(s) }
 */
export async function spawnEmulator({ caPath, lifetime = 3600 }) {
  const proc = spawnTracked(process.execPath, [CLI, 'emulator', '--trust-anchor-ca', caPath, '--credential-lifetime', String(lifetime), '--quiet']);
  const m = await waitForOutput(proc, /emulator listening on (http:\/\/127\.0\.0\.1:(\d+))/);
  const url = m[1];
  const control = async (method, path, body) => {
    const r = await httpRequest(Number(m[2]), method, path, body === undefined ? {} : { 'content-type': 'application/json' }, body === undefined ? undefined : JSON.stringify(body));
    if (r.status !== 200) throw new Error(`emulator control ${method} ${path} → ${r.status}: ${r.body.slice(0, 300)}`);
    return JSON.parse(r.body);
  };
  return {
    proc,
    url,
    port: Number(m[2]),
    stats: () => control('GET', '/_emulator/stats'),
    resetStats: () => control('DELETE', '/_emulator/stats'),
    setFaults: (rules) => control('POST', '/_emulator/faults', rules),
    clearFaults: () => control('DELETE', '/_emulator/faults'),
    setLifetime: (seconds) => control('POST', '/_emulator/lifetime', { seconds }),
    issued: () => control('GET', '/_emulator/issued'),
  };
}

/**
 * Writes a daemon YAML config: `profiles` = [{ name, certPath, keyPath }].
 * The IMDS and default profile is the first one.
 */
export async function writeDaemonConfig(dir, { port, profiles, endpoint, tokenFile, logLevel = 'warn', refresh, watch, file = 'daemon.yaml' }) {
  const lines = [
    `listen: ["127.0.0.1:${port}"]`,
    `tokenFile: ${JSON.stringify(tokenFile ?? join(dir, 'token'))}`,
    `logLevel: ${logLevel}`,
    'imds:',
    '  enabled: true',
    `  profile: ${profiles[0].name}`,
    `region: us-east-1`,
    `endpoint: ${JSON.stringify(endpoint)}`,
    'withProxy: false',
  ];
  if (refresh) {
    lines.push('refresh:', `  backoffInitialMs: ${refresh.backoffInitialMs}`, `  backoffMaxMs: ${refresh.backoffMaxMs}`);
    if (refresh.maxConcurrent !== undefined) lines.push(`  maxConcurrent: ${refresh.maxConcurrent}`);
    if (refresh.maxCallsPerSecond !== undefined) lines.push(`  maxCallsPerSecond: ${refresh.maxCallsPerSecond}`);
  }
  if (watch) lines.push('watch:', `  debounceMs: ${watch.debounceMs}`, `  recheckIntervalMs: ${watch.recheckIntervalMs}`);
  lines.push('profiles:');
  for (const p of profiles) {
    lines.push(
      `  ${p.name}:`,
      `    certificate: ${JSON.stringify(p.certPath)}`,
      `    privateKey: ${JSON.stringify(p.keyPath)}`,
      `    trustAnchorArn: ${ARNS.trustAnchorArn}`,
      `    profileArn: ${ARNS.profileArn}`,
      `    roleArn: ${ARNS.roleArn}`,
    );
  }
  const path = join(dir, file);
  await writeFile(path, lines.join('\n') + '\n');
  return path;
}

/**
 * `serve --config FILE` as a child process. Does not wait for anything. `command`: the argv
 * prefix that runs the CLI (default: this Node with dist/cli.js; or a single-file executable);
 * `{ cpu, nice }`: see scheduled().
 */
export function spawnDaemon(configPath, extraArgs = [], [cmd, ...pre] = [process.execPath, ...NODE_FLAGS, CLI], { cpu, nice } = {}) {
  const proc = spawnTracked(cmd, [...pre, 'serve', '--config', configPath, ...extraArgs], {
    env: { PATH: process.env.PATH, HOME: process.env.HOME },
    cpu,
    nice,
  });
  return proc;
}

// ---- HTTP ------------------------------------------------------------------------------------

export const keepAliveAgent = new Agent({ keepAlive: true, maxSockets: 64 });

/**
 * One HTTP request to 127.0.0.1:port. → { status, headers, body }. Rejects on a
 * transport error or after `timeoutMs`.
 */
export function httpRequest(port, method, path, headers = {}, body, { agent = false, timeoutMs = 10000 } = {}) {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path, headers: { host: `127.0.0.1:${port}`, ...headers }, agent }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }));
      res.on('error', reject);
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end(body);
  });
}

/** Polls `cond` until true or throws after `timeoutMs`. */
export async function waitUntil(what, cond, timeoutMs = 30000, intervalMs = 50) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      if (await cond()) return;
    } catch {
      // not yet
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for: ${what}`);
    await sleep(intervalMs);
  }
}

export async function readyz(port) {
  try {
    return (await httpRequest(port, 'GET', '/readyz', {}, undefined, { timeoutMs: 2000 })).status;
  } catch {
    return 0;
  }
}

/** An IMDSv2 session token from a server. */
export async function imdsToken(port, ttl = 21600) {
  const r = await httpRequest(port, 'PUT', '/latest/api/token', { 'x-aws-ec2-metadata-token-ttl-seconds': String(ttl) });
  if (r.status !== 200) throw new Error(`PUT /latest/api/token → ${r.status}`);
  return r.body;
}

// ---- measurements -----------------------------------------------------------------------------

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * { rss, anon, file } of a process in KiB (VmRSS, RssAnon, RssFile), NaN where unreadable.
 * `file` is mostly the node binary's pages, shared with every other Node process and
 * subject to the page cache's state (fault-around maps neighbouring cached pages too),
 * so it moves between runs; `anon` is the process's own memory.
 */
export function memKb(pid) {
  let status = '';
  try {
    status = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    // gone
  }
  const kb = (field) => Number(new RegExp(`${field}:\\s+(\\d+)\\s+kB`).exec(status)?.[1] ?? NaN);
  return { rss: kb('VmRSS'), anon: kb('RssAnon'), file: kb('RssFile') };
}

/** Resident set size of a process in KiB (VmRSS from /proc/<pid>/status), or NaN. */
export const rssKb = (pid) => memKb(pid).rss;

/** CPU time (user + system) a process has used so far, in ms (from /proc/<pid>/stat; clock ticks of 10 ms), or NaN. */
export function cpuMs(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // fields[11] = utime, fields[12] = stime (fields 14 and 15 of proc(5), counted from `state`).
    return (Number(fields[11]) + Number(fields[12])) * 10;
  } catch {
    return NaN;
  }
}

export function median(xs) {
  const a = xs.filter((x) => Number.isFinite(x)).sort((p, q) => p - q);
  if (a.length === 0) return NaN;
  const m = Math.floor(a.length / 2);
  return a.length % 2 ? a[m] : (a[m - 1] + a[m]) / 2;
}

/** Least-squares slope of [x, y] points (y per unit of x). */
export function slope(points) {
  const n = points.length;
  if (n < 2) return NaN;
  let sx = 0, sy = 0, sxx = 0, sxy = 0;
  for (const [x, y] of points) {
    sx += x;
    sy += y;
    sxx += x * x;
    sxy += x * y;
  }
  const d = n * sxx - sx * sx;
  return d === 0 ? NaN : (n * sxy - sx * sy) / d;
}

/** Samples RSS of `pid` every `everyMs`. → { stop(): samples [[tMs, kB]] } */
export function sampleRss(pid, everyMs = 500) {
  const t0 = Date.now();
  const samples = [[0, rssKb(pid)]];
  const timer = setInterval(() => samples.push([Date.now() - t0, rssKb(pid)]), everyMs);
  return {
    samples,
    stop() {
      clearInterval(timer);
      samples.push([Date.now() - t0, rssKb(pid)]);
      return samples.filter(([, v]) => Number.isFinite(v));
    },
  };
}

/** Slope of the last half of RSS samples, in kB per minute. */
export function rssSlopeLastHalf(samples) {
  const half = samples.slice(Math.floor(samples.length / 2));
  return slope(half.map(([t, kb]) => [t / 60000, kb]));
}

/**
 * Spread of call times: max calls in any 1-second sliding window vs the mean
 * calls per second over [from, to] (ms since epoch).
 */
export function spread(timesMs, from, to) {
  const ts = timesMs.filter((t) => t >= from && t <= to).sort((a, b) => a - b);
  let max = 0;
  let j = 0;
  for (let i = 0; i < ts.length; i++) {
    while (ts[i] - ts[j] >= 1000) j++;
    max = Math.max(max, i - j + 1);
  }
  const seconds = Math.max(1, (to - from) / 1000);
  const mean = ts.length / seconds;
  return { calls: ts.length, seconds: Math.round(seconds), maxPerSecond: max, meanPerSecond: mean, peakToMean: mean > 0 ? max / mean : NaN };
}

/** Seeded PRNG (mulberry32) → () => [0,1). */
export function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export const fmt = (x, digits = 1) => (Number.isFinite(x) ? x.toFixed(digits) : 'n/a');

/** Prints rows (arrays of cells) as an aligned text table. */
export function table(header, rows) {
  const all = [header, ...rows].map((r) => r.map((c) => String(c)));
  const widths = header.map((_, i) => Math.max(...all.map((r) => (r[i] ?? '').length)));
  const line = (r) => r.map((c, i) => c.padEnd(widths[i])).join('  ');
  return [line(all[0]), widths.map((w) => '-'.repeat(w)).join('  '), ...all.slice(1).map(line)].join('\n');
}
