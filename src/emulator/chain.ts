// Trust decisions the way Roles Anywhere makes them: the leaf (an end entity)
// must chain to one of the trust anchor's CA certificates, directly or through
// the intermediates the client sent; every certificate on the path must be
// within its validity period.
import type { X509Certificate } from 'node:crypto';
import { isStrongSignature } from '../identity/requirements.js';
import { parseCertificateFields } from '../identity/x509-fields.js';

export type ChainFailureReason =
  | 'untrusted'
  | 'leaf_is_ca'
  | 'leaf_key_usage'
  | 'weak_signature'
  | 'not_v3'
  | 'malformed_certificate'
  | 'intermediate_not_ca'
  | 'expired'
  | 'not_yet_valid';

/**
 * The end-entity rules the service applies to the signing certificate, read
 * from the DER (Node's `X509Certificate.ca` is OpenSSL's X509_check_ca, which
 * answers false for a CA:TRUE certificate whose keyUsage lacks keyCertSign).
 */
export function checkLeafRules(leaf: X509Certificate): ChainResult | undefined {
  let fields;
  try {
    fields = parseCertificateFields(leaf.raw);
  } catch {
    return { ok: false, reason: 'malformed_certificate', message: 'Signing certificate could not be parsed' };
  }
  if (fields.version !== 3) {
    return { ok: false, reason: 'not_v3', message: `Signing certificate must be X.509 v3, it is v${fields.version}` };
  }
  if (fields.basicConstraints?.ca || leaf.ca) {
    return { ok: false, reason: 'leaf_is_ca', message: 'Signing certificate must be an end-entity certificate (basicConstraints CA:FALSE), but it is a CA certificate' };
  }
  if (fields.keyUsage && !fields.keyUsage.usages.has('digitalSignature')) {
    return { ok: false, reason: 'leaf_key_usage', message: 'Signing certificate keyUsage must include digitalSignature' };
  }
  if (!isStrongSignature(fields.signatureAlgorithm)) {
    return { ok: false, reason: 'weak_signature', message: `Signing certificate must be signed with SHA-256 or stronger, it uses ${fields.signatureAlgorithm.name}` };
  }
  return undefined;
}

export type ChainResult =
  | { ok: true; /** leaf, intermediates used, anchor */ path: X509Certificate[] }
  | { ok: false; reason: ChainFailureReason; message: string };

const MAX_DEPTH = 6;

function issuedBy(child: X509Certificate, parent: X509Certificate): boolean {
  try {
    // checkIssued: subject/issuer names (and key identifiers when present); verify: the signature.
    return child.checkIssued(parent) && child.verify(parent.publicKey);
  } catch {
    return false;
  }
}

function describe(cert: X509Certificate): string {
  const cn = /(?:^|\n)CN=([^\n]*)/.exec(cert.subject)?.[1];
  return cn ? `"${cn}"` : `"${cert.subject.replace(/\n/g, ', ')}"`;
}

/** Checks the validity period of one certificate at `now`. */
export function checkValidity(cert: X509Certificate, now: Date, role: string): ChainResult | undefined {
  const from = new Date(cert.validFrom);
  const to = new Date(cert.validTo);
  if (now.getTime() > to.getTime()) {
    return { ok: false, reason: 'expired', message: `${role} certificate ${describe(cert)} expired at ${to.toISOString()}` };
  }
  if (now.getTime() < from.getTime()) {
    return { ok: false, reason: 'not_yet_valid', message: `${role} certificate ${describe(cert)} is not valid before ${from.toISOString()}` };
  }
  return undefined;
}

/**
 * Builds a path leaf → (intermediates…) → anchor. Intermediates may be sent
 * in any order; each must be CA:TRUE and sign the previous certificate.
 */
export function verifyChain(leaf: X509Certificate, intermediates: X509Certificate[], anchors: X509Certificate[], now: Date): ChainResult {
  const leafRule = checkLeafRules(leaf);
  if (leafRule) return leafRule;
  const path = [leaf];
  const used = new Set<number>();
  let current = leaf;
  for (let depth = 0; depth < MAX_DEPTH; depth++) {
    const anchor = anchors.find((a) => issuedBy(current, a));
    if (anchor) {
      path.push(anchor);
      for (let i = 0; i < path.length; i++) {
        const bad = checkValidity(path[i]!, now, i === 0 ? 'Signing' : i === path.length - 1 ? 'Trust anchor CA' : 'Intermediate CA');
        if (bad) return bad;
      }
      return { ok: true, path };
    }
    const idx = intermediates.findIndex((c, i) => !used.has(i) && issuedBy(current, c));
    if (idx < 0) break;
    const next = intermediates[idx]!;
    if (!next.ca) {
      return { ok: false, reason: 'intermediate_not_ca', message: `Untrusted signing certificate: intermediate ${describe(next)} is not a CA certificate (basicConstraints CA:TRUE)` };
    }
    used.add(idx);
    path.push(next);
    current = next;
  }
  return {
    ok: false,
    reason: 'untrusted',
    message: `Untrusted signing certificate: ${describe(leaf)} (issuer ${describe({ subject: leaf.issuer } as X509Certificate)}) does not chain to a trust anchor CA`,
  };
}
