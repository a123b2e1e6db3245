// TPM 2.0 keys end to end: a software TPM (swtpm) holds RSA 2048 and EC P-256
// keys — TSS2 PEM key files and persistent handles, with and without a
// password — whose certificates the test CA issued from CSRs the TPM signed.
// `credential-process`, `check` and `serve` (a real process, read by the AWS
// SDK) get credentials from the emulator with each; bad input fails clearly;
// a running daemon keeps serving while the TPM is gone and recovers after;
// the README's TPM commands run as written.
import t from 'tap';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import { fromHttp } from '@aws-sdk/credential-providers';
import { startEmulator } from '../../src/emulator/server.js';
import { runCli, runProcess } from '../helpers/cli.js';
import { httpRequest, spawnServe, startEmulatedDaemon } from '../helpers/daemon.js';
import { startTestEmulator, type TestEmulator } from '../helpers/emulator.js';
import { makeLeaf, tempDir, type CertFiles } from '../helpers/pki.js';
import { blockAfter, sectionFrom } from '../helpers/readme.js';
import { haveSoftTpm, startSoftTpm } from '../helpers/swtpm.js';
import { missing as needs, skipFile } from '../helpers/needs.js';

if (!haveSoftTpm()) skipFile(needs('tpm') ?? 'swtpm, tpm2-tools or the openssl tpm2 provider does not run');

const PASSWORD = 'Tpm-Pa55word!';
const tpm = await startSoftTpm(t);
const emu = await startTestEmulator(t);

interface TpmIdentity {
  what: string;
  spec: string;
  leaf: CertFiles;
  password?: string;
}

async function identity(what: string, spec: string, password?: string): Promise<TpmIdentity> {
  const csr = await tpm.csr(spec, `tpm-${what.replace(/\W+/g, '-')}`, password);
  const leaf = await makeLeaf(emu.dir, emu.ca, `tpm ${what}`, { csrPath: csr });
  return { what, spec, leaf, ...(password === undefined ? {} : { password }) };
}

const ids = {
  tss2Ec: await identity('EC P-256 TSS2 key file', await tpm.tss2Key('p256')),
  tss2Rsa: await identity('RSA 2048 TSS2 key file', await tpm.tss2Key('rsa2048')),
  handleRsa: await identity('RSA 2048 persistent handle', await tpm.persistentKey('rsa2048', 0x81000001)),
  handleEc: await identity('EC P-256 persistent handle', await tpm.persistentKey('p256', 0x81000002)),
  tss2EcPw: await identity('EC P-256 TSS2 key file with a password', await tpm.tss2Key('p256', { password: PASSWORD }), PASSWORD),
  handleRsaPw: await identity('RSA 2048 persistent handle with a password', await tpm.persistentKey('rsa2048', 0x81000003, { password: PASSWORD }), PASSWORD),
};
const passwordFile = join(emu.dir, 'tpm-key-password');
await writeFile(passwordFile, `${PASSWORD}\n`, { mode: 0o600 });

function arnFlags(e: TestEmulator): string[] {
  return ['--trust-anchor-arn', e.arns.trustAnchorArn, '--profile-arn', e.arns.profileArn, '--role-arn', e.arns.roleArn, '--endpoint', e.url];
}

/** No AWS_*, ROLESANYWHERE_* or TPM variables from outside; this test's TPM. */
function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!/^(AWS_|ROLESANYWHERE_|TPM2|TSS2_)/.test(k) && !/_proxy$/i.test(k)) env[k] = v;
  return { ...env, ...tpm.env, ...extra };
}

const credentialProcess = (id: TpmIdentity, extraArgs: string[] = [], extraEnv: Record<string, string> = {}) =>
  runCli(['credential-process', '--certificate', id.leaf.certPath, '--private-key', id.spec, ...extraArgs, ...arnFlags(emu)], {
    cleanEnv: true,
    env: cleanEnv(extraEnv),
  });

t.test('credential-process with each TPM key', async (t) => {
  const cases: Array<[TpmIdentity, string[], Record<string, string>, string]> = [
    [ids.tss2Ec, [], {}, ''],
    [ids.tss2Rsa, [], {}, ''],
    [ids.handleRsa, [], {}, ''],
    [ids.handleEc, ['--no-tpm-key-password'], {}, ' (--no-tpm-key-password)'],
    [ids.tss2EcPw, ['--key-password-file', passwordFile], {}, ' (--key-password-file)'],
    [ids.handleRsaPw, [], { ROLESANYWHERE_KEY_PASSWORD: PASSWORD }, ' (ROLESANYWHERE_KEY_PASSWORD)'],
    [ids.handleRsaPw, ['--tpm-key-password', PASSWORD], {}, ' (--tpm-key-password, as AWS’s helper takes it)'],
  ];
  for (const [id, args, env, how] of cases) {
    const before = emu.emulator.issued.length;
    const r = await credentialProcess(id, args, env);
    t.equal(r.code, 0, `${id.what}${how}: exit 0 (stderr: ${r.stderr.trim()})`);
    t.equal(emu.emulator.issued.length, before + 1, `${id.what}: one session issued`);
    const out = JSON.parse(r.stdout || '{}');
    t.equal(out.AccessKeyId, emu.emulator.issued.at(-1)?.accessKeyId, `${id.what}: the credentials the emulator issued`);
    t.notOk(r.stdout.includes(PASSWORD) || r.stderr.includes(PASSWORD), 'the password appears nowhere');
  }
  t.same(await tpm.transientHandles(), [], 'no objects left loaded in the TPM');
});

t.test('bad input: one clear line on stderr, nothing on stdout, exit 1', async (t) => {
  const expectFailure = async (name: string, r: Awaited<ReturnType<typeof runCli>>, re: RegExp, secret?: string) => {
    t.equal(r.code, 1, `${name}: exit 1`);
    t.equal(r.stdout, '', `${name}: nothing on stdout`);
    t.match(r.stderr, re, `${name}: ${re}`);
    if (secret) t.notOk(r.stderr.includes(secret), `${name}: the password is not shown`);
  };
  const wrong = 'not-the-Password-42';
  await expectFailure('wrong password (TSS2 file)', await credentialProcess(ids.tss2EcPw, [], { ROLESANYWHERE_KEY_PASSWORD: wrong }), /wrong TPM key password/, wrong);
  await expectFailure('wrong password (handle)', await credentialProcess(ids.handleRsaPw, ['--tpm-key-password', wrong]), /tpm handle 0x81000003: wrong TPM key password/, wrong);
  await expectFailure('no password for a key that has one', await credentialProcess(ids.tss2EcPw), /this TPM key has a password; give its password with --key-password-file/);
  await expectFailure(
    'certificate of another key',
    await credentialProcess({ ...ids.tss2Ec, leaf: ids.handleEc.leaf }),
    /does not match the certificate/,
  );
  await expectFailure('no such persistent handle', await credentialProcess({ ...ids.handleEc, spec: 'handle:0x81000042' }), /tpm handle 0x81000042: no key at this persistent handle/);
  await expectFailure('a handle that is not persistent', await credentialProcess({ ...ids.handleEc, spec: 'handle:0x80000001' }), /not a TPM persistent handle; write it as handle:0x81000001/);

  await tpm.stop();
  try {
    await expectFailure('TPM unreachable (TSS2 file)', await credentialProcess(ids.tss2Rsa), /TPM not reachable through TCTI "swtpm:path=/);
    await expectFailure('TPM unreachable (handle)', await credentialProcess(ids.handleEc), /tpm handle 0x81000002: TPM not reachable/);
  } finally {
    await tpm.start();
  }
});

t.test('check names the TPM key source', async (t) => {
  for (const id of [ids.tss2Ec, ids.handleRsa]) {
    const r = await runCli(['check', '--certificate', id.leaf.certPath, '--private-key', id.spec], { cleanEnv: true, env: cleanEnv() });
    t.equal(r.code, 0, `${id.what}: check passes (stderr: ${r.stderr.trim()})`);
    t.match(r.stdout, id.spec.startsWith('handle:') ? /tpm handle 0x81000001/ : new RegExp(`tpm key file ${id.spec.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
  }
  const mismatch = await runCli(['check', '--certificate', ids.handleEc.leaf.certPath, '--private-key', ids.tss2Ec.spec], { cleanEnv: true, env: cleanEnv() });
  t.equal(mismatch.code, 1, 'a certificate of another key fails check');
  t.match(mismatch.stdout + mismatch.stderr, /does not match/);
});

t.test('serve: every TPM key, read by the AWS SDK', async (t) => {
  const profiles = {
    'tss2-ec': { id: ids.tss2Ec, extra: '' },
    'tss2-rsa': { id: ids.tss2Rsa, extra: '' },
    'handle-rsa': { id: ids.handleRsa, extra: '' },
    'handle-ec': { id: ids.handleEc, extra: '    noTpmKeyPassword: true\n' },
    'tss2-ec-password': { id: ids.tss2EcPw, extra: `    keyPasswordFile: ${passwordFile}\n` },
    'handle-rsa-password': { id: ids.handleRsaPw, extra: `    keyPasswordFile: ${passwordFile}\n` },
  };
  const cfg = join(emu.dir, 'tpm-daemon.yaml');
  const yaml = [
    'listen: ["127.0.0.1:0"]',
    `tokenFile: ${join(emu.dir, 'tpm-run', 'token')}`,
    'imds:',
    '  profile: tss2-ec',
    'profiles:',
    ...Object.entries(profiles).map(
      ([name, p]) =>
        `  ${name}:\n    certificate: ${p.id.leaf.certPath}\n    privateKey: "${p.id.spec}"\n${p.extra}` +
        `    trustAnchorArn: ${emu.arns.trustAnchorArn}\n    profileArn: ${emu.arns.profileArn}\n    roleArn: ${emu.arns.roleArn}\n    endpoint: ${emu.url}\n`,
    ),
  ].join('\n');
  await writeFile(cfg, yaml);
  const d = spawnServe(t, ['--config', cfg], cleanEnv());
  const port = await d.port();
  const tokenFile = join(emu.dir, 'tpm-run', 'token');
  for (const name of Object.keys(profiles)) {
    // Readiness is polled (every profile's first refresh), not timed.
    let status = 0;
    for (let i = 0; i < 300 && status !== 200; i++) {
      status = (await httpRequest(port, 'GET', `/readyz`)).status;
      if (status !== 200) await new Promise((r) => setTimeout(r, 100));
    }
    const provider = fromHttp({ awsContainerCredentialsFullUri: `http://127.0.0.1:${port}/v1/credentials/${name}`, awsContainerAuthorizationTokenFile: tokenFile });
    const creds = await provider();
    t.ok(emu.emulator.issued.some((c) => c.accessKeyId === creds.accessKeyId), `${name}: credentials the emulator issued`);
    const sts = new STSClient({ region: 'us-east-1', endpoint: emu.url, credentials: provider, maxAttempts: 1 });
    try {
      const who = await sts.send(new GetCallerIdentityCommand({}));
      t.equal(who.Account, emu.accountId, `${name}: an STS call with them succeeds`);
    } finally {
      sts.destroy();
    }
  }
  t.notOk(d.output().includes(PASSWORD), 'the password is never logged');
  d.child.kill('SIGTERM');
  t.equal((await d.exited).code, 0);
});

t.test('serve survives the TPM going away and recovers when it returns', async (t) => {
  process.env.TPM2OPENSSL_TCTI = tpm.tcti;
  t.teardown(() => {
    delete process.env.TPM2OPENSSL_TCTI;
  });
  const d = await startEmulatedDaemon(t, {
    prepare: async (e) => {
      const csr = await tpm.csr(ids.handleEc.spec, 'tpm-daemon');
      const leaf = await makeLeaf(e.dir, e.ca, 'tpm-daemon', { csrPath: csr });
      return { certificate: leaf.certPath, privateKey: ids.handleEc.spec };
    },
  });
  const session = d.daemon.session('main')!;
  await session.waitFor((s) => s.status().ready, 15_000);
  const get = () => httpRequest(d.port, 'GET', '/v1/credentials', { authorization: d.token });
  const first = JSON.parse((await get()).body).AccessKeyId as string;

  await tpm.stop();
  await session.refresh();
  const st = session.status();
  t.equal(st.lastRefreshOutcome, 'failure', 'the refresh failed');
  t.equal(st.lastFailure?.reason, 'tpm_unreachable', 'because the TPM is unreachable');
  t.match(st.lastFailure?.message, /tpm handle 0x81000002: TPM not reachable/);
  const during = await get();
  t.equal(during.status, 200, 'cached credentials still served');
  t.equal(JSON.parse(during.body).AccessKeyId, first, 'the same cached credentials');
  t.match(d.logs(), /"reason":"tpm_unreachable"/, 'the failure is logged with its reason');

  await tpm.start();
  await session.refresh();
  t.equal(session.status().lastRefreshOutcome, 'success', 'the next refresh succeeds');
  const after = JSON.parse((await get()).body).AccessKeyId as string;
  t.not(after, first, 'new credentials, signed by the TPM again');
});

/** Words of one shell command line (single and double quotes; no expansions — the README's lines need none). */
function shellWords(line: string): string[] {
  const words: string[] = [];
  for (const m of line.matchAll(/'([^']*)'|"([^"]*)"|(\S+)/g)) words.push(m[1] ?? m[2] ?? m[3]!);
  return words;
}

t.test("the README's TPM commands run as written, and the key they make gets credentials", async (t) => {
  const dir = await tempDir('ra-readme-tpm-');
  const init = await runCli(['pki', 'init', join(dir, 'pki')], { cwd: dir });
  t.equal(init.code, 0, `pki init (${init.stderr.trim()})`);
  const lines = (block: string) =>
    block
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l && !l.startsWith('#'));
  const runLine = async (line: string) => {
    const [cmd, ...args] = shellWords(line);
    if (cmd === 'npx') {
      t.equal(args[0], 'rolesanywhere-credentiald', line);
      return runCli(args.slice(1), { cwd: dir, cleanEnv: true, env: cleanEnv() });
    }
    // swtpm has no resource manager: tool() flushes what each tpm2_* command leaves loaded, as /dev/tpmrm0 would.
    if (cmd!.startsWith('tpm2_')) {
      return tpm.tool(cmd!, args).then(
        (stdout) => ({ code: 0, stdout, stderr: '' }),
        (err: Error & { stderr?: string }) => ({ code: 1, stdout: '', stderr: err.stderr ?? err.message }),
      );
    }
    return runProcess(cmd!, args, { cwd: dir, cleanEnv: true, env: cleanEnv() });
  };

  const fileFlow = lines(blockAfter('## Keys in a TPM 2.0\n', 0));
  t.match(fileFlow.join('\n'), /pki issue --ca-dir \.\/pki --name tpm-host --csr tpm-host\.csr/, 'the flow uses pki issue --csr');
  for (const line of fileFlow) {
    const r = await runLine(line);
    t.equal(r.code, 0, `${line} → exit 0 (${r.stderr.trim().split('\n')[0] ?? ''})`);
    if (line.includes(' check ')) {
      t.notMatch(r.stdout, /^FAIL/m, 'check passes every rule');
      t.match(r.stdout, /key from tpm key file tpm-host\.key\.pem/, 'check names the TPM key source');
    }
  }
  // The README's handle variant, at the handle it names.
  const handleFlow = lines(blockAfter('## Keys in a TPM 2.0\n', 1));
  t.ok(handleFlow.length >= 4, 'tpm2_createprimary, create, load, evictcontrol');
  for (const line of handleFlow) {
    const r = await runLine(line);
    t.equal(r.code, 0, `${line} → exit 0 (${r.stderr.trim().split('\n')[0] ?? ''})`);
  }
  const handle = /handle:0x[0-9a-f]+/.exec(sectionFrom('## Keys in a TPM 2.0\n'))![0];
  const csr = await runLine(`openssl req -new -provider tpm2 -provider default -key ${handle} -subj /CN=tpm-handle -out tpm-handle.csr`);
  t.equal(csr.code, 0, csr.stderr);
  const issue = await runCli(['pki', 'issue', '--ca-dir', './pki', '--name', 'tpm-handle', '--csr', 'tpm-handle.csr'], { cwd: dir });
  t.equal(issue.code, 0, issue.stderr);

  // An emulator that trusts the README's CA gets CreateSession calls signed in the TPM.
  const ca = await readFile(join(dir, 'pki', 'ca.pem'), 'utf8');
  const emulator = await startEmulator({ trustAnchorCaPems: [ca], quiet: true });
  t.teardown(() => emulator.close());
  const flags = ['--trust-anchor-arn', emu.arns.trustAnchorArn, '--profile-arn', emu.arns.profileArn, '--role-arn', emu.arns.roleArn, '--endpoint', emulator.url];
  for (const [cert, key] of [
    ['pki/tpm-host.pem', 'tpm-host.key.pem'],
    ['pki/tpm-handle.pem', handle],
  ] as const) {
    const r = await runCli(['credential-process', '--certificate', cert, '--private-key', key, ...flags], { cwd: dir, cleanEnv: true, env: cleanEnv() });
    t.equal(r.code, 0, `credential-process with ${key} (${r.stderr.trim()})`);
    t.equal(JSON.parse(r.stdout || '{}').AccessKeyId, emulator.issued.at(-1)?.accessKeyId, `${key}: credentials the emulator issued`);
  }
  t.same(await tpm.transientHandles(), [], 'nothing left loaded');
});
