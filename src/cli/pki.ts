// `pki init` / `pki issue`: a small CA and client certificates for IAM Roles
// Anywhere, made with node:crypto (no openssl needed).
import type { ParseArgsConfig } from 'node:util';
import { parseFlags } from '../config/args.js';
import { UserError } from '../errors.js';
import { readPasswordFile } from '../identity/files.js';
import { isoSeconds } from '../timers.js';
import {
  DEFAULT_CA_DAYS,
  DEFAULT_CA_NAME,
  DEFAULT_CLIENT_DAYS,
  DEFAULT_CLIENT_NAME,
  initPki,
  issueClientCertificate,
  parseDays,
  parseKeyType,
  serialDecimal,
} from '../pki/ca.js';
import {
  checkPodNames,
  createPodIssuer,
  DEFAULT_POD_AUDIENCE,
  DEFAULT_POD_ISSUER,
  DEFAULT_TOKEN_SECONDS,
  loadPodIssuer,
  MAX_TOKEN_SECONDS,
  MIN_TOKEN_SECONDS,
  mintPodToken,
  podIdentityYaml,
  writeTokenFile,
} from '../podidentity/issuer.js';

export const summary = 'create a test CA and client certificates for Roles Anywhere (pki init | pki issue)';

const USAGE = `Usage: rolesanywhere-credentiald pki <init|issue|pod-token> [options]

  pki init DIR      create a CA (ca.pem, ca.key) and a client certificate (client.pem, client.key) in DIR
  pki issue         issue another client certificate from the CA in --ca-dir
  pki pod-token     act as a cluster's service-account issuer: write a projected service-account
                    token for a namespace/service account (pod identity without a cluster)

Run \`rolesanywhere-credentiald pki init --help\`, \`pki issue --help\` or \`pki pod-token --help\` for options.`;

const INIT_USAGE = `Usage: rolesanywhere-credentiald pki init DIR [options]

Creates DIR (mode 0700) if missing and writes:
  DIR/ca.pem, DIR/ca.key          CA certificate and key (v3, CA:TRUE, keyCertSign+cRLSign)
  DIR/client.pem, DIR/client.key  client certificate and key (CA:FALSE, digitalSignature, clientAuth)
Private keys are unencrypted PKCS#8 PEM with mode 0600. Existing files are never replaced without --force.

Options:
  --key-type TYPE           CA key: rsa = RSA 4096 (default), ec = EC P-384, ml-dsa-44,
                            ml-dsa-65, ml-dsa-87 = ML-DSA (FIPS 204, post-quantum)
  --client-key-type TYPE    client key: rsa = RSA 2048, ec = EC P-256, ml-dsa-44|65|87
                            (default: same type as the CA)
  --ca-name NAME            CA common name, or a full subject "/CN=x/O=y" (default "${DEFAULT_CA_NAME} DIRNAME
                            RANDOM", e.g. "${DEFAULT_CA_NAME} pki 3f9a0c": every CA has its own name)
  --client-name NAME        client common name, or a full subject (default "${DEFAULT_CLIENT_NAME}")
  --days N                  client certificate validity in days (default ${DEFAULT_CLIENT_DAYS})
  --ca-days N               CA validity in days (default ${DEFAULT_CA_DAYS})
  --force                   overwrite existing files
  -h, --help                show this help`;

const ISSUE_USAGE = `Usage: rolesanywhere-credentiald pki issue --ca-dir DIR --name NAME [options]

Issues a client certificate from DIR/ca.pem + DIR/ca.key and writes DIR/NAME.pem and
DIR/NAME.key (mode 0600); with --pfx also DIR/NAME.pfx (PKCS#12, AES-256, mode 0600).
With --csr FILE it certifies the key of a PKCS#10 request instead (a key kept in a
token or TPM) and writes only DIR/NAME.pem.

Options:
  --ca-dir DIR              directory holding ca.pem and ca.key (from \`pki init\`)
  --name NAME               file name for the new certificate: letters, digits, ".", "_", "-"
  --subject SUBJECT         certificate subject, e.g. "/CN=host-1/O=Example" (default "/CN=NAME")
  --days N                  validity in days (default ${DEFAULT_CLIENT_DAYS}; never past the CA's expiry)
  --key-type TYPE           rsa = RSA 2048, ec = EC P-256, ml-dsa-44|ml-dsa-65|ml-dsa-87
                            (default: same type as the CA)
  --csr FILE                certify the key in this PKCS#10 request (PEM or DER; its own
                            signature must verify; RSA 2048+, EC P-256/P-384 or ML-DSA);
                            the certificate takes its subject unless --subject is given
                            (not with --key-type or --pfx)
  --pfx                     also write DIR/NAME.pfx with the key and certificate
  --pfx-password-file FILE  read the PKCS#12 password from FILE (one trailing newline is ignored)
                            (or set ROLESANYWHERE_PFX_PASSWORD)
  --pfx-password PASSWORD   the password on the command line (visible to other users; avoid)
  --force                   overwrite existing files
  -h, --help                show this help`;

const POD_TOKEN_USAGE = `Usage: rolesanywhere-credentiald pki pod-token --issuer-dir DIR --namespace NS --service-account SA --out FILE [options]

Acts as a Kubernetes cluster's service-account issuer, to try pod identity
without a cluster. The first use creates the issuer in DIR:
  DIR/sa.key                     signing key (RSA 2048 or EC P-256, mode 0600), like a cluster's sa.key
  DIR/jwks.json                  its public key, as the API server serves /openid/v1/jwks
  DIR/openid-configuration.json  the issuer's discovery document (its iss URL)
  DIR/pod-identity.yaml          the daemon's podIdentity settings that trust it (issuer, audiences, jwks.file)
Then it writes FILE (mode 0600, replaced atomically, no trailing newline): a JWT
as kubelet's projected service-account volume holds it (iss, sub
system:serviceaccount:NS:SA, aud, exp, iat, nbf, jti, kubernetes.io namespace,
node, pod and serviceaccount). Run it again before the token expires to rotate it.

Options:
  --issuer-dir DIR          the issuer's directory (created with a new key if it holds none)
  --namespace NS            the pod's namespace
  --service-account SA      the pod's service account
  --out FILE                the token file (the pod's AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE)
  --pod NAME                the pod's name (default SA-0)
  --audience AUD            the token's audience (default ${DEFAULT_POD_AUDIENCE})
  --expiration-seconds N    lifetime, ${MIN_TOKEN_SECONDS}..${MAX_TOKEN_SECONDS} (default ${DEFAULT_TOKEN_SECONDS}, as kubelet's)
  --issuer URL              iss of a new issuer (default ${DEFAULT_POD_ISSUER})
  --key-type TYPE           key of a new issuer: rsa = RSA 2048, RS256 (default); ec = P-256, ES256
  -h, --help                show this help`;

async function podToken(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, {
    'issuer-dir': { type: 'string' },
    namespace: { type: 'string' },
    'service-account': { type: 'string' },
    out: { type: 'string' },
    pod: { type: 'string' },
    audience: { type: 'string' },
    'expiration-seconds': { type: 'string' },
    issuer: { type: 'string' },
    'key-type': { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  });
  if (values.help) {
    process.stdout.write(POD_TOKEN_USAGE + '\n');
    return 0;
  }
  if (positionals.length > 0) throw new UserError(`unexpected argument "${positionals[0]}"; pki pod-token takes --issuer-dir DIR --namespace NS --service-account SA --out FILE`, { reason: 'usage' });
  for (const flag of ['issuer-dir', 'namespace', 'service-account', 'out'] as const) {
    if (!values[flag]) throw new UserError(`pki pod-token needs --${flag}; run with --help for usage`, { reason: 'usage' });
  }
  const keyType = values['key-type'];
  if (keyType !== undefined && keyType !== 'rsa' && keyType !== 'ec') throw new UserError(`--key-type must be "rsa" or "ec", not "${keyType}"`);
  const secondsText = values['expiration-seconds'];
  if (secondsText !== undefined && !/^[0-9]+$/.test(secondsText)) throw new UserError(`--expiration-seconds must be whole seconds, not "${secondsText}"`);
  const names = { namespace: values.namespace!, serviceAccount: values['service-account']!, ...(values.pod !== undefined ? { podName: values.pod } : {}) };
  checkPodNames(names); // before anything is created

  let issuer = await loadPodIssuer(values['issuer-dir']!);
  const created = issuer === undefined;
  if (issuer) {
    for (const flag of ['issuer', 'key-type'] as const) {
      if (values[flag] !== undefined) throw new UserError(`--${flag} applies only to a new issuer, and ${issuer.dir} holds one (iss ${issuer.issuer}); remove the flag, or use another --issuer-dir`);
    }
  } else {
    issuer = await createPodIssuer({ dir: values['issuer-dir']!, ...(values.issuer !== undefined ? { issuer: values.issuer } : {}), ...(keyType ? { keyType } : {}) });
  }
  const minted = await mintPodToken(issuer, {
    ...names,
    ...(values.audience !== undefined ? { audience: values.audience } : {}),
    ...(secondsText !== undefined ? { expirationSeconds: Number(secondsText) } : {}),
  });
  const file = await writeTokenFile(values.out!, minted.token);
  const k8s = minted.claims['kubernetes.io'] as { pod: { name: string } };
  const out = [
    ...(created
      ? [
          `Created a service-account issuer in ${issuer.dir} (${issuer.alg}, kid ${issuer.kid}):`,
          `  ${issuer.paths.key}  signing key (mode 0600) — like a cluster's sa.key; keep it secret`,
          `  ${issuer.paths.jwks}  its public key (the cluster's /openid/v1/jwks)`,
          `  ${issuer.paths.discovery}  iss ${issuer.issuer}`,
          `  ${issuer.paths.config}  the daemon settings that trust it:`,
          ...podIdentityYaml(issuer).trimEnd().split('\n').filter((l) => !l.startsWith('#')).map((l) => `      ${l}`),
          '',
        ]
      : []),
    `Wrote a projected service-account token for ${names.namespace}/${names.serviceAccount} (pod ${k8s.pod.name}, audience ${(minted.claims.aud as string[])[0]}, expires ${isoSeconds(minted.expiresAt)}) to ${file} (mode 0600).`,
    'A pod sends it to the daemon\'s podIdentity listener; give the pod:',
    '  export AWS_CONTAINER_CREDENTIALS_FULL_URI=http://169.254.170.23/v1/credentials   # or http://127.0.0.1:PORT/v1/credentials',
    `  export AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=${sh(file)}`,
    'Run this command again before the token expires to rotate it (kubelet does at 80 % of its lifetime).',
    '',
  ];
  process.stdout.write(out.join('\n'));
  return 0;
}

function parse<const O extends NonNullable<ParseArgsConfig['options']>>(argv: string[], options: O) {
  try {
    return parseFlags({ args: argv, options, allowPositionals: true, strict: true });
  } catch (err) {
    const msg = (err as Error).message.split('\n')[0] ?? '';
    const unknown = /unknown option '([^']+)'/i.exec(msg);
    if (unknown) throw new UserError(`unknown option '${unknown[1]}'; run with --help for usage`, { reason: 'usage' });
    throw new UserError(`${msg.replace(/\.$/, '')}; run with --help for usage`, { reason: 'usage' });
  }
}

/** Quotes a path for a POSIX shell when it needs it. */
function sh(value: string): string {
  return /^[A-Za-z0-9_./:=@%+-]+$/.test(value) ? value : `'${value.replace(/'/g, `'\\''`)}'`;
}

async function init(argv: string[]): Promise<number> {
  const { values, positionals } = parse(
    argv,
    {
      'key-type': { type: 'string' },
      'client-key-type': { type: 'string' },
      'ca-name': { type: 'string' },
      'client-name': { type: 'string' },
      days: { type: 'string' },
      'ca-days': { type: 'string' },
      force: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  );
  if (values.help) {
    process.stdout.write(INIT_USAGE + '\n');
    return 0;
  }
  if (positionals.length === 0) throw new UserError('pki init needs a directory: `pki init DIR` (run with --help for options)', { reason: 'usage' });
  if (positionals.length > 1) throw new UserError(`pki init takes one directory, got ${positionals.length}: ${positionals.join(' ')}`, { reason: 'usage' });
  const result = await initPki({
    dir: positionals[0]!,
    keyType: parseKeyType(values['key-type']),
    clientKeyType: parseKeyType(values['client-key-type'], '--client-key-type'),
    caName: values['ca-name'],
    clientName: values['client-name'],
    days: parseDays(values.days),
    caDays: parseDays(values['ca-days'], '--ca-days'),
    force: Boolean(values.force),
  });
  for (const w of result.warnings) process.stderr.write(`warning: ${w}\n`);
  const { paths, ca, client } = result;
  const out = [
    `Created a CA and a client certificate in ${result.dir}:`,
    `  ${paths.caCert}      CA certificate: ${ca.certificate.subject.replace(/\n/g, ', ')} (${result.caKeyLabel}, ${ca.signatureAlgorithm}, expires ${isoSeconds(ca.certificate.validTo)})`,
    `  ${paths.caKey}      CA private key (mode 0600) — keep it secret; anyone with it can mint trusted certificates`,
    `  ${paths.clientCert}  client certificate: ${client.certificate.subject.replace(/\n/g, ', ')}, serial ${serialDecimal(client.certificate)} (${result.clientKeyLabel}, expires ${isoSeconds(client.certificate.validTo)})`,
    `  ${paths.clientKey}  client private key (mode 0600)`,
    '',
    `Trust anchor certificate (${paths.caCert}) — paste this into the trust anchor's certificate bundle:`,
    '',
    ca.pem.trimEnd(),
    '',
    'Next steps:',
    '  1. Create the trust anchor from the CA certificate (console: "External certificate bundle", or):',
    `       aws rolesanywhere create-trust-anchor --name my-trust-anchor --enabled \\`,
    `         --source "$(jq -n --rawfile pem ${sh(paths.caCert)} '{sourceType:"CERTIFICATE_BUNDLE",sourceData:{x509CertificateData:$pem}}')"`,
    '  2. Create a profile for a role whose trust policy allows rolesanywhere.amazonaws.com:',
    '       aws rolesanywhere create-profile --name my-profile --enabled --role-arns arn:aws:iam::ACCOUNT:role/ROLE',
    '  3. Serve credentials with the client certificate:',
    `       rolesanywhere-credentiald serve --certificate ${sh(paths.clientCert)} --private-key ${sh(paths.clientKey)} \\`,
    '         --trust-anchor-arn TRUST_ANCHOR_ARN --profile-arn PROFILE_ARN --role-arn arn:aws:iam::ACCOUNT:role/ROLE',
    `  Check a certificate against the Roles Anywhere rules and this CA:`,
    `       rolesanywhere-credentiald check --certificate ${sh(paths.clientCert)} --private-key ${sh(paths.clientKey)} --ca ${sh(paths.caCert)}`,
    `  More client certificates: rolesanywhere-credentiald pki issue --ca-dir ${sh(result.dir)} --name NAME`,
    '',
  ];
  process.stdout.write(out.join('\n'));
  return 0;
}

/** The --pfx-password-file password: like --key-password-file, but one non-empty line. */
async function readPfxPasswordFile(path: string): Promise<string> {
  const password = await readPasswordFile(path, '--pfx-password-file');
  if (password === '') throw new UserError(`--pfx-password-file ${path} is empty; put the PKCS#12 password in it`);
  if (/[\r\n]/.test(password)) throw new UserError(`--pfx-password-file ${path} has more than one line; put only the password in it`);
  return password;
}

async function issue(argv: string[]): Promise<number> {
  const { values, positionals } = parse(
    argv,
    {
      'ca-dir': { type: 'string' },
      name: { type: 'string' },
      subject: { type: 'string' },
      days: { type: 'string' },
      'key-type': { type: 'string' },
      csr: { type: 'string' },
      pfx: { type: 'boolean' },
      'pfx-password-file': { type: 'string' },
      'pfx-password': { type: 'string' },
      force: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  );
  if (values.help) {
    process.stdout.write(ISSUE_USAGE + '\n');
    return 0;
  }
  if (positionals.length > 0) throw new UserError(`unexpected argument "${positionals[0]}"; pki issue takes --ca-dir DIR --name NAME`, { reason: 'usage' });
  const caDir = values['ca-dir'];
  const name = values.name;
  if (!caDir) throw new UserError('pki issue needs --ca-dir DIR (the directory holding ca.pem and ca.key from `pki init`)', { reason: 'usage' });
  if (!name) throw new UserError(`pki issue needs --name NAME (the new files are DIR/NAME.pem${values.csr !== undefined ? '' : ' and DIR/NAME.key'})`, { reason: 'usage' });
  const days = parseDays(values.days);
  const keyType = parseKeyType(values['key-type']);

  const passwordFile = values['pfx-password-file'];
  const passwordFlag = values['pfx-password'];
  const wantPfx = Boolean(values.pfx) || passwordFile !== undefined || passwordFlag !== undefined;
  let pfxPassword: string | undefined;
  if (wantPfx) {
    if (passwordFile !== undefined && passwordFlag !== undefined) {
      throw new UserError('give either --pfx-password-file or --pfx-password, not both');
    }
    if (passwordFile !== undefined) {
      pfxPassword = await readPfxPasswordFile(passwordFile);
    } else if (passwordFlag !== undefined) {
      if (passwordFlag === '') throw new UserError('--pfx-password is empty; give a non-empty password (preferably with --pfx-password-file)');
      process.stderr.write('warning: --pfx-password puts the password in your shell history and the process list; prefer --pfx-password-file or ROLESANYWHERE_PFX_PASSWORD\n');
      pfxPassword = passwordFlag;
    } else if (process.env.ROLESANYWHERE_PFX_PASSWORD !== undefined) {
      pfxPassword = process.env.ROLESANYWHERE_PFX_PASSWORD;
      if (pfxPassword === '') throw new UserError('ROLESANYWHERE_PFX_PASSWORD is empty; set it to a non-empty password');
    } else {
      throw new UserError('--pfx needs a password: give --pfx-password-file FILE or set ROLESANYWHERE_PFX_PASSWORD');
    }
  }

  const result = await issueClientCertificate({
    caDir,
    name,
    subject: values.subject,
    days,
    keyType,
    pfxPassword,
    ...(values.csr !== undefined ? { csr: values.csr } : {}),
    force: Boolean(values.force),
  });
  for (const w of result.warnings) process.stderr.write(`warning: ${w}\n`);
  const c = result.cert.certificate;
  const out = [
    `Issued ${c.subject.replace(/\n/g, ', ')} by ${result.ca.certificate.subject.replace(/\n/g, ', ')}:`,
    `  serial ${serialDecimal(c)}, ${result.keyLabel} key, ${result.cert.signatureAlgorithm}, valid until ${isoSeconds(c.validTo)}`,
    ...(result.csr ? [`  for the key in ${values.csr} (${result.csr.keyType}; the request's own signature verified; ${values.subject !== undefined ? 'subject from --subject' : 'its subject'})`] : []),
    `  ${result.certPath}  certificate`,
    ...(result.keyPath ? [`  ${result.keyPath}  private key (mode 0600)`] : []),
    ...(result.pfxPath ? [`  ${result.pfxPath}  PKCS#12 bundle of both (mode 0600)`] : []),
    '',
    'Use it with:',
    result.pfxPath
      ? `  rolesanywhere-credentiald serve --certificate ${sh(result.pfxPath)} --key-password-file FILE \\`
      : `  rolesanywhere-credentiald serve --certificate ${sh(result.certPath)} --private-key ${result.keyPath ? sh(result.keyPath) : 'KEY'} \\`,
    '    --trust-anchor-arn TRUST_ANCHOR_ARN --profile-arn PROFILE_ARN --role-arn ROLE_ARN',
    ...(result.keyPath ? [] : ['  where KEY is the key the request was made with (its pkcs11: URI, TPM key file or handle, or key file)']),
    '',
  ];
  process.stdout.write(out.join('\n'));
  return 0;
}

export async function run(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === undefined || sub === '--help' || sub === '-h' || sub === 'help') {
    process.stdout.write(USAGE + '\n');
    return sub === undefined ? 1 : 0;
  }
  if (sub === 'init') return init(rest);
  if (sub === 'issue') return issue(rest);
  if (sub === 'pod-token') return podToken(rest);
  throw new UserError(`unknown pki command "${sub}"; use \`pki init DIR\`, \`pki issue --ca-dir DIR --name NAME\` or \`pki pod-token\``, { reason: 'usage' });
}
