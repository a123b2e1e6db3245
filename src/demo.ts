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
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseFlags } from './config/args.js';
import { describeError } from './errors.js';
import { parseFaultRules, type FaultRule } from './emulator/faults.js';
import { exampleArns } from './emulator/examples.js';
import { startEmulator, type Emulator } from './emulator/server.js';
import { describeKey, initPki, serialDecimal } from './pki/ca.js';
import { createPodIssuer, mintPodToken, writeTokenFile } from './podidentity/issuer.js';
import { stringify as stringifyYaml } from 'yaml';
import { isoSeconds } from './timers.js';

const REGION = 'us-east-1';
const { trustAnchorArn: TRUST_ANCHOR_ARN, profileArn: PROFILE_ARN, roleArn: ROLE_ARN } = exampleArns(REGION);
const CLI = fileURLToPath(new URL('./bundle/cli.js', import.meta.url));
const POD_SCRIPT = fileURLToPath(new URL('./demo-pod.js', import.meta.url));
/** How to run the CLI from the clone the demo runs in. */
const CLI_HINT = `node ${CLI}`;
const STARTUP_TIMEOUT_MS = 30_000;

const USAGE = `Usage: node dist/demo.js [--pod-identity] [--wait | --no-wait] [--emulator-fault JSON]   (or: npm run demo)

Runs a throwaway CA, the Roles Anywhere emulator and the daemon on 127.0.0.1,
fetches credentials through the container endpoint with the AWS SDK and calls
STS GetCallerIdentity with them. Then keeps running until Ctrl-C, unless stdin
is not a terminal or CI is set.
  --pod-identity
              instead: a node agent (serve with podIdentity bindings) and two
              "pods", processes with their own service-account token files,
              each getting the role of its binding through the AWS SDK
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

/** Starts `rolesanywhere-credentiald ARGS` as the demo's daemon child, its output kept in `tail`. */
function spawnDaemon(r: Running, args: string[], tail: Tail, onStdout?: (chunk: string) => void): ChildProcess {
  // The user's own daemon settings (ROLESANYWHERE_CONFIG, …) must not leak into the demo's daemon.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('ROLESANYWHERE_') || k === 'ROLESANYWHERE_DEBUG'));
  // Its own process group: a terminal's Ctrl-C reaches only the demo, which then
  // stops the daemon in order (and kills it if the demo itself dies).
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env, detached: true });
  r.daemon = child;
  process.once('exit', () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  r.daemonExit = new Promise((resolve) => child.once('exit', () => resolve()));
  child.stdout!.setEncoding('utf8').on('data', (d: string) => {
    tail.push(d);
    onStdout?.(d);
  });
  child.stderr!.setEncoding('utf8').on('data', (d: string) => tail.push(d));
  return child;
}

async function main(argv: string[]): Promise<number> {
  let values: { wait?: boolean; 'no-wait'?: boolean; 'emulator-fault'?: string; 'pod-identity'?: boolean; help?: boolean };
  try {
    ({ values } = parseFlags({
      args: argv,
      options: { wait: { type: 'boolean' }, 'no-wait': { type: 'boolean' }, 'emulator-fault': { type: 'string' }, 'pod-identity': { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
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

  let sdk: Sdk;
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
  const ctx: DemoContext = {
    r,
    sdk,
    faults,
    wait,
    interrupted: () => interrupted,
    checkInterrupted: () => {
      if (interrupted) throw new DemoError('interrupted');
    },
    async hold(child, tail) {
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
    },
  };
  try {
    return values['pod-identity'] ? await podIdentityDemo(ctx) : await certificateDemo(ctx);
  } finally {
    await cleanup(r);
  }
}

interface Sdk {
  fromHttp: typeof import('@aws-sdk/credential-providers').fromHttp;
  STSClient: typeof import('@aws-sdk/client-sts').STSClient;
  GetCallerIdentityCommand: typeof import('@aws-sdk/client-sts').GetCallerIdentityCommand;
}

interface DemoContext {
  r: Running;
  sdk: Sdk;
  faults: FaultRule[];
  /** Keep running after the demo until Ctrl-C. */
  wait: boolean;
  interrupted(): boolean;
  checkInterrupted(): void;
  /** Waits for Ctrl-C (or the daemon's exit, an error); returns the exit status. */
  hold(child: ChildProcess, tail: Tail): Promise<number>;
}

/** `npm run demo`: certificate → emulated Roles Anywhere → daemon → SDK → STS. */
async function certificateDemo(ctx: DemoContext): Promise<number> {
  const { r, sdk, faults, checkInterrupted } = ctx;
  {
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
      'serve',
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
    const child = spawnDaemon(r, args, tail);
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

    if (!ctx.wait || ctx.interrupted()) return 0;

    say();
    say('The daemon keeps running. In another shell, point any AWS SDK or CLI at it:');
    for (const [name, value] of Object.entries(exports)) say(`  export ${name}=${value}`);
    say(`  aws sts get-caller-identity --region ${REGION} --endpoint-url ${r.emulator.url}`);
    return await ctx.hold(child, tail);
  }
}

/** EKS Pod Identity's agent address (PROTOCOLS §7). */
const POD_HOST = '169.254.170.23';

/** Why 169.254.170.23:80 cannot be bound here, or undefined when it can. */
function podAddressProblem(): Promise<string | undefined> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', (err: NodeJS.ErrnoException) => {
      resolve(
        err.code === 'EADDRNOTAVAIL'
          ? `${POD_HOST} is on no interface of this machine (as root: ip addr add ${POD_HOST}/32 dev lo)`
          : err.code === 'EACCES'
            ? 'port 80 needs root (or CAP_NET_BIND_SERVICE)'
            : `${POD_HOST}:80 is not available (${err.code ?? err.message})`,
      );
    });
    server.listen({ host: POD_HOST, port: 80, exclusive: true }, () => server.close(() => resolve(undefined)));
  });
}

/** Waits for the daemon's "serving pod identity" log line and returns its first listen address. */
function podListenFrom(log: { text: string; onLine?: () => void }, child: ChildProcess, tail: Tail): Promise<string> {
  return new Promise((resolve, reject) => {
    const check = (): boolean => {
      for (const line of log.text.split('\n')) {
        if (!line.includes('serving pod identity')) continue;
        try {
          const listen = (JSON.parse(line) as { listen?: string[] }).listen?.[0];
          if (listen) {
            done();
            resolve(listen);
            return true;
          }
        } catch {
          // not a JSON line
        }
      }
      return false;
    };
    const onExit = () => {
      done();
      reject(new DemoError(`the node agent exited before it served pod identity; its output:\n${tail.text()}`));
    };
    const timer = setTimeout(() => {
      done();
      reject(new DemoError(`the node agent did not report its pod-identity listener within ${STARTUP_TIMEOUT_MS / 1000} s; its output:\n${tail.text()}`));
    }, STARTUP_TIMEOUT_MS);
    const done = () => {
      clearTimeout(timer);
      log.onLine = undefined;
      child.off('exit', onExit);
    };
    if (check()) return;
    log.onLine = check;
    child.once('exit', onExit);
  });
}

interface DemoPod {
  namespace: string;
  serviceAccount: string;
  pod: string;
  /** The role its binding gives, or undefined: not bound. */
  role?: string;
  tokenFile?: string;
}

/** Runs dist/demo-pod.js as one pod: its own token file, the agent's URI, nothing else. */
async function runPod(pod: DemoPod, fullUri: string, stsUrl: string): Promise<{ arn: string; accessKeyId: string }> {
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    AWS_CONTAINER_CREDENTIALS_FULL_URI: fullUri,
    AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE: pod.tokenFile!,
    AWS_REGION: REGION,
    AWS_ENDPOINT_URL_STS: stsUrl,
    // Nothing else may answer: no shared files, no IMDS.
    AWS_CONFIG_FILE: '/nonexistent/aws-config',
    AWS_SHARED_CREDENTIALS_FILE: '/nonexistent/aws-credentials',
    AWS_EC2_METADATA_DISABLED: 'true',
  };
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [POD_SCRIPT], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), STARTUP_TIMEOUT_MS);
    child.on('error', (e) => reject(new DemoError(`cannot start the ${pod.namespace}/${pod.pod} pod process: ${describeError(e)}`)));
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) {
        try {
          resolve(JSON.parse(out) as { arn: string; accessKeyId: string });
          return;
        } catch {
          // fall through
        }
      }
      reject(new DemoError(`the AWS SDK in pod ${pod.namespace}/${pod.pod} failed (${signal ?? `exit ${code}`}): ${err.trim() || out.trim()}`));
    });
  });
}

/**
 * `npm run demo -- --pod-identity`: a node agent (serve with podIdentity
 * bindings) and two "pods" (processes with their own service-account token
 * files, minted by a local issuer as `pki pod-token` does), each getting its
 * own role through an unmodified AWS SDK; and a pod of an unbound service
 * account refused.
 */
async function podIdentityDemo(ctx: DemoContext): Promise<number> {
  const { r, faults, checkInterrupted } = ctx;
  say('rolesanywhere-credentiald demo --pod-identity — a node agent and two pods on this machine; no cluster, no AWS account.');
  say();

  // 1. The node's certificate.
  r.tmp = await mkdtemp(join(tmpdir(), 'rolesanywhere-demo-'));
  const pki = await initPki({ dir: join(r.tmp, 'pki'), keyType: 'ec', caName: '/CN=Demo Root CA/O=rolesanywhere-credentiald demo', clientName: '/CN=demo-node-agent/O=rolesanywhere-credentiald demo' });
  say(`1. Made a throwaway CA and the node agent's certificate in ${pki.dir}`);
  say(`   certificate: ${pki.client.certificate.subject.replace(/\n/g, ', ')}  serial ${serialDecimal(pki.client.certificate)}`);
  checkInterrupted();

  // 2. The cluster's service-account issuer.
  const issuer = await createPodIssuer({ dir: join(r.tmp, 'cluster') });
  say(`2. Made a service-account issuer in ${issuer.dir} (what a cluster's API server holds; \`pki pod-token\` makes one too)`);
  say(`   iss ${issuer.issuer}, an ${issuer.alg} signing key; its public key in ${issuer.paths.jwks}`);
  checkInterrupted();

  // 3. Emulator with one role per binding.
  const roleOf = (name: string) => ROLE_ARN.replace(/role\/.*$/, `role/${name}`);
  const roles = { checkout: roleOf('demo-checkout'), reports: roleOf('demo-reports') };
  r.emulator = await startEmulator({
    trustAnchorCaPems: [pki.ca.pem],
    region: REGION,
    trustAnchorArns: [TRUST_ANCHOR_ARN],
    profileArns: [PROFILE_ARN],
    roleArns: Object.values(roles),
    quiet: true,
  });
  if (faults.length > 0) r.emulator.setFaults(faults);
  say(`3. Started the IAM Roles Anywhere + STS emulator at ${r.emulator.url}, trusting that CA${faults.length > 0 ? ` (with ${faults.length} injected fault${faults.length === 1 ? '' : 's'})` : ''}`);
  checkInterrupted();

  // 4. The node agent.
  const problem = await podAddressProblem();
  const podListen = problem ? '127.0.0.1:0' : `${POD_HOST}:80`;
  const pods: DemoPod[] = [
    { namespace: 'shop', serviceAccount: 'checkout', pod: 'checkout-5d8f7', role: roles.checkout },
    { namespace: 'batch', serviceAccount: 'report', pod: 'report-29xkq', role: roles.reports },
  ];
  const bindings = [
    { namespace: 'shop', serviceAccount: 'checkout', profile: 'checkout' },
    { namespace: 'batch', serviceAccount: '*', profile: 'reports' },
  ];
  const profile = (roleArn: string) => ({ certificate: pki.paths.clientCert, privateKey: pki.paths.clientKey, trustAnchorArn: TRUST_ANCHOR_ARN, profileArn: PROFILE_ARN, roleArn });
  const agentConfig = join(r.tmp, 'agent.yaml');
  await writeFile(
    agentConfig,
    stringifyYaml({
      listen: ['127.0.0.1:0'],
      tokenFile: join(r.tmp, 'endpoint-token'),
      imds: { enabled: false },
      region: REGION,
      endpoint: r.emulator.url,
      withProxy: false,
      profiles: { checkout: profile(roles.checkout), reports: profile(roles.reports) },
      podIdentity: {
        listen: [podListen],
        issuer: issuer.issuer,
        audiences: [issuer.audience],
        jwks: { file: issuer.paths.jwks },
        bindings,
        sessionStart: 'atStart',
      },
    }),
  );
  const tail = new Tail();
  const log: { text: string; onLine?: () => void } = { text: '' };
  const child = spawnDaemon(r, ['serve', '--config', agentConfig, '--log-level', 'info'], tail, (d) => {
    log.text += d;
    log.onLine?.();
  });
  const exports = await waitForExports(child, tail);
  const listen = await podListenFrom(log, child, tail);
  await waitReady(exports.AWS_CONTAINER_CREDENTIALS_FULL_URI!, child, tail);
  const podUri = problem ? `http://${listen}/v1/credentials` : `http://${POD_HOST}/v1/credentials`;
  say(`4. Started the node agent (pid ${child.pid}): serve --config ${agentConfig}`);
  say(`   pod identity on ${podUri}${problem ? `\n   (not on ${POD_HOST}:80 — ${problem}; the pods use the loopback address instead)` : ''}`);
  for (const b of bindings) say(`   binding ${b.namespace}/${b.serviceAccount} → profile ${b.profile} (${b.profile === 'checkout' ? roles.checkout : roles.reports})`);
  checkInterrupted();

  // 5. Each pod: its own token file, an unmodified SDK.
  say('5. Minted each pod its projected service-account token and ran the AWS SDK for JavaScript v3 in each pod process:');
  for (const pod of pods) {
    pod.tokenFile = join(r.tmp, 'pods', pod.pod, 'token');
    const minted = await mintPodToken(issuer, { namespace: pod.namespace, serviceAccount: pod.serviceAccount, podName: pod.pod });
    await writeTokenFile(pod.tokenFile, minted.token);
  }
  const results = await Promise.all(pods.map((pod) => runPod(pod, podUri, r.emulator!.url)));
  pods.forEach((pod, i) => {
    const res = results[i]!;
    say(`   pod ${pod.namespace}/${pod.pod} (service account ${pod.serviceAccount}, token ${pod.tokenFile}):`);
    say(`     access key ${res.accessKeyId}, caller ARN ${res.arn}`);
    const roleName = pod.role!.replace(/^.*role\//, '');
    if (!res.arn.includes(`:assumed-role/${roleName}/`)) throw new DemoError(`pod ${pod.namespace}/${pod.pod} got ${res.arn}, not the role of its binding (${pod.role})`);
  });
  checkInterrupted();

  // 6. A pod whose service account no binding names.
  const stranger: DemoPod = { namespace: 'shop', serviceAccount: 'intruder', pod: 'intruder-7c2vd', tokenFile: join(r.tmp, 'pods', 'intruder-7c2vd', 'token') };
  await writeTokenFile(stranger.tokenFile!, (await mintPodToken(issuer, { namespace: stranger.namespace, serviceAccount: stranger.serviceAccount, podName: stranger.pod })).token);
  const refused = await fetch(podUri, { headers: { authorization: await readFile(stranger.tokenFile!, 'utf8') }, signal: AbortSignal.timeout(10_000) });
  const body = (await refused.json().catch(() => ({}))) as { Message?: string };
  if (refused.status !== 403) throw new DemoError(`the unbound service account shop/intruder got HTTP ${refused.status}, not 403`);
  say(`6. A pod of the unbound service account shop/intruder was refused: HTTP ${refused.status} ${body.Message ?? ''}`);
  say();
  say('Demo OK: service-account token → node agent → binding → Roles Anywhere (emulated) → each pod its own role.');

  if (!ctx.wait || ctx.interrupted()) return 0;
  say();
  say('The node agent keeps running. In another shell, be the checkout pod:');
  say(`  export AWS_CONTAINER_CREDENTIALS_FULL_URI=${podUri}`);
  say(`  export AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=${pods[0]!.tokenFile}`);
  say(`  export AWS_REGION=${REGION} AWS_ENDPOINT_URL_STS=${r.emulator.url}`);
  say('  aws sts get-caller-identity');
  say('or mint a token for another pod of the batch namespace (any service account is bound there):');
  say(`  ${CLI_HINT} pki pod-token --issuer-dir ${issuer.dir} --namespace batch --service-account nightly --out ${join(r.tmp, 'pods', 'nightly', 'token')}`);
  return ctx.hold(child, tail);
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
