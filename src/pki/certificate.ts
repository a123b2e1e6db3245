/**
 * Builds X.509 v3 certificates (RFC 5280) with node:crypto: Node signs,
 * src/asn1/encoder.ts encodes. RSA (sha256WithRSAEncryption), EC P-256/P-384/P-521
 * (ecdsa-with-SHA256/384/512) and ML-DSA-44/65/87 (FIPS 204, pure) signing keys.
 */
import { createHash, createPublicKey, randomBytes, sign, X509Certificate, type KeyObject } from 'node:crypto';
import {
  algorithm,
  bitString,
  boolean,
  explicit,
  implicit,
  integer,
  namedBits,
  octetString,
  oid,
  sequence,
  time,
  TAG,
} from '../asn1/encoder.js';
import { parseDer } from '../asn1/reader.js';
import { toPem } from '../identity/pem.js';
import { parseCertificateFields } from '../identity/x509-fields.js';
import { KEY_USAGE_BITS, type KeyUsageName } from '../identity/x509-fields.js';
import { encodeName, parseSubject, type NameAttribute } from './name.js';
import { OID } from '../asn1/oids.js';

// keyUsage names and their bits (RFC 5280 §4.2.1.3) are the reader's table, KEY_USAGE_BITS.
export type { KeyUsageName };

export const EXTENDED_KEY_USAGES = {
  serverAuth: '1.3.6.1.5.5.7.3.1',
  clientAuth: '1.3.6.1.5.5.7.3.2',
  codeSigning: '1.3.6.1.5.5.7.3.3',
  emailProtection: '1.3.6.1.5.5.7.3.4',
} as const;
export type ExtendedKeyUsageName = keyof typeof EXTENDED_KEY_USAGES;

export interface SignatureAlgorithm {
  /** Digest for crypto.sign; null for ML-DSA, which signs the message itself. */
  hash: 'sha256' | 'sha384' | 'sha512' | null;
  /** DER AlgorithmIdentifier. */
  identifier: Buffer;
  /** For messages: "sha256WithRSAEncryption", "ecdsa-with-SHA384", … */
  name: string;
}

/** The signature algorithm a CA key signs with: SHA-256 for RSA, the curve's natural hash for EC, pure ML-DSA for ML-DSA. */
export function signatureAlgorithmFor(key: KeyObject): SignatureAlgorithm {
  if (key.asymmetricKeyType === 'rsa') {
    return { hash: 'sha256', identifier: algorithm(OID.sha256WithRSA, null), name: 'sha256WithRSAEncryption' };
  }
  if (key.asymmetricKeyType === 'ec') {
    const curve = key.asymmetricKeyDetails?.namedCurve;
    if (curve === 'prime256v1') return { hash: 'sha256', identifier: algorithm(OID.ecdsaWithSha256), name: 'ecdsa-with-SHA256' };
    if (curve === 'secp384r1') return { hash: 'sha384', identifier: algorithm(OID.ecdsaWithSha384), name: 'ecdsa-with-SHA384' };
    if (curve === 'secp521r1') return { hash: 'sha512', identifier: algorithm(OID.ecdsaWithSha512), name: 'ecdsa-with-SHA512' };
    throw new RangeError(`unsupported EC curve ${curve ?? 'unknown'} (use P-256 or P-384)`);
  }
  const type = key.asymmetricKeyType as string | undefined;
  if (type === 'ml-dsa-44') return { hash: null, identifier: algorithm(OID.mlDsa44), name: 'ML-DSA-44' };
  if (type === 'ml-dsa-65') return { hash: null, identifier: algorithm(OID.mlDsa65), name: 'ML-DSA-65' };
  if (type === 'ml-dsa-87') return { hash: null, identifier: algorithm(OID.mlDsa87), name: 'ML-DSA-87' };
  throw new RangeError(`unsupported signing key type ${type ?? 'unknown'} (use RSA, EC or ML-DSA)`);
}

/** 16 random bytes with the top bit clear: a positive serial of at most 16 content bytes, never zero. */
export function randomSerial(): Buffer {
  const serial = randomBytes(16);
  serial[0] = serial[0]! & 0x7f;
  if (serial[0] === 0) serial[0] = 0x01; // keep the full 127+ bits of entropy width
  return serial;
}

/** RFC 5280 §4.2.1.2 method 1: SHA-1 of the subjectPublicKey BIT STRING's bytes. */
export function keyIdentifier(key: KeyObject): Buffer {
  const spki = (key.type === 'private' ? createPublicKey(key) : key).export({ type: 'spki', format: 'der' });
  const [, subjectPublicKey] = parseDer(spki).children;
  if (!subjectPublicKey || subjectPublicKey.tag !== TAG.BIT_STRING) throw new RangeError('malformed SubjectPublicKeyInfo');
  return createHash('sha1').update(subjectPublicKey.value.subarray(1)).digest();
}

/** Fields read straight from a certificate's DER (what X509Certificate does not expose). */
export interface IssuerFields {
  /** The subject Name exactly as encoded (used as the issuer of certificates it signs). */
  subjectName: Buffer;
  /** The subjectKeyIdentifier extension's key id, when present. */
  subjectKeyIdentifier?: Buffer;
  /** Extension OIDs (dotted) present, with their critical flag. */
  extensions: Map<string, { critical: boolean; value: Buffer }>;
}

/** The issuer-side view of the one certificate-field reader (identity/x509-fields.ts). */
export function readCertificateFields(der: Buffer): IssuerFields {
  const f = parseCertificateFields(der);
  return { subjectName: Buffer.from(f.subjectName), subjectKeyIdentifier: f.subjectKeyIdentifier, extensions: f.extensionValues };
}

export interface CertificateSpec {
  /** `/CN=x/O=y`, `CN=x,O=y`, parsed attributes, or a DER Name used as is (e.g. a CSR's subject). */
  subject: string | NameAttribute[] | Buffer;
  /** The certified key (public, or a private key whose public half is certified). */
  subjectKey: KeyObject;
  /** The issuing CA; omitted for a self-signed certificate (then `subjectKey` must be the private key). */
  issuer?: { certificate: X509Certificate; privateKey: KeyObject };
  /** Default: now minus 5 minutes (tolerates small clock skew). */
  notBefore?: Date;
  notAfter: Date;
  /** Unsigned big-endian; default `randomSerial()`. */
  serial?: Buffer;
  /** basicConstraints CA:TRUE (with an optional pathLenConstraint); CA:FALSE otherwise. */
  ca?: boolean | { pathLength: number };
  keyUsage: KeyUsageName[];
  extendedKeyUsage?: ExtendedKeyUsageName[];
}

export interface BuiltCertificate {
  der: Buffer;
  pem: string;
  certificate: X509Certificate;
  signatureAlgorithm: string;
}

function extension(id: string, critical: boolean, value: Buffer): Buffer {
  return critical ? sequence(oid(id), boolean(true), octetString(value)) : sequence(oid(id), octetString(value));
}

/** Builds and signs a v3 certificate. */
export function createCertificate(spec: CertificateSpec): BuiltCertificate {
  const subjectName = Buffer.isBuffer(spec.subject)
    ? spec.subject
    : encodeName(typeof spec.subject === 'string' ? parseSubject(spec.subject) : spec.subject);
  const subjectPublic = spec.subjectKey.type === 'private' ? createPublicKey(spec.subjectKey) : spec.subjectKey;
  const spki = subjectPublic.export({ type: 'spki', format: 'der' });
  const subjectKeyId = keyIdentifier(subjectPublic);

  let signingKey: KeyObject;
  let issuerName: Buffer;
  let authorityKeyId: Buffer;
  let verifyKey: KeyObject;
  if (spec.issuer) {
    signingKey = spec.issuer.privateKey;
    const fields = readCertificateFields(spec.issuer.certificate.raw);
    issuerName = fields.subjectName;
    authorityKeyId = fields.subjectKeyIdentifier ?? keyIdentifier(spec.issuer.certificate.publicKey);
    verifyKey = spec.issuer.certificate.publicKey;
  } else {
    if (spec.subjectKey.type !== 'private') throw new TypeError('a self-signed certificate needs the private key as subjectKey');
    signingKey = spec.subjectKey;
    issuerName = subjectName;
    authorityKeyId = subjectKeyId;
    verifyKey = subjectPublic;
  }
  if (signingKey.type !== 'private') throw new TypeError('the issuer key must be a private key');
  const sigAlg = signatureAlgorithmFor(signingKey);

  const notBefore = spec.notBefore ?? new Date(Date.now() - 5 * 60_000);
  // Whole seconds: the encodings carry no fractions.
  const nb = new Date(Math.floor(notBefore.getTime() / 1000) * 1000);
  const na = new Date(Math.floor(spec.notAfter.getTime() / 1000) * 1000);
  if (!(na.getTime() > nb.getTime())) throw new RangeError('notAfter must be later than notBefore');

  const isCa = spec.ca !== undefined && spec.ca !== false;
  const basic =
    isCa
      ? typeof spec.ca === 'object'
        ? sequence(boolean(true), integer(spec.ca.pathLength))
        : sequence(boolean(true))
      : sequence(); // CA:FALSE is the DEFAULT, so DER omits it
  const extensions = [
    extension(OID.basicConstraints, true, basic),
    extension(OID.keyUsage, true, namedBits(spec.keyUsage.map((u) => KEY_USAGE_BITS.indexOf(u)))),
  ];
  if (spec.extendedKeyUsage && spec.extendedKeyUsage.length > 0) {
    extensions.push(extension(OID.extKeyUsage, false, sequence(...spec.extendedKeyUsage.map((u) => oid(EXTENDED_KEY_USAGES[u])))));
  }
  extensions.push(extension(OID.subjectKeyIdentifier, false, octetString(subjectKeyId)));
  extensions.push(extension(OID.authorityKeyIdentifier, false, sequence(implicit(0, authorityKeyId))));

  const tbs = sequence(
    explicit(0, integer(2)), // v3
    integer(spec.serial ?? randomSerial()),
    sigAlg.identifier,
    issuerName,
    sequence(time(nb), time(na)),
    subjectName,
    spki,
    explicit(3, sequence(...extensions)),
  );
  const signature = sign(sigAlg.hash, tbs, signingKey);
  const der = sequence(tbs, sigAlg.identifier, bitString(signature));
  const certificate = new X509Certificate(der);
  if (!certificate.verify(verifyKey)) {
    // The private key does not belong to the issuer certificate.
    throw new RangeError('the signing key does not match the issuer certificate');
  }
  return { der, pem: toPem('CERTIFICATE', der), certificate, signatureAlgorithm: sigAlg.name };
}
