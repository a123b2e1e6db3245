// Short credential lifetimes: background refreshes happen, every served
// Expiration keeps the margin; during an outage cached credentials are served
// until they lapse, then 503 (never expired ones); recovery when faults clear.
import t from 'tap';
import { expiryMarginMs } from '../../src/credentials/session.js';
import { httpRequest, startEmulatedDaemon, waitUntil } from '../helpers/daemon.js';

const LIFETIME_S = 20;
// The two cases have their own emulator and daemon: run them side by side (each waits on
// real credential lifetimes, so together they take as long as the longer one).
t.jobs = 2;

t.test('background refresh with short lifetimes', async (t) => {
  const d = await startEmulatedDaemon(t, { emulator: { lifetime: LIFETIME_S } });
  await d.daemon.session('main')!.waitFor((s) => s.status().ready, 15_000);
  const margin = expiryMarginMs(LIFETIME_S * 1000);
  const seen = new Set<string>();
  let requests = 0;
  let minRemaining = Infinity;
  const deadline = Date.now() + 2.2 * LIFETIME_S * 1000;
  while (Date.now() < deadline) {
    const before = Date.now();
    const r = await httpRequest(d.port, 'GET', '/v1/credentials', { authorization: d.token });
    if (r.status !== 200) {
      t.fail(`request ${requests + 1} answered ${r.status}: ${r.body.slice(0, 300)}`);
      break;
    }
    const body = JSON.parse(r.body);
    seen.add(body.AccessKeyId);
    // Expiration is truncated to whole seconds: allow 1 s for that.
    minRemaining = Math.min(minRemaining, Date.parse(body.Expiration) + 1000 - before);
    requests++;
    await new Promise((res) => setTimeout(res, 250));
  }
  t.ok(requests > 50, `many requests made (${requests})`);
  t.ok(minRemaining >= margin, `every served Expiration kept the ${margin} ms margin (min remaining ${minRemaining} ms)`);
  const calls = d.emu.emulator.stats.createSession.ok;
  t.ok(calls >= 4, `several background CreateSession calls (${calls})`);
  t.ok(seen.size >= 3, `several credential sets served (${seen.size})`);
  t.ok(d.emu.emulator.stats.createSession.total <= calls + 0, 'no failed or extra calls');
});

t.test('outage: cached credentials served, then 503, then recovery', async (t) => {
  const d = await startEmulatedDaemon(t, { emulator: { lifetime: LIFETIME_S }, config: { refresh: { backoffInitialMs: 200, backoffMaxMs: 1500 } } });
  const session = d.daemon.session('main')!;
  await session.waitFor((s) => s.status().ready, 15_000);
  const firstExpiration = session.status().expiration!.getTime();
  d.emu.emulator.setFaults([{ kind: 'status', status: 500, probability: 0.5 }, { kind: 'drop' }]);
  const get = () => httpRequest(d.port, 'GET', '/v1/credentials', { authorization: d.token });

  // Until the margin: still the cached credentials.
  let servedDuringOutage = 0;
  let saw503 = false;
  let servedExpired = false;
  const margin = expiryMarginMs(LIFETIME_S * 1000);
  const end = firstExpiration + 2000;
  while (Date.now() < end) {
    const now = Date.now();
    const r = await get();
    if (r.status === 200) {
      servedDuringOutage++;
      if (Date.parse(JSON.parse(r.body).Expiration) + 1000 <= now) servedExpired = true;
    } else {
      const body = JSON.parse(r.body);
      if (r.status !== 503 || body.Code !== 'CredentialsUnavailable' || !/last refresh failed at/.test(body.Message)) {
        t.fail(`unexpected answer ${r.status} ${body.Code}`);
      }
      saw503 = true;
    }
    await new Promise((res) => setTimeout(res, 200));
  }
  t.ok(servedDuringOutage > 10, `cached credentials served during the outage (${servedDuringOutage})`);
  t.ok(saw503, '503 once the cached credentials entered the margin');
  t.notOk(servedExpired, 'never served expired credentials');
  t.ok(Date.now() >= firstExpiration - margin);
  const st = session.status();
  t.ok((st.failuresByReason.http_500 ?? 0) + Object.values(st.failuresByReason).reduce((a, b) => a + b, 0) > 2, 'failures counted');
  t.equal((await httpRequest(d.port, 'GET', '/readyz')).status, 503, 'not ready');
  const metrics = (await httpRequest(d.port, 'GET', '/metrics')).body;
  t.match(metrics, /rolesanywhere_refresh_failures_total\{profile="main",reason="[a-z_0-9]+"\} \d+/);
  t.match(metrics, /rolesanywhere_credentials_valid\{profile="main"\} 0/);

  d.emu.emulator.clearFaults();
  await waitUntil('recovery', async () => (await get()).status === 200, 15_000, 100);
  t.pass('recovered once the faults cleared');
  t.equal((await httpRequest(d.port, 'GET', '/readyz')).status, 200);
});
