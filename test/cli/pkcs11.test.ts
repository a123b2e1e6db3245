// PKCS#11 keys end to end: a SoftHSM2 token made by this test holds RSA 2048,
// EC P-256 and EC P-384 keys generated inside it and certificates from the
// emulator's CA. credential-process and serve (real processes) get credentials
// from the emulator with each key by URI, the AWS SDK for JavaScript gets
// credentials from serve and STS accepts them, `check` matches the token key,
// every bad input fails with its own message and nothing on stdout, and a
// running daemon survives the token going away.
import { GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import { fromHttp } from '@aws-sdk/credential-providers';
import { X509Certificate } from 'node:crypto';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { runCli, runProcess } from '../helpers/cli.js';
import { httpRequest, spawnServe, startEmulatedDaemon, waitUntil } from '../helpers/daemon.js';
import { startTestEmulator, type TestEmulator } from '../helpers/emulator.js';
import { setPkcs11Deadlines } from '../../src/identity/signers/pkcs11.js';
import { createToken, softhsmMissing } from '../helpers/softhsm.js';
import { missing as needs } from '../helpers/needs.js';

declare namespace Tap {
  type Test = typeof t;
}

const missing = needs('pkcs11') ?? softhsmMissing();
if (missing) {
  t.plan(0, missing);
} else {
  await main();
}

function arnFlags(env: TestEmulator): string[] {
  return ['--trust-anchor-arn', env.arns.trustAnchorArn, '--profile-arn', env.arns.profileArn, '--role-arn', env.arns.roleArn, '--endpoint', env.url];
}

async function main(): Promise<void> {
  const emu = await startTestEmulator(t);
  const tok = await createToken(t);
  const keys = { rsa: { type: 'rsa2048' as const, id: '01' }, p256: { type: 'p256' as const, id: '02' }, p384: { type: 'p384' as const, id: '03' } };
  const certPaths: Record<string, string> = {};
  for (const [name, k] of Object.entries(keys)) {
    await tok.keypair(k.type, name, k.id);
    certPaths[name] = (await tok.issue(emu.ca, k.id, `${name}-cert`)).certPath;
  }
  const pinFile = join(tok.dir, 'pin');
  await writeFile(pinFile, `${tok.pin}\n`, { mode: 0o600 });
  const wrongPinFile = join(tok.dir, 'wrong-pin');
  await writeFile(wrongPinFile, '13572468\n', { mode: 0o600 });
  const uri = (object: string, extra = '') => `pkcs11:token=${tok.label};object=${object}${extra}`;
  const p11 = ['--pkcs11-lib', tok.module, '--pkcs11-pin-file', pinFile];
  /** Only what the test gives: SOFTHSM2_CONF, no AWS_/ROLESANYWHERE_ variables from outside. */
  const env = (extra: Record<string, string> = {}) => ({ SOFTHSM2_CONF: tok.conf, ...extra });

  const credentialProcess = async (t: Tap.Test, args: string[], extraEnv: Record<string, string> = {}, name = 'credentials') => {
    const before = emu.emulator.issued.length;
    const r = await runCli(['credential-process', ...args, ...arnFlags(emu)], { cleanEnv: true, env: env(extraEnv) });
    t.equal(r.code, 0, `${name}: exit 0 (stderr: ${r.stderr.trim()})`);
    t.equal(emu.emulator.issued.length, before + 1, `${name}: the emulator issued one session (it verified the signature)`);
    const out = JSON.parse(r.stdout || '{}') as { AccessKeyId?: string };
    t.match(out.AccessKeyId, /^ASIA/, `${name}: credentials on stdout`);
    t.equal(out.AccessKeyId, emu.emulator.issued.at(-1)?.accessKeyId, `${name}: the credentials the emulator issued`);
    t.notMatch(r.stderr + r.stdout, tok.pin, `${name}: the PIN is printed nowhere`);
  };

  t.test('credential-process with each token key, certificate as a file', async (t) => {
    for (const name of Object.keys(keys)) {
      await credentialProcess(t, ['--certificate', certPaths[name]!, '--private-key', uri(name, ';type=private'), ...p11], {}, name);
    }
  });

  t.test('credential-process with the certificate on the token and the key found by its ID', async (t) => {
    for (const name of Object.keys(keys)) {
      await credentialProcess(t, ['--certificate', uri(`${name}-cert`, ';type=cert')], { ROLESANYWHERE_PKCS11_LIB: tok.module, ROLESANYWHERE_PKCS11_PIN: tok.pin }, `${name} on the token`);
    }
  });

  t.test("the default module is p11-kit's proxy; the PIN may sit in the URI", async (t) => {
    await credentialProcess(t, ['--certificate', certPaths.p256!, '--private-key', uri('p256', `?pin-value=${tok.pin}`)], {}, 'p11-kit proxy');
    await credentialProcess(t, ['--certificate', certPaths.rsa!, '--private-key', uri('rsa', `?pin-source=file:${pinFile}`), '--pkcs11-lib', tok.module], {}, 'pin-source');
  });

  t.test("the README's flow: token key → CSR by OpenSSL's pkcs11 engine → pki issue --csr → certificate on the token", async (t) => {
    const caDir = join(tok.dir, 'flow-ca');
    await mkdir(caDir);
    await copyFile(emu.ca.certPath, join(caDir, 'ca.pem'));
    await copyFile(emu.ca.keyPath, join(caDir, 'ca.key'));
    await tok.keypair('p256', 'flow', '0f');
    const csr = join(tok.dir, 'flow.csr');
    // The engine's default module is p11-kit's proxy, which finds SoftHSM; the PIN inside the URI is for the test only.
    const req = await runProcess('openssl', ['req', '-new', '-engine', 'pkcs11', '-keyform', 'engine', '-key', `${uri('flow', ';type=private')}?pin-value=${tok.pin}`, '-subj', '/CN=flow', '-out', csr], { cleanEnv: true, env: env() });
    t.equal(req.code, 0, `openssl req with the token key (${req.stderr.trim()})`);
    const issued = await runCli(['pki', 'issue', '--ca-dir', caDir, '--name', 'flow', '--csr', csr], { cleanEnv: true, env: env() });
    t.equal(issued.code, 0, `pki issue --csr (${issued.stderr.trim()})`);
    const der = join(tok.dir, 'flow.der');
    await writeFile(der, new X509Certificate(await readFile(join(caDir, 'flow.pem'))).raw);
    await tok.tool(['--write-object', der, '--type', 'cert', '--id', '0f', '--label', 'flow'], true);
    const check = await runCli(['check', '--certificate', uri('flow', ';type=cert'), ...p11, '--ca', join(caDir, 'ca.pem')], { cleanEnv: true, env: env() });
    t.equal(check.code, 0, `check passes (${check.stdout}${check.stderr})`);
    t.match(check.stdout, /PASS keyMatch: private key matches the certificate/);
    await credentialProcess(t, ['--certificate', uri('flow', ';type=cert'), ...p11], {}, 'the new token identity');
  });

  t.test('bad input: a specific message on stderr, nothing on stdout, never the PIN', async (t) => {
    await tok.keypair('rsa1024', 'weak', '09');
    const weak = await tok.issue(emu.ca, '09', 'weak-cert', { store: false });
    const cases: Array<[string, string[], RegExp, Record<string, string>?]> = [
      ['wrong PIN', ['--certificate', certPaths.p256!, '--private-key', uri('p256'), '--pkcs11-lib', tok.module, '--pkcs11-pin-file', wrongPinFile], /token "ra-test": login failed: wrong PIN \(CKR_PIN_INCORRECT, from PIN file .*wrong-pin\)/],
      ['wrong PIN in the environment', ['--certificate', certPaths.p256!, '--private-key', uri('p256'), '--pkcs11-lib', tok.module], /login failed: wrong PIN \(CKR_PIN_INCORRECT, from ROLESANYWHERE_PKCS11_PIN\)/, { ROLESANYWHERE_PKCS11_PIN: '97531' }],
      ['no PIN', ['--certificate', certPaths.p256!, '--private-key', uri('p256'), '--pkcs11-lib', tok.module], /the token needs a PIN: give it with --pkcs11-pin-file FILE, ROLESANYWHERE_PKCS11_PIN/],
      ['unknown token', ['--certificate', certPaths.p256!, '--private-key', 'pkcs11:token=absent;object=p256', ...p11], /pkcs11:token=absent;object=p256: no token matches in PKCS#11 module .* \(tokens present: "ra-test" \(serial [0-9a-f]+\)\)/],
      ['unknown object', ['--certificate', certPaths.p256!, '--private-key', uri('absent'), ...p11], /no private key object "absent" on token "ra-test" \(private keys there: /],
      ['unknown certificate object', ['--certificate', uri('absent-cert')], /no X\.509 certificate object "absent-cert" on token "ra-test"/, { ROLESANYWHERE_PKCS11_LIB: tok.module }],
      ['module path that does not exist', ['--certificate', certPaths.p256!, '--private-key', uri('p256'), '--pkcs11-lib', join(tok.dir, 'missing.so'), '--pkcs11-pin-file', pinFile], /--pkcs11-lib .*missing\.so: PKCS#11 module not found; check the path/],
      ['certificate that does not match the token key', ['--certificate', certPaths.p256!, '--private-key', uri('p384'), ...p11], /private key pkcs11:token=ra-test;object=p384 does not match the certificate .*p256-cert\.pem \(different public keys\); use the key the certificate was issued for/],
      ['RSA-1024 key in the token', ['--certificate', weak.certPath, '--private-key', uri('weak'), ...p11], /pkcs11:token=ra-test;object=weak: RSA key is only 1024 bits; use RSA 2048 bits or more/],
      ['malformed URI', ['--certificate', certPaths.p256!, '--private-key', 'pkcs11:token=ra-test;objekt=p256', ...p11], /unknown path attribute "objekt"/],
      ['wrong PIN inside the URI', ['--certificate', certPaths.p256!, '--private-key', uri('p256', '?pin-value=86420'), '--pkcs11-lib', tok.module], /login failed: wrong PIN \(CKR_PIN_INCORRECT, from pin-value in the URI\)/],
    ];
    for (const [name, args, re, extra] of cases) {
      const before = emu.emulator.issued.length;
      const r = await runCli(['credential-process', ...args, ...arnFlags(emu)], { cleanEnv: true, env: env(extra) });
      t.not(r.code, 0, `${name}: fails`);
      t.equal(r.stdout, '', `${name}: nothing on stdout`);
      t.match(r.stderr, re, `${name}: says what is wrong`);
      t.notMatch(r.stderr, /\n\s+at /, `${name}: no stack trace`);
      for (const pin of [tok.pin, '13572468', '97531', '86420']) t.notMatch(r.stderr, pin, `${name}: no PIN in the message`);
      t.equal(emu.emulator.issued.length, before, `${name}: no session issued`);
    }
  });

  t.test('check: matches the token key by public key and names the key source', async (t) => {
    const ok = await runCli(['check', '--certificate', uri('p384-cert'), '--ca', emu.ca.certPath, ...p11], { cleanEnv: true, env: env() });
    t.equal(ok.code, 0, `exit 0 (${ok.stderr.trim()})`);
    t.match(ok.stdout, /^Certificate: pkcs11:token=ra-test;object=p384-cert$/m);
    t.match(ok.stdout, /^Key source: pkcs11 — pkcs11 token "ra-test" \(serial [0-9a-f]+\) object "p384" id 03 via .*libsofthsm2\.so$/m);
    t.match(ok.stdout, /PASS privateKey: EC P-384 key from pkcs11 token "ra-test"/);
    t.match(ok.stdout, /PASS keyMatch: private key matches the certificate/);
    const other = await runCli(['check', '--certificate', certPaths.rsa!, '--private-key', uri('rsa'), ...p11], { cleanEnv: true, env: env() });
    t.equal(other.code, 0, 'a file certificate with a token key');
    t.match(other.stdout, /PASS privateKey: RSA 2048-bit key from pkcs11 token "ra-test" \(serial [0-9a-f]+\) object "rsa"/);
    const bad = await runCli(['check', '--certificate', certPaths.rsa!, '--private-key', uri('p256'), ...p11], { cleanEnv: true, env: env() });
    t.equal(bad.code, 1, 'a mismatch fails');
    t.match(bad.stdout, /FAIL keyMatch: private key pkcs11:token=ra-test;object=p256 does not match the certificate/);
  });

  t.test('serve: a profile per key; an SDK call through serve succeeds', async (t) => {
    const dir = tok.dir;
    const tokenFile = join(dir, 'serve-token');
    const profile = (extra: Record<string, unknown>) => ({ trustAnchorArn: emu.arns.trustAnchorArn, profileArn: emu.arns.profileArn, roleArn: emu.arns.roleArn, pkcs11PinFile: pinFile, ...extra });
    const config = {
      listen: ['127.0.0.1:0'],
      tokenFile,
      imds: { enabled: false },
      endpoint: emu.url,
      pkcs11Lib: tok.module,
      profiles: {
        rsa: profile({ certificate: certPaths.rsa, privateKey: uri('rsa', ';type=private') }),
        p256: profile({ certificate: uri('p256-cert') }),
        p384: profile({ certificate: certPaths.p384, privateKey: `pkcs11:token=${tok.label};id=%03` }),
      },
    };
    const cfg = join(dir, 'daemon.yaml');
    await writeFile(cfg, JSON.stringify(config));
    const d = spawnServe(t, ['--config', cfg], env());
    const port = await d.port();
    const token = await readFile(tokenFile, 'utf8');
    for (const name of Object.keys(keys)) {
      let res = await httpRequest(port, 'GET', `/v1/credentials/${name}`, { authorization: token });
      await waitUntil(`${name} served`, async () => (res = await httpRequest(port, 'GET', `/v1/credentials/${name}`, { authorization: token })).status === 200);
      const body = JSON.parse(res.body) as { AccessKeyId: string };
      t.ok(emu.emulator.issued.some((c) => c.accessKeyId === body.AccessKeyId), `${name}: credentials the emulator issued`);
    }
    const sts = new STSClient({
      region: emu.region,
      endpoint: emu.url,
      maxAttempts: 1,
      credentials: fromHttp({ awsContainerCredentialsFullUri: `http://127.0.0.1:${port}/v1/credentials/p384`, awsContainerAuthorizationToken: token }),
    });
    try {
      const out = await sts.send(new GetCallerIdentityCommand({}));
      t.equal(out.Account, emu.accountId, 'STS accepts the credentials the SDK got from serve');
      t.match(out.Arn, /:assumed-role\/rolesanywhere-test-role\//);
    } finally {
      sts.destroy();
    }
    t.notMatch(d.output(), tok.pin, 'the PIN is in no log line');
    t.match(d.output(), /"profile":"p256","event":"identity_loaded","serial":"\d+","keySource":"pkcs11 token \\"ra-test\\" \(serial [0-9a-f]+\) object \\"p256\\" id 02 via [^"]+"/, 'the log names the key source');
    d.child.kill('SIGTERM');
    t.equal((await d.exited).code, 0, 'exits cleanly');
  });

  t.test('a running daemon survives the token going away and recovers when it returns', async (t) => {
    process.env.SOFTHSM2_CONF = tok.conf; // the in-process daemon loads the module itself
    const d = await startEmulatedDaemon(t, {
      emulator: { lifetime: 3600 },
      prepare: async (e) => {
        const cert = await tok.issue(e.ca, keys.p256.id, 'daemon-p256', { store: false });
        return { certificate: cert.certPath, privateKey: uri('p256'), pkcs11Lib: tok.module, pkcs11PinFile: pinFile };
      },
    });
    const session = d.daemon.session('main')!;
    await session.waitFor((s) => s.status().ready, 20_000);
    const get = async () => httpRequest(d.port, 'GET', '/v1/credentials', { authorization: d.token });
    const first = JSON.parse((await get()).body) as { AccessKeyId: string };
    t.equal(d.emu.emulator.issued.at(-1)?.accessKeyId, first.AccessKeyId, 'served credentials from the token key');

    await tok.unplug();
    try {
      await session.refresh();
      const failure = session.status().lastFailure;
      t.ok(failure, 'the refresh failed');
      t.match(failure?.message ?? '', /pkcs11 token "ra-test".*: the token is unavailable \(.*\); will retry at the next refresh/, 'says the token is unavailable');
      const during = await get();
      t.equal(during.status, 200, 'still serving while the token is away');
      t.equal((JSON.parse(during.body) as { AccessKeyId: string }).AccessKeyId, first.AccessKeyId, 'the cached credentials');
    } finally {
      await tok.replug();
    }
    const issuedBefore = d.emu.emulator.issued.length;
    await session.refresh();
    t.equal(session.status().lastRefreshOutcome, 'success', 'the next refresh signs with the token again');
    t.equal(d.emu.emulator.issued.length, issuedBefore + 1, 'a new session');
    const after = JSON.parse((await get()).body) as { AccessKeyId: string };
    t.equal(after.AccessKeyId, d.emu.emulator.issued.at(-1)?.accessKeyId, 'serving the new credentials');
    t.notMatch(d.logs(), tok.pin, 'the PIN is in no log line');
  });

  t.test('a module that hangs (network HSM stops answering) does not stall the daemon; it recovers when it answers again', async (t) => {
    // p11-kit's remote client in front of a p11-kit server exporting the SoftHSM token: stopping the
    // server's connection process makes every module call block, as an unreachable network HSM does.
    const client = '/usr/lib/x86_64-linux-gnu/pkcs11/p11-kit-client.so';
    const sock = join(tok.dir, 'p11-kit.sock');
    const server = spawn('p11-kit', ['server', '-f', '--provider', tok.module, '-n', sock, `pkcs11:token=${tok.label}`], {
      env: { PATH: process.env.PATH, SOFTHSM2_CONF: tok.conf },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const stopped: number[] = [];
    t.teardown(() => {
      for (const pid of stopped) process.kill(pid, 'SIGCONT');
      server.kill('SIGTERM');
    });
    await waitUntil('the p11-kit server socket', () => existsSync(sock));
    process.env.P11_KIT_SERVER_ADDRESS = `unix:path=${sock}`; // read by the client module in the worker thread
    process.env.SOFTHSM2_CONF = tok.conf;
    setPkcs11Deadlines(2000);
    t.teardown(() => setPkcs11Deadlines(30_000));
    const d = await startEmulatedDaemon(t, {
      prepare: async (e) => {
        const cert = await tok.issue(e.ca, keys.rsa.id, 'remote-rsa', { store: false });
        return { certificate: cert.certPath, privateKey: uri('rsa'), pkcs11Lib: client, pkcs11PinFile: pinFile };
      },
    });
    const session = d.daemon.session('main')!;
    await session.waitFor((s) => s.status().ready, 20_000);
    const get = async () => httpRequest(d.port, 'GET', '/v1/credentials', { authorization: d.token });
    const first = (JSON.parse((await get()).body) as { AccessKeyId: string }).AccessKeyId;

    // Freeze the server's per-connection process(es).
    const kids = execFileSync('pgrep', ['-P', String(server.pid)]).toString().trim().split(/\s+/).map(Number);
    for (const pid of kids) {
      process.kill(pid, 'SIGSTOP');
      stopped.push(pid);
    }
    const refreshing = session.refresh();
    const during = await get();
    t.equal(during.status, 200, 'the routes answer while the module hangs');
    t.equal((JSON.parse(during.body) as { AccessKeyId: string }).AccessKeyId, first, 'with the cached credentials');
    await refreshing;
    t.match(session.status().lastFailure?.message ?? '', /the PKCS#11 module did not answer within 2 s \(token or HSM unreachable\?\); will retry at the next refresh/, 'the refresh fails with a deadline');
    await session.refresh();
    t.match(session.status().lastFailure?.message ?? '', /PKCS#11 module still not answering \(a call for .* has been stuck since/, 'further refreshes fail at once, without piling up threads');
    t.equal((await get()).status, 200, 'still serving');

    for (const pid of stopped.splice(0)) process.kill(pid, 'SIGCONT');
    await waitUntil('a refresh succeeds after the module answers again', async () => {
      await session.refresh();
      return session.status().lastRefreshOutcome === 'success';
    });
    const after = (JSON.parse((await get()).body) as { AccessKeyId: string }).AccessKeyId;
    t.not(after, first, 'new credentials signed through the module again');
    t.equal(after, d.emu.emulator.issued.at(-1)?.accessKeyId);
  });
}
