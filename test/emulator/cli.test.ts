// The `emulator` command as a real process: listening line, per-call stderr
// log without secrets, control API, clean stop on SIGTERM and SIGINT.
import t from 'tap';
import { spawn } from 'node:child_process';
import { CLI, runCli } from '../helpers/cli.js';
import { callCreateSession, DEFAULT_ARNS } from '../helpers/emulator.js';
import { loadIdentity } from '../../src/identity/load.js';
import { makeCA, makeLeaf, tempDir } from '../helpers/pki.js';
import { waitUntil } from '../helpers/daemon.js';
import { checkRoleArn, checkRolesAnywhereArn } from '../../src/rolesanywhere/arn.js';

const dir = await tempDir('ra-emu-cli-');
const ca = await makeCA(dir, 'CLI Root CA');
const leaf = await makeLeaf(dir, ca, 'cli-client');

function startCli(args: string[]) {
  const child = spawn(process.execPath, [CLI, 'emulator', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('close', (code, signal) => resolve({ code, signal })));
  const url = new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no listening line; stderr: ${stderr}`)), 30_000);
    child.stdout.on('data', () => {
      const m = /^emulator listening on (http:\/\/127\.0\.0\.1:\d+)\n/.exec(stdout);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    });
    void exited.then(() => reject(new Error(`exited early; stderr: ${stderr}`)));
  });
  return { child, url, exited, out: () => ({ stdout, stderr }) };
}

t.test('serves, logs each call, stops on SIGTERM with exit 0', async (t) => {
  const emu = startCli(['--trust-anchor-ca', ca.certPath, '--region', 'us-east-1', '--credential-lifetime', '900']);
  t.teardown(() => emu.child.kill('SIGKILL'));
  const url = await emu.url;
  const identity = await loadIdentity({ certificate: leaf.certPath, privateKey: leaf.keyPath });
  const r = await callCreateSession(url, identity, { arns: DEFAULT_ARNS });
  t.equal(r.status, 201, `CreateSession accepted (${r.json?.message ?? ''})`);
  const creds = r.json.credentialSet[0].credentials;
  t.ok(Date.parse(creds.expiration) - Date.now() <= 901_000, '--credential-lifetime applies');
  const bad = await callCreateSession(url, identity, { arns: DEFAULT_ARNS, region: 'eu-west-1' });
  t.equal(bad.status, 403, '--region applies');
  const stats = (await (await fetch(url + '/_emulator/stats')).json()) as { createSession: { total: number } };
  t.equal(stats.createSession.total, 2);

  emu.child.kill('SIGTERM');
  const { code } = await emu.exited;
  t.equal(code, 0, 'exit 0 on SIGTERM');
  const { stdout, stderr } = emu.out();
  t.equal(stdout.split('\n').filter(Boolean).length, 1, 'exactly one line on stdout');
  const lines = stderr.split('\n').filter((l) => / CreateSession /.test(l));
  t.equal(lines.length, 2, 'one stderr line per call');
  t.match(lines[0], /outcome=ok/);
  t.match(lines[0], new RegExp(`serial=${identity.serialDecimal}`));
  t.match(lines[1], /outcome=AccessDeniedException reason=region_mismatch/);
  t.notOk(stderr.includes(creds.secretAccessKey) || stderr.includes(creds.sessionToken), 'no secrets in the log');
});

t.test('stops on SIGINT with exit 0; --port and --quiet', async (t) => {
  const first = startCli(['--trust-anchor-ca', ca.certPath, '--quiet']);
  t.teardown(() => first.child.kill('SIGKILL'));
  const port = Number(new URL(await first.url).port);
  first.child.kill('SIGINT');
  t.equal((await first.exited).code, 0, 'exit 0 on SIGINT');
  const second = startCli(['--trust-anchor-ca', ca.certPath, '--port', String(port), '--quiet']);
  t.teardown(() => second.child.kill('SIGKILL'));
  t.equal(await second.url, `http://127.0.0.1:${port}`, '--port is used');
  const busy = await runCli(['emulator', '--trust-anchor-ca', ca.certPath, '--port', String(port)]);
  t.equal(busy.code, 1);
  t.match(busy.stderr, /already in use/);
  second.child.kill('SIGTERM');
  t.equal((await second.exited).code, 0);
});

t.test('usage errors: one line, exit 1', async (t) => {
  const help = await runCli(['emulator', '--help']);
  t.equal(help.code, 0);
  t.match(help.stdout, /--trust-anchor-ca FILE/);
  const cases: [string[], RegExp][] = [
    [[], /--trust-anchor-ca FILE is required/],
    [['--trust-anchor-ca', `${dir}/missing.pem`], /file not found/],
    [['--trust-anchor-ca', leaf.keyPath], /not a PEM certificate/],
    [['--trust-anchor-ca', leaf.certPath], /CN=cli-client.* is not a CA certificate .*cannot be a trust anchor: give the CA that issued/],
    [['--trust-anchor-ca', ca.certPath, '--host', '0.0.0.0'], /loopback/],
    [['--trust-anchor-ca', ca.certPath, '--port', 'abc'], /--port must be/],
    [['--trust-anchor-ca', ca.certPath, '--credential-lifetime', '0'], /--credential-lifetime must be/],
    [['--trust-anchor-ca', ca.certPath, '--region', 'nowhere'], /not an AWS region/],
    [['--trust-anchor-ca', ca.certPath, '--bogus'], /bogus/],
    [['--trust-anchor-ca', ca.certPath, '--assumable-role', 'arn:aws:iam::1:role/x'], /--assumable-role "arn:aws:iam::1:role\/x" is not an IAM role ARN \(the account ID must be 12 digits\)/],
    [['--trust-anchor-ca', ca.certPath, '--assumable-role', 'arn:aws:iam::210987654321:role/x,external=1'], /after the ARN give ,externalId=ID/],
  ];
  for (const [args, msg] of cases) {
    const r = await runCli(['emulator', ...args]);
    t.equal(r.code, 1, `${args.join(' ')}: exit 1`);
    t.match(r.stderr, msg);
    t.equal(r.stderr.trim().split('\n').length, 1, 'one line, no stack');
    t.notOk(r.stderr.includes('PRIVATE KEY'), 'no key material echoed');
  }
});

t.test('prints example ARNs and a serve command that works as pasted', async (t) => {
  const pki = await tempDir('ra-emu-guide-');
  t.equal((await runCli(['pki', 'init', pki])).code, 0, 'pki init');
  const emu = startCli(['--trust-anchor-ca', `${pki}/ca.pem`]);
  t.teardown(() => emu.child.kill('SIGKILL'));
  const url = await emu.url;
  await waitUntil('the guide', () => / serve .*\n/.test(emu.out().stderr));
  const guide = emu.out().stderr;
  const arns = [...guide.matchAll(/^\s+(?:trust anchor|profile|role)\s+(arn:\S+)$/gm)].map((m) => m[1]!);
  t.equal(arns.length, 3, 'three example ARNs');
  t.ok(checkRolesAnywhereArn(arns[0]!, 'trust-anchor').ok && checkRolesAnywhereArn(arns[1]!, 'profile').ok && checkRoleArn(arns[2]!).ok, 'the validator accepts them');
  const line = /^\s+(.* serve .*)$/m.exec(guide)?.[1];
  t.ok(line, 'a serve command');
  t.match(line, `--certificate ${pki}/client.pem --private-key ${pki}/client.key`, "pki init's client certificate and key");
  t.match(line, `--endpoint ${url}`);
  // Pasted into a shell (with a free port and a private token file, so the test does not depend on 9911).
  const serve = spawn('/bin/sh', ['-c', `${line} --listen 127.0.0.1:0 --token-file ${pki}/token`], { detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  t.teardown(() => {
    try {
      process.kill(-serve.pid!, 'SIGKILL');
    } catch {
      // gone
    }
  });
  let out = '';
  serve.stderr.setEncoding('utf8').on('data', (d: string) => (out += d));
  serve.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  await waitUntil('serve ready', () => /"outcome":"success"/.test(out) || serve.exitCode !== null, 30_000);
  t.match(out, /"outcome":"success"/, `the pasted command got credentials from the emulator (${out.slice(-300)})`);
  process.kill(-serve.pid!, 'SIGTERM');
});

t.test('--quiet prints no guide', async (t) => {
  const emu = startCli(['--trust-anchor-ca', ca.certPath, '--quiet']);
  t.teardown(() => emu.child.kill('SIGKILL'));
  await emu.url;
  emu.child.kill('SIGTERM');
  await emu.exited;
  t.notMatch(emu.out().stderr, /serve|arn:/);
});

t.test('--assumable-role ARN,externalId=ID: AssumeRole honours it', async (t) => {
  const { STSClient, AssumeRoleCommand } = await import('@aws-sdk/client-sts');
  const role = 'arn:aws:iam::210987654321:role/Deploy';
  const emu = startCli(['--trust-anchor-ca', ca.certPath, '--quiet', '--assumable-role', `${role},externalId=ext-7`]);
  t.teardown(() => emu.child.kill('SIGKILL'));
  const url = await emu.url;
  const identity = await loadIdentity({ certificate: leaf.certPath, privateKey: leaf.keyPath });
  const r = await callCreateSession(url, identity, { arns: DEFAULT_ARNS });
  const c = r.json.credentialSet[0].credentials;
  const client = new STSClient({ region: 'us-east-1', endpoint: url, credentials: { accessKeyId: c.accessKeyId, secretAccessKey: c.secretAccessKey, sessionToken: c.sessionToken }, maxAttempts: 1 });
  t.teardown(() => client.destroy());
  const ok = await client.send(new AssumeRoleCommand({ RoleArn: role, RoleSessionName: 's1', ExternalId: 'ext-7' }));
  t.equal(ok.AssumedRoleUser?.Arn, 'arn:aws:sts::210987654321:assumed-role/Deploy/s1');
  const wrong = await client.send(new AssumeRoleCommand({ RoleArn: role, RoleSessionName: 's1', ExternalId: 'ext-8' })).then(() => 'accepted', (e: Error) => e.name);
  t.equal(wrong, 'AccessDenied');
});
