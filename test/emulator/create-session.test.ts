import t from 'tap';
import { callCreateSession, startTestEmulator } from '../helpers/emulator.js';

t.test('round trip: RSA and EC leaf', async (t) => {
  for (const keyType of ['p256', 'rsa2048', 'p384'] as const) {
    const env = await startTestEmulator(t, { keyType });
    const identity = await env.loadIdentity();
    const r = await callCreateSession(env.url, identity, { arns: env.arns, durationSeconds: 900 });
    t.equal(r.status, 201, `${keyType}: 201 (${r.errorType ?? ''} ${r.json?.message ?? ''})`);
    const set = r.json.credentialSet[0];
    t.match(set.credentials.accessKeyId, /^ASIA[A-Z2-7]{16}$/);
    t.equal(set.credentials.secretAccessKey.length, 40);
    t.ok(set.credentials.sessionToken.length > 400);
    t.match(set.credentials.expiration, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    t.equal(set.roleArn, env.arns.roleArn);
    t.equal(set.sourceIdentity, 'emulator-test-client');
    t.equal(set.assumedRoleUser.arn, `arn:aws:sts::123456789012:assumed-role/rolesanywhere-test-role/${identity.serialDecimal}`);
    t.equal(env.emulator.stats.createSession.ok, 1);
    t.equal(env.emulator.issued.length, 1);
    t.ok(env.emulator.issued[0]!.accessKeyId === set.credentials.accessKeyId);
  }
});
