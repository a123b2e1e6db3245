// `npm run test:soak [-- --minutes N]` (default 3; bounded, stops by itself)
//
// Soak + chaos: the built daemon (a real `serve` process) under sustained load
// on both protocols while the emulator (a real `emulator` process) injects
// 5xx, 429, delays, dropped connections and malformed bodies at random, plus
// short full outages; the credential lifetime is short so refreshes are
// frequent, and the certificate is rotated (new leaf, same CA, atomic rename)
// every ~30 s. Periodically a real @aws-sdk/client-sts GetCallerIdentity uses
// the served credentials against the emulator's STS (which refuses expired
// ones). Then these checks, each printed PASS/FAIL, exit 1 if any fails:
//   1. no unexpected answers: every answer is 200, except a 503 at a moment when
//      the last credentials served had lapsed (outages are kept shorter than
//      the lifetime's slack, so there should be none); no transport errors
//   2. never an expired credential: every served Expiration > send time + expiry margin
//   3. STS accepted every served credential it was given
//   4. no CreateSession storm: the emulator's count ≤ the most the refresh +
//      backoff schedule allows (computed below), and no early refresh after a success
//   5. every rotated certificate's serial appears in a successful CreateSession
//   6. full recovery after the faults clear: /readyz 200 and a fetch succeeds
//   7. memory flat: RSS slope over the second half below a threshold (see RSS_SLOPE_LIMIT)
import { copyFile, readFile, rename } from 'node:fs/promises';
import { Agent } from 'node:http';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import {
  ROLE_NAME, fmt, freePort, httpRequest, installCleanup, makeCA, makeLeaf, readyz, rssSlopeLastHalf, sampleRss, sleep,
  spawnDaemon, spawnEmulator, stop, tempDir, waitUntil, writeDaemonConfig,
} from '../bench/lib.js';

const { values: args } = parseArgs({ options: { minutes: { type: 'string', default: '3' }, help: { type: 'boolean', short: 'h' } } });
if (args.help) {
  process.stdout.write('Usage: npm run test:soak [-- --minutes N]   (N from 1 to 60, default 3)\n');
  process.exit(0);
}
const MINUTES = Number(args.minutes);
if (!Number.isFinite(MINUTES) || MINUTES < 1 || MINUTES > 60) {
  process.stderr.write(`--minutes must be a number from 1 to 60, got "${args.minutes}"\n`);
  process.exit(2);
}
installCleanup();
const log = (s) => process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${s}\n`);

// ---- parameters --------------------------------------------------------------------------------

const LIFETIME_S = 40; // emulator cap on issued credentials
/** The daemon's expiry margin for these credentials: min(60 s, 10% of the lifetime); lifetime may read 1 s short (whole-second expirations). */
const MARGIN_MS = Math.min(60_000, Math.floor(((LIFETIME_S - 1) * 1000) / 10));
const BACKOFF = { backoffInitialMs: 250, backoffMaxMs: 2000 };
const CLIENT_MAX_ATTEMPTS = 2; // HTTP calls per CreateSession attempt (src/cli/serve.ts)
const ROTATE_EVERY_S = 30;
const OUTAGE_EVERY_S = 40;
const OUTAGE_S = 6; // refresh due ≤ 0.6·L = 24 s, served until L − margin ≈ 36 s: 6 s + backoff (≤ 2.5 s) + a few chaos failures fit
const CONTAINER_CLIENTS = 4;
const IMDS_CLIENTS = 4;
const STS_EVERY_MS = 3000;
/**
 * Memory: this load makes ~1,300 requests/s, so a leak of 100 bytes per request
 * grows RSS by ~8 MB/min. GC moves the least-squares slope of a 90 s half by
 * up to ~±5 MB/min (measured: −5.4 MB/min on a healthy run), so the limit is
 * 8 MB/min: it catches leaks of ≥ 100 B/request (or any per-refresh leak big
 * enough to matter) without failing on GC noise.
 */
const RSS_SLOPE_LIMIT_KB_PER_MIN = 8 * 1024;
const CHAOS = [
  { kind: 'delay', ms: 700, probability: 0.3 },
  { kind: 'status', status: 500, probability: 0.15 },
  { kind: 'status', status: 503, probability: 0.1 },
  { kind: 'status', status: 429, probability: 0.1 },
  { kind: 'drop', probability: 0.1 },
  { kind: 'malformed', probability: 0.1 },
];

// ---- setup -------------------------------------------------------------------------------------

const dir = tempDir('ra-soak-');
const ca = await makeCA(dir, 'Soak Root CA');
const first = await makeLeaf(dir, ca, 'soak-0', 'p256');
const live = { certPath: join(dir, 'live.pem'), keyPath: join(dir, 'live.key') };
await copyFile(first.certPath, live.certPath);
await copyFile(first.keyPath, live.keyPath);
const emu = await spawnEmulator({ caPath: ca.certPath, lifetime: LIFETIME_S });
const port = await freePort();
const config = await writeDaemonConfig(dir, {
  port,
  profiles: [{ name: 'main', ...live }],
  endpoint: emu.url,
  logLevel: 'info',
  refresh: BACKOFF,
  watch: { debounceMs: 100, recheckIntervalMs: 2000 },
});
const daemonStart = Date.now();
const daemon = spawnDaemon(config);
await waitUntil('daemon ready', async () => (await readyz(port)) === 200, 30_000);
const token = await readFile(join(dir, 'token'), 'utf8');
log(`soak: ${MINUTES} min, daemon pid ${daemon.child.pid} on 127.0.0.1:${port}, emulator ${emu.url}, lifetime ${LIFETIME_S} s, margin ${MARGIN_MS} ms`);
const active = await emu.setFaults(CHAOS);
if (active.length !== CHAOS.length) throw new Error('the emulator did not take the fault rules');

// ---- observations ------------------------------------------------------------------------------

const obs = {
  requests: 0,
  ok: { container: 0, imds: 0 },
  unexpected: [], // {t, what}
  transportErrors: [],
  acceptable503: 0,
  expired: 0,
  marginViolations: 0,
  minRemainingMs: Infinity,
  lastServedExpiration: 0, // ms
  latest: undefined, // most recent served credentials (never printed)
  sts: { ok: 0, failed: [] },
  rotations: [], // {t, serial}
  outages: [], // {from, to}
};
const endAt = daemonStart + MINUTES * 60_000;
let running = true;

function record(kind, t0, res) {
  obs.requests++;
  if (res.status === 200) {
    let body;
    try {
      body = JSON.parse(res.body);
    } catch {
      obs.unexpected.push({ t: t0, what: `${kind}: 200 with a non-JSON body` });
      return;
    }
    const exp = Date.parse(body.Expiration);
    if (!/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/.test(body.Expiration ?? '') || !body.AccessKeyId || !body.SecretAccessKey || !body.Token) {
      obs.unexpected.push({ t: t0, what: `${kind}: 200 without the credential fields or with a bad Expiration format` });
      return;
    }
    if (kind === 'imds' && body.Code !== 'Success') obs.unexpected.push({ t: t0, what: 'imds: Code is not Success' });
    const now = Date.now();
    if (exp <= now) obs.expired++;
    // Expiration is whole seconds (rounded down): the real expiry is < 1 s later.
    const remaining = exp + 1000 - t0;
    obs.minRemainingMs = Math.min(obs.minRemainingMs, remaining);
    if (remaining <= MARGIN_MS) obs.marginViolations++;
    if (exp >= obs.lastServedExpiration) {
      obs.lastServedExpiration = exp;
      obs.latest = { accessKeyId: body.AccessKeyId, secretAccessKey: body.SecretAccessKey, sessionToken: body.Token };
    }
    obs.ok[kind]++;
    return;
  }
  if (res.status === 503) {
    // Acceptable only when the last credentials served had entered the margin (the daemon may not serve them).
    const lapsed = obs.lastServedExpiration + 1000 - MARGIN_MS <= Date.now();
    if (lapsed) obs.acceptable503++;
    else obs.unexpected.push({ t: t0, what: `${kind}: 503 while served credentials were still valid until ${new Date(obs.lastServedExpiration).toISOString()}` });
    return;
  }
  obs.unexpected.push({ t: t0, what: `${kind}: HTTP ${res.status} ${res.body.slice(0, 160)}` });
}

async function containerClient() {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  while (running && Date.now() < endAt) {
    const t0 = Date.now();
    try {
      record('container', t0, await httpRequest(port, 'GET', '/v1/credentials', { authorization: token }, undefined, { agent, timeoutMs: 5000 }));
    } catch (err) {
      obs.transportErrors.push({ t: t0, what: `container: ${err.code ?? err.message}` });
    }
    await sleep(5);
  }
  agent.destroy();
}

async function imdsClient() {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  let imdsToken;
  let tokenAt = 0;
  while (running && Date.now() < endAt) {
    const t0 = Date.now();
    try {
      if (!imdsToken || t0 - tokenAt > 20_000) {
        const r = await httpRequest(port, 'PUT', '/latest/api/token', { 'x-aws-ec2-metadata-token-ttl-seconds': '30' }, undefined, { agent, timeoutMs: 5000 });
        if (r.status !== 200) {
          obs.unexpected.push({ t: t0, what: `imds token: HTTP ${r.status}` });
          await sleep(100);
          continue;
        }
        imdsToken = r.body;
        tokenAt = t0;
      }
      const res = await httpRequest(port, 'GET', `/latest/meta-data/iam/security-credentials/${ROLE_NAME}`, { 'x-aws-ec2-metadata-token': imdsToken }, undefined, { agent, timeoutMs: 5000 });
      record('imds', t0, res);
    } catch (err) {
      obs.transportErrors.push({ t: t0, what: `imds: ${err.code ?? err.message}` });
    }
    await sleep(5);
  }
  agent.destroy();
}

async function stsLoop() {
  const { STSClient, GetCallerIdentityCommand } = await import('@aws-sdk/client-sts');
  const { fromContainerMetadata, fromInstanceMetadata } = await import('@aws-sdk/credential-providers');
  process.env.AWS_CONTAINER_CREDENTIALS_FULL_URI = `http://127.0.0.1:${port}/v1/credentials`;
  process.env.AWS_CONTAINER_AUTHORIZATION_TOKEN = token;
  process.env.AWS_EC2_METADATA_SERVICE_ENDPOINT = `http://127.0.0.1:${port}/`;
  let i = 0;
  while (running && Date.now() < endAt - 2000) {
    await sleep(STS_EVERY_MS);
    const which = ['served', 'container-provider', 'imds-provider'][i++ % 3];
    let credentials;
    if (which === 'served') {
      if (!obs.latest) continue;
      credentials = { ...obs.latest };
    } else credentials = which === 'container-provider' ? fromContainerMetadata({ timeout: 2000, maxRetries: 1 }) : fromInstanceMetadata({ timeout: 2000, maxRetries: 1 });
    const client = new STSClient({ region: 'us-east-1', endpoint: emu.url, credentials, maxAttempts: 1 });
    try {
      const out = await client.send(new GetCallerIdentityCommand({}));
      if (out.Account === '123456789012' && /assumed-role\/bench-role\//.test(out.Arn ?? '')) obs.sts.ok++;
      else obs.sts.failed.push(`${which}: unexpected identity ${out.Arn}`);
    } catch (err) {
      obs.sts.failed.push(`${which}: ${err.name}: ${String(err.message).slice(0, 160)}`);
    } finally {
      client.destroy();
    }
  }
}

async function rotator() {
  let n = 0;
  while (running && Date.now() + ROTATE_EVERY_S * 1000 < endAt - 15_000) {
    await sleep(ROTATE_EVERY_S * 1000);
    const l = await makeLeaf(dir, ca, `soak-${++n}`, 'p256');
    // Same directory, then rename over the live files: each replace is atomic.
    await copyFile(l.keyPath, `${live.keyPath}.tmp`);
    await copyFile(l.certPath, `${live.certPath}.tmp`);
    await rename(`${live.keyPath}.tmp`, live.keyPath);
    await rename(`${live.certPath}.tmp`, live.certPath);
    obs.rotations.push({ t: Date.now(), serial: l.serialDecimal });
    log(`rotated the certificate (serial ${l.serialDecimal})`);
  }
}

/**
 * Full outages timed to hit a refresh: after the latest issuance, wait until
 * 0.4 × lifetime (the earliest moment the daemon refreshes), then fail every
 * CreateSession for OUTAGE_S. At least OUTAGE_EVERY_S between outage starts.
 */
async function outages() {
  let lastStart = Date.now();
  while (running && Date.now() < endAt - 25_000) {
    await sleep(Math.max(0, lastStart + OUTAGE_EVERY_S * 1000 - Date.now()));
    const issued = await emu.issued();
    const last = issued.length ? Date.parse(issued[issued.length - 1].issuedAt) : Date.now();
    let at = last + 0.4 * LIFETIME_S * 1000;
    if (at < Date.now()) at = Date.now();
    if (at + OUTAGE_S * 1000 > endAt - 15_000) break;
    await sleep(at - Date.now());
    lastStart = Date.now();
    await emu.setFaults([{ kind: 'status', status: 503 }]);
    log(`outage: every CreateSession fails for ${OUTAGE_S} s (${Math.round((lastStart - last) / 1000)} s after the last issuance)`);
    await sleep(OUTAGE_S * 1000);
    await emu.setFaults(CHAOS);
    obs.outages.push({ from: lastStart, to: Date.now() });
    log('outage over; random faults continue');
  }
}

async function progress() {
  while (running && Date.now() < endAt) {
    await sleep(15_000);
    log(`${obs.requests} requests, ${obs.ok.container + obs.ok.imds} ok, ${obs.unexpected.length + obs.transportErrors.length} bad, STS ${obs.sts.ok} ok / ${obs.sts.failed.length} failed`);
  }
}

const sampler = sampleRss(daemon.child.pid, 1000);
await Promise.all([
  ...Array.from({ length: CONTAINER_CLIENTS }, containerClient),
  ...Array.from({ length: IMDS_CLIENTS }, imdsClient),
  stsLoop(),
  rotator(),
  outages(),
  progress(),
]);
running = false;
const rss = sampler.stop();
const runSeconds = (Date.now() - daemonStart) / 1000;

// ---- recovery ------------------------------------------------------------------------------------

await emu.clearFaults();
let recovered = false;
let recoveryDetail = '';
try {
  await waitUntil('readyz 200 after the faults clear', async () => (await readyz(port)) === 200, 30_000, 100);
  const r = await httpRequest(port, 'GET', '/v1/credentials', { authorization: token });
  recovered = r.status === 200 && Date.parse(JSON.parse(r.body).Expiration) > Date.now();
  recoveryDetail = `readyz 200, fetch ${r.status}`;
} catch (err) {
  recoveryDetail = err.message;
}
const stats = await emu.stats();
const daemonAlive = daemon.child.exitCode === null && daemon.child.signalCode === null;
await stop(daemon);
await stop(emu.proc);

// ---- the CreateSession bound ---------------------------------------------------------------------

/**
 * The most session attempts the schedule allows in `seconds`: an adversary
 * that fails every attempt (failures wait least: 0.75 × min(initial·2^k, max),
 * the jitter's lower end), restarted from the smallest step by every rotation
 * (a new identity resets the backoff and refreshes at once; count 2 per
 * rotation in case the watcher applies the pair in two steps). Successes only
 * make it sparser (the next refresh waits ~0.4–0.6 × the lifetime).
 */
function maxAttempts(seconds, rotationTimes) {
  const resets = rotationTimes.flatMap((t) => [t, t]).sort((a, b) => a - b);
  let t = 0;
  let k = 0;
  let count = 1;
  let r = 0;
  for (;;) {
    const step = (0.75 * Math.min(BACKOFF.backoffInitialMs * 2 ** k, BACKOFF.backoffMaxMs)) / 1000;
    const next = t + step;
    if (r < resets.length && resets[r] <= next) {
      t = resets[r++];
      k = 0;
      count++;
      continue;
    }
    if (next > seconds) break;
    t = next;
    k++;
    count++;
  }
  return count;
}

const createCalls = stats.calls.filter((c) => c.operation === 'CreateSession');
const csTotal = stats.createSession.total;
const rotationOffsets = obs.rotations.map((r) => (r.t - daemonStart) / 1000);
const attemptBound = maxAttempts(runSeconds + 30, rotationOffsets);
const callBound = attemptBound * CLIENT_MAX_ATTEMPTS;
// Early refresh: after a successful call, the next call comes ≥ 0.4·lifetime later unless a rotation intervened.
const earliest = 0.4 * (LIFETIME_S - 1) * 1000 - 1500;
const early = [];
for (let i = 0; i + 1 < createCalls.length; i++) {
  const a = createCalls[i];
  const b = createCalls[i + 1];
  if (a.outcome !== 'ok') continue;
  const ta = Date.parse(a.time);
  const tb = Date.parse(b.time);
  const rotated = obs.rotations.some((r) => r.t >= ta - 2000 && r.t <= tb + 500);
  if (tb - ta < earliest && !rotated) early.push(`${a.time} → ${b.time} (${tb - ta} ms)`);
}
const okSerials = new Set(createCalls.filter((c) => c.outcome === 'ok').map((c) => c.serial));
const missingSerials = obs.rotations.filter((r) => !okSerials.has(r.serial));
const rssSlope = rssSlopeLastHalf(rss);

// ---- report --------------------------------------------------------------------------------------

const checks = [];
const check = (name, pass, detail) => checks.push({ name, pass, detail });
check('daemon process stayed up', daemonAlive, daemonAlive ? 'running until stopped' : `exited: ${daemon.output().slice(-500)}`);
check(
  'no unexpected answers (non-2xx only when the last served credentials had lapsed)',
  obs.unexpected.length === 0 && obs.transportErrors.length === 0,
  `${obs.requests} requests: ${obs.ok.container} container + ${obs.ok.imds} IMDS 200s, ${obs.acceptable503} acceptable 503s, ${obs.unexpected.length} unexpected, ${obs.transportErrors.length} transport errors` +
    [...obs.unexpected, ...obs.transportErrors].slice(0, 5).map((u) => `\n      ${new Date(u.t).toISOString()} ${u.what}`).join(''),
);
check(
  'never an expired credential (Expiration > send time + margin)',
  obs.expired === 0 && obs.marginViolations === 0 && obs.ok.container + obs.ok.imds > 0,
  `${obs.expired} expired, ${obs.marginViolations} inside the ${MARGIN_MS} ms margin; least remaining ${fmt(obs.minRemainingMs / 1000)} s`,
);
check('STS accepted the served credentials', obs.sts.failed.length === 0 && obs.sts.ok > 0, `${obs.sts.ok} GetCallerIdentity ok, ${obs.sts.failed.length} failed${obs.sts.failed.slice(0, 3).map((f) => `\n      ${f}`).join('')}`);
check(
  'no CreateSession storm',
  csTotal <= callBound && early.length === 0,
  `${csTotal} calls (${stats.createSession.ok} ok) for ${obs.requests} client requests; schedule bound ${callBound} (= ${attemptBound} attempts × ${CLIENT_MAX_ATTEMPTS} HTTP calls); ` +
    `${early.length} refreshes earlier than ${fmt(earliest / 1000)} s after a success${early.slice(0, 3).map((e) => `\n      ${e}`).join('')}`,
);
check(
  'rotated certificates picked up (new serials in successful CreateSession calls)',
  obs.rotations.length > 0 && missingSerials.length === 0,
  `${obs.rotations.length} rotations, ${obs.rotations.length - missingSerials.length} serials seen${missingSerials.length ? `; missing ${missingSerials.map((m) => m.serial).join(', ')}` : ''}`,
);
check('full recovery after the faults clear', recovered, recoveryDetail);
check(
  'memory flat',
  Number.isFinite(rssSlope) && rssSlope < RSS_SLOPE_LIMIT_KB_PER_MIN,
  `RSS ${fmt(rss[0][1] / 1024)} → ${fmt(rss[rss.length - 1][1] / 1024)} MB, peak ${fmt(Math.max(...rss.map((s) => s[1])) / 1024)} MB; slope over the second half ${fmt(rssSlope / 1024, 2)} MB/min (limit ${RSS_SLOPE_LIMIT_KB_PER_MIN / 1024} MB/min)`,
);

const faultCounts = Object.entries(stats.faultsInjected).map(([k, v]) => `${k}=${v}`).join(' ');
const out = [
  '',
  `soak: ${fmt(runSeconds, 0)} s, lifetime ${LIFETIME_S} s, ${obs.outages.length} outages of ${OUTAGE_S} s, ${csTotal} CreateSession calls (${Object.entries(stats.createSession.errors).map(([k, v]) => `${k}=${v}`).join(' ') || 'no errors'}), faults injected: ${faultCounts || 'none'}`,
  ...checks.map((c) => `${c.pass ? 'PASS' : 'FAIL'}  ${c.name}\n      ${c.detail}`),
];
const failed = checks.filter((c) => !c.pass).length;
out.push('', `${checks.length - failed} passed, ${failed} failed`);
process.stdout.write(out.join('\n') + '\n');
process.exit(failed === 0 ? 0 : 1);
