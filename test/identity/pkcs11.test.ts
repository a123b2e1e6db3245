// The pkcs11 key source against a real SoftHSM2 token made by this test:
// keys generated inside the token, signatures checked with the certificate's
// public key, the key shown not to leave the token, every bad input refused
// with its own message, and a module failure survived.
import { verify, X509Certificate } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import t from 'tap';
import { UserError } from '../../src/errors.js';
import { spkiOf } from '../../src/identity/keys.js';
import { loadIdentity } from '../../src/identity/load.js';
import { ecdsaDer, open, readCertificate } from '../../src/identity/signers/pkcs11.js';
import { callCreateSession, startTestEmulator } from '../helpers/emulator.js';
import { runProcess } from '../helpers/cli.js';
import { tempDir } from '../helpers/pki.js';
import { createToken, softhsmMissing, type Token } from '../helpers/softhsm.js';
import { missing as needs } from '../helpers/needs.js';

const missing = needs('pkcs11') ?? softhsmMissing();
if (missing) {
  t.plan(0, missing);
} else {
  await main();
}

async function main(): Promise<void> {
  const tok: Token = await createToken(t);
  // SoftHSM reads its configuration when the module is initialized: set it before the first open().
  process.env.SOFTHSM2_CONF = tok.conf;
  const dir = await tempDir('ra-p11-');
  const emu = await startTestEmulator(t);
  const ca = emu.ca;
  const keys = {
    rsa: { type: 'rsa2048' as const, id: '01', alg: 'AWS4-X509-RSA-SHA256' },
    p256: { type: 'p256' as const, id: '02', alg: 'AWS4-X509-ECDSA-SHA256' },
    p384: { type: 'p384' as const, id: '03', alg: 'AWS4-X509-ECDSA-SHA256' },
  };
  const certs: Record<string, X509Certificate> = {};
  const certPaths: Record<string, string> = {};
  for (const [name, k] of Object.entries(keys)) {
    await tok.keypair(k.type, name, k.id);
    const issued = await tok.issue(ca, k.id, `${name}-cert`);
    certs[name] = issued.certificate;
    certPaths[name] = issued.certPath;
  }
  const base = `pkcs11:token=${tok.label}`;
  const opts = { pkcs11Lib: tok.module, pkcs11Pin: tok.pin, pkcs11PinOrigin: 'the test' };

  const rejects = async (t: Tap.Test, p: Promise<unknown>, re: RegExp, msg: string) => {
    const err = await p.then(
      () => undefined,
      (e: unknown) => e,
    );
    t.ok(err instanceof UserError, `${msg}: a UserError`);
    t.match((err as Error)?.message ?? '', re, msg);
    t.notMatch((err as Error)?.message ?? '', tok.pin, `${msg}: no PIN in the message`);
    return err as UserError;
  };

  t.test('signs with each key by URI; signatures verify with the certificate', async (t) => {
    for (const [name, k] of Object.entries(keys)) {
      const signer = await open(`${base};object=${name};type=private`, opts);
      t.equal(signer.kind, 'pkcs11');
      t.equal(signer.algorithm, k.alg, `${name}: algorithm`);
      t.ok(spkiOf(signer.publicKey).equals(spkiOf(certs[name]!.publicKey)), `${name}: public key from the token = the certificate's`);
      t.match(signer.describe(), new RegExp(`token "${tok.label}".*object "${name}"`), `${name}: describe names token and object`);
      t.notMatch(signer.describe(), tok.pin);
      for (let i = 0; i < 3; i++) {
        const data = Buffer.from(`AWS4-X509 string to sign ${name} ${i}`);
        const sig = await signer.sign(data);
        t.ok(verify('sha256', data, { key: certs[name]!.publicKey, dsaEncoding: 'der' }, sig), `${name}: signature ${i} verifies (DER for EC)`);
      }
      await signer.close!();
    }
  });

  t.test('by id and by the PIN inside the URI', async (t) => {
    const signer = await open(`${base};id=%02;type=private?pin-value=${tok.pin}`, { pkcs11Lib: tok.module });
    t.ok(spkiOf(signer.publicKey).equals(spkiOf(certs.p256!.publicKey)));
    t.notMatch(signer.describe(), tok.pin);
    await signer.close!();
    const pinFile = join(dir, 'pin');
    await writeFile(pinFile, `${tok.pin}\n`);
    const s2 = await open(`${base};object=p384?pin-source=file:${pinFile}`, { pkcs11Lib: tok.module });
    t.ok(verify('sha256', Buffer.from('x'), { key: certs.p384!.publicKey, dsaEncoding: 'der' }, await s2.sign(Buffer.from('x'))));
    await s2.close!();
    // The pin-source file is read like any password file: capped, and named when missing.
    await t.rejects(open(`${base};object=p384?pin-source=file:/dev/zero`, { pkcs11Lib: tok.module }), {
      message: /^pin-source \/dev\/zero: password file is more than the 4096 bytes/,
      reason: 'file_too_large',
    });
    await t.rejects(open(`${base};object=p384?pin-source=${join(dir, 'no-pin')}`, { pkcs11Lib: tok.module }), { message: /^pin-source \/.*no-pin: password file not found/ });
  });

  t.test('the certificate comes from the token, the key found by its CKA_ID', async (t) => {
    const c = await readCertificate(`${base};object=rsa-cert;type=cert`, opts);
    t.ok(c.der.equals(certs.rsa!.raw), 'the stored certificate');
    t.equal(c.keySpec, 'pkcs11:token=ra-test;type=private;id=%01', 'the key URI: same token, the certificate\'s CKA_ID');
    const signer = await open(c.keySpec, c.keyOptions);
    t.ok(spkiOf(signer.publicKey).equals(spkiOf(certs.rsa!.publicKey)), 'the key next to it');
    await signer.close!();
    // The PIN of the certificate's URI carries over to the key without entering its URI.
    const c2 = await readCertificate(`${base};object=p256-cert?pin-value=${tok.pin}`, { pkcs11Lib: tok.module });
    t.notMatch(c2.keySpec, tok.pin);
    const s2 = await open(c2.keySpec, c2.keyOptions);
    t.ok(spkiOf(s2.publicKey).equals(spkiOf(certs.p256!.publicKey)));
    await s2.close!();
  });

  t.test('the loader: CreateSession signed by the token is accepted by the emulator', async (t) => {
    const p11 = { pkcs11Lib: tok.module, pkcs11Pin: tok.pin };
    for (const name of Object.keys(keys)) {
      const fromFile = await loadIdentity({ certificate: certPaths[name]!, privateKey: `${base};object=${name};type=private`, ...p11 });
      t.equal(fromFile.signer.kind, 'pkcs11');
      const r1 = await callCreateSession(emu.url, fromFile, { arns: emu.arns });
      t.equal(r1.status, 201, `${name}: certificate file + token key → 201 ${r1.json?.message ?? ''}`);
      const onToken = await loadIdentity({ certificate: `${base};object=${name}-cert;type=cert`, ...p11 });
      t.ok(onToken.certificateDer.equals(certs[name]!.raw), `${name}: certificate read from the token`);
      const r2 = await callCreateSession(emu.url, onToken, { arns: emu.arns });
      t.equal(r2.status, 201, `${name}: certificate and key on the token → 201 ${r2.json?.message ?? ''}`);
      await fromFile.signer.close?.();
      await onToken.signer.close?.();
    }
    t.equal(emu.emulator.stats.createSession.ok, 6, 'six sessions, each signature verified by the emulator');
  });

  t.test('the loader: a PIN inside the URI never reaches the identity or a message', async (t) => {
    const id = await loadIdentity({ certificate: certPaths.p256!, privateKey: `${base};object=p256?pin-value=${tok.pin}`, pkcs11Lib: tok.module });
    t.equal(id.source.privateKey, `${base};object=p256`, 'the URI kept, without its PIN');
    t.notMatch(JSON.stringify({ ...id.source, pkcs11Pin: undefined }), tok.pin);
    await id.signer.close?.();
    const err = await loadIdentity({ certificate: certPaths.p256!, privateKey: `${base};object=p384?pin-value=${tok.pin}`, pkcs11Lib: tok.module }).catch((e: Error) => e);
    t.match((err as Error).message, /^pkcs11:token=ra-test;object=p384: private key pkcs11:token=ra-test;object=p384 does not match the certificate .*p256-cert\.pem/, 'a key that does not match the certificate');
    t.notMatch((err as Error).message, tok.pin);
  });

  t.test('the loader refuses an RSA-1024 key on the token', async (t) => {
    await tok.keypair('rsa1024', 'weak', '09');
    const weak = await tok.issue(ca, '09', 'weak-cert', { store: false });
    const err = await loadIdentity({ certificate: weak.certPath, privateKey: `${base};object=weak`, pkcs11Lib: tok.module, pkcs11Pin: tok.pin }).catch((e: Error) => e);
    t.match((err as Error).message, /^pkcs11:token=ra-test;object=weak: RSA key is only 1024 bits; use RSA 2048 bits or more/);
  });

  t.test('the private key cannot be read out of the token', async (t) => {
    for (const [name, k] of Object.entries(keys)) {
      const attrs = await tok.tool(['--list-objects', '--type', 'privkey', '--id', k.id], true);
      t.match(attrs, /never extractable/, `${name}: CKA_NEVER_EXTRACTABLE`);
      t.match(attrs, /sensitive/, `${name}: CKA_SENSITIVE`);
    }
    // Ask the token directly (pkcs11js in a separate process, not our signer): the secret parts are
    // refused, and so is wrapping the key out under a key we know.
    const script = join(dir, 'extract.cjs');
    await writeFile(
      script,
      `const p11 = require(${JSON.stringify(createRequire(import.meta.url).resolve('pkcs11js'))});
const [lib, label, pin, ...ids] = process.argv.slice(2);
const api = new p11.PKCS11();
api.load(lib);
api.C_Initialize();
const slot = api.C_GetSlotList(true).find((s) => api.C_GetTokenInfo(s).label.trim() === label);
const session = api.C_OpenSession(slot, p11.CKF_SERIAL_SESSION | p11.CKF_RW_SESSION);
api.C_Login(session, p11.CKU_USER, pin);
const wrapKey = api.C_GenerateKey(session, { mechanism: p11.CKM_AES_KEY_GEN }, [
  { type: p11.CKA_VALUE_LEN, value: 32 }, { type: p11.CKA_WRAP, value: true }, { type: p11.CKA_TOKEN, value: false },
]);
const out = {};
const attempt = (fn) => { try { fn(); return 'read!'; } catch (e) { return e.message; } };
for (const id of ids) {
  api.C_FindObjectsInit(session, [{ type: p11.CKA_CLASS, value: p11.CKO_PRIVATE_KEY }, { type: p11.CKA_ID, value: Buffer.from(id, 'hex') }]);
  const [key] = api.C_FindObjects(session, 1);
  api.C_FindObjectsFinal(session);
  out[id] = {
    found: !!key,
    value: attempt(() => api.C_GetAttributeValue(session, key, [{ type: p11.CKA_VALUE }])),
    exponent: attempt(() => api.C_GetAttributeValue(session, key, [{ type: p11.CKA_PRIVATE_EXPONENT }])),
    wrap: attempt(() => api.C_WrapKey(session, { mechanism: p11.CKM_AES_KEY_WRAP_PAD }, wrapKey, key, Buffer.alloc(4096))),
  };
}
api.C_Finalize();
process.stdout.write(JSON.stringify(out));
`,
    );
    const ids = Object.values(keys).map((k) => k.id);
    const { stdout, stderr } = await runProcess(process.execPath, [script, tok.module, tok.label, tok.pin, ...ids], { cleanEnv: true, env: { SOFTHSM2_CONF: tok.conf } });
    t.equal(stderr, '', 'the direct probe ran');
    const result = JSON.parse(stdout) as Record<string, { found: boolean; value: string; exponent: string; wrap: string }>;
    for (const [name, k] of Object.entries(keys)) {
      const r = result[k.id]!;
      t.ok(r.found, `${name}: the key is there`);
      const secret = k.type === 'rsa2048' ? r.exponent : r.value;
      t.match(secret, /CKR_ATTRIBUTE_SENSITIVE/, `${name}: the private value is refused`);
      t.match(r.wrap, /CKR_KEY_UNEXTRACTABLE|CKR_KEY_NOT_WRAPPABLE/, `${name}: the key cannot be wrapped out`);
    }
  });

  t.test('bad input: each with its own message, never the PIN', async (t) => {
    await rejects(t, open(`${base};object=rsa`, { ...opts, pkcs11Pin: '999999' }), /token "ra-test": login failed: wrong PIN \(CKR_PIN_INCORRECT, from the test\)/, 'wrong PIN');
    await rejects(t, open(`${base};object=rsa`, { ...opts, pkcs11Pin: '999999' }), /already refused by the token; not trying it again/, 'wrong PIN not retried');
    await rejects(t, open(`${base};object=rsa?pin-value=000000`, { pkcs11Lib: tok.module }), /wrong PIN \(CKR_PIN_INCORRECT, from pin-value in the URI\)/, 'wrong pin-value');
    const e = await rejects(t, open(`pkcs11:token=nope;object=rsa`, opts), /no token matches in PKCS#11 module .*tokens present: "ra-test"/, 'unknown token');
    t.equal(e.reason, 'pkcs11_token_not_found');
    await rejects(t, open(`${base};object=nope`, opts), /no private key object "nope" on token "ra-test" \(private keys there: .*object "rsa" id 01/, 'unknown object');
    await rejects(t, open(`${base};object=rsa`, { ...opts, pkcs11Lib: join(dir, 'no-such-module.so') }), /--pkcs11-lib .*no-such-module\.so: PKCS#11 module not found; check the path/, 'missing module');
    await writeFile(join(dir, 'not-a-module.so'), 'garbage');
    await rejects(t, open(`${base};object=rsa`, { ...opts, pkcs11Lib: join(dir, 'not-a-module.so') }), /could not be loaded as a PKCS#11 module/, 'not a module');
    await rejects(t, open(`${base};object=rsa`, { pkcs11Lib: tok.module }), /needs a PIN: give it with --pkcs11-pin-file FILE, ROLESANYWHERE_PKCS11_PIN/, 'no PIN');
    await rejects(t, open(`${base}`, opts), /\d private keys match on token "ra-test"/, 'ambiguous');
    await rejects(t, open(`${base};object=rsa;type=cert`, opts), /names an object of type=cert; use type=private/, 'wrong type');
    await rejects(t, open(`${base};object=rsa;bogus=1`, opts), /unknown path attribute "bogus"/, 'bad URI');
    await rejects(t, readCertificate(`${base};object=nope-cert`, opts), /no X\.509 certificate object "nope-cert" on token "ra-test"/, 'unknown certificate');
  });

  t.test('an RSA-1024 key opens but reports its size (the loader refuses it)', async (t) => {
    const pub = await tok.publicKey('09');
    const signer = await open(`${base};object=weak`, opts);
    t.equal(signer.publicKey.asymmetricKeyDetails?.modulusLength, 1024);
    t.ok(spkiOf(signer.publicKey).equals(spkiOf(pub)));
    await signer.close!();
  });

  t.test('an EC key whose public half the token does not show is proved by a test signature', async (t) => {
    await tok.keypair('p256', 'nopub', '0b');
    const cert = (await tok.issue(ca, '0b', 'nopub-cert', { store: false })).certificate;
    await tok.tool(['--delete-object', '--type', 'pubkey', '--id', '0b'], true);
    const signer = await open(`${base};object=nopub`, { ...opts, certificate: cert });
    t.ok(spkiOf(signer.publicKey).equals(spkiOf(cert.publicKey)), "the certificate's key, proved");
    const data = Buffer.from('x');
    t.ok(verify('sha256', data, { key: cert.publicKey, dsaEncoding: 'der' }, await signer.sign(data)), 'and it signs');
    await signer.close!();
    await rejects(t, open(`${base};object=nopub`, opts), /shows no public key for this EC key \(no public key object with its CKA_ID\)/, 'without a certificate');
    await rejects(t, open(`${base};object=nopub`, { ...opts, certificate: certs.p256! }), /the key does not match the certificate \(a test signature does not verify/, 'with the wrong certificate');
  });

  t.test('a key that wants the PIN per signature needs --reuse-pin', async (t) => {
    await tok.keypair('p256', 'always', '0a', ['--always-auth']);
    const without = await open(`${base};object=always`, opts);
    await rejects(t, without.sign(Buffer.from('x')), /requires the PIN for every signature \(CKA_ALWAYS_AUTHENTICATE\); add --reuse-pin/, 'refused without reuse');
    await without.close!();
    const withReuse = await open(`${base};object=always`, { ...opts, reusePin: true });
    const sig = await withReuse.sign(Buffer.from('x'));
    t.ok(verify('sha256', Buffer.from('x'), { key: withReuse.publicKey, dsaEncoding: 'der' }, sig));
    await withReuse.close!();
  });

  t.test('survives the token going away and coming back', async (t) => {
    const signer = await open(`${base};object=p256`, opts);
    const data = Buffer.from('before');
    t.ok(verify('sha256', data, { key: certs.p256!.publicKey, dsaEncoding: 'der' }, await signer.sign(data)), 'signs before');
    await tok.unplug();
    try {
      const err = await rejects(t, signer.sign(Buffer.from('during')), /token "ra-test".*: the token is unavailable \(.*\); will retry at the next refresh/, "fails while the token is away");
      t.match(err.message, /C_Initialize failed|no token matches|signing failed/, 'says what failed');
    } finally {
      await tok.replug();
    }
    const after = Buffer.from('after');
    t.ok(verify('sha256', after, { key: certs.p256!.publicKey, dsaEncoding: 'der' }, await signer.sign(after)), 'signs again once it is back');
    await signer.close!();
  });

  t.test('raw r‖s becomes DER', async (t) => {
    const r = Buffer.alloc(32, 0);
    r[31] = 1;
    const s = Buffer.alloc(32, 0xff);
    const der = ecdsaDer(Buffer.concat([r, s]));
    t.equal(der.toString('hex'), '3026020101022100' + 'ff'.repeat(32));
    t.throws(() => ecdsaDer(Buffer.alloc(63)), /63-byte ECDSA signature/);
  });
}

declare namespace Tap {
  type Test = typeof t;
}
