import type { X509Certificate } from 'node:crypto';

/**
 * A certificate's serial number in decimal, as Roles Anywhere expects it in
 * the Credential field and logs it in CloudTrail. Node gives OpenSSL's hex,
 * with a leading "-" for a (non-conforming) negative serial; that is sent in
 * signed decimal, as AWS's Go helper does.
 */
export function serialDecimal(cert: X509Certificate): string {
  const hex = cert.serialNumber;
  return hex.startsWith('-') ? (-BigInt('0x' + hex.slice(1))).toString(10) : BigInt('0x' + hex).toString(10);
}
