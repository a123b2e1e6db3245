// Errors fastify raises before routing (malformed percent-encoding, an
// over-long profile name) keep the container endpoint's error shape.
import t from 'tap';
import { buildApp } from '../../src/server/app.js';
import { closeAll, listenAll } from '../../src/server/listen.js';
import { TokenVerifier } from '../../src/server/token.js';
import { httpRequest } from '../helpers/daemon.js';

t.test('router errors answer JSON {Code, Message}', async (t) => {
  const token = 'app-test-token-0123456789';
  const app = buildApp({
    getState: () => ({ profiles: new Map(), imds: { enabled: true, allowV1: false }, token: new TokenVerifier(token), loopbackOnly: true }),
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
