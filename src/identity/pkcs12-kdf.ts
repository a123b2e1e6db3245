// The PKCS#12 key derivation (RFC 7292 appendix B.2), shared by the PKCS#12
// reader (src/identity/pkcs12.ts) and writer (src/pki/pkcs12.ts).
import { createHash } from 'node:crypto';

/**
 * A password as the PKCS#12 KDF takes it: a BMPString (UTF-16BE) with a
 * two-byte terminator. As OpenSSL does, an empty password still contributes
 * its terminator (the "NULL password" of no bytes at all is `Buffer.alloc(0)`).
 */
export function bmpPassword(text: string): Buffer {
  return Buffer.concat([Buffer.from(text, 'utf16le').swap16(), Buffer.alloc(2)]);
}

/** The asynchronous derivation lets the event loop run after this many hash iterations (~1 ms of work). */
const ITERATIONS_PER_TURN = 1024;

/**
 * RFC 7292 appendix B.2 key derivation. `id` 1 = key, 2 = IV, 3 = MAC key.
 * `password` is text (encoded with `bmpPassword`, and wiped after use) or
 * bytes already in BMPString form. `hash` defaults to SHA-256, the MAC hash
 * OpenSSL 3 writes.
 */
export function pkcs12Kdf(password: string | Buffer, salt: Buffer, id: number, iterations: number, length: number, hash = 'sha256'): Buffer {
  const steps = kdfSteps(password, salt, id, iterations, length, hash);
  for (;;) {
    const s = steps.next();
    if (s.done) return s.value;
  }
}

/**
 * The same derivation, letting the event loop run every ITERATIONS_PER_TURN
 * iterations: a bundle with large iteration counts (read by the daemon) must not
 * stop /healthz and the credential routes from answering meanwhile.
 */
export async function pkcs12KdfAsync(password: string | Buffer, salt: Buffer, id: number, iterations: number, length: number, hash = 'sha256'): Promise<Buffer> {
  const steps = kdfSteps(password, salt, id, iterations, length, hash);
  for (;;) {
    const s = steps.next();
    if (s.done) return s.value;
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
}

/** The derivation itself, yielding now and then (see pkcs12Kdf / pkcs12KdfAsync). */
function* kdfSteps(password: string | Buffer, salt: Buffer, id: number, iterations: number, length: number, hash: string): Generator<void, Buffer> {
  const u = createHash(hash).digest().length;
  const v = hash === 'sha384' || hash === 'sha512' ? 128 : 64;
  const pw = typeof password === 'string' ? bmpPassword(password) : password;
  const fill = (b: Buffer): Buffer => {
    if (b.length === 0) return Buffer.alloc(0);
    const out = Buffer.alloc(v * Math.ceil(b.length / v));
    for (let i = 0; i < out.length; i++) out[i] = b[i % b.length]!;
    return out;
  };
  const D = Buffer.alloc(v, id);
  const I = Buffer.concat([fill(salt), fill(pw)]);
  if (typeof password === 'string') pw.fill(0);
  const out: Buffer[] = [];
  let produced = 0;
  for (;;) {
    let A = createHash(hash).update(D).update(I).digest();
    for (let r = 1; r < iterations; r++) {
      A = createHash(hash).update(A).digest();
      if (r % ITERATIONS_PER_TURN === 0) yield;
    }
    out.push(A);
    produced += u;
    if (produced >= length) break;
    const B = Buffer.alloc(v);
    for (let i = 0; i < v; i++) B[i] = A[i % u]!;
    // Ij = (Ij + B + 1) mod 2^(8v) for every v-byte block of I.
    for (let j = 0; j < I.length; j += v) {
      let carry = 1;
      for (let k = v - 1; k >= 0; k--) {
        const sum = I[j + k]! + B[k]! + carry;
        I[j + k] = sum & 0xff;
        carry = sum >> 8;
      }
    }
  }
  I.fill(0);
  return Buffer.concat(out).subarray(0, length);
}
