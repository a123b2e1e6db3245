// The client against the Roles Anywhere emulator (real signature and chain
// verification) and its fault injection: retries, refusals, and our messages
// for the service's actual error texts.
import t from 'tap';
import { createSession, type ClientOptions } from '../../src/rolesanywhere/client.js';
import type { RolesAnywhereError } from '../../src/rolesanywhere/errors.js';
import { startTestEmulator } from '../helpers/emulator.js';
import { makeLeaf } from '../helpers/pki.js';
import { loadIdentity } from '../../src/identity/load.js';
import { rejection as rejectionOf, sha } from '../helpers/assert.js';


const rejection = (p: Promise<unknown>) => rejectionOf<RolesAnywhereError>(p);

const env = await startTestEmulator(t, { keyType: 'p384' });
const identity = await env.loadIdentity();
const opts: ClientOptions = { endpoint: env.url, baseDelayMs: 1, maxDelayMs: 5, env: {} };

t.test('credentials are exactly what the emulator issued', async (t) => {
  const creds = await createSession(identity, { ...env.arns, durationSeconds: 1800, roleSessionName: 'unit' }, opts);
  const issued = env.emulator.issued[env.emulator.issued.length - 1]!;
  t.ok(creds.accessKeyId === issued.accessKeyId);
  t.ok(sha(creds.secretAccessKey) === sha(issued.secretAccessKey));
  t.ok(sha(creds.sessionToken) === sha(issued.sessionToken));
  t.equal(creds.expiration.getTime(), issued.expiration.getTime());
  t.equal(creds.assumedRoleArn, issued.assumedRoleArn);
  t.equal(creds.accountId, '123456789012');
  t.equal(issued.roleSessionName, 'unit');
  const lifetime = issued.expiration.getTime() - issued.issuedAt.getTime();
  t.ok(Math.abs(lifetime - 1800_000) <= 1000, `requested duration honoured (${lifetime} ms)`);
});

t.test('an endpoint with a trailing slash still posts to /sessions', async (t) => {
  const creds = await createSession(identity, env.arns, { ...opts, endpoint: `${env.url}/` });
  t.ok(creds.accessKeyId);
});

t.test('transient faults are retried until success', async (t) => {
  for (const faults of [
    [{ kind: 'status', status: 503, times: 2 }],
    [{ kind: 'status', status: 429, errorType: 'ThrottlingException', times: 1 }],
    [{ kind: 'drop', times: 2 }],
    [{ kind: 'malformed', times: 1 }],
    [{ kind: 'empty-set', times: 1 }],
  ] as const) {
    env.emulator.setFaults([...faults]);
    const before = env.emulator.issued.length;
    const creds = await createSession(identity, env.arns, opts);
    t.ok(creds.accessKeyId, `${faults[0].kind}: succeeded`);
    t.ok(env.emulator.issued.length > before, `${faults[0].kind}: credentials issued after the fault`);
  }
  env.emulator.clearFaults();
});

t.test('a slow service hits the per-attempt deadline', async (t) => {
  env.emulator.setFaults([{ kind: 'delay', ms: 1500, times: 2 }]);
  const err = await rejection(createSession(identity, env.arns, { ...opts, maxAttempts: 2, timeoutMs: 300 }));
  t.equal(err.reason, 'timeout');
  env.emulator.clearFaults();
});

t.test('refusals with the service\'s own texts map to actionable messages', async (t) => {
  const skewed = await rejection(createSession(identity, env.arns, { ...opts, now: () => new Date(Date.now() - 10 * 60_000) }));
  t.equal(skewed.reason, 'access_denied');
  t.match(skewed.message, /rejected the request time \(AccessDeniedException: Signature expired.*check the system clock/);

  const wrongKey = await makeLeaf(env.dir, env.ca, 'other-key', { keyType: 'p256' });
  const other = await loadIdentity({ certificate: wrongKey.certPath, privateKey: wrongKey.keyPath });
  // Our certificate, someone else's key: the signature cannot verify.
  const forged = { ...identity, signer: other.signer };
  const bad = await rejection(createSession(forged, env.arns, opts));
  t.match(bad.message, /could not verify the request signature \(AccessDeniedException: Invalid signature.*--private-key is the key of --certificate/);

  const role = await rejection(createSession(identity, { ...env.arns, roleArn: 'arn:aws:iam::123456789012:role/other' }, opts));
  t.match(role.message, /would not issue credentials for the role \(AccessDeniedException: Role .* is not one of the profile's roles\)/);

  const ta = await rejection(createSession(identity, { ...env.arns, trustAnchorArn: env.arns.trustAnchorArn.replace(/[0-9a-f]{12}$/, '000000000000') }, opts));
  t.equal(ta.reason, 'not_found');
  t.match(ta.message, /ResourceNotFoundException: Trust anchor .* not found\): check that the trust anchor arn:/);

  env.emulator.setFaults([{ kind: 'expiration', seconds: -5, times: 1 }]);
  const expired = await rejection(createSession(identity, env.arns, opts));
  t.match(expired.message, /not in the future: check the system clock/);
  env.emulator.clearFaults();

  env.emulator.setFaults([{ kind: 'status', status: 500 }]);
  const down = await rejection(createSession(identity, env.arns, { ...opts, maxAttempts: 3 }));
  t.equal(down.reason, 'server_error');
  t.match(down.message, /gave up after 3 attempts/);
  env.emulator.clearFaults();
});
