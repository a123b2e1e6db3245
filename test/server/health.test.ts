// readiness(): what /readyz answers, from the sessions' own lookups.
import t from 'tap';
import { readiness } from '../../src/server/health.js';
import type { ServerState } from '../../src/server/state.js';

/** A state of `n` profiles; those in `failing` have no credentials. */
function stateOf(n: number, failing: (i: number) => boolean): ServerState {
  const profiles = new Map<string, unknown>();
  for (let i = 0; i < n; i++) {
    const name = `p${String(i + 1).padStart(4, '0')}`;
    const lookup = failing(i)
      ? () => ({ ok: false, message: `CreateSession for ${name} failed: AccessDenied for arn:aws:iam::123456789012:role/secret-role` })
      : () => ({ ok: true, credentials: { expiration: new Date('2030-01-01T00:00:00Z') } });
    profiles.set(name, { session: { lookup, isRunning: true }, onDemand: false });
  }
  return { profiles } as unknown as ServerState;
}

t.test('ready when every profile has credentials', async (t) => {
  const r = readiness(stateOf(3, () => false), true);
  t.equal(r.status, 200);
  t.equal(r.body.status, 'ready');
  t.same((r.body.profiles as Record<string, unknown>).p0002, { ready: true, expiration: '2030-01-01T00:00:00Z' });
});

t.test('1000 profiles, 995 not ready: every profile in the body, at most 10 names in the message', async (t) => {
  const r = readiness(stateOf(1000, (i) => i >= 5), true);
  t.equal(r.status, 503);
  t.equal(Object.keys(r.body.profiles as object).length, 1000, 'every profile is in the body');
  const message = r.body.Message as string;
  t.match(message, /^profiles without valid credentials: p0006, p0007, .*p0015 … and 985 more$/);
  t.notMatch(message, 'p0016');
  t.match((r.body.profiles as Record<string, { reason?: string }>).p0006!.reason, /AccessDenied/, 'the reason, for loopback listeners');
});

t.test('without reasons (the health listener): which profiles, never why', async (t) => {
  const r = readiness(stateOf(2, (i) => i === 1), false);
  t.equal(r.status, 503);
  t.same((r.body.profiles as Record<string, unknown>).p0002, { ready: false });
  t.notMatch(JSON.stringify(r.body), /arn:|AccessDenied/);
});
