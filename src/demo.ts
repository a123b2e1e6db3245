#!/usr/bin/env node
// `npm run demo`: the whole flow on one machine, no AWS account needed.
//   1. a throwaway CA + client certificate (src/pki),
//   2. the local IAM Roles Anywhere + STS emulator (in process),
//   3. the daemon (`serve`, a child process) signing CreateSession with the certificate,
//   4. the AWS SDK for JavaScript v3 fetching credentials from the daemon's
//      container endpoint and calling STS GetCallerIdentity with them.
// Then it keeps running with the export lines shown until Ctrl-C; when stdin is
// not a terminal or CI is set (or with --no-wait) it exits right after step 4.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseFlags } from './config/args.js';
import { describeError } from './errors.js';
import { parseFaultRules, type FaultRule } from './emulator/faults.js';
import { exampleArns } from './emulator/examples.js';
import { startEmulator, type Emulator } from './emulator/server.js';
import { describeKey, initPki, serialDecimal } from './pki/ca.js';
import { isoSeconds } from './timers.js';

const REGION = 'us-east-1';
const { trustAnchorArn: TRUST_ANCHOR_ARN, profileArn: PROFILE_ARN, roleArn: ROLE_ARN } = exampleArns(REGION);
const CLI = fileURLToPath(new URL('./bundle/cli.js', import.meta.url));
const STARTUP_TIMEOUT_MS = 30_000;

const USAGE = `Usage: node dist/demo.js [--wait | --no-wait] [--emulator-fault JSON]   (or: npm run demo)

Runs a throwaway CA, the Roles Anywhere emulator and the daemon on 127.0.0.1,
fetches credentials through the container endpoint with the AWS SDK and calls
STS GetCallerIdentity with them. Then keeps running until Ctrl-C, unless stdin
is not a terminal or CI is set.
  --wait      keep running until Ctrl-C even without a terminal
  --no-wait   exit right after the verified call
  --emulator-fault JSON
              make the emulator misbehave to see how a failure is reported, e.g.
              '{"kind":"status","status":403,"operation":"GetCallerIdentity"}'`;

class DemoError extends Error {}

/** Last lines a child printed, shown when something fails (the daemon logs no secrets). */
class Tail {
  private lines: string[] = [];
  private partial = '';
  push(chunk: string): void {
    const parts = (this.partial + chunk).split('\n');
    this.partial = parts.pop() ?? '';
    this.lines.push(...parts);
    if (this.lines.length > 40) this.lines.splice(0, this.lines.length - 40);
  }
  text(): string {
    return [...this.lines, this.partial].filter((l) => l.trim() !== '').map((l) => `    ${l}`).join('\n');
  }
}

const say = (line = ''): void => {
  process.stdout.write(line + '\n');
};

function minutesFromNow(d: Date): string {
  const m = Math.round((d.getTime() - Date.now()) / 60_000);
  return m >= 1 ? `in ${m} minute${m === 1 ? '' : 's'}` : 'in under a minute';
}

interface Running {
  tmp?: string;
  emulator?: Emulator;
  daemon?: ChildProcess;
  daemonExit?: Promise<void>;
}

async function stopDaemon(r: Running): Promise<void> {
  const child = r.daemon;
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 8_000);
  await r.daemonExit;
  clearTimeout(timer);
}

async function cleanup(r: Running): Promise<void> {
  await stopDaemon(r).catch(() => undefined);
  await r.emulator?.close().catch(() => undefined);
  if (r.tmp) await rm(r.tmp, { recursive: true, force: true }).catch(() => undefined);
}

/** Waits for the daemon's `export NAME=value` lines on stderr; fails if it exits first. */
function waitForExports(child: ChildProcess, tail: Tail): Promise<Record<string, string>> {
  return new Promise((resolve, reject) => {
    const found: Record<string, string> = {};
    let buffer = '';
    const done = (err?: Error): void => {
      clearTimeout(timer);
      child.stderr?.off('data', onData);
      child.off('exit', onExit);
      if (err) reject(err);
      else resolve(found);
    };
    const onData = (chunk: string): void => {
      buffer += chunk;
      for (const m of buffer.matchAll(/^\s*export (AWS_[A-Z0-9_]+)=(\S+)/gm)) found[m[1]!] = m[2]!;
      if (found.AWS_CONTAINER_CREDENTIALS_FULL_URI && found.AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE) {
        // Let the whole export block arrive (IMDS line too).
        setTimeout(() => {
          for (const m of buffer.matchAll(/^\s*export (AWS_[A-Z0-9_]+)=(\S+)/gm)) found[m[1]!] = m[2]!;
          done();
        }, 50);
      }
    };
    const onExit = (code: number | null, signal: NodeJS.Signals | null): void => {
      done(new DemoError(`the daemon exited (${signal ?? `status ${code}`}) before it was ready; its output:\n${tail.text()}`));
    };
    const timer = setTimeout(
      () => done(new DemoError(`the daemon did not print its endpoint within ${STARTUP_TIMEOUT_MS / 1000} s; its output:\n${tail.text()}`)),
      STARTUP_TIMEOUT_MS,
    );
    child.stderr?.on('data', onData);
    child.on('exit', onExit);
  });
}

/** Polls /readyz until the daemon holds credentials. */
async function waitReady(base: string, child: ChildProcess, tail: Tail): Promise<void> {
  const deadline = Date.now() + STARTUP_TIMEOUT_MS;
  let last = '';
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new DemoError(`the daemon exited before it had credentials; its output:\n${tail.text()}`);
    }
    try {
      const res = await fetch(new URL('/readyz', base), { signal: AbortSignal.timeout(2_000) });
      const body = (await res.json().catch(() => ({}))) as { Message?: string };
      if (res.status === 200) return;
      last = body.Message ?? `HTTP ${res.status}`;
    } catch (err) {
      last = describeError(err);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new DemoError(`the daemon did not get credentials within ${STARTUP_TIMEOUT_MS / 1000} s (${last}); its output:\n${tail.text()}`);
}

async function main(argv: string[]): Promise<number> {
  let values: { wait?: boolean; 'no-wait'?: boolean; 'emulator-fault'?: string; help?: boolean };
  try {
    ({ values } = parseFlags({
      args: argv,
      options: { wait: { type: 'boolean' }, 'no-wait': { type: 'boolean' }, 'emulator-fault': { type: 'string' }, help: { type: 'boolean', short: 'h' } },
      strict: true,
    }));
  } catch (err) {
    throw new DemoError(`${describeError(err).replace(/\..*$/, '')}; run with --help`);
  }
  if (values.help) {
    say(USAGE);
    return 0;
  }
  if (values.wait && values['no-wait']) throw new DemoError('give --wait or --no-wait, not both');
  const wait = values.wait ? true : values['no-wait'] ? false : Boolean(process.stdin.isTTY) && !process.env.CI;
  let faults: FaultRule[] = [];
  if (values['emulator-fault'] !== undefined) {
    try {
      faults = parseFaultRules(JSON.parse(values['emulator-fault']));
    } catch (err) {
      throw new DemoError(`--emulator-fault: ${describeError(err)}`);
    }
  }

  let sdk: {
    fromHttp: typeof import('@aws-sdk/credential-providers').fromHttp;
    STSClient: typeof import('@aws-sdk/client-sts').STSClient;
    GetCallerIdentityCommand: typeof import('@aws-sdk/client-sts').GetCallerIdentityCommand;
  };
  try {
    const [providers, sts] = await Promise.all([import('@aws-sdk/credential-providers'), import('@aws-sdk/client-sts')]);
    sdk = { fromHttp: providers.fromHttp, STSClient: sts.STSClient, GetCallerIdentityCommand: sts.GetCallerIdentityCommand };
  } catch {
    throw new DemoError('the demo uses the AWS SDK from the dev dependencies; run `npm ci` in the repository first');
  }

  const r: Running = {};
  let interrupted = false;
  const onSignal = (): void => {
    interrupted = true;
  };
  const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
  for (const sig of SIGNALS) process.once(sig, onSignal);
  const checkInterrupted = (): void => {
    if (interrupted) throw new DemoError('interrupted');
  };

  try {
    say('rolesanywhere-credentiald demo — everything runs on 127.0.0.1; no AWS account is used.');
    say();

    // 1. PKI
    r.tmp = await mkdtemp(join(tmpdir(), 'rolesanywhere-demo-'));
    const pki = await initPki({ dir: join(r.tmp, 'pki'), keyType: 'ec', caName: '/CN=Demo Root CA/O=rolesanywhere-credentiald demo', clientName: '/CN=demo-workload/O=rolesanywhere-credentiald demo' });
    const leaf = pki.client.certificate;
    say(`1. Made a throwaway CA and client certificate in ${pki.dir}`);
    say(`   certificate: ${leaf.subject.replace(/\n/g, ', ')}  serial ${serialDecimal(leaf)}`);
    say(`                ${describeKey(leaf.publicKey)}, issued by ${leaf.issuer.replace(/\n/g, ', ')}, valid until ${isoSeconds(new Date(leaf.validTo))}`);
    checkInterrupted();

    // 2. Emulator
    r.emulator = await startEmulator({
      trustAnchorCaPems: [pki.ca.pem],
      region: REGION,
      trustAnchorArns: [TRUST_ANCHOR_ARN],
      profileArns: [PROFILE_ARN],
      roleArns: [ROLE_ARN],
      quiet: true,
    });
    if (faults.length > 0) r.emulator.setFaults(faults);
    say(`2. Started the IAM Roles Anywhere + STS emulator at ${r.emulator.url}, trusting that CA${faults.length > 0 ? ` (with ${faults.length} injected fault${faults.length === 1 ? '' : 's'})` : ''}`);
    checkInterrupted();

    // 3. Daemon
    const tail = new Tail();
    const args = [
      CLI, 'serve',
      '--port', '0',
      '--token-file', join(r.tmp, 'token'),
      '--certificate', pki.paths.clientCert,
      '--private-key', pki.paths.clientKey,
      '--trust-anchor-arn', TRUST_ANCHOR_ARN,
      '--profile-arn', PROFILE_ARN,
      '--role-arn', ROLE_ARN,
      '--endpoint', r.emulator.url,
      '--log-level', 'warn',
      '--without-proxy',
    ];
    // The user's own daemon settings (ROLESANYWHERE_CONFIG, …) must not leak into the demo's daemon.
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('ROLESANYWHERE_') || k === 'ROLESANYWHERE_DEBUG'));
    // Its own process group: a terminal's Ctrl-C reaches only the demo, which then
    // stops the daemon in order (and kills it if the demo itself dies).
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], env, detached: true });
    r.daemon = child;
    process.once('exit', () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    });
    r.daemonExit = new Promise((resolve) => child.once('exit', () => resolve()));
    child.stdout!.setEncoding('utf8').on('data', (d: string) => tail.push(d));
    child.stderr!.setEncoding('utf8').on('data', (d: string) => tail.push(d));
    const exports = await waitForExports(child, tail);
    const fullUri = exports.AWS_CONTAINER_CREDENTIALS_FULL_URI!;
    const tokenFile = exports.AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE!;
    await waitReady(fullUri, child, tail);
    say(`3. Started the daemon (pid ${child.pid}); it signed CreateSession with the certificate and holds credentials`);
    say(`   endpoint: ${fullUri}`);
    checkInterrupted();

    // 4. An unmodified AWS SDK client, through the container endpoint.
    const provider = sdk.fromHttp({ awsContainerCredentialsFullUri: fullUri, awsContainerAuthorizationTokenFile: tokenFile });
    let creds: Awaited<ReturnType<typeof provider>>;
    try {
      creds = await provider();
    } catch (err) {
      throw new DemoError(`the AWS SDK could not get credentials from ${fullUri}: ${describeError(err)}`);
    }
    const sts = new sdk.STSClient({ region: REGION, endpoint: r.emulator.url, credentials: provider, maxAttempts: 2 });
    let identity: { Arn?: string; Account?: string };
    try {
      identity = await sts.send(new sdk.GetCallerIdentityCommand({}));
    } catch (err) {
      throw new DemoError(`STS GetCallerIdentity with the daemon's credentials failed: ${describeError(err)}`);
    } finally {
      sts.destroy();
    }
    if (!identity.Arn) throw new DemoError('STS GetCallerIdentity returned no caller ARN');
    say('4. The AWS SDK for JavaScript v3 (fromHttp) fetched credentials from the daemon and called STS:');
    say(`   access key:  ${creds.accessKeyId}`);
    say(`   expires:     ${creds.expiration ? `${isoSeconds(creds.expiration)} (${minutesFromNow(creds.expiration)}); the daemon refreshes them long before` : 'unknown'}`);
    say(`   caller ARN:  ${identity.Arn}`);
    say();
    say('Demo OK: certificate → Roles Anywhere (emulated) → daemon → AWS SDK → STS.');

    if (!wait || interrupted) return 0;

    say();
    say('The daemon keeps running. In another shell, point any AWS SDK or CLI at it:');
    for (const [name, value] of Object.entries(exports)) say(`  export ${name}=${value}`);
    say(`  aws sts get-caller-identity --region ${REGION} --endpoint-url ${r.emulator.url}`);
    say();
    say('Press Ctrl-C to stop the daemon and the emulator.');
    await new Promise<void>((resolve) => {
      if (interrupted) return resolve();
      for (const sig of SIGNALS) {
        process.removeListener(sig, onSignal);
        process.once(sig, () => resolve());
      }
      child.once('exit', () => resolve());
    });
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new DemoError(`the daemon stopped unexpectedly; its output:\n${tail.text()}`);
    }
    say();
    say('Stopping…');
    return 0;
  } finally {
    await cleanup(r);
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`demo failed: ${err instanceof DemoError ? err.message : describeError(err)}\n`);
    if (process.env.ROLESANYWHERE_DEBUG && err instanceof Error && !(err instanceof DemoError)) process.stderr.write(`${err.stack ?? ''}\n`);
    process.exitCode = 1;
  },
);
