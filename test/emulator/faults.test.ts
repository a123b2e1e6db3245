// Fault injection, in process and over the HTTP control API.
import t from 'tap';
import { callCreateSession, startTestEmulator } from '../helpers/emulator.js';
import { FaultSet, parseFaultRules } from '../../src/emulator/faults.js';

t.test('status faults for the next N calls, then normal service', async (t) => {
  const env = await startTestEmulator(t);
  const identity = await env.loadIdentity();
  env.emulator.setFaults([{ kind: 'status', status: 503, times: 2 }]);
  for (let i = 0; i < 2; i++) {
    const r = await callCreateSession(env.url, identity, { arns: env.arns });
    t.equal(r.status, 503);
    t.equal(r.errorType, 'ServiceUnavailableException');
    t.equal(typeof r.json?.message, 'string');
  }
  t.equal((await callCreateSession(env.url, identity, { arns: env.arns })).status, 201, 'third call succeeds');
  env.emulator.setFaults({ kind: 'status', status: 429 });
  for (let i = 0; i < 3; i++) {
    const r = await callCreateSession(env.url, identity, { arns: env.arns });
    t.equal(r.errorType, 'ThrottlingException', 'until cleared');
    t.equal(r.status, 429);
  }
  env.emulator.clearFaults();
  t.equal((await callCreateSession(env.url, identity, { arns: env.arns })).status, 201, 'cleared');
  env.emulator.setFaults({ kind: 'status', status: 500, errorType: 'InternalServerException', message: 'boom', times: 1 });
  const r = await callCreateSession(env.url, identity, { arns: env.arns });
  t.equal(r.status, 500);
  t.equal(r.json.message, 'boom');
  const s = env.emulator.stats;
  t.equal(s.createSession.total, 8);
  t.equal(s.createSession.ok, 2);
  t.same(s.createSession.errors, { ServiceUnavailableException: 2, ThrottlingException: 3, InternalServerException: 1 });
  t.equal(s.faultsInjected.status, 6);
  t.equal(env.emulator.issued.length, 2, 'faulted calls issue nothing');
});

t.test('drop, delay, malformed, empty-set', async (t) => {
  const env = await startTestEmulator(t);
  const identity = await env.loadIdentity();

  env.emulator.setFaults([{ kind: 'drop', times: 1 }]);
  await t.rejects(callCreateSession(env.url, identity, { arns: env.arns }), 'drop: the connection closes without an answer');
  t.equal(env.emulator.stats.calls.at(-1)!.outcome, 'fault:drop');

  env.emulator.setFaults([{ kind: 'delay', ms: 400, times: 1 }]);
  const started = Date.now();
  const delayed = await callCreateSession(env.url, identity, { arns: env.arns });
  t.equal(delayed.status, 201, 'delay: still answered normally');
  t.ok(Date.now() - started >= 390, 'delay: the answer came no sooner than the delay');

  // A delay combined with a terminal fault: both apply.
  env.emulator.setFaults([{ kind: 'delay', ms: 50, times: 1 }, { kind: 'status', status: 503, times: 1 }]);
  t.equal((await callCreateSession(env.url, identity, { arns: env.arns })).status, 503);

  env.emulator.setFaults([{ kind: 'malformed', times: 1 }]);
  const bad = await callCreateSession(env.url, identity, { arns: env.arns });
  t.equal(bad.status, 201, 'malformed: 201');
  t.equal(bad.json, undefined, 'malformed: the body is not JSON');

  env.emulator.setFaults([{ kind: 'malformed', body: '<html>proxy error</html>', times: 1 }]);
  t.equal((await callCreateSession(env.url, identity, { arns: env.arns })).text, '<html>proxy error</html>');

  env.emulator.setFaults([{ kind: 'empty-set', times: 1 }]);
  const empty = await callCreateSession(env.url, identity, { arns: env.arns });
  t.equal(empty.status, 201);
  t.same(empty.json.credentialSet, [], 'empty-set: credentialSet is []');

  t.equal((await callCreateSession(env.url, identity, { arns: env.arns })).status, 201, 'all faults used up');
  t.same(env.emulator.stats.faultsInjected, { drop: 1, delay: 2, status: 1, malformed: 2, 'empty-set': 1 });
  t.same(env.emulator.stats.createSession.errors, { 'fault:drop': 1, ServiceUnavailableException: 1, 'fault:malformed': 2, 'fault:empty-set': 1 });
});

t.test('probability and operation selection', async (t) => {
  const set = new FaultSet();
  set.set([{ kind: 'status', status: 503, probability: 0.5 }]);
  let seq = [0.9, 0.1, 0.7, 0.2];
  const rand = () => seq.shift()!;
  const fired = [0, 1, 2, 3].map(() => set.decide('CreateSession', rand).rule?.kind ?? 'none');
  t.same(fired, ['none', 'status', 'none', 'status'], 'fires when random() < probability');
  set.set([{ kind: 'drop' }]);
  t.equal(set.decide('GetCallerIdentity').rule, undefined, 'CreateSession faults by default');
  set.set([{ kind: 'drop', operation: 'any' }]);
  t.equal(set.decide('GetCallerIdentity').rule?.kind, 'drop');
  seq = [];
  t.throws(() => parseFaultRules({ kind: 'nope' }), /kind must be one of/);
  t.throws(() => parseFaultRules({ kind: 'status', status: 200 }), /status must be/);
  t.throws(() => parseFaultRules({ kind: 'status', status: 503, times: 0 }), /times/);
  t.throws(() => parseFaultRules({ kind: 'delay', ms: -1 }), /ms/);
  t.throws(() => parseFaultRules({ kind: 'drop', probability: 2 }), /probability/);
});

t.test('HTTP control API', async (t) => {
  const env = await startTestEmulator(t);
  const identity = await env.loadIdentity();
  const ctl = (method: string, path: string, body?: unknown) =>
    fetch(env.url + path, { method, headers: { 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });

  let res = await ctl('POST', '/_emulator/faults', [{ kind: 'status', status: 429, times: 1 }]);
  t.equal(res.status, 200);
  t.same(await res.json(), [{ kind: 'status', status: 429, times: 1 }]);
  t.equal((await callCreateSession(env.url, identity, { arns: env.arns })).errorType, 'ThrottlingException');

  await ctl('POST', '/_emulator/faults', { kind: 'status', status: 503 });
  await ctl('POST', '/_emulator/faults?append=1', { kind: 'drop' });
  t.equal(((await (await ctl('GET', '/_emulator/faults')).json()) as unknown[]).length, 2, 'append adds');
  res = await ctl('DELETE', '/_emulator/faults');
  t.equal(res.status, 200);
  t.same(await (await ctl('GET', '/_emulator/faults')).json(), []);

  res = await ctl('POST', '/_emulator/faults', { kind: 'bogus' });
  t.equal(res.status, 400, 'bad rule refused');
  t.match(((await res.json()) as { message: string }).message, /kind must be one of/);

  res = await ctl('POST', '/_emulator/lifetime', { seconds: 30 });
  t.same(await res.json(), { lifetimeSeconds: 30 });
  const ok = await callCreateSession(env.url, identity, { arns: env.arns });
  t.ok(Date.parse(ok.json.credentialSet[0].credentials.expiration) - Date.now() <= 31_000, 'lifetime applies');
  t.equal((await ctl('POST', '/_emulator/lifetime', { seconds: -1 })).status, 400);

  const stats = (await (await ctl('GET', '/_emulator/stats')).json()) as any;
  t.equal(stats.createSession.total, 2);
  t.equal(stats.createSession.ok, 1);
  t.equal(stats.createSession.errors.ThrottlingException, 1);
  t.equal(stats.calls.length, 2);
  t.equal(stats.issuedCount, 1);
  const issuedText = await (await ctl('GET', '/_emulator/issued')).text();
  const issued = JSON.parse(issuedText);
  t.equal(issued.length, 1);
  t.equal(issued[0].accessKeyId, env.emulator.issued[0]!.accessKeyId);
  t.notOk(issuedText.includes(env.emulator.issued[0]!.secretAccessKey), 'no secret over the control API');
  t.notOk(issuedText.includes(env.emulator.issued[0]!.sessionToken), 'no token over the control API');
  const statsText = JSON.stringify(stats);
  t.notOk(statsText.includes(env.emulator.issued[0]!.secretAccessKey), 'no secret in stats');

  t.equal((await ctl('DELETE', '/_emulator/stats')).status, 200);
  t.equal(env.emulator.stats.createSession.total, 0, 'stats reset');
  t.equal((await ctl('GET', '/_emulator/nope')).status, 404);
  const unknown = await fetch(env.url + '/whatever', { method: 'POST' });
  t.equal(unknown.status, 404);
  t.equal(unknown.headers.get('x-amzn-errortype'), 'UnknownOperationException');
});
