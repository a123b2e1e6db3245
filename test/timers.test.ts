// Timer delays beyond 2^31-1 ms fire after 1 ms in Node. Every computed delay in
// src/ goes through clampDelay, and a session whose credentials are valid for
// 60 days makes one CreateSession call, not a storm.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { setImmediate as tick } from 'node:timers/promises';
import t from 'tap';
import { CredentialSession, type FetchCredentials } from '../src/credentials/session.js';
import { loadIdentity } from '../src/identity/load.js';
import { clampDelay, MAX_TIMER_DELAY_MS } from '../src/timers.js';
import { REPO } from './helpers/cli.js';
import { makeCA, makeLeaf, tempDir } from './helpers/pki.js';

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? sources(p) : p.endsWith('.ts') ? [p] : [];
  });
}

/** The top-level arguments of the call whose '(' is at `open`. */
function callArgs(text: string, open: number): string[] {
  const args: string[] = [];
  let depth = 0;
  let start = open + 1;
  for (let i = open; i < text.length; i++) {
    const c = text[i]!;
    if (c === '(' || c === '[' || c === '{') depth++;
    else if (c === ')' || c === ']' || c === '}') {
      depth--;
      if (depth === 0) {
        args.push(text.slice(start, i).trim());
        return args;
      }
    } else if (c === ',' && depth === 1) {
      args.push(text.slice(start, i).trim());
      start = i + 1;
    }
  }
  return args;
}

t.test('clampDelay', async (t) => {
  t.equal(clampDelay(5), 5);
  t.equal(clampDelay(30 * 86_400_000), MAX_TIMER_DELAY_MS);
  t.equal(clampDelay(-3), 0);
  t.equal(clampDelay(NaN), 0);
});

t.test('every timer delay in src/ is a constant or clamped', async (t) => {
  let calls = 0;
  for (const file of sources(join(REPO, 'src'))) {
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(/\b(setTimeout|setInterval|sleep)\(/g)) {
      const before = text.slice(Math.max(0, m.index - 12), m.index);
      if (/(function |\.|const )$/.test(before) || /server\.$/.test(before)) continue; // a definition or a method (server.setTimeout)
      const args = callArgs(text, m.index + m[0].length - 1);
      const delay = m[1] === 'sleep' ? args[0] : args[1];
      if (delay === undefined) continue;
      calls++;
      const where = `${relative(REPO, file)}: ${m[1]}(…, ${delay.slice(0, 60)})`;
      if (/^[\d_ <>*+()]+$/.test(delay)) {
        // A constant expression: it must itself be within the limit (1 << 31 is negative).
        const value = Number(new Function(`return (${delay.replace(/_/g, '')});`)());
        t.ok(value >= 0 && value <= MAX_TIMER_DELAY_MS, `${where} = ${value}`);
      } else t.match(delay, /^([A-Z][A-Z0-9_]*|clampDelay\([\s\S]*\))$/, where);
    }
  }
  t.ok(calls > 10, `${calls} timer calls checked`);
});

t.test('credentials valid for 60 days: one CreateSession call, the next one scheduled within the timer limit', async (t) => {
  const dir = await tempDir();
  const ca = await makeCA(dir);
  const leaf = await makeLeaf(dir, ca, 'long');
  const identity = await loadIdentity({ certificate: leaf.certPath, privateKey: leaf.keyPath });
  let calls = 0;
  const fetch: FetchCredentials = async () => {
    calls++;
    return {
      accessKeyId: `ASIALONG${calls}`,
      secretAccessKey: 's',
      sessionToken: 't',
      expiration: new Date(Date.now() + 60 * 86_400_000),
      roleArn: 'arn:aws:iam::123456789012:role/r',
    };
  };
  const s = new CredentialSession({ profile: 'long', identity, fetchCredentials: fetch });
  t.teardown(() => s.stop());
  s.start();
  await s.waitFor((x) => x.status().ready, 5000);
  // An overflowing timer would fire after 1 ms, again and again: give it many turns of the event loop.
  for (let i = 0; i < 200; i++) await tick();
  await new Promise((r) => setTimeout(r, 50));
  t.equal(calls, 1, 'no refresh storm');
  const next = s.status().nextRefreshAt!.getTime() - Date.now();
  t.ok(next > 20 * 86_400_000, 'the next refresh is still about half the lifetime away');
});

t.test('backoffDelay: one formula for the client and the session', async (t) => {
  const { backoffDelay } = await import('../src/timers.js');
  const full = { initialMs: 250, maxMs: 5000, jitter: [0, 1] as const };
  t.equal(backoffDelay(0, full, () => 0), 0, 'full jitter can retry at once');
  t.equal(backoffDelay(0, full, () => 0.999999), 249, 'below the first step');
  t.equal(backoffDelay(3, full, () => 0.5), 1000, 'doubles per step');
  t.equal(backoffDelay(50, full, () => 0.999999), 4999, 'capped at maxMs, even for huge steps');
  t.equal(backoffDelay(0, { ...full, minMs: 700 }, () => 0), 700, 'minMs (a Retry-After) wins');
  const session = { initialMs: 1000, maxMs: 30_000, jitter: [0.75, 1.25] as const, minMs: 1 };
  t.equal(backoffDelay(0, session, () => 0), 750);
  t.equal(backoffDelay(0, session, () => 0.5), 1000);
  t.equal(backoffDelay(5, session, () => 0.999999), 30_000, '±25 % never exceeds the cap');
});

t.test('isoSeconds: whole seconds, rounded down', async (t) => {
  const { isoSeconds } = await import('../src/timers.js');
  t.equal(isoSeconds(new Date('2026-01-02T03:04:05.999Z')), '2026-01-02T03:04:05Z');
  t.equal(isoSeconds('Jan  2 03:04:05 2026 GMT'), '2026-01-02T03:04:05Z', 'an X509Certificate validTo string');
  t.equal(isoSeconds(0), '1970-01-01T00:00:00Z');
});
