// The Host guard (DNS rebinding) also applies to an absolute-form request
// target: RFC 9112 §3.2.2 says a server uses the target's authority and ignores
// the Host header then, so `GET http://evil.example/v1/credentials` with a
// loopback Host must be refused like a request with `Host: evil.example`.
import { connect } from 'node:net';
import { readFile } from 'node:fs/promises';
import t from 'tap';
import { loadIdentity } from '../../src/identity/load.js';
import { Daemon } from '../../src/server/daemon.js';
import { daemonConfig, profileFor, ROLE_ARN } from '../helpers/daemon.js';
import { makeCA, makeLeaf, tempDir } from '../helpers/pki.js';

/** Sends one raw HTTP/1.1 request; returns the status code and body. */
function raw(port: number, head: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1');
    let data = '';
    s.setEncoding('utf8');
    s.on('data', (d: string) => (data += d));
    s.on('end', () => resolve({ status: Number(/^HTTP\/1\.1 (\d{3})/.exec(data)?.[1] ?? 0), body: data.split('\r\n\r\n').slice(1).join('\r\n\r\n') }));
    s.on('error', reject);
    s.write(`${head}\r\nconnection: close\r\n\r\n`);
  });
}

t.test('absolute-form targets: a foreign authority is refused on every route, a loopback one is served', async (t) => {
  const dir = await tempDir();
  const ca = await makeCA(dir);
  const leaf = await makeLeaf(dir, ca, 'host-guard');
  const config = daemonConfig(dir, [profileFor('main', leaf)], { imds: { enabled: true, profile: 'main', allowV1: false } });
  const daemon = await Daemon.start(config, {
    fetchFactory: () => async () => ({ accessKeyId: 'ASIAHOST', secretAccessKey: 's', sessionToken: 't', expiration: new Date(Date.now() + 3600_000), roleArn: ROLE_ARN }),
    loadIdentity: (_p, s) => loadIdentity(s),
  });
  t.teardown(() => daemon.close());
  const port = daemon.addresses[0]!.port;
  await daemon.session('main')!.waitFor((s) => s.status().ready, 10_000);
  const token = await readFile(config.tokenFile, 'utf8');
  const host = `host: 127.0.0.1:${port}`;

  for (const [what, head] of [
    ['container endpoint', `GET http://evil.example/v1/credentials HTTP/1.1\r\n${host}\r\nauthorization: ${token}`],
    ['named profile', `GET http://evil.example:${port}/v1/credentials/main HTTP/1.1\r\n${host}\r\nauthorization: ${token}`],
    ['IMDS token', `PUT http://evil.example/latest/api/token HTTP/1.1\r\n${host}\r\nx-aws-ec2-metadata-token-ttl-seconds: 60\r\ncontent-length: 0`],
    ['IMDS role', `GET http://evil.example/latest/meta-data/iam/security-credentials/ HTTP/1.1\r\n${host}`],
    ['metrics', `GET http://evil.example/metrics HTTP/1.1\r\n${host}`],
    ['userinfo trick', `GET http://127.0.0.1@evil.example/v1/credentials HTTP/1.1\r\n${host}\r\nauthorization: ${token}`],
  ]) {
    const r = await raw(port, head!);
    t.equal(r.status, 403, `${what}: 403`);
    t.notMatch(r.body, /ASIAHOST/, `${what}: no credentials`);
  }
  const ok = await raw(port, `GET http://127.0.0.1:${port}/v1/credentials HTTP/1.1\r\nhost: evil.example\r\nauthorization: ${token}`);
  t.equal(ok.status, 200, 'a loopback authority is served (the Host header is ignored, as RFC 9112 says)');
  t.match(ok.body, /ASIAHOST/);
});
