// Reads the TBSCertificate fields that Node's X509Certificate does not expose
// (version, signature algorithm, basicConstraints, keyUsage bits) from DER.
import { child, DerError, expect, parseDer, readBitString, readInteger, readOctets, readOid, readTime, TAG, type Asn1 } from '../asn1/reader.js';
import { OID } from '../asn1/oids.js';
import { isPrintable, printableString, utf8String } from '../asn1/encoder.js';

export const KEY_USAGE_BITS = [
  'digitalSignature',
  'nonRepudiation',
  'keyEncipherment',
  'dataEncipherment',
  'keyAgreement',
  'keyCertSign',
  'cRLSign',
  'encipherOnly',
  'decipherOnly',
] as const;
export type KeyUsageName = (typeof KEY_USAGE_BITS)[number];

export const HASH_OIDS: Record<string, string> = {
  '1.2.840.113549.2.2': 'md2',
  '1.2.840.113549.2.5': 'md5',
  '1.3.14.3.2.26': 'sha1',
  '2.16.840.1.101.3.4.2.4': 'sha224',
  '2.16.840.1.101.3.4.2.1': 'sha256',
  '2.16.840.1.101.3.4.2.2': 'sha384',
  '2.16.840.1.101.3.4.2.3': 'sha512',
};

interface SigAlg {
  name: string;
  hash?: string;
  kind: 'RSA' | 'RSA-PSS' | 'ECDSA' | 'DSA' | 'EdDSA' | 'ML-DSA';
}

const SIGNATURE_ALGORITHMS: Record<string, SigAlg> = {
  '1.2.840.113549.1.1.2': { name: 'md2WithRSAEncryption', hash: 'md2', kind: 'RSA' },
  '1.2.840.113549.1.1.4': { name: 'md5WithRSAEncryption', hash: 'md5', kind: 'RSA' },
  '1.2.840.113549.1.1.5': { name: 'sha1WithRSAEncryption', hash: 'sha1', kind: 'RSA' },
  '1.2.840.113549.1.1.14': { name: 'sha224WithRSAEncryption', hash: 'sha224', kind: 'RSA' },
  '1.2.840.113549.1.1.11': { name: 'sha256WithRSAEncryption', hash: 'sha256', kind: 'RSA' },
  '1.2.840.113549.1.1.12': { name: 'sha384WithRSAEncryption', hash: 'sha384', kind: 'RSA' },
  '1.2.840.113549.1.1.13': { name: 'sha512WithRSAEncryption', hash: 'sha512', kind: 'RSA' },
  '1.2.840.113549.1.1.10': { name: 'RSASSA-PSS', kind: 'RSA-PSS' },
  '1.2.840.10045.4.1': { name: 'ecdsa-with-SHA1', hash: 'sha1', kind: 'ECDSA' },
  '1.2.840.10045.4.3.1': { name: 'ecdsa-with-SHA224', hash: 'sha224', kind: 'ECDSA' },
  '1.2.840.10045.4.3.2': { name: 'ecdsa-with-SHA256', hash: 'sha256', kind: 'ECDSA' },
  '1.2.840.10045.4.3.3': { name: 'ecdsa-with-SHA384', hash: 'sha384', kind: 'ECDSA' },
  '1.2.840.10045.4.3.4': { name: 'ecdsa-with-SHA512', hash: 'sha512', kind: 'ECDSA' },
  '1.2.840.10040.4.3': { name: 'dsa-with-SHA1', hash: 'sha1', kind: 'DSA' },
  '2.16.840.1.101.3.4.3.1': { name: 'dsa-with-SHA224', hash: 'sha224', kind: 'DSA' },
  '2.16.840.1.101.3.4.3.2': { name: 'dsa-with-SHA256', hash: 'sha256', kind: 'DSA' },
  '1.3.101.112': { name: 'Ed25519', kind: 'EdDSA' },
  '1.3.101.113': { name: 'Ed448', kind: 'EdDSA' },
  // FIPS 204 pure ML-DSA (RFC 9881): no digest, no parameters.
  '2.16.840.1.101.3.4.3.17': { name: 'ML-DSA-44', kind: 'ML-DSA' },
  '2.16.840.1.101.3.4.3.18': { name: 'ML-DSA-65', kind: 'ML-DSA' },
  '2.16.840.1.101.3.4.3.19': { name: 'ML-DSA-87', kind: 'ML-DSA' },
};

/** Whether an OID names ML-DSA (the same OIDs identify the key and the signature). */
export function isMlDsaOid(oid: string): boolean {
  return SIGNATURE_ALGORITHMS[oid]?.kind === 'ML-DSA';
}

/** The algorithm OID of a SubjectPublicKeyInfo or a PKCS#8 PrivateKeyInfo (DER), or undefined when unreadable. */
export function keyAlgorithmOid(der: Buffer): string | undefined {
  try {
    const root = parseDer(der, true);
    const alg = root.children.find((c) => c.tag === TAG.SEQUENCE);
    return alg ? readOid(child(alg, 0, 'algorithm OID')) : undefined;
  } catch {
    return undefined;
  }
}

export interface CertificateFields {
  /** 1, 2 or 3 (the DER stores version - 1). */
  version: number;
  serial: bigint;
  signatureAlgorithm: {
    oid: string;
    /** e.g. sha256WithRSAEncryption, or the OID when unknown. */
    name: string;
    /** Digest used, when known (for RSASSA-PSS: from its parameters, default sha1). */
    hash?: string;
    kind?: SigAlg['kind'];
  };
  notBefore: Date;
  notAfter: Date;
  /** DER of SubjectPublicKeyInfo. */
  spki: Buffer;
  /** Present only when the certificate has the extension. */
  basicConstraints?: { ca: boolean; pathLen?: number; critical: boolean };
  keyUsage?: { usages: Set<KeyUsageName>; critical: boolean };
  extendedKeyUsage?: string[];
  /** Extension OIDs, in order. */
  extensions: string[];
  /** Each extension's criticality and extnValue contents (the DER inside the OCTET STRING), by OID. */
  extensionValues: Map<string, { critical: boolean; value: Buffer }>;
  /** The subject Name exactly as encoded (the issuer Name of certificates it signs). */
  subjectName: Buffer;
  /** The issuer Name exactly as encoded. */
  issuerName: Buffer;
  /** The subjectKeyIdentifier extension's key id, when present. */
  subjectKeyIdentifier?: Buffer;
  /** Size of the whole certificate in DER bytes. */
  derLength: number;
}

export function parseAlgorithm(node: Asn1): CertificateFields['signatureAlgorithm'] {
  expect(node, TAG.SEQUENCE, 'AlgorithmIdentifier');
  const oid = readOid(child(node, 0, 'algorithm OID'));
  const known = SIGNATURE_ALGORITHMS[oid];
  if (!known) return { oid, name: oid };
  const out: CertificateFields['signatureAlgorithm'] = { oid, name: known.name, kind: known.kind };
  if (known.hash) out.hash = known.hash;
  if (known.kind === 'RSA-PSS') {
    // RSASSA-PSS-params ::= SEQUENCE { hashAlgorithm [0] AlgorithmIdentifier DEFAULT sha1, ... }
    out.hash = 'sha1';
    const params = node.children[1];
    const hashTagged = params?.children.find((c) => c.tag === 0xa0);
    const hashAlg = hashTagged?.children[0];
    if (hashAlg) {
      const hashOid = readOid(child(hashAlg, 0, 'PSS hash OID'));
      out.hash = HASH_OIDS[hashOid] ?? hashOid;
    }
    out.name = `RSASSA-PSS with ${out.hash.toUpperCase()}`;
  }
  return out;
}

/** Parses the fields we check from a certificate's DER. Throws DerError on malformed input. */
export function parseCertificateFields(der: Buffer): CertificateFields {
  const cert = expect(parseDer(der), TAG.SEQUENCE, 'Certificate');
  const tbs = expect(cert.children[0], TAG.SEQUENCE, 'TBSCertificate');
  const outerAlg = parseAlgorithm(child(cert, 1, 'signatureAlgorithm'));
  let i = 0;
  let version = 1;
  if (tbs.children[0]?.tag === 0xa0) {
    version = Number(readInteger(child(tbs.children[0], 0, 'version'))) + 1;
    i = 1;
  }
  const serial = readInteger(child(tbs, i, 'serialNumber'));
  const issuer = expect(tbs.children[i + 2], TAG.SEQUENCE, 'issuer');
  const validity = expect(tbs.children[i + 3], TAG.SEQUENCE, 'validity');
  const subject = expect(tbs.children[i + 4], TAG.SEQUENCE, 'subject');
  const spki = expect(tbs.children[i + 5], TAG.SEQUENCE, 'subjectPublicKeyInfo');
  const fields: CertificateFields = {
    version,
    serial,
    signatureAlgorithm: outerAlg,
    notBefore: readTime(child(validity, 0, 'notBefore')),
    notAfter: readTime(child(validity, 1, 'notAfter')),
    spki: spki.raw,
    extensions: [],
    extensionValues: new Map(),
    subjectName: subject.raw,
    issuerName: issuer.raw,
    derLength: cert.raw.length,
  };
  const extsWrapper = tbs.children.slice(i + 6).find((c) => c.tag === 0xa3);
  if (extsWrapper) {
    const exts = expect(extsWrapper.children[0], TAG.SEQUENCE, 'extensions');
    for (const ext of exts.children) {
      const oid = readOid(child(ext, 0, 'extension OID'));
      fields.extensions.push(oid);
      let critical = false;
      let valueNode = ext.children[1];
      if (valueNode?.tag === TAG.BOOLEAN) {
        critical = valueNode.value[0] !== 0;
        valueNode = ext.children[2];
      }
      const value = readOctets(expect(valueNode, TAG.OCTET_STRING, 'extension value'));
      fields.extensionValues.set(oid, { critical, value });
      if (oid === OID.subjectKeyIdentifier) {
        const inner = parseDer(value);
        if (inner.tag === TAG.OCTET_STRING) fields.subjectKeyIdentifier = Buffer.from(inner.value);
      } else if (oid === OID.basicConstraints) {
        const seq = expect(parseDer(value), TAG.SEQUENCE, 'basicConstraints');
        let ca = false;
        let pathLen: number | undefined;
        for (const c of seq.children) {
          if (c.tag === TAG.BOOLEAN) ca = c.value[0] !== 0;
          else if (c.tag === TAG.INTEGER) pathLen = Number(readInteger(c));
        }
        fields.basicConstraints = pathLen === undefined ? { ca, critical } : { ca, pathLen, critical };
      } else if (oid === OID.keyUsage) {
        const { bytes } = readBitString(parseDer(value));
        const usages = new Set<KeyUsageName>();
        KEY_USAGE_BITS.forEach((name, bit) => {
          const byte = bytes[bit >> 3];
          if (byte !== undefined && byte & (0x80 >> (bit & 7))) usages.add(name);
        });
        fields.keyUsage = { usages, critical };
      } else if (oid === OID.extKeyUsage) {
        const seq = expect(parseDer(value), TAG.SEQUENCE, 'extendedKeyUsage');
        fields.extendedKeyUsage = seq.children.map(readOid);
      }
    }
  }
  return fields;
}


// ---- a Name as Go's pkix.Name.String() writes it (aws_signing_helper's read-certificate-data) ----

/** Attribute types Go names; the order is Go's ToRDNSequence (printed in reverse). */
const GO_NAMED: readonly [oid: string, name: string][] = [
  ['2.5.4.6', 'C'],
  ['2.5.4.8', 'ST'],
  ['2.5.4.7', 'L'],
  ['2.5.4.9', 'STREET'],
  ['2.5.4.17', 'POSTALCODE'],
  ['2.5.4.10', 'O'],
  ['2.5.4.11', 'OU'],
  ['2.5.4.3', 'CN'],
  ['2.5.4.5', 'SERIALNUMBER'],
];
/** Types Go reads into single fields: the last value wins. */
const GO_SINGLE = new Set(['2.5.4.3', '2.5.4.5']);

/** A directory string's text, or undefined for a value Go does not read as a string. */
function directoryString(node: Asn1): string | undefined {
  switch (node.tag) {
    case TAG.UTF8_STRING:
    case TAG.PRINTABLE_STRING:
    case TAG.IA5_STRING:
    case 0x12: // NumericString
      return node.value.toString('utf8');
    case 0x14: // T61String
      return node.value.toString('latin1');
    case TAG.BMP_STRING:
      return Buffer.from(node.value).swap16().toString('utf16le');
    default:
      return undefined;
  }
}

/** RFC 2253 escaping as Go does it. */
function goEscape(s: string): string {
  let out = '';
  const bytes = Buffer.byteLength(s);
  let k = 0;
  for (const c of s) {
    const escape = ',+"\\<>;'.includes(c) || (c === ' ' && (k === 0 || k === bytes - 1)) || (c === '#' && k === 0);
    out += escape ? `\\${c}` : c;
    k += Buffer.byteLength(c);
  }
  return out;
}

/**
 * A certificate Name as Go's pkix.Name.String() prints it: Go's own order of
 * the attributes it names (SERIALNUMBER, CN, OU, O, POSTALCODE, STREET, L, ST, C),
 * then any other attribute as OID=#hex (its value re-encoded as Go would).
 */
export function goNameString(nameDer: Buffer): string {
  const name = expect(parseDer(nameDer), TAG.SEQUENCE, 'Name');
  const named = new Map<string, string[]>();
  const others: string[] = [];
  for (const rdn of name.children) {
    for (const atv of rdn.children) {
      const type = readOid(child(atv, 0, 'attribute type'));
      const value = child(atv, 1, 'attribute value');
      const text = directoryString(value);
      if (GO_NAMED.some(([o]) => o === type)) {
        if (text === undefined) continue;
        named.set(type, GO_SINGLE.has(type) ? [text] : [...(named.get(type) ?? []), text]);
        continue;
      }
      // Go re-marshals a string as PrintableString when it can, else UTF8String.
      const der = text === undefined ? value.raw : isPrintable(text) ? printableString(text) : utf8String(text);
      others.push(`${type}=#${der.toString('hex')}`);
    }
  }
  const rdns: string[] = [];
  for (const [type, label] of GO_NAMED) {
    const values = named.get(type);
    if (values && values.length > 0 && values.some((v) => v !== '')) rdns.push(values.map((v) => `${label}=${goEscape(v)}`).join('+'));
  }
  return [...rdns.reverse(), ...others.reverse()].join(',');
}

export { DerError };
