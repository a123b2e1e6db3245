// The emulator's CreateSession quota: a token bucket shared by every caller;
// over it, 429 ThrottlingException at once. Clock injected: no timing.
import t from 'tap';
import { callCreateSession, startTestEmulator } from '../helpers/emulator.js';
import { parseRateLimit, RateLimiter } from '../../src/emulator/rate-limit.js';

t.test('token bucket: burst, then perSecond', async (t) => {
  let now = 0;
  const q = new RateLimiter({ perSecond: 10, burst: 3 }, () => now);
  t.same([q.take(), q.take(), q.take(), q.take()], [true, true, true, false], 'burst of 3');
  now += 100;
  t.equal(q.take(), true, 'one token per 100 ms at 10/s');
  t.equal(q.take(), false);
  now += 10_000;
  t.same([q.take(), q.take(), q.take(), q.take()], [true, true, true, false], 'refills up to the burst only');
  t.throws(() => parseRateLimit({ perSecond: 0 }), /perSecond must be a number above 0/);
  t.throws(() => parseRateLimit({ perSecond: 5, burst: 0.5 }), /burst must be a positive integer/);
  t.same(parseRateLimit(7), { perSecond: 7 });
});

t.test('calls over the quota get 429 ThrottlingException and issue nothing', async (t) => {
  const env = await startTestEmulator(t, { rateLimit: { perSecond: 0.001, burst: 2 } });
  const identity = await env.loadIdentity();
  const statuses: number[] = [];
  for (let i = 0; i < 4; i++) statuses.push((await callCreateSession(env.url, identity, { arns: env.arns })).status);
  t.same(statuses, [201, 201, 429, 429]);
  const r = await callCreateSession(env.url, identity, { arns: env.arns });
  t.equal(r.errorType, 'ThrottlingException');
  t.equal(r.json.message, 'Rate exceeded');
  t.equal(env.emulator.issued.length, 2);
  t.equal(env.emulator.stats.createSession.errors.ThrottlingException, 3);
  t.equal(env.emulator.stats.calls.at(-1)?.reason, 'rate_limit');

  // Over HTTP: remove, then set again.
  t.equal((await fetch(`${env.url}/_emulator/ratelimit`, { method: 'DELETE' })).status, 200);
  t.equal((await callCreateSession(env.url, identity, { arns: env.arns })).status, 201, 'no quota');
  const set = await fetch(`${env.url}/_emulator/ratelimit`, { method: 'POST', body: JSON.stringify({ perSecond: 0.001, burst: 1 }) });
  t.same(await set.json(), { perSecond: 0.001, burst: 1 });
  t.equal((await callCreateSession(env.url, identity, { arns: env.arns })).status, 201);
  t.equal((await callCreateSession(env.url, identity, { arns: env.arns })).status, 429);
  const bad = await fetch(`${env.url}/_emulator/ratelimit`, { method: 'POST', body: '{"perSecond":-1}' });
  t.equal(bad.status, 400);
  env.emulator.setRateLimit(undefined);
  t.equal((await callCreateSession(env.url, identity, { arns: env.arns })).status, 201);
});
