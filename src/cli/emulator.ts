// `rolesanywhere-credentiald emulator`: a local IAM Roles Anywhere + STS
// stand-in for demos and tests. Prints exactly one line to stdout,
// `emulator listening on http://127.0.0.1:<port>`, then one line per call to
// stderr (no secrets). Stops on SIGTERM/SIGINT with exit 0.
import { access, readFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { isSea } from 'node:sea';
import { parseFlags } from '../config/args.js';
import { describeError, UserError } from '../errors.js';
import { exampleArns, shellWord } from '../emulator/examples.js';
import { parseCaPems, startEmulator } from '../emulator/server.js';
import type { AssumableRole } from '../emulator/state.js';
import { checkRoleArn } from '../rolesanywhere/arn.js';

export const summary = 'Run a local IAM Roles Anywhere + STS emulator (for demos and tests)';

const USAGE = `Usage: rolesanywhere-credentiald emulator --trust-anchor-ca FILE [options]

Runs a local stand-in for IAM Roles Anywhere CreateSession (POST /sessions)
and STS GetCallerIdentity and AssumeRole on one loopback port. Requests are verified like the
service does (SigV4-X509 signature, chain to a trust anchor CA, validity,
clock skew, serial, region, ARNs, durationSeconds).

Options:
  --trust-anchor-ca FILE       PEM CA certificate(s) to trust (repeatable, required)
  --port N                     port to listen on (default 0: a random free port)
  --host ADDR                  loopback address to bind (default 127.0.0.1)
  --region R                   refuse requests signed for other regions
  --credential-lifetime SECS   cap on issued credential lifetimes (default 3600)
  --max-skew SECS              allowed X-Amz-Date skew (default 300)
  --assumable-role ARN[,externalId=ID]
                               a role STS AssumeRole gives (repeatable), with the ExternalId
                               its trust policy requires; without any: every role
  --rate-limit N               CreateSession quota: N calls/s across all callers (429 above it;
                               the service's default quota is 10); default: none
  --quiet                      don't print the start-up guide (example ARNs, a serve command) or log each call
  -h, --help                   show this help

Control API (JSON): POST/GET/DELETE /_emulator/faults, GET/DELETE /_emulator/stats,
POST /_emulator/lifetime {"seconds":N}, GET /_emulator/issued (no secrets),
POST/DELETE /_emulator/ratelimit {"perSecond":N,"burst":M}.
`;

/**
 * What to do next, for someone who started the emulator by hand: ARNs it accepts
 * and a `serve` command to paste. With a CA from `pki init DIR`, the client
 * certificate and key next to it are used; otherwise placeholders say what goes there.
 */
async function startGuide(url: string, region: string, caFile: string): Promise<string> {
  const arns = exampleArns(region);
  const dir = dirname(resolve(caFile));
  const issued = await Promise.all(['client.pem', 'client.key'].map((f) => access(join(dir, f)).then(() => join(dir, f), () => undefined)));
  const [certificate, privateKey] = issued[0] && issued[1] ? issued : ['CLIENT_CERT.pem', 'CLIENT_KEY.pem'];
  const self = isSea() ? [process.execPath] : basename(process.argv[1] ?? '') === 'cli.js' ? [process.execPath, process.argv[1]!] : ['rolesanywhere-credentiald'];
  const serve = [...self, 'serve', '--certificate', certificate!, '--private-key', privateKey!, '--trust-anchor-arn', arns.trustAnchorArn, '--profile-arn', arns.profileArn, '--role-arn', arns.roleArn, '--endpoint', url];
  return [
    '',
    `It accepts any well-formed ARNs in ${region}, for example:`,
    `  trust anchor  ${arns.trustAnchorArn}`,
    `  profile       ${arns.profileArn}`,
    `  role          ${arns.roleArn}`,
    '',
    'Serve credentials from it (in another shell):',
    `  ${serve.map(shellWord).join(' ')}`,
    ...(issued[0] && issued[1] ? [] : [`  (a client certificate and key issued by ${caFile}: e.g. \`rolesanywhere-credentiald pki issue --ca-dir ${shellWord(dir)} --name NAME\`)`]),
    '',
  ].join('\n');
}

function positiveInt(flag: string, value: string | undefined, min: number, max: number): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value) || Number(value) < min || Number(value) > max) {
    throw new UserError(`${flag} must be a whole number from ${min} to ${max}, got "${value}"`);
  }
  return Number(value);
}

/** `ARN[,externalId=ID]` of --assumable-role. */
export function parseAssumableRole(value: string): AssumableRole {
  const comma = value.indexOf(',');
  const roleArn = comma < 0 ? value : value.slice(0, comma);
  const r = checkRoleArn(roleArn);
  if (!r.ok) throw new UserError(`--assumable-role "${roleArn.slice(0, 200)}" is not an IAM role ARN (${r.why}): give ARN or ARN,externalId=ID`);
  if (comma < 0) return { roleArn };
  const m = /^externalId=([\w+=,.@:/-]{2,1224})$/.exec(value.slice(comma + 1));
  if (!m) throw new UserError(`--assumable-role ${roleArn}: after the ARN give ,externalId=ID (2-1224 characters of letters, digits and _+=,.@:/-)`);
  return { roleArn, externalId: m[1]! };
}

export async function run(argv: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseFlags({
      args: argv,
      options: {
        'trust-anchor-ca': { type: 'string', multiple: true },
        port: { type: 'string' },
        host: { type: 'string' },
        region: { type: 'string' },
        'credential-lifetime': { type: 'string' },
        'max-skew': { type: 'string' },
        'rate-limit': { type: 'string' },
        'assumable-role': { type: 'string', multiple: true },
        quiet: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    throw new UserError(`${err instanceof Error ? err.message : String(err)}; run "rolesanywhere-credentiald emulator --help" for the options`);
  }
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const caFiles = values['trust-anchor-ca'] ?? [];
  if (caFiles.length === 0) throw new UserError('--trust-anchor-ca FILE is required (the PEM CA certificate that issued your client certificates)');
  const pems: string[] = [];
  for (const f of caFiles) {
    let text: string;
    try {
      text = await readFile(f, 'utf8');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw new UserError(`--trust-anchor-ca ${f}: ${code === 'ENOENT' ? 'file not found' : `cannot read (${code ?? 'error'})`}`);
    }
    try {
      parseCaPems([text]);
    } catch (err) {
      throw new UserError(`--trust-anchor-ca ${f}: ${describeError(err)}`);
    }
    pems.push(text);
  }
  const port = positiveInt('--port', values.port, 0, 65535);
  const lifetime = positiveInt('--credential-lifetime', values['credential-lifetime'], 1, 43200);
  const maxSkew = positiveInt('--max-skew', values['max-skew'], 0, 86400);
  const rateLimit = positiveInt('--rate-limit', values['rate-limit'], 1, 100_000);
  const assumableRoles = (values['assumable-role'] ?? []).map(parseAssumableRole);
  const host = values.host ?? '127.0.0.1';
  if (!/^(127\.\d+\.\d+\.\d+|::1|localhost)$/.test(host)) throw new UserError(`--host must be a loopback address (127.0.0.1, ::1, localhost), got "${host}": the emulator is for local use only`);
  if (values.region !== undefined && !/^[a-z]{2}(-[a-z]+)+-\d+$/.test(values.region)) {
    throw new UserError(`--region "${values.region}" is not an AWS region name (e.g. us-east-1)`);
  }

  let emulator;
  try {
    emulator = await startEmulator({
      trustAnchorCaPems: pems,
      port,
      host,
      region: values.region,
      credentialLifetimeSeconds: lifetime,
      maxSkewSeconds: maxSkew,
      ...(rateLimit === undefined ? {} : { rateLimit: { perSecond: rateLimit } }),
      ...(assumableRoles.length > 0 ? { assumableRoles } : {}),
      quiet: values.quiet ?? false,
    });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE') throw new UserError(`port ${port} on ${host} is already in use; pick another --port or use 0 for a random one`);
    if (code === 'EACCES') throw new UserError(`not allowed to listen on ${host}:${port}; use a port above 1023`);
    throw err;
  }
  process.stdout.write(`emulator listening on ${emulator.url}\n`);
  if (!values.quiet) process.stderr.write(await startGuide(emulator.url, values.region ?? 'us-east-1', caFiles[0]!));

  return new Promise<number>((resolve) => {
    const stop = (signal: NodeJS.Signals) => {
      process.off('SIGTERM', onTerm);
      process.off('SIGINT', onInt);
      process.stderr.write(`emulator: ${signal} received, stopping\n`);
      void emulator.close().then(() => resolve(0));
    };
    const onTerm = () => stop('SIGTERM');
    const onInt = () => stop('SIGINT');
    process.on('SIGTERM', onTerm);
    process.on('SIGINT', onInt);
  });
}
