// The load generator of `npm run bench`: wrk (its own process, one thread) when it is
// installed or can be installed, else autocannon in the bench's own process — which
// shares the CPU with the servers under test and so understates the gap between them
// (it measures the client). The report names the generator that ran.
import { execFile, spawn } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ROOT, scheduled } from './lib.js';

const run = promisify(execFile);

async function has(cmd) {
  try {
    await run('sh', ['-c', `command -v ${cmd}`]);
    return true;
  } catch {
    return false;
  }
}

/** wrk, installing the Debian package when missing and allowed (root + apt-get). */
async function findWrk(log) {
  if (await has('wrk')) return true;
  if (process.getuid?.() !== 0 || !(await has('apt-get'))) return false;
  log('bench: wrk is not installed; installing the Debian package');
  try {
    await run('sh', ['-c', 'apt-get update -qq >/dev/null 2>&1; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk >/dev/null 2>&1']);
  } catch {
    // fall through to the check
  }
  return has('wrk');
}

/** Whether taskset is there for CPU pinning. */
export async function pinningAvailable() {
  return has('taskset');
}

function wrkRun({ url, headers = {}, seconds, connections = 32, cpu, nice }) {
  const args = ['-t1', `-c${connections}`, `-d${seconds}s`, '--timeout', '5s', '-s', join(ROOT, 'bench', 'wrk-report.lua')];
  for (const [k, v] of Object.entries(headers)) args.push('-H', `${k}: ${v}`);
  args.push(url);
  const [cmd, full] = scheduled({ cpu, nice }, 'wrk', args);
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, full, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d) => (out += d));
    child.on('error', reject);
    child.on('close', (code) => {
      const m = /WRK_JSON (\{.*\})/.exec(out);
      if (code !== 0 || !m) return reject(new Error(`wrk exited ${code}:\n${out.slice(-1000)}`));
      const r = JSON.parse(m[1]);
      resolve({ rps: r.requests / (r.durationUs / 1e6), total: r.requests, p50: r.p50Us / 1000, p90: r.p90Us / 1000, p99: r.p99Us / 1000, non2xx: r.non2xx, errors: r.errors });
    });
  });
}

async function autocannonRun({ url, headers = {}, seconds, connections = 32 }) {
  const { default: autocannon } = await import('autocannon');
  const res = await new Promise((resolve, reject) => {
    autocannon({ url, headers, duration: seconds, connections, pipelining: 1 }, (err, r) => (err ? reject(err) : resolve(r)));
  });
  return { rps: res.requests.total / (res.duration || seconds), total: res.requests.total, p50: res.latency.p50, p90: res.latency.p90, p99: res.latency.p99, non2xx: res.non2xx, errors: res.errors + res.timeouts };
}

/**
 * → { name, note, run({ url, headers, seconds, connections, cpu, nice }) → { rps, total, p50, p90, p99 (ms), non2xx, errors } }.
 * `prefer`: 'wrk' (default; falls back to autocannon) or 'autocannon'.
 */
export async function loadGenerator(prefer = 'wrk', log = () => {}) {
  if (prefer !== 'autocannon' && (await findWrk(log))) {
    const { stdout } = await run('wrk', ['-v']).catch((e) => ({ stdout: String(e.stdout ?? '') }));
    const version = /wrk\s+(\S+)/.exec(stdout)?.[1] ?? '';
    return { name: `wrk ${version}`.trim(), note: 'own process, 1 thread', run: wrkRun };
  }
  return {
    name: 'autocannon',
    note: prefer === 'autocannon' ? 'in the bench process (requested)' : 'in the bench process — FALLBACK, wrk not available: it competes with the servers for the CPU, so ratios are biased towards 1',
    run: autocannonRun,
  };
}
