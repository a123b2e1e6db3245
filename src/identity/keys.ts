// Private key loading: PKCS#1, PKCS#8, SEC1, encrypted PKCS#8, encrypted
// traditional PEM and DER, with a precise message for every way it can fail.
import { createPrivateKey, createPublicKey, type KeyObject, type X509Certificate } from 'node:crypto';
import { UserError } from '../errors.js';
import { DerError, parseDer, TAG, type Asn1 } from '../asn1/reader.js';
import { keyAlgorithmOfKey, mlDsaUnsupported } from './signer.js';
import { isMlDsaOid, keyAlgorithmOid } from './x509-fields.js';
import { KEY_LABELS, looksLikePem, parsePem, PemError, type PemBlock } from './pem.js';

export const PASSWORD_HINT = 'give its password with --key-password-file FILE or ROLESANYWHERE_KEY_PASSWORD';
export const SUPPORTED_KEYS = 'RSA (2048 bits or more), EC P-256/P-384 and ML-DSA-44/65/87';

const CURVE_NAMES: Record<string, string> = {
  prime256v1: 'P-256',
  secp384r1: 'P-384',
  secp521r1: 'P-521',
  secp256k1: 'secp256k1',
  prime192v1: 'P-192',
  secp224r1: 'P-224',
};

/** Human name of a key's type, e.g. "RSA 2048-bit", "EC P-256", "Ed25519". */
export function describeKeyType(key: KeyObject): string {
  const type = key.asymmetricKeyType;
  const details = key.asymmetricKeyDetails ?? {};
  switch (type as string) {
    case 'rsa':
      return `RSA ${details.modulusLength ?? '?'}-bit`;
    case 'rsa-pss':
      return `RSA-PSS ${details.modulusLength ?? '?'}-bit`;
    case 'ec':
      return `EC ${CURVE_NAMES[details.namedCurve ?? ''] ?? details.namedCurve ?? 'unknown curve'}`;
    case 'ed25519':
      return 'Ed25519';
    case 'ed448':
      return 'Ed448';
    case 'x25519':
      return 'X25519';
    case 'x448':
      return 'X448';
    case 'dsa':
      return `DSA ${details.modulusLength ?? '?'}-bit`;
    case 'ml-dsa-44':
    case 'ml-dsa-65':
    case 'ml-dsa-87':
      return (type as string).toUpperCase();
    default:
      return String(type ?? 'unknown');
  }
}

/** Why Roles Anywhere cannot use this key type, or undefined when it can. */
export function keyTypeProblem(key: KeyObject): string | undefined {
  const type = key.asymmetricKeyType;
  const details = key.asymmetricKeyDetails ?? {};
  if (type === 'rsa') {
    const bits = details.modulusLength ?? 0;
    return bits >= 2048 ? undefined : `RSA key is only ${bits} bits; use RSA 2048 bits or more, EC P-256/P-384 or ML-DSA`;
  }
  if (type === 'ec') {
    const curve = details.namedCurve;
    if (curve === 'prime256v1' || curve === 'secp384r1') return undefined;
    return `${describeKeyType(key)} keys are not supported; Roles Anywhere supports ${SUPPORTED_KEYS}`;
  }
  // ML-DSA (FIPS 204), all three parameter sets, as AWS's helper signs them since 1.8.
  if (keyAlgorithmOfKey(key) === 'ML-DSA') return undefined;
  return `${describeKeyType(key)} keys are not supported; Roles Anywhere supports ${SUPPORTED_KEYS}`;
}

export function spkiOf(key: KeyObject): Buffer {
  const pub = key.type === 'private' ? createPublicKey(key) : key;
  return pub.export({ type: 'spki', format: 'der' });
}

/** Whether a key (private, or the public half a signer exposes) belongs to the certificate: same SubjectPublicKeyInfo. */
export function keyMatchesCertificate(key: KeyObject, cert: X509Certificate): boolean {
  try {
    return spkiOf(key).equals(spkiOf(cert.publicKey));
  } catch {
    return false;
  }
}

function missingPassword(path: string, what = 'private key'): UserError {
  return new UserError(`${path}: ${what} is encrypted; ${PASSWORD_HINT}`, { reason: 'password_required' });
}

function wrongPassword(path: string, what = 'private key'): UserError {
  return new UserError(`${path}: wrong password for the encrypted ${what}; check the password file or ROLESANYWHERE_KEY_PASSWORD`, {
    reason: 'password_wrong',
  });
}

function decryptFailure(path: string, err: unknown): UserError {
  const code = (err as { code?: string }).code ?? '';
  if (/UNSUPPORTED/.test(code) && !/DECODER/.test((err as Error).message ?? '')) {
    return new UserError(`${path}: private key is encrypted with an unsupported cipher; re-encrypt it with \`openssl pkcs8 -topk8 -v2 aes-256-cbc\``, {
      reason: 'key_cipher_unsupported',
    });
  }
  return wrongPassword(path);
}

type DerKeyKind = 'pkcs8' | 'pkcs8-encrypted' | 'pkcs1' | 'sec1' | 'dsa' | 'certificate' | 'pkcs12' | 'unknown';

/** Classifies a DER structure by shape. */
export function classifyDer(root: Asn1): DerKeyKind {
  if (root.tag !== TAG.SEQUENCE) return 'unknown';
  const c = root.children;
  const tags = c.map((x) => x.tag);
  if (tags[0] === TAG.INTEGER && tags[1] === TAG.SEQUENCE && tags[2] === TAG.OCTET_STRING) return 'pkcs8';
  if (c.length === 2 && tags[0] === TAG.SEQUENCE && tags[1] === TAG.OCTET_STRING) return 'pkcs8-encrypted';
  if (c.length >= 9 && tags.slice(0, 9).every((t) => t === TAG.INTEGER)) return 'pkcs1';
  if (c.length === 6 && tags.every((t) => t === TAG.INTEGER)) return 'dsa';
  if (tags[0] === TAG.INTEGER && tags[1] === TAG.OCTET_STRING && c[0]!.value.length === 1 && c[0]!.value[0] === 1) return 'sec1';
  if (c.length === 3 && tags[0] === TAG.SEQUENCE && tags[1] === TAG.SEQUENCE && tags[2] === TAG.BIT_STRING) return 'certificate';
  if (tags[0] === TAG.INTEGER && tags[1] === TAG.SEQUENCE && c[0]!.value.length === 1 && c[0]!.value[0] === 3) return 'pkcs12';
  return 'unknown';
}

export interface ParseKeyOptions {
  path: string;
  password?: string;
}

/** A key this Node.js cannot read only because it is ML-DSA and Node is too old: say so instead of "corrupt". */
function runtimeProblem(path: string, der: Buffer): UserError | undefined {
  const oid = keyAlgorithmOid(der);
  const problem = oid && isMlDsaOid(oid) ? mlDsaUnsupported() : undefined;
  return problem ? new UserError(`${path}: ${problem}`, { reason: 'key_type_unsupported' }) : undefined;
}

function fromPemBlock(block: PemBlock, opts: ParseKeyOptions): KeyObject {
  const { path, password } = opts;
  if (block.label === 'OPENSSH PRIVATE KEY') {
    throw new UserError(`${path}: OpenSSH private key format is not supported; convert it with \`ssh-keygen -p -m PKCS8 -f ${path}\``, {
      reason: 'key_format_unsupported',
    });
  }
  const encrypted = block.label === 'ENCRYPTED PRIVATE KEY' || /ENCRYPTED/i.test(block.headers['Proc-Type'] ?? '');
  if (encrypted && password === undefined) throw missingPassword(path);
  try {
    return createPrivateKey(encrypted ? { key: block.text, format: 'pem', passphrase: password } : { key: block.text, format: 'pem' });
  } catch (err) {
    if (encrypted) throw decryptFailure(path, err);
    const runtime = runtimeProblem(path, block.der);
    if (runtime) throw runtime;
    throw new UserError(`${path}: the ${block.label} block is not a valid private key (corrupt or truncated file?)`, {
      reason: 'key_corrupt',
      cause: err,
    });
  }
}

function fromDer(data: Buffer, opts: ParseKeyOptions): KeyObject {
  const { path, password } = opts;
  let root: Asn1;
  try {
    root = parseDer(data, true);
  } catch (err) {
    throw new UserError(`${path}: not a PEM or DER private key (unreadable data)`, { reason: 'key_corrupt', cause: err });
  }
  const kind = classifyDer(root);
  const der = root.raw;
  const attempt = (spec: Parameters<typeof createPrivateKey>[0]): KeyObject => {
    try {
      return createPrivateKey(spec);
    } catch (err) {
      throw runtimeProblem(path, der) ?? new UserError(`${path}: DER private key is corrupt or truncated`, { reason: 'key_corrupt', cause: err });
    }
  };
  switch (kind) {
    case 'pkcs8':
      return attempt({ key: der, format: 'der', type: 'pkcs8' });
    case 'pkcs1':
      return attempt({ key: der, format: 'der', type: 'pkcs1' });
    case 'sec1':
      return attempt({ key: der, format: 'der', type: 'sec1' });
    case 'pkcs8-encrypted':
      if (password === undefined) throw missingPassword(path);
      try {
        return createPrivateKey({ key: der, format: 'der', type: 'pkcs8', passphrase: password });
      } catch (err) {
        throw decryptFailure(path, err);
      }
    case 'dsa':
      throw new UserError(`${path}: DSA keys are not supported; Roles Anywhere supports ${SUPPORTED_KEYS}`, { reason: 'key_type_unsupported' });
    case 'certificate':
      throw new UserError(`${path}: contains a certificate, not a private key; give the key file with --private-key`, { reason: 'key_missing' });
    case 'pkcs12':
      throw new UserError(`${path}: is a PKCS#12 bundle; give it as --certificate and leave out --private-key`, { reason: 'key_missing' });
    default:
      throw new UserError(`${path}: not a PEM or DER private key (unrecognized structure)`, { reason: 'key_corrupt' });
  }
}

/** PEM key blocks in a text, in order. Throws UserError on malformed PEM. */
export function pemKeyBlocks(blocks: PemBlock[]): PemBlock[] {
  return blocks.filter((b) => KEY_LABELS.has(b.label));
}

/** Loads a private key file's bytes (PEM or DER). Throws a one-line UserError. */
export function parsePrivateKey(data: Buffer, opts: ParseKeyOptions): KeyObject {
  const { path } = opts;
  if (looksLikePem(data)) {
    let blocks: PemBlock[];
    try {
      blocks = parsePem(data.toString('utf8'));
    } catch (err) {
      throw new UserError(`${path}: ${(err as PemError).message}`, { reason: 'key_corrupt', cause: err });
    }
    const keys = pemKeyBlocks(blocks);
    if (keys.length === 0) {
      if (blocks.some((b) => b.label === 'CERTIFICATE')) {
        throw new UserError(`${path}: contains a certificate but no private key; give the key file with --private-key`, { reason: 'key_missing' });
      }
      if (blocks.some((b) => b.label === 'PUBLIC KEY' || b.label === 'RSA PUBLIC KEY')) {
        throw new UserError(`${path}: contains a public key, not a private key; give the private key file`, { reason: 'key_missing' });
      }
      throw new UserError(`${path}: no private key found (no PRIVATE KEY PEM block)`, { reason: 'key_missing' });
    }
    return fromPemBlock(keys[0]!, opts);
  }
  return fromDer(data, opts);
}

export { DerError };
