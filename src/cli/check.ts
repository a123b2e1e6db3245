// `check`: explains, rule by rule, whether a certificate (and key, chain, CA)
// will be accepted by IAM Roles Anywhere, without contacting AWS.
import type { X509Certificate } from 'node:crypto';
import { parseArgs } from 'node:util';
import { UserError } from '../errors.js';
import { readPasswordFile } from '../identity/files.js';
import { describeKeyType, keyMatchesCertificate, keyTypeProblem } from '../identity/keys.js';
import { keyMismatch, readCertificateList, readIdentityMaterial, serialDecimal } from '../identity/load.js';
import { checkCertificateRules, checkChain, daysLeft, oneLineName, type RuleResult } from '../identity/requirements.js';
import type { IdentitySource } from '../identity/types.js';
import { parseCertificateFields } from '../identity/x509-fields.js';

export const summary = 'Check a certificate, key and chain against the IAM Roles Anywhere rules';

const USAGE = `Usage: rolesanywhere-credentiald check --certificate FILE [options]

Checks a client certificate against every IAM Roles Anywhere rule (X.509 v3,
CA:FALSE, keyUsage digitalSignature, SHA-256+ signature, RSA 2048+ or EC
P-256/P-384 key, size, validity), that the private key matches it, and that it
chains to the trust anchor's CA. Prints one PASS/WARN/FAIL line per rule with
the fix for each failure. Exit status 0 when nothing fails (warnings allowed),
1 otherwise. Contacts nothing.

Options:
  --certificate FILE         PEM or DER certificate (further PEM blocks are
                             intermediates), or a PKCS#12 (.p12/.pfx) bundle
  --private-key FILE         PEM or DER private key (not with PKCS#12)
  --intermediates FILE       PEM bundle of intermediate CA certificates
  --ca FILE                  the trust anchor's CA certificate(s), PEM or DER
  --key-password-file FILE   password of an encrypted key or PKCS#12 bundle
                             (one trailing newline is ignored); the
                             ROLESANYWHERE_KEY_PASSWORD variable works too
  --pkcs8-password PASSWORD  the password itself (visible in ps; prefer a file)
  --expiry-warning-days N    warn when the certificate expires within N days
                             (default 7)
  -h, --help                 show this help
`;

/** Password from --key-password-file, --pkcs8-password or ROLESANYWHERE_KEY_PASSWORD (in that order). */
export async function resolvePassword(values: { 'key-password-file'?: string; 'pkcs8-password'?: string }): Promise<string | undefined> {
  if (values['key-password-file'] !== undefined && values['pkcs8-password'] !== undefined) {
    throw new UserError('give either --key-password-file or --pkcs8-password, not both');
  }
  if (values['key-password-file'] !== undefined) return readPasswordFile(values['key-password-file']);
  if (values['pkcs8-password'] !== undefined) return values['pkcs8-password'];
  // An empty variable counts as unset (an empty password can come from a file).
  const env = process.env.ROLESANYWHERE_KEY_PASSWORD;
  return env === undefined || env === '' ? undefined : env;
}

function line(r: RuleResult): string {
  const status = r.ok ? 'PASS' : r.severity === 'warning' ? 'WARN' : 'FAIL';
  return `${status} ${r.id}: ${r.summary}${!r.ok && r.fix ? ` — ${r.fix}` : ''}`;
}

export async function run(argv: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        certificate: { type: 'string' },
        'private-key': { type: 'string' },
        intermediates: { type: 'string' },
        ca: { type: 'string' },
        'key-password-file': { type: 'string' },
        'pkcs8-password': { type: 'string' },
        'expiry-warning-days': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    throw new UserError(`check: ${(err as Error).message.split('\n')[0]}; run \`rolesanywhere-credentiald check --help\``);
  }
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  if (!values.certificate) throw new UserError('check: --certificate FILE is required; run `rolesanywhere-credentiald check --help`');
  let expiryWarningDays = 7;
  if (values['expiry-warning-days'] !== undefined) {
    const raw = values['expiry-warning-days'];
    if (!/^\d+$/.test(raw)) throw new UserError(`check: --expiry-warning-days must be a whole number of days, got "${raw}"`);
    expiryWarningDays = Number(raw);
  }
  const source: IdentitySource = { certificate: values.certificate };
  if (values['private-key']) source.privateKey = values['private-key'];
  if (values.intermediates) source.intermediates = values.intermediates;
  const password = await resolvePassword(values);
  if (password !== undefined) source.password = password;

  const material = await readIdentityMaterial(source);
  let anchors: X509Certificate[] | undefined;
  if (values.ca) anchors = await readCertificateList(values.ca, 'CA certificate');

  const now = new Date();
  const opts = { now, expiryWarningDays };
  const results: RuleResult[] = [];
  let leafNotAfter: Date;
  try {
    results.push(...checkCertificateRules(material.leaf, opts));
    leafNotAfter = parseCertificateFields(material.leaf.raw).notAfter;
  } catch (err) {
    throw new UserError(`${source.certificate}: certificate could not be parsed (corrupt or unusual encoding)`, { cause: err });
  }

  if (material.publicKey) {
    const key = material.publicKey;
    const problem = keyTypeProblem(key);
    const from = material.signer ? material.signer.describe() : material.keyPath;
    results.push(
      problem
        ? { id: 'privateKey', ok: false, severity: 'error', summary: problem, fix: 'use an RSA 2048+ or EC P-256/P-384 key and reissue the certificate for it' }
        : { id: 'privateKey', ok: true, severity: 'error', summary: `${describeKeyType(key)} key from ${from}` },
    );
    if (keyMatchesCertificate(key, material.leaf)) {
      results.push({ id: 'keyMatch', ok: true, severity: 'error', summary: 'private key matches the certificate' });
    } else {
      const { summary: s, fix } = keyMismatch(material);
      results.push({ id: 'keyMatch', ok: false, severity: 'error', summary: s, fix });
    }
  } else {
    results.push({ id: 'keyMatch', ok: false, severity: 'warning', summary: 'no private key given, so it was not checked', fix: 'add --private-key KEY' });
  }

  try {
    results.push(...checkChain(material.leaf, material.chain, anchors, opts));
  } catch (err) {
    throw new UserError(`a chain or CA certificate could not be parsed (corrupt or unusual encoding)`, { cause: err });
  }

  const out: string[] = [];
  out.push(`Certificate: ${source.certificate}`);
  out.push(`  subject ${oneLineName(material.leaf.subject)}; issuer ${oneLineName(material.leaf.issuer)}`);
  for (const r of results) out.push(line(r));
  for (const root of material.droppedRoots) {
    out.push(`INFO chain: self-signed ${oneLineName(root.subject)} in the chain is not sent (the trust anchor holds it)`);
  }
  out.push(`INFO days left: ${daysLeft(leafNotAfter, now)} (until ${leafNotAfter.toISOString()})`);
  out.push(`INFO serial (decimal, as CloudTrail logs it): ${serialDecimal(material.leaf)}`);
  const failures = results.filter((r) => !r.ok && r.severity === 'error').length;
  const warnings = results.filter((r) => !r.ok && r.severity === 'warning').length;
  const w = warnings ? ` (${warnings} warning${warnings === 1 ? '' : 's'})` : '';
  out.push(failures === 0 ? `OK: Roles Anywhere should accept this certificate${w}` : `FAILED: ${failures} rule${failures === 1 ? '' : 's'} failed${w}`);
  process.stdout.write(out.join('\n') + '\n');
  return failures === 0 ? 0 : 1;
}
