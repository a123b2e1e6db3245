// Key source "pkcs11": a private key inside a PKCS#11 token (SoftHSM, a
// YubiKey's PIV applet through OpenSC or ykcs11, a network HSM), named by an
// RFC 7512 URI as AWS's aws_signing_helper takes it. The key never leaves the
// token: we ask the token to sign and read only public attributes.
//
// Mechanism: the `pkcs11js` native binding (an optional dependency, loaded
// only when a pkcs11: URI is used). It keeps one logged-in session per key for
// the daemon's lifetime, so a refresh costs one C_Sign instead of a process
// start and a fresh login (which a subprocess such as pkcs11-tool would need,
// with the PIN on its command line), and it reports the token's CKR_* codes so
// every failure gets a precise message. Every token call runs in a worker
// thread with a deadline (see WorkerHost at the end): most PKCS#11 calls are
// synchronous, and a module that hangs must not stall the routes.
//
// Signatures: RSA with CKM_SHA256_RSA_PKCS (or CKM_RSA_PKCS over a DigestInfo
// when the token only has that); EC with CKM_ECDSA over the SHA-256 digest
// computed here (SHA-384/512 likewise, for `sign-string --digest`), the token's raw r‖s turned into the DER SEQUENCE the service
// expects. Every signature is verified with the public key before use, so a
// token that answers garbage fails loudly here and not at the service.
//
// Recovery: any PKCS#11 error while signing (token unplugged, module or
// daemon restarted, handles gone) finalizes the module and re-opens it from
// scratch once; if that fails too the refresh fails like any other and the
// session keeps serving its cached credentials. A refused PIN is never tried
// again by this process, so a retry loop cannot lock the token.
import { createHash, createPublicKey, randomBytes, verify as cryptoVerify, X509Certificate, type KeyObject } from 'node:crypto';
import { statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { isSea } from 'node:sea';
import { fileURLToPath } from 'node:url';
import { parentPort, Worker } from 'node:worker_threads';
import { UserError } from '../../errors.js';
import { integer, nullValue, octetString, oid, sequence } from '../../asn1/encoder.js';
import { decodeOid, parseDer, TAG } from '../../asn1/reader.js';
import { fileError, readPasswordFile } from '../files.js';
import { describeKeyType, spkiOf } from '../keys.js';
import { formatPkcs11Uri, isPkcs11Uri, parsePkcs11Uri, redactPkcs11Uri, type Pkcs11Uri } from '../pkcs11-uri.js';
import type { KeySourceOptions, SourceCertificate } from '../key-sources.js';
import { keyAlgorithmOfKey, SIGNING_ALGORITHMS, type SignDigest, type Signer } from '../signer.js';
import { clampDelay } from '../../timers.js';

export const name = 'pkcs11';
/** `pkcs11:` specs name objects on a token, not files (key-sources.ts isKeyFile). */
export const scheme = 'pkcs11';

/** The pkcs11 fields of KeySourceOptions: pkcs11Lib, pkcs11Pin(+Origin), reusePin, certificate. */
type Pkcs11Options = KeySourceOptions;

export function claims(spec: string): boolean {
  return isPkcs11Uri(spec);
}

// ---------------------------------------------------------------------------
// The parts of pkcs11js we use (typed here so the build does not need the
// optional package; handles are the module's CK_ULONG bytes).

type Handle = Buffer;
interface Attribute {
  type: number;
  value?: number | boolean | string | Buffer;
}
interface TokenInfo {
  label: string;
  manufacturerID: string;
  model: string;
  serialNumber: string;
  flags: number;
}
interface SlotInfo {
  slotDescription: string;
  manufacturerID: string;
}
interface ModuleInfo {
  manufacturerID: string;
  libraryDescription: string;
  libraryVersion: { major: number; minor: number };
}
interface Pkcs11Api {
  load(path: string): void;
  close(): void;
  C_Initialize(options?: { flags?: number }): void;
  C_Finalize(): void;
  C_GetInfo(): ModuleInfo;
  C_GetSlotList(tokenPresent?: boolean): Handle[];
  C_GetSlotInfo(slot: Handle): SlotInfo;
  C_GetTokenInfo(slot: Handle): TokenInfo;
  C_GetMechanismList(slot: Handle): number[];
  C_OpenSession(slot: Handle, flags: number): Handle;
  C_CloseSession(session: Handle): void;
  C_Login(session: Handle, userType: number, pin?: string): void;
  C_FindObjectsInit(session: Handle, template: Attribute[]): void;
  C_FindObjects(session: Handle, max: number): Handle[];
  C_FindObjectsFinal(session: Handle): void;
  C_GetAttributeValue(session: Handle, object: Handle, template: Attribute[]): Attribute[];
  C_SignInit(session: Handle, mechanism: { mechanism: number }, key: Handle): void;
  C_SignAsync(session: Handle, data: Buffer, out: Buffer): Promise<Buffer>;
}
interface Pkcs11Binding {
  PKCS11: new () => Pkcs11Api;
  [constant: string]: unknown;
}

let binding: Pkcs11Binding | undefined;

/** Loads pkcs11js on first use: file keys never need it (or a compiler to build it). */
function loadBinding(): Pkcs11Binding {
  if (binding) return binding;
  if (isSea()) {
    throw new UserError(
      'PKCS#11 keys are not available in the single-file executable: it cannot load the native module pkcs11js. ' +
        'For PKCS#11 keys install the npm package instead (README, "Install"); file keys work in the executable.',
      { reason: 'pkcs11_unavailable' },
    );
  }
  try {
    binding = createRequire(import.meta.url)('pkcs11js') as Pkcs11Binding;
  } catch (err) {
    throw new UserError(
      'PKCS#11 keys need the optional native module pkcs11js, which is not installed or was not built ' +
        `(${(err as Error).message.split('\n')[0]}); install it where rolesanywhere-credentiald is installed with ` +
        '`npm install pkcs11js` (needs a C++ compiler, make and Python at install time). File keys work without it.',
      { reason: 'pkcs11_unavailable', cause: err },
    );
  }
  return binding;
}

/** A CK_* constant from pkcs11js (one source of truth for the PKCS#11 numbers). */
function ck(name: string): number {
  const v = loadBinding()[name];
  if (typeof v !== 'number') throw new Error(`pkcs11js has no constant ${name}`);
  return v;
}

/** The CKR_ name of a pkcs11js error, or undefined for anything else. */
function ckr(err: unknown): string | undefined {
  const m = /\b(CKR_[A-Z0-9_]+)/.exec(err instanceof Error ? err.message : '');
  return m?.[1];
}

// ---------------------------------------------------------------------------
// Modules: one loaded, initialized instance per library path, shared by every
// key on it (C_Initialize is per process). Calls into a module are serialized.

/** The default module: p11-kit's proxy, which loads every module registered with p11-kit. */
export function defaultPkcs11Lib(): string {
  return process.platform === 'darwin' ? 'p11-kit-proxy.dylib' : 'p11-kit-proxy.so';
}

class Module {
  readonly api: Pkcs11Api;
  /** Bumped by every reset: sessions and handles from an older generation are gone. */
  generation = 0;
  private initialized = false;
  private queue: Promise<unknown> = Promise.resolve();
  users = 0;

  constructor(
    readonly path: string,
    readonly origin: string,
  ) {
    const lib = loadBinding();
    this.api = new lib.PKCS11();
    try {
      this.api.load(path);
    } catch (err) {
      const why = (err as Error).message.split('\n')[0];
      if (path === defaultPkcs11Lib()) {
        throw new UserError(
          `no PKCS#11 module given and p11-kit's proxy module (${path}) could not be loaded (${why}); install p11-kit ` +
            '(Debian/Ubuntu: p11-kit-modules) or name the module with --pkcs11-lib PATH (YAML pkcs11Lib)',
          { reason: 'pkcs11_module', cause: err },
        );
      }
      throw new UserError(`${origin} ${path}: could not be loaded as a PKCS#11 module (${why}); give the module's .so file`, {
        reason: 'pkcs11_module',
        cause: err,
      });
    }
  }

  /** Runs `fn` after every earlier call on this module has finished. */
  run<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.queue.then(fn, fn);
    this.queue = next.catch(() => undefined);
    return next;
  }

  init(): void {
    if (this.initialized) return;
    try {
      this.api.C_Initialize({ flags: ck('CKF_OS_LOCKING_OK') });
    } catch (err) {
      if (ckr(err) !== 'CKR_CRYPTOKI_ALREADY_INITIALIZED') {
        throw new UserError(`PKCS#11 module ${this.path}: C_Initialize failed (${ckr(err) ?? (err as Error).message}); check the module's configuration`, {
          reason: 'pkcs11_module',
          cause: err,
        });
      }
    }
    this.initialized = true;
  }

  /** Forgets every session (finalizing the module) so the next use starts from scratch. */
  reset(): void {
    if (this.initialized) {
      try {
        this.api.C_Finalize();
      } catch {
        // Already gone: nothing to release.
      }
    }
    this.initialized = false;
    this.generation++;
  }
}

const modules = new Map<string, Module>();

function moduleFor(path: string, origin: string): Module {
  let m = modules.get(path);
  if (!m) {
    m = new Module(path, origin);
    modules.set(path, m);
  }
  return m;
}

/**
 * One user fewer; the last one finalizes the module (its sessions close, the
 * token logs out). The library stays loaded: some modules do not survive
 * being unloaded and loaded again in one process.
 */
function releaseModule(m: Module): void {
  m.users--;
  if (m.users <= 0) {
    m.users = 0;
    m.reset();
  }
}

/** Which module a URI uses and how to name it in messages. */
function resolveModule(uri: Pkcs11Uri, spec: string, options: Pkcs11Options): { path: string; origin: string } {
  let path: string;
  let origin: string;
  if (options.pkcs11Lib !== undefined) {
    path = options.pkcs11Lib;
    origin = '--pkcs11-lib';
  } else if (uri.modulePath !== undefined) {
    path = uri.modulePath;
    origin = `module-path in ${redactPkcs11Uri(spec)}:`;
  } else if (uri.moduleName !== undefined) {
    throw new UserError(`${redactPkcs11Uri(spec)}: module-name is not supported; name the module's file with --pkcs11-lib PATH or module-path=`, {
      reason: 'pkcs11_uri',
    });
  } else {
    return { path: defaultPkcs11Lib(), origin: 'default module' };
  }
  // A bare file name is left to the dynamic linker's search path; a path must exist.
  if (path.includes('/')) {
    try {
      if (!statSync(path).isFile()) throw Object.assign(new Error('not a file'), { code: 'EISDIR' });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') {
        throw new UserError(`${origin} ${path}: PKCS#11 module not found; check the path (e.g. /usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so)`, {
          reason: 'pkcs11_module',
          cause: err,
        });
      }
      if (code === 'EISDIR') throw new UserError(`${origin} ${path}: is a directory, expected the PKCS#11 module's .so file`, { reason: 'pkcs11_module' });
      throw fileError(`${origin} ${path}`, 'private key', err);
    }
  }
  return { path, origin };
}

// ---------------------------------------------------------------------------
// PIN

interface Pin {
  value: string;
  /** Where it came from, for messages. */
  origin: string;
}

/** The PIN: the URI's pin-value, else its pin-source file, else the option (--pkcs11-pin-file / ROLESANYWHERE_PKCS11_PIN). */
async function resolvePin(uri: Pkcs11Uri, spec: string, options: Pkcs11Options): Promise<Pin | undefined> {
  if (uri.pinValue !== undefined && uri.pinSource !== undefined) {
    throw new UserError(`${redactPkcs11Uri(spec)}: give either pin-value or pin-source, not both`, { reason: 'pkcs11_uri' });
  }
  if (uri.pinValue !== undefined) return { value: uri.pinValue, origin: 'pin-value in the URI' };
  if (uri.pinSource !== undefined) {
    let path = uri.pinSource;
    if (/^file:/i.test(path)) {
      try {
        path = fileURLToPath(/^file:\/\//i.test(path) ? path : `file://${path.slice(5)}`);
      } catch {
        throw new UserError(`${redactPkcs11Uri(spec)}: pin-source ${uri.pinSource} is not a file: URI or an absolute path`, { reason: 'pkcs11_uri' });
      }
    }
    if (!path.startsWith('/')) {
      throw new UserError(`${redactPkcs11Uri(spec)}: pin-source must be an absolute path or a file: URI, got ${uri.pinSource}`, { reason: 'pkcs11_uri' });
    }
    return { value: await readPasswordFile(path, 'pin-source'), origin: `pin-source ${path}` };
  }
  if (options.pkcs11Pin !== undefined) return { value: options.pkcs11Pin, origin: options.pkcs11PinOrigin ?? 'the configured PIN' };
  return undefined;
}

const PIN_FIX = 'give it with --pkcs11-pin-file FILE, ROLESANYWHERE_PKCS11_PIN, or pin-source=FILE in the URI';

/** Refused PINs, remembered (salted hashes only) so no retry spends the token's remaining tries. */
const refusedPins = new Set<string>();
const pinSalt = randomBytes(16);
function pinKey(modulePath: string, token: TokenInfo, pin: string): string {
  return createHash('sha256').update(pinSalt).update(`${modulePath}\0${token.serialNumber}\0${token.label}\0`).update(pin, 'utf8').digest('hex');
}

// ---------------------------------------------------------------------------
// Token and object lookup

function trimmed(s: string): string {
  return s.replace(/[\s\0]+$/, '');
}

function slotNumber(slot: Handle): number {
  return slot.length >= 8 ? Number(slot.readBigUInt64LE(0)) : slot.readUInt32LE(0);
}

interface Found {
  slot: Handle;
  token: TokenInfo;
  /** `token "LABEL"` (with the serial when labels repeat), for messages. */
  name: string;
}

function tokenName(info: TokenInfo): string {
  return `token "${trimmed(info.label)}"`;
}

function checkLibrary(api: Pkcs11Api, uri: Pkcs11Uri, spec: string, modulePath: string): void {
  if (uri.libraryManufacturer === undefined && uri.libraryDescription === undefined && uri.libraryVersion === undefined) return;
  const info = api.C_GetInfo();
  const version = `${info.libraryVersion.major}.${info.libraryVersion.minor}`;
  const mismatch =
    (uri.libraryManufacturer !== undefined && trimmed(info.manufacturerID) !== uri.libraryManufacturer) ||
    (uri.libraryDescription !== undefined && trimmed(info.libraryDescription) !== uri.libraryDescription) ||
    (uri.libraryVersion !== undefined && (uri.libraryVersion.includes('.') ? version : String(info.libraryVersion.major)) !== uri.libraryVersion);
  if (mismatch) {
    throw new UserError(
      `${redactPkcs11Uri(spec)}: module ${modulePath} is "${trimmed(info.libraryDescription)}" by "${trimmed(info.manufacturerID)}" version ${version}, ` +
        'not the library the URI names; fix the library-* attributes or --pkcs11-lib',
      { reason: 'pkcs11_token_not_found' },
    );
  }
}

/** The one token the URI names among the present tokens. */
function findToken(api: Pkcs11Api, uri: Pkcs11Uri, spec: string, modulePath: string): Found {
  checkLibrary(api, uri, spec, modulePath);
  const slots = api.C_GetSlotList(true);
  const present: TokenInfo[] = [];
  const matches: Found[] = [];
  for (const slot of slots) {
    let token: TokenInfo;
    try {
      token = api.C_GetTokenInfo(slot);
    } catch {
      continue; // removed between the two calls, or not initialized
    }
    if (!(token.flags & ck('CKF_TOKEN_INITIALIZED'))) continue;
    present.push(token);
    if (uri.token !== undefined && trimmed(token.label) !== uri.token) continue;
    if (uri.manufacturer !== undefined && trimmed(token.manufacturerID) !== uri.manufacturer) continue;
    if (uri.serial !== undefined && trimmed(token.serialNumber) !== uri.serial) continue;
    if (uri.model !== undefined && trimmed(token.model) !== uri.model) continue;
    if (uri.slotId !== undefined && slotNumber(slot) !== uri.slotId) continue;
    if (uri.slotDescription !== undefined || uri.slotManufacturer !== undefined) {
      const info = api.C_GetSlotInfo(slot);
      if (uri.slotDescription !== undefined && trimmed(info.slotDescription) !== uri.slotDescription) continue;
      if (uri.slotManufacturer !== undefined && trimmed(info.manufacturerID) !== uri.slotManufacturer) continue;
    }
    matches.push({ slot, token, name: tokenName(token) });
  }
  const list = present.length ? present.map((t) => `"${trimmed(t.label)}" (serial ${trimmed(t.serialNumber)})`).join(', ') : 'none';
  if (matches.length === 0) {
    throw new UserError(`${redactPkcs11Uri(spec)}: no token matches in PKCS#11 module ${modulePath} (tokens present: ${list}); check token= (or the token is not plugged in)`, {
      reason: 'pkcs11_token_not_found',
    });
  }
  if (matches.length > 1) {
    throw new UserError(`${redactPkcs11Uri(spec)}: ${matches.length} tokens match (${list}); add token= or serial= to the URI to pick one`, {
      reason: 'pkcs11_token_ambiguous',
    });
  }
  return matches[0]!;
}

function findObjects(api: Pkcs11Api, session: Handle, template: Attribute[]): Handle[] {
  api.C_FindObjectsInit(session, template);
  const out: Handle[] = [];
  try {
    for (;;) {
      const batch = api.C_FindObjects(session, 64);
      if (batch.length === 0) break;
      out.push(...batch);
      if (out.length > 4096) break;
    }
  } finally {
    api.C_FindObjectsFinal(session);
  }
  return out;
}

/** One attribute's raw value, or undefined when the token does not have or will not show it. */
function attribute(api: Pkcs11Api, session: Handle, object: Handle, type: number): Buffer | undefined {
  try {
    const [a] = api.C_GetAttributeValue(session, object, [{ type }]);
    return Buffer.isBuffer(a?.value) ? a.value : undefined;
  } catch {
    return undefined;
  }
}

function ulong(b: Buffer | undefined): number | undefined {
  if (!b || b.length === 0) return undefined;
  return b.length >= 8 ? Number(b.readBigUInt64LE(0)) : b.readUInt32LE(0);
}

function bool(b: Buffer | undefined): boolean | undefined {
  return b && b.length > 0 ? b[0] !== 0 : undefined;
}

function objectTemplate(klass: string, label: string | undefined, id: Buffer | undefined): Attribute[] {
  const t: Attribute[] = [{ type: ck('CKA_CLASS'), value: ck(klass) }];
  if (label !== undefined) t.push({ type: ck('CKA_LABEL'), value: Buffer.from(label, 'utf8') });
  if (id !== undefined) t.push({ type: ck('CKA_ID'), value: id });
  return t;
}

/** `object="client" id=01` for messages. */
function objectName(label: string | undefined, id: Buffer | undefined): string {
  const parts: string[] = [];
  if (label !== undefined) parts.push(`object "${label}"`);
  if (id !== undefined) parts.push(`id ${id.toString('hex')}`);
  return parts.join(' ') || 'any object';
}

// ---------------------------------------------------------------------------
// Public keys from token attributes

const CURVES: Record<string, string> = {
  '1.2.840.10045.3.1.7': 'P-256',
  '1.3.132.0.34': 'P-384',
  '1.3.132.0.35': 'P-521',
};

function b64url(b: Buffer): string {
  let i = 0;
  while (i < b.length - 1 && b[i] === 0) i++;
  return b.subarray(i).toString('base64url');
}

function rsaPublicKey(modulus: Buffer, exponent: Buffer): KeyObject {
  return createPublicKey({ key: { kty: 'RSA', n: b64url(modulus), e: b64url(exponent) }, format: 'jwk' });
}

/** The curve OID of CKA_EC_PARAMS (a DER OBJECT IDENTIFIER), or undefined for explicit parameters. */
function curveOf(params: Buffer): string | undefined {
  try {
    const node = parseDer(params);
    return node.tag === TAG.OID ? decodeOid(node.value) : undefined;
  } catch {
    return undefined;
  }
}

function ecPublicKey(params: Buffer, point: Buffer): KeyObject | undefined {
  const curveOid = curveOf(params);
  const crv = curveOid ? CURVES[curveOid] : undefined;
  if (!crv) return undefined;
  const size = crv === 'P-256' ? 32 : crv === 'P-384' ? 48 : 66;
  // CKA_EC_POINT is a DER OCTET STRING around the point; some tokens give the bare point.
  let raw = point;
  if (!(point.length === 2 * size + 1 && point[0] === 0x04)) {
    try {
      const node = parseDer(point);
      if (node.tag === TAG.OCTET_STRING) raw = node.value;
    } catch {
      return undefined;
    }
  }
  if (raw.length !== 2 * size + 1 || raw[0] !== 0x04) return undefined;
  const x = raw.subarray(1, 1 + size).toString('base64url');
  const y = raw.subarray(1 + size).toString('base64url');
  return createPublicKey({ key: { kty: 'EC', crv, x, y }, format: 'jwk' });
}

// ---------------------------------------------------------------------------
// The signer

interface KeyInfo {
  handle: Handle;
  label: string | undefined;
  id: Buffer | undefined;
  keyType: 'RSA' | 'EC';
  alwaysAuthenticate: boolean;
  publicKey: KeyObject | undefined;
  curveOid?: string;
}

function readKey(api: Pkcs11Api, session: Handle, handle: Handle): KeyInfo | { unsupported: string; label?: string; id?: Buffer } {
  const labelRaw = attribute(api, session, handle, ck('CKA_LABEL'));
  const label = labelRaw?.toString('utf8');
  const id = attribute(api, session, handle, ck('CKA_ID'));
  const idOrUndef = id && id.length > 0 ? id : undefined;
  const keyType = ulong(attribute(api, session, handle, ck('CKA_KEY_TYPE')));
  const alwaysAuthenticate = bool(attribute(api, session, handle, ck('CKA_ALWAYS_AUTHENTICATE'))) ?? false;
  if (keyType === ck('CKK_RSA')) {
    let modulus = attribute(api, session, handle, ck('CKA_MODULUS'));
    let exponent = attribute(api, session, handle, ck('CKA_PUBLIC_EXPONENT'));
    if ((!modulus || !exponent) && idOrUndef) {
      const [pub] = findObjects(api, session, objectTemplate('CKO_PUBLIC_KEY', undefined, idOrUndef));
      if (pub) {
        modulus = attribute(api, session, pub, ck('CKA_MODULUS'));
        exponent = attribute(api, session, pub, ck('CKA_PUBLIC_EXPONENT'));
      }
    }
    const publicKey = modulus && exponent ? rsaPublicKey(modulus, exponent) : undefined;
    return { handle, label, id: idOrUndef, keyType: 'RSA', alwaysAuthenticate, publicKey };
  }
  if (keyType === ck('CKK_EC')) {
    const params = attribute(api, session, handle, ck('CKA_EC_PARAMS'));
    let publicKey: KeyObject | undefined;
    const curveOid = params ? curveOf(params) : undefined;
    if (curveOid && !CURVES[curveOid]) {
      return { unsupported: `an EC key on curve ${curveOid}`, ...(label ? { label } : {}), ...(idOrUndef ? { id: idOrUndef } : {}) };
    }
    if (params) {
      const pubs = findObjects(api, session, objectTemplate('CKO_PUBLIC_KEY', idOrUndef ? undefined : label, idOrUndef));
      for (const pub of pubs) {
        const point = attribute(api, session, pub, ck('CKA_EC_POINT'));
        const key = point ? ecPublicKey(params, point) : undefined;
        if (key) {
          publicKey = key;
          break;
        }
      }
    }
    return { handle, label, id: idOrUndef, keyType: 'EC', alwaysAuthenticate, publicKey, ...(curveOid ? { curveOid } : {}) };
  }
  return { unsupported: keyType === undefined ? 'a key of unknown type' : `a key of PKCS#11 key type ${keyType}`, ...(label ? { label } : {}), ...(idOrUndef ? { id: idOrUndef } : {}) };
}

interface Located {
  found: Found;
  session: Handle;
  key: KeyInfo;
}

/** Everything needed to find the key again after a reset. */
interface KeyQuery {
  uri: Pkcs11Uri;
  spec: string;
  label: string | undefined;
  id: Buffer | undefined;
}

/** Reasons that mean "the token or module is not there right now" when a running signer reopens. */
const UNAVAILABLE = new Set(['pkcs11_module', 'pkcs11_token_not_found']);

class Pkcs11Signer implements Signer {
  readonly kind = 'pkcs11';
  readonly keyAlgorithm: 'RSA' | 'EC';
  readonly algorithm: Signer['algorithm'];
  readonly publicKey: KeyObject;
  private session: Handle | undefined;
  private keyHandle: Handle | undefined;
  private generation: number;
  private closed = false;
  /** The slot's mechanisms (undefined: the token would not say), to fall back to CKM_RSA_PKCS. */
  private mechanisms: number[] | undefined;
  private readonly description: string;

  constructor(
    private readonly module: Module,
    private readonly query: KeyQuery,
    private readonly pin: Pin | undefined,
    private readonly reusePin: boolean,
    located: Located,
    publicKey: KeyObject,
  ) {
    this.publicKey = publicKey;
    this.keyAlgorithm = located.key.keyType;
    this.algorithm = SIGNING_ALGORITHMS[this.keyAlgorithm];
    this.session = located.session;
    this.keyHandle = located.key.handle;
    this.generation = module.generation;
    this.adopt(located);
    const found = located.found;
    this.description =
      `pkcs11 token "${trimmed(found.token.label)}" (serial ${trimmed(found.token.serialNumber)})` +
      ` ${objectName(located.key.label, located.key.id)} via ${module.path}`;
  }

  private adopt(located: Located): void {
    this.session = located.session;
    this.keyHandle = located.key.handle;
    this.generation = this.module.generation;
    if (this.keyAlgorithm === 'RSA') this.mechanisms = safeMechanisms(this.module.api, located.found.slot);
    this.alwaysAuthenticate = located.key.alwaysAuthenticate;
  }

  private alwaysAuthenticate = false;

  describe(): string {
    return this.description;
  }

  sign(data: Buffer, digest: SignDigest = 'sha256'): Promise<Buffer> {
    return this.module.run(async () => {
      if (this.closed) throw new Error('PKCS#11 signer used after close');
      let lastErr: unknown;
      for (let attempt = 0; attempt < 2; attempt++) {
        try {
          if (!this.session || this.generation !== this.module.generation) this.reopen();
          return await this.signOnce(data, digest);
        } catch (err) {
          lastErr = err;
          if (err instanceof UserError && UNAVAILABLE.has(err.reason)) {
            throw new UserError(`${this.description}: the token is unavailable (${err.message}); will retry at the next refresh`, {
              reason: 'pkcs11_unavailable',
              cause: err,
            });
          }
          if (err instanceof UserError) throw err;
          // Token unplugged, module restarted, handles invalid…: start the module over once.
          this.session = undefined;
          this.module.reset();
        }
      }
      const code = ckr(lastErr) ?? (lastErr as Error).message.split('\n')[0];
      throw new UserError(`${this.description}: signing failed (${code}); the token may be unplugged or its module failed — will retry at the next refresh`, {
        reason: 'pkcs11_sign_failed',
        cause: lastErr,
      });
    });
  }

  /** Opens the token again after a reset and checks the key there is still the same key. */
  private reopen(): void {
    this.module.init();
    const located = locate(this.module, this.query, this.pin, undefined);
    if (!spkiOf(located.key.publicKey ?? this.publicKey).equals(spkiOf(this.publicKey))) {
      closeQuietly(this.module.api, located.session);
      throw new UserError(`${this.description}: the key on the token is no longer the one loaded at start; reload the daemon after replacing a key`, {
        reason: 'pkcs11_key_changed',
      });
    }
    this.adopt(located);
  }

  private async signOnce(data: Buffer, digestName: SignDigest): Promise<Buffer> {
    const api = this.module.api;
    const session = this.session!;
    const digest = createHash(digestName).update(data).digest();
    const hashed = ck(`CKM_${digestName.toUpperCase()}_RSA_PKCS`);
    let mechanism: number;
    let input: Buffer;
    if (this.keyAlgorithm === 'EC') {
      mechanism = ck('CKM_ECDSA');
      input = digest;
    } else if (!this.mechanisms || this.mechanisms.includes(hashed) || !this.mechanisms.includes(ck('CKM_RSA_PKCS'))) {
      mechanism = hashed;
      input = data;
    } else {
      // PKCS#1 v1.5 over DigestInfo{hash, digest}: what CKM_SHA256_RSA_PKCS (…384, …512) does inside the token.
      mechanism = ck('CKM_RSA_PKCS');
      input = sequence(sequence(oid(DIGEST_OIDS[digestName]), nullValue()), octetString(digest));
    }
    api.C_SignInit(session, { mechanism }, this.keyHandle!);
    if (this.alwaysAuthenticate) this.contextLogin(session);
    const raw = await api.C_SignAsync(session, input, Buffer.alloc(1024));
    const signature = this.keyAlgorithm === 'EC' ? ecdsaDer(raw, this.description) : Buffer.from(raw);
    const ok = cryptoVerify(digestName, data, { key: this.publicKey, dsaEncoding: 'der' }, signature);
    if (!ok) {
      throw new UserError(`${this.description}: the token returned a signature that does not verify with the key's public key; the token or module is faulty`, {
        reason: 'pkcs11_bad_signature',
      });
    }
    return signature;
  }

  /** CKA_ALWAYS_AUTHENTICATE keys (e.g. PIV slot 9c) want the PIN again for each signature. */
  private contextLogin(session: Handle): void {
    if (!this.reusePin || !this.pin) {
      throw new UserError(
        `${this.description}: the key requires the PIN for every signature (CKA_ALWAYS_AUTHENTICATE); add --reuse-pin (YAML reusePin: true) ` +
          `to give the token PIN again${this.pin ? '' : `, and a PIN: ${PIN_FIX}`}`,
        { reason: 'pkcs11_always_authenticate' },
      );
    }
    try {
      this.module.api.C_Login(session, ck('CKU_CONTEXT_SPECIFIC'), this.pin.value);
    } catch (err) {
      throw new UserError(`${this.description}: the per-signature login (--reuse-pin) was refused (${ckr(err) ?? 'error'})`, {
        reason: 'pkcs11_login',
        cause: err,
      });
    }
  }

  async close(): Promise<void> {
    await this.module.run(async () => {
      if (this.closed) return;
      this.closed = true;
      if (this.session && this.generation === this.module.generation) closeQuietly(this.module.api, this.session);
      this.session = undefined;
      releaseModule(this.module);
    });
  }
}

function safeMechanisms(api: Pkcs11Api, slot: Handle): number[] | undefined {
  try {
    return api.C_GetMechanismList(slot);
  } catch {
    return undefined;
  }
}

function closeQuietly(api: Pkcs11Api, session: Handle): void {
  try {
    api.C_CloseSession(session);
  } catch {
    // Already closed with its token.
  }
}

/** NIST hash algorithm OIDs, for a DigestInfo. */
const DIGEST_OIDS: Readonly<Record<SignDigest, string>> = {
  sha256: '2.16.840.1.101.3.4.2.1',
  sha384: '2.16.840.1.101.3.4.2.2',
  sha512: '2.16.840.1.101.3.4.2.3',
};

/** CKM_ECDSA's raw r‖s (two equal halves) as DER SEQUENCE { INTEGER r, INTEGER s }. */
export function ecdsaDer(raw: Buffer, who = 'PKCS#11 token'): Buffer {
  if (raw.length === 0 || raw.length % 2 !== 0) {
    throw new UserError(`${who}: the token returned a ${raw.length}-byte ECDSA signature, not r‖s; the token or module is faulty`, { reason: 'pkcs11_bad_signature' });
  }
  const half = raw.length / 2;
  return sequence(integer(raw.subarray(0, half)), integer(raw.subarray(half)));
}

/** Logs in with the PIN (once per token; "already logged in" is success). */
function login(module: Module, found: Found, session: Handle, pin: Pin): void {
  const key = pinKey(module.path, found.token, pin.value);
  if (refusedPins.has(key)) {
    throw new UserError(`${found.name}: this PIN (from ${pin.origin}) was already refused by the token; not trying it again so the token does not lock — fix the PIN and restart or reload`, {
      reason: 'pkcs11_pin_incorrect',
    });
  }
  if (found.token.flags & ck('CKF_USER_PIN_LOCKED')) {
    throw new UserError(`${found.name}: the user PIN is locked after too many wrong PINs; unblock it with the token's PUK or SO PIN`, { reason: 'pkcs11_pin_locked' });
  }
  try {
    module.api.C_Login(session, ck('CKU_USER'), pin.value);
  } catch (err) {
    const code = ckr(err);
    if (code === 'CKR_USER_ALREADY_LOGGED_IN') return;
    if (code === 'CKR_PIN_INCORRECT') {
      refusedPins.add(key);
      throw new UserError(`${found.name}: login failed: wrong PIN (CKR_PIN_INCORRECT, from ${pin.origin}); fix the PIN — each wrong try counts toward locking the token`, {
        reason: 'pkcs11_pin_incorrect',
        cause: err,
      });
    }
    if (code === 'CKR_PIN_LOCKED') {
      throw new UserError(`${found.name}: login failed: the user PIN is locked (CKR_PIN_LOCKED); unblock it with the token's PUK or SO PIN`, {
        reason: 'pkcs11_pin_locked',
        cause: err,
      });
    }
    if (code === 'CKR_PIN_LEN_RANGE' || code === 'CKR_ARGUMENTS_BAD') {
      throw new UserError(`${found.name}: login failed: the PIN (from ${pin.origin}) has a length the token does not accept (${code})`, {
        reason: 'pkcs11_pin_incorrect',
        cause: err,
      });
    }
    throw new UserError(`${found.name}: login failed (${code ?? (err as Error).message.split('\n')[0]})`, { reason: 'pkcs11_login', cause: err });
  }
}

/** Finds the token, opens a session, logs in and finds the one private key the query names. */
function locate(module: Module, query: KeyQuery, pin: Pin | undefined, certificate: X509Certificate | undefined): Located {
  const api = module.api;
  const { uri, spec } = query;
  const found = findToken(api, uri, spec, module.path);
  const session = api.C_OpenSession(found.slot, ck('CKF_SERIAL_SESSION'));
  try {
    if (pin) login(module, found, session, pin);
    const handles = findObjects(api, session, objectTemplate('CKO_PRIVATE_KEY', query.label, query.id));
    const what = objectName(query.label, query.id);
    if (handles.length === 0) {
      if (!pin && found.token.flags & ck('CKF_LOGIN_REQUIRED')) {
        throw new UserError(`${redactPkcs11Uri(spec)}: no private key visible on ${found.name} without logging in; the token needs a PIN: ${PIN_FIX}`, {
          reason: 'pkcs11_pin_required',
        });
      }
      const labels = findObjects(api, session, objectTemplate('CKO_PRIVATE_KEY', undefined, undefined))
        .slice(0, 20)
        .map((h) => {
          const l = attribute(api, session, h, ck('CKA_LABEL'))?.toString('utf8');
          const i = attribute(api, session, h, ck('CKA_ID'));
          return objectName(l, i && i.length ? i : undefined);
        });
      throw new UserError(
        `${redactPkcs11Uri(spec)}: no private key ${what} on ${found.name} (private keys there: ${labels.length ? labels.join(', ') : 'none'}); check object= / id=`,
        { reason: 'pkcs11_object_not_found' },
      );
    }
    const keys = handles.map((h) => readKey(api, session, h));
    const usable = keys.filter((k): k is KeyInfo => !('unsupported' in k));
    if (usable.length === 0) {
      const k = keys[0] as { unsupported: string };
      throw new UserError(`${redactPkcs11Uri(spec)}: ${what} on ${found.name} is ${k.unsupported}; Roles Anywhere needs an RSA or EC P-256/P-384 key`, {
        reason: 'key_type_unsupported',
      });
    }
    let chosen: KeyInfo | undefined;
    if (usable.length === 1) chosen = usable[0];
    else if (certificate) {
      const want = spkiOf(certificate.publicKey);
      chosen = usable.find((k) => k.publicKey && spkiOf(k.publicKey).equals(want));
    }
    if (!chosen) {
      const names = usable.map((k) => objectName(k.label, k.id)).join(', ');
      throw new UserError(`${redactPkcs11Uri(spec)}: ${usable.length} private keys match on ${found.name} (${names}); add object= or id= to the URI to pick one`, {
        reason: 'pkcs11_object_ambiguous',
      });
    }
    return { found, session, key: chosen };
  } catch (err) {
    closeQuietly(api, session);
    throw err;
  }
}

/** Proves that an EC key with no readable public half is the certificate's key: one test signature. */
async function provePublicKey(module: Module, located: Located, certificate: X509Certificate | undefined, spec: string): Promise<KeyObject> {
  const who = `${redactPkcs11Uri(spec)}: ${objectName(located.key.label, located.key.id)} on ${located.found.name}`;
  if (!certificate) {
    throw new UserError(`${who}: the token shows no public key for this EC key (no public key object with its CKA_ID); store the public key or certificate on the token`, {
      reason: 'pkcs11_public_key_missing',
    });
  }
  const candidate = certificate.publicKey;
  const challenge = randomBytes(32);
  const api = module.api;
  api.C_SignInit(located.session, { mechanism: ck('CKM_ECDSA') }, located.key.handle);
  const raw = await api.C_SignAsync(located.session, createHash('sha256').update(challenge).digest(), Buffer.alloc(1024));
  if (!cryptoVerify('sha256', challenge, { key: candidate, dsaEncoding: 'der' }, ecdsaDer(raw, who))) {
    throw new UserError(`${who}: the key does not match the certificate (a test signature does not verify with the certificate's public key); use the key the certificate was issued for`, {
      reason: 'key_mismatch',
    });
  }
  return candidate;
}

function keyQuery(uri: Pkcs11Uri, spec: string, what: 'key' | 'certificate'): KeyQuery {
  const expected = what === 'key' ? 'private' : 'cert';
  if (uri.type !== undefined && uri.type !== expected) {
    const flag = what === 'key' ? '--private-key' : '--certificate';
    throw new UserError(`${redactPkcs11Uri(spec)}: ${flag} names an object of type=${uri.type}; use type=${expected} (or leave type out)`, { reason: 'pkcs11_uri' });
  }
  return { uri, spec, label: uri.object, id: uri.id };
}

interface Context {
  uri: Pkcs11Uri;
  query: KeyQuery;
  pin: Pin | undefined;
  module: Module;
}

/**
 * Parses the URI, picks the module and the PIN, and runs `fn` on the
 * initialized module (after any other call on it). A failure of the module
 * itself becomes a UserError naming it. The module stays in use after a
 * success when `keep` (a signer holds it), else it is released.
 */
async function onModule<T>(spec: string, options: Pkcs11Options, what: 'key' | 'certificate', keep: boolean, fn: (c: Context) => Promise<T>): Promise<T> {
  const uri = parsePkcs11Uri(spec);
  const query = keyQuery(uri, spec, what);
  const pin = await resolvePin(uri, spec, options);
  const { path, origin } = resolveModule(uri, spec, options);
  const module = moduleFor(path, origin);
  module.users++;
  let ok = false;
  try {
    const result = await module.run(async () => {
      try {
        module.init();
        return await fn({ uri, query, pin, module });
      } catch (err) {
        if (err instanceof UserError) throw err;
        throw new UserError(`${redactPkcs11Uri(spec)}: PKCS#11 module ${path} failed (${ckr(err) ?? (err as Error).message.split('\n')[0]})`, {
          reason: 'pkcs11_module',
          cause: err,
        });
      }
    });
    ok = true;
    return result;
  } finally {
    if (!ok || !keep) releaseModule(module);
  }
}

/** Opens the private key a pkcs11: URI names and returns a signer that keeps its session (in this thread). */
function openHere(spec: string, options: Pkcs11Options = {}): Promise<Signer> {
  return onModule(spec, options, 'key', true, async ({ query, pin, module }) => {
    const located = locate(module, query, pin, options.certificate);
    let publicKey = located.key.publicKey;
    try {
      if (!publicKey) {
        if (located.key.alwaysAuthenticate) {
          throw new UserError(`${redactPkcs11Uri(spec)}: the token shows no public key for this key; store its public key on the token`, {
            reason: 'pkcs11_public_key_missing',
          });
        }
        publicKey = await provePublicKey(module, located, options.certificate, spec);
      }
      if (!keyAlgorithmOfKey(publicKey)) throw new UserError(`${redactPkcs11Uri(spec)}: ${describeKeyType(publicKey)} keys cannot sign for Roles Anywhere`);
    } catch (err) {
      closeQuietly(module.api, located.session);
      throw err;
    }
    return new Pkcs11Signer(module, { ...query, label: located.key.label, id: located.key.id }, pin, options.reusePin ?? false, located, publicKey);
  });
}

/** The X.509 certificates a pkcs11: URI matches on its token (logging in only when none is visible without). */
function findCertificates(api: Pkcs11Api, module: Module, found: Found, session: Handle, query: KeyQuery, pin: Pin | undefined): Handle[] {
  const template = [...objectTemplate('CKO_CERTIFICATE', query.label, query.id), { type: ck('CKA_CERTIFICATE_TYPE'), value: ck('CKC_X_509') }];
  let handles = findObjects(api, session, template);
  // Some tokens hide certificates until login.
  if (handles.length === 0 && pin) {
    login(module, found, session, pin);
    handles = findObjects(api, session, template);
  }
  return handles;
}

/** A certificate on a token and a URI naming it (for `read-certificate-data`). */
export interface ListedCertificate {
  der: Buffer;
  uri: string;
}

/** Every X.509 certificate a pkcs11: URI matches (in this thread); none is an empty list. */
function listCertificatesHere(spec: string, options: Pkcs11Options = {}): Promise<ListedCertificate[]> {
  return onModule(spec, options, 'certificate', false, async ({ uri, query, pin, module }) => {
    const api = module.api;
    const found = findToken(api, uri, spec, module.path);
    const slot = api.C_GetSlotInfo(found.slot);
    const session = api.C_OpenSession(found.slot, ck('CKF_SERIAL_SESSION'));
    try {
      const out: ListedCertificate[] = [];
      for (const handle of findCertificates(api, module, found, session, query, pin)) {
        const der = attribute(api, session, handle, ck('CKA_VALUE'));
        if (!der || der.length === 0) continue;
        const id = attribute(api, session, handle, ck('CKA_ID'));
        const label = attribute(api, session, handle, ck('CKA_LABEL'))?.toString('utf8');
        // The attributes aws_signing_helper lists, and the token label, which picks the token most plainly.
        const certUri: Pkcs11Uri = {
          token: trimmed(found.token.label),
          manufacturer: trimmed(found.token.manufacturerID),
          serial: trimmed(found.token.serialNumber),
          model: trimmed(found.token.model),
          slotDescription: trimmed(slot.slotDescription),
          slotManufacturer: trimmed(slot.manufacturerID),
          type: 'cert',
        };
        if (label !== undefined) certUri.object = label;
        if (id && id.length > 0) certUri.id = id;
        out.push({ der: Buffer.from(der), uri: formatPkcs11Uri(certUri) });
      }
      return out;
    } finally {
      closeQuietly(api, session);
    }
  });
}

/** Reads the X.509 certificate a `--certificate pkcs11:…` URI names (in this thread). */
function readCertificateHere(spec: string, options: Pkcs11Options = {}): Promise<SourceCertificate> {
  return onModule(spec, options, 'certificate', false, async ({ uri, query, pin, module }) => {
    const api = module.api;
    const found = findToken(api, uri, spec, module.path);
    const session = api.C_OpenSession(found.slot, ck('CKF_SERIAL_SESSION'));
    try {
      const handles = findCertificates(api, module, found, session, query, pin);
      const what = objectName(query.label, query.id);
      if (handles.length === 0) {
        throw new UserError(`${redactPkcs11Uri(spec)}: no X.509 certificate ${what} on ${found.name}; check object= / id=, or give the certificate as a file`, {
          reason: 'pkcs11_object_not_found',
        });
      }
      if (handles.length > 1) {
        throw new UserError(`${redactPkcs11Uri(spec)}: ${handles.length} certificates match on ${found.name}; add object= or id= to the URI to pick one`, {
          reason: 'pkcs11_object_ambiguous',
        });
      }
      const handle = handles[0]!;
      const der = attribute(api, session, handle, ck('CKA_VALUE'));
      if (!der || der.length === 0) {
        throw new UserError(`${redactPkcs11Uri(spec)}: the certificate ${what} on ${found.name} has no readable value`, { reason: 'cert_corrupt' });
      }
      const id = attribute(api, session, handle, ck('CKA_ID'));
      const label = attribute(api, session, handle, ck('CKA_LABEL'))?.toString('utf8');
      // The key next to it: same token, same CKA_ID (or the same label when the certificate has no ID).
      const keyUri: Pkcs11Uri = { ...uri, type: 'private' };
      delete keyUri.pinValue;
      delete keyUri.pinSource;
      delete keyUri.object;
      delete keyUri.id;
      if (id && id.length > 0) keyUri.id = id;
      else if (label !== undefined) keyUri.object = label;
      if (keyUri.token === undefined) keyUri.token = trimmed(found.token.label);
      let keySpec = formatPkcs11Uri(keyUri);
      if (uri.modulePath !== undefined) keySpec += `?module-path=${encodeURIComponent(uri.modulePath)}`;
      // The PIN travels in the options, never inside the derived URI (which appears in messages and `check`).
      const keyOptions: Pkcs11Options = { ...options };
      if (pin) {
        keyOptions.pkcs11Pin = pin.value;
        keyOptions.pkcs11PinOrigin = pin.origin;
      }
      return {
        der: Buffer.from(der),
        keySpec,
        keyOptions,
        description: `pkcs11 certificate ${objectName(label, id && id.length ? id : undefined)} on ${found.name}`,
      };
    } finally {
      closeQuietly(api, session);
    }
  });
}

// ---------------------------------------------------------------------------
// The token is driven from a worker thread. Most PKCS#11 calls are
// synchronous; a module that hangs instead of failing (a network HSM that
// stops answering) must not stall the daemon's routes. Every call has a
// deadline: past it the call fails like a failed refresh, the worker is
// abandoned, and no new one starts until the stuck call returns (so an outage
// does not pile up threads); then the next call opens the token afresh in a
// new worker.

/**
 * The worker's entry file, next to this one: in dist/ `pkcs11-worker.js` beside
 * `pkcs11.js`, in the bundle (scripts/bundle.js) `pkcs11-worker.js` beside `main.js`.
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
