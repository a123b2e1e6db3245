// Caller lookup against the real kernel tables: a real connection over
// 127.0.0.1 and ::1 is traced to the uid that owns the client's socket,
// including a client running as another user (nobody, via setpriv, when root).
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { connect, createServer, type Server, type Socket } from 'node:net';
import t from 'tap';
import { otherUserRuntime } from '../helpers/cli.js';
import {
  addressKey,
  CallerLookup,
  clientUidIn,
  decodeProcAddress,
  findClientUid,
  parseProcNetTcp,
  readChunks,
  refusalLogger,
  refusalMessage,
} from '../../src/server/callers.js';
import { parseAccounts, resolveCallers } from '../../src/server/caller-policy.js';

const selfUid = process.getuid!();

t.test('addresses: v4, v6 and v4-mapped forms compare equal where they are the same address', async (t) => {
  t.equal(addressKey('127.0.0.1'), '4:127.0.0.1');
  t.equal(addressKey('::ffff:127.0.0.1'), '4:127.0.0.1');
  t.equal(addressKey('::FFFF:7f00:1'), '4:127.0.0.1');
  t.equal(addressKey('::1'), '6:0000:0000:0000:0000:0000:0000:0000:0001');
  t.equal(addressKey('[::1]'), addressKey('0:0:0:0:0:0:0:1'));
  t.equal(addressKey('fe80::1%lo'), addressKey('fe80:0:0:0:0:0:0:1'));
  t.equal(addressKey('not an address'), undefined);
  t.equal(decodeProcAddress('0100007F', true), '4:127.0.0.1');
  t.equal(decodeProcAddress('7F000001', false), '4:127.0.0.1');
  t.equal(decodeProcAddress('00000000000000000000000001000000', true), addressKey('::1'));
  t.equal(decodeProcAddress('0000000000000000FFFF00000100007F', true), '4:127.0.0.1');
  t.equal(decodeProcAddress('xyz', true), undefined);
});

t.test('/proc/net/tcp rows parse; header and garbage are skipped', async (t) => {
  const text = [
    '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode',
    '   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 1 1 0 100 0 0 10 0',
    '   1: 0100007F:C350 0100007F:1F90 01 00000000:00000000 00:00000000 00000000  65534        0 2 1 0 20 4 30 10 -1',
    'garbage line',
  ].join('\n');
  t.same(parseProcNetTcp(text, true), [
    { local: '4:127.0.0.1', localPort: 8080, remote: '4:0.0.0.0', remotePort: 0, state: 10, uid: 1000 },
    { local: '4:127.0.0.1', localPort: 50000, remote: '4:127.0.0.1', remotePort: 8080, state: 1, uid: 65534 },
  ]);
});

t.test('a lookup parses only the rows that hold the client port, and answers as parsing every row does', async (t) => {
  const hex4 = (n: number) => n.toString(16).toUpperCase().padStart(4, '0');
  const v4 = (a: number, b: number, c: number, d: number) => [d, c, b, a].map((x) => x.toString(16).toUpperCase().padStart(2, '0')).join(''); // little-endian word
  const row = (i: number, l: string, lp: number, r: string, rp: number, st: number, uid: number) =>
    `${String(i).padStart(4)}: ${l}:${hex4(lp)} ${r}:${hex4(rp)} ${st.toString(16).toUpperCase().padStart(2, '0')} 00000000:00000000 00:00000000 00000000 ${String(uid).padStart(5)}        0 ${i} 1 0 20 4 30 10 -1`;
  const lo = v4(127, 0, 0, 1);
  const rows = ['  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode'];
  // 20,000 other sockets (a busy host), among them:
  for (let i = 0; i < 20_000; i++) rows.push(row(i, v4(10, 0, (i >> 8) & 255, i & 255), 1024 + (i % 60000), v4(10, 1, 0, 1), 443, 1, 2000 + (i % 7)));
  rows.push(
    row(20_001, lo, 8080, '00000000', 0, 0x0a, 0), // the server's listening socket
    row(20_002, lo, 8080, lo, 50_000, 1, 0), // the server's end of the connection: the client port in the remote field
    row(20_003, lo, 50_000, lo, 9999, 6, 4242), // the client port in TIME_WAIT toward another port
    row(20_004, lo, 50_000, lo, 8080, 1, 1001), // the client's socket
    row(20_005, lo, 50_001, lo, 8080, 6, 1002), // a closed client (TIME_WAIT): not an answer
  );
  const text = rows.join('\n') + '\n';
  const conn = (remotePort: number) => ({ localAddress: '127.0.0.1', localPort: 8080, remoteAddress: '127.0.0.1', remotePort });
  t.equal(clientUidIn(text, conn(50_000), true), 1001, 'the client socket, not the server end, the TIME_WAIT row or the listener');
  t.equal(clientUidIn(text, conn(50_001), true), undefined, 'a client in TIME_WAIT is not listed');
  t.equal(clientUidIn(text, conn(50_002), true), undefined, 'an unlisted port');
  t.equal(clientUidIn(text, { ...conn(50_000), localAddress: '::ffff:127.0.0.1' }, true), 1001, 'a v4-mapped server address');
  const sockets = parseProcNetTcp(text, true);
  for (const port of [50_000, 50_001, 50_002, 1024, 1030, 443]) {
    t.equal(clientUidIn(text, conn(port), true), findClientUid(sockets, conn(port)), `port ${port}: the same answer as parsing every row`);
  }
  const v6 = ['  sl  local_address                         remote_address                        st', row(0, '00000000000000000000000001000000', 8080, '00000000000000000000000001000000', 40_000, 1, 0), row(1, '00000000000000000000000001000000', 40_000, '00000000000000000000000001000000', 8080, 1, 1003)].join('\n');
  t.equal(clientUidIn(v6, { localAddress: '::1', localPort: 8080, remoteAddress: '::1', remotePort: 40_000 }, true), 1003, 'tcp6');
});

/** A loopback server for the test's lifetime → `open(n)`: n new client connections, resolved with the server's sockets once accepted. */
async function loopbackClients(t: Tap.Test): Promise<(n: number) => Promise<Socket[]>> {
  const { server, port } = await listen('127.0.0.1');
  t.teardown(() => server.close());
  const accepted: Socket[] = [];
  server.on('connection', (s) => {
    s.on('error', () => undefined);
    accepted.push(s);
  });
  return async (n) => {
    const before = accepted.length;
    for (let i = 0; i < n; i++) {
      const client = connect({ host: '127.0.0.1', port });
      client.on('error', () => undefined);
      t.teardown(() => client.destroy());
    }
    while (accepted.length < before + n) await new Promise((r) => setTimeout(r, 5));
    return accepted.slice(before);
  };
}

t.test('a burst of new connections reads /proc/net/tcp once; a later connection gets a fresh read', async (t) => {
  const open = await loopbackClients(t);
  const reads: string[] = [];
  const lookup = new CallerLookup('/proc/self/net', (path) => (reads.push(path), readChunks(path)));
  const burst = await open(16);
  const callers = await Promise.all(burst.map((s) => lookup.callerOf(s)));
  t.same(callers, burst.map(() => ({ kind: 'local', uid: selfUid })), 'every connection of the burst traced to its uid');
  t.same(reads, ['/proc/self/net/tcp'], 'one read of the table for 16 lookups');
  const [late] = await open(1);
  t.same(await lookup.callerOf(late!), { kind: 'local', uid: selfUid });
  t.same(reads, ['/proc/self/net/tcp', '/proc/self/net/tcp'], 'a connection after that read gets a read of its own');
});

t.test('connections arriving while a read is in flight share the next read, which starts after it', async (t) => {
  const open = await loopbackClients(t);
  const next = async () => (await open(1))[0]!;
  const gates: Array<() => void> = [];
  const events: string[] = [];
  const lookup = new CallerLookup('/proc/self/net', async function* (path) {
    const i = gates.length;
    events.push(`start ${i}`);
    await new Promise<void>((resolve) => gates.push(resolve));
    try {
      yield* readChunks(path);
    } finally {
      events.push(`end ${i}`);
    }
  });
  const until = async (what: string, cond: () => boolean) => {
    for (const deadline = Date.now() + 5000; !cond(); await new Promise((r) => setTimeout(r, 5))) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what} (reads: ${events.join(', ')})`);
    }
  };
  const first = lookup.callerOf(await next());
  await until('the first read', () => gates.length >= 1);
  // The first read is in flight: three more connections arrive, one by one.
  const more = [lookup.callerOf(await next()), lookup.callerOf(await next()), lookup.callerOf(await next())];
  await new Promise((r) => setTimeout(r, 50));
  t.same(events, ['start 0'], 'no second read while the first is in flight');
  gates[0]!();
  t.same(await first, { kind: 'local', uid: selfUid });
  await until('the second read', () => gates.length >= 2);
  gates[1]!();
  t.same(await Promise.all(more), [1, 2, 3].map(() => ({ kind: 'local', uid: selfUid })), 'all three traced');
  await until('the second read to end', () => events.length >= 4);
  t.same(events, ['start 0', 'end 0', 'start 1', 'end 1'], 'the three shared one read, started after the first ended');
});

async function listen(host: string): Promise<{ server: Server; port: number; accepted: Promise<Socket> }> {
  const server = createServer();
  // A peer that goes away with data unread resets the connection: not an error of these tests.
  server.on('connection', (s) => s.on('error', () => undefined));
  const accepted = new Promise<Socket>((resolve) => server.once('connection', resolve));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port: 0 }, () => resolve());
  });
  return { server, port: (server.address() as { port: number }).port, accepted };
}

for (const host of ['127.0.0.1', '::1']) {
  t.test(`a connection over ${host} is traced to this process's uid, once per socket`, async (t) => {
    const { server, port, accepted } = await listen(host);
    t.teardown(() => server.close());
    const client = connect({ host, port });
    client.on('error', () => undefined);
    t.teardown(() => client.destroy());
    const sock = await accepted;
    const lookup = new CallerLookup();
    t.equal(await lookup.unavailable(), undefined, '/proc/net/tcp is readable');
    t.equal(lookup.known(sock), undefined, 'not looked up yet');
    t.same(await lookup.callerOf(sock), { kind: 'local', uid: selfUid });
    t.same(lookup.callerOf(sock), { kind: 'local', uid: selfUid }, 'then answered synchronously from the per-connection memo');
  });
}

t.test('a client of another user (nobody) is traced to its uid', { skip: selfUid !== 0 ? 'needs root to run a client as nobody' : false }, async (t) => {
  const { server, port, accepted } = await listen('127.0.0.1');
  t.teardown(() => server.close());
  const rt = await otherUserRuntime();
  if ('skip' in rt) return t.skip(rt.skip);
  const script = `const s=require('net').connect(${port},'127.0.0.1');s.on('data',()=>s.end());s.on('error',()=>{});`;
  // nobody runs a copy of this Node: the clone may be closed to other users.
  const child = spawn('setpriv', ['--reuid=nobody', '--regid=nogroup', '--clear-groups', rt.node, '-e', script], { stdio: 'ignore' });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  t.teardown(() => child.kill());
  const sock = await accepted;
  // The child may be gone before it reads 'bye' (then its kernel answers with a reset): not this test's error.
  sock.on('error', () => undefined);
  const caller = await new CallerLookup().callerOf(sock);
  sock.end('bye');
  await exited;
  const nobody = parseAccounts(await readFile('/etc/passwd', 'utf8'), '').users.find((u) => u.name === 'nobody');
  t.same(caller, { kind: 'local', uid: nobody!.uid });
});

t.test("a client that is not at one of this host's addresses is remote; a local one whose socket is not listed is unknown; an unreadable table leaves it unidentified", async (t) => {
  const lookup = new CallerLookup('/proc/self/net', readChunks, () => new Set());
  t.same(await lookup.lookup({ localAddress: '192.0.2.1', localPort: 80, remoteAddress: '192.0.2.2', remotePort: 5000 }), { kind: 'remote' });
  t.same(await lookup.lookup({ localAddress: '127.0.0.1', localPort: 1, remoteAddress: '127.0.0.1', remotePort: 1 }), { kind: 'unknown' });
  // A connection to one of this host's non-loopback addresses from another of them is a local process's (#21 item 1).
  const hostHas = new CallerLookup('/proc/self/net', readChunks, () => new Set(['4:192.0.2.2']));
  t.same(await hostHas.lookup({ localAddress: '192.0.2.1', localPort: 80, remoteAddress: '192.0.2.2', remotePort: 5000 }), { kind: 'unknown' }, 'looked up, not waved through as remote');
  t.same(await hostHas.lookup({ localAddress: '192.0.2.1', localPort: 80, remoteAddress: '198.51.100.7', remotePort: 5000 }), { kind: 'remote' });
  const none = new CallerLookup('/nonexistent');
  t.match(await none.lookup({ localAddress: '127.0.0.1', localPort: 1, remoteAddress: '127.0.0.1', remotePort: 2 }), { kind: 'unidentified', why: /\/nonexistent\/tcp does not exist/ });
  t.match(await none.unavailable(), /\/nonexistent\/tcp does not exist/);
});

t.test('a table read stops once its lookups are answered, and after MAX_TABLE_BYTES the rest are unidentified', async (t) => {
  const hex4 = (n: number) => n.toString(16).toUpperCase().padStart(4, '0');
  const row = (i: number, lp: number, rp: number, uid: number) => `${String(i).padStart(4)}: 0100007F:${hex4(lp)} 0100007F:${hex4(rp)} 01 00000000:00000000 00:00000000 00000000 ${String(uid).padStart(5)}        0 ${i} 1 0 20 4 30 10 -1\n`;
  // 100 chunks of 10 rows; the client (port 50000 → 8080, uid 1234) is in chunk 2.
  const chunks: string[] = [];
  for (let c = 0; c < 100; c++) chunks.push(Array.from({ length: 10 }, (_, r) => (c === 1 && r === 3 ? row(c * 10 + r, 50_000, 8080, 1234) : row(c * 10 + r, 20_000 + c * 10 + r, 443, 7))).join(''));
  let served = 0;
  const table = async function* () {
    for (const c of chunks) {
      served++;
      yield c;
    }
  };
  const conn = { localAddress: '127.0.0.1', localPort: 8080, remoteAddress: '127.0.0.1', remotePort: 50_000 };
  const lookup = new CallerLookup('/x', table, () => new Set());
  t.same(await lookup.lookup(conn), { kind: 'local', uid: 1234 });
  t.equal(served, 2, 'read up to the chunk holding the row, not the other 98');
  served = 0;
  const capped = new CallerLookup('/x', table, () => new Set(), chunks[0]!.length);
  t.match(await capped.lookup(conn), { kind: 'unidentified', why: /\/x\/tcp is larger than \d+ bytes/ }, 'past the cap the caller is unidentified, not waved through');
  t.equal(served, 1);
});

t.test('refused callers are logged with uid, user and route, each at most once a minute', async (t) => {
  const lines: Array<Record<string, unknown>> = [];
  const log = { warn: (o: Record<string, unknown>, msg: string) => lines.push({ ...o, msg }) } as unknown as Parameters<typeof refusalLogger>[0];
  let now = 0;
  const logRefusal = refusalLogger(log, 60_000, () => now);
  const accounts = parseAccounts('mallory:x:4242:4242::/h:/bin/sh\n', '');
  logRefusal({ caller: { kind: 'local', uid: 4242 }, route: 'imds', profile: 'main', accounts });
  logRefusal({ caller: { kind: 'local', uid: 4242 }, route: 'container', profile: 'main', accounts });
  logRefusal({ caller: { kind: 'local', uid: 4343 }, route: 'container', profile: 'main', accounts });
  now = 60_000;
  logRefusal({ caller: { kind: 'local', uid: 4242 }, route: 'imds', profile: 'main', accounts });
  t.same(lines, [
    { uid: 4242, user: 'mallory', route: 'IMDS', profile: 'main', msg: 'refused a local caller that callers does not allow' },
    { uid: 4343, user: null, route: 'container endpoint', profile: 'main', msg: 'refused a local caller that callers does not allow' },
    { uid: 4242, user: 'mallory', route: 'IMDS', profile: 'main', notLogged: 1, msg: 'refused a local caller that callers does not allow' },
  ]);
});

t.test('callers: users and groups by name or id; default is the daemon user', async (t) => {
  const accounts = parseAccounts(
    ['root:x:0:0::/root:/bin/sh', 'alice:x:1000:1000::/home/alice:/bin/sh', 'bob:x:1001:1001::/home/bob:/bin/sh', 'carol:x:1002:2000::/h:/bin/sh', '# comment'].join('\n'),
    ['root:x:0:', 'alice:x:1000:', 'bob:x:1001:', 'devs:x:2000:bob', 'ops:x:3000:alice, bob'].join('\n'),
  );
  t.same(resolveCallers(undefined, accounts, 1000).allowed, [1000], 'default: own user');
  t.same(resolveCallers({}, accounts, 1000).allowed, [1000], 'empty setting: own user');
  t.same(resolveCallers({ users: ['bob', 4242, '77'] }, accounts, 1000).allowed, [77, 1001, 4242], 'names and ids; the daemon user is not added');
  t.same(resolveCallers({ groups: ['devs'] }, accounts, 0).allowed, [1001, 1002], 'primary (carol) and supplementary (bob) members');
  t.same(resolveCallers({ groups: [3000] }, accounts, 0).allowed, [1000, 1001], 'numeric gid');
  t.same(resolveCallers({ users: [], groups: [] }, accounts, 0).allowed, [], 'explicitly nobody');
  t.throws(() => resolveCallers({ users: ['mallory'], groups: ['nogroup-here'] }, accounts, 0, 'profiles.main.callers'), {
    message: /profiles\.main\.callers\.users: no local user "mallory".*\n.*profiles\.main\.callers\.groups: no local group "nogroup-here"/,
  });
  const policy = resolveCallers(undefined, accounts, 1000, 'profiles.main.callers');
  t.match(refusalMessage({ kind: 'local', uid: 1001 }, policy, accounts), /uid 1001 \(bob\).*profiles\.main\.callers\.users/);
  t.match(refusalMessage({ kind: 'unknown' }, policy, accounts), /cannot tell which local user/);
});

t.test('without /proc (macOS): callers configured → no start; else the container endpoint with its token only, IMDS only with allowUnidentifiedCallers (#24 item 2)', async (t) => {
  const { Writable } = await import('node:stream');
  const { loadIdentity } = await import('../../src/identity/load.js');
  const { createLogger } = await import('../../src/log.js');
  const { Daemon } = await import('../../src/server/daemon.js');
  const { daemonConfig, httpRequest, profileFor, ROLE_ARN } = await import('../helpers/daemon.js');
  const { makeCA, makeLeaf, tempDir } = await import('../helpers/pki.js');
  const dir = await tempDir();
  const ca = await makeCA(dir);
  const leaf = await makeLeaf(dir, ca, 'no-proc');
  const start = async (profile: Parameters<typeof profileFor>[2], extra: Parameters<typeof daemonConfig>[2] = {}) => {
    let logged = '';
    const logger = await createLogger({ level: 'info', destination: new Writable({ write: (c, _e, cb) => ((logged += String(c)), cb()) }) });
    const config = daemonConfig(dir, [profileFor('main', leaf, profile)], extra);
    const daemon = await Daemon.start(config, {
      fetchFactory: () => async () => ({ accessKeyId: 'ASIANOPROC', secretAccessKey: 's', sessionToken: 't', expiration: new Date(Date.now() + 3600_000), roleArn: ROLE_ARN }),
      loadIdentity: (_p, s) => loadIdentity(s),
      logger,
      procNet: '/nonexistent/net',
    });
    t.teardown(() => daemon.close());
    await daemon.session('main')!.waitFor((s) => s.status().ready, 10_000);
    const port = daemon.addresses[0]!.port;
    const imds = async () => (await httpRequest(port, 'PUT', '/latest/api/token', { 'x-aws-ec2-metadata-token-ttl-seconds': '60' })).status;
    const container = async () => (await httpRequest(port, 'GET', '/v1/credentials', { authorization: await readFile(config.tokenFile, 'utf8') })).status;
    return { logged: () => logged, imds, container };
  };

  await t.rejects(start({ callers: { users: [selfUid + 4242] } }), /cannot identify local callers: \/nonexistent\/net\/tcp does not exist.*callers setting \(profiles main\) cannot be enforced.*allowUnidentifiedCallers/, 'callers configured: the daemon does not start');

  const plain = await start({});
  t.match(plain.logged(), /local users cannot be told apart, so the container endpoint is served to any local process holding the endpoint token, and IMDS \(which needs no secret\) is refused/);
  t.equal(await plain.container(), 200, 'the container endpoint, with its token');
  t.equal(await plain.imds(), 403, 'IMDS is refused: any local user could have it');

  const open = await start({}, { allowUnidentifiedCallers: true });
  t.match(open.logged(), /allowUnidentifiedCallers is set: callers is not enforced/);
  t.equal(await open.imds(), 200, 'IMDS once allowUnidentifiedCallers says so');
});

t.test('callers fail closed on every lookup: a socket table that becomes unreadable refuses the next connections, and serves again once readable (#21 item 2)', async (t) => {
  const { mkdir, rename, symlink } = await import('node:fs/promises');
  const { join } = await import('node:path');
  const { loadIdentity } = await import('../../src/identity/load.js');
  const { Daemon } = await import('../../src/server/daemon.js');
  const { daemonConfig, httpRequest, profileFor, ROLE_ARN } = await import('../helpers/daemon.js');
  const { makeCA, makeLeaf, tempDir } = await import('../helpers/pki.js');
  const dir = await tempDir();
  const leaf = await makeLeaf(dir, await makeCA(dir), 'recheck');
  // The daemon's socket tables: a link to the real ones, swapped for an empty directory and back.
  const procNet = join(dir, 'net');
  await symlink('/proc/self/net', procNet);
  await mkdir(join(dir, 'empty'));
  const swap = async (to: string) => {
    await symlink(to, `${procNet}.new`);
    await rename(`${procNet}.new`, procNet);
  };
  const config = daemonConfig(dir, [profileFor('main', leaf, { callers: { users: [selfUid] } })]);
  const daemon = await Daemon.start(config, {
    fetchFactory: () => async () => ({ accessKeyId: 'ASIARECHECK', secretAccessKey: 's', sessionToken: 't', expiration: new Date(Date.now() + 3600_000), roleArn: ROLE_ARN }),
    loadIdentity: (_p, s) => loadIdentity(s),
    procNet,
  });
  t.teardown(() => daemon.close());
  await daemon.session('main')!.waitFor((s) => s.status().ready, 10_000);
  const port = daemon.addresses[0]!.port;
  const token = await readFile(config.tokenFile, 'utf8');
  const ask = async () => {
    const r = await httpRequest(port, 'GET', '/v1/credentials', { authorization: token });
    return { status: r.status, message: r.status === 200 ? '' : (JSON.parse(r.body) as { Message: string }).Message };
  };
  t.equal((await ask()).status, 200, 'an allowed user, identified');
  await swap(join(dir, 'empty'));
  const refused = await ask();
  t.equal(refused.status, 403, 'the table cannot be read now: refused, not served as if callers were not set');
  t.match(refused.message, /cannot tell which local user is calling: .*net\/tcp does not exist/);
  await swap('/proc/self/net');
  t.equal((await ask()).status, 200, 'readable again: served again');
});
