// The baseline for the throughput benchmark: a bare node:http server that
// answers the same two requests as the daemon with the same checks (the endpoint
// token hashed with SHA-256 and compared with timingSafeEqual; a hashed, expiring
// IMDS token store) and an equally sized cached JSON body (bytes, with a
// Content-Length), and nothing else (no framework, no Host guard, no metrics).
// Run as its own process, like the daemon.
//
//   node bench/bare-server.js --port N --token-file F --container-bytes N --imds-bytes N --role NAME
//
// Prints `bare listening on <port>` when ready.
import { hash as sha, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '0' },
    'token-file': { type: 'string' },
    'container-bytes': { type: 'string', default: '1200' },
    'imds-bytes': { type: 'string', default: '1250' },
    role: { type: 'string', default: 'bench-role' },
  },
});

// The daemon's check (src/server/token.ts): SHA-256 of both, timingSafeEqual of the digests.
const digest = sha('sha256', readFileSync(values['token-file'], 'utf8'), 'buffer');
const tokenMatches = (presented) => typeof presented === 'string' && timingSafeEqual(sha('sha256', presented, 'buffer'), digest);

/** JSON of exactly `size` bytes (the Token field is padded), as bytes: encoded once, sent with a Content-Length. */
function body(fields, size) {
  const base = JSON.stringify({ ...fields, Token: '' });
  const pad = Math.max(0, size - Buffer.byteLength(base));
  return Buffer.from(JSON.stringify({ ...fields, Token: 'T'.repeat(pad) }), 'utf8');
}
const ok = (b) => ({ 'content-type': 'application/json', 'cache-control': 'no-store', 'content-length': b.length });
const exp = new Date(Date.now() + 3600_000).toISOString().replace(/\.\d{3}Z$/, 'Z');
const containerBody = body({ AccessKeyId: 'ASIA' + 'X'.repeat(16), SecretAccessKey: 'S'.repeat(40), Expiration: exp, AccountId: '123456789012', RoleArn: 'arn:aws:iam::123456789012:role/bench-role' }, Number(values['container-bytes']));
const imdsBody = body({ Code: 'Success', LastUpdated: exp, Type: 'AWS-HMAC', AccessKeyId: 'ASIA' + 'X'.repeat(16), SecretAccessKey: 'S'.repeat(40), Expiration: exp }, Number(values['imds-bytes']));

/** IMDS tokens: sha256 → expiry, like the daemon's store. */
const imdsTokens = new Map();
const hash = (t) => sha('sha256', t, 'base64');
const credPath = `/latest/meta-data/iam/security-credentials/${values.role}`;

const server = createServer((req, res) => {
  const path = req.url.split('?')[0];
  if (req.method === 'GET' && path === '/v1/credentials') {
    if (!tokenMatches(req.headers.authorization)) {
      res.writeHead(401, { 'content-type': 'application/json' });
      return res.end('{"Code":"AccessDenied","Message":"bad token"}');
    }
    res.writeHead(200, ok(containerBody));
    return res.end(containerBody);
  }
  if (req.method === 'PUT' && path === '/latest/api/token') {
    const ttl = Number(req.headers['x-aws-ec2-metadata-token-ttl-seconds']);
    const token = randomBytes(32).toString('base64url');
    imdsTokens.set(hash(token), Date.now() + ttl * 1000);
    res.writeHead(200, { 'content-type': 'text/plain', 'x-aws-ec2-metadata-token-ttl-seconds': String(ttl) });
    return res.end(token);
  }
  if (req.method === 'GET' && path === credPath) {
    const t = req.headers['x-aws-ec2-metadata-token'];
    const exp = typeof t === 'string' ? imdsTokens.get(hash(t)) : undefined;
    if (exp === undefined || Date.now() >= exp) {
      res.writeHead(401, { 'content-type': 'application/json' });
      return res.end('{"Code":"Unauthorized","Message":"bad token"}');
    }
    res.writeHead(200, ok(imdsBody));
    return res.end(imdsBody);
  }
  if (path === '/readyz' || path === '/') {
    res.writeHead(200, { 'content-type': 'application/json' });
    return res.end('{"status":"ready"}');
  }
  res.writeHead(404);
  res.end();
});
server.keepAliveTimeout = 5000;
server.listen(Number(values.port), '127.0.0.1', () => {
  process.stdout.write(`bare listening on ${server.address().port}\n`);
});
process.on('SIGTERM', () => {
  server.close(() => process.exit(0));
  server.closeAllConnections();
});
