// `npm run demo` = `node dist/demo.js` (run `npx tsc -p .` first): a real
// daemon child process, the emulator, and the AWS SDK for JavaScript v3.
import { spawn } from 'node:child_process';
import { readFile, stat } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { runProcess } from './helpers/cli.js';
import { makeNetns, run } from './helpers/netns.js';

const DEMO = fileURLToPath(new URL('../dist/demo.js', import.meta.url));
const CALLER = /caller ARN:\s+arn:aws:sts::123456789012:assumed-role\/rolesanywhere-demo\/\d+\n/;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function gone(pid: number): Promise<boolean> {
  for (let i = 0; i < 100 && alive(pid); i++) await new Promise((r) => setTimeout(r, 100));
  return !alive(pid);
}

function facts(stdout: string): { daemonPid: number; tmp: string } {
  const pid = /daemon \(pid (\d+)\)/.exec(stdout)?.[1];
  const dir = /certificate in (\S+)\/pki\n/.exec(stdout)?.[1];
  return { daemonPid: Number(pid), tmp: dir ?? '' };
}

/** Long mixed-case base64-ish runs look like secret keys or session tokens. */
function secretLike(text: string): string[] {
  return (text.match(/[A-Za-z0-9/+=]{40,}/g) ?? []).filter((s) => /[a-z]/.test(s) && /[A-Z]/.test(s) && !s.startsWith('/'));
}

t.test('CI=true: the whole flow succeeds, prints what happened, exits 0 and leaves nothing running', async (t) => {
  const res = await runProcess(process.execPath, [DEMO], { env: { CI: 'true' }, timeoutMs: 90_000 });
  t.equal(res.code, 0, res.stderr);
  t.match(res.stdout, /certificate: CN=demo-workload, O=rolesanywhere-credentiald demo {2}serial \d+/);
  t.match(res.stdout, /Started the IAM Roles Anywhere \+ STS emulator at http:\/\/127\.0\.0\.1:\d+/);
  t.match(res.stdout, /endpoint: http:\/\/127\.0\.0\.1:\d+\/v1\/credentials/);
  t.match(res.stdout, /access key: {2}ASIA[A-Z0-9]{16}/);
  t.match(res.stdout, /expires: {5}\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ \(in \d+ minutes\)/);
  t.match(res.stdout, CALLER);
  t.match(res.stdout, /Demo OK/);
  t.notMatch(res.stdout, /Press Ctrl-C/, 'does not wait in CI');
  // The caller ARN's session name is the certificate serial the daemon signed with.
  const serial = /serial (\d+)/.exec(res.stdout)?.[1];
  t.ok(serial && res.stdout.includes(`assumed-role/rolesanywhere-demo/${serial}\n`), 'session is named after the certificate serial');
  t.same(secretLike(res.stdout + res.stderr), [], 'no secret-looking strings in the output');
  t.notMatch(res.stdout + res.stderr, /PRIVATE KEY|SecretAccessKey|NodeVersionSupportWarning/);

  const { daemonPid, tmp } = facts(res.stdout);
  t.ok(daemonPid > 0, 'daemon pid printed');
  t.ok(await gone(daemonPid), 'the daemon was stopped');
  await t.rejects(stat(tmp), 'the temporary PKI directory was removed');
});

t.test('without CI but with stdin not a terminal, it also exits right after the call', async (t) => {
  const res = await runProcess(process.execPath, [DEMO], { env: { CI: undefined }, timeoutMs: 90_000 });
  t.equal(res.code, 0, res.stderr);
  t.match(res.stdout, CALLER);
  t.notMatch(res.stdout, /Press Ctrl-C/);
});

/** Starts the demo with --wait and waits for "Press Ctrl-C"; the caller sends SIGINT. */
async function startWaiting(t: Tap.Test, args: string[]) {
  const child = spawn(process.execPath, [DEMO, ...args, '--wait'], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, CI: 'true' } });
  const out = { stdout: '', stderr: '' };
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out.stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (out.stderr += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const killer = setTimeout(() => child.kill('SIGKILL'), 90_000);
  t.teardown(() => clearTimeout(killer));
  for (let i = 0; i < 600 && !out.stdout.includes('Press Ctrl-C') && child.exitCode === null; i++) await new Promise((r) => setTimeout(r, 100));
  t.match(out.stdout, /Press Ctrl-C to stop/, out.stderr);
  return { child, out, exited };
}

declare namespace Tap {
  type Test = typeof t;
}

t.test('--wait keeps the daemon serving until SIGINT, then shuts both down cleanly', async (t) => {
  const { child, out, exited } = await startWaiting(t, []);
  const { stdout } = out;
  t.match(stdout, /export AWS_CONTAINER_CREDENTIALS_FULL_URI=http:\/\/127\.0\.0\.1:\d+\/v1\/credentials/);
  t.match(stdout, /export AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=\S+/);
  t.match(stdout, /export AWS_EC2_METADATA_SERVICE_ENDPOINT=http:\/\/127\.0\.0\.1:\d+\//);
  t.match(stdout, /aws sts get-caller-identity --region us-east-1 --endpoint-url http:\/\/127\.0\.0\.1:\d+/);
  const { daemonPid, tmp } = facts(stdout);
  t.ok(alive(daemonPid), 'daemon still running while the demo waits');

  // The endpoint really serves while waiting (token from the printed file).
  const uri = /AWS_CONTAINER_CREDENTIALS_FULL_URI=(\S+)/.exec(stdout)![1]!;
  const tokenFile = /AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=(\S+)/.exec(stdout)![1]!;
  const res = await fetch(uri, { headers: { Authorization: await readFile(tokenFile, 'utf8') } });
  t.equal(res.status, 200);
  const body = (await res.json()) as Record<string, unknown>;
  t.ok(typeof body.AccessKeyId === 'string' && typeof body.SecretAccessKey === 'string' && typeof body.Token === 'string', 'credentials served');

  child.kill('SIGINT');
  t.equal(await exited, 0, out.stderr);
  t.match(out.stdout, /Stopping/);
  t.ok(await gone(daemonPid), 'daemon stopped');
  await t.rejects(stat(tmp), 'temporary directory removed');
});

t.test('a failure is one clear message, exit 1, and the daemon is stopped', async (t) => {
  const fault = JSON.stringify({ kind: 'status', status: 403, operation: 'GetCallerIdentity', message: 'injected for the test' });
  const res = await runProcess(process.execPath, [DEMO, '--emulator-fault', fault], { env: { CI: 'true' }, timeoutMs: 90_000 });
  t.equal(res.code, 1);
  t.match(res.stderr, /^demo failed: STS GetCallerIdentity with the daemon's credentials failed: injected for the test\n$/);
  t.notMatch(res.stdout, /Demo OK/);
  const { daemonPid, tmp } = facts(res.stdout);
  t.ok(daemonPid > 0);
  t.ok(await gone(daemonPid), 'daemon stopped after the failure');
  await t.rejects(stat(tmp), 'temporary directory removed');

  // A user's own daemon settings do not leak into the demo's daemon.
  const env = await runProcess(process.execPath, [DEMO], { env: { CI: 'true', ROLESANYWHERE_CONFIG: '/nonexistent/config.yaml', ROLESANYWHERE_PORT: '1' }, timeoutMs: 90_000 });
  t.equal(env.code, 0, env.stderr);

  const bad = await runProcess(process.execPath, [DEMO, '--bogus']);
  t.equal(bad.code, 1);
  t.match(bad.stderr, /^demo failed: Unknown option '--bogus'; run with --help\n$/);
  const badFault = await runProcess(process.execPath, [DEMO, '--emulator-fault', '{"kind":"nope"}']);
  t.equal(badFault.code, 1);
  t.match(badFault.stderr, /--emulator-fault: fault 1: kind must be one of/);
});

/** The pod-identity demo's facts: the agent's pid, the temp dir, each pod's caller ARN and token file. */
function podFacts(stdout: string) {
  const pods = [...stdout.matchAll(/pod (\S+)\/(\S+) \(service account (\S+), token (\S+)\):\n\s+access key (ASIA[A-Z0-9]{16}), caller ARN (\S+)\n/g)].map((m) => ({
    namespace: m[1]!,
    pod: m[2]!,
    serviceAccount: m[3]!,
    tokenFile: m[4]!,
    accessKey: m[5]!,
    arn: m[6]!,
  }));
  return { ...facts(stdout), agentPid: Number(/node agent \(pid (\d+)\)/.exec(stdout)?.[1]), pods };
}

async function checkPodDemo(t: Tap.Test, res: { code: number | null; stdout: string; stderr: string }, podUri: RegExp) {
  t.equal(res.code, 0, res.stderr);
  t.match(res.stdout, /Made a service-account issuer in \S+\/cluster .*\n\s+iss https:\/\/kubernetes\.default\.svc\.cluster\.local, an RS256 signing key; its public key in \S+\/cluster\/jwks\.json\n/);
  t.match(res.stdout, podUri);
  t.match(res.stdout, /binding shop\/checkout → profile checkout \(arn:aws:iam::123456789012:role\/demo-checkout\)/);
  t.match(res.stdout, /binding batch\/\* → profile reports \(arn:aws:iam::123456789012:role\/demo-reports\)/);
  const f = podFacts(res.stdout);
  t.equal(f.pods.length, 2, 'two pods ran the SDK');
  const [checkout, report] = f.pods;
  t.match(checkout, { namespace: 'shop', serviceAccount: 'checkout', arn: /^arn:aws:sts::123456789012:assumed-role\/demo-checkout\/\d+$/ }, 'the checkout pod got its binding\'s role');
  t.match(report, { namespace: 'batch', serviceAccount: 'report', arn: /^arn:aws:sts::123456789012:assumed-role\/demo-reports\/\d+$/ }, 'the report pod got its binding\'s role');
  t.not(checkout!.tokenFile, report!.tokenFile, 'each pod its own token file');
  t.not(checkout!.accessKey, report!.accessKey, 'each pod its own credentials');
  t.match(res.stdout, /A pod of the unbound service account shop\/intruder was refused: HTTP 403 service account shop\/intruder is not bound/);
  t.match(res.stdout, /Demo OK: service-account token → node agent/);
  t.same(secretLike(res.stdout + res.stderr), [], 'no secret-looking strings (tokens, keys) in the output');
  t.notMatch(res.stdout + res.stderr, /eyJ[A-Za-z0-9_-]{10,}|PRIVATE KEY|SecretAccessKey/, 'no JWT, key or secret printed');
  t.ok(f.agentPid > 0);
  t.ok(await gone(f.agentPid), 'the node agent was stopped');
  await t.rejects(stat(f.tmp), 'the temporary directory (keys, tokens) was removed');
}

t.test('--pod-identity: two pods, each with its own token file, get their own roles; 169.254.170.23 unavailable → loopback', async (t) => {
  const res = await runProcess(process.execPath, [DEMO, '--pod-identity'], { env: { CI: 'true' }, timeoutMs: 90_000 });
  // This machine's network has no 169.254.170.23 (the netns test below gives it one).
  await checkPodDemo(t, res, /pod identity on http:\/\/127\.0\.0\.1:\d+\/v1\/credentials\n\s+\(not on 169\.254\.170\.23:80 — 169\.254\.170\.23 is on no interface of this machine \(as root: ip addr add 169\.254\.170\.23\/32 dev lo\); the pods use the loopback address instead\)/);
});

t.test('--pod-identity in a network namespace that has 169.254.170.23: the pods use EKS Pod Identity\'s address', async (t) => {
  const netns = await makeNetns(t, 'ra-demo');
  if ('skip' in netns) return t.skip(netns.skip);
  await run('ip', ['-n', netns.ns, 'link', 'set', 'lo', 'up']);
  await run('ip', ['-n', netns.ns, 'addr', 'add', '169.254.170.23/32', 'dev', 'lo']);
  const res = await runProcess('ip', ['netns', 'exec', netns.ns, process.execPath, DEMO, '--pod-identity'], { env: { CI: 'true' }, timeoutMs: 90_000 });
  await checkPodDemo(t, res, /pod identity on http:\/\/169\.254\.170\.23\/v1\/credentials\n\s+binding/);
});

t.test('--pod-identity --wait: the agent keeps serving; a pod token minted by hand with the printed command works', async (t) => {
  const { child, out, exited } = await startWaiting(t, ['--pod-identity']);
  const { stdout } = out;
  const uri = /export AWS_CONTAINER_CREDENTIALS_FULL_URI=(\S+)/.exec(stdout)?.[1];
  t.ok(uri, 'prints the pod URI');
  const mint = /\n\s+node (\S+) (pki pod-token .*)\n/.exec(stdout);
  t.ok(mint, 'prints a pki pod-token command');
  const words = mint![2]!.split(' ');
  const tokenFile = words[words.indexOf('--out') + 1]!;
  const res = await runProcess(process.execPath, [mint![1]!, ...words]);
  t.equal(res.code, 0, res.stderr);
  const creds = await fetch(uri!, { headers: { authorization: await readFile(tokenFile, 'utf8') } });
  t.equal(creds.status, 200, 'batch/nightly (bound by batch/*) gets credentials');
  const body = (await creds.json()) as Record<string, unknown>;
  t.equal(body.RoleArn, 'arn:aws:iam::123456789012:role/demo-reports');
  child.kill('SIGINT');
  t.equal(await exited, 0, out.stderr);
  const { agentPid, tmp } = podFacts(out.stdout);
  t.ok(await gone(agentPid), 'agent stopped');
  await t.rejects(stat(tmp), 'temporary directory removed');
});
