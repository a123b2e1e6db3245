// Loads a signing identity (certificate, private key, chain) from the files a
// user names, in every common format, and checks it against the Roles Anywhere
// certificate rules. Every failure is a one-line UserError naming the file,
// the problem and the fix; no message carries key material or passwords.
//
// Formats:
// - certificate: PEM (first CERTIFICATE block is the leaf, further blocks are
//   the chain; a private key block in the same file is used when no key file
//   is given), DER, or a PKCS#12 bundle (.p12/.pfx or detected by content).
// - private key: PKCS#1, PKCS#8, SEC1, encrypted PKCS#8, encrypted
//   traditional PEM, or DER (PKCS#8, encrypted PKCS#8, PKCS#1, SEC1).
// - intermediates: PEM bundle (or one DER certificate), appended to the chain.
//
// Chain policy: intermediates are sent in the order given (nearest the leaf
// first), duplicates and copies of the leaf removed, and self-signed roots
// dropped: the trust anchor already holds the root, the service builds the
// path from the intermediates, and leaving the root out keeps the
// X-Amz-X509-Chain header small. (AWS's helper sends whatever it is given.)
import { createHash, X509Certificate, type KeyObject } from 'node:crypto';
import { extname } from 'node:path';
import { serialDecimal } from './serial.js';
import { UserError } from '../errors.js';
import { parseDer } from '../asn1/reader.js';
import { readInputFile } from './files.js';
import { certificateSourceFor, keySourceOptions, openSigner } from './key-sources.js';
import { classifyDer, describeKeyType, keyMatchesCertificate, keyTypeProblem, parsePrivateKey } from './keys.js';
import { CERT_LABELS, KEY_LABELS, looksLikePem, parsePem, PemError, type PemBlock } from './pem.js';
import { separateUriPins } from './pkcs11-uri.js';
import { parsePkcs12 } from './pkcs12.js';
import { checkCertificateRules, isSelfSigned, issuedBy, oneLineName, type RuleResult } from './requirements.js';
import { mlDsaUnsupported, type Signer } from './signer.js';
import { fileSigner, UnusableKeyError } from './signers/file.js';
import type { Identity, IdentitySource } from './types.js';
import { isMlDsaOid, keyAlgorithmOid, parseCertificateFields } from './x509-fields.js';

export { readPasswordFile, identityFingerprint } from './files.js';
export { checkCertificateRules, checkCaRules, checkChain, type RuleResult, type RuleOptions } from './requirements.js';

export interface LoadOptions {
  /** Warn when the leaf expires within this many days (the setting expiryWarningDays; absent: no early warning). */
  expiryWarningDays?: number;
  now?: Date;
}

/** What the files hold, before any rule is applied (used by `check`). */
export interface IdentityMaterial {
  source: IdentitySource;
  leaf: X509Certificate;
  /** Chain as it will be sent (roots and duplicates removed). */
  chain: X509Certificate[];
  /** Self-signed certificates found among the chain and not sent. */
  droppedRoots: X509Certificate[];
  /** Certificates after the leaf in the certificate file itself (for hints). */
  certFileExtras: X509Certificate[];
  /** Signs with the private key; absent when no key was given or its type cannot sign for Roles Anywhere. */
  signer?: Signer;
  /** Public half of the private key (also set when its type is unusable, so `check` can report on it). */
  publicKey?: KeyObject;
  /** Where the key came from: a file path or the key source's spec. */
  keyPath?: string;
  /** The certificate file was a PKCS#12 bundle. */
  pkcs12: boolean;
}

function isPkcs12Path(path: string): boolean {
  const ext = extname(path).toLowerCase();
  return ext === '.p12' || ext === '.pfx';
}

function toCert(der: Buffer, path: string, what: string): X509Certificate {
  try {
    const cert = new X509Certificate(der);
    // Our own reader must understand it too (rules depend on it).
    parseDer(cert.raw);
    try {
      void cert.publicKey;
    } catch (err) {
      // An ML-DSA certificate on a Node.js without ML-DSA: name the runtime, not "corrupt".
      const oid = keyAlgorithmOid(parseCertificateFields(cert.raw).spki);
      const problem = oid && isMlDsaOid(oid) ? mlDsaUnsupported() : undefined;
      if (problem) throw new UserError(`${path}: ${what} has an ML-DSA key; ${problem}`, { reason: 'key_type_unsupported' });
      throw err;
    }
    return cert;
  } catch (err) {
    if (err instanceof UserError) throw err;
    throw new UserError(`${path}: ${what} is not a valid X.509 certificate (corrupt or truncated)`, { reason: 'cert_corrupt', cause: err });
  }
}

function pemBlocks(data: Buffer, path: string, role: string): PemBlock[] {
  try {
    return parsePem(data.toString('utf8'));
  } catch (err) {
    throw new UserError(`${path}: ${(err as PemError).message} in the ${role} file`, { reason: 'pem_corrupt', cause: err });
  }
}

/** Reads every certificate of a PEM bundle or a single DER certificate. */
export async function readCertificateList(path: string, role: 'intermediates' | 'CA certificate' | 'certificate'): Promise<X509Certificate[]> {
  const data = await readInputFile(path, role);
  if (looksLikePem(data)) {
    const blocks = pemBlocks(data, path, role).filter((b) => CERT_LABELS.has(b.label));
    if (blocks.length === 0) throw new UserError(`${path}: no CERTIFICATE PEM block found in the ${role} file`, { reason: 'cert_missing' });
    return blocks.map((b) => toCert(b.der, path, `certificate #${b.index}`));
  }
  let kind: string;
  try {
    kind = classifyDer(parseDer(data, true));
  } catch {
    kind = 'garbage';
  }
  if (kind !== 'certificate') {
    throw new UserError(`${path}: ${role} file is not a PEM or DER certificate (unrecognized or truncated content)`, { reason: 'cert_corrupt' });
  }
  return [toCert(data, path, 'the DER data')];
}

/** Orders certificates into a path upward from `start` where possible; the rest follow in given order. */
function orderFrom(start: X509Certificate, certs: X509Certificate[]): X509Certificate[] {
  const rest = [...certs];
  const ordered: X509Certificate[] = [];
  let current = start;
  for (;;) {
    const i = rest.findIndex((c) => issuedBy(current, c));
    if (i < 0) break;
    current = rest.splice(i, 1)[0]!;
    ordered.push(current);
  }
  return [...ordered, ...rest];
}

/**
 * Reads the files of an identity without applying the certificate rules.
 * Throws UserError for unreadable input (missing file, corrupt data, wrong or
 * missing password, PFX without key). With `requireKey` a missing key is an error.
 */
export async function readIdentityMaterial(input: IdentitySource, opts: { requireKey?: boolean } = {}): Promise<IdentityMaterial> {
  const source = separateUriPins(input);
  const certPath = source.certificate;
  const certSource = certificateSourceFor(certPath);
  const data = certSource ? Buffer.alloc(0) : await readInputFile(certPath, 'certificate');
  let leaf: X509Certificate;
  let extras: X509Certificate[] = [];
  let signer: Signer | undefined;
  let publicKey: KeyObject | undefined;
  let keyPath: string | undefined;
  // A key type that cannot sign at all (Ed25519, DSA…) fails loading; `check` (no requireKey) reports on it instead.
  const adopt = async (make: () => Signer | Promise<Signer>, path: string): Promise<void> => {
    try {
      signer = await make();
      publicKey = signer.publicKey;
    } catch (err) {
      if (!(err instanceof UnusableKeyError) || opts.requireKey) throw err;
      publicKey = err.publicKey;
    }
    keyPath = path;
  };
  let pkcs12 = false;

  const pem = !certSource && looksLikePem(data);
  let derKind = 'pem';
  if (!pem && !certSource) {
    try {
      derKind = classifyDer(parseDer(data, true));
    } catch {
      derKind = 'garbage';
    }
  }

  if (certSource) {
    // A certificate on a token; its key is the one next to it unless --private-key names another.
    const held = await certSource.readCertificate!(certPath, keySourceOptions(source));
    leaf = toCert(held.der, certPath, held.description);
    if (!source.privateKey) {
      const cert = leaf;
      await adopt(() => certSource.open(held.keySpec, { ...held.keyOptions, certificate: cert }), held.keySpec);
    }
  } else if (!pem && (isPkcs12Path(certPath) || derKind === 'pkcs12')) {
    pkcs12 = true;
    if (source.privateKey) {
      throw new UserError(`${certPath}: is a PKCS#12 bundle, which holds its own private key; leave out the private key (${source.privateKey})`, {
        reason: 'pkcs12_with_key',
      });
    }
    const contents = await parsePkcs12(data, source.password, certPath);
    if (contents.certs.length === 0) {
      throw new UserError(`${certPath}: PKCS#12 bundle has no certificate; export it with the certificate (\`openssl pkcs12 -export -in CERT -inkey KEY\`)`, {
        reason: 'pkcs12_no_cert',
      });
    }
    if (contents.keys.length === 0) {
      throw new UserError(`${certPath}: PKCS#12 bundle has no private key; export it with the key (\`openssl pkcs12 -export -in CERT -inkey KEY\`)`, {
        reason: 'pkcs12_no_key',
      });
    }
    const certs = contents.certs.map((der, i) => toCert(der, certPath, `certificate #${i + 1} in the bundle`));
    let found: { key: KeyObject; cert: X509Certificate } | undefined;
    for (const key of contents.keys) {
      const cert = certs.find((c) => keyMatchesCertificate(key, c));
      if (cert) {
        found = { key, cert };
        break;
      }
    }
    if (!found) {
      throw new UserError(`${certPath}: none of the ${certs.length} certificates in the PKCS#12 bundle matches its private key; re-export it with the right key`, {
        reason: 'key_mismatch',
      });
    }
    leaf = found.cert;
    const bundleKey = found.key;
    await adopt(() => fileSigner(bundleKey, certPath), certPath);
    extras = orderFrom(leaf, certs.filter((c) => c !== found!.cert));
  } else if (pem) {
    const blocks = pemBlocks(data, certPath, 'certificate');
    const certBlocks = blocks.filter((b) => CERT_LABELS.has(b.label));
    if (certBlocks.length === 0) {
      if (blocks.some((b) => KEY_LABELS.has(b.label))) {
        throw new UserError(`${certPath}: contains a private key but no certificate; did you swap the certificate and private key paths?`, {
          reason: 'cert_missing',
        });
      }
      throw new UserError(`${certPath}: no CERTIFICATE PEM block found; give the PEM or DER certificate (or a PKCS#12 bundle)`, { reason: 'cert_missing' });
    }
    const certs = certBlocks.map((b) => toCert(b.der, certPath, `certificate #${b.index}`));
    leaf = certs[0]!;
    extras = certs.slice(1);
    if (!source.privateKey && blocks.some((b) => KEY_LABELS.has(b.label))) {
      const opts = source.password === undefined ? { path: certPath } : { path: certPath, password: source.password };
      await adopt(() => fileSigner(parsePrivateKey(data, opts), certPath), certPath);
    }
  } else if (derKind === 'certificate') {
    leaf = toCert(data, certPath, 'the DER data');
  } else if (['pkcs8', 'pkcs8-encrypted', 'pkcs1', 'sec1', 'dsa'].includes(derKind)) {
    throw new UserError(`${certPath}: contains a private key, not a certificate; did you swap the certificate and private key paths?`, {
      reason: 'cert_missing',
    });
  } else {
    throw new UserError(`${certPath}: not a PEM or DER certificate or a PKCS#12 bundle (unrecognized, corrupt or truncated content)`, {
      reason: 'cert_corrupt',
    });
  }

  const given = [...extras];
  if (source.intermediates) given.push(...(await readCertificateList(source.intermediates, 'intermediates')));
  const chain: X509Certificate[] = [];
  const droppedRoots: X509Certificate[] = [];
  for (const c of given) {
    if (c.raw.equals(leaf.raw) || chain.some((x) => x.raw.equals(c.raw))) continue;
    if (isSelfSigned(c)) {
      if (!droppedRoots.some((x) => x.raw.equals(c.raw))) droppedRoots.push(c);
      continue;
    }
    chain.push(c);
  }

  if (source.privateKey) {
    const spec = source.privateKey;
    const cert = leaf;
    await adopt(() => openSigner(spec, { ...keySourceOptions(source), certificate: cert }), spec);
  }
  if (!publicKey && opts.requireKey) {
    throw new UserError(`${certPath}: no private key given; give the key file (--private-key), or a PKCS#12 bundle as the certificate`, {
      reason: 'key_missing',
    });
  }
  const material: IdentityMaterial = { source, leaf, chain, droppedRoots, certFileExtras: extras, pkcs12 };
  if (signer) material.signer = signer;
  if (publicKey) {
    material.publicKey = publicKey;
    material.keyPath = keyPath ?? certPath;
  }
  return material;
}

/** Why a key does not match the leaf, with a hint when it matches another certificate in the file. */
export function keyMismatch(m: IdentityMaterial): { file: string; summary: string; fix: string } {
  const keyPath = m.keyPath ?? m.source.certificate;
  const idx = m.publicKey ? m.certFileExtras.findIndex((c) => keyMatchesCertificate(m.publicKey!, c)) : -1;
  if (idx >= 0) {
    return {
      file: m.source.certificate,
      summary: `the private key matches certificate #${idx + 2} in the file, not the first one`,
      fix: 'put the client (leaf) certificate first',
    };
  }
  return {
    file: keyPath,
    summary: `private key ${keyPath} does not match the certificate ${m.source.certificate} (different public keys)`,
    fix: 'use the key the certificate was issued for',
  };
}

export function keyMismatchMessage(m: IdentityMaterial): string {
  const k = keyMismatch(m);
  return `${k.file}: ${k.summary}; ${k.fix}`;
}

function ruleMessage(path: string, r: RuleResult): string {
  return `${path}: certificate ${r.summary}${r.fix ? ` — ${r.fix}` : ''}`;
}

/**
 * Loads and validates a signing identity. Throws a one-line UserError on the
 * first problem; warnings (e.g. expiring soon) go to `identity.warnings`.
 */
export async function loadIdentity(input: IdentitySource, options: LoadOptions = {}): Promise<Identity> {
  const m = await readIdentityMaterial(input, { requireKey: true });
  try {
    return checkedIdentity(m, options);
  } catch (err) {
    // A refused pair must not keep a token session open.
    await m.signer?.close?.().catch(() => undefined);
    throw err;
  }
}

function checkedIdentity(m: IdentityMaterial, options: LoadOptions): Identity {
  // The source as read: a PIN given inside a pkcs11: URI has moved out of the specs.
  const source = m.source;
  const signer = m.signer!;
  const keyPath = m.keyPath ?? source.certificate;
  const problem = keyTypeProblem(signer.publicKey);
  if (problem) throw new UserError(`${keyPath}: ${problem}`, { reason: 'key_type_unsupported' });
  if (!keyMatchesCertificate(signer.publicKey, m.leaf)) throw new UserError(keyMismatchMessage(m), { reason: 'key_mismatch' });

  let rules: RuleResult[];
  try {
    rules = checkCertificateRules(m.leaf, {
      now: options.now ?? new Date(),
      ...(options.expiryWarningDays !== undefined && { expiryWarningDays: options.expiryWarningDays }),
    });
  } catch (err) {
    throw new UserError(`${source.certificate}: certificate could not be parsed (corrupt or unusual encoding)`, { reason: 'cert_corrupt', cause: err });
  }
  const firstError = rules.find((r) => !r.ok && r.severity === 'error');
  if (firstError) throw new UserError(ruleMessage(source.certificate, firstError), { reason: `cert_rule_${firstError.id}` });

  const warnings = rules.filter((r) => !r.ok && r.severity === 'warning').map((r) => ruleMessage(source.certificate, r));
  return {
    certificate: m.leaf,
    certificateDer: m.leaf.raw,
    chain: m.chain,
    signer,
    serialDecimal: serialDecimal(m.leaf),
    source,
    warnings,
  };
}

/** A certificate's serial number in decimal (as the service and CloudTrail show it). */
export { serialDecimal } from './serial.js';

export interface IdentityDescription {
  subject: string;
  issuer: string;
  serial: string;
  notBefore: string;
  notAfter: string;
  keyType: string;
  chainLength: number;
  /** SHA-256 of the leaf DER, hex. */
  sha256: string;
}

/** Safe-to-log summary of an identity (no key material). */
export function describeIdentity(identity: Identity): IdentityDescription {
  const cert = identity.certificate;
  const fields = parseCertificateFields(cert.raw);
  return {
    subject: oneLineName(cert.subject),
    issuer: oneLineName(cert.issuer),
    serial: identity.serialDecimal,
    notBefore: fields.notBefore.toISOString(),
    notAfter: fields.notAfter.toISOString(),
    keyType: describeKeyType(identity.signer.publicKey),
    chainLength: identity.chain.length,
    sha256: createHash('sha256').update(identity.certificateDer).digest('hex'),
  };
}

/** One-line form of describeIdentity, for human-readable logs. */
export function formatIdentity(identity: Identity): string {
  const d = describeIdentity(identity);
  return `subject="${d.subject}" issuer="${d.issuer}" serial=${d.serial} notAfter=${d.notAfter} key=${d.keyType}`;
}
