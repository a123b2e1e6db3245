// A real SoftHSM2 token per test, in a temp dir with its own SOFTHSM2_CONF:
// keys are generated inside the token by OpenSC's pkcs11-tool (sensitive,
// never extractable), certificates for them are issued by a test CA with the
// project's `pki` code from the public key the token shows, and written back
// to the token as certificate objects.
//
//   const tok = await createToken(t);                 // label, pin, conf, env, module
//   await tok.keypair('rsa2048', 'rsa', '01');         // key pair with CKA_ID 01
//   const cert = await tok.issue(ca, '01', 'rsa-cert'); // certificate PEM file (+ object on the token)
//   process.env.SOFTHSM2_CONF = tok.conf              // for in-process use (set before the module loads)
//
// Needs Debian's softhsm2 and opensc (.ci/run installs them).
import { execFile } from 'node:child_process';
import { createPrivateKey, createPublicKey, X509Certificate, type KeyObject } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { createCertificate } from '../../src/pki/certificate.js';
import { tempDir, type CertFiles } from './pki.js';

const run = promisify(execFile);

export const SOFTHSM_MODULE = ['/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so', '/usr/lib/softhsm/libsofthsm2.so', '/usr/lib64/pkcs11/libsofthsm2.so'].find((p) =>
  existsSync(p),
);

/** Why SoftHSM tests cannot run here, or undefined when they can. */
export function softhsmMissing(): string | undefined {
  if (!SOFTHSM_MODULE) return 'SoftHSM2 is not installed (Debian: apt-get install softhsm2 opensc)';
  return undefined;
}

export type TokenKeyType = 'rsa2048' | 'rsa1024' | 'p256' | 'p384';
const KEY_TYPE: Record<TokenKeyType, string> = { rsa2048: 'rsa:2048', rsa1024: 'rsa:1024', p256: 'EC:prime256v1', p384: 'EC:secp384r1' };

export interface Token {
  dir: string;
  conf: string;
  label: string;
  pin: string;
  module: string;
  /** Environment for child processes (SOFTHSM2_CONF). */
  env: NodeJS.ProcessEnv;
  /** Runs pkcs11-tool against this token (logged in when `login`). */
  tool(args: string[], login?: boolean): Promise<string>;
  /** Generates a key pair inside the token (non-extractable). */
  keypair(type: TokenKeyType, label: string, id: string, extra?: string[]): Promise<KeyObject>;
  /** The public key the token shows for CKA_ID `id`. */
  publicKey(id: string): Promise<KeyObject>;
  /** Issues a client certificate for the token key `id` from `ca` and writes it to `dir` (and to the token unless `store` is false). */
  issue(ca: CertFiles, id: string, label: string, opts?: { store?: boolean; subject?: string }): Promise<{ certPath: string; certificate: X509Certificate }>;
  /** Moves the token's storage away (the module then fails) and back. */
  unplug(): Promise<void>;
  replug(): Promise<void>;
}

export async function createToken(t: { teardown(fn: () => unknown): void }, label = 'ra-test', pin = '246810'): Promise<Token> {
  const module = SOFTHSM_MODULE;
  if (!module) throw new Error(softhsmMissing());
  const dir = await tempDir('ra-softhsm-');
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const tokens = join(dir, 'tokens');
  await mkdir(tokens, { mode: 0o700 });
  const conf = join(dir, 'softhsm2.conf');
  await writeFile(conf, `directories.tokendir = ${tokens}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n`);
  const env = { ...process.env, SOFTHSM2_CONF: conf };
  await run('softhsm2-util', ['--init-token', '--free', '--label', label, '--pin', pin, '--so-pin', '13579111'], { env });
  const tool = async (args: string[], login = false): Promise<string> => {
    const full = ['--module', module, '--token-label', label, ...(login ? ['--login', '--pin', pin] : []), ...args];
    const { stdout } = await run('pkcs11-tool', full, { env, maxBuffer: 4 * 1024 * 1024 });
    return stdout;
  };
  const publicKey = async (id: string): Promise<KeyObject> => {
    const listing = await tool(['--list-objects', '--type', 'pubkey']);
    const block = listing.split(/(?=Public Key Object;)/).find((b) => new RegExp(`\\bID:\\s+${id}\\b`).test(b));
    if (!block) throw new Error(`no public key object with id ${id} on the token`);
    const point = /EC_POINT:\s+([0-9a-f]+)/.exec(block)?.[1];
    if (!point) {
      const out = join(dir, `pub-${id}.der`);
      await tool(['--read-object', '--type', 'pubkey', '--id', id, '-o', out]);
      return createPublicKey({ key: await readFile(out), format: 'der', type: 'spki' });
    }
    // pkcs11-tool 0.23 cannot export P-384 keys with OpenSSL 3: build the key from the token's EC_POINT.
    const params = /EC_PARAMS:\s+([0-9a-f]+)/.exec(block)?.[1];
    const crv = params === '06082a8648ce3d030107' ? 'P-256' : params === '06052b81040022' ? 'P-384' : undefined;
    if (!crv) throw new Error(`unexpected EC_PARAMS ${params}`);
    const size = crv === 'P-256' ? 32 : 48;
    const raw = Buffer.from(point, 'hex').subarray(-(2 * size + 1));
    const x = raw.subarray(1, 1 + size).toString('base64url');
    const y = raw.subarray(1 + size).toString('base64url');
    return createPublicKey({ key: { kty: 'EC', crv, x, y }, format: 'jwk' });
  };
  const away = `${tokens}.away`;
  return {
    dir,
    conf,
    label,
    pin,
    module,
    env,
    tool,
    publicKey,
    async keypair(type, keyLabel, id, extra = []) {
      await tool(['--keypairgen', '--key-type', KEY_TYPE[type], '--label', keyLabel, '--id', id, ...extra], true);
      return publicKey(id);
    },
    async issue(ca, id, certLabel, opts = {}) {
      const subjectKey = await publicKey(id);
      const caCert = new X509Certificate(await readFile(ca.certPath));
      const caKey = createPrivateKey(await readFile(ca.keyPath));
      const cert = createCertificate({
        subject: opts.subject ?? `/CN=${certLabel}`,
        subjectKey,
        issuer: { certificate: caCert, privateKey: caKey },
        notAfter: new Date(Date.now() + 30 * 86_400_000),
        keyUsage: ['digitalSignature'],
        extendedKeyUsage: ['clientAuth'],
      });
      const certPath = join(dir, `${certLabel}.pem`);
      await writeFile(certPath, cert.pem);
      if (opts.store !== false) {
        const der = join(dir, `${certLabel}.der`);
        await writeFile(der, cert.der);
        await tool(['--write-object', der, '--type', 'cert', '--id', id, '--label', certLabel], true);
      }
      return { certPath, certificate: cert.certificate };
    },
    async unplug() {
      await rename(tokens, away);
    },
    async replug() {
      await rename(away, tokens);
    },
  };
}
