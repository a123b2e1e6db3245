// Local clock skew: when this host's clock runs behind the service's, the
// daemon must not serve credentials the service already considers expired.
// The skew comes from CreateSession's Date header; expiry margins and the
// refresh schedule are computed on the service's clock; the skew is logged and
// exposed as rolesanywhere_clock_skew_seconds.
import { createServer } from 'node:http';
import { Writable } from 'node:stream';
import t from 'tap';
import { CredentialSession, type FetchCredentials } from '../../src/credentials/session.js';
import { loadIdentity } from '../../src/identity/load.js';
import { createLogger } from '../../src/log.js';
import { clockOffsetFromDate, createSession } from '../../src/rolesanywhere/client.js';
import { renderMetrics, RequestMetrics } from '../../src/server/metrics.js';
import { makeCA, makeLeaf, tempDir } from '../helpers/pki.js';

t.test('the offset from a Date header: exact to its precision, 0 within it', async (t) => {
  const at = Date.UTC(2030, 0, 1, 12, 0, 0);
  t.equal(clockOffsetFromDate(new Date(at).toUTCString(), at, at + 100), 0, 'same clock');
  t.equal(clockOffsetFromDate(new Date(at + 600_000).toUTCString(), at, at + 100), 600_450, 'service 10 min ahead');
  t.equal(clockOffsetFromDate(new Date(at - 30_000).toUTCString(), at, at), -29_500, 'service 30 s behind');
  t.equal(clockOffsetFromDate(undefined, at, at), undefined);
  t.equal(clockOffsetFromDate('yesterday-ish', at, at), undefined);
});

t.test('createSession reports the skew of a service whose Date is 3 minutes ahead', async (t) => {
  const dir = await tempDir();
  const ca = await makeCA(dir);
  const leaf = await makeLeaf(dir, ca, 'skew');
  const identity = await loadIdentity({ certificate: leaf.certPath, privateKey: leaf.keyPath });
  const server = createServer((_req, res) => {
    const serviceNow = Date.now() + 180_000;
    res.writeHead(201, { 'content-type': 'application/json', date: new Date(serviceNow).toUTCString() });
    res.end(JSON.stringify({ credentialSet: [{ credentials: { accessKeyId: 'ASIASKEWSKEWSKEW', secretAccessKey: 's', sessionToken: 't', expiration: new Date(serviceNow + 900_000).toISOString() }, roleArn: 'arn:aws:iam::123456789012:role/r' }] }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => server.close());
  const port = (server.address() as { port: number }).port;
  const creds = await createSession(
    identity,
    { trustAnchorArn: 'arn:aws:rolesanywhere:us-east-1:123456789012:trust-anchor/a', profileArn: 'arn:aws:rolesanywhere:us-east-1:123456789012:profile/b', roleArn: 'arn:aws:iam::123456789012:role/r' },
    { region: 'us-east-1', endpoint: `http://127.0.0.1:${port}`, maxAttempts: 1 },
  );
  t.ok(Math.abs(creds.clockOffsetMs! - 180_000) < 2_500, `offset ${creds.clockOffsetMs} ms ≈ 3 min`);
});

t.test('a host clock 10 min behind: credentials stop being served when the service says they expire', async (t) => {
  const dir = await tempDir();
  const ca = await makeCA(dir);
  const leaf = await makeLeaf(dir, ca, 'skew-session');
  const identity = await loadIdentity({ certificate: leaf.certPath, privateKey: leaf.keyPath });
  let local = Date.UTC(2030, 0, 1, 12, 0, 0);
  const offset = 600_000; // service = local + 10 min
  const fetch: FetchCredentials = async () => ({
    accessKeyId: 'ASIASKEW',
    secretAccessKey: 's',
    sessionToken: 't',
    expiration: new Date(local + offset + 15 * 60_000), // 15 minutes, on the service's clock
    roleArn: 'arn:aws:iam::123456789012:role/r',
    clockOffsetMs: offset,
  });
  let logged = '';
  const logger = await createLogger({ level: 'info', destination: new Writable({ write: (c, _e, cb) => ((logged += String(c)), cb()) }) });
  const s = new CredentialSession({ profile: 'skew', identity, fetchCredentials: fetch, now: () => local, logger });
  t.teardown(() => s.stop());
  s.start();
  await s.waitFor((x) => x.status().ready, 5000);
  t.ok(s.lookup().ok, 'served at first');
  local += 13 * 60_000;
  t.ok(s.lookup().ok, '13 minutes in: still valid (the service expires them at 15)');
  local += 90_000; // 14.5 min: within the 60 s margin of the service's expiry
  t.notOk(s.lookup().ok, '14.5 minutes in: no longer served (by the host clock alone they would look valid for 10 more minutes)');
  t.equal(s.status().clockOffsetMs, offset);
  t.match(logged, /clock_skew.*600 s behind the Roles Anywhere service/, 'logged');
  t.match(renderMetrics([s.status()], new RequestMetrics()), /rolesanywhere_clock_skew_seconds\{profile="skew"\} 600/, 'metric');
});
