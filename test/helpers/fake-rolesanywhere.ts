// Tiny scripted HTTP(S) servers and a CONNECT proxy on 127.0.0.1 for testing
// the Roles Anywhere client's transport behaviour (retries, timeouts, TLS,
// proxies) without the emulator.
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Test } from 'tap';
import { type CertFiles, openssl } from './pki.js';

export interface RecordedRequest {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** What to do with one request: answer, hang, or drop the connection. */
export type Script =
  | { status: number; body?: string | object; headers?: Record<string, string> }
  | { hang: true }
  | { drop: true }
  | ((req: RecordedRequest, res: http.ServerResponse) => void);

export interface FakeServer {
  url: string;
  port: number;
  requests: RecordedRequest[];
  /** Scripts for the next requests, in order; the last one repeats. */
  script: Script[];
  /** Resolves when `n` requests have arrived. */
  waitForRequests(n: number): Promise<void>;
}

export const TA_ARN = 'arn:aws:rolesanywhere:us-east-1:123456789012:trust-anchor/0d3f2c1a-8b7e-4c5d-9a6f-112233445566';
export const PROFILE_ARN = 'arn:aws:rolesanywhere:us-east-1:123456789012:profile/7e6d5c4b-3a29-4817-a6b5-c4d3e2f1a0b9';
export const ROLE_ARN = 'arn:aws:iam::123456789012:role/test/ra-role';

export function fakeCredentials(opts: { lifetimeSec?: number; accessKeyId?: string } = {}) {
  const expiration = new Date(Date.now() + (opts.lifetimeSec ?? 3600) * 1000).toISOString();
  return {
    credentialSet: [
      {
        assumedRoleUser: { arn: 'arn:aws:sts::123456789012:assumed-role/ra-role/abc', assumedRoleId: 'AROAEXAMPLE:abc' },
        credentials: {
          accessKeyId: opts.accessKeyId ?? `ASIA${randomBytes(8).toString('hex').toUpperCase()}`,
          secretAccessKey: randomBytes(30).toString('base64'),
          sessionToken: randomBytes(64).toString('base64'),
          expiration,
        },
        packedPolicySize: 0,
        roleArn: ROLE_ARN,
        sourceIdentity: 'CN=test-client',
      },
    ],
    subjectArn: 'arn:aws:rolesanywhere:us-east-1:123456789012:subject/11111111-2222-3333-4444-555555555555',
  };
}

/** A script answering every CreateSession with fresh credentials (201), as the service does. */
export const freshCredentials: Script = (_req, res) => {
  res.writeHead(201, { 'content-type': 'application/json' });
  res.end(JSON.stringify(fakeCredentials()));
};

export function errorBody(type: string, message: string): Script {
  return { status: type === 'AccessDeniedException' ? 403 : type === 'ResourceNotFoundException' ? 404 : type === 'ThrottlingException' ? 429 : 400, body: { message }, headers: { 'x-amzn-errortype': type } };
}

function handler(server: FakeServer, waiters: Set<() => void>, sockets: Set<net.Socket>) {
  return (req: http.IncomingMessage, res: http.ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const rec: RecordedRequest = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString('utf8') };
      const idx = server.requests.length;
      server.requests.push(rec);
      for (const w of waiters) w();
      const s = server.script[Math.min(idx, server.script.length - 1)];
      if (!s) {
        res.writeHead(500).end();
        return;
      }
      if (typeof s === 'function') return s(rec, res);
      if ('hang' in s) return;
      if ('drop' in s) {
        req.socket.destroy();
        return;
      }
      const body = s.body === undefined ? '' : typeof s.body === 'string' ? s.body : JSON.stringify(s.body);
      res.writeHead(s.status, { 'content-type': 'application/json', ...(s.headers ?? {}) });
      res.end(body);
    });
    void sockets;
  };
}

async function listen(t: Test, server: http.Server | https.Server, fake: Omit<FakeServer, 'url' | 'port'>, scheme: string, host: string): Promise<FakeServer> {
  const sockets = new Set<net.Socket>();
  server.on('connection', (s: net.Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  t.teardown(
    () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  );
  const out = fake as FakeServer;
  out.port = port;
  out.url = `${scheme}://${host}:${port}`;
  return out;
}

function makeFake(script: Script[]): { fake: Omit<FakeServer, 'url' | 'port'>; waiters: Set<() => void> } {
  const waiters = new Set<() => void>();
  const fake = {
    requests: [] as RecordedRequest[],
    script,
    waitForRequests(n: number): Promise<void> {
      return new Promise<void>((resolve) => {
        const check = () => {
          if (fake.requests.length >= n) {
            waiters.delete(check);
            resolve();
          }
        };
        waiters.add(check);
        check();
      });
    },
  };
  return { fake, waiters };
}

/** A plain-http fake Roles Anywhere on 127.0.0.1. */
export async function startFakeServer(t: Test, script: Script[]): Promise<FakeServer> {
  const { fake, waiters } = makeFake(script);
  const sockets = new Set<net.Socket>();
  const server = http.createServer(handler(fake as FakeServer, waiters, sockets));
  return listen(t, server, fake, 'http', '127.0.0.1');
}

export interface ServerCert {
  certPath: string;
  keyPath: string;
}

/** A TLS server certificate for `hostnames` (DNS or IP SANs), issued by `issuer`. */
export async function makeServerCert(dir: string, issuer: CertFiles, hostnames: string[]): Promise<ServerCert> {
  const base = join(dir, `server-${randomBytes(4).toString('hex')}`);
  const keyPath = `${base}.key`;
  await openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', keyPath]);
  await openssl(['req', '-new', '-key', keyPath, '-subj', `/CN=${hostnames[0]}`, '-out', `${base}.csr`]);
  const san = hostnames.map((h) => (net.isIP(h) ? `IP:${h}` : `DNS:${h}`)).join(',');
  await writeFile(`${base}.ext`, `basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=${san}\n`);
  await openssl(['x509', '-req', '-in', `${base}.csr`, '-CA', issuer.certPath, '-CAkey', issuer.keyPath, '-set_serial', '4242', '-days', '30', '-sha256', '-extfile', `${base}.ext`, '-out', `${base}.pem`]);
  return { certPath: `${base}.pem`, keyPath };
}

/** An https fake Roles Anywhere on 127.0.0.1, reached as `https://<host>:port`. */
export async function startFakeHttpsServer(t: Test, script: Script[], cert: ServerCert, host = '127.0.0.1'): Promise<FakeServer> {
  const { fake, waiters } = makeFake(script);
  const sockets = new Set<net.Socket>();
  const server = https.createServer({ cert: await readFile(cert.certPath), key: await readFile(cert.keyPath) }, handler(fake as FakeServer, waiters, sockets));
  return listen(t, server, fake, 'https', host);
}

export interface FakeProxy {
  url: string;
  port: number;
  /** `host:port` of each CONNECT received. */
  connects: string[];
  /** Answer CONNECT with this status instead of tunnelling. */
  refuseWith?: number;
}

/**
 * A CONNECT proxy on 127.0.0.1. Every target host is connected to on
 * 127.0.0.1 (so a made-up host name proves the request went through it).
 */
export async function startConnectProxy(t: Test): Promise<FakeProxy> {
  const proxy: FakeProxy = { url: '', port: 0, connects: [] };
  const sockets = new Set<net.Socket>();
  const server = http.createServer((_req, res) => res.writeHead(405).end());
  server.on('connect', (req: http.IncomingMessage, client: net.Socket, head: Buffer) => {
    sockets.add(client);
    client.on('error', () => undefined);
    proxy.connects.push(req.url ?? '');
    if (proxy.refuseWith) {
      const text = proxy.refuseWith === 407 ? 'Proxy Authentication Required' : 'Forbidden';
      client.end(`HTTP/1.1 ${proxy.refuseWith} ${text}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`);
      return;
    }
    const port = Number((req.url ?? '').split(':').pop());
    const upstream = net.connect(port, '127.0.0.1', () => {
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (head.length) upstream.write(head);
      upstream.pipe(client);
      client.pipe(upstream);
    });
    sockets.add(upstream);
    upstream.on('error', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  proxy.port = (server.address() as net.AddressInfo).port;
  proxy.url = `http://127.0.0.1:${proxy.port}`;
  t.teardown(
    () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  );
  return proxy;
}
