// Local stand-in for IAM Roles Anywhere (CreateSession) and STS
// (GetCallerIdentity, AssumeRole), strict like the service, observable (stats, per-call
// log, issued credentials) and controllable (fault injection, credential
// lifetime), in process or over HTTP:
//   POST   /_emulator/faults    JSON rule or array of rules: replace the faults (?append=1 adds)
//   GET    /_emulator/faults    the current rules
//   DELETE /_emulator/faults    clear them
//   GET    /_emulator/stats     counters and per-call log (no secrets)
//   DELETE /_emulator/stats     reset counters and the log
//   POST   /_emulator/lifetime  {"seconds": N}: cap on issued credential lifetimes
//   GET    /_emulator/issued    issued credentials without secrets (accessKeyId, expiration, serial, roleArn)
//   POST   /_emulator/ratelimit {"perSecond": N, "burst": M}: the account's CreateSession quota (429 over it)
//   DELETE /_emulator/ratelimit no quota
import { certificateBlocks } from '../identity/pem.js';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { X509Certificate } from 'node:crypto';
import { UserError } from '../errors.js';
import { createSession } from './create-session.js';
import { FaultSet, parseFaultRules, type FaultRule } from './faults.js';
import { parseRateLimit, RateLimiter, type RateLimit } from './rate-limit.js';
import { defaultMessageForStatus, errorTypeForStatus, json, restJsonError, type Answer, type ReceivedRequest } from './http.js';
import { emptyStats, isoSeconds, recordCall, type CallRecord, type EmulatorOperation, type EmulatorState, type EmulatorStats, type IssuedCredential } from './state.js';
import { handleSts, isStsRequest, stsAction, stsError } from './sts.js';
import type { AssumableRole } from './state.js';
import { clampDelay } from '../timers.js';

export type { FaultRule, EmulatorStats, IssuedCredential, CallRecord };

export interface EmulatorOptions {
  /** PEM text of the trust anchor CA certificates (each string may hold several). */
  trustAnchorCaPems: string[];
  /** Cap on issued lifetimes: expiration = now + min(durationSeconds, cap). Default 3600. */
  credentialLifetimeSeconds?: number;
  /** If set, requests scoped to another region are refused. */
  region?: string;
  /** If set, other trust anchors → ResourceNotFoundException. */
  trustAnchorArns?: string[];
  /** If set, other profiles → ResourceNotFoundException. */
  profileArns?: string[];
  /** If set, other roles → AccessDeniedException (role not in profile). */
  roleArns?: string[];
  /** Roles STS AssumeRole gives, each with the ExternalId its trust policy requires (if any); unset: any role. */
  assumableRoles?: AssumableRole[];
  /** The account's CreateSession quota: calls over it get 429 ThrottlingException. Default: none. */
  rateLimit?: RateLimit;
  /** Allowed |X-Amz-Date − now|, default 300. */
  maxSkewSeconds?: number;
  /** Default 0 (random). */
  port?: number;
  /** Loopback only; default 127.0.0.1. */
  host?: string;
  /** Don't log calls to stderr (default false: one line per call). */
  quiet?: boolean;
  /** Called once per call (after it is answered); replaces stderr logging. */
  onCall?: (call: CallRecord) => void;
  /** Clock, for tests. */
  now?: () => Date;
}

export interface Emulator {
  /** Base URL, e.g. http://127.0.0.1:41234 (no trailing slash). */
  url: string;
  port: number;
  host: string;
  /** Live counters and per-call log. */
  readonly stats: EmulatorStats;
  /** Every credential issued, oldest first. Holds secrets: never log it. */
  readonly issued: IssuedCredential[];
  /** Replaces the fault rules. */
  setFaults(rules: FaultRule[] | FaultRule): void;
  /** Appends fault rules. */
  addFaults(rules: FaultRule[] | FaultRule): void;
  clearFaults(): void;
  setCredentialLifetime(seconds: number): void;
  /** Sets (or with undefined removes) the CreateSession quota. */
  setRateLimit(limit: RateLimit | undefined): void;
  /** Replaces the trusted CA certificates (CA rotation tests). */
  setTrustAnchorCas(pems: string[]): void;
  resetStats(): void;
  close(): Promise<void>;
}

const MAX_BODY = 64 * 1024;
const LOOPBACK = /^(127\.\d+\.\d+\.\d+|::1|localhost)$/;

/**
 * The trust anchors' certificates. Like the service, only CA certificates
 * (basicConstraints CA:TRUE) can be trust anchors: a client certificate given
 * by mistake is refused here instead of making every request fail later.
 */
export function parseCaPems(pems: string[]): X509Certificate[] {
  const out: X509Certificate[] = [];
  for (const pem of pems) {
    const blocks = certificateBlocks(pem);
    if (blocks.length === 0) throw new UserError('not a PEM certificate (no -----BEGIN CERTIFICATE----- block)');
    for (const b of blocks) {
      let cert: X509Certificate;
      try {
        cert = new X509Certificate(b);
      } catch {
        throw new UserError('a PEM block is not a valid X.509 certificate');
      }
      if (!cert.ca) {
        throw new UserError(
          `${cert.subject.replace(/\n/g, ', ')} is not a CA certificate (no basicConstraints CA:TRUE), so it cannot be a trust anchor: ` +
            'give the CA that issued your client certificates (e.g. ca.pem from `pki init`), not the client certificate',
        );
      }
      out.push(cert);
    }
  }
  return out;
}

function validLifetime(seconds: number): number {
  if (!Number.isFinite(seconds) || seconds <= 0) throw new Error(`credential lifetime must be a positive number of seconds, got ${seconds}`);
  return seconds;
}

function formatCall(c: CallRecord): string {
  const parts = [c.time, c.operation, `outcome=${c.outcome}`];
  if (c.reason) parts.push(`reason=${c.reason}`);
  if (c.serial) parts.push(`serial=${c.serial}`);
  if (c.accessKeyId) parts.push(`accessKeyId=${c.accessKeyId}`);
  if (c.message && c.outcome !== 'ok') parts.push(`message=${JSON.stringify(c.message)}`);
  return parts.join(' ');
}

function readBody(req: IncomingMessage): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (d: Buffer) => {
      size += d.length;
      if (size <= MAX_BODY) chunks.push(d);
    });
    req.on('end', () => resolve(size > MAX_BODY ? undefined : Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

export async function startEmulator(options: EmulatorOptions): Promise<Emulator> {
  const host = options.host ?? '127.0.0.1';
  if (!LOOPBACK.test(host)) throw new Error(`emulator host must be a loopback address (127.0.0.1, ::1, localhost), got ${host}`);
  const state: EmulatorState = {
    policy: {
      anchors: parseCaPems(options.trustAnchorCaPems),
      region: options.region,
      trustAnchorArns: options.trustAnchorArns,
      profileArns: options.profileArns,
      roleArns: options.roleArns,
      assumableRoles: options.assumableRoles,
      maxSkewSeconds: options.maxSkewSeconds ?? 300,
    },
    lifetimeSeconds: validLifetime(options.credentialLifetimeSeconds ?? 3600),
    issued: [],
    byAccessKey: new Map(),
    stats: emptyStats(),
    faults: new FaultSet(),
    now: options.now ?? (() => new Date()),
  };
  let quota = options.rateLimit ? new RateLimiter(parseRateLimit(options.rateLimit)) : undefined;
  const log = options.onCall ?? (options.quiet ? undefined : (c: CallRecord) => process.stderr.write(formatCall(c) + '\n'));

  const finish = (operation: EmulatorOperation, time: Date, call: Omit<CallRecord, 'time' | 'operation'>) => {
    const record: CallRecord = { time: time.toISOString(), operation, ...call };
    recordCall(state, record);
    state.stats.faultsInjected = { ...state.faults.fired };
    log?.(record);
  };

  const control = (req: ReceivedRequest): Answer => {
    const url = new URL(req.url, 'http://x');
    const parseBody = (): unknown => JSON.parse(req.body.toString() || 'null');
    try {
      switch (`${req.method} ${url.pathname}`) {
        case 'GET /_emulator/stats':
          return json(200, { ...state.stats, faultsInjected: { ...state.faults.fired }, lifetimeSeconds: state.lifetimeSeconds, issuedCount: state.issued.length });
        case 'DELETE /_emulator/stats':
          emulator.resetStats();
          return json(200, { ok: true });
        case 'GET /_emulator/faults':
          return json(200, state.faults.list());
        case 'POST /_emulator/faults': {
          const rules = parseFaultRules(parseBody());
          if (url.searchParams.get('append')) state.faults.add(rules);
          else state.faults.set(rules);
          return json(200, state.faults.list());
        }
        case 'DELETE /_emulator/faults':
          state.faults.clear();
          return json(200, []);
        case 'POST /_emulator/lifetime': {
          const b = parseBody() as { seconds?: unknown } | number | null;
          const seconds = typeof b === 'number' ? b : Number((b as { seconds?: unknown } | null)?.seconds);
          state.lifetimeSeconds = validLifetime(seconds);
          return json(200, { lifetimeSeconds: state.lifetimeSeconds });
        }
        case 'POST /_emulator/ratelimit':
          quota = new RateLimiter(parseRateLimit(parseBody()));
          return json(200, quota.limit);
        case 'DELETE /_emulator/ratelimit':
          quota = undefined;
          return json(200, {});
        case 'GET /_emulator/issued':
          return json(
            200,
            state.issued.map((c) => ({
              accessKeyId: c.accessKeyId,
              expiration: isoSeconds(c.expiration),
              issuedAt: c.issuedAt.toISOString(),
              serial: c.serial,
              roleArn: c.roleArn,
              assumedRoleArn: c.assumedRoleArn,
            })),
          );
        default:
          return restJsonError(404, 'ResourceNotFoundException', `unknown emulator control ${req.method} ${url.pathname}`);
      }
    } catch (err) {
      return restJsonError(400, 'ValidationException', err instanceof Error ? err.message : String(err));
    }
  };

  const handle = async (req: ReceivedRequest, received: Date): Promise<Answer> => {
    const path = req.url.split('?')[0];
    if (path?.startsWith('/_emulator/')) return control(req);

    let operation: EmulatorOperation;
    if (req.method === 'POST' && path === '/sessions') operation = 'CreateSession';
    else if (isStsRequest(req)) operation = stsAction(req) === 'AssumeRole' ? 'AssumeRole' : 'GetCallerIdentity';
    else return restJsonError(404, 'UnknownOperationException', `No operation for ${req.method} ${path}`);

    if (operation === 'CreateSession' && quota && !quota.take()) {
      finish(operation, received, { outcome: 'ThrottlingException', reason: 'rate_limit' });
      return restJsonError(429, 'ThrottlingException', 'Rate exceeded');
    }
    const decision = state.faults.decide(operation);
    if (decision.delayMs > 0) await new Promise<void>((r) => setTimeout(r, clampDelay(decision.delayMs)).unref?.());
    const rule = decision.rule;
    if (rule && (rule.kind === 'drop' || rule.kind === 'status' || rule.kind === 'malformed')) {
      let answer: Answer;
      let outcome: string;
      if (rule.kind === 'drop') {
        answer = { drop: true };
        outcome = 'fault:drop';
      } else if (rule.kind === 'malformed') {
        const body = rule.body ?? '{"credentialSet":[{"credentials":{"accessKeyId":"ASIA';
        answer = { status: operation === 'CreateSession' ? 201 : 200, headers: { 'Content-Type': 'application/json' }, body };
        outcome = 'fault:malformed';
      } else {
        const type = rule.errorType ?? errorTypeForStatus(rule.status);
        const message = rule.message ?? defaultMessageForStatus(rule.status);
        answer = operation === 'CreateSession' ? restJsonError(rule.status, type, message) : stsError('query', rule.status, type, message);
        outcome = type;
      }
      finish(operation, received, { outcome, reason: `fault:${rule.kind}` });
      return answer;
    }
    const result = operation === 'CreateSession' ? createSession(state, req, rule) : handleSts(state, req);
    finish(operation, received, result.call);
    return result.answer;
  };

  const sockets = new Set<Socket>();
  // ML-DSA-87 makes big headers: a ~7.5 KB certificate (10 KB of base64) plus a
  // 4627-byte signature (9 KB of hex), past Node's default 16 KiB header limit.
  const server = createServer({ keepAliveTimeout: 5000, maxHeaderSize: 64 * 1024 }, (req: IncomingMessage, res: ServerResponse) => {
    const received = state.now();
    readBody(req)
      .then(async (body) => {
        if (body === undefined) return restJsonError(413, 'ValidationException', `request body over ${MAX_BODY} bytes`);
        return handle({ method: req.method ?? 'GET', url: req.url ?? '/', headers: req.headers, body }, received);
      })
      .catch((err: unknown): Answer => restJsonError(500, 'InternalServerException', `emulator error: ${err instanceof Error ? err.message : String(err)}`))
      .then((answer) => {
        if ('drop' in answer) {
          req.socket.destroy();
          return;
        }
        res.writeHead(answer.status, { ...answer.headers, 'Content-Length': Buffer.byteLength(answer.body) });
        res.end(answer.body);
      });
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : 0;
  const urlHost = host.includes(':') ? `[${host}]` : host;

  let closed: Promise<void> | undefined;
  const emulator: Emulator = {
    url: `http://${urlHost}:${port}`,
    port,
    host,
    get stats() {
      state.stats.faultsInjected = { ...state.faults.fired };
      return state.stats;
    },
    get issued() {
      return state.issued;
    },
    setFaults(rules) {
      state.faults.set(parseFaultRules(rules));
    },
    addFaults(rules) {
      state.faults.add(parseFaultRules(rules));
    },
    clearFaults() {
      state.faults.clear();
    },
    setCredentialLifetime(seconds) {
      state.lifetimeSeconds = validLifetime(seconds);
    },
    setRateLimit(limit) {
      quota = limit === undefined ? undefined : new RateLimiter(parseRateLimit(limit));
    },
    setTrustAnchorCas(pems) {
      state.policy.anchors = parseCaPems(pems);
    },
    resetStats() {
      state.stats = emptyStats();
      for (const k of Object.keys(state.faults.fired)) delete state.faults.fired[k];
    },
    close() {
      closed ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
      });
      return closed;
    },
  };
  return emulator;
}
