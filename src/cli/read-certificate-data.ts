// `read-certificate-data`: aws_signing_helper's diagnostic. For a certificate
// file it prints the helper's JSON (key type, base64 DER, decimal serial,
// supported algorithms); for a pkcs11: URI the helper's list of every matching
// certificate (fingerprint, subject, issuer, serial, a URI naming it).
import { createHash, type X509Certificate } from 'node:crypto';
import { OID } from '../asn1/oids.js';
import { UserError } from '../errors.js';
import { certificateSourceFor, keySourceOptions } from '../identity/key-sources.js';
import { readCertificateList } from '../identity/load.js';
import { goNameString, isMlDsaOid, keyAlgorithmOid, parseCertificateFields } from '../identity/x509-fields.js';
import { formatProblem, type Problem } from '../problems.js';
import { identitySourceFromProfile } from '../runtime/identity-source.js';
import { usageFor } from '../config/command-line.js';
import { identityFromFlags } from './identity-args.js';
import { parseCommandFlags } from './profile-args.js';

export const summary = "print a certificate's data as aws_signing_helper does (JSON for a file, a list for pkcs11:)";

const USAGE = `Usage: rolesanywhere-credentiald read-certificate-data --certificate FILE|pkcs11:URI [options]

aws_signing_helper's read-certificate-data. For a certificate file (PEM: the
first certificate; or DER) prints, with no newline, the helper's JSON:
  {"keyType":"RSA|EC|ML-DSA-65…","certificateData":"<base64 DER>",
   "serialNumber":"<decimal>","supportedAlgorithms":["RSASHA256",…]}
For a pkcs11: URI lists every matching certificate on the token (SHA-1
fingerprint, subject, issuer, hex serial and a pkcs11: URI for --certificate),
as the helper does. Contacts nothing.

${usageFor('read-certificate-data')}
`;

/** The helper's CertificateData, field for field (and in its order). */
export interface CertificateData {
  keyType: string;
  certificateData: string;
  serialNumber: string;
  supportedAlgorithms: string[];
}

/** What the helper's ReadCertificateData reports for a certificate. */
export function certificateData(der: Buffer): CertificateData {
  const fields = parseCertificateFields(der);
  const oid = keyAlgorithmOid(fields.spki);
  let keyType: string;
  let supportedAlgorithms: string[];
  if (oid !== undefined && isMlDsaOid(oid)) {
    keyType = { [OID.mlDsa44]: 'ML-DSA-44', [OID.mlDsa65]: 'ML-DSA-65', [OID.mlDsa87]: 'ML-DSA-87' }[oid]!;
    supportedAlgorithms = [keyType];
  } else {
    keyType = oid === OID.rsaEncryption ? 'RSA' : oid === OID.ecPublicKey ? 'EC' : '';
    supportedAlgorithms = ['SHA256', 'SHA384', 'SHA512'].map((h) => `${keyType}${h}`);
  }
  return { keyType, certificateData: der.toString('base64'), serialNumber: fields.serial.toString(10), supportedAlgorithms };
}

/** One entry of the helper's list of matching certificates (its DefaultCertContainerToString). */
export function listingEntry(index: number, der: Buffer, uri: string): string {
  const fields = parseCertificateFields(der);
  const serial = fields.serial < 0n ? `-${(-fields.serial).toString(16)}` : fields.serial.toString(16);
  return (
    `${index + 1}) Hex Fingerprint: ${createHash('sha1').update(der).digest('hex')}\n` +
    `Subject: ${goNameString(fields.subjectName)}\n` +
    `Issuer: ${goNameString(fields.issuerName)}\n` +
    `Serial Number: ${serial.toUpperCase()}\n` +
    (uri ? `URI: ${uri}\n` : '') +
    '\n'
  );
}

export async function run(argv: string[]): Promise<number> {
  const values = parseCommandFlags(argv, 'read-certificate-data');
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const problems: Problem[] = [];
  const identity = identityFromFlags(values, process.env, problems);
  if (problems.length > 0) throw new UserError(`read-certificate-data: ${problems.map(formatProblem).join('; ')}`, { reason: 'invalid_flags' });
  const certificate = identity.certificate;
  if (!certificate) throw new UserError('read-certificate-data: give --certificate FILE (PEM or DER) or --certificate pkcs11:…', { reason: 'invalid_flags' });

  const store = certificateSourceFor(certificate);
  if (store?.listCertificates) {
    const source = await identitySourceFromProfile({ ...identity, certificate });
    const found = await store.listCertificates(source.certificate, keySourceOptions(source));
    if (found.length === 0) {
      process.stdout.write('No matching identities\n');
    } else {
      process.stdout.write(`Matching identities\n${found.map((c, i) => listingEntry(i, c.der, c.uri)).join('')}`);
    }
    return 0;
  }
  const [leaf] = await readCertificateList(certificate, 'certificate');
  process.stdout.write(JSON.stringify(certificateData((leaf as X509Certificate).raw)));
  return 0;
}
