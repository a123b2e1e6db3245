// Errors fastify raises before routing (malformed percent-encoding, an
// over-long profile name) keep the container endpoint's error shape.
import t from 'tap';
import { buildApp } from '../../src/server/app.js';
import { closeAll, listenAll } from '../../src/server/listen.js';
import { TokenVerifier } from '../../src/server/token.js';
import { once } from 'node:events';
import { connect } from 'node:net';
import { httpRequest } from '../helpers/daemon.js';

t.test('router errors answer JSON {Code, Message}', async (t) => {
  const token = 'app-test-token-0123456789';
  const app = buildApp({
    getState: () => ({ profiles: new Map(), imds: { enabled: true, allowV1: false }, token: new TokenVerifier(token) }),
  });
  const bound = await listenAll(app, [{ host: '127.0.0.1', port: 0 }]);
  t.teardown(() => closeAll(bound, 0));
  const port = bound[0]!.port;
  for (const [path, status] of [
    ['/v1/credentials/%zz', 400],
    [`/v1/credentials/${'a'.repeat(300)}`, 414],
  ] as const) {
    const res = await httpRequest(port, 'GET', path, { authorization: token });
    t.equal(res.status, status, `${path.slice(0, 30)}: status`);
    t.match(res.headers['content-type'], /^application\/json/);
    const body = JSON.parse(res.body);
    t.same(Object.keys(body), ['Code', 'Message'], `${path.slice(0, 30)}: the endpoint's error shape`);
    t.type(body.Message, 'string');
  }
});

t.test('a client that stops reading its answers is disconnected; one that reads is not', async (t) => {
  const token = 'app-test-token-0123456789';
  const app = buildApp({
    getState: () => ({ profiles: new Map(), imds: { enabled: true, allowV1: false }, token: new TokenVerifier(token) }),
  });
  const stalledMs = 400;
  const bound = await listenAll(app, [{ host: '127.0.0.1', port: 0 }], undefined, undefined, stalledMs);
  t.teardown(() => closeAll(bound, 0));
  const { port, server } = bound[0]!;
  const connections = () => new Promise<number>((resolve, reject) => server.getConnections((err, n) => (err ? reject(err) : resolve(n))));
  const request = (path: string) => `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`;
  const answersIn = (text: string) => text.split('HTTP/1.1 200 OK').length - 1;

  // Thousands of pipelined /metrics requests whose answers are never read: more output
  // than the loopback socket buffers hold, so the server's writes back up.
  const pipelined = 20_000;
  const stalled = connect({ host: '127.0.0.1', port });
  stalled.on('error', () => undefined); // a reset: the server still had unread requests of ours when it closed
  stalled.pause();
  await once(stalled, 'connect');
  const started = Date.now();
  stalled.write(request('/metrics').repeat(pipelined));
  let ms = -1;
  while (Date.now() - started < 8_000) {
    if ((await connections()) === 0) {
      ms = Date.now() - started;
      break;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  t.ok(ms >= stalledMs, `the server closed the stalled connection after the stall limit (${ms} ms)`);
  // Node's own headersTimeout (5 s) would close it too, eventually, when a pipelined request
  // is left half-parsed; the sweep is what closes it this early.
  t.ok(ms < 4_000, 'closed by the stalled-writer sweep, not by a later server timeout');
  stalled.setEncoding('latin1');
  let received = '';
  stalled.on('data', (d: string) => (received += d));
  const closed = new Promise((resolve) => stalled.once('close', resolve)); // not events.once: that rejects on the reset
  stalled.resume();
  await closed;
  const got = answersIn(received);
  t.ok(got < pipelined, `the client did not get all its answers: it was cut off (${got} of ${pipelined})`);

  // A client that reads its answers and then idles (below keepAliveTimeout) stays connected.
  const reader = connect({ host: '127.0.0.1', port });
  reader.setEncoding('latin1');
  let answers = '';
  reader.on('data', (d: string) => (answers += d));
  await once(reader, 'connect');
  reader.write(request('/metrics').repeat(50));
  await new Promise((r) => setTimeout(r, stalledMs * 3));
  t.equal(answersIn(answers), 50, 'the reading client got every answer');
  t.equal(reader.destroyed, false, 'and is still connected');
  t.equal(await connections(), 1, 'the server still holds its connection');
  reader.destroy();
});
