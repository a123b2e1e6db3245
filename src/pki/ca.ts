/**
 * The operations behind `pki init` and `pki issue`: make a small CA and client
 * certificates for IAM Roles Anywhere, and write them safely (all targets
 * checked before anything is written; private keys 0600; atomic renames).
 */
import { certificateBlocks } from '../identity/pem.js';
import { createPrivateKey, generateKeyPair, randomBytes, X509Certificate, type KeyObject } from 'node:crypto';
import { access, constants, lstat, mkdir, readFile, rename, stat, unlink, writeFile } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { UserError } from '../errors.js';
import { keyMatchesCertificate } from '../identity/keys.js';
import { mlDsaUnsupported } from '../identity/signer.js';
import { createCertificate, signatureAlgorithmFor, type BuiltCertificate } from './certificate.js';
import { parseSubject, type NameAttribute } from './name.js';
import { createPkcs12 } from './pkcs12.js';
import { readCertificationRequest, type CertificationRequest } from './csr.js';
import { checkCertificateRules } from '../identity/requirements.js';

const generateKeyPairAsync = promisify(generateKeyPair);

export const PKI_KEY_TYPES = ['rsa', 'ec', 'ml-dsa-44', 'ml-dsa-65', 'ml-dsa-87'] as const;
export type PkiKeyType = (typeof PKI_KEY_TYPES)[number];

export const DEFAULT_CA_DAYS = 3650;
export const DEFAULT_CLIENT_DAYS = 365;
export const MAX_DAYS = 36500;
export const DEFAULT_CA_NAME = 'rolesanywhere-credentiald CA';
export const DEFAULT_CLIENT_NAME = 'rolesanywhere-client';
/** Longest CN (X.520 ub-common-name). */
const MAX_CN = 64;

/**
 * The default CA name: DEFAULT_CA_NAME, the directory's name and 6 random hex
 * digits ("rolesanywhere-credentiald CA pki 3f9a0c"), so two `pki init` runs never
 * make two CAs of the same name (a certificate from the wrong one then reads as
 * issued by another CA, not as a baffling "Untrusted signing certificate").
 */
export function defaultCaName(dir: string): NameAttribute[] {
  const suffix = randomBytes(3).toString('hex');
  const room = MAX_CN - DEFAULT_CA_NAME.length - suffix.length - 2;
  const dirName = basename(resolve(dir)).replace(/\s+/g, '-').slice(0, room);
  return [{ type: 'CN', value: [DEFAULT_CA_NAME, dirName, suffix].filter(Boolean).join(' ') }];
}

const DAY_MS = 86_400_000;

/** Parses a --days value: a whole number of days, 1..36500. */
export function parseDays(value: string | undefined, flag = '--days'): number | undefined {
  if (value === undefined) return undefined;
  if (!/^[0-9]+$/.test(value.trim()) || Number(value) < 1 || Number(value) > MAX_DAYS) {
    throw new UserError(`${flag} must be a whole number of days from 1 to ${MAX_DAYS}, not "${value}"`);
  }
  return Number(value);
}

export function parseKeyType(value: string | undefined, flag = '--key-type'): PkiKeyType | undefined {
  if (value === undefined) return undefined;
  const v = value.trim().toLowerCase();
  const known = PKI_KEY_TYPES.find((k) => k === v);
  if (known) return known;
  throw new UserError(`${flag} must be "rsa", "ec", "ml-dsa-44", "ml-dsa-65" or "ml-dsa-87", not "${value}"`);
}

/** A `--name` for `pki issue`: safe as a file name, and not the CA's. */
export function validateCertName(name: string): string {
  if (!/^[A-Za-z0-9_.-]+$/.test(name) || name.startsWith('.') || name.length > 64) {
    throw new UserError(
      `--name "${name}" is not usable as a file name; use letters, digits, ".", "_" and "-" (up to 64, not starting with ".")`,
    );
  }
  if (name.toLowerCase() === 'ca') throw new UserError(`--name "${name}" is reserved for the CA's own files; choose another name`);
  return name;
}

/** `NAME` → CN=NAME; anything containing "=" is a full subject (`/CN=x/O=y` or `CN=x,O=y`). */
export function subjectFromName(name: string): NameAttribute[] {
  if (name.includes('=')) return parseSubject(name);
  if (name.trim() === '') throw new UserError('the certificate name is empty');
  return parseSubject(`/CN=${name.replace(/\//g, '\\/')}`);
}

async function newKeyPair(type: PkiKeyType, role: 'ca' | 'client'): Promise<{ privateKey: KeyObject; publicKey: KeyObject; label: string }> {
  if (type === 'rsa') {
    const bits = role === 'ca' ? 4096 : 2048;
    const pair = await generateKeyPairAsync('rsa', { modulusLength: bits, publicExponent: 0x10001 });
    return { ...pair, label: `RSA ${bits}` };
  }
  if (type === 'ec') {
    const curve = role === 'ca' ? 'P-384' : 'P-256';
    const pair = await generateKeyPairAsync('ec', { namedCurve: curve });
    return { ...pair, label: `EC ${curve}` };
  }
  // ML-DSA: the parameter set is the type; Node writes the key as PKCS#8 with its 32-byte seed.
  const unsupported = mlDsaUnsupported();
  if (unsupported) throw new UserError(`--key-type ${type}: ${unsupported}`);
  const pair = await generateKeyPairAsync(type as 'ml-dsa-65');
  return { ...pair, label: type.toUpperCase() };
}

/** The pki key type of an existing key (the default for certificates a CA issues), if it is one. */
export function pkiKeyTypeOf(key: KeyObject): PkiKeyType | undefined {
  const type = key.asymmetricKeyType as string | undefined;
  if (type === 'rsa') return 'rsa';
  if (type === 'ec') return 'ec';
  return PKI_KEY_TYPES.find((k) => k === type);
}

export function describeKey(key: KeyObject): string {
  if (key.asymmetricKeyType === 'rsa') return `RSA ${key.asymmetricKeyDetails?.modulusLength ?? '?'}`;
  if (key.asymmetricKeyType === 'ec') {
    const curve = key.asymmetricKeyDetails?.namedCurve;
    return `EC ${curve === 'prime256v1' ? 'P-256' : curve === 'secp384r1' ? 'P-384' : curve === 'secp521r1' ? 'P-521' : curve}`;
  }
  return (key.asymmetricKeyType ?? 'unknown').toUpperCase();
}

function pkcs8Pem(key: KeyObject): string {
  return key.export({ type: 'pkcs8', format: 'pem' }).toString();
}

export { serialDecimal } from '../identity/serial.js';

// ------------------------------------------------------------ file writing

export interface OutputFile {
  path: string;
  content: string | Buffer;
  /** 0o600 for secrets, 0o644 otherwise. */
  mode: number;
}

function fsMessage(err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'EACCES' || code === 'EPERM') return 'permission denied';
  if (code === 'EROFS') return 'read-only file system';
  if (code === 'ENOSPC') return 'no space left on device';
  if (code === 'ENOTDIR') return 'a parent is not a directory';
  return code ?? String(err);
}

/**
 * Checks that `dir` is (or can become) a writable directory and that no
 * target exists unless `force`. Changes nothing.
 */
export async function checkTargets(dir: string, paths: string[], force: boolean): Promise<void> {
  let dirExists = false;
  try {
    const s = await stat(dir);
    if (!s.isDirectory()) throw new UserError(`${dir} exists and is not a directory; choose a directory path`);
    dirExists = true;
  } catch (err) {
    if (err instanceof UserError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOTDIR') throw new UserError(`${dir}: a parent of this path is not a directory; choose a directory path`);
    if (code !== 'ENOENT') throw new UserError(`cannot use directory ${dir} (${fsMessage(err)})`);
  }
  if (dirExists) {
    try {
      await access(dir, constants.W_OK | constants.X_OK);
    } catch (err) {
      throw new UserError(`cannot write to ${dir} (${fsMessage(err)}); choose a directory you can write to`);
    }
    const existing: string[] = [];
    for (const p of paths) {
      try {
        const s = await lstat(p);
        if (s.isDirectory()) throw new UserError(`${p} is a directory; remove it or choose another directory`);
        existing.push(p);
      } catch (err) {
        if (err instanceof UserError) throw err;
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new UserError(`cannot check ${p} (${fsMessage(err)})`);
      }
    }
    if (existing.length > 0 && !force) {
      const what =
        existing.length === 1 ? `${existing[0]} already exists` : `${existing.map((p) => basename(p)).join(', ')} already exist in ${dir}`;
      throw new UserError(`${what}; nothing was written (use --force to overwrite)`, { reason: 'exists' });
    }
  }
}

/**
 * Writes every file, each to a temporary name first and then renamed into
 * place, so a failure leaves no half-written target. Creates `dir` (0700)
 * when missing.
 */
export async function writeOutputs(dir: string, files: OutputFile[]): Promise<void> {
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 });
  } catch (err) {
    throw new UserError(`cannot create directory ${dir} (${fsMessage(err)}); choose a directory you can write to`);
  }
  const temps: { tmp: string; file: OutputFile }[] = [];
  try {
    for (const file of files) {
      const tmp = join(dir, `.${basename(file.path)}.${randomBytes(6).toString('hex')}.tmp`);
      temps.push({ tmp, file });
      await writeFile(tmp, file.content, { mode: file.mode, flag: 'wx' });
    }
    for (const { tmp, file } of temps) await rename(tmp, file.path);
  } catch (err) {
    await Promise.all(temps.map(({ tmp }) => unlink(tmp).catch(() => undefined)));
    throw new UserError(`cannot write to ${dir} (${fsMessage(err)}); choose a directory you can write to`);
  }
}

// ------------------------------------------------------------ pki init

export interface InitPkiOptions {
  dir: string;
  /** CA key: RSA 4096 (default), EC P-384 or ML-DSA-44/65/87. */
  keyType?: PkiKeyType;
  /** Client key: RSA 2048, EC P-256 or ML-DSA-44/65/87; default follows the CA's type. */
  clientKeyType?: PkiKeyType;
  /** CN of the CA, or a full subject (`/CN=x/O=y`). */
  caName?: string;
  /** CN of the client certificate, or a full subject. */
  clientName?: string;
  /** Client certificate validity (default 365). */
  days?: number;
  /** CA validity (default 3650). */
  caDays?: number;
  force?: boolean;
  now?: Date;
}

export interface PkiPaths {
  caCert: string;
  caKey: string;
  clientCert: string;
  clientKey: string;
}

export interface InitPkiResult {
  dir: string;
  paths: PkiPaths;
  ca: BuiltCertificate;
  caKeyLabel: string;
  client: BuiltCertificate;
  clientKeyLabel: string;
  warnings: string[];
}

export function pkiPaths(dir: string): PkiPaths {
  return {
    caCert: join(dir, 'ca.pem'),
    caKey: join(dir, 'ca.key'),
    clientCert: join(dir, 'client.pem'),
    clientKey: join(dir, 'client.key'),
  };
}

/** Creates a CA and one client certificate in `dir`. */
export async function initPki(opts: InitPkiOptions): Promise<InitPkiResult> {
  const dir = resolve(opts.dir);
  const paths = pkiPaths(dir);
  const caType = opts.keyType ?? 'rsa';
  const clientType = opts.clientKeyType ?? caType;
  const caSubject = opts.caName !== undefined ? subjectFromName(opts.caName) : defaultCaName(dir);
  const clientSubject = subjectFromName(opts.clientName ?? DEFAULT_CLIENT_NAME);
  const caDays = opts.caDays ?? DEFAULT_CA_DAYS;
  const days = opts.days ?? DEFAULT_CLIENT_DAYS;
  await checkTargets(dir, Object.values(paths), opts.force ?? false);

  const now = opts.now ?? new Date();
  const notBefore = new Date(now.getTime() - 5 * 60_000);
  const warnings: string[] = [];
  const caNotAfter = new Date(now.getTime() + caDays * DAY_MS);
  let clientNotAfter = new Date(now.getTime() + days * DAY_MS);
  if (clientNotAfter > caNotAfter) {
    clientNotAfter = caNotAfter;
    warnings.push(`the client certificate would outlive the CA; its validity was shortened to the CA's (${caDays} days)`);
  }

  const [caKeys, clientKeys] = await Promise.all([newKeyPair(caType, 'ca'), newKeyPair(clientType, 'client')]);
  const ca = createCertificate({
    subject: caSubject,
    subjectKey: caKeys.privateKey,
    notBefore,
    notAfter: caNotAfter,
    ca: true,
    keyUsage: ['keyCertSign', 'cRLSign'],
  });
  const client = createCertificate({
    subject: clientSubject,
    subjectKey: clientKeys.publicKey,
    issuer: { certificate: ca.certificate, privateKey: caKeys.privateKey },
    notBefore,
    notAfter: clientNotAfter,
    keyUsage: ['digitalSignature'],
    extendedKeyUsage: ['clientAuth'],
  });

  await writeOutputs(dir, [
    { path: paths.caKey, content: pkcs8Pem(caKeys.privateKey), mode: 0o600 },
    { path: paths.clientKey, content: pkcs8Pem(clientKeys.privateKey), mode: 0o600 },
    { path: paths.caCert, content: ca.pem, mode: 0o644 },
    { path: paths.clientCert, content: client.pem, mode: 0o644 },
  ]);
  return { dir, paths, ca, caKeyLabel: caKeys.label, client, clientKeyLabel: clientKeys.label, warnings };
}

// ------------------------------------------------------------ pki issue

export interface LoadedCa {
  certificate: X509Certificate;
  privateKey: KeyObject;
  certPath: string;
  keyPath: string;
}

/** Reads DIR/ca.pem + DIR/ca.key and checks they belong together and can issue. */
export async function loadCa(caDir: string, now: Date = new Date()): Promise<LoadedCa> {
  const dir = resolve(caDir);
  const certPath = join(dir, 'ca.pem');
  const keyPath = join(dir, 'ca.key');
  const read = async (p: string, what: string): Promise<Buffer> => {
    try {
      return await readFile(p);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') {
        throw new UserError(`${p} not found: --ca-dir must hold the ${what} (run \`pki init ${caDir}\` to create a CA)`);
      }
      throw new UserError(`cannot read ${p} (${fsMessage(err)})`);
    }
  };
  const certBytes = await read(certPath, 'CA certificate ca.pem');
  const keyBytes = await read(keyPath, 'CA private key ca.key');
  const block = certificateBlocks(certBytes.toString('utf8'))[0];
  let certificate: X509Certificate;
  try {
    certificate = new X509Certificate(block ?? certBytes);
  } catch {
    throw new UserError(`${certPath} is not a PEM or DER certificate; it should hold the CA certificate written by \`pki init\``);
  }
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey({ key: keyBytes, format: keyBytes.includes('-----BEGIN') ? 'pem' : 'der', ...(keyBytes.includes('-----BEGIN') ? {} : { type: 'pkcs8' as const }) });
  } catch (err) {
    const msg = String((err as Error).message ?? '');
    if (/passphrase|password|encrypted/i.test(msg) || keyBytes.includes('ENCRYPTED')) {
      throw new UserError(`${keyPath} is encrypted; pki issue needs an unencrypted CA key (decrypt it with \`openssl pkey -in ${keyPath} -out KEY\`)`);
    }
    throw new UserError(`${keyPath} is not a readable private key (PEM or DER PKCS#8 expected)`);
  }
  if (!keyMatchesCertificate(privateKey, certificate)) {
    throw new UserError(`${keyPath} does not match ${certPath}: the CA key belongs to a different certificate; restore the matching pair`);
  }
  if (!certificate.ca) {
    throw new UserError(`${certPath} is not a CA certificate (basicConstraints CA:FALSE or missing); point --ca-dir at a CA`);
  }
  try {
    signatureAlgorithmFor(privateKey);
  } catch {
    throw new UserError(`${keyPath} is a ${describeKey(privateKey)} key; pki issue signs with RSA, EC P-256/P-384 or ML-DSA CA keys only`);
  }
  if (new Date(certificate.validTo) <= now) {
    throw new UserError(`${certPath} expired on ${new Date(certificate.validTo).toISOString()}; create a new CA with \`pki init\``);
  }
  return { certificate, privateKey, certPath, keyPath };
}

export interface IssueOptions {
  caDir: string;
  name: string;
  days?: number;
  /** Subject (`/CN=x/O=y`); default `/CN=<name>`. */
  subject?: string;
  /** Default: the CA's key type (RSA CA → RSA 2048, EC CA → EC P-256, ML-DSA CA → the same ML-DSA parameter set). */
  keyType?: PkiKeyType;
  /** Write NAME.pfx protected with this password. */
  pfxPassword?: string;
  /**
   * A PKCS#10 CSR file (PEM or DER): certify the key in it (made in a token or
   * a TPM) instead of generating one. Its subject is used unless `subject` is given.
   */
  csr?: string;
  force?: boolean;
  now?: Date;
}

export interface IssueResult {
  certPath: string;
  /** The new private key; absent with a CSR (the key stays where the CSR was made). */
  keyPath?: string;
  pfxPath?: string;
  cert: BuiltCertificate;
  keyLabel: string;
  ca: LoadedCa;
  warnings: string[];
  /** The CSR the certificate was issued for. */
  csr?: CertificationRequest;
}

/** Issues a client certificate from the CA in `caDir`. */
export async function issueClientCertificate(opts: IssueOptions): Promise<IssueResult> {
  const name = validateCertName(opts.name);
  const dir = resolve(opts.caDir);
  const certPath = join(dir, `${name}.pem`);
  const keyPath = join(dir, `${name}.key`);
  const pfxPath = opts.pfxPassword !== undefined ? join(dir, `${name}.pfx`) : undefined;
  if (opts.pfxPassword !== undefined && opts.pfxPassword === '') {
    throw new UserError('the PKCS#12 password is empty; give a non-empty password');
  }
  if (opts.csr !== undefined && opts.keyType !== undefined) {
    throw new UserError('--key-type does not go with --csr: the certificate is for the key in the request', { reason: 'usage' });
  }
  if (opts.csr !== undefined && pfxPath) {
    throw new UserError('--pfx needs the private key, but a CSR carries only the public key; leave out --pfx (the key stays in its token or TPM)', { reason: 'usage' });
  }
  const subject = opts.subject !== undefined ? parseSubject(opts.subject) : subjectFromName(name);
  const now = opts.now ?? new Date();
  const ca = await loadCa(dir, now);
  // Read and verify the request before anything is checked or written.
  const csr = opts.csr !== undefined ? await readCertificationRequest(opts.csr) : undefined;
  if (csr?.subjectProblem !== undefined && opts.subject === undefined) {
    throw new UserError(`${opts.csr}: the request's subject ${csr.subjectProblem}; give the certificate's subject with --subject "/CN=NAME/O=ORG"`, {
      reason: 'csr_subject',
    });
  }
  await checkTargets(dir, csr ? [certPath] : [certPath, keyPath, ...(pfxPath ? [pfxPath] : [])], opts.force ?? false);

  const keyType = opts.keyType ?? pkiKeyTypeOf(ca.privateKey) ?? 'rsa';
  const days = opts.days ?? DEFAULT_CLIENT_DAYS;
  const warnings: string[] = [];
  const caNotAfter = new Date(ca.certificate.validTo);
  let notAfter = new Date(now.getTime() + days * DAY_MS);
  if (notAfter > caNotAfter) {
    notAfter = caNotAfter;
    warnings.push(`the CA expires on ${caNotAfter.toISOString()}; the certificate's validity was shortened to end then`);
  }
  let notBefore = new Date(now.getTime() - 5 * 60_000);
  const caNotBefore = new Date(ca.certificate.validFrom);
  if (notBefore < caNotBefore) notBefore = caNotBefore;

  const keys = csr ? undefined : await newKeyPair(keyType, 'client');
  const cert = createCertificate({
    // The CSR's subject exactly as encoded, unless --subject overrides it (or it is empty).
    subject: csr && opts.subject === undefined && !csr.subjectEmpty ? csr.subjectName : subject,
    subjectKey: csr ? csr.publicKey : keys!.publicKey,
    issuer: { certificate: ca.certificate, privateKey: ca.privateKey },
    notBefore,
    notAfter,
    keyUsage: ['digitalSignature'],
    extendedKeyUsage: ['clientAuth'],
  });
  // What we issue must pass the rules `check` and the loader apply (v3, CA:FALSE, digitalSignature, SHA-256+, key type, size).
  const broken = checkCertificateRules(cert.certificate, { now }).find((r) => !r.ok && r.severity === 'error');
  if (broken) throw new UserError(`the certificate would break a Roles Anywhere rule (${broken.id}: ${broken.summary}); nothing was written`);
  if (!keys) {
    await writeOutputs(dir, [{ path: certPath, content: cert.pem, mode: 0o644 }]);
    return { certPath, cert, keyLabel: csr!.keyType, ca, warnings, csr };
  }
  const files: OutputFile[] = [
    { path: keyPath, content: pkcs8Pem(keys.privateKey), mode: 0o600 },
    { path: certPath, content: cert.pem, mode: 0o644 },
  ];
  if (pfxPath && opts.pfxPassword !== undefined) {
    const pfx = createPkcs12({ privateKey: keys.privateKey, certificate: cert.certificate, password: opts.pfxPassword, friendlyName: name });
    files.push({ path: pfxPath, content: pfx, mode: 0o600 });
  }
  await writeOutputs(dir, files);
  return { certPath, keyPath, pfxPath, cert, keyLabel: keys.label, ca, warnings };
}
