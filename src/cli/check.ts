// `check`: explains, rule by rule, whether a certificate (and key, chain, CA)
// will be accepted by IAM Roles Anywhere, without contacting AWS.
import type { X509Certificate } from 'node:crypto';
import { parseFlags } from '../config/args.js';
import { formatProblem, type Problem } from '../problems.js';
import { DEFAULT_EXPIRY_WARNING_DAYS, readSetting, setting } from '../config/settings.js';
import { argvSecretWarnings, flagSuggestion, optionsFor, usageFor } from '../config/command-line.js';
import { identitySourceFromProfile } from '../runtime/identity-source.js';
import { identityFromFlags } from './identity-args.js';
import { UserError } from '../errors.js';
import { describeKeyType, keyMatchesCertificate, keyTypeProblem } from '../identity/keys.js';
import { keyMismatch, readCertificateList, readIdentityMaterial, serialDecimal } from '../identity/load.js';
import { checkCertificateRules, checkChain, daysLeft, oneLineName, type RuleResult } from '../identity/requirements.js';
import { parseCertificateFields } from '../identity/x509-fields.js';
import { exposedSecretFiles, secretFilesOf } from '../identity/files.js';

export const summary = 'Check a certificate, key and chain against the IAM Roles Anywhere rules';

const USAGE = `Usage: rolesanywhere-credentiald check --certificate FILE [options]

Checks a client certificate against every IAM Roles Anywhere rule (X.509 v3,
CA:FALSE, keyUsage digitalSignature, SHA-256+ or ML-DSA signature, RSA 2048+,
EC P-256/P-384 or ML-DSA-44/65/87 key, size, validity), that the private key
matches it, and that it chains to the trust anchor's CA. Prints one
PASS/WARN/FAIL line per rule with the fix for each failure. Exit status 0 when
nothing fails (warnings allowed), 1 otherwise. Contacts nothing.

${usageFor('check')}
`;

function line(r: RuleResult): string {
  const status = r.ok ? 'PASS' : r.severity === 'warning' ? 'WARN' : 'FAIL';
  return `${status} ${r.id}: ${r.summary}${!r.ok && r.fix ? ` — ${r.fix}` : ''}`;
}

export async function run(argv: string[]): Promise<number> {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseFlags({ args: argv, options: optionsFor('check'), strict: true, allowPositionals: false }) as { values: Record<string, string | boolean | undefined> });
  } catch (err) {
    const msg = (err as Error).message.split('\n')[0]!;
    throw new UserError(`check: ${msg}${flagSuggestion(msg, 'check')}; run \`rolesanywhere-credentiald check --help\``);
  }
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  for (const w of argvSecretWarnings(argv, 'check')) process.stderr.write(`warning: ${w}\n`);
  const text = (flag: string): string | undefined => (typeof values[flag] === 'string' ? (values[flag] as string) : undefined);
  const certificate = text('certificate');
  if (!certificate) throw new UserError('check: --certificate FILE is required; run `rolesanywhere-credentiald check --help`');
  const problems: Problem[] = [];
  const expiryWarningDays = (readSetting(setting('expiryWarningDays'), text('expiry-warning-days'), '--expiry-warning-days', problems) as number | undefined) ?? DEFAULT_EXPIRY_WARNING_DAYS;
  // The same password sources and precedence as credential-process, update and serve.
  const identity = identityFromFlags(values, process.env, problems);
  // "--expiry-warning-days must be …" reads as a sentence; other problems keep "path: message".
  const sentence = (p: Problem) => (p.message.startsWith('must ') ? `${p.path} ${p.message}` : formatProblem(p));
  if (problems.length > 0) throw new UserError(`check: ${problems.map(sentence).join('; ')}`);
  const { privateKey } = identity;
  const source = await identitySourceFromProfile({ ...identity, certificate });

  const material = await readIdentityMaterial(source);
  let anchors: X509Certificate[] | undefined;
  const ca = text('ca');
  if (ca) anchors = await readCertificateList(ca, 'CA certificate');

  const now = new Date();
  const opts = { now, expiryWarningDays };
  const results: RuleResult[] = [];
  let leafNotAfter: Date;
  try {
    results.push(...checkCertificateRules(material.leaf, opts));
    leafNotAfter = parseCertificateFields(material.leaf.raw).notAfter;
  } catch (err) {
    throw new UserError(`${material.source.certificate}: certificate could not be parsed (corrupt or unusual encoding)`, { cause: err });
  }

  if (material.publicKey) {
    const key = material.publicKey;
    const problem = keyTypeProblem(key);
    const from = material.signer ? material.signer.describe() : material.keyPath;
    results.push(
      problem
        ? { id: 'privateKey', ok: false, severity: 'error', summary: problem, fix: 'use an RSA 2048+, EC P-256/P-384 or ML-DSA key and reissue the certificate for it' }
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

  // Secret files other local users can read: a FAIL for every user, a WARN for a group with other users or a world-readable kubelet volume (files.ts says why).
  const secrets = secretFilesOf({ certificate, privateKey, keyPasswordFile: identity.keyPasswordFile });
  if (secrets.some((f) => f.path !== undefined)) {
    const exposed = await exposedSecretFiles(secrets);
    for (const f of exposed) results.push({ id: 'secretFileMode', ok: false, severity: f.severity, summary: f.message });
    if (exposed.length === 0) results.push({ id: 'secretFileMode', ok: true, severity: 'error', summary: 'key, PKCS#12 and password files are open to no other user' });
  }

  try {
    results.push(...checkChain(material.leaf, material.chain, anchors, opts));
  } catch (err) {
    throw new UserError(`a chain or CA certificate could not be parsed (corrupt or unusual encoding)`, { cause: err });
  }

  const out: string[] = [];
  // material.source: a PIN given inside a pkcs11: URI has been taken out of it.
  out.push(`Certificate: ${material.source.certificate}`);
  out.push(`  subject ${oneLineName(material.leaf.subject)}; issuer ${oneLineName(material.leaf.issuer)}`);
  if (material.signer) out.push(`Key source: ${material.signer.kind} — ${material.signer.describe()}`);
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
  await material.signer?.close?.();
  process.stdout.write(out.join('\n') + '\n');
  return failures === 0 ? 0 : 1;
}
