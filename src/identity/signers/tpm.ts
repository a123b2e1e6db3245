// Key source "tpm": a key that lives in a TPM 2.0 and never leaves it —
// a TSS2 PEM key file (`-----BEGIN TSS2 PRIVATE KEY-----`, as tpm2-openssl and
// tpm2-tss-engine write them: the key wrapped by the TPM, usable only by the
// TPM that made it) or a persistent handle (`handle:0x81000001`).
//
// Mechanism: the system `openssl` with the tpm2 provider (Debian/Ubuntu:
// tpm2-openssl), run as a subprocess for each TPM operation. That is the
// TCG's own TSS stack, maintained with the distribution's TPM packages; it
// reads both key forms and the standard TCTI configuration, needs no compiler
// or native addon (so installs without build tools, and the single-file
// executable, keep working for file keys), and a TPM that goes away and comes
// back costs nothing to recover from: every operation is a fresh process
// with a fresh TPM connection. The price is ~10–30 ms per signature — one per
// refresh per profile, off the request path.
//
// - The TPM is reached through TPM2OPENSSL_TCTI, else TPM2TOOLS_TCTI, else
//   TSS2_TCTI; with none set, the TSS default (tabrmd, then /dev/tpmrm0, /dev/tpm0).
// - The key's auth value goes to openssl on an extra pipe (`-passin fd:3`),
//   never on a command line or in a file.
// - The SHA-256 digest is signed (`pkeyutl -pkeyopt digest:sha256`; SHA-384/512
//   likewise for `sign-string --digest`): RSA
//   PKCS#1 v1.5 (the TPM builds the DigestInfo), ECDSA as DER SEQUENCE{r,s};
//   every signature is verified against the public key before it is used.
// - The public key is read once at open, and one probe signature proves the
//   TPM, the key and its password work before the daemon relies on them.
// - TPM use is serialized within the process: a TPM without a resource
//   manager holds only a few loaded objects.
// - A wrong password is remembered: the TPM counts every failed authorization
//   towards its dictionary-attack lockout, so the signer does not try again
//   until it is reopened (a new password file, a reload).
import { spawn } from 'node:child_process';
import { createHash, createPublicKey, verify as cryptoVerify, type KeyObject } from 'node:crypto';
import { closeSync, openSync, readSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { UserError } from '../../errors.js';
import { DerError, expect, parseDer, readOctets, readOid, readSmallInteger, TAG, type Asn1 } from '../../asn1/reader.js';
import { readInputFile } from '../files.js';
import { describeKeyType, keyTypeProblem, PASSWORD_HINT } from '../keys.js';
import { parsePem, PemError } from '../pem.js';
import { keyAlgorithmOfKey, SIGNING_ALGORITHMS, type SignDigest, type Signer } from '../signer.js';
import type { KeySourceOptions } from '../types.js';

export const name = 'tpm';
/** `handle:0x81000001` names a key, not a file. */
export const scheme = 'handle';

const TSS2_LABEL = 'TSS2 PRIVATE KEY';
const TSS2_BEGIN = `-----BEGIN ${TSS2_LABEL}-----`;
/** TCG "TPM 2.0 Key Files": loadable key and importable key. Sealed data (…1.5) cannot sign. */
const OID_LOADABLE = '2.23.133.10.1.3';
const OID_IMPORTABLE = '2.23.133.10.1.4';
const OID_SEALED = '2.23.133.10.1.5';
/** A TSS2 key file is a few hundred bytes to ~2 KB. */
const MAX_KEY_FILE = 64 * 1024;
const TIMEOUT_MS = 60_000;
const PROBE = Buffer.from('rolesanywhere-credentiald TPM key check');
export const NO_PASSWORD_FLAG = '--no-tpm-key-password';

/** `handle:0x81000001` (persistent handles are 0x81000000–0x81FFFFFF). */
export function parseHandle(spec: string): number {
  const m = /^handle:(?:0x)?([0-9a-fA-F]{1,8})$/.exec(spec);
  const value = m ? parseInt(m[1]!, 16) : NaN;
  if (!m || !/^handle:0x/i.test(spec) || value < 0x81000000 || value > 0x81ffffff) {
    throw new UserError(`${spec}: not a TPM persistent handle; write it as handle:0x81000001 (persistent handles are 0x81000000–0x81FFFFFF)`, {
      reason: 'tpm_handle_invalid',
    });
  }
  return value;
}

/**
 * A `handle:` spec, or a regular file that starts like a TSS2 PEM key (its
 * first 4 KiB are read). Pipes (`--private-key <(…)`) and devices are left to
 * the file source untouched: peeking would consume them, or block.
 */
export function claims(spec: string): boolean {
  if (spec.startsWith('handle:')) return true;
  let fd: number | undefined;
  try {
    if (!statSync(spec).isFile()) return false;
    fd = openSync(spec, 'r');
    const head = Buffer.alloc(4096);
    const n = readSync(fd, head, 0, head.length, 0);
    return head.subarray(0, n).includes(TSS2_BEGIN);
  } catch {
    return false; // unreadable: the file source reports it
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

export interface Tss2KeyFile {
  /** The key file has no auth value (emptyAuth TRUE). */
  emptyAuth: boolean;
  parent: number;
  kind: 'loadable' | 'importable';
}

/** Reads the TCG TSS2 PEM key structure: TPMKey ::= SEQUENCE { type OID, emptyAuth [0] BOOLEAN OPTIONAL, policy [1], secret [2], parent INTEGER, pubkey OCTET STRING, privkey OCTET STRING }. */
export function parseTss2Key(data: Buffer, path: string): Tss2KeyFile {
  let der: Buffer;
  try {
    const block = parsePem(data.toString('utf8')).find((b) => b.label === TSS2_LABEL);
    if (!block) throw new PemError(`no "${TSS2_LABEL}" PEM block`);
    der = block.der;
  } catch (err) {
    throw new UserError(`${path}: not a readable TSS2 PEM key file (${(err as Error).message}); use the file tpm2-openssl or tpm2-tss-engine wrote`, {
      reason: 'key_corrupt',
      cause: err,
    });
  }
  try {
    const root = expect(parseDer(der), TAG.SEQUENCE, 'TPMKey');
    const oid = readOid(root.children[0] ?? fail('key type'));
    if (oid === OID_SEALED) {
      throw new UserError(`${path}: is TPM sealed data, not a signing key; give a TSS2 key made for signing (e.g. \`openssl genpkey -provider tpm2 -algorithm EC\`)`, {
        reason: 'key_type_unsupported',
      });
    }
    if (oid !== OID_LOADABLE && oid !== OID_IMPORTABLE) throw new DerError(`unknown TSS2 key type ${oid}`);
    let emptyAuth = false;
    let parentNode: Asn1 | undefined;
    let rest = root.children.slice(1);
    for (const node of rest) {
      if (node.cls === 2 && node.tagNumber === 0) {
        const b = expect(node.children[0], TAG.BOOLEAN, 'emptyAuth');
        emptyAuth = b.value.length === 1 && b.value[0] !== 0;
      } else if (node.tag === TAG.INTEGER) {
        parentNode = node;
        break;
      }
    }
    rest = parentNode ? rest.slice(rest.indexOf(parentNode) + 1) : [];
    if (!parentNode || rest.length < 2) throw new DerError('missing parent, public or private part');
    readOctets(expect(rest[0], TAG.OCTET_STRING, 'pubkey'));
    readOctets(expect(rest[1], TAG.OCTET_STRING, 'privkey'));
    return { emptyAuth, parent: readSmallInteger(parentNode), kind: oid === OID_LOADABLE ? 'loadable' : 'importable' };
  } catch (err) {
    if (err instanceof UserError) throw err;
    throw new UserError(`${path}: corrupt TSS2 PEM key (${(err as Error).message})`, { reason: 'key_corrupt', cause: err });
  }
}

function fail(what: string): never {
  throw new DerError(`missing ${what}`);
}

/** The TCTI configuration the TSS will use, or undefined for its default. */
export function tctiFromEnv(env: NodeJS.ProcessEnv = process.env): string | undefined {
  for (const k of ['TPM2OPENSSL_TCTI', 'TPM2TOOLS_TCTI', 'TSS2_TCTI']) {
    const v = env[k];
    if (v !== undefined && v !== '') return v;
  }
  return undefined;
}

interface RunResult {
  code: number | null;
  stdout: Buffer;
  stderr: string;
}

let queue: Promise<unknown> = Promise.resolve();
/** One TPM operation at a time in this process. */
function serialized<T>(fn: () => Promise<T>): Promise<T> {
  const next = queue.then(fn, fn);
  queue = next.catch(() => undefined);
  return next;
}

/**
 * What an openssl child may see of our environment: where to find programs and
 * libraries, OpenSSL's configuration and providers, and the TSS's TCTI, log and
 * D-Bus settings (tabrmd). Nothing else — not ROLESANYWHERE_KEY_PASSWORD, a
 * token PIN or AWS keys; the one password it needs goes through fd 3.
 */
export const OPENSSL_CHILD_ENV = [
  'PATH',
  'LD_LIBRARY_PATH',
  'OPENSSL_CONF',
  'OPENSSL_CONF_INCLUDE',
  'OPENSSL_MODULES',
  'OPENSSL_ENGINES',
  'TPM2OPENSSL_TCTI',
  'TPM2TOOLS_TCTI',
  'TSS2_TCTI',
  'TSS2_LOG',
  'DBUS_SYSTEM_BUS_ADDRESS',
  'DBUS_SESSION_BUS_ADDRESS',
] as const;

/** The environment of an openssl child: OPENSSL_CHILD_ENV from ours, and the TCTI in use. */
export function opensslChildEnv(tcti: string | undefined, from: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const k of OPENSSL_CHILD_ENV) if (from[k] !== undefined) env[k] = from[k];
  if (tcti !== undefined) env.TPM2OPENSSL_TCTI = tcti;
  return env;
}

function runOpenssl(args: string[], opts: { input?: Buffer; password?: string; tcti?: string }): Promise<RunResult> {
  return serialized(
    () =>
      new Promise<RunResult>((resolvePromise, reject) => {
        const env = opensslChildEnv(opts.tcti);
        const withPassword = opts.password !== undefined;
        const child = spawn('openssl', withPassword ? [...args, '-passin', 'fd:3'] : args, {
          env,
          stdio: ['pipe', 'pipe', 'pipe', withPassword ? 'pipe' : 'ignore'],
        });
        const out: Buffer[] = [];
        let outLen = 0;
        let stderr = '';
        child.stdout!.on('data', (d: Buffer) => {
          outLen += d.length;
          if (outLen <= 1 << 20) out.push(d);
        });
        child.stderr!.setEncoding('utf8').on('data', (d: string) => {
          if (stderr.length < 64 * 1024) stderr += d;
        });
        let timedOut = false;
        const timer = setTimeout(() => {
          timedOut = true;
          child.kill('SIGKILL');
        }, TIMEOUT_MS);
        child.on('error', (err) => {
          clearTimeout(timer);
          reject(err);
        });
        child.on('close', (code) => {
          clearTimeout(timer);
          resolvePromise({ code: timedOut ? null : code, stdout: Buffer.concat(out), stderr });
        });
        // A process that exits early closes its pipes: ignore EPIPE, the exit code tells.
        child.stdin!.on('error', () => undefined);
        child.stdin!.end(opts.input ?? Buffer.alloc(0));
        if (withPassword) {
          const fd3 = child.stdio[3] as NodeJS.WritableStream & { on(e: 'error', f: () => void): unknown };
          fd3.on('error', () => undefined);
          fd3.end(`${opts.password}\n`);
        }
      }),
  );
}

/** Why openssl failed, as one UserError (never containing the password or the TSS's raw log). */
function tpmFailure(r: RunResult | Error, what: string, ctx: { describe: string; tcti?: string; hasPassword: boolean; isHandle: boolean }): UserError {
  if (r instanceof Error) {
    if ((r as NodeJS.ErrnoException).code === 'ENOENT') {
      return new UserError(`${ctx.describe}: the openssl command was not found; TPM keys need openssl 3 with the TPM 2.0 provider (Debian/Ubuntu: apt install openssl tpm2-openssl)`, {
        reason: 'tpm_tools_missing',
      });
    }
    return new UserError(`${ctx.describe}: cannot run openssl (${(r as NodeJS.ErrnoException).code ?? r.message})`, { reason: 'tpm_tools_missing' });
  }
  const where = ctx.tcti ? `TCTI "${ctx.tcti}"` : 'the default TCTI (tabrmd, /dev/tpmrm0, /dev/tpm0)';
  const fix = 'check that the TPM (or its resource manager) is running and that TPM2OPENSSL_TCTI/TPM2TOOLS_TCTI point at it';
  if (r.code === null) {
    return new UserError(`${ctx.describe}: the TPM did not answer within ${TIMEOUT_MS / 1000} s while ${what} (through ${where}); ${fix}`, { reason: 'tpm_unreachable' });
  }
  const s = r.stderr;
  const rc = [...s.matchAll(/ErrorCode \(0x([0-9a-fA-F]+)\)/g)].map((m) => parseInt(m[1]!, 16));
  const tpmError = /:error:[0-9A-F]+:tpm2::[^\n]*?::-?\d+:\d+ ([^\n]+)/.exec(s)?.[1]?.trim();
  // TPM response codes only (the TSS layers' own codes have bits above 0xfff).
  const has = (code: number, mask = 0xfff) => rc.some((c) => c <= 0xfff && (c & mask) === code);
  if (/unable to load provider tpm2/.test(s) || /name=tpm2/.test(s)) {
    if (/tcti|TCTI/.test(s)) {
      return new UserError(`${ctx.describe}: TPM not reachable through ${where} while ${what}; ${fix}`, { reason: 'tpm_unreachable' });
    }
    return new UserError(`${ctx.describe}: openssl cannot load its TPM 2.0 provider; install it (Debian/Ubuntu: apt install tpm2-openssl) or set OPENSSL_MODULES to its directory`, {
      reason: 'tpm_tools_missing',
    });
  }
  // TPM_RC_LOCKOUT (warning 0x921): dictionary-attack lockout.
  if (has(0x921)) {
    return new UserError(
      `${ctx.describe}: the TPM is in dictionary-attack lockout (too many wrong passwords); wait for it to expire or clear it (tpm2_dictionarylockout --clear-lockout), then fix the password`,
      { reason: 'tpm_lockout' },
    );
  }
  // TPM_RC_AUTH_FAIL (0x08E) and TPM_RC_BAD_AUTH (0x0A2), with session bits.
  if (has(0x08e, 0x0bf) || has(0x0a2, 0x0bf) || /authorization HMAC check failed|authorization failure/i.test(s)) {
    const msg = ctx.hasPassword
      ? `${ctx.describe}: wrong TPM key password (the TPM refused the authorization); check the password (${PASSWORD_HINT}). Each wrong try counts towards the TPM's dictionary-attack lockout`
      : `${ctx.describe}: the TPM key has a password (the TPM refused an empty one); ${PASSWORD_HINT}`;
    return new UserError(msg, { reason: 'tpm_password_wrong' });
  }
  // TPM_RC_HANDLE (0x08B with a handle number) on ReadPublic of a persistent handle.
  if (ctx.isHandle && has(0x08b, 0x0bf)) {
    return new UserError(`${ctx.describe}: no key at this persistent handle in the TPM (${where}); list them with \`tpm2_getcap handles-persistent\``, {
      reason: 'tpm_key_not_found',
    });
  }
  // TPM_RC_INTEGRITY (0x09F) on Load: the blob was wrapped by another TPM or another parent.
  if (!ctx.isHandle && has(0x09f, 0x0bf)) {
    return new UserError(`${ctx.describe}: this TPM cannot load the key file (it was made by another TPM, or the TPM has been cleared since); make a new key in this TPM`, {
      reason: 'tpm_key_not_loadable',
    });
  }
  // TPM_RC_OBJECT_MEMORY (0x902): no room for another loaded object.
  if (has(0x902)) {
    return new UserError(`${ctx.describe}: the TPM has no free object slots while ${what}; use the kernel resource manager (/dev/tpmrm0) or tpm2-abrmd, or flush objects (tpm2_flushcontext -t)`, {
      reason: 'tpm_busy',
    });
  }
  if (/tcti:IO failure|Failed to connect|Connection refused|Broken pipe|tcti/i.test(s) && !tpmError) {
    return new UserError(`${ctx.describe}: TPM not reachable through ${where} while ${what}; ${fix}`, { reason: 'tpm_unreachable' });
  }
  const detail = tpmError ?? lastLine(s) ?? `openssl exit code ${r.code}`;
  return new UserError(`${ctx.describe}: TPM error while ${what}: ${detail}`, { reason: 'tpm_error' });
}

function lastLine(s: string): string | undefined {
  const lines = s
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !/^(WARNING|ERROR):/.test(l));
  return lines.at(-1)?.slice(0, 300);
}

export async function open(spec: string, options: KeySourceOptions = {}): Promise<Signer> {
  const isHandle = spec.startsWith('handle:');
  let keyArg: string;
  let describe: string;
  let password = options.password;
  if (password !== undefined && options.noTpmKeyPassword) {
    throw new UserError(`${spec}: a TPM key password is given together with ${NO_PASSWORD_FLAG}; give one or the other`, { reason: 'tpm_password_conflict' });
  }
  if (password !== undefined && /[\r\n\0]/.test(password)) {
    throw new UserError(`${spec}: the TPM key password contains a line break or NUL, which openssl cannot pass to the TPM; set a password without one`, {
      reason: 'tpm_password_invalid',
    });
  }
  if (isHandle) {
    const handle = parseHandle(spec);
    const hex = `0x${handle.toString(16).padStart(8, '0')}`;
    describe = `tpm handle ${hex}`;
    // Without "?pass" the provider uses an empty auth value and never asks.
    keyArg = password !== undefined ? `handle:${hex}?pass` : `handle:${hex}`;
  } else {
    const path = resolve(spec);
    const data = await readInputFile(spec, 'private key', { maxBytes: MAX_KEY_FILE });
    const info = parseTss2Key(data, spec);
    describe = `tpm key file ${spec}`;
    keyArg = path;
    if (info.emptyAuth && password !== undefined) {
      throw new UserError(`${spec}: this TPM key has no password (emptyAuth), but one was given; remove the key password setting`, {
        reason: 'tpm_password_conflict',
      });
    }
    if (!info.emptyAuth && password === undefined) {
      if (!options.noTpmKeyPassword) {
        throw new UserError(`${spec}: this TPM key has a password; ${PASSWORD_HINT} (or ${NO_PASSWORD_FLAG} if its password is empty)`, {
          reason: 'password_required',
        });
      }
      password = ''; // the key file says it needs auth; the user says the auth is empty
    }
  }
  const tcti = tctiFromEnv();
  const ctx = { describe, tcti, hasPassword: password !== undefined && password !== '', isHandle };
  const call = async (args: string[], what: string, input?: Buffer): Promise<Buffer> => {
    let r: RunResult;
    try {
      const [command, ...rest] = args;
      r = await runOpenssl([command!, '-provider', 'tpm2', '-provider', 'default', ...rest], { input, password, tcti });
    } catch (err) {
      throw tpmFailure(err as Error, what, ctx);
    }
    if (r.code !== 0) throw tpmFailure(r, what, ctx);
    return r.stdout;
  };

  const spki = await call(['pkey', '-in', keyArg, '-pubout', '-outform', 'DER'], 'reading the public key');
  let publicKey: KeyObject;
  try {
    publicKey = createPublicKey({ key: spki, format: 'der', type: 'spki' });
  } catch (err) {
    throw new UserError(`${describe}: the TPM returned an unreadable public key`, { reason: 'tpm_error', cause: err });
  }
  const keyAlgorithm = keyAlgorithmOfKey(publicKey);
  const problem = keyTypeProblem(publicKey);
  if (!keyAlgorithm || keyAlgorithm === 'ML-DSA' || problem) {
    throw new UserError(`${describe}: ${problem ?? `${describeKeyType(publicKey)} keys cannot be used from a TPM`}`, { reason: 'key_type_unsupported' });
  }

  // A wrong password is final for this signer (see the top of this file).
  let refused: UserError | undefined;
  const sign = async (data: Buffer, digestName: SignDigest = 'sha256'): Promise<Buffer> => {
    if (refused) throw refused;
    const digest = createHash(digestName).update(data).digest();
    const args = ['pkeyutl', '-sign', '-inkey', keyArg, '-pkeyopt', `digest:${digestName}`];
    if (keyAlgorithm === 'RSA') args.push('-pkeyopt', 'rsa_padding_mode:pkcs1');
    let sig: Buffer;
    try {
      sig = await call(args, 'signing', digest);
    } catch (err) {
      if (err instanceof UserError && (err.reason === 'tpm_password_wrong' || err.reason === 'tpm_lockout')) refused = err;
      throw err;
    }
    // ECDSA: openssl writes DER SEQUENCE{r,s}, the form the service expects (Node's default dsaEncoding).
    if (!cryptoVerify(digestName, data, publicKey, sig)) {
      throw new UserError(`${describe}: the TPM returned a signature that does not verify with the key's public key`, { reason: 'tpm_error' });
    }
    return sig;
  };
  await sign(PROBE);

  return {
    kind: 'tpm',
    keyAlgorithm,
    algorithm: SIGNING_ALGORITHMS[keyAlgorithm],
    publicKey,
    sign,
    describe: () => (tcti ? `${describe} (TCTI ${tcti})` : describe),
  };
}
