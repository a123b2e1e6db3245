// The certificate rules IAM Roles Anywhere applies (PROTOCOLS.md §1), checked
// locally so a bad certificate is explained before any request.
//
// Decisions (documented in the README section on certificates):
// - keyUsage must be present and include digitalSignature. RFC 5280 lets an
//   absent extension mean "any use", but AWS documents "key usage must include
//   Digital Signature" and a certificate without it is refused with an opaque
//   "Untrusted signing certificate"; we fail early and say how to reissue.
// - basicConstraints: CA:TRUE fails. An absent extension is a warning, not a
//   failure: RFC 5280 treats such a certificate as an end-entity, but AWS's
//   documentation asks for an explicit CA:FALSE, so reissue with it.
// - Signature: SHA-256 or stronger (sha256/384/512 with RSA, ECDSA or
//   RSASSA-PSS), or ML-DSA (FIPS 204, which hashes internally with SHAKE256).
//   SHA-1, MD5, SHA-224, DSA and EdDSA signatures fail.
// - Key: RSA of 2048 bits or more, EC P-256/P-384, or ML-DSA-44/65/87.
import { X509Certificate } from 'node:crypto';
import { describeKeyType, keyTypeProblem, SUPPORTED_KEYS } from './keys.js';
import { parseCertificateFields, type CertificateFields } from './x509-fields.js';

export type Severity = 'error' | 'warning';

export interface RuleResult {
  /** Stable rule name, e.g. basicConstraints. */
  id: string;
  /** True when the rule passes. A failed warning-severity rule does not block use. */
  ok: boolean;
  severity: Severity;
  /** What was checked and what was found. */
  summary: string;
  /** How to fix it (failures and warnings only). */
  fix?: string;
}

export interface RuleOptions {
  now?: Date;
}

export interface LeafRuleOptions extends RuleOptions {
  /**
   * Warn when the certificate expires within this many days: the setting expiryWarningDays, whose default
   * lives in the settings table (the runtime always passes it). Absent: no early warning, only expiry itself.
   */
  expiryWarningDays?: number;
}

export const MAX_CERTIFICATE_BYTES = 16 * 1024;
const STRONG_HASHES = new Set(['sha256', 'sha384', 'sha512']);
const DAY_MS = 86_400_000;

function pass(id: string, summary: string, severity: Severity = 'error'): RuleResult {
  return { id, ok: true, severity, summary };
}
function fail(id: string, summary: string, fix: string, severity: Severity = 'error'): RuleResult {
  return { id, ok: false, severity, summary, fix };
}

function asCert(cert: X509Certificate | Buffer): X509Certificate {
  return cert instanceof X509Certificate ? cert : new X509Certificate(cert);
}

/** Whole days left until notAfter (negative when expired), rounded down. */
export function daysLeft(notAfter: Date, now: Date): number {
  return Math.floor((notAfter.getTime() - now.getTime()) / DAY_MS);
}

/** Whether a certificate signature is one Roles Anywhere accepts: RSA/ECDSA/RSASSA-PSS with SHA-256 or stronger, or ML-DSA. */
export function isStrongSignature(alg: CertificateFields['signatureAlgorithm']): boolean {
  if (alg.kind === 'ML-DSA') return true;
  const okKind = alg.kind === 'RSA' || alg.kind === 'ECDSA' || alg.kind === 'RSA-PSS';
  return okKind && alg.hash !== undefined && STRONG_HASHES.has(alg.hash);
}

function signatureRule(f: CertificateFields, id = 'signatureAlgorithm'): RuleResult {
  const alg = f.signatureAlgorithm;
  if (isStrongSignature(alg)) {
    return pass(id, alg.kind === 'ML-DSA' ? `signed with ${alg.name} (FIPS 204)` : `signed with ${alg.name} (SHA-256 or stronger)`);
  }
  return fail(id, `is signed with ${alg.name}; Roles Anywhere needs SHA-256 or stronger`, 'reissue it with a SHA-256 (or SHA-384/512) RSA or ECDSA signature, e.g. `openssl x509 -req -sha256`, or an ML-DSA signature');
}

function validityRules(cert: X509Certificate, f: CertificateFields, now: Date, warnDays: number): RuleResult[] {
  const out: RuleResult[] = [];
  const left = daysLeft(f.notAfter, now);
  if (now < f.notBefore) {
    out.push(fail('validity', `is not valid until ${f.notBefore.toISOString()} (now ${now.toISOString()})`, 'wait until then, or check this machine\'s clock'));
  } else if (now > f.notAfter) {
    out.push(fail('validity', `expired at ${f.notAfter.toISOString()}`, 'renew the certificate'));
  } else {
    out.push(pass('validity', `valid from ${f.notBefore.toISOString()} to ${f.notAfter.toISOString()}`));
  }
  if (now <= f.notAfter && now >= f.notBefore) {
    if (left < warnDays) {
      out.push(fail('expiry', `expires in ${left} day${left === 1 ? '' : 's'} (${f.notAfter.toISOString()})`, 'renew the certificate soon', 'warning'));
    } else {
      out.push(pass('expiry', `${left} days left`, 'warning'));
    }
  }
  void cert;
  return out;
}

/**
 * Checks a client (leaf) certificate against every Roles Anywhere rule.
 * Returns one result per rule; `loadIdentity` throws on the first failed error.
 */
export function checkCertificateRules(certInput: X509Certificate | Buffer, options: LeafRuleOptions = {}): RuleResult[] {
  const cert = asCert(certInput);
  const now = options.now ?? new Date();
  const warnDays = options.expiryWarningDays ?? 0;
  const f = parseCertificateFields(cert.raw);
  const out: RuleResult[] = [];

  out.push(
    f.version === 3
      ? pass('version', 'X.509 v3')
      : fail('version', `is an X.509 v${f.version} certificate; Roles Anywhere needs v3`, 'reissue it with extensions (basicConstraints, keyUsage), which makes it v3'),
  );

  if (!f.basicConstraints) {
    out.push(fail('basicConstraints', 'has no basicConstraints extension (treated as an end-entity)', 'AWS asks for an explicit CA:FALSE; reissue it with basicConstraints=critical,CA:FALSE', 'warning'));
  } else if (f.basicConstraints.ca) {
    out.push(fail('basicConstraints', 'has basicConstraints CA:TRUE; Roles Anywhere needs an end-entity certificate', 'reissue it with CA:FALSE'));
  } else {
    out.push(pass('basicConstraints', 'CA:FALSE (end-entity)'));
  }

  if (!f.keyUsage) {
    out.push(fail('keyUsage', 'has no keyUsage extension; Roles Anywhere needs digitalSignature', 'reissue it with keyUsage=critical,digitalSignature'));
  } else if (!f.keyUsage.usages.has('digitalSignature')) {
    const has = [...f.keyUsage.usages].join(',') || 'nothing';
    out.push(fail('keyUsage', `has keyUsage ${has} without digitalSignature, which Roles Anywhere needs`, 'reissue it with keyUsage=critical,digitalSignature'));
  } else {
    out.push(pass('keyUsage', `keyUsage includes digitalSignature`));
  }

  out.push(signatureRule(f));

  const keyProblem = keyTypeProblem(cert.publicKey);
  const keyName = describeKeyType(cert.publicKey);
  const article = /^[AEIORX]/.test(keyName) ? 'an' : 'a';
  out.push(
    keyProblem
      ? fail(
          'keyType',
          cert.publicKey.asymmetricKeyType === 'rsa'
            ? `has ${article} ${keyName} key; Roles Anywhere needs RSA keys of 2048 bits or more`
            : `has ${article} ${keyName} key; Roles Anywhere supports ${SUPPORTED_KEYS} keys`,
          'reissue it for an RSA 2048+, EC P-256/P-384 or ML-DSA key',
        )
      : pass('keyType', `${keyName} key`),
  );

  out.push(
    f.derLength <= MAX_CERTIFICATE_BYTES
      ? pass('size', `${f.derLength} bytes DER (limit ${MAX_CERTIFICATE_BYTES})`)
      : fail('size', `is ${f.derLength} bytes DER; Roles Anywhere accepts at most ${MAX_CERTIFICATE_BYTES}`, 'reissue it with fewer or smaller extensions'),
  );

  out.push(...validityRules(cert, f, now, warnDays));
  return out;
}

/**
 * Checks a CA certificate (an intermediate, or the trust anchor's CA):
 * v3, CA:TRUE, keyUsage with keyCertSign, SHA-256+ signature, within validity.
 * `label` prefixes rule ids (e.g. "ca" → "ca.basicConstraints").
 */
export function checkCaRules(certInput: X509Certificate | Buffer, label: string, options: RuleOptions = {}): RuleResult[] {
  const cert = asCert(certInput);
  const now = options.now ?? new Date();
  const f = parseCertificateFields(cert.raw);
  const id = (s: string) => `${label}.${s}`;
  const out: RuleResult[] = [];
  out.push(f.version === 3 ? pass(id('version'), 'X.509 v3') : fail(id('version'), `is X.509 v${f.version}; a CA certificate must be v3`, 'reissue the CA certificate as v3 with CA:TRUE'));
  out.push(
    f.basicConstraints?.ca
      ? pass(id('basicConstraints'), 'CA:TRUE')
      : fail(id('basicConstraints'), `has ${f.basicConstraints ? 'CA:FALSE' : 'no basicConstraints'}; it cannot issue certificates`, 'use a CA certificate with basicConstraints=critical,CA:TRUE'),
  );
  out.push(
    f.keyUsage?.usages.has('keyCertSign')
      ? pass(id('keyUsage'), 'keyUsage includes keyCertSign')
      : fail(id('keyUsage'), f.keyUsage ? 'keyUsage lacks keyCertSign' : 'has no keyUsage extension (needs keyCertSign)', 'reissue the CA certificate with keyUsage=critical,keyCertSign,cRLSign'),
  );
  out.push(signatureRule(f, id('signatureAlgorithm')));
  if (now < f.notBefore) out.push(fail(id('validity'), `not valid until ${f.notBefore.toISOString()}`, 'check this machine\'s clock or the CA certificate'));
  else if (now > f.notAfter) out.push(fail(id('validity'), `expired at ${f.notAfter.toISOString()}`, 'renew the CA certificate'));
  else out.push(pass(id('validity'), `valid until ${f.notAfter.toISOString()}`));
  return out;
}

export function isSelfSigned(cert: X509Certificate): boolean {
  if (cert.subject !== cert.issuer) return false;
  try {
    return cert.verify(cert.publicKey);
  } catch {
    return false;
  }
}

/** One-line distinguished name ("CN=a, O=b") from Node's multi-line form. */
export function oneLineName(name: string): string {
  return name.split('\n').filter(Boolean).join(', ');
}

/** Did `issuer` issue `subject`? (names match and the signature verifies) */
export function issuedBy(subject: X509Certificate, issuer: X509Certificate): boolean {
  try {
    return subject.issuer === issuer.subject && subject.verify(issuer.publicKey);
  } catch {
    return false;
  }
}

/**
 * Checks the path leaf → chain[0] → … → chain[n-1] → one of `anchors`.
 * Every link's signature must verify and names must match; every CA on the
 * path must pass `checkCaRules`. Without anchors only the given links are
 * checked. Results use ids `chain`, `chain[i].*`, `trustAnchor`, `ca.*`.
 */
export function checkChain(leaf: X509Certificate, chain: X509Certificate[], anchors: X509Certificate[] | undefined, options: RuleOptions = {}): RuleResult[] {
  const out: RuleResult[] = [];
  const path = [leaf, ...chain];
  let linksOk = true;
  for (let i = 0; i < chain.length; i++) {
    const subject = path[i]!;
    const issuer = path[i + 1]!;
    const name = i === 0 ? 'the leaf' : `intermediate #${i}`;
    if (!issuedBy(subject, issuer)) {
      linksOk = false;
      out.push(
        fail(
          `chain[${i}]`,
          `intermediate #${i + 1} (${oneLineName(issuer.subject)}) did not issue ${name} (${oneLineName(subject.subject)})`,
          'give intermediates in order, nearest the leaf first, and only those on this certificate\'s path',
        ),
      );
    } else {
      out.push(pass(`chain[${i}]`, `intermediate #${i + 1} (${oneLineName(issuer.subject)}) issued ${name}`));
    }
    out.push(...checkCaRules(issuer, `chain[${i}]`, options));
  }
  if (!anchors) {
    if (chain.length === 0) out.push(pass('chain', 'no intermediates given (add --ca to check the path to the trust anchor)', 'warning'));
    return out;
  }
  const top = path[path.length - 1]!;
  const anchor = anchors.find((a) => issuedBy(top, a)) ?? anchors.find((a) => a.raw.equals(top.raw));
  if (!anchor) {
    const names = anchors.map((a) => oneLineName(a.subject)).join('; ');
    out.push(
      fail(
        'trustAnchor',
        `${top === leaf ? 'the leaf' : 'the last intermediate'} (issuer ${oneLineName(top.issuer)}) was not issued by the CA (${names})`,
        top === leaf
          ? 'give the intermediate certificates with --intermediates, or use the CA that issued this certificate as the trust anchor'
          : 'use the CA that issued the last intermediate as the trust anchor, or add the missing intermediates',
      ),
    );
    return out;
  }
  out.push(pass('trustAnchor', `chains to ${oneLineName(anchor.subject)}${linksOk ? '' : ' (but see the chain failures above)'}`));
  out.push(...checkCaRules(anchor, 'ca', options));
  return out;
}
