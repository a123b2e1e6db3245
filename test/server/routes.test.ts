import { readFile, stat } from 'node:fs/promises';
import t from 'tap';
import type { FetchCredentials } from '../../src/credentials/session.js';
import { loadIdentity } from '../../src/identity/load.js';
import type { AwsCredentials } from '../../src/rolesanywhere/types.js';
import { Daemon } from '../../src/server/daemon.js';
import { daemonConfig, httpRequest, profileFor, ROLE_ARN } from '../helpers/daemon.js';
import { makeCA, makeLeaf, tempDir } from '../helpers/pki.js';

let n = 0;
const issued: AwsCredentials[] = [];
const fetch: FetchCredentials = async () => {
  n++;
  const c: AwsCredentials = {
    accessKeyId: `ASIAROUTES${n}`,
    secretAccessKey: `routes-secret-${n}-${Math.random()}`,
    sessionToken: `routes-token-${n}-${Math.random()}`,
    expiration: new Date(Date.now() + 3600_000 + 123),
    roleArn: ROLE_ARN,
  };
  issued.push(c);
  return c;
};

t.test('container, IMDSv2, health and metrics routes', async (t) => {
  const dir = await tempDir();
  const ca = await makeCA(dir);
  const leaf = await makeLeaf(dir, ca, 'routes');
  let failOther = true;
  const config = daemonConfig(dir, [profileFor('main', leaf), profileFor('other', leaf, { roleArn: 'arn:aws:iam::123456789012:role/other' })], {
    imds: { enabled: true, profile: 'main', allowV1: false },
  });
  const daemon = await Daemon.start(config, {
    fetchFactory: (p) => (p.name === 'other' ? async () => {
      if (failOther) throw Object.assign(new Error('AccessDeniedException: Untrusted signing certificate'), { reason: 'access_denied' });
      return fetch(undefined as never, new AbortController().signal);
    } : fetch),
    loadIdentity: (_p, s) => loadIdentity(s),
  });
  t.teardown(() => daemon.close());
  const port = daemon.addresses[0]!.port;
  await daemon.session('main')!.waitFor((s) => s.status().ready, 10_000);
  await daemon.session('other')!.waitFor((s) => s.status().refreshAttempts >= 1 && s.status().lastRefreshOutcome === 'failure', 10_000);

  // Token file generated: 0600, no newline.
  const token = await readFile(config.tokenFile, 'utf8');
  t.ok(token.length >= 40 && !/\s/.test(token), 'token generated, no whitespace');
  t.equal((await stat(config.tokenFile)).mode & 0o777, 0o600);

  t.test('container endpoint', async (t) => {
    const ok = await httpRequest(port, 'GET', '/v1/credentials', { authorization: token });
    t.equal(ok.status, 200);
    t.match(ok.headers['content-type'], /^application\/json/);
    t.equal(ok.headers['cache-control'], 'no-store');
    const body = JSON.parse(ok.body);
    const c = issued[issued.length - 1]!;
    t.ok(body.AccessKeyId === c.accessKeyId && body.SecretAccessKey === c.secretAccessKey && body.Token === c.sessionToken, 'fields match the session');
    t.match(body.Expiration, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    t.equal(body.AccountId, '123456789012');
    t.equal(body.RoleArn, ROLE_ARN);
    const named = await httpRequest(port, 'GET', '/v1/credentials/main', { authorization: token });
    t.equal(named.status, 200);

    const missing = await httpRequest(port, 'GET', '/v1/credentials');
    t.equal(missing.status, 401);
    t.equal(JSON.parse(missing.body).Code, 'AccessDenied');
    const wrong = await httpRequest(port, 'GET', '/v1/credentials', { authorization: token + 'x' });
    t.equal(wrong.status, 401);
    t.notOk(wrong.body.includes(token), 'token not echoed');
    const unknown = await httpRequest(port, 'GET', '/v1/credentials/nope', { authorization: token });
    t.equal(unknown.status, 404);
    t.match(JSON.parse(unknown.body), { Code: 'NotFound' });
    const failing = await httpRequest(port, 'GET', '/v1/credentials/other', { authorization: token });
    t.equal(failing.status, 503);
    t.match(failing.headers['content-type'], /^application\/json/);
    t.match(JSON.parse(failing.body).Message, /Untrusted signing certificate/);
  });

  t.test('IMDSv2', async (t) => {
    const put = await httpRequest(port, 'PUT', '/latest/api/token', { 'x-aws-ec2-metadata-token-ttl-seconds': '60' });
    t.equal(put.status, 200);
    t.equal(put.headers['x-aws-ec2-metadata-token-ttl-seconds'], '60');
    const tok = put.body;
    const list = await httpRequest(port, 'GET', '/latest/meta-data/iam/security-credentials/', { 'x-aws-ec2-metadata-token': tok });
    t.equal(list.status, 200);
    t.equal(list.body, 'test-role', 'role name, no newline');
    t.match(list.headers['content-type'], /^text\/plain/);
    const cred = await httpRequest(port, 'GET', '/latest/meta-data/iam/security-credentials/test-role', { 'x-aws-ec2-metadata-token': tok });
    t.equal(cred.status, 200);
    const body = JSON.parse(cred.body);
    t.equal(body.Code, 'Success');
    t.equal(body.Type, 'AWS-HMAC');
    t.match(body.LastUpdated, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    t.match(body.Expiration, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    t.ok(typeof body.AccessKeyId === 'string' && typeof body.SecretAccessKey === 'string' && typeof body.Token === 'string');
    t.equal((await httpRequest(port, 'GET', '/latest/meta-data/iam/security-credentials/other-role', { 'x-aws-ec2-metadata-token': tok })).status, 404);
    t.equal((await httpRequest(port, 'GET', '/latest/meta-data/iam/security-credentials-extended/test-role', { 'x-aws-ec2-metadata-token': tok })).status, 404);
    const az = await httpRequest(port, 'GET', '/latest/meta-data/placement/availability-zone', { 'x-aws-ec2-metadata-token': tok });
    t.equal(az.body, 'us-east-1a');
    t.equal((await httpRequest(port, 'GET', '/latest/meta-data/placement/region', { 'x-aws-ec2-metadata-token': tok })).body, 'us-east-1');
    t.equal((await httpRequest(port, 'GET', '/latest/meta-data/ami-id', { 'x-aws-ec2-metadata-token': tok })).status, 404);

    // Bad requests.
    t.equal((await httpRequest(port, 'PUT', '/latest/api/token')).status, 400, 'missing TTL');
    for (const bad of ['0', '21601', 'abc', '-5', '1.5']) {
      t.equal((await httpRequest(port, 'PUT', '/latest/api/token', { 'x-aws-ec2-metadata-token-ttl-seconds': bad })).status, 400, `TTL ${bad}`);
    }
    t.equal((await httpRequest(port, 'PUT', '/latest/api/token', { 'x-aws-ec2-metadata-token-ttl-seconds': '21600' })).status, 200, 'TTL 21600');
    const xff = await httpRequest(port, 'PUT', '/latest/api/token', { 'x-aws-ec2-metadata-token-ttl-seconds': '60', 'x-forwarded-for': '10.0.0.1' });
    t.equal(xff.status, 403);
    t.equal((await httpRequest(port, 'GET', '/latest/meta-data/iam/security-credentials/')).status, 401, 'IMDSv1 refused');
    t.equal((await httpRequest(port, 'GET', '/latest/meta-data/iam/security-credentials/', { 'x-aws-ec2-metadata-token': 'bogus' })).status, 401, 'unknown token');
    // Expired token.
    const short = await httpRequest(port, 'PUT', '/latest/api/token', { 'x-aws-ec2-metadata-token-ttl-seconds': '1' });
    await new Promise((r) => setTimeout(r, 1100));
    t.equal((await httpRequest(port, 'GET', '/latest/meta-data/placement/region', { 'x-aws-ec2-metadata-token': short.body })).status, 401, 'expired token');
  });

  t.test('guards: Host, header size, unknown paths', async (t) => {
    const foreign = await httpRequest(port, 'GET', '/v1/credentials', { authorization: token, host: 'evil.example.com' });
    t.equal(foreign.status, 403);
    t.equal(JSON.parse(foreign.body).Code, 'AccessDenied');
    const foreignIp = await httpRequest(port, 'GET', '/healthz', { host: '192.168.1.10:80' });
    t.equal(foreignIp.status, 403);
    for (const host of ['localhost', `localhost:${port}`, '127.0.0.1', `127.1.2.3:${port}`, `[::1]:${port}`]) {
      t.equal((await httpRequest(port, 'GET', '/healthz', { host })).status, 200, `Host ${host} accepted`);
    }
    const big = await httpRequest(port, 'GET', '/v1/credentials', { authorization: token, 'x-big': 'a'.repeat(20_000) });
    t.equal(big.status, 431, 'oversized headers');
    t.equal((await httpRequest(port, 'GET', '/nope')).status, 404);
    t.equal((await httpRequest(port, 'POST', '/v1/credentials', { authorization: token })).status, 404);
    const after = await httpRequest(port, 'GET', '/v1/credentials', { authorization: token });
    t.equal(after.status, 200, 'still serving after bad requests');
  });

  t.test('health, readiness, metrics', async (t) => {
    const h = await httpRequest(port, 'GET', '/healthz');
    t.equal(h.status, 200);
    t.same(JSON.parse(h.body), { status: 'ok' });
    const r = await httpRequest(port, 'GET', '/readyz');
    t.equal(r.status, 503, 'one profile failing → not ready');
    const rb = JSON.parse(r.body);
    t.equal(rb.profiles.main.ready, true);
    t.equal(rb.profiles.other.ready, false);
    t.match(rb.profiles.other.reason, /Untrusted signing certificate/);
    const m = await httpRequest(port, 'GET', '/metrics');
    t.equal(m.status, 200);
    t.match(m.headers['content-type'], /^text\/plain; version=0\.0\.4/);
    t.match(m.body, /rolesanywhere_credentials_valid\{profile="main"\} 1/);
    t.match(m.body, /rolesanywhere_credentials_valid\{profile="other"\} 0/);
    t.match(m.body, /rolesanywhere_credentials_remaining_seconds\{profile="main"\} \d+/);
    t.match(m.body, /rolesanywhere_refresh_failures_total\{profile="other",reason="access_denied"\} \d+/);
    t.match(m.body, /rolesanywhere_certificate_not_after_timestamp_seconds\{profile="main"\} \d+/);
    t.match(m.body, /rolesanywhere_http_requests_total\{route="\/v1\/credentials",code="200"\} \d+/);
    t.match(m.body, /rolesanywhere_http_requests_total\{route="\/v1\/credentials",code="401"\} \d+/);
    t.match(m.body, /rolesanywhere_process_uptime_seconds \d+/);
    for (const c of issued) {
      t.notOk(m.body.includes(c.secretAccessKey) || m.body.includes(c.sessionToken), 'no secrets in metrics');
    }
    t.notOk(m.body.includes(token), 'no endpoint token in metrics');
    failOther = false;
    await daemon.session('other')!.refresh();
    t.equal((await httpRequest(port, 'GET', '/readyz')).status, 200, 'ready once every profile has credentials');
  });
});

t.test('address in use → clear error', async (t) => {
  const dir = await tempDir();
  const ca = await makeCA(dir);
  const leaf = await makeLeaf(dir, ca, 'inuse');
  const deps = { fetchFactory: () => fetch, loadIdentity: (_p: unknown, s: Parameters<typeof loadIdentity>[0]) => loadIdentity(s) };
  const first = await Daemon.start(daemonConfig(dir, [profileFor('default', leaf)]), deps);
  t.teardown(() => first.close());
  const port = first.addresses[0]!.port;
  await t.rejects(Daemon.start(daemonConfig(dir, [profileFor('default', leaf)], { listen: [{ host: '127.0.0.1', port }] }), deps), {
    message: new RegExp(`cannot listen on 127\\.0\\.0\\.1:${port}: the address is already in use`),
  });
});

t.test('token file rules', async (t) => {
  const { ensureEndpointToken } = await import('../../src/server/token.js');
  const { writeFile, chmod } = await import('node:fs/promises');
  const dir = await tempDir();
  const created = await ensureEndpointToken(`${dir}/sub/dir/token`);
  t.equal(created.created, true);
  t.equal((await stat(`${dir}/sub/dir/token`)).mode & 0o777, 0o600);
  const again = await ensureEndpointToken(`${dir}/sub/dir/token`);
  t.equal(again.created, false);
  t.ok(again.value === created.value, 'existing token reused');
  // `openssl rand -hex 16 > token`: one trailing newline is not part of the token (a warning says clients reading the file would send it).
  for (const end of ['\n', '\r\n']) {
    await writeFile(`${dir}/nl`, `abcdefghijklmnopqrstuvwxyz${end}`, { mode: 0o600 });
    const nl = await ensureEndpointToken(`${dir}/nl`);
    t.equal(nl.value, 'abcdefghijklmnopqrstuvwxyz', `one trailing ${JSON.stringify(end)} is not part of the token`);
    t.match(nl.warnings, [new RegExp(`ends with a line break.*truncate -s -${end.length} `)]);
  }
  await writeFile(`${dir}/nl2`, 'abcdefghijklmnopqrstuvwxyz\n\n');
  await t.rejects(ensureEndpointToken(`${dir}/nl2`), { message: /contains a line break/ });
  await writeFile(`${dir}/inner`, 'abcdefghijklm\nnopqrstuvwxyz');
  await t.rejects(ensureEndpointToken(`${dir}/inner`), { message: /contains a line break/ });
  await writeFile(`${dir}/empty`, '');
  await t.rejects(ensureEndpointToken(`${dir}/empty`), { message: /is empty/ });
  await writeFile(`${dir}/long`, 'a'.repeat(4097), { mode: 0o600 });
  await t.rejects(ensureEndpointToken(`${dir}/long`), { message: /token file .*long holds more than 4096 characters, too long for an HTTP header/ });
  await writeFile(`${dir}/max`, 'a'.repeat(4096), { mode: 0o600 });
  t.equal((await ensureEndpointToken(`${dir}/max`)).value.length, 4096, 'a 4096-character token is fine');
  await writeFile(`${dir}/huge`, 'a'.repeat(1024 * 1024), { mode: 0o600 });
  await t.rejects(ensureEndpointToken(`${dir}/huge`), { message: /holds more than 4096 characters/, reason: 'token_file' }, 'refused from its size, before reading it');
  await writeFile(`${dir}/open`, 'abcdefghijklmnopqrstuvwxyz');
  await chmod(`${dir}/open`, 0o644);
  t.match((await ensureEndpointToken(`${dir}/open`)).warnings, [/open to every local user \(mode 644\); run chmod o-rwx/]);
  t.notMatch((await ensureEndpointToken(`${dir}/open`)).warnings.join(), /chmod 600/, 'no advice to take the group away');
  await chmod(`${dir}/open`, 0o640);
  t.same((await ensureEndpointToken(`${dir}/open`)).warnings, [], 'a group-readable token (shared on purpose) is fine');
});

// Token files in directories other users may write (emptyDir, tmpfs), and directories of other users: test/server/token.test.ts.
