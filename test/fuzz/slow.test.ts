// Slow and idle clients against a real daemon process: slowloris heads (a few
// bytes per second), chunked bodies that never end, and 500 idle connections.
// The server must time the slow ones out (close them), keep serving normal
// requests meanwhile, stay up and keep its memory bounded.
import { connect, type Socket } from 'node:net';
import t from 'tap';
import { httpRequest, waitUntil } from '../helpers/daemon.js';
import { rssKb, startFuzzDaemon } from '../helpers/fuzz.js';

const SLOWLORIS = 20;
const ENDLESS_CHUNKED = 10;
const IDLE = 500;

interface Tracked {
  socket: Socket;
  closedByServer: boolean;
  closedAt?: number;
  answer: string;
  timer?: NodeJS.Timeout;
}

function open(port: number): Promise<Tracked> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    const tr: Tracked = { socket, closedByServer: false, answer: '' };
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => (tr.answer += d));
    socket.on('close', () => {
      tr.closedByServer = true;
      tr.closedAt = Date.now();
      if (tr.timer) clearInterval(tr.timer);
    });
    socket.on('error', () => undefined);
    socket.once('connect', () => resolve(tr));
    socket.once('error', reject);
  });
}

/** Sends `chunks` one per `everyMs`, then repeats `filler` forever, until the socket closes. */
function dribble(tr: Tracked, first: string, filler: () => string, everyMs: number): void {
  tr.socket.write(first);
  tr.timer = setInterval(() => {
    if (!tr.socket.destroyed) tr.socket.write(filler());
  }, everyMs);
}

t.test('slowloris, endless chunked bodies and idle connections are timed out while normal requests keep working', async (t) => {
  const d = await startFuzzDaemon(t);
  const rssStart = rssKb(d.pid);
  const tracked: Tracked[] = [];
  t.teardown(() => {
    for (const tr of tracked) {
      if (tr.timer) clearInterval(tr.timer);
      tr.socket.destroy();
    }
  });
  const started = Date.now();

  // Slowloris: an unfinished head, one more header byte every second.
  const slow: Tracked[] = [];
  for (let i = 0; i < SLOWLORIS; i++) {
    const tr = await open(d.port);
    dribble(tr, `GET /v1/credentials HTTP/1.1\r\nHost: 127.0.0.1:${d.port}\r\nX-Slow: `, () => 'a', 1000);
    slow.push(tr);
  }
  // A complete head announcing a chunked body that never ends (a small chunk every second).
  const chunked: Tracked[] = [];
  for (let i = 0; i < ENDLESS_CHUNKED; i++) {
    const tr = await open(d.port);
    const path = i % 2 === 0 ? '/latest/api/token' : '/v1/credentials';
    const method = i % 2 === 0 ? 'PUT' : 'GET';
    dribble(tr, `${method} ${path} HTTP/1.1\r\nHost: 127.0.0.1:${d.port}\r\nX-aws-ec2-metadata-token-ttl-seconds: 60\r\nTransfer-Encoding: chunked\r\n\r\n`, () => '1\r\nx\r\n', 1000);
    chunked.push(tr);
  }
  // Idle: connect, send nothing.
  const idle: Tracked[] = [];
  for (let i = 0; i < IDLE; i++) idle.push(await open(d.port));
  tracked.push(...slow, ...chunked, ...idle);
  t.comment(`${SLOWLORIS} slowloris + ${ENDLESS_CHUNKED} endless chunked + ${IDLE} idle connections open`);

  // Normal requests still succeed with all of that open.
  for (let i = 0; i < 5; i++) {
    const r = await httpRequest(d.port, 'GET', '/v1/credentials', { authorization: d.token });
    t.equal(r.status, 200, `normal fetch ${i + 1} succeeds while slow and idle connections are open`);
  }
  const imdsToken = (await httpRequest(d.port, 'PUT', '/latest/api/token', { 'x-aws-ec2-metadata-token-ttl-seconds': '60' })).body;
  t.equal((await httpRequest(d.port, 'GET', `/latest/meta-data/iam/security-credentials/${d.role}`, { 'x-aws-ec2-metadata-token': imdsToken })).status, 200, 'IMDS fetch succeeds too');

  // The server closes the slow ones (headersTimeout / requestTimeout, enforced on Node's connection-check interval).
  await waitUntil('every slowloris connection closed by the server', () => slow.every((s) => s.closedByServer), 75_000, 250);
  t.pass(`slowloris connections closed by the server after ~${Math.round((Math.max(...slow.map((s) => s.closedAt!)) - started) / 1000)} s`);
  t.ok(slow.every((s) => !s.answer.includes('AccessKeyId')), 'no credentials to an unfinished request');
  await waitUntil('every endless chunked request closed by the server', () => chunked.every((s) => s.closedByServer), 75_000, 250);
  t.pass(`endless chunked bodies closed after ~${Math.round((Math.max(...chunked.map((s) => s.closedAt!)) - started) / 1000)} s`);
  t.ok(chunked.every((s) => !/SecretAccessKey/.test(s.answer)), 'no credentials in any answer to them');
  const idleClosed = idle.filter((s) => s.closedByServer).length;
  t.comment(`${idleClosed}/${IDLE} idle connections closed by the server so far (inactivity timeout 30 s)`);

  t.equal(d.serve.child.exitCode, null, 'the daemon process never exited');
  const rssEnd = rssKb(d.pid);
  t.ok(rssEnd < 2 * rssStart + 50 * 1024, `RSS bounded: ${Math.round(rssStart / 1024)} MB → ${Math.round(rssEnd / 1024)} MB`);
  const after = await httpRequest(d.port, 'GET', '/v1/credentials', { authorization: d.token });
  t.equal(after.status, 200, 'a normal credential fetch succeeds afterwards');
});
