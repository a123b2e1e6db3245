// `pki init` / `pki issue` through the built CLI (run `npx tsc -p .` first),
// checked with the openssl CLI, our identity loader and the emulator.
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdir, readFile, stat, writeFile, copyFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { loadIdentity } from '../../src/identity/load.js';
import { startEmulator } from '../../src/emulator/server.js';
import { CLI, runCli, runProcess } from '../helpers/cli.js';
import { openssl, tempDir } from '../helpers/pki.js';

const FILES = ['ca.pem', 'ca.key', 'client.pem', 'client.key'];
const ACCOUNT = '123456789012';
const TA = `arn:aws:rolesanywhere:us-east-1:${ACCOUNT}:trust-anchor/0a1b2c3d-0000-4000-8000-000000000001`;
const PROFILE = `arn:aws:rolesanywhere:us-east-1:${ACCOUNT}:profile/0a1b2c3d-0000-4000-8000-000000000002`;
const ROLE = `arn:aws:iam::${ACCOUNT}:role/pki-test`;

async function mode(p: string): Promise<number> {
  return (await stat(p)).mode & 0o777;
}

async function snapshot(dir: string, names: string[]): Promise<string> {
  const parts: string[] = [];
  for (const n of names) {
    try {
      const s = await stat(join(dir, n));
      parts.push(`${n}:${s.mtimeMs}:${(await readFile(join(dir, n))).toString('base64')}`);
    } catch {
      parts.push(`${n}:absent`);
    }
  }
  return parts.join('|');
}

async function pkcs12Info(path: string, password: string): Promise<string> {
  const { stdout, stderr } = await promisify(execFile)('openssl', ['pkcs12', '-info', '-noout', '-in', path, '-passin', `pass:${password}`]);
  return stdout + stderr;
}

for (const keyType of ['rsa', 'ec'] as const) {
  t.test(`pki init --key-type ${keyType}: a CA and client certificate that openssl, our loader and the emulator accept`, async (t) => {
    const base = await tempDir();
    const dir = join(base, 'new', 'pki');
    const res = await runCli(['pki', 'init', dir, ...(keyType === 'ec' ? ['--key-type', 'ec'] : []), '--client-name', 'host-1']);
    t.equal(res.code, 0, res.stderr);
    t.equal(await mode(dir), 0o700, 'created directory is 0700');
    for (const f of FILES) t.equal(await mode(join(dir, f)), f.endsWith('.key') ? 0o600 : 0o644, `${f} mode`);

    const caPem = await readFile(join(dir, 'ca.pem'), 'utf8');
    t.ok(res.stdout.includes(join(dir, 'ca.pem')), 'prints the CA file path');
    t.ok(res.stdout.includes(caPem.trim()), 'prints the CA PEM');
    t.match(res.stdout, /paste this into the trust anchor's certificate bundle/);
    t.match(res.stdout, /aws rolesanywhere create-trust-anchor/);
    t.match(res.stdout, /serve --certificate \S+client\.pem --private-key \S+client\.key/);
    t.notMatch(res.stdout + res.stderr, /PRIVATE KEY/, 'no key material printed');

    t.match(await openssl(['verify', '-CAfile', join(dir, 'ca.pem'), join(dir, 'client.pem')]), /client\.pem: OK/);
    const caText = await openssl(['x509', '-in', join(dir, 'ca.pem'), '-noout', '-text']);
    t.match(caText, /Version: 3 \(0x2\)/);
    t.match(caText, /X509v3 Basic Constraints: critical\s+CA:TRUE/);
    t.match(caText, /X509v3 Key Usage: critical\s+Certificate Sign, CRL Sign/);
    t.match(caText, /Subject: CN = rolesanywhere-credentiald CA pki [0-9a-f]{6}\n/, 'the CA is named after its directory, with a random suffix');
    if (keyType === 'rsa') {
      t.match(caText, /Public-Key: \(4096 bit\)/);
      t.match(caText, /Signature Algorithm: sha256WithRSAEncryption/);
    } else {
      t.match(caText, /NIST CURVE: P-384/);
      t.match(caText, /Signature Algorithm: ecdsa-with-SHA384/);
    }
    const ca = new X509Certificate(caPem);
    const years = (new Date(ca.validTo).getTime() - Date.now()) / (365 * 86_400_000);
    t.ok(years > 9.9 && years < 10.1, 'CA valid for 10 years');

    const text = await openssl(['x509', '-in', join(dir, 'client.pem'), '-noout', '-text']);
    t.match(text, /Version: 3 \(0x2\)/);
    t.match(text, /X509v3 Basic Constraints: critical\s+CA:FALSE/);
    t.match(text, /X509v3 Key Usage: critical\s+Digital Signature\n/);
    t.match(text, /TLS Web Client Authentication/);
    t.match(text, /Subject: CN = host-1/);
    t.match(text, keyType === 'rsa' ? /Public-Key: \(2048 bit\)/ : /NIST CURVE: P-256/);
    t.match(text, keyType === 'rsa' ? /Signature Algorithm: sha256WithRSAEncryption/ : /Signature Algorithm: ecdsa-with-SHA384/);
    const client = new X509Certificate(await readFile(join(dir, 'client.pem')));
    const days = (new Date(client.validTo).getTime() - Date.now()) / 86_400_000;
    t.ok(days > 364 && days < 366, 'client valid for a year');

    const id = await loadIdentity({ certificate: join(dir, 'client.pem'), privateKey: join(dir, 'client.key') });
    t.equal(id.signer.keyAlgorithm, keyType === 'rsa' ? 'RSA' : 'EC');
    const serialHex = (await openssl(['x509', '-in', join(dir, 'client.pem'), '-noout', '-serial'])).trim().replace(/^serial=/, '');
    t.equal(id.serialDecimal, BigInt('0x' + serialHex).toString(10));
    t.ok(res.stdout.includes(`serial ${id.serialDecimal}`), 'prints the client serial in decimal');
    t.same(id.chain, [], 'no chain');

    // Round trip: the emulator (trusting ca.pem) issues credentials to client.pem via credential-process.
    const emulator = await startEmulator({ trustAnchorCaPems: [caPem], quiet: true });
    t.teardown(() => emulator.close());
    const cp = await runCli([
      'credential-process',
      '--certificate', join(dir, 'client.pem'),
      '--private-key', join(dir, 'client.key'),
      '--trust-anchor-arn', TA, '--profile-arn', PROFILE, '--role-arn', ROLE,
      '--endpoint', emulator.url,
    ]);
    t.equal(cp.code, 0, cp.stderr);
    const out = JSON.parse(cp.stdout) as Record<string, unknown>;
    t.equal(out.Version, 1);
    t.match(out.AccessKeyId, /^ASIA/);
    t.equal(emulator.issued.length, 1);
    t.equal(emulator.issued[0]!.serial, id.serialDecimal, 'the emulator saw our certificate');
  });
}

t.test('the next steps pki init prints work: the trust-anchor command parses in the AWS CLI, check passes', async (t) => {
  const base = await tempDir();
  const dir = join(base, 'dir with space');
  const res = await runCli(['pki', 'init', dir, '--key-type', 'ec']);
  t.equal(res.code, 0, res.stderr);
  const block = /(aws rolesanywhere create-trust-anchor[^\n]*\\\n[^\n]*)/.exec(res.stdout)?.[1];
  t.ok(block, 'prints a create-trust-anchor command');
  const command = block!.replace(/\\\n\s*/, ' ') + ' --region us-east-1 --endpoint-url http://127.0.0.1:9';
  // The AWS CLI (botocore) validates --source before connecting: reaching the
  // connection attempt proves the printed JSON is a valid Source structure.
  const aws = await runProcess('bash', ['-c', command], {
    env: { AWS_ACCESS_KEY_ID: 'AKIAIOSFODNN7EXAMPLE', AWS_SECRET_ACCESS_KEY: 'x'.repeat(40), AWS_MAX_ATTEMPTS: '1', AWS_CONFIG_FILE: '/dev/null', AWS_SHARED_CREDENTIALS_FILE: '/dev/null' },
    timeoutMs: 60_000,
  });
  t.match(aws.stderr, /Could not connect to the endpoint URL: "http:\/\/127\.0\.0\.1:9\/trustanchors"/, aws.stderr);
  const checkLine = /rolesanywhere-credentiald (check --certificate [^\n]+)/.exec(res.stdout)?.[1];
  t.ok(checkLine);
  const check = await runProcess('bash', ['-c', `node ${CLI} ${checkLine}`]);
  t.equal(check.code, 0, check.stdout + check.stderr);
  t.match(check.stdout, /chains to CN=rolesanywhere-credentiald CA \S+ [0-9a-f]{6}/);
});

t.test('two pki init runs make two CAs of different names, so a certificate of the wrong one is told apart', async (t) => {
  const base = await tempDir();
  const [a, b] = [join(base, 'one', 'pki'), join(base, 'two', 'pki')];
  for (const d of [a, b]) t.equal((await runCli(['pki', 'init', d, '--key-type', 'ec'])).code, 0);
  const subject = async (d: string) => new X509Certificate(await readFile(join(d, 'ca.pem'))).subject;
  const [sa, sb] = [await subject(a), await subject(b)];
  t.match(sa, /^CN=rolesanywhere-credentiald CA pki [0-9a-f]{6}$/);
  t.match(sb, /^CN=rolesanywhere-credentiald CA pki [0-9a-f]{6}$/);
  t.not(sa, sb, 'same directory name, still two names');
  t.equal(new X509Certificate(await readFile(join(b, 'client.pem'))).issuer, sb, 'the client certificate names its own CA');

  // An emulator trusting CA one refuses CA two's certificate and names CA two.
  const emulator = await startEmulator({ trustAnchorCaPems: [await readFile(join(a, 'ca.pem'), 'utf8')], quiet: true });
  t.teardown(() => emulator.close());
  const cp = await runCli(['credential-process', '--certificate', join(b, 'client.pem'), '--private-key', join(b, 'client.key'), '--trust-anchor-arn', TA, '--profile-arn', PROFILE, '--role-arn', ROLE, '--endpoint', emulator.url]);
  t.equal(cp.code, 1);
  t.ok(cp.stderr.includes(`its issuer is ${sb}`), `the refusal names the other CA (${cp.stderr.trim()})`);

  // A long or odd directory name still fits the 64-character CN; --ca-name is taken as given.
  const long = join(base, 'a directory name far longer than any common name could hold');
  t.equal((await runCli(['pki', 'init', long, '--key-type', 'ec'])).code, 0);
  const cn = (await subject(long)).slice(3);
  t.ok(cn.length <= 64, `CN within 64 characters: ${cn}`);
  t.match(cn, /^rolesanywhere-credentiald CA a-directory-name-far-\S* [0-9a-f]{6}$/);
  const named = join(base, 'named');
  t.equal((await runCli(['pki', 'init', named, '--key-type', 'ec', '--ca-name', 'Example Root'])).code, 0);
  t.equal(await subject(named), 'CN=Example Root');
});

t.test('pki init refuses to overwrite anything without --force, and --force replaces all', async (t) => {
  const dir = await tempDir();
  t.equal((await runCli(['pki', 'init', dir, '--key-type', 'ec'])).code, 0);
  const before = await snapshot(dir, FILES);

  const again = await runCli(['pki', 'init', dir, '--key-type', 'ec']);
  t.equal(again.code, 1);
  t.match(again.stderr, /ca\.pem, ca\.key, client\.pem, client\.key already exist in .*; nothing was written \(use --force to overwrite\)/);
  t.equal(again.stderr.trim().split('\n').length, 1, 'one line');
  t.equal(await snapshot(dir, FILES), before, 'nothing changed');

  // Only one target present: it is named, and the others are not created.
  const dir2 = await tempDir();
  await writeFile(join(dir2, 'client.key'), 'precious');
  const one = await runCli(['pki', 'init', dir2]);
  t.equal(one.code, 1);
  t.match(one.stderr, new RegExp(`${join(dir2, 'client.key').replace(/[/.]/g, '\\$&')} already exists; nothing was written \\(use --force to overwrite\\)`));
  t.equal(await snapshot(dir2, FILES), await snapshot(dir2, FILES));
  t.equal(await readFile(join(dir2, 'client.key'), 'utf8'), 'precious');
  for (const f of ['ca.pem', 'ca.key', 'client.pem']) await t.rejects(stat(join(dir2, f)), `${f} not created`);

  const forced = await runCli(['pki', 'init', dir, '--key-type', 'ec', '--force']);
  t.equal(forced.code, 0, forced.stderr);
  const after = await snapshot(dir, FILES);
  for (const f of FILES) {
    t.not(after.split('|').find((p) => p.startsWith(f + ':')), before.split('|').find((p) => p.startsWith(f + ':')), `${f} replaced`);
  }
  t.match(await openssl(['verify', '-CAfile', join(dir, 'ca.pem'), join(dir, 'client.pem')]), /OK/);
  for (const f of ['ca.key', 'client.key']) t.equal(await mode(join(dir, f)), 0o600);
  const { readdir } = await import('node:fs/promises');
  t.same((await readdir(dir)).sort(), [...FILES].sort(), 'no temporary files left behind');
});

t.test('pki init: usage errors are one clear line and change nothing', async (t) => {
  const base = await tempDir();
  const cases: [string[], RegExp][] = [
    [['pki', 'init'], /pki init needs a directory/],
    [['pki', 'init', join(base, 'a'), join(base, 'b')], /takes one directory/],
    [['pki', 'init', join(base, 'a'), '--days', '0'], /--days must be a whole number of days from 1 to 36500, not "0"/],
    [['pki', 'init', join(base, 'a'), '--days', '1.5'], /--days must be a whole number/],
    [['pki', 'init', join(base, 'a'), '--ca-days', 'ten'], /--ca-days must be a whole number/],
    [['pki', 'init', join(base, 'a'), '--key-type', 'dsa'], /--key-type must be "rsa", "ec", "ml-dsa-44", "ml-dsa-65" or "ml-dsa-87", not "dsa"/],
    [['pki', 'init', join(base, 'a'), '--client-name', '/XX=y'], /unknown subject attribute "XX"/],
    [['pki', 'init', join(base, 'a'), '--bogus'], /unknown option '--bogus'/],
    [['pki', 'frobnicate'], /unknown pki command "frobnicate"/],
  ];
  for (const [args, re] of cases) {
    const r = await runCli(args);
    t.equal(r.code, 1, args.join(' '));
    t.match(r.stderr, re);
    t.equal(r.stderr.trim().split('\n').length, 1, 'one line');
    t.notMatch(r.stderr, /\n\s+at /, 'no stack');
  }
  await t.rejects(stat(join(base, 'a')), 'no directory was created');

  // DIR is a file; DIR's parent is a file.
  const file = join(base, 'plain-file');
  await writeFile(file, 'x');
  const r1 = await runCli(['pki', 'init', file]);
  t.equal(r1.code, 1);
  t.match(r1.stderr, /exists and is not a directory/);
  const r2 = await runCli(['pki', 'init', join(file, 'sub')]);
  t.equal(r2.code, 1);
  t.match(r2.stderr, /parent of this path is not a directory/);

  const help = await runCli(['pki', 'init', '--help']);
  t.equal(help.code, 0);
  t.match(help.stdout, /Usage: rolesanywhere-credentiald pki init DIR/);
  const help2 = await runCli(['pki', 'issue', '--help']);
  t.equal(help2.code, 0);
  t.match(help2.stdout, /--pfx-password-file FILE/);
});

t.test('pki issue: PEM + PKCS#12 (password from a file or the environment) that openssl and our loader read', async (t) => {
  const dir = await tempDir();
  t.equal((await runCli(['pki', 'init', dir, '--key-type', 'ec'])).code, 0);
  const pwFile = join(await tempDir(), 'pfx-password');
  await writeFile(pwFile, 'tr0ub4dor & 3\n');
  const password = 'tr0ub4dor & 3';

  const res = await runCli(['pki', 'issue', '--ca-dir', dir, '--name', 'web-1', '--subject', '/CN=web-1/O=Example/OU=Ops', '--days', '30', '--pfx', '--pfx-password-file', pwFile]);
  t.equal(res.code, 0, res.stderr);
  t.notOk(res.stdout.includes(password) || res.stderr.includes(password), 'password never printed');
  for (const [f, m] of [['web-1.pem', 0o644], ['web-1.key', 0o600], ['web-1.pfx', 0o600]] as const) t.equal(await mode(join(dir, f)), m, f);
  t.match(await openssl(['verify', '-CAfile', join(dir, 'ca.pem'), join(dir, 'web-1.pem')]), /web-1\.pem: OK/);
  const text = await openssl(['x509', '-in', join(dir, 'web-1.pem'), '-noout', '-text']);
  t.match(text, /Subject: CN = web-1, O = Example, OU = Ops/);
  t.match(text, /CA:FALSE/);
  t.match(text, /NIST CURVE: P-256/);
  const cert = new X509Certificate(await readFile(join(dir, 'web-1.pem')));
  const days = (new Date(cert.validTo).getTime() - Date.now()) / 86_400_000;
  t.ok(days > 29 && days < 31, '--days 30');

  const info = await pkcs12Info(join(dir, 'web-1.pfx'), password);
  t.match(info, /Shrouded Keybag: PBES2, PBKDF2, AES-256-CBC/);
  await t.rejects(pkcs12Info(join(dir, 'web-1.pfx'), 'not the password'), /Mac verify error|invalid password/, 'wrong password fails in openssl');

  const fromPem = await loadIdentity({ certificate: join(dir, 'web-1.pem'), privateKey: join(dir, 'web-1.key') });
  const fromPfx = await loadIdentity({ certificate: join(dir, 'web-1.pfx'), password });
  t.ok(fromPfx.certificateDer.equals(fromPem.certificateDer), 'PFX holds the same certificate');
  t.equal(fromPfx.signer.keyAlgorithm, 'EC');
  t.equal(fromPfx.serialDecimal, fromPem.serialDecimal);
  await t.rejects(loadIdentity({ certificate: join(dir, 'web-1.pfx'), password: 'wrong' }), 'our loader refuses the wrong password');

  // Password from the environment; an RSA key on request.
  const env = await runCli(['pki', 'issue', '--ca-dir', dir, '--name', 'rsa-client', '--key-type', 'rsa', '--pfx'], {
    env: { ROLESANYWHERE_PFX_PASSWORD: 'from-env' },
  });
  t.equal(env.code, 0, env.stderr);
  t.match(await openssl(['x509', '-in', join(dir, 'rsa-client.pem'), '-noout', '-text']), /Public-Key: \(2048 bit\)/);
  t.match(await pkcs12Info(join(dir, 'rsa-client.pfx'), 'from-env'), /MAC: sha256/);
  const rsaId = await loadIdentity({ certificate: join(dir, 'rsa-client.pfx'), password: 'from-env' });
  t.equal(rsaId.signer.keyAlgorithm, 'RSA');

  // --pfx-password works but warns.
  const flag = await runCli(['pki', 'issue', '--ca-dir', dir, '--name', 'flag', '--pfx-password', 'visible-pw']);
  t.equal(flag.code, 0, flag.stderr);
  t.match(flag.stderr, /warning: --pfx-password puts the password in your shell history/);
  t.notMatch(flag.stderr + flag.stdout, /visible-pw/);
  t.match(await pkcs12Info(join(dir, 'flag.pfx'), 'visible-pw'), /MAC: sha256/);

  // Issued PFX works end to end against the emulator.
  const emulator = await startEmulator({ trustAnchorCaPems: [await readFile(join(dir, 'ca.pem'), 'utf8')], quiet: true });
  t.teardown(() => emulator.close());
  const cp = await runCli([
    'credential-process', '--certificate', join(dir, 'web-1.pfx'), '--key-password-file', pwFile,
    '--trust-anchor-arn', TA, '--profile-arn', PROFILE, '--role-arn', ROLE, '--endpoint', emulator.url,
  ]);
  t.equal(cp.code, 0, cp.stderr);
  t.equal(emulator.issued[0]?.serial, fromPem.serialDecimal);

  // Overwrite protection for issue.
  const before = await snapshot(dir, ['web-1.pem', 'web-1.key', 'web-1.pfx']);
  const again = await runCli(['pki', 'issue', '--ca-dir', dir, '--name', 'web-1']);
  t.equal(again.code, 1);
  t.match(again.stderr, /web-1\.pem, web-1\.key already exist in .*use --force to overwrite/);
  t.equal(await snapshot(dir, ['web-1.pem', 'web-1.key', 'web-1.pfx']), before);
  const forced = await runCli(['pki', 'issue', '--ca-dir', dir, '--name', 'web-1', '--force']);
  t.equal(forced.code, 0, forced.stderr);
  t.not(await readFile(join(dir, 'web-1.pem'), 'utf8'), before);
});

t.test('pki issue: clear errors for a missing or broken CA and bad input', async (t) => {
  const dir = await tempDir();
  t.equal((await runCli(['pki', 'init', dir, '--key-type', 'ec'])).code, 0);
  const empty = await tempDir();
  const pw = join(empty, 'pw');
  await writeFile(pw, '');

  // A CA directory whose key belongs to another certificate.
  const mismatched = await tempDir();
  await copyFile(join(dir, 'ca.pem'), join(mismatched, 'ca.pem'));
  await copyFile(join(dir, 'client.key'), join(mismatched, 'ca.key'));
  // A "CA" that is not a CA.
  const notCa = await tempDir();
  await copyFile(join(dir, 'client.pem'), join(notCa, 'ca.pem'));
  await copyFile(join(dir, 'client.key'), join(notCa, 'ca.key'));
  // Garbage CA certificate.
  const garbage = await tempDir();
  await writeFile(join(garbage, 'ca.pem'), 'not a certificate');
  await copyFile(join(dir, 'ca.key'), join(garbage, 'ca.key'));
  // Encrypted CA key.
  const encrypted = await tempDir();
  await copyFile(join(dir, 'ca.pem'), join(encrypted, 'ca.pem'));
  await openssl(['pkcs8', '-topk8', '-v2', 'aes-256-cbc', '-in', join(dir, 'ca.key'), '-passout', 'pass:x', '-out', join(encrypted, 'ca.key')]);
  const onlyCert = await tempDir();
  await copyFile(join(dir, 'ca.pem'), join(onlyCert, 'ca.pem'));
  await mkdir(join(dir, 'somedir.pem'));

  const cases: [string[], RegExp, NodeJS.ProcessEnv?][] = [
    [['pki', 'issue', '--name', 'x'], /needs --ca-dir DIR/],
    [['pki', 'issue', '--ca-dir', dir], /needs --name NAME/],
    [['pki', 'issue', '--ca-dir', empty, '--name', 'x'], /ca\.pem not found: --ca-dir must hold the CA certificate ca\.pem \(run `pki init/],
    [['pki', 'issue', '--ca-dir', onlyCert, '--name', 'x'], /ca\.key not found: --ca-dir must hold the CA private key/],
    [['pki', 'issue', '--ca-dir', mismatched, '--name', 'x'], /ca\.key does not match .*ca\.pem/],
    [['pki', 'issue', '--ca-dir', notCa, '--name', 'x'], /ca\.pem is not a CA certificate/],
    [['pki', 'issue', '--ca-dir', garbage, '--name', 'x'], /ca\.pem is not a PEM or DER certificate/],
    [['pki', 'issue', '--ca-dir', encrypted, '--name', 'x'], /ca\.key is encrypted/],
    [['pki', 'issue', '--ca-dir', dir, '--name', 'ca'], /--name "ca" is reserved/],
    [['pki', 'issue', '--ca-dir', dir, '--name', 'CA'], /--name "CA" is reserved/],
    [['pki', 'issue', '--ca-dir', dir, '--name', '../escape'], /is not usable as a file name/],
    [['pki', 'issue', '--ca-dir', dir, '--name', '.hidden'], /is not usable as a file name/],
    [['pki', 'issue', '--ca-dir', dir, '--name', 'a b'], /is not usable as a file name/],
    [['pki', 'issue', '--ca-dir', dir, '--name', 'somedir'], /somedir\.pem is a directory/],
    [['pki', 'issue', '--ca-dir', dir, '--name', 'x', '--days=-3'], /--days must be a whole number/],
    [['pki', 'issue', '--ca-dir', dir, '--name', 'x', '--days', '-3'], /--days needs a value, but an argument starting with "-" follows it/],
    [['pki', 'issue', '--ca-dir', dir, '--name', 'x', '--days'], /--days needs a value/],
    [['pki', 'issue', '--ca-dir', dir, '--name', 'x', '--key-type', 'ed25519'], /--key-type must be "rsa", "ec", "ml-dsa-44", "ml-dsa-65" or "ml-dsa-87"/],
    [['pki', 'issue', '--ca-dir', dir, '--name', 'x', '--subject', 'CN'], /not TYPE=value/],
    [['pki', 'issue', '--ca-dir', dir, '--name', 'x', '--pfx'], /--pfx needs a password: give --pfx-password-file FILE or set ROLESANYWHERE_PFX_PASSWORD/, { ROLESANYWHERE_PFX_PASSWORD: undefined }],
    [['pki', 'issue', '--ca-dir', dir, '--name', 'x', '--pfx'], /ROLESANYWHERE_PFX_PASSWORD is empty/, { ROLESANYWHERE_PFX_PASSWORD: '' }],
    [['pki', 'issue', '--ca-dir', dir, '--name', 'x', '--pfx-password-file', pw], /--pfx-password-file .* is empty/],
    [['pki', 'issue', '--ca-dir', dir, '--name', 'x', '--pfx-password-file', join(empty, 'nope')], /--pfx-password-file .* not found/],
    [['pki', 'issue', '--ca-dir', dir, '--name', 'x', 'stray'], /unexpected argument "stray"/],
  ];
  for (const [args, re, env] of cases) {
    const r = await runCli(args, env ? { env } : {});
    t.equal(r.code, 1, args.slice(1).join(' '));
    t.match(r.stderr, re, args.slice(1).join(' '));
    t.equal(r.stderr.trim().split('\n').length, 1, 'one line');
    t.notMatch(r.stderr, /PRIVATE KEY|\n\s+at /);
  }
  const { readdir } = await import('node:fs/promises');
  t.same((await readdir(dir)).sort(), [...FILES, 'somedir.pem'].sort(), 'no files were written by the failed attempts');
});

t.test('pki issue: a certificate never outlives its CA', async (t) => {
  const dir = await tempDir();
  t.equal((await runCli(['pki', 'init', dir, '--key-type', 'ec', '--ca-days', '10', '--days', '5'])).code, 0);
  const r = await runCli(['pki', 'issue', '--ca-dir', dir, '--name', 'long', '--days', '400']);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stderr, /warning: the CA expires on .*shortened/);
  const ca = new X509Certificate(await readFile(join(dir, 'ca.pem')));
  const leaf = new X509Certificate(await readFile(join(dir, 'long.pem')));
  t.ok(new Date(leaf.validTo).getTime() <= new Date(ca.validTo).getTime());
  t.match(await openssl(['verify', '-CAfile', join(dir, 'ca.pem'), join(dir, 'long.pem')]), /OK/);

  const init = await runCli(['pki', 'init', await tempDir(), '--key-type', 'ec', '--ca-days', '10', '--days', '30']);
  t.equal(init.code, 0);
  t.match(init.stderr, /warning: the client certificate would outlive the CA/);
});
