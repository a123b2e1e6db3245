// HTTP fuzz against a real daemon process (serve on 127.0.0.1, emulator behind
// it): random methods, paths, headers and bodies over raw sockets, plus
// oversized and malformed heads. Reproduce a failure with FUZZ_SEED=<seed>.
//
// Oracle for every request:
//   - a status from the documented set (never 500, never a 5xx other than the
//     503 "no credentials" — which must not happen here, the daemon is ready)
//   - 2xx only for well-formed authorized requests: the public health/metrics
//     routes, the IMDS token PUT, or requests carrying a valid token, and only
//     with a loopback Host
//   - credentials in a body only when the request carried the matching valid token
//   - the process never exits; RSS stays bounded; a normal fetch works afterwards
import t from 'tap';
import { httpRequest } from '../helpers/daemon.js';
import { fuzzSeed, prng, rawExchange, rssKb, startFuzzDaemon, type Exchange } from '../helpers/fuzz.js';

const REQUESTS = 1500;
const CONCURRENCY = 12;
const ALLOWED = new Set([200, 400, 401, 403, 404, 405, 408, 411, 413, 414, 415, 431, 501, 505]);
const PUBLIC = new Set(['/healthz', '/readyz', '/metrics']);

interface Req {
  method: string;
  path: string;
  headers: Array<[string, string]>;
  body?: Buffer;
  chunked?: boolean;
  /** Framing/characters a parser may refuse outright (400 or close without an answer). */
  malformed: boolean;
  /** A well-formed authorized fetch: must answer 200 with credentials. */
  mustSucceed?: boolean;
  describe: string;
}

t.test('random requests get documented answers and never leak credentials', async (t) => {
  const seed = fuzzSeed();
  t.comment(`fuzz seed ${seed} (rerun with FUZZ_SEED=${seed})`);
  const d = await startFuzzDaemon(t);
  const rand = prng(seed);
  const int = (n: number) => Math.floor(rand() * n);
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!;
  const chance = (p: number) => rand() < p;

  // Valid credentials to recognise a leak, and a valid IMDS token to exercise the authorized paths.
  const good = await httpRequest(d.port, 'GET', '/v1/credentials', { authorization: d.token });
  t.equal(good.status, 200, 'a normal fetch works before fuzzing');
  const secret = JSON.parse(good.body).SecretAccessKey as string;
  const sessionToken = JSON.parse(good.body).Token as string;
  const imdsPut = await httpRequest(d.port, 'PUT', '/latest/api/token', { 'x-aws-ec2-metadata-token-ttl-seconds': '600' });
  const imdsToken = imdsPut.body;
  const rssStart = rssKb(d.pid);

  const junk = (n: number, alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789-_.~') => Array.from({ length: n }, () => alphabet[int(alphabet.length)]).join('');
  const bases = [
    '/v1/credentials',
    '/v1/credentials/main',
    '/v1/credentials/',
    '/latest/api/token',
    '/latest/meta-data/iam/security-credentials/',
    `/latest/meta-data/iam/security-credentials/${d.role}`,
    '/latest/meta-data/iam/security-credentials-extended/',
    '/latest/meta-data/placement/availability-zone',
    '/latest/meta-data/placement/region',
    '/healthz',
    '/readyz',
    '/metrics',
    '/',
  ] as const;
  const mutations: Array<(p: string) => string> = [
    ...Array.from({ length: 8 }, () => (p: string) => p),
    (p) => `${p}/${junk(1 + int(12))}`,
    (p) => `${p}/../${junk(4)}`,
    (p) => `${p}/..%2f..%2fetc%2fpasswd`,
    (p) => `${p}%00`,
    (p) => `${p}%00.json`,
    (p) => `${p}?${junk(8)}=${junk(8)}`,
    (p) => `${p}?${'a'.repeat(4000 + int(6000))}`,
    (p) => `${p}/${'x'.repeat(300 + int(9000))}`,
    (p) => p.replace(/\//g, '//'),
    (p) => p.toUpperCase(),
    (p) => `${p}/%E2%98%83/%F0%9F%92%A5`,
    (p) => `${p}/\u00e9\u2603`, // raw UTF-8 in the request line
    (p) => `${p}/%zz%`,
    (p) => `${p}#frag`,
    (p) => `/${junk(20)}${p}`,
    (p) => p.replace('credentials', 'credentials;x=y'),
  ];

  function makeReq(): Req {
    if (chance(0.1)) {
      // A well-formed authorized fetch with junk headers around it: must be 200 with credentials.
      const imds = chance(0.5);
      const headers: Array<[string, string]> = [['Host', `127.0.0.1:${d.port}`], imds ? ['X-aws-ec2-metadata-token', imdsToken] : ['Authorization', d.token]];
      for (let i = int(6); i > 0; i--) headers.push([`X-${junk(1 + int(20))}`, junk(int(300))]);
      headers.push(['Connection', 'close']);
      const path = imds ? `/latest/meta-data/iam/security-credentials/${d.role}` : pick(['/v1/credentials', '/v1/credentials/main']);
      return { method: 'GET', path, headers, malformed: false, mustSucceed: true, describe: `clean GET ${path}` };
    }
    let malformed = false;
    const method = chance(0.55) ? 'GET' : pick(['HEAD', 'PUT', 'POST', 'DELETE', 'OPTIONS', 'PATCH', 'TRACE', 'get', 'FOO', 'CONNECT', 'PROPFIND']);
    let path = pick(mutations)(pick(bases));
    // CONNECT without a 'connect' listener: Node closes the socket; raw non-ASCII may be refused by the parser.
    if (/[^\x21-\x7e]/.test(path) || method === 'CONNECT') malformed = true;
    const headers: Array<[string, string]> = [];
    const desc: string[] = [];
    // Host
    const host = chance(0.85) ? `127.0.0.1:${d.port}` : pick(['localhost', `[::1]:${d.port}`, 'evil.example.com', '169.254.169.254', '', `127.0.0.1:${d.port}, evil.example.com`]);
    if (!chance(0.03)) headers.push(['Host', host]);
    if (chance(0.03)) headers.push(['Host', 'evil.example.com']);
    // Authorization
    const auth = pick(['none', 'valid', 'valid', 'wrong', 'valid-space', 'dup-valid-first', 'dup-valid-second', 'huge', 'bearer'] as const);
    desc.push(`auth=${auth}`);
    if (auth === 'valid') headers.push(['Authorization', d.token]);
    if (auth === 'wrong') headers.push(['Authorization', junk(43)]);
    if (auth === 'valid-space') headers.push(['Authorization', `${d.token} `]); // trailing OWS is trimmed by the parser: still the token
    if (auth === 'dup-valid-first') headers.push(['Authorization', d.token], ['Authorization', junk(10)]);
    if (auth === 'dup-valid-second') headers.push(['Authorization', junk(10)], ['Authorization', d.token]);
    if (auth === 'huge') headers.push(['Authorization', 'A'.repeat(6000 + int(6000))]);
    if (auth === 'bearer') headers.push(['Authorization', `Bearer ${d.token}`]);
    // IMDS token
    const imds = pick(['none', 'none', 'valid', 'wrong', 'empty', 'dup'] as const);
    desc.push(`imds=${imds}`);
    if (imds === 'valid') headers.push(['X-aws-ec2-metadata-token', imdsToken]);
    if (imds === 'wrong') headers.push(['X-aws-ec2-metadata-token', junk(43)]);
    if (imds === 'empty') headers.push(['X-aws-ec2-metadata-token', '']);
    if (imds === 'dup') headers.push(['X-aws-ec2-metadata-token', junk(5)], ['X-aws-ec2-metadata-token', imdsToken]);
    if (chance(0.3)) headers.push(['X-aws-ec2-metadata-token-ttl-seconds', pick(['1', '21600', '21601', '0', '-5', '60.5', ' 30 ', 'abc', '9'.repeat(40), ''])]);
    if (chance(0.1)) headers.push(['X-Forwarded-For', '10.0.0.1']);
    // Random headers, some with bytes a parser must refuse.
    for (let i = int(4); i > 0; i--) headers.push([`X-${junk(1 + int(20))}`, junk(int(200), 'abcXYZ 0123456789,;=/"\t')]);
    if (chance(0.05)) {
      malformed = true;
      headers.push([pick(['Bad Name', 'Bad:Colon', 'Ünïcode', 'Nul\0']), 'v']);
    }
    if (chance(0.05)) {
      malformed = true;
      headers.push(['X-Bad-Value', pick(['a\rb', 'a\0b', 'a\x7fb', 'a\nb'])]);
    }
    // Body
    let body: Buffer | undefined;
    let chunked = false;
    const b = pick(['none', 'none', 'none', 'json', 'random', 'big', 'chunked'] as const);
    desc.push(`body=${b}`);
    if (b === 'json') body = Buffer.from(JSON.stringify({ x: junk(20) }));
    if (b === 'random') body = Buffer.from(Array.from({ length: int(900) }, () => int(256)));
    if (b === 'big') body = Buffer.alloc(2048 + int(200_000), 0x61);
    if (b === 'chunked') {
      chunked = true;
      body = Buffer.from(junk(int(3000)));
    }
    if (body && !chunked) headers.push(['Content-Length', String(body.length)]);
    if (chunked) headers.push(['Transfer-Encoding', 'chunked']);
    if (body && chance(0.5)) headers.push(['Content-Type', pick(['application/json', 'text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x'])]);
    headers.push(['Connection', 'close']);
    if (path.length === 0) path = '/';
    return { method, path, headers, body, chunked, malformed, describe: `${method} ${path.slice(0, 80)}${path.length > 80 ? `…(${path.length})` : ''} ${desc.join(' ')}` };
  }

  const serialize = (r: Req): Buffer => {
    const head = `${r.method} ${r.path} HTTP/1.1\r\n${r.headers.map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`;
    const parts = [Buffer.from(head, 'utf8')];
    if (r.body) {
      if (r.chunked) {
        for (let i = 0; i < r.body.length; i += 500) {
          const c = r.body.subarray(i, i + 500);
          parts.push(Buffer.from(`${c.length.toString(16)}\r\n`), c, Buffer.from('\r\n'));
        }
        parts.push(Buffer.from('0\r\n\r\n'));
      } else parts.push(r.body);
    }
    return Buffer.concat(parts);
  };

  const first = (r: Req, name: string) => r.headers.find(([k]) => k.toLowerCase() === name)?.[1];
  const isLoopbackHost = (h: string | undefined) => h !== undefined && /^(127\.0\.0\.1|localhost|\[::1\])(:\d+)?$/.test(h);

  const failures: string[] = [];
  const statuses = new Map<string, number>();
  let twoHundreds = 0;
  let credentialAnswers = 0;

  const judge = (r: Req, x: Exchange) => {
    const key = x.status === undefined ? (x.timedOut ? 'timeout' : 'closed') : String(x.status);
    statuses.set(key, (statuses.get(key) ?? 0) + 1);
    const fail = (why: string) => failures.push(`${why}: ${r.describe}`);
    if (x.status === undefined) {
      // Only a request the parser may refuse outright can be dropped without an answer.
      if (!r.malformed && !x.closed) fail(`no answer (${x.timedOut ? 'timed out' : x.error ?? 'closed'})`);
      if (!r.malformed && x.closed && !x.text) fail('connection closed without an answer');
      return;
    }
    if (!ALLOWED.has(x.status)) fail(`status ${x.status} is not in the documented set`);
    if (r.mustSucceed && (x.status !== 200 || !x.text.includes(secret))) fail(`a well-formed authorized fetch answered ${x.status}`);
    const pathname = r.path.split(/[?#]/)[0]!;
    const validContainer = first(r, 'authorization')?.trim() === d.token;
    const validImds = first(r, 'x-aws-ec2-metadata-token') === imdsToken;
    const loopback = isLoopbackHost(first(r, 'host'));
    const leaked = x.text.includes(secret) || x.text.includes(sessionToken.slice(0, 200)) || /SecretAccessKey/.test(x.text);
    if (x.status >= 200 && x.status < 300) {
      twoHundreds++;
      const publicRoute = (['GET', 'HEAD'].includes(r.method) && PUBLIC.has(pathname)) || (r.method === 'PUT' && pathname === '/latest/api/token');
      if (!publicRoute && !validContainer && !validImds) fail(`2xx (${x.status}) without a valid token`);
      if (!loopback) fail(`2xx (${x.status}) for a non-loopback Host`);
    }
    if (leaked) {
      credentialAnswers++;
      if (!loopback || x.status !== 200) fail('credentials in a non-200 answer or for a non-loopback Host');
      if (pathname.startsWith('/latest') ? !validImds : !validContainer) fail('credentials without the matching valid token');
    }
  };

  // Three batches: the first grows the daemon's heap toward its working size (RSS keeps
  // that high-water mark: ~96 → 190–250 MB here, depending on when the GCs fall, and the
  // first batch may stop short of it by ~60 MB); the next two must not keep growing it
  // (a leak of 32 KB per request would add 96 MB over them).
  const batch = async () => {
    const queue = Array.from({ length: REQUESTS }, makeReq);
    let next = 0;
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (next < queue.length) {
          const r = queue[next++]!;
          judge(r, await rawExchange(d.port, serialize(r), { head: r.method === 'HEAD', timeoutMs: 10_000 }));
        }
      }),
    );
    return rssKb(d.pid);
  };
  const rssFirst = await batch();
  await batch();
  const rssThird = await batch();
  t.comment(`answers: ${[...statuses].sort().map(([k, v]) => `${k}×${v}`).join(' ')}; ${twoHundreds} 2xx, ${credentialAnswers} with credentials`);
  t.equal(failures.length, 0, `every answer within the oracle (seed ${seed})`, { failures: failures.slice(0, 15) });
  t.ok(twoHundreds > 100 && credentialAnswers > 80, 'the authorized paths were exercised too');
  t.equal(statuses.get('500') ?? 0, 0, 'never 500');

  // Oversized and malformed heads.
  const hdr = (extra: string) => `GET /v1/credentials HTTP/1.1\r\nHost: 127.0.0.1:${d.port}\r\nAuthorization: ${d.token}\r\n${extra}Connection: close\r\n\r\n`;
  const big = await rawExchange(d.port, hdr(`X-Big: ${'b'.repeat(20_000)}\r\n`));
  t.ok(big.status === 431 || (big.status === undefined && big.closed), `one 20 KB header → 431 or closed (got ${big.status ?? 'closed'})`);
  const many = await rawExchange(d.port, hdr(Array.from({ length: 200 }, (_, i) => `X-H${i}: ${'v'.repeat(100)}\r\n`).join('')));
  t.ok(many.status === 431 || (many.status === undefined && many.closed), `200 × 100-byte headers (over 16 KB) → 431 or closed (got ${many.status ?? 'closed'})`);
  const huge = await rawExchange(d.port, hdr(`X-Huge: ${'h'.repeat(1_000_000)}\r\n`));
  t.ok(huge.status === 431 || (huge.status === undefined && huge.closed), `a 1 MB header → 431 or closed (got ${huge.status ?? 'closed'})`);
  const longLine = await rawExchange(d.port, `GET /${'p'.repeat(100_000)} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
  t.ok(longLine.status === 431 || longLine.status === 414 || longLine.status === 400 || (longLine.status === undefined && longLine.closed), `a 100 KB request line → 4xx or closed (got ${longLine.status ?? 'closed'})`);
  for (const bad of ['GET / HTTP/9.9\r\n\r\n', 'GARBAGE\r\n\r\n', '\x00\x01\x02\x03\r\n\r\n', 'GET /v1/credentials HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', 'GET /v1/credentials HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: -1\r\n\r\n', 'GET /v1/credentials HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab']) {
    const x = await rawExchange(d.port, bad, { timeoutMs: 5000 });
    t.ok((x.status !== undefined && x.status >= 400 && x.status < 500) || (x.status === undefined && x.closed), `malformed head ${JSON.stringify(bad.slice(0, 40))} → 4xx or closed (got ${x.status ?? (x.timedOut ? 'timeout' : 'closed')})`);
    t.notOk(x.text.includes(secret), 'no credentials');
  }

  // Still alive, bounded memory, still serving.
  t.equal(d.serve.child.exitCode, null, 'the daemon process never exited');
  const rssEnd = rssKb(d.pid);
  const mb = (kb: number) => Math.round(kb / 1024);
  t.ok(rssThird < rssFirst + 96 * 1024, `RSS bounded: two more batches of ${REQUESTS} requests add < 96 MB (${mb(rssStart)} → ${mb(rssFirst)} → ${mb(rssThird)} MB)`);
  t.ok(rssEnd < rssStart + 512 * 1024, `RSS bounded overall: ${mb(rssStart)} MB → ${mb(rssEnd)} MB`);
  const after = await httpRequest(d.port, 'GET', '/v1/credentials', { authorization: d.token });
  t.equal(after.status, 200, 'a normal credential fetch succeeds afterwards');
  t.ok(Date.parse(JSON.parse(after.body).Expiration) > Date.now(), 'with a valid Expiration');
  t.notOk(d.serve.output().includes(d.token) || d.serve.output().includes(secret), 'no token or secret in the daemon output');
});
