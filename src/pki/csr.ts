/**
 * PKCS#10 certificate signing requests (RFC 2986), read for `pki issue --csr`:
 * a key that never leaves its token or TPM signs a CSR, and we certify the
 * public key in it. The CSR's own signature is checked first (proof that the
 * requester holds the private key); only its subject and public key are used —
 * requested extensions are ignored, the certificate gets the Roles Anywhere
 * client profile whatever the CSR asks for.
 */
import { createPublicKey, verify, type KeyObject } from 'node:crypto';
import { UserError } from '../errors.js';
import { child, expect, parseDer, readBitString, readInteger, TAG, type Asn1 } from '../asn1/reader.js';
import { readInputFile } from '../identity/files.js';
import { describeKeyType, keyTypeProblem } from '../identity/keys.js';
import { looksLikePem, parsePem, PemError } from '../identity/pem.js';
import { isStrongSignature } from '../identity/requirements.js';
import { mlDsaUnsupported } from '../identity/signer.js';
import { subjectNameProblem } from './name.js';
import { isMlDsaOid, keyAlgorithmOid, parseAlgorithm } from '../identity/x509-fields.js';

/** Far above any real CSR (an ML-DSA-87 one is under 8 KB); larger input is not read. */
export const MAX_CSR_BYTES = 64 * 1024;
const CSR_LABELS = new Set(['CERTIFICATE REQUEST', 'NEW CERTIFICATE REQUEST']);

export interface CertificationRequest {
  /** The subject Name exactly as encoded in the CSR. */
  subjectName: Buffer;
  /** True when the subject has no attributes (then the caller picks one). */
  subjectEmpty: boolean;
  /** Why the subject cannot be certified as written (then the caller needs --subject), if it cannot. */
  subjectProblem?: string;
  publicKey: KeyObject;
  /** e.g. "EC P-256", "RSA 2048-bit", "ML-DSA-65". */
  keyType: string;
  /** e.g. "ecdsa-with-SHA256", "ML-DSA-65". */
  signatureAlgorithm: string;
}

/** Reads, parses and verifies a CSR file (PEM or DER). Every failure is a one-line UserError naming the file. */
export async function readCertificationRequest(path: string): Promise<CertificationRequest> {
  const data = await readInputFile(path, 'certificate request', { maxBytes: MAX_CSR_BYTES });
  return parseCertificationRequest(data, path);
}

function derOf(data: Buffer, path: string): Buffer {
  if (!looksLikePem(data)) return data;
  let blocks;
  try {
    blocks = parsePem(data.toString('utf8'));
  } catch (err) {
    throw new UserError(`${path}: ${(err as PemError).message} in the certificate request file`, { reason: 'csr_corrupt', cause: err });
  }
  const csr = blocks.find((b) => CSR_LABELS.has(b.label));
  if (!csr) {
    const found = blocks.map((b) => b.label).join(', ') || 'no PEM block';
    throw new UserError(`${path}: no CERTIFICATE REQUEST PEM block (found ${found}); give the CSR made with \`openssl req -new\``, { reason: 'csr_missing' });
  }
  return csr.der;
}

/** Parses and verifies a CSR's bytes (PEM or DER). */
export function parseCertificationRequest(data: Buffer, path: string): CertificationRequest {
  const der = derOf(data, path);
  let info: Asn1;
  let sigAlgNode: Asn1;
  let signature: Buffer;
  let subject: Asn1;
  let spki: Asn1;
  try {
    const root = expect(parseDer(der), TAG.SEQUENCE, 'CertificationRequest');
    info = expect(root.children[0], TAG.SEQUENCE, 'certificationRequestInfo');
    sigAlgNode = expect(root.children[1], TAG.SEQUENCE, 'signatureAlgorithm');
    const bits = readBitString(expect(root.children[2], TAG.BIT_STRING, 'signature'));
    if (bits.unusedBits !== 0) throw new Error('signature BIT STRING has unused bits');
    signature = bits.bytes;
    if (readInteger(child(info, 0, 'version')) !== 0n) throw new Error('version is not v1 (0)');
    subject = expect(info.children[1], TAG.SEQUENCE, 'subject');
    spki = expect(info.children[2], TAG.SEQUENCE, 'subjectPKInfo');
  } catch (err) {
    throw new UserError(`${path}: not a PKCS#10 certificate request (corrupt, truncated or another kind of file)`, { reason: 'csr_corrupt', cause: err });
  }

  let publicKey: KeyObject;
  try {
    publicKey = createPublicKey({ key: spki.raw, format: 'der', type: 'spki' });
  } catch (err) {
    const oid = keyAlgorithmOid(spki.raw);
    const runtime = oid && isMlDsaOid(oid) ? mlDsaUnsupported() : undefined;
    if (runtime) throw new UserError(`${path}: the request is for an ML-DSA key; ${runtime}`, { reason: 'key_type_unsupported' });
    throw new UserError(`${path}: the request's public key is unreadable or of a type Roles Anywhere does not support (${oid ?? 'unknown algorithm'})`, {
      reason: 'key_type_unsupported',
      cause: err,
    });
  }

  // The key type first: for an Ed25519 or RSA-1024 request that is the problem to fix, not its signature.
  const problem = keyTypeProblem(publicKey);
  if (problem) throw new UserError(`${path}: the request's key cannot be used: ${problem}`, { reason: 'key_type_unsupported' });

  const alg = parseAlgorithm(sigAlgNode);
  if (alg.kind === 'RSA-PSS') {
    throw new UserError(`${path}: the request is signed with RSASSA-PSS, which pki issue does not verify; sign it with PKCS#1 v1.5 (openssl req without -sigopt rsa_padding_mode:pss)`, {
      reason: 'csr_signature_unsupported',
    });
  }
  if (!isStrongSignature(alg)) {
    throw new UserError(`${path}: the request is signed with ${alg.name}; sign it with SHA-256 or stronger (\`openssl req -new -sha256\`) or ML-DSA`, {
      reason: 'csr_signature_weak',
    });
  }
  let good = false;
  try {
    good = verify(alg.kind === 'ML-DSA' ? null : alg.hash!, info.raw, publicKey, signature);
  } catch {
    good = false;
  }
  if (!good) {
    throw new UserError(`${path}: the request's signature does not verify with its own public key (tampered, corrupt, or signed with another key); make the CSR again with the key it names`, {
      reason: 'csr_bad_signature',
    });
  }

  const subjectProblem = subjectNameProblem(subject);
  return {
    subjectName: subject.raw,
    subjectEmpty: subject.children.length === 0,
    ...(subjectProblem !== undefined ? { subjectProblem } : {}),
    publicKey,
    keyType: describeKeyType(publicKey),
    signatureAlgorithm: alg.name,
  };
}
