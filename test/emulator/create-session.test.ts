// CreateSession over real HTTP: accepted requests and every refusal, each with
// the service's error type.
import t, { type Test } from 'tap';
import { loadIdentity } from '../../src/identity/load.js';
import type { Identity } from '../../src/identity/types.js';
import { fileSigner } from '../../src/identity/signers/file.js';
import { callCreateSession, rawIdentity, startTestEmulator, type CallResult } from '../helpers/emulator.js';
import { makeCA, makeKey, makeLeaf } from '../helpers/pki.js';
import { createPrivateKey } from 'node:crypto';
import { readFile } from 'node:fs/promises';

function refused(t: Test, r: CallResult, status: number, type: string, message?: RegExp) {
  t.equal(r.status, status, `status ${status}`);
  t.equal(r.errorType, type, `X-Amzn-ErrorType ${type}`);
  t.equal(typeof r.json?.message, 'string', 'JSON body has a message');
  if (message) t.match(r.json?.message, message);
  t.notOk(r.text.includes('secretAccessKey'), 'no credentials in a refusal');
}

t.test('round trip: RSA and EC leaves', async (t) => {
  for (const keyType of ['p256', 'rsa2048', 'p384'] as const) {
    const env = await startTestEmulator(t, { keyType });
    const identity = await env.loadIdentity();
    const r = await callCreateSession(env.url, identity, { arns: env.arns, durationSeconds: 900 });
    t.equal(r.status, 201, `${keyType}: 201 (${r.errorType ?? ''} ${r.json?.message ?? ''})`);
    t.equal(r.errorType, undefined);
    const set = r.json.credentialSet[0];
    t.match(set.credentials.accessKeyId, /^ASIA[A-Z2-7]{16}$/);
    t.equal(set.credentials.secretAccessKey.length, 40);
    t.ok(set.credentials.sessionToken.length > 400);
    t.match(set.credentials.expiration, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    const exp = Date.parse(set.credentials.expiration);
    t.ok(exp > Date.now() + 800_000 && exp <= Date.now() + 901_000, 'expiration = now + requested 900 s (under the 3600 s cap)');
    t.equal(set.roleArn, env.arns.roleArn);
    t.equal(set.sourceIdentity, 'emulator-test-client');
    t.equal(set.assumedRoleUser.arn, `arn:aws:sts::123456789012:assumed-role/rolesanywhere-test-role/${identity.serialDecimal}`);
    t.match(set.assumedRoleUser.assumedRoleId, new RegExp(`^AROA[A-Z2-7]{17}:${identity.serialDecimal}$`));
    t.match(r.json.subjectArn, /^arn:aws:rolesanywhere:us-east-1:123456789012:subject\/[0-9a-f-]{36}$/);
    t.equal(env.emulator.stats.createSession.ok, 1);
    t.equal(env.emulator.stats.createSession.total, 1);
    t.equal(env.emulator.stats.calls[0]!.serial, identity.serialDecimal, 'per-call log has the serial');
    t.equal(env.emulator.stats.calls[0]!.outcome, 'ok');
    t.equal(env.emulator.issued.length, 1);
    t.ok(env.emulator.issued[0]!.accessKeyId === set.credentials.accessKeyId, 'issued list records it');
    t.ok(env.emulator.issued[0]!.expiration.getTime() === exp, 'issued expiration is the one sent');
  }
});

t.test('ARNs in the query string, roleSessionName, lifetime cap', async (t) => {
  const env = await startTestEmulator(t, { lifetime: 20 });
  const identity = await env.loadIdentity();
  const r = await callCreateSession(env.url, identity, { arns: env.arns, arnsInQuery: true, roleSessionName: 'my-session' });
  t.equal(r.status, 201, `201 (${r.json?.message ?? ''})`);
  const set = r.json.credentialSet[0];
  t.equal(set.assumedRoleUser.arn, 'arn:aws:sts::123456789012:assumed-role/rolesanywhere-test-role/my-session');
  const left = Date.parse(set.credentials.expiration) - Date.now();
  t.ok(left > 5_000 && left <= 21_000, 'lifetime capped at 20 s although 3600 was requested');
  env.emulator.setCredentialLifetime(600);
  const r2 = await callCreateSession(env.url, identity, { arns: env.arns, durationSeconds: 43200 });
  const left2 = Date.parse(r2.json.credentialSet[0].credentials.expiration) - Date.now();
  t.ok(left2 > 500_000 && left2 <= 601_000, 'setCredentialLifetime changes the cap');
});

t.test('leaf issued by an intermediate, with the chain header', async (t) => {
  const env = await startTestEmulator(t, { chain: true });
  const identity = await env.loadIdentity();
  t.equal(identity.chain.length, 1);
  const r = await callCreateSession(env.url, identity, { arns: env.arns });
  t.equal(r.status, 201, `accepted with the chain (${r.json?.message ?? ''})`);
  const noChain: Identity = { ...identity, chain: [] };
  refused(t, await callCreateSession(env.url, noChain, { arns: env.arns }), 403, 'AccessDeniedException', /Untrusted signing certificate/);
  t.equal(env.emulator.stats.calls.at(-1)!.reason, 'untrusted');
});

t.test('refusals', async (t) => {
  const env = await startTestEmulator(t, { keyType: 'rsa2048' });
  const identity = await env.loadIdentity();
  const arns = env.arns;
  const reason = () => env.emulator.stats.calls.at(-1)!.reason;

  t.test('tampered signature', async (t) => {
    const r = await callCreateSession(env.url, identity, {
      arns,
      mutate: (h) => {
        const sig = h.Authorization!.split('Signature=')[1]!;
        h.Authorization = h.Authorization!.replace(sig, sig.slice(0, -2) + (sig.endsWith('00') ? '01' : '00'));
      },
    });
    refused(t, r, 403, 'AccessDeniedException', /^Invalid signature$/);
    t.equal(reason(), 'bad_signature');
  });

  t.test('tampered body', async (t) => {
    const r = await callCreateSession(env.url, identity, { arns, durationSeconds: 900, sendBody: JSON.stringify({ ...arns, durationSeconds: 43200 }) });
    refused(t, r, 403, 'AccessDeniedException', /Invalid signature/);
  });

  t.test('signed with a key that is not the certificate\'s', async (t) => {
    const otherPath = await makeKey(env.dir, 'rsa2048', 'not-the-leaf-key');
    const other = fileSigner(createPrivateKey(await readFile(otherPath)), otherPath);
    // The identity's own algorithm name and certificate, the other key's signature.
    const r = await callCreateSession(env.url, { ...identity, signer: { ...identity.signer, sign: other.sign } }, { arns });
    refused(t, r, 403, 'AccessDeniedException', /Invalid signature/);
    t.equal(reason(), 'bad_signature');
  });

  t.test('untrusted CA', async (t) => {
    const otherCa = await makeCA(env.dir, 'Some Other CA');
    const leaf = await makeLeaf(env.dir, otherCa, 'stranger');
    const stranger = await loadIdentity({ certificate: leaf.certPath, privateKey: leaf.keyPath });
    refused(t, await callCreateSession(env.url, stranger, { arns }), 403, 'AccessDeniedException', /Untrusted signing certificate/);
    t.equal(reason(), 'untrusted');
  });

  t.test('expired certificate', async (t) => {
    const leaf = await makeLeaf(env.dir, env.ca, 'expired-client', { days: -1 });
    const expired = await rawIdentity(leaf.certPath, leaf.keyPath);
    t.ok(new Date(expired.certificate.validTo).getTime() < Date.now(), 'fixture is expired');
    refused(t, await callCreateSession(env.url, expired, { arns }), 403, 'AccessDeniedException', /Signing certificate expired/);
    t.equal(reason(), 'expired');
  });

  t.test('clock skew over 5 minutes, both ways', async (t) => {
    for (const offset of [-6 * 60_000, 6 * 60_000]) {
      const r = await callCreateSession(env.url, identity, { arns, date: new Date(Date.now() + offset) });
      refused(t, r, 403, 'AccessDeniedException', /clock skew/);
      t.equal(reason(), 'clock_skew');
    }
    const ok = await callCreateSession(env.url, identity, { arns, date: new Date(Date.now() - 4 * 60_000) });
    t.equal(ok.status, 201, '4 minutes of skew is accepted');
  });

  t.test('CA:TRUE leaf', async (t) => {
    const leaf = await makeLeaf(env.dir, env.ca, 'ca-leaf', { caTrue: true });
    const caLeaf = await rawIdentity(leaf.certPath, leaf.keyPath);
    refused(t, await callCreateSession(env.url, caLeaf, { arns }), 403, 'AccessDeniedException', /end-entity/);
    t.equal(reason(), 'leaf_is_ca');
  });

  t.test('other end-entity rules: keyUsage, SHA-1, v1', async (t) => {
    const cases = [
      { name: 'no-digsig', opts: { keyUsage: 'critical,keyEncipherment' }, reason: 'leaf_key_usage', message: /digitalSignature/ },
      { name: 'sha1-leaf', opts: { digest: 'sha1' }, reason: 'weak_signature', message: /SHA-256 or stronger/ },
      { name: 'v1-leaf', opts: { noExtensions: true }, reason: 'not_v3', message: /v3/ },
    ];
    for (const c of cases) {
      const leaf = await makeLeaf(env.dir, env.ca, c.name, { keyType: 'p256', ...c.opts });
      const id = await rawIdentity(leaf.certPath, leaf.keyPath);
      refused(t, await callCreateSession(env.url, id, { arns }), 403, 'AccessDeniedException', c.message);
      t.equal(reason(), c.reason, `${c.name}: ${c.reason}`);
    }
  });

  t.test('serial mismatch', async (t) => {
    const r = await callCreateSession(env.url, { ...identity, serialDecimal: '1234567' }, { arns });
    refused(t, r, 403, 'AccessDeniedException', /serial/);
    t.equal(reason(), 'serial_mismatch');
    const hex = await callCreateSession(env.url, { ...identity, serialDecimal: identity.certificate.serialNumber.replace(/^0+/, '') + '0' }, { arns });
    t.equal(hex.status, 403, 'a hex serial is refused');
  });

  t.test('region mismatch', async (t) => {
    refused(t, await callCreateSession(env.url, identity, { arns, region: 'us-west-2' }), 403, 'AccessDeniedException', /us-east-1.*us-west-2/);
    t.equal(reason(), 'region_mismatch');
    const loose = await startTestEmulator(t, { region: undefined, dir: env.dir });
    const id2 = await loose.loadIdentity();
    // Emulator without a region: the scope must still match the ARNs' region.
    const r = await callCreateSession(loose.url, id2, { arns: loose.arns, region: 'eu-west-1' });
    refused(t, r, 400, 'ValidationException', /Region mismatch/);
  });

  t.test('durationSeconds and ARN validation', async (t) => {
    refused(t, await callCreateSession(env.url, identity, { arns, durationSeconds: 899 }), 400, 'ValidationException', /durationSeconds.*greater than or equal to 900/);
    refused(t, await callCreateSession(env.url, identity, { arns, durationSeconds: 43201 }), 400, 'ValidationException', /less than or equal to 43200/);
    refused(t, await callCreateSession(env.url, identity, { arns: { ...arns, roleArn: 'arn:aws:iam::123:role/x' } }), 400, 'ValidationException', /roleArn/);
    refused(t, await callCreateSession(env.url, identity, { arns: { ...arns, trustAnchorArn: arns.profileArn } }), 400, 'ValidationException', /trustAnchorArn/);
    refused(t, await callCreateSession(env.url, identity, { arns: { ...arns, profileArn: '' } }), 400, 'ValidationException', /profileArn/);
    refused(
      t,
      await callCreateSession(env.url, identity, { arns, sendBody: 'not json', mutate: () => undefined }),
      403,
      'AccessDeniedException',
      /Invalid signature/,
    );
  });

  t.test('unknown trust anchor, unknown profile, role not in profile', async (t) => {
    const uuid = 'ffffffff-ffff-4fff-8fff-ffffffffffff';
    refused(t, await callCreateSession(env.url, identity, { arns: { ...arns, trustAnchorArn: arns.trustAnchorArn.replace(/[0-9a-f-]{36}$/, uuid) } }), 404, 'ResourceNotFoundException', /Trust anchor/);
    refused(t, await callCreateSession(env.url, identity, { arns: { ...arns, profileArn: arns.profileArn.replace(/[0-9a-f-]{36}$/, uuid) } }), 404, 'ResourceNotFoundException', /Profile/);
    refused(t, await callCreateSession(env.url, identity, { arns: { ...arns, roleArn: 'arn:aws:iam::123456789012:role/other' } }), 403, 'AccessDeniedException', /not one of the profile's roles/);
  });

  t.test('missing or malformed X.509 headers', async (t) => {
    refused(t, await callCreateSession(env.url, identity, { arns, mutate: (h) => delete h['X-Amz-X509'] }), 403, 'AccessDeniedException', /X-Amz-X509/);
    refused(t, await callCreateSession(env.url, identity, { arns, mutate: (h) => (h['X-Amz-X509'] = 'AAAA') }), 403, 'AccessDeniedException', /not a base64-encoded DER/);
    refused(t, await callCreateSession(env.url, identity, { arns, mutate: (h) => delete h.Authorization }), 403, 'AccessDeniedException', /Authorization/);
  });

  t.test('stats count every refusal by type', async (t) => {
    const s = env.emulator.stats.createSession;
    t.ok(s.total > 10);
    t.equal(s.total, s.ok + Object.values(s.errors).reduce((a, b) => a + b, 0), 'total = ok + errors');
    t.ok((s.errors.AccessDeniedException ?? 0) > 5);
    t.ok((s.errors.ValidationException ?? 0) >= 5);
    t.equal(s.errors.ResourceNotFoundException, 2);
  });
});
