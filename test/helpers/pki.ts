// Test identities made at test time with the openssl CLI (an independent
// implementation, so our loader and signer are not checked only against
// themselves). No private key is ever committed.
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export async function openssl(args: string[], cwd?: string): Promise<string> {
  const { stdout } = await run('openssl', args, { cwd, maxBuffer: 16 * 1024 * 1024 });
  return stdout;
}

export type KeyType = 'rsa2048' | 'rsa4096' | 'p256' | 'p384' | 'ed25519' | 'dsa';

export interface CertFiles {
  dir: string;
  name: string;
  certPath: string;
  keyPath: string;
  certPem: string;
  /** Leaf serial in decimal, as the service logs it. */
  serialDecimal: string;
}

let counter = 0;
function slug(name: string): string {
  return `${name.replace(/[^A-Za-z0-9]+/g, '-').toLowerCase()}-${++counter}`;
}

export async function tempDir(prefix = 'ra-test-'): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix));
}

/** Writes a new private key (PKCS#8 PEM, unencrypted) and returns its path. */
export async function makeKey(dir: string, keyType: KeyType, base: string): Promise<string> {
  const keyPath = join(dir, `${base}.key`);
  const spec: Record<KeyType, string[]> = {
    rsa2048: ['-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048'],
    rsa4096: ['-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:4096'],
    p256: ['-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256'],
    p384: ['-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-384'],
    ed25519: ['-algorithm', 'ED25519'],
    dsa: [],
  };
  if (keyType === 'dsa') {
    await openssl(['genpkey', '-genparam', '-algorithm', 'DSA', '-pkeyopt', 'dsa_paramgen_bits:2048', '-out', `${keyPath}.params`]);
    await openssl(['genpkey', '-paramfile', `${keyPath}.params`, '-out', keyPath]);
  } else {
    await openssl(['genpkey', ...spec[keyType], '-out', keyPath]);
  }
  return keyPath;
}

async function serialOf(certPath: string): Promise<string> {
  const out = await openssl(['x509', '-in', certPath, '-noout', '-serial']);
  const hex = out.trim().replace(/^serial=/, '');
  // openssl prints a (non-conforming) negative serial as -HEX.
  return hex.startsWith('-') ? (-BigInt('0x' + hex.slice(1))).toString(10) : BigInt('0x' + hex).toString(10);
}

async function finish(dir: string, name: string, base: string, keyPath: string): Promise<CertFiles> {
  const certPath = join(dir, `${base}.pem`);
  return { dir, name, certPath, keyPath, certPem: await readFile(certPath, 'utf8'), serialDecimal: await serialOf(certPath) };
}

export interface CaOptions {
  keyType?: KeyType;
  /** Issue this CA from another (an intermediate); self-signed otherwise. */
  issuer?: CertFiles;
  days?: number;
}

/** A CA certificate: v3, CA:TRUE, keyCertSign + cRLSign. */
export async function makeCA(dir: string, name = 'Test Root CA', opts: CaOptions = {}): Promise<CertFiles> {
  const base = slug(name);
  const keyPath = await makeKey(dir, opts.keyType ?? 'rsa2048', base);
  const ext = join(dir, `${base}.ext`);
  await writeFile(
    ext,
    ['basicConstraints=critical,CA:TRUE', 'keyUsage=critical,keyCertSign,cRLSign', 'subjectKeyIdentifier=hash', ''].join('\n'),
  );
  const certPath = join(dir, `${base}.pem`);
  const days = String(opts.days ?? 3650);
  if (!opts.issuer) {
    await openssl(['req', '-x509', '-new', '-key', keyPath, '-subj', `/CN=${name}`, '-days', days, '-sha256', '-extensions', 'v3', '-config', await reqConfig(dir, ext), '-out', certPath]);
  } else {
    const csr = join(dir, `${base}.csr`);
    await openssl(['req', '-new', '-key', keyPath, '-subj', `/CN=${name}`, '-out', csr]);
    await openssl(['x509', '-req', '-in', csr, '-CA', opts.issuer.certPath, '-CAkey', opts.issuer.keyPath, '-set_serial', randomSerial(), '-days', days, '-sha256', '-extfile', ext, '-out', certPath]);
  }
  return finish(dir, name, base, keyPath);
}

async function reqConfig(dir: string, extFile: string): Promise<string> {
  const cfg = join(dir, `req-${++counter}.cnf`);
  const ext = await readFile(extFile, 'utf8');
  await writeFile(cfg, `[req]\ndistinguished_name=dn\n[dn]\n[v3]\n${ext}`);
  return cfg;
}

function randomSerial(): string {
  // Positive, up to 16 bytes, as real CAs do; decimal formatting must cope with big values.
  let hex = '';
  for (let i = 0; i < 16; i++) hex += Math.floor(Math.random() * 256).toString(16).padStart(2, '0');
  return '0x' + (parseInt(hex[0]!, 16) & 7).toString(16) + hex.slice(1);
}

export interface LeafOptions {
  keyType?: KeyType;
  /** Validity in days; negative gives an already expired certificate. */
  days?: number;
  /** basicConstraints CA:TRUE on the leaf (a rule violation). */
  caTrue?: boolean;
  /** keyUsage extension value; default `critical,digitalSignature`. '' omits the extension. */
  keyUsage?: string;
  /** Signature digest, default sha256 (sha1 is a rule violation). */
  digest?: string;
  /** No extensions at all (openssl then writes a v1 certificate). */
  noExtensions?: boolean;
  /** Use this existing key instead of generating one. */
  keyPath?: string;
  /** Certify this CSR (e.g. one a TPM or token key signed) instead of making one from a key file; keyPath is then only recorded. */
  csrPath?: string;
  /** Serial number as openssl -set_serial takes it (decimal, 0x hex, or negative); default random. */
  serial?: string;
}

/** An end-entity certificate issued by `issuer`. */
export async function makeLeaf(dir: string, issuer: CertFiles, name = 'test-client', opts: LeafOptions = {}): Promise<CertFiles> {
  const base = slug(name);
  const keyPath = opts.keyPath ?? (opts.csrPath ? '' : await makeKey(dir, opts.keyType ?? 'p256', base));
  const csr = opts.csrPath ?? join(dir, `${base}.csr`);
  if (!opts.csrPath) await openssl(['req', '-new', '-key', keyPath, '-subj', `/CN=${name}`, '-out', csr]);
  const certPath = join(dir, `${base}.pem`);
  const args = ['x509', '-req', '-in', csr, '-CA', issuer.certPath, '-CAkey', issuer.keyPath, '-set_serial', opts.serial ?? randomSerial(), '-days', String(opts.days ?? 365), `-${opts.digest ?? 'sha256'}`, '-out', certPath];
  if (!opts.noExtensions) {
    const ext = join(dir, `${base}.ext`);
    const lines = [`basicConstraints=critical,CA:${opts.caTrue ? 'TRUE' : 'FALSE'}`];
    const ku = opts.keyUsage ?? 'critical,digitalSignature';
    if (ku) lines.push(`keyUsage=${ku}`);
    lines.push('extendedKeyUsage=clientAuth', 'subjectKeyIdentifier=hash', 'authorityKeyIdentifier=keyid');
    await writeFile(ext, lines.join('\n') + '\n');
    args.push('-extfile', ext);
  }
  await openssl(args);
  return finish(dir, name, base, keyPath);
}

export type KeyFormat = 'pkcs1' | 'pkcs8' | 'sec1' | 'pkcs8-encrypted' | 'pkcs1-encrypted' | 'der';

/** Re-encodes a key in another format; returns the new file's path. */
export async function convertKey(keyPath: string, format: KeyFormat, password?: string): Promise<string> {
  const out = `${keyPath}.${format}`;
  switch (format) {
    case 'pkcs8':
      await openssl(['pkcs8', '-topk8', '-nocrypt', '-in', keyPath, '-out', out]);
      break;
    case 'pkcs8-encrypted':
      await openssl(['pkcs8', '-topk8', '-v2', 'aes-256-cbc', '-in', keyPath, '-passout', `pass:${password ?? ''}`, '-out', out]);
      break;
    case 'pkcs1':
      await openssl(['rsa', '-in', keyPath, '-traditional', '-out', out]);
      break;
    case 'pkcs1-encrypted':
      await openssl(['rsa', '-in', keyPath, '-traditional', '-aes256', '-passout', `pass:${password ?? ''}`, '-out', out]);
      break;
    case 'sec1':
      await openssl(['ec', '-in', keyPath, '-out', out]);
      break;
    case 'der':
      await openssl(['pkey', '-in', keyPath, '-outform', 'DER', '-out', out]);
      break;
  }
  return out;
}

export type PfxEncoding = 'legacy-3des' | 'aes256' | 'rc2-40';

/** A PKCS#12 bundle with key, leaf and chain. */
export async function makePfx(leaf: CertFiles, chain: CertFiles[], encoding: PfxEncoding, password: string): Promise<string> {
  const out = join(leaf.dir, `${slug(leaf.name)}.${encoding}.pfx`);
  const args = ['pkcs12', '-export', '-inkey', leaf.keyPath, '-in', leaf.certPath, '-passout', `pass:${password}`, '-out', out];
  if (chain.length > 0) {
    const bundle = `${out}.chain.pem`;
    await writeFile(bundle, chain.map((c) => c.certPem).join(''));
    args.push('-certfile', bundle);
  }
  if (encoding === 'legacy-3des') args.push('-certpbe', 'PBE-SHA1-3DES', '-keypbe', 'PBE-SHA1-3DES', '-macalg', 'sha1');
  else if (encoding === 'aes256') args.push('-certpbe', 'AES-256-CBC', '-keypbe', 'AES-256-CBC', '-macalg', 'sha256');
  else args.push('-legacy');
  await openssl(args);
  return out;
}

/** A root CA, an intermediate under it, and a leaf under the intermediate. */
export async function makeChain(dir: string, leafKey: KeyType = 'p256'): Promise<{ root: CertFiles; intermediate: CertFiles; leaf: CertFiles }> {
  const root = await makeCA(dir, 'Test Root CA');
  const intermediate = await makeCA(dir, 'Test Intermediate CA', { issuer: root });
  const leaf = await makeLeaf(dir, intermediate, 'chained-client', { keyType: leafKey });
  return { root, intermediate, leaf };
}
