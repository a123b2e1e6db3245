import http from 'node:http';
import https from 'node:https';
import { BlockList, isIP } from 'node:net';
import type { Socket } from 'node:net';
import { UserError } from '../errors.js';
import { isLoopbackHostname } from '../net/loopback.js';
import { RolesAnywhereError } from './errors.js';
import { clampDelay } from '../timers.js';

export interface HttpResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

export interface RequestOptions {
  method: string;
  headers: Record<string, string>;
  body: string;
  /** Connection agent (direct or CONNECT proxy). */
  agent: http.Agent;
  /** TLS trust for the endpoint (passed per request so it also applies through a proxy tunnel). */
  tls?: TlsOptions;
  /** TCP connect (and TLS handshake) deadline (default DEFAULT_CONNECT_TIMEOUT_MS). */
  connectTimeoutMs?: number;
  /**
   * Whole attempt deadline: connect, send, wait, and read the whole body
   * (default DEFAULT_REQUEST_TIMEOUT_MS). Never only an idle timeout: a server
   * that sends a byte every few seconds cannot hold a request open.
   */
  timeoutMs?: number;
  signal?: AbortSignal;
  /** Largest body we accept (defence against a misbehaving endpoint). */
  maxBodyBytes?: number;
}

/** Connect deadline of every outbound request that names none. */
export const DEFAULT_CONNECT_TIMEOUT_MS = 5_000;
/** Overall deadline (body included) of every outbound request that names none. */
export const DEFAULT_REQUEST_TIMEOUT_MS = 15_000;

/** A transport deadline passed; `phase` says which. */
export class TimeoutError extends Error {
  readonly code = 'ETIMEDOUT';
  constructor(readonly phase: 'connect' | 'response', readonly ms: number) {
    super(phase === 'connect' ? `no connection within ${ms} ms` : `no complete answer within ${ms} ms`);
    this.name = 'TimeoutError';
  }
}

/** A proxy answered CONNECT with something other than 200. */
export class ProxyRefusedError extends Error {
  readonly code = 'EPROXY';
  constructor(readonly status: number, readonly statusText: string) {
    super(`proxy answered CONNECT with ${status} ${statusText}`);
    this.name = 'ProxyRefusedError';
  }
}

/**
 * One HTTP exchange with deadlines and abort; resolves on any HTTP status.
 * The one outbound transport (Roles Anywhere, the cluster's JWKS, STS): every
 * request has a connect deadline and an overall one that covers the body.
 */
export function httpRequest(url: URL, opts: RequestOptions): Promise<HttpResponse> {
  const connectTimeoutMs = opts.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
  const timeoutMs = opts.timeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
  return new Promise((resolve, reject) => {
    if (opts.signal?.aborted) {
      reject(opts.signal.reason);
      return;
    }
    const mod = url.protocol === 'https:' ? https : http;
    const maxBody = opts.maxBodyBytes ?? 1024 * 1024;
    let settled = false;
    const timers: NodeJS.Timeout[] = [];
    const finish = (err: unknown, res?: HttpResponse) => {
      if (settled) return;
      settled = true;
      for (const t of timers) clearTimeout(t);
      opts.signal?.removeEventListener('abort', onAbort);
      if (err !== undefined) reject(err);
      else resolve(res!);
    };
    const req = mod.request(url, {
      method: opts.method,
      headers: { ...opts.headers, 'Content-Length': String(Buffer.byteLength(opts.body)) },
      agent: opts.agent,
      ...(url.protocol === 'https:' ? opts.tls : {}),
    });
    const onAbort = () => {
      const reason = opts.signal!.reason;
      finish(reason);
      req.destroy();
    };
    opts.signal?.addEventListener('abort', onAbort, { once: true });

    const connectTimer = setTimeout(() => {
      const err = new TimeoutError('connect', connectTimeoutMs);
      finish(err);
      req.destroy(err);
    }, clampDelay(connectTimeoutMs));
    timers.push(connectTimer);
    timers.push(
      setTimeout(() => {
        const err = new TimeoutError('response', timeoutMs);
        finish(err);
        req.destroy(err);
      }, clampDelay(timeoutMs)),
    );

    req.on('proxyConnect', (res: { statusCode: number; statusText?: string }) => {
      if (res.statusCode !== 200) {
        const err = new ProxyRefusedError(res.statusCode, res.statusText ?? '');
        finish(err);
        req.destroy(err);
      }
    });
    req.on('socket', (socket: Socket) => {
      const connected = () => clearTimeout(connectTimer);
      const s = socket as Socket & { encrypted?: boolean; connecting: boolean };
      if (s.encrypted) {
        // TLS: the handshake counts as part of connecting.
        if ((s as unknown as { _secureEstablished?: boolean })._secureEstablished) connected();
        else s.once('secureConnect', connected);
      } else if (s.connecting) {
        s.once('connect', connected);
      } else {
        connected();
      }
    });
    req.on('error', (err) => finish(err));
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size > maxBody) {
          const err = new Error(`response body larger than ${maxBody} bytes`);
          (err as NodeJS.ErrnoException).code = 'EBODYTOOLARGE';
          finish(err);
          req.destroy(err);
          return;
        }
        chunks.push(c);
      });
      res.on('error', (err) => finish(err));
      res.on('aborted', () => finish(Object.assign(new Error('connection closed mid-response'), { code: 'ECONNRESET' })));
      res.on('end', () => {
        finish(undefined, { status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') });
      });
    });
    req.end(opts.body);
  });
}

// ---------------------------------------------------------------- proxies

export interface ProxyEnv {
  HTTPS_PROXY?: string;
  https_proxy?: string;
  NO_PROXY?: string;
  no_proxy?: string;
}

/** `http://user:pass@host:port` → `http://host:port` for messages. */
export function redactProxy(url: URL): string {
  return `${url.protocol}//${url.host}`;
}

/** Parses HTTPS_PROXY; a bare `host:port` means http://host:port (as curl and Go do). */
export function parseProxyUrl(value: string, varName = 'HTTPS_PROXY'): URL {
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(value) ? value : `http://${value}`;
  const url = URL.parse(withScheme);
  if (!url) {
    throw new UserError(`${varName} is not a valid proxy URL: set it to http://host:port (or https://host:port)`, { reason: 'invalid_proxy' });
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new UserError(`${varName} uses ${url.protocol}// proxies, which are not supported: use an http:// or https:// proxy`, {
      reason: 'invalid_proxy',
    });
  }
  if (!url.hostname) throw new UserError(`${varName} has no host: set it to http://host:port`, { reason: 'invalid_proxy' });
  return url;
}

/**
 * True when NO_PROXY says to connect to `host:port` directly. Entries are
 * comma/space separated: `*`, a host name (matching it and its subdomains,
 * with or without a leading dot or `*.`), an IP, an IP/CIDR, each optionally
 * with `:port`.
 */
export function matchesNoProxy(noProxy: string, hostname: string, port: number): boolean {
  const host = hostname.replace(/^\[|\]$/g, '').toLowerCase().replace(/\.$/, '');
  for (let entry of noProxy.split(/[\s,]+/)) {
    entry = entry.trim().toLowerCase();
    if (!entry) continue;
    if (entry === '*') return true;
    let entryPort: number | undefined;
    const v6 = /^\[([^\]]+)\](?::(\d+))?$/.exec(entry);
    if (v6) {
      entry = v6[1]!;
      if (v6[2]) entryPort = Number(v6[2]);
    } else if (isIP(entry.split('/')[0]!) !== 6) {
      const m = /^(.*):(\d+)$/.exec(entry);
      if (m) {
        entry = m[1]!;
        entryPort = Number(m[2]);
      }
    }
    if (entryPort !== undefined && entryPort !== port) continue;
    const [addr, bits] = entry.split('/');
    const fam = isIP(addr!);
    if (fam !== 0) {
      const hostFam = isIP(host);
      if (hostFam === 0) continue;
      if (bits === undefined) {
        if (addr === host) return true;
        continue;
      }
      const list = new BlockList();
      try {
        list.addSubnet(addr!, Number(bits), fam === 4 ? 'ipv4' : 'ipv6');
      } catch {
        continue;
      }
      if (list.check(host, hostFam === 4 ? 'ipv4' : 'ipv6')) return true;
      continue;
    }
    const domain = entry.replace(/^\*?\./, '');
    if (host === domain || host.endsWith(`.${domain}`)) return true;
  }
  return false;
}

/** The proxy to use for `target`, or undefined for a direct connection. Loopback targets are never proxied. */
export function proxyFor(target: URL, env: ProxyEnv = process.env): URL | undefined {
  if (target.protocol !== 'https:') return undefined;
  if (isLoopbackHostname(target.hostname)) return undefined;
  const raw = env.HTTPS_PROXY || env.https_proxy;
  if (!raw) return undefined;
  const name = env.HTTPS_PROXY ? 'HTTPS_PROXY' : 'https_proxy';
  const noProxy = env.NO_PROXY ?? env.no_proxy ?? '';
  const port = target.port ? Number(target.port) : 443;
  if (noProxy && matchesNoProxy(noProxy, target.hostname, port)) return undefined;
  return parseProxyUrl(raw, name);
}

export interface TlsOptions {
  /** Trusted roots (PEM): Node's defaults plus any extra bundle. Omitted → Node's defaults. */
  ca?: string[];
  rejectUnauthorized: boolean;
}

/**
 * A connection agent for one endpoint, optionally tunnelling through a
 * CONNECT proxy (whose own TLS, for https:// proxies, uses the same trust).
 * No keep-alive: refreshes are minutes apart and a stale pooled socket would
 * only cost a retry.
 */
export async function makeAgent(target: URL, tls: TlsOptions, proxy?: URL): Promise<http.Agent> {
  if (target.protocol === 'http:') return new http.Agent({ keepAlive: false });
  if (proxy) {
    // Loaded on first use: most daemons never use a proxy, and the module graph costs resident memory.
    const { HttpsProxyAgent } = await import('https-proxy-agent');
    return new HttpsProxyAgent(proxy.href, { ...tls, keepAlive: false }) as unknown as http.Agent;
  }
  return new https.Agent({ ...tls, keepAlive: false });
}

export function proxyRefusedError(err: ProxyRefusedError, proxy: URL, service = 'Roles Anywhere'): RolesAnywhereError {
  const hint =
    err.status === 407
      ? 'the proxy needs authentication — put user:password in HTTPS_PROXY (http://user:password@host:port)'
      : err.status === 403
        ? 'the proxy does not allow connections to this endpoint — ask for it to be allowed, or add it to NO_PROXY if it is reachable directly'
        : 'check the proxy, or add the endpoint to NO_PROXY if it is reachable directly';
  return new RolesAnywhereError(`the proxy ${redactProxy(proxy)} refused to connect to ${service} (${err.status} ${err.statusText}): ${hint}`, {
    reason: 'proxy',
    retryable: err.status >= 500,
    status: err.status,
    cause: err,
  });
}
