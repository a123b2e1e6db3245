import t from 'tap';
import net from 'node:net';
import { loadIdentity } from '../../src/identity/load.js';
import { createSession, type ClientOptions } from '../../src/rolesanywhere/client.js';
import { RolesAnywhereError } from '../../src/rolesanywhere/errors.js';
import type { SessionParameters } from '../../src/rolesanywhere/types.js';
import { UserError } from '../../src/errors.js';
import {
  PROFILE_ARN,
  ROLE_ARN,
  TA_ARN,
  errorBody,
  fakeCredentials,
  makeServerCert,
  startConnectProxy,
  startFakeHttpsServer,
  startFakeServer,
} from '../helpers/fake-rolesanywhere.js';
import { makeCA, makeLeaf, tempDir } from '../helpers/pki.js';
import { rejection as rejectionOf, sha } from '../helpers/assert.js';

const dir = await tempDir('ra-client-');
const ca = await makeCA(dir, 'Client Test CA');
const leaf = await makeLeaf(dir, ca, 'client-test', { keyType: 'p256' });
const identity = await loadIdentity({ certificate: leaf.certPath, privateKey: leaf.keyPath });
const serverCa = await makeCA(dir, 'Fake Endpoint CA');
const PROXIED_HOST = 'rolesanywhere.proxy-test.invalid';
const serverCert = await makeServerCert(dir, serverCa, ['127.0.0.1', PROXIED_HOST]);

const params: SessionParameters = { trustAnchorArn: TA_ARN, profileArn: PROFILE_ARN, roleArn: ROLE_ARN, durationSeconds: 900 };
const fast: ClientOptions = { baseDelayMs: 1, maxDelayMs: 5, maxAttempts: 4, env: {} };

const rejection = (p: Promise<unknown>) => rejectionOf<RolesAnywhereError>(p);

t.test('success: request shape, response mapping', async (t) => {
  const answer = fakeCredentials();
  const server = await startFakeServer(t, [{ status: 201, body: answer }]);
  const creds = await createSession(identity, { ...params, roleSessionName: 'my-session' }, { ...fast, endpoint: server.url });
  t.equal(server.requests.length, 1);
  const req = server.requests[0]!;
  t.equal(req.method, 'POST');
  t.equal(req.url, '/sessions');
  t.equal(req.headers['content-type'], 'application/json');
  t.equal(req.headers.host, `127.0.0.1:${server.port}`);
  t.match(req.headers['x-amz-date'], /^\d{8}T\d{6}Z$/);
  t.equal(req.headers['x-amz-x509'], identity.certificateDer.toString('base64'));
  t.notOk(req.headers['x-amz-x509-chain'], 'no chain header without intermediates');
  t.match(req.headers.authorization, new RegExp(`^AWS4-X509-ECDSA-SHA256 Credential=${identity.serialDecimal}/\\d{8}/us-east-1/rolesanywhere/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-x509, Signature=[0-9a-f]+$`));
  t.match(req.headers['user-agent'], /^rolesanywhere-credentiald\//);
  t.same(JSON.parse(req.body), { durationSeconds: 900, profileArn: PROFILE_ARN, roleArn: ROLE_ARN, trustAnchorArn: TA_ARN, roleSessionName: 'my-session' });
  const c = answer.credentialSet[0]!;
  t.ok(creds.accessKeyId === c.credentials.accessKeyId, 'access key id from the answer');
  t.ok(sha(creds.secretAccessKey) === sha(c.credentials.secretAccessKey), 'secret from the answer');
  t.ok(sha(creds.sessionToken) === sha(c.credentials.sessionToken), 'token from the answer');
  t.equal(creds.expiration.toISOString(), c.credentials.expiration);
  t.equal(creds.roleArn, ROLE_ARN);
  t.equal(creds.accountId, '123456789012');
  t.equal(creds.assumedRoleArn, c.assumedRoleUser.arn);
});

t.test('default duration is 3600 and any 2xx is accepted', async (t) => {
  const server = await startFakeServer(t, [{ status: 200, body: fakeCredentials() }]);
  const { durationSeconds: _d, ...rest } = params;
  await createSession(identity, rest, { ...fast, endpoint: server.url });
  t.equal(JSON.parse(server.requests[0]!.body).durationSeconds, 3600);
  t.notOk('roleSessionName' in JSON.parse(server.requests[0]!.body));
});

t.test('retries 500, 503, 429 and a dropped connection, signing each attempt afresh', async (t) => {
  const server = await startFakeServer(t, [
    { status: 500, body: { message: 'internal' } },
    { status: 503, body: 'Service Unavailable' },
    { status: 429, body: { message: 'Rate exceeded' }, headers: { 'x-amzn-errortype': 'ThrottlingException' } },
    { drop: true },
    { status: 201, body: fakeCredentials() },
  ]);
  let clock = Date.now();
  const retries: string[] = [];
  const creds = await createSession(identity, params, {
    ...fast,
    maxAttempts: 5,
    endpoint: server.url,
    now: () => new Date((clock += 1000)),
    onRetry: (i) => retries.push(i.error.reason),
  });
  t.ok(creds.accessKeyId.startsWith('ASIA'));
  t.equal(server.requests.length, 5);
  t.same(retries, ['server_error', 'server_error', 'throttled', 'network']);
  const dates = new Set(server.requests.map((r) => r.headers['x-amz-date']));
  t.equal(dates.size, 5, 'every attempt has its own X-Amz-Date');
  const sigs = new Set(server.requests.map((r) => r.headers.authorization));
  t.equal(sigs.size, 5, 'every attempt is signed afresh');
});

t.test('gives up after maxAttempts on persistent 5xx', async (t) => {
  const server = await startFakeServer(t, [{ status: 502, body: '<html>bad gateway</html>', headers: { 'content-type': 'text/html' } }]);
  const err = await rejection(createSession(identity, params, { ...fast, maxAttempts: 3, endpoint: server.url }));
  t.equal(server.requests.length, 3);
  t.ok(err instanceof RolesAnywhereError);
  t.equal(err.reason, 'server_error');
  t.equal(err.status, 502);
  t.equal(err.retryable, true);
  t.match(err.message, /service fault.*HTTP 502 Bad Gateway.*gave up after 3 attempts/);
  t.notMatch(err.message, /html/);
});

t.test('no retry on 403 AccessDenied or 400 Validation', async (t) => {
  for (const [script, reason, type, status] of [
    [errorBody('AccessDeniedException', 'Untrusted signing certificate'), 'access_denied', 'AccessDeniedException', 403],
    [errorBody('ValidationException', 'durationSeconds must be less than or equal to 3600'), 'validation', 'ValidationException', 400],
  ] as const) {
    const server = await startFakeServer(t, [script, { status: 201, body: fakeCredentials() }]);
    const err = await rejection(createSession(identity, params, { ...fast, endpoint: server.url }));
    t.equal(server.requests.length, 1, `${type}: exactly one request`);
    t.ok(err instanceof RolesAnywhereError && err instanceof UserError);
    t.equal(err.reason, reason);
    t.equal(err.type, type);
    t.equal(err.status, status);
    t.equal(err.retryable, false);
  }
});

t.test('error messages for each service error', async (t) => {
  const cases: [string, ReturnType<typeof errorBody> | { status: number; body: object }, RegExp, string][] = [
    ['untrusted', errorBody('AccessDeniedException', 'Untrusted signing certificate'), /refused the certificate \(AccessDeniedException: Untrusted signing certificate\): the certificate must chain to the trust anchor's CA — its issuer is CN=Client Test CA.*--intermediates/, 'access_denied'],
    ['signature', errorBody('AccessDeniedException', 'Invalid signature'), /could not verify the request signature \(AccessDeniedException: Invalid signature\): check that --private-key is the key of --certificate/, 'access_denied'],
    ['clock', errorBody('AccessDeniedException', 'Signature expired: request time is more than 5 minutes from the server time'), /request time.*check the system clock/, 'access_denied'],
    ['expired cert', errorBody('AccessDeniedException', 'Certificate expired'), /outside its validity period.*renew the certificate/, 'access_denied'],
    ['role', errorBody('AccessDeniedException', 'Role is not allowed by the profile'), new RegExp(`would not issue credentials for the role.*${ROLE_ARN.replace(/\//g, '\\/')} is listed in the profile`), 'access_denied'],
    ['not found', errorBody('ResourceNotFoundException', 'Trust anchor not found'), new RegExp(`could not find a resource in us-east-1 \\(ResourceNotFoundException: Trust anchor not found\\): check that the trust anchor ${TA_ARN}`), 'not_found'],
    ['not found profile', errorBody('ResourceNotFoundException', 'Profile not found'), /check that the profile arn:aws:rolesanywhere/, 'not_found'],
    ['validation', errorBody('ValidationException', 'durationSeconds exceeds the profile maximum'), /invalid \(ValidationException: .*\): check --session-duration/, 'validation'],
    ['__type in body', { status: 400, body: { __type: 'com.amazonaws.rolesanywhere#ValidationException', message: 'bad roleSessionName' } }, /ValidationException: bad roleSessionName.*--role-session-name/, 'validation'],
  ];
  for (const [name, script, re, reason] of cases) {
    const server = await startFakeServer(t, [script]);
    const err = await rejection(createSession(identity, params, { ...fast, maxAttempts: 1, endpoint: server.url }));
    t.match(err.message, re, name);
    t.equal(err.reason, reason, `${name}: reason`);
    t.notMatch(err.message, /\n/, `${name}: one line`);
  }
});

t.test('timeout: an endpoint that never answers', async (t) => {
  const server = await startFakeServer(t, [{ hang: true }]);
  const err = await rejection(createSession(identity, params, { ...fast, maxAttempts: 2, timeoutMs: 300, endpoint: server.url }));
  t.equal(server.requests.length, 2, 'retried once');
  t.equal(err.reason, 'timeout');
  t.equal(err.retryable, true);
  t.match(err.message, /did not answer in time \(no complete answer within 300 ms\)/);
});

t.test('connection refused is a retried network error', async (t) => {
  // A port nothing listens on: take one and release it.
  const probe = net.createServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', () => r()));
  const freePort = (probe.address() as net.AddressInfo).port;
  await new Promise<void>((r) => probe.close(() => r()));
  const retries: string[] = [];
  const err = await rejection(
    createSession(identity, params, { ...fast, maxAttempts: 2, endpoint: `http://127.0.0.1:${freePort}`, onRetry: (i) => retries.push(i.error.reason) }),
  );
  t.equal(err.reason, 'network');
  t.match(err.message, /cannot reach Roles Anywhere at http:\/\/127\.0\.0\.1:\d+ \(ECONNREFUSED: connection refused\).*gave up after 2 attempts/);
  t.same(retries, ['network']);
});

t.test('abort: during a request and during backoff', async (t) => {
  const server = await startFakeServer(t, [{ hang: true }]);
  const ac = new AbortController();
  const p = rejection(createSession(identity, params, { ...fast, endpoint: server.url }, ac.signal));
  await server.waitForRequests(1);
  ac.abort();
  const err = await p;
  t.equal((err as Error).name, 'AbortError');
  t.equal(server.requests.length, 1);

  const server2 = await startFakeServer(t, [{ status: 500 }]);
  const ac2 = new AbortController();
  const p2 = rejection(createSession(identity, params, { ...fast, baseDelayMs: 60_000, maxDelayMs: 60_000, random: () => 0.99, endpoint: server2.url, onRetry: () => ac2.abort() }, ac2.signal));
  const err2 = await p2;
  t.equal((err2 as Error).name, 'AbortError');
  t.equal(server2.requests.length, 1, 'no further attempt after abort in backoff');

  const ac3 = new AbortController();
  ac3.abort();
  const err3 = await rejection(createSession(identity, params, { ...fast, endpoint: server2.url }, ac3.signal));
  t.equal((err3 as Error).name, 'AbortError', 'already-aborted signal');
  t.equal(server2.requests.length, 1);
});

t.test('malformed 2xx answers are retried, then reported', async (t) => {
  const bodies: (string | object)[] = [
    'not json',
    { credentialSet: [] },
    { credentialSet: [{ credentials: { accessKeyId: 'ASIAEXAMPLEEXAMPLE', secretAccessKey: 's', expiration: new Date(Date.now() + 3600e3).toISOString() } }] },
    { credentialSet: [{ credentials: { accessKeyId: 'ASIAEXAMPLEEXAMPLE', secretAccessKey: 's', sessionToken: 't', expiration: 'tomorrow' } }] },
    {},
  ];
  const expected = [/not JSON/, /credentialSet is empty/, /credentials\.sessionToken is missing/, /expiration "tomorrow" is not an ISO-8601 time/, /no credentialSet/];
  for (const [i, body] of bodies.entries()) {
    const server = await startFakeServer(t, [{ status: 201, body }]);
    const err = await rejection(createSession(identity, params, { ...fast, maxAttempts: 2, endpoint: server.url }));
    t.equal(server.requests.length, 2, 'retried');
    t.equal(err.reason, 'malformed_response');
    t.match(err.message, expected[i]!);
  }
  const server = await startFakeServer(t, [{ status: 201, body: 'garbage' }, { status: 201, body: fakeCredentials() }]);
  const creds = await createSession(identity, params, { ...fast, endpoint: server.url });
  t.ok(creds.accessKeyId, 'a good answer after a malformed one');

  const expired = fakeCredentials();
  expired.credentialSet[0]!.credentials.expiration = new Date(Date.now() - 60_000).toISOString();
  const server2 = await startFakeServer(t, [{ status: 201, body: expired }]);
  const err = await rejection(createSession(identity, params, { ...fast, endpoint: server2.url }));
  t.equal(server2.requests.length, 1, 'already-expired credentials are not retried');
  t.match(err.message, /not in the future: check the system clock/);
});

t.test('TLS: works with --ca-bundle, fails clearly without, --no-verify-ssl skips', async (t) => {
  const server = await startFakeHttpsServer(t, [{ status: 201, body: fakeCredentials() }], serverCert);
  const ok = await createSession(identity, params, { ...fast, endpoint: server.url, caBundle: serverCa.certPath });
  t.ok(ok.accessKeyId);

  const err = await rejection(createSession(identity, params, { ...fast, endpoint: server.url }));
  t.equal(err.reason, 'tls');
  t.equal(err.retryable, false);
  t.match(err.message, /^TLS verification of https:\/\/127\.0\.0\.1:\d+ failed \((UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT_LOCALLY)[^)]*\): .*--ca-bundle FILE/);
  t.equal(server.requests.length, 1, 'the unverified attempt never sent a request');

  const skipped = await createSession(identity, params, { ...fast, endpoint: server.url, noVerifySsl: true });
  t.ok(skipped.accessKeyId);
  t.equal(server.requests.length, 2);

  const otherCa = await makeCA(dir, 'Unrelated CA');
  const err2 = await rejection(createSession(identity, params, { ...fast, endpoint: server.url, caBundle: otherCa.certPath }));
  t.equal(err2.reason, 'tls', 'a bundle without the right CA still fails');

  const err3 = await rejection(createSession(identity, params, { ...fast, endpoint: server.url, caBundle: `${dir}/missing.pem` }));
  t.ok(err3 instanceof UserError);
  t.match(err3.message, /^--ca-bundle .*missing\.pem: CA certificate file not found; check the path; give the path of a PEM file of CA certificates$/);
  const err4 = await rejection(createSession(identity, params, { ...fast, endpoint: server.url, caBundle: '/dev/zero' }));
  t.match(err4.message, /^--ca-bundle \/dev\/zero: CA certificate file is more than the 4194304 bytes a CA certificate file can be/, 'read only up to the cap');
});

t.test('proxy: HTTPS_PROXY is used, NO_PROXY and withProxy=false bypass it, refusals are explained', async (t) => {
  const server = await startFakeHttpsServer(t, [{ status: 201, body: fakeCredentials() }], serverCert, PROXIED_HOST);
  const proxy = await startConnectProxy(t);
  const base: ClientOptions = { ...fast, endpoint: server.url, caBundle: serverCa.certPath };

  const creds = await createSession(identity, params, { ...base, env: { HTTPS_PROXY: proxy.url } });
  t.ok(creds.accessKeyId, 'credentials through the proxy');
  t.same(proxy.connects, [`${PROXIED_HOST}:${server.port}`], 'the proxy tunnelled to the endpoint');
  t.equal(server.requests[0]!.headers.host, `${PROXIED_HOST}:${server.port}`);

  const lower = await createSession(identity, params, { ...base, env: { https_proxy: proxy.url.replace('http://', '') } });
  t.ok(lower.accessKeyId, 'https_proxy and a scheme-less value work');
  t.equal(proxy.connects.length, 2);

  for (const noProxy of [PROXIED_HOST, '.proxy-test.invalid', 'example.com, proxy-test.invalid', '*']) {
    const err = await rejection(createSession(identity, params, { ...base, maxAttempts: 1, env: { HTTPS_PROXY: proxy.url, NO_PROXY: noProxy } }));
    t.equal(err.reason, 'dns', `NO_PROXY=${noProxy}: direct connection attempted`);
    t.match(err.message, new RegExp(`cannot resolve ${PROXIED_HOST.replace(/\./g, '\\.')}`));
  }
  const direct = await rejection(createSession(identity, params, { ...base, maxAttempts: 1, withProxy: false, env: { HTTPS_PROXY: proxy.url } }));
  t.equal(direct.reason, 'dns', 'withProxy=false connects directly');
  t.equal(proxy.connects.length, 2, 'the proxy saw none of the bypassed attempts');

  proxy.refuseWith = 407;
  const err = await rejection(createSession(identity, params, { ...base, env: { HTTPS_PROXY: `http://user:hunter2@127.0.0.1:${proxy.port}` } }));
  t.equal(err.reason, 'proxy');
  t.match(err.message, /proxy http:\/\/127\.0\.0\.1:\d+ refused to connect to Roles Anywhere \(407 Proxy Authentication Required\): the proxy needs authentication/);
  t.notMatch(err.message, /hunter2/, 'proxy password not shown');
  t.equal(server.requests.length, 2, 'nothing reached the endpoint through a refusing proxy');

  const bad = await rejection(createSession(identity, params, { ...base, env: { HTTPS_PROXY: 'socks5://127.0.0.1:1080' } }));
  t.ok(bad instanceof UserError);
  t.match(bad.message, /HTTPS_PROXY uses socks5:\/\/ proxies, which are not supported/);
});

t.test('loopback endpoints are never proxied', async (t) => {
  const server = await startFakeServer(t, [{ status: 201, body: fakeCredentials() }]);
  const proxy = await startConnectProxy(t);
  await createSession(identity, params, { ...fast, endpoint: server.url, env: { HTTPS_PROXY: proxy.url } });
  t.equal(proxy.connects.length, 0);
});

t.test('refused before any request: plain http to a non-loopback host, region mismatches, bad ARNs', async (t) => {
  const server = await startFakeServer(t, [{ status: 201, body: fakeCredentials() }]);
  const insecure = await rejection(createSession(identity, params, { ...fast, endpoint: 'http://rolesanywhere.example.com' }));
  t.ok(insecure instanceof UserError);
  t.match(insecure.message, /plain http to a host that is not loopback.*use https:\/\//);

  const mismatch = await rejection(
    createSession(identity, { ...params, profileArn: PROFILE_ARN.replace('us-east-1', 'eu-west-1') }, { ...fast, endpoint: server.url }),
  );
  t.match(mismatch.message, /trust anchor is in us-east-1 but the profile is in eu-west-1/);
  t.equal(mismatch.reason, 'region_mismatch');

  const regionFlag = await rejection(createSession(identity, params, { ...fast, region: 'eu-west-1', endpoint: server.url }));
  t.match(regionFlag.message, /--region eu-west-1 differs from the trust anchor's region us-east-1/);

  const badRole = await rejection(createSession(identity, { ...params, roleArn: PROFILE_ARN }, { ...fast, endpoint: server.url }));
  t.match(badRole.message, /--role-arn .* is not an IAM role ARN \(this is a Roles Anywhere ARN — did you swap the role and profile flags\?\)/);

  const badDuration = await rejection(createSession(identity, { ...params, durationSeconds: 60 }, { ...fast, endpoint: server.url }));
  t.match(badDuration.message, /--session-duration 60 is out of range/);
  t.equal(server.requests.length, 0, 'no request was sent');
});

t.test('connect timeout: a TLS handshake that never completes', async (t) => {
  const sockets = new Set<net.Socket>();
  const silent = net.createServer((s) => {
    sockets.add(s);
    s.on('error', () => undefined);
  });
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', () => r()));
  t.teardown(() => new Promise<void>((r) => {
    for (const s of sockets) s.destroy();
    silent.close(() => r());
  }));
  const port = (silent.address() as net.AddressInfo).port;
  const err = await rejection(createSession(identity, params, { ...fast, maxAttempts: 2, connectTimeoutMs: 200, timeoutMs: 30_000, endpoint: `https://127.0.0.1:${port}` }));
  t.equal(err.reason, 'timeout');
  t.match(err.message, /did not answer in time \(no connection within 200 ms\).*gave up after 2 attempts/);
  t.equal(sockets.size, 2, 'two connection attempts');
});
