// The CreateSession limiter shared by every session of a daemon: a cap on
// calls in flight and a token-bucket cap on their start rate. Rates are
// checked by counting grants (fake clock, or upper bounds over real windows),
// never by asserting how long anything took.
import t from 'tap';
import { CallLimiter, DEFAULT_MAX_CALLS_PER_SECOND, DEFAULT_MAX_CONCURRENT } from '../../src/credentials/limiter.js';

const tick = () => new Promise((r) => setImmediate(r));

const deferred = () => Promise.withResolvers<void>();

t.test('defaults: 4 in flight, 10 calls/s with a burst of 10', async (t) => {
  const l = new CallLimiter();
  t.same(l.limits, { maxConcurrent: DEFAULT_MAX_CONCURRENT, maxCallsPerSecond: DEFAULT_MAX_CALLS_PER_SECOND, burst: 10 });
  t.equal(DEFAULT_MAX_CONCURRENT, 4);
  t.equal(DEFAULT_MAX_CALLS_PER_SECOND, 10);
});

t.test('the first call of a quiet daemon is not delayed', async (t) => {
  const l = new CallLimiter();
  let granted = false;
  void l.acquire().then((release) => {
    granted = true;
    release();
  });
  await Promise.resolve();
  await Promise.resolve();
  t.ok(granted, 'granted within the same turn (no timer involved)');
});

t.test('concurrency never exceeds the cap; every call runs', async (t) => {
  const l = new CallLimiter({ maxConcurrent: 3, maxCallsPerSecond: 10_000 });
  let running = 0;
  let maxRunning = 0;
  let done = 0;
  const gates = Array.from({ length: 25 }, () => deferred());
  const calls = gates.map((g) =>
    l.run(async () => {
      running++;
      maxRunning = Math.max(maxRunning, running);
      t.ok(l.inFlight <= 3, 'in flight within the cap');
      await g.promise;
      running--;
      done++;
    }),
  );
  await tick();
  t.equal(running, 3, 'exactly the cap runs while the others wait');
  t.equal(l.waiting, 22);
  // Finish them in a scrambled order.
  const order = [...gates.keys()].sort((a, b) => ((a * 7) % 25) - ((b * 7) % 25));
  for (const i of order) {
    gates[i]!.resolve();
    await tick();
    t.ok(running <= 3);
  }
  await Promise.all(calls);
  t.equal(done, 25);
  t.equal(maxRunning, 3);
  t.equal(l.inFlight, 0);
  t.equal(l.waiting, 0);
});

t.test('a failing call gives its slot back', async (t) => {
  const l = new CallLimiter({ maxConcurrent: 1 });
  await t.rejects(l.run(async () => {
    throw new Error('boom');
  }), { message: 'boom' });
  t.equal(l.inFlight, 0);
  t.equal(await l.run(async () => 'next'), 'next');
});

t.test('token bucket with a fake clock: burst, then the refill rate', async (t) => {
  let now = 0;
  const l = new CallLimiter({ maxConcurrent: 1000, maxCallsPerSecond: 10, burst: 10, now: () => now });
  const releases: Array<() => void> = [];
  let granted = 0;
  for (let i = 0; i < 40; i++) {
    void l.acquire().then((r) => {
      granted++;
      releases.push(r);
    });
  }
  await tick();
  t.equal(granted, 10, 'the burst goes out at once');
  // Releasing slots does not create tokens.
  for (const r of releases.splice(0)) r();
  await tick();
  t.equal(granted, 10, 'finished calls do not refill the bucket');
  // configure() with the same limits re-evaluates the queue at the (fake) current time.
  const poke = () => l.configure({ maxConcurrent: 1000, maxCallsPerSecond: 10, burst: 10 });
  now += 500;
  poke();
  await tick();
  t.equal(granted, 15, '0.5 s at 10/s: 5 more');
  now += 1000;
  poke();
  await tick();
  t.equal(granted, 25, '1 s more: 10 more');
  now += 60_000;
  poke();
  await tick();
  t.equal(granted, 35, 'a long pause refills only up to the burst');
  now += 1000;
  poke();
  await tick();
  t.equal(granted, 40);
  for (const r of releases) r();
});

t.test('rate over real time, counted: no 1 s window holds more than burst + rate calls', async (t) => {
  const rate = 40;
  const burst = 5;
  const l = new CallLimiter({ maxConcurrent: 1000, maxCallsPerSecond: rate, burst });
  const times: number[] = [];
  const n = 80;
  await Promise.all(
    Array.from({ length: n }, () =>
      l.run(async () => {
        times.push(performance.now());
      }),
    ),
  );
  t.equal(times.length, n, 'every call ran');
  times.sort((a, b) => a - b);
  let worst = 0;
  for (let i = 0; i < times.length; i++) {
    let j = i;
    while (j < times.length && times[j]! - times[i]! < 1000) j++;
    worst = Math.max(worst, j - i);
  }
  // The bucket can never hand out more than its content plus what refilled in the
  // window: burst + rate. The times are recorded just after each grant, so allow a
  // quarter second of recording jitter on a loaded machine — still far below the
  // 80 calls an unlimited run would put in one window.
  const bound = burst + Math.ceil(rate * 1.25);
  t.ok(worst <= bound, `at most ${bound} calls in any 1 s window; worst ${worst}`);
  t.ok(n > bound, 'the test asks for more than one window can hold');
});

t.test('abort while waiting for a slot: rejects, takes nothing, frees nothing', async (t) => {
  const l = new CallLimiter({ maxConcurrent: 1, maxCallsPerSecond: 1000 });
  const first = await l.acquire();
  t.equal(l.inFlight, 1);
  const ac = new AbortController();
  let ran = false;
  const waiting = l.run(async () => {
    ran = true;
  }, ac.signal);
  await tick();
  t.equal(l.waiting, 1);
  const reason = Object.assign(new Error('stopped'), { name: 'AbortError' });
  ac.abort(reason);
  await t.rejects(waiting, reason, 'rejects with the signal reason');
  t.notOk(ran, 'the aborted call never ran');
  t.equal(l.waiting, 0, 'removed from the queue');
  t.equal(l.inFlight, 1, 'the slot held by the first call is still held');
  // The abort freed nothing: a new call still waits for the first to finish.
  let thirdGranted = false;
  const third = l.acquire().then((r) => {
    thirdGranted = true;
    return r;
  });
  await tick();
  t.notOk(thirdGranted, 'a new call still waits');
  first();
  first(); // releasing twice is harmless
  const r3 = await third;
  t.ok(thirdGranted);
  t.equal(l.inFlight, 1);
  r3();
  t.equal(l.inFlight, 0);
});

t.test('abort while waiting for a token: the token stays in the bucket', async (t) => {
  let now = 0;
  const l = new CallLimiter({ maxConcurrent: 10, maxCallsPerSecond: 1, burst: 1, now: () => now });
  const r1 = await l.acquire();
  r1();
  const ac = new AbortController();
  const waiting = l.acquire(ac.signal);
  await tick();
  t.equal(l.waiting, 1);
  ac.abort();
  await t.rejects(waiting, { name: 'AbortError' });
  t.equal(l.granted, 1);
  now += 1000; // one token refilled
  let granted = false;
  const next = l.acquire().then((r) => {
    granted = true;
    return r;
  });
  await tick();
  t.ok(granted, 'the refilled token was not consumed by the aborted waiter');
  (await next)();
});

t.test('an already aborted signal rejects at once', async (t) => {
  const l = new CallLimiter();
  const ac = new AbortController();
  ac.abort();
  await t.rejects(l.acquire(ac.signal), { name: 'AbortError' });
  t.equal(l.granted, 0);
  t.equal(l.inFlight, 0);
});

t.test('wrap passes identity and signal through and aborts a waiting fetch', async (t) => {
  const l = new CallLimiter({ maxConcurrent: 1 });
  const gate = deferred();
  const seen: AbortSignal[] = [];
  const fetch = l.wrap(async (_identity, signal) => {
    seen.push(signal);
    await gate.promise;
    return { accessKeyId: 'A', secretAccessKey: 'S', sessionToken: 'T', expiration: new Date(Date.now() + 3600_000), roleArn: 'arn:aws:iam::123456789012:role/r' };
  });
  const a = new AbortController();
  const b = new AbortController();
  const first = fetch(undefined as never, a.signal);
  const second = fetch(undefined as never, b.signal);
  await tick();
  t.equal(seen.length, 1);
  t.equal(seen[0], a.signal, 'the signal reaches the fetch');
  b.abort();
  await t.rejects(second, { name: 'AbortError' });
  gate.resolve();
  t.equal((await first).accessKeyId, 'A');
  t.equal(seen.length, 1, 'the aborted fetch never started');
  t.equal(l.inFlight, 0);
});

t.test('configure raises the concurrency cap for waiting calls at once', async (t) => {
  const l = new CallLimiter({ maxConcurrent: 1, maxCallsPerSecond: 1000 });
  const r1 = await l.acquire();
  let granted = 0;
  const more = [l.acquire(), l.acquire()].map((p) => p.then((r) => (granted++, r)));
  await tick();
  t.equal(granted, 0);
  l.configure({ maxConcurrent: 3, maxCallsPerSecond: 1000 });
  await tick();
  t.equal(granted, 2);
  r1();
  for (const r of await Promise.all(more)) r();
  t.equal(l.inFlight, 0);
});
