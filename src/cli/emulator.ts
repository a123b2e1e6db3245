// `rolesanywhere-credentiald emulator`: a local IAM Roles Anywhere + STS
// stand-in for demos and tests. Prints exactly one line to stdout,
// `emulator listening on http://127.0.0.1:<port>`, then one line per call to
// stderr (no secrets). Stops on SIGTERM/SIGINT with exit 0.
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { UserError } from '../errors.js';
import { parseCaPems, startEmulator } from '../emulator/server.js';

export const summary = 'Run a local IAM Roles Anywhere + STS emulator (for demos and tests)';

const USAGE = `Usage: rolesanywhere-credentiald emulator --trust-anchor-ca FILE [options]

Runs a local stand-in for IAM Roles Anywhere CreateSession (POST /sessions)
and STS GetCallerIdentity on one loopback port. Requests are verified like the
service does (SigV4-X509 signature, chain to a trust anchor CA, validity,
clock skew, serial, region, ARNs, durationSeconds).

Options:
  --trust-anchor-ca FILE       PEM CA certificate(s) to trust (repeatable, required)
  --port N                     port to listen on (default 0: a random free port)
  --host ADDR                  loopback address to bind (default 127.0.0.1)
  --region R                   refuse requests signed for other regions
  --credential-lifetime SECS   cap on issued credential lifetimes (default 3600)
  --max-skew SECS              allowed X-Amz-Date skew (default 300)
  --rate-limit N               CreateSession quota: N calls/s across all callers (429 above it;
                               the service's default quota is 10); default: none
  --quiet                      don't log each call to stderr
  -h, --help                   show this help

Control API (JSON): POST/GET/DELETE /_emulator/faults, GET/DELETE /_emulator/stats,
POST /_emulator/lifetime {"seconds":N}, GET /_emulator/issued (no secrets),
POST/DELETE /_emulator/ratelimit {"perSecond":N,"burst":M}.
`;

function positiveInt(flag: string, value: string | undefined, min: number, max: number): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value) || Number(value) < min || Number(value) > max) {
    throw new UserError(`${flag} must be a whole number from ${min} to ${max}, got "${value}"`);
  }
  return Number(value);
}

export async function run(argv: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        'trust-anchor-ca': { type: 'string', multiple: true },
        port: { type: 'string' },
        host: { type: 'string' },
        region: { type: 'string' },
        'credential-lifetime': { type: 'string' },
        'max-skew': { type: 'string' },
        'rate-limit': { type: 'string' },
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
    } catch {
      throw new UserError(`--trust-anchor-ca ${f}: not a PEM certificate (expected -----BEGIN CERTIFICATE-----)`);
    }
    pems.push(text);
  }
  const port = positiveInt('--port', values.port, 0, 65535);
  const lifetime = positiveInt('--credential-lifetime', values['credential-lifetime'], 1, 43200);
  const maxSkew = positiveInt('--max-skew', values['max-skew'], 0, 86400);
  const rateLimit = positiveInt('--rate-limit', values['rate-limit'], 1, 100_000);
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
      quiet: values.quiet ?? false,
    });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE') throw new UserError(`port ${port} on ${host} is already in use; pick another --port or use 0 for a random one`);
    if (code === 'EACCES') throw new UserError(`not allowed to listen on ${host}:${port}; use a port above 1023`);
    throw err;
  }
  process.stdout.write(`emulator listening on ${emulator.url}\n`);

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
