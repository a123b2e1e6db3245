import t from 'tap';
import { CredentialSession, expiryMarginMs, type FetchCredentials } from '../../src/credentials/session.js';
import { loadIdentity } from '../../src/identity/load.js';
import type { Identity } from '../../src/identity/types.js';
import type { AwsCredentials } from '../../src/rolesanywhere/types.js';
import { makeCA, makeLeaf, tempDir } from '../helpers/pki.js';

let identityA: Identity;
let identityB: Identity;

t.before(async () => {
  const dir = await tempDir();
  const ca = await makeCA(dir);
  const a = await makeLeaf(dir, ca, 'a');
  const b = await makeLeaf(dir, ca, 'b');
  identityA = await loadIdentity({ certificate: a.certPath, privateKey: a.keyPath });
  identityB = await loadIdentity({ certificate: b.certPath, privateKey: b.keyPath });
});

let n = 0;
function creds(expiration: Date): AwsCredentials {
  n++;
  return {
    accessKeyId: `ASIAFAKE${n}`,
    secretAccessKey: `secret-${n}`,
    sessionToken: `token-${n}`,
    expiration,
    roleArn: 'arn:aws:iam::123456789012:role/test-role',
  };
}

function clock(start = Date.UTC(2030, 0, 1)) {
  let now = start;
  return { now: () => now, set: (v: number) => (now = v), advance: (ms: number) => (now += ms) };
}

t.test('expiry margin is min(60 s, 10% of the lifetime)', async (t) => {
  t.equal(expiryMarginMs(3600_000), 60_000);
  t.equal(expiryMarginMs(20_000), 2_000);
  t.equal(expiryMarginMs(600_000), 60_000);
});

t.test('fetches at start, serves, schedules refresh at about half the lifetime', async (t) => {
  const c = clock();
  let calls = 0;
  const fetch: FetchCredentials = async () => {
    calls++;
    return creds(new Date(c.now() + 3600_000));
  };
  const s = new CredentialSession({ profile: 'p', identity: identityA, fetchCredentials: fetch, now: c.now });
  t.teardown(() => s.stop());
  const before = s.lookup();
  t.equal(before.ok, false);
  t.match(!before.ok && before.message, /first CreateSession call is in progress/);
  s.start();
  await s.waitFor((x) => x.status().ready, 5000);
  t.equal(calls, 1);
  const got = s.lookup();
  t.ok(got.ok);
  if (got.ok) {
    t.equal(got.credentials.accountId, '123456789012', 'account derived from the role ARN');
  }
  const st = s.status();
  const delay = st.nextRefreshAt!.getTime() - c.now();
  t.ok(delay >= 0.39 * 3600_000 && delay <= 0.61 * 3600_000, 'refresh scheduled at half the lifetime ± 10%');
  t.equal(st.refreshSuccesses, 1);
  t.equal(st.lastRefreshOutcome, 'success');
  t.equal(st.certificateSerial, identityA.serialDecimal);
});

t.test('jitter spreads refresh times', async (t) => {
  const c = clock();
  const delays: number[] = [];
  for (const r of [0, 0.5, 0.999]) {
    const s = new CredentialSession({ profile: 'p', identity: identityA, fetchCredentials: async () => creds(new Date(c.now() + 1000_000)), now: c.now, random: () => r });
    await s.refresh();
    delays.push(s.status().nextRefreshAt!.getTime() - c.now());
    s.stop();
  }
  t.ok(Math.abs(delays[0]! - 400_000) < 1000, 'random 0 → 40% of lifetime');
  t.ok(Math.abs(delays[1]! - 500_000) < 1000, 'random 0.5 → 50% of lifetime');
  t.ok(Math.abs(delays[2]! - 600_000) < 1000, 'random ~1 → 60% of lifetime');
});

t.test('single flight: concurrent refreshes make one call', async (t) => {
  const c = clock();
  let calls = 0;
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const fetch: FetchCredentials = async () => {
    calls++;
    await gate;
    return creds(new Date(c.now() + 3600_000));
  };
  const s = new CredentialSession({ profile: 'p', identity: identityA, fetchCredentials: fetch, now: c.now });
  t.teardown(() => s.stop());
  s.start();
  const all = Promise.all([s.refresh(), s.refresh(), s.refresh()]);
  release();
  await all;
  t.equal(calls, 1);
  t.equal(s.status().refreshAttempts, 1);
});

t.test('failure keeps serving the cached credentials and backs off exponentially', async (t) => {
  const c = clock();
  let fail = false;
  const fetch: FetchCredentials = async () => {
    if (fail) throw Object.assign(new Error('service unavailable (HTTP 500)'), { reason: 'http_500' });
    return creds(new Date(c.now() + 3600_000));
  };
  const s = new CredentialSession({ profile: 'p', identity: identityA, fetchCredentials: fetch, now: c.now, backoffInitialMs: 1000, backoffMaxMs: 4000, random: () => 0.5 });
  t.teardown(() => s.stop());
  await s.refresh();
  fail = true;
  const delays: number[] = [];
  for (let i = 0; i < 5; i++) {
    await s.refresh();
    delays.push(s.status().nextRefreshAt!.getTime() - c.now());
    t.ok(s.lookup().ok, 'still serving cached credentials');
  }
  t.same(delays, [1000, 2000, 4000, 4000, 4000], 'doubling, capped');
  const st = s.status();
  t.equal(st.failuresByReason.http_500, 5);
  t.equal(st.lastRefreshOutcome, 'failure');
  t.match(st.lastFailure?.message, /HTTP 500/);
  fail = false;
  await s.refresh();
  t.equal(s.status().lastRefreshOutcome, 'success');
  t.equal(s.status().lastFailure, undefined);
});

t.test('credentials inside the expiry margin are never served', async (t) => {
  const c = clock();
  let fail = false;
  const fetch: FetchCredentials = async () => {
    if (fail) throw Object.assign(new Error('connection dropped'), { reason: 'network' });
    return creds(new Date(c.now() + 3600_000));
  };
  const s = new CredentialSession({ profile: 'p', identity: identityA, fetchCredentials: fetch, now: c.now });
  t.teardown(() => s.stop());
  const t0 = c.now();
  await s.refresh();
  fail = true;
  await s.refresh();
  c.set(t0 + 3600_000 - 60_001);
  t.ok(s.lookup().ok, 'served just before the margin');
  c.set(t0 + 3600_000 - 60_000);
  const r = s.lookup();
  t.notOk(r.ok, 'not served inside the 60 s margin');
  t.match(!r.ok && r.message, /last refresh failed at .*connection dropped/);
  t.equal(s.status().ready, false);

  // Short lifetime: 20 s → margin 2 s.
  const c2 = clock();
  const s2 = new CredentialSession({ profile: 'q', identity: identityA, fetchCredentials: async () => creds(new Date(c2.now() + 20_000)), now: c2.now });
  t.teardown(() => s2.stop());
  const t2 = c2.now();
  await s2.refresh();
  c2.set(t2 + 17_999);
  t.ok(s2.lookup().ok);
  c2.set(t2 + 18_000);
  t.notOk(s2.lookup().ok);
});

t.test('credentials already expired on arrival are refused', async (t) => {
  const c = clock();
  const s = new CredentialSession({ profile: 'p', identity: identityA, fetchCredentials: async () => creds(new Date(c.now() - 1000)), now: c.now });
  t.teardown(() => s.stop());
  await s.refresh();
  t.notOk(s.lookup().ok);
  t.equal(s.status().failuresByReason.expired_on_arrival, 1);
});

t.test('stop aborts the in-flight fetch and cancels timers', async (t) => {
  let seen: AbortSignal | undefined;
  const s = new CredentialSession({
    profile: 'p',
    identity: identityA,
    fetchCredentials: (_id, signal) =>
      new Promise((_res, rej) => {
        seen = signal;
        signal.addEventListener('abort', () => rej(new Error('aborted')));
      }),
  });
  s.start();
  const p = s.refresh();
  s.stop();
  await p;
  t.equal(seen?.aborted, true);
  t.equal(s.status().nextRefreshAt, undefined);
  t.notOk(s.lookup().ok);
});

t.test('a new identity starts a new session at once; old credentials served meanwhile', async (t) => {
  const c = clock();
  const used: string[] = [];
  let hold: (() => void) | undefined;
  const fetch: FetchCredentials = async (id, signal) => {
    used.push(id.serialDecimal);
    if (hold === undefined && used.length === 2) {
      await new Promise<void>((r, rej) => {
        hold = r;
        signal.addEventListener('abort', () => rej(new Error('aborted')));
      });
    }
    return creds(new Date(c.now() + 3600_000));
  };
  const s = new CredentialSession({ profile: 'p', identity: identityA, fetchCredentials: fetch, now: c.now });
  t.teardown(() => s.stop());
  s.start();
  await s.waitFor((x) => x.status().refreshSuccesses === 1, 5000);
  const first = s.lookup();
  void s.refresh(); // in flight with identity A, held
  await new Promise((r) => setImmediate(r));
  s.setIdentity(identityB); // abandons the A fetch, starts a B fetch
  await s.waitFor((x) => x.status().refreshSuccesses === 2, 5000);
  t.same(used, [identityA.serialDecimal, identityA.serialDecimal, identityB.serialDecimal]);
  t.equal(s.status().certificateSerial, identityB.serialDecimal);
  t.equal(s.status().identityReloads, 1);
  const second = s.lookup();
  t.ok(first.ok && second.ok && first.credentials.accessKeyId !== second.credentials.accessKeyId, 'new credentials served');
  s.recordIdentityError(Object.assign(new Error('bad pair'), { reason: 'key_mismatch' }));
  t.equal(s.status().identityReloadFailures, 1);
  t.equal(s.status().certificateSerial, identityB.serialDecimal, 'identity kept after a refused change');
});

t.test('a stopped session serves nothing, even with valid credentials cached', async (t) => {
  const c = clock();
  const s = new CredentialSession({ profile: 'p', identity: identityA, fetchCredentials: async () => creds(new Date(c.now() + 3600_000)), now: c.now });
  await s.refresh();
  t.ok(s.lookup().ok, 'served while running');
  s.stop();
  const got = s.lookup();
  t.notOk(got.ok, 'not served after stop');
  if (!got.ok) t.match(got.message, /stopped/);
  t.notOk(s.status().ready, 'not ready after stop');
});
