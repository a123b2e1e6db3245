// The STS AssumeRole client: its XML reading (targeted, size-capped) and the
// chain against the emulator (hop order, earliest expiry, retries, refusals
// naming the hop).
import t from 'tap';
import { createServer } from 'node:http';
import { createSession } from '../../src/rolesanywhere/client.js';
import { AssumeRoleError, assumeRoleChain, parseAssumeRoleResponse, parseStsError, xmlText } from '../../src/rolesanywhere/sts.js';
import { RolesAnywhereError } from '../../src/rolesanywhere/errors.js';
import { startTestEmulator } from '../helpers/emulator.js';

const DEPLOY = 'arn:aws:iam::210987654321:role/Deploy';
const AUDIT = 'arn:aws:iam::345678901234:role/Audit';

const answer = (exp: string, extra = '') =>
  `<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleResult>${extra}<AssumedRoleUser><AssumedRoleId>AROAX:s</AssumedRoleId><Arn>arn:aws:sts::210987654321:assumed-role/Deploy/s</Arn></AssumedRoleUser>` +
  `<Credentials><AccessKeyId>ASIAABCDEFGHIJKLMNOP</AccessKeyId><SecretAccessKey>a+b/c&amp;d</SecretAccessKey><SessionToken>tok&#x3D;&#61;</SessionToken><Expiration>${exp}</Expiration></Credentials></AssumeRoleResult></AssumeRoleResponse>`;

t.test('parseAssumeRoleResponse reads the credentials and decodes entities', async (t) => {
  const exp = new Date(Date.now() + 3600_000).toISOString().replace(/\.\d+Z$/, 'Z');
  const c = parseAssumeRoleResponse(answer(exp), DEPLOY);
  t.equal(c.accessKeyId, 'ASIAABCDEFGHIJKLMNOP');
  t.equal(c.secretAccessKey, 'a+b/c&d');
  t.equal(c.sessionToken, 'tok==');
  t.equal(c.expiration.toISOString().replace(/\.\d+Z$/, 'Z'), exp);
  t.equal(c.roleArn, DEPLOY);
  t.equal(c.accountId, '210987654321');
  t.equal(c.assumedRoleArn, 'arn:aws:sts::210987654321:assumed-role/Deploy/s');
  t.throws(() => parseAssumeRoleResponse('<html>nope</html>', DEPLOY), { reason: 'malformed_response', message: /no AssumeRoleResult/ });
  t.throws(() => parseAssumeRoleResponse(answer(exp).replace(/<SessionToken>.*<\/SessionToken>/, ''), DEPLOY), { message: /Credentials.SessionToken is missing/ });
  t.throws(() => parseAssumeRoleResponse(answer('tomorrow'), DEPLOY), { message: /not an ISO-8601 time/ });
  t.throws(() => parseAssumeRoleResponse(answer('2001-01-01T00:00:00Z'), DEPLOY), { message: /not in the future: check the system clock/ });
  t.equal(xmlText('<A><B>x</B></A>', 'A'), undefined, 'an element holding markup is not text');
  t.same(parseStsError('<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>no &amp; no</Message></Error></ErrorResponse>'), { code: 'AccessDenied', message: 'no & no' });
  t.same(parseStsError('{"__type":"com.amazonaws.sts#ExpiredTokenException","message":"old"}'), { code: 'ExpiredTokenException', message: 'old' });
});

t.test('a chain against the emulator: order, earliest expiry, refusals and outages name the hop', async (t) => {
  const env = await startTestEmulator(t, { assumableRoles: [{ roleArn: DEPLOY, externalId: 'ext-7' }, { roleArn: AUDIT }] });
  const identity = await env.loadIdentity();
  const base = await createSession(identity, { ...env.arns }, { endpoint: env.url, maxAttempts: 1 });
  const sts = { region: 'us-east-1', stsEndpoint: env.url, maxAttempts: 2, baseDelayMs: 1, maxDelayMs: 2 };
  env.emulator.setCredentialLifetime(1200);
  const c = await assumeRoleChain(base, [{ roleArn: DEPLOY, externalId: 'ext-7', durationSeconds: 900 }, { roleArn: AUDIT }], identity.serialDecimal, sts);
  t.equal(c.roleArn, AUDIT);
  t.equal(c.accountId, '345678901234');
  t.same(c.chain!.map((h) => h.roleArn), [DEPLOY, AUDIT]);
  const deploy = env.emulator.issued.find((i) => i.roleArn === DEPLOY)!;
  t.equal(c.expiration.getTime(), deploy.expiration.getTime(), 'expiry: the earliest of the chain (the 900 s hop)');
  t.equal(env.emulator.issued.find((i) => i.roleArn === AUDIT)!.roleSessionName, identity.serialDecimal);

  const refused = await assumeRoleChain(base, [{ roleArn: DEPLOY, externalId: 'ext-7' }, { roleArn: 'arn:aws:iam::111111111111:role/Nope' }], 'sess', sts).catch((e: unknown) => e);
  t.ok(refused instanceof AssumeRoleError, 'an AssumeRoleError');
  const r = refused as AssumeRoleError;
  t.equal(r.hop, 1);
  t.equal(r.reason, 'access_denied');
  t.equal(r.retryable, false);
  t.same(r.completed.map((h) => h.roleArn), [DEPLOY], 'the hops before it');
  t.match(r.message, /^assumeRole\[1\] arn:aws:iam::111111111111:role\/Nope: STS refused AssumeRole \(AccessDenied: User: arn:aws:sts::210987654321:assumed-role\/Deploy\/sess is not authorized/);

  env.emulator.setFaults([{ kind: 'status', status: 503, operation: 'AssumeRole', times: 1 }]);
  const retried = await assumeRoleChain(base, [{ roleArn: AUDIT }], 'sess', sts);
  t.equal(retried.roleArn, AUDIT, 'one 503 is retried within the attempt');
  env.emulator.setFaults([{ kind: 'status', status: 503, operation: 'AssumeRole', times: 5 }]);
  const outage = (await assumeRoleChain(base, [{ roleArn: AUDIT }], 'sess', sts).catch((e: unknown) => e)) as AssumeRoleError;
  t.equal(outage.reason, 'server_error');
  t.equal(outage.retryable, true, 'the session retries it with its backoff');
  t.match(outage.message, /^assumeRole\[0\] .*gave up after 2 attempts/);
  env.emulator.clearFaults();

  const dead = await assumeRoleChain(base, [{ roleArn: AUDIT }], 'sess', { ...sts, stsEndpoint: 'http://127.0.0.1:1' }).catch((e: unknown) => e);
  t.ok(dead instanceof AssumeRoleError && dead.reason === 'network' && /cannot reach STS at http:\/\/127\.0\.0\.1:1/.test(dead.message), 'a network failure names STS and the hop');
});

t.test('an oversized STS answer is cut off, not read', async (t) => {
  const server = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/xml' });
    res.end(answer('2999-01-01T00:00:00Z', `<Pad>${'x'.repeat(70 * 1024)}</Pad>`));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => server.close());
  const port = (server.address() as { port: number }).port;
  const base = { accessKeyId: 'ASIAABCDEFGHIJKLMNOP', secretAccessKey: 's', sessionToken: 't', expiration: new Date(Date.now() + 3600_000), roleArn: DEPLOY };
  const err = await assumeRoleChain(base, [{ roleArn: AUDIT }], 'sess', { region: 'us-east-1', stsEndpoint: `http://127.0.0.1:${port}`, maxAttempts: 1 }).catch((e: unknown) => e);
  t.ok(err instanceof RolesAnywhereError, 'refused');
  t.match((err as Error).message, /larger than 65536 bytes/);
});
