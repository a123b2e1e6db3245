// Helpers for the HTTP fuzz tests (test/fuzz/): a real `serve` process on
// 127.0.0.1 with the in-process emulator behind it, raw-socket exchanges
// (node:net, so any byte can be sent), RSS from /proc and a seeded PRNG.
import { readFileSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { spawnServe, httpRequest, waitUntil, type ServeProcess } from './daemon.js';
import { startTestEmulator, type TestEmulator } from './emulator.js';

export interface FuzzDaemon {
  serve: ServeProcess;
  emu: TestEmulator;
  port: number;
  pid: number;
  /** The container endpoint token (never print it). */
  token: string;
  /** The IMDS role name. */
  role: string;
}

export async function startFuzzDaemon(t: { teardown(fn: () => unknown): void }): Promise<FuzzDaemon> {
  const emu = await startTestEmulator(t);
  const cfg = join(emu.dir, 'fuzz.yaml');
  const tokenFile = join(emu.dir, 'token');
  await writeFile(
    cfg,
    [
      'listen: ["127.0.0.1:0"]',
      `tokenFile: ${JSON.stringify(tokenFile)}`,
      'logLevel: warn',
      // Every attacking connection and every normal request here come from one local user: the
      // per-user cap (default 256, tested in test/cli/serve-callers.test.ts) would refuse them all.
      'connections:',
      '  maxPerUser: 2048',
      'imds:',
      '  profile: main',
      'profiles:',
      '  main:',
      `    certificate: ${JSON.stringify(emu.identitySource.certificate)}`,
      `    privateKey: ${JSON.stringify(emu.identitySource.privateKey)}`,
      `    trustAnchorArn: ${emu.arns.trustAnchorArn}`,
      `    profileArn: ${emu.arns.profileArn}`,
      `    roleArn: ${emu.arns.roleArn}`,
      `    endpoint: ${emu.url}`,
      '    withProxy: false',
      '',
    ].join('\n'),
  );
  const serve = spawnServe(t, ['--config', cfg]);
  const port = await serve.port();
  const token = await readFile(tokenFile, 'utf8');
  await waitUntil('daemon ready', async () => (await httpRequest(port, 'GET', '/readyz')).status === 200, 20_000);
  return { serve, emu, port, pid: serve.child.pid!, token, role: emu.arns.roleArn.split('/').pop()! };
}

/** VmRSS of a process in KiB (NaN when unreadable). */
export function rssKb(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+)\s+kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : NaN;
  } catch {
    return NaN;
  }
}

/** mulberry32: a seeded PRNG → [0,1). */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The seed from FUZZ_SEED, else a random one. */
export function fuzzSeed(): number {
  const env = process.env.FUZZ_SEED;
  return env && /^\d+$/.test(env) ? Number(env) : Math.floor(Math.random() * 2 ** 31);
}

export interface Exchange {
  /** Status of the first response, if one arrived. */
  status?: number;
  /** Raw response bytes as latin1 text (head + body). */
  text: string;
  /** The server closed the connection. */
  closed: boolean;
  timedOut: boolean;
  error?: string;
}

/**
 * Writes `data` on a fresh connection and reads one response: complete once
 * the head and its Content-Length/chunked body have arrived (HEAD: the head),
 * or when the server closes. Gives up after `timeoutMs`.
 */
export function rawExchange(port: number, data: Buffer | string, opts: { timeoutMs?: number; head?: boolean } = {}): Promise<Exchange> {
  return new Promise((resolve) => {
    const sock: Socket = connect({ host: '127.0.0.1', port });
    let buf = Buffer.alloc(0);
    let done = false;
    const finish = (extra: Partial<Exchange>) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      const text = buf.toString('latin1');
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(text);
      sock.destroy();
      resolve({ status: m ? Number(m[1]) : undefined, text, closed: false, timedOut: false, ...extra });
    };
    const timer = setTimeout(() => finish({ timedOut: true }), opts.timeoutMs ?? 8000);
    sock.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      const text = buf.toString('latin1');
      const end = text.indexOf('\r\n\r\n');
      if (end < 0) return;
      const head = text.slice(0, end);
      const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(head)?.[1]);
      if (opts.head || status === 204 || status === 304 || (status >= 100 && status < 200)) return finish({});
      const cl = /\r\ncontent-length:\s*(\d+)/i.exec(head);
      if (cl) {
        if (buf.length - (Buffer.byteLength(head, 'latin1') + 4) >= Number(cl[1])) finish({});
      } else if (/\r\ntransfer-encoding:\s*chunked/i.test(head)) {
        if (text.endsWith('\r\n0\r\n\r\n') || text.slice(end + 4).startsWith('0\r\n\r\n')) finish({});
      }
    });
    sock.on('close', () => finish({ closed: true }));
    sock.on('error', (err: NodeJS.ErrnoException) => finish({ error: err.code ?? err.message, closed: true }));
    sock.write(data);
  });
}
