// The one outbound transport (Roles Anywhere, the cluster's JWKS, STS): its
// overall deadline covers the body, so a server that sends a byte every few
// hundred ms — never idle long enough for an idle timeout — cannot hold a
// request open (issue 21, item 4). A real server on 127.0.0.1.
import http from 'node:http';
import t from 'tap';
import { httpRequest, TimeoutError } from '../../src/rolesanywhere/transport.js';

const drips = new Set<NodeJS.Timeout>();
const server = http.createServer((_req, res) => {
  res.writeHead(200, { 'content-type': 'application/json' });
  res.write('{');
  const timer = setInterval(() => res.write(' '), 300);
  drips.add(timer);
  res.on('close', () => clearInterval(timer));
});
await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
t.teardown(() => {
  for (const d of drips) clearInterval(d);
  server.closeAllConnections();
  server.close();
});
const url = new URL(`http://127.0.0.1:${(server.address() as { port: number }).port}/sessions`);

t.test('a dripping body hits the overall deadline', async (t) => {
  const agent = new http.Agent({ keepAlive: false });
  t.teardown(() => agent.destroy());
  const err = await httpRequest(url, { method: 'POST', headers: {}, body: '{}', agent, timeoutMs: 1200 }).then(
    () => undefined,
    (e: unknown) => e,
  );
  t.ok(err instanceof TimeoutError, 'a TimeoutError');
  t.match(err, { phase: 'response', code: 'ETIMEDOUT', message: 'no complete answer within 1200 ms' });
});
