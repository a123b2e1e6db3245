// Preload for the bare server (`npm run bench:profile -- --bare-flags "--max-semi-space-size=2
// --import ./bench/off-path-work.js"`): before it serves, the bare server does once the kinds of
// work the daemon does off its request path — an HTTP client exchange over a keep-alive agent
// (the daemon's CreateSession), a pino logger writing lines, a file watch — and then nothing
// more. None of it runs per request. It answers whether Node's shared code (event emitters,
// streams, node:http) costs more per request in a process that has also been an HTTP client,
// a logger and a watcher: V8's property-access caches in that shared code see more kinds of
// objects and go megamorphic, which the profile counts as "V8: megamorphic property access".
import { mkdtempSync, rmSync, watch, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';

const log = pino({ level: 'info' }, pino.destination(2));
log.info({ phase: 'start' }, 'off-path work');

const server = http.createServer((req, res) => {
  let n = 0;
  req.on('data', (d) => (n += d.length));
  req.on('end', () => {
    const body = JSON.stringify({ received: n });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  });
});
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const agent = new http.Agent({ keepAlive: true });
const exchange = () =>
  new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: server.address().port, path: '/', method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': '2' } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve(body));
    });
    req.on('error', reject);
    req.end('{}');
  });
for (let i = 0; i < 5; i++) await exchange();
agent.destroy();
server.close();

const dir = mkdtempSync(join(tmpdir(), 'ra-offpath-'));
const file = join(dir, 'watched');
writeFileSync(file, 'x');
watch(file, () => {});
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
log.info({ phase: 'done' }, 'off-path work');
