import { createPublicKey, X509Certificate, type KeyObject } from 'node:crypto';
import { isSea } from 'node:sea';
import { parentPort, Worker } from 'node:worker_threads';
import { UserError } from '../../../errors.js';
import { spkiOf } from '../../keys.js';
import { redactPkcs11Uri } from '../../pkcs11-uri.js';
import type { KeySourceOptions, SourceCertificate } from '../../types.js';
import { SIGNING_ALGORITHMS, type SignDigest, type Signer } from '../../signer.js';
import { clampDelay } from '../../../timers.js';
import { loadBinding } from './binding.js';
import { type ListedCertificate, listCertificatesHere, openHere, readCertificateHere } from './local.js';

type Pkcs11Options = KeySourceOptions;
// The token is driven from a worker thread. Most PKCS#11 calls are
// synchronous; a module that hangs instead of failing (a network HSM that
// stops answering) must not stall the daemon's routes. Every call has a
// deadline: past it the call fails like a failed refresh, the worker is
// abandoned, and no new one starts until the stuck call returns (so an outage
// does not pile up threads); then the next call opens the token afresh in a
// new worker.

/**
 * The worker's entry file, next to this one: in dist/ `pkcs11-worker.js` beside
 * `worker-host.js`, in the bundle (scripts/bundle.js) `pkcs11-worker.js` beside `main.js`.
 * Not this module's own URL: in the bundle that is the CLI's entry point.
 */
const WORKER_ENTRY = new URL('./pkcs11-worker.js', import.meta.url);
let callTimeoutMs = { open: 60_000, sign: 30_000, close: 10_000 };

/** Shorter deadlines for tests that make a module hang (not a user setting). */
export function setPkcs11Deadlines(ms: number): void {
  callTimeoutMs = { open: ms, sign: ms, close: ms };
}

/** KeySourceOptions as they cross to the worker (a certificate as DER). */
type WireOptions = Omit<Pkcs11Options, 'certificate'> & { certificateDer?: Buffer };
type Call =
  | { op: 'open'; spec: string; options: WireOptions }
  | { op: 'readCertificate'; spec: string; options: WireOptions }
  | { op: 'listCertificates'; spec: string; options: WireOptions }
  | { op: 'sign'; signer: number; data: Uint8Array; digest: SignDigest }
  | { op: 'close'; signer: number };
type Request = Call & { id: number };
interface OpenedKey {
  signer: number;
  spki: Uint8Array;
  keyAlgorithm: 'RSA' | 'EC';
  description: string;
}
interface Reply {
  id: number;
  value?: unknown;
  error?: { message: string; reason?: string; user: boolean };
}

function toWire(options: Pkcs11Options): WireOptions {
  const { certificate, ...rest } = options;
  return certificate ? { ...rest, certificateDer: certificate.raw } : rest;
}

function fromWire(options: WireOptions): Pkcs11Options {
  const { certificateDer, ...rest } = options;
  return certificateDer ? { ...rest, certificate: new X509Certificate(Buffer.from(certificateDer)) } : rest;
}

/** Runs in the worker thread (pkcs11-worker.ts): answers the main thread's calls. */
export function serveWorker(): void {
  const port = parentPort!;
  const signers = new Map<number, Signer>();
  let next = 1;
  port.on('message', (req: Request) => {
    void (async (): Promise<unknown> => {
      switch (req.op) {
        case 'open': {
          const signer = await openHere(req.spec, fromWire(req.options));
          const id = next++;
          signers.set(id, signer);
          const opened: OpenedKey = { signer: id, spki: spkiOf(signer.publicKey), keyAlgorithm: signer.keyAlgorithm as 'RSA' | 'EC', description: signer.describe() };
          return opened;
        }
        case 'readCertificate': {
          const c = await readCertificateHere(req.spec, fromWire(req.options));
          return { ...c, keyOptions: toWire(c.keyOptions) };
        }
        case 'listCertificates':
          return listCertificatesHere(req.spec, fromWire(req.options));
        case 'sign': {
          const signer = signers.get(req.signer);
          if (!signer) throw new Error('PKCS#11 signer is closed');
          return signer.sign(Buffer.from(req.data), req.digest);
        }
        case 'close': {
          const signer = signers.get(req.signer);
          signers.delete(req.signer);
          await signer?.close?.();
          return undefined;
        }
      }
    })().then(
      (value) => port.postMessage({ id: req.id, value } satisfies Reply),
      (err: unknown) =>
        port.postMessage({
          id: req.id,
          error: { message: err instanceof Error ? err.message : String(err), reason: (err as UserError).reason, user: err instanceof UserError },
        } satisfies Reply),
    );
  });
  port.postMessage({ id: 0 } satisfies Reply); // ready: deadlines start now, not during the thread's start-up
}

class WorkerHost {
  private worker: Worker | undefined;
  /** A worker given up on after a deadline, until its stuck call returns. */
  private stuck: { since: Date; what: string } | undefined;
  /** Bumped when a worker is given up on: signers opened in an older one reopen. */
  generation = 0;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: unknown) => void; timer: NodeJS.Timeout }>();
  private next = 1;

  /** Resolves when the current worker has loaded this module and listens. */
  private ready: Promise<void> = Promise.resolve();
  private markReady: () => void = () => undefined;

  private get(): Worker {
    if (this.stuck) {
      throw new UserError(
        `PKCS#11 module still not answering (a call for ${this.stuck.what} has been stuck since ${this.stuck.since.toISOString()}); ` +
          'the token or HSM is unreachable — will retry at the next refresh',
        { reason: 'pkcs11_timeout' },
      );
    }
    if (this.worker) return this.worker;
    const w = new Worker(WORKER_ENTRY);
    this.ready = new Promise<void>((resolve) => (this.markReady = resolve));
    w.on('message', (r: Reply) => this.settle(r));
    w.on('error', (err) => this.giveUp(w, new UserError(`PKCS#11 worker failed: ${err.message}`, { reason: 'pkcs11_module', cause: err })));
    w.on('exit', () => {
      if (this.stuckWorker === w) this.stuck = undefined;
      this.giveUp(w, new UserError('PKCS#11 worker exited', { reason: 'pkcs11_module' }));
    });
    w.unref(); // after the listeners, which would ref it: only calls in progress keep the process alive, not the idle worker
    this.worker = w;
    return w;
  }

  private stuckWorker: Worker | undefined;

  /** Calls in progress: while there are any, the worker keeps the process alive. */
  private inFlight = 0;

  async call<T>(request: Call, what: string, timeoutMs: number): Promise<T> {
    const w = this.get();
    this.inFlight++;
    w.ref();
    try {
      await this.ready;
      if (this.worker !== w) throw new UserError(`${what}: the PKCS#11 worker thread failed to start`, { reason: 'pkcs11_module' });
      return await this.send<T>(w, request, what, timeoutMs);
    } finally {
      if (--this.inFlight === 0) w.unref();
    }
  }

  private send<T>(w: Worker, request: Call, what: string, timeoutMs: number): Promise<T> {
    const id = this.next++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        const err = new UserError(`${what}: the PKCS#11 module did not answer within ${timeoutMs / 1000} s (token or HSM unreachable?); will retry at the next refresh`, {
          reason: 'pkcs11_timeout',
        });
        reject(err);
        this.stuck = { since: new Date(), what };
        this.stuckWorker = w;
        this.giveUp(w, err);
        // The thread cannot be stopped inside the module; it ends when the call returns.
        void w.terminate().catch(() => undefined);
      }, clampDelay(timeoutMs));
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject, timer });
      w.postMessage({ ...request, id });
    });
  }

  private settle(r: Reply): void {
    if (r.id === 0) return this.markReady();
    const p = this.pending.get(r.id);
    if (!p) return;
    clearTimeout(p.timer);
    this.pending.delete(r.id);
    if (!r.error) p.resolve(r.value);
    else p.reject(r.error.user ? new UserError(r.error.message, r.error.reason ? { reason: r.error.reason } : {}) : new Error(r.error.message));
  }

  private giveUp(w: Worker, err: unknown): void {
    if (this.worker !== w) return;
    this.worker = undefined;
    this.markReady();
    this.generation++;
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(err);
    }
    this.pending.clear();
  }
}

let host: WorkerHost | undefined;

function workerHost(): WorkerHost {
  if (isSea()) loadBinding(); // says plainly that the single-file executable cannot do PKCS#11
  return (host ??= new WorkerHost());
}

/** The main thread's view of a key in the worker: the public key here, signing there. */
class RemoteSigner implements Signer {
  readonly kind = 'pkcs11';
  readonly keyAlgorithm: 'RSA' | 'EC';
  readonly algorithm: Signer['algorithm'];
  readonly publicKey: KeyObject;
  private readonly description: string;
  private closed = false;

  constructor(
    private readonly spec: string,
    private readonly options: Pkcs11Options,
    private opened: OpenedKey,
    private generation: number,
  ) {
    this.publicKey = createPublicKey({ key: Buffer.from(opened.spki), format: 'der', type: 'spki' });
    this.keyAlgorithm = opened.keyAlgorithm;
    this.algorithm = SIGNING_ALGORITHMS[this.keyAlgorithm];
    this.description = opened.description;
  }

  describe(): string {
    return this.description;
  }

  async sign(data: Buffer, digest: SignDigest = 'sha256'): Promise<Buffer> {
    if (this.closed) throw new Error('PKCS#11 signer used after close');
    const h = workerHost();
    if (this.generation !== h.generation) {
      // The worker holding the session was given up on: open the key again in a new one.
      const generation = h.generation;
      const opened = await h.call<OpenedKey>({ op: 'open', spec: this.spec, options: toWire(this.options) }, this.description, callTimeoutMs.open);
      if (!Buffer.from(opened.spki).equals(spkiOf(this.publicKey))) {
        throw new UserError(`${this.description}: the key on the token is no longer the one loaded at start; reload the daemon after replacing a key`, {
          reason: 'pkcs11_key_changed',
        });
      }
      this.opened = opened;
      this.generation = generation;
    }
    const signature = await h.call<Uint8Array>({ op: 'sign', signer: this.opened.signer, data, digest }, this.description, callTimeoutMs.sign);
    return Buffer.from(signature);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const h = workerHost();
    if (this.generation !== h.generation) return;
    await h.call({ op: 'close', signer: this.opened.signer }, this.description, callTimeoutMs.close).catch(() => undefined);
  }
}

/** Opens the private key a pkcs11: URI names; the token session lives in the PKCS#11 worker thread. */
export async function open(spec: string, options: Pkcs11Options = {}): Promise<Signer> {
  const h = workerHost();
  const generation = h.generation;
  const opened = await h.call<OpenedKey>({ op: 'open', spec, options: toWire(options) }, redactPkcs11Uri(spec), callTimeoutMs.open);
  return new RemoteSigner(spec, options, opened, generation);
}

/** Reads the X.509 certificate a `--certificate pkcs11:…` URI names. */
export async function readCertificate(spec: string, options: Pkcs11Options = {}): Promise<SourceCertificate> {
  const c = await workerHost().call<Omit<SourceCertificate, 'keyOptions'> & { keyOptions: WireOptions }>(
    { op: 'readCertificate', spec, options: toWire(options) },
    redactPkcs11Uri(spec),
    callTimeoutMs.open,
  );
  return { ...c, der: Buffer.from(c.der), keyOptions: fromWire(c.keyOptions) };
}

/** Every X.509 certificate a `pkcs11:` URI matches, with a URI naming each (`read-certificate-data`). */
export async function listCertificates(spec: string, options: Pkcs11Options = {}): Promise<ListedCertificate[]> {
  const list = await workerHost().call<ListedCertificate[]>({ op: 'listCertificates', spec, options: toWire(options) }, redactPkcs11Uri(spec), callTimeoutMs.open);
  return list.map((c) => ({ der: Buffer.from(c.der), uri: c.uri }));
}
