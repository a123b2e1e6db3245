// Test helper: a local Roles Anywhere + STS emulator with a fresh CA and leaf.
//
//   import { startTestEmulator, callCreateSession } from '../helpers/emulator.js';
//
//   const env = await startTestEmulator(t);               // CA + P-256 leaf, strict ARNs, us-east-1, quiet
//   env.emulator.url                                        // http://127.0.0.1:PORT (use as the Roles Anywhere endpoint AND the STS endpoint)
//   env.identitySource                                      // { certificate, privateKey } paths for loadIdentity / the CLI
//   env.arns                                                // { trustAnchorArn, profileArn, roleArn } the emulator accepts
//   env.region                                              // 'us-east-1'
//   env.emulator.stats.createSession.ok                     // counters; env.emulator.stats.calls = per-call log
//   env.emulator.issued                                     // credentials it issued (secrets! compare fields, don't print)
//   env.emulator.setFaults([{ kind: 'status', status: 503, times: 2 }]); env.emulator.clearFaults();
//   env.emulator.setCredentialLifetime(20);                 // cap issued lifetimes (seconds)
//   await issueCredentials(env)                             // one CreateSession → {accessKeyId, secretAccessKey, sessionToken, expiration}
//   await callCreateSession(env.url, identity, { arns })    // sign with our signer + send; → {status, errorType, json, text}
//   await rawIdentity(certPath, keyPath)                    // Identity WITHOUT loader checks (for expired / CA:TRUE fixtures)
//
// Options: { dir?, keyType? ('p256' default, 'rsa2048', ...), lifetime? (seconds cap, default 3600),
//   chain? (leaf issued by an intermediate; identitySource.intermediates is set), strictArns? (default true),
//   plus any EmulatorOptions (region, maxSkewSeconds, quiet, ...) }.
// The emulator is closed by t.teardown. Fault rules: see src/emulator/faults.ts.
// HTTP control for out-of-process use: see the top of src/emulator/server.ts.
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { startEmulator, type Emulator, type EmulatorOptions } from '../../src/emulator/server.js';
import type { IdentitySource, Identity } from '../../src/identity/types.js';
import { loadIdentity } from '../../src/identity/load.js';
import { signX509Request } from '../../src/signing/sigv4-x509.js';
import { fileSigner } from '../../src/identity/signers/file.js';
import { makeCA, makeLeaf, tempDir, type CertFiles, type KeyType } from './pki.js';

export const DEFAULT_REGION = 'us-east-1';
export const DEFAULT_ACCOUNT = '123456789012';
export const DEFAULT_ARNS = {
  trustAnchorArn: `arn:aws:rolesanywhere:${DEFAULT_REGION}:${DEFAULT_ACCOUNT}:trust-anchor/0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d`,
  profileArn: `arn:aws:rolesanywhere:${DEFAULT_REGION}:${DEFAULT_ACCOUNT}:profile/5e6f7a8b-9c0d-4e1f-a2b3-c4d5e6f7a8b9`,
  roleArn: `arn:aws:iam::${DEFAULT_ACCOUNT}:role/rolesanywhere-test-role`,
};

export interface Arns {
  trustAnchorArn: string;
  profileArn: string;
  roleArn: string;
}

/** Anything with tap's teardown. */
export interface Teardownable {
  teardown(fn: () => unknown): void;
}

export interface TestEmulatorOptions extends Partial<EmulatorOptions> {
  dir?: string;
  keyType?: KeyType;
  /** Cap on issued credential lifetimes, seconds (default 3600). */
  lifetime?: number;
  /** Issue the leaf from an intermediate CA (sets identitySource.intermediates). */
  chain?: boolean;
  /** Restrict the emulator to `arns` (default true). */
  strictArns?: boolean;
  arns?: Partial<Arns>;
  leafName?: string;
}

export interface TestEmulator {
  emulator: Emulator;
  url: string;
  dir: string;
  ca: CertFiles;
  intermediate?: CertFiles;
  leaf: CertFiles;
  identitySource: IdentitySource;
  arns: Arns;
  region: string;
  accountId: string;
  /** loadIdentity(identitySource). */
  loadIdentity(): Promise<Identity>;
}

/** The YAML lines of a config profile that uses the emulator's leaf, ARNs and URL (indented under `profiles:`). */
export function emulatorProfileYaml(emu: Pick<TestEmulator, 'leaf' | 'arns' | 'url'>, name = 'app'): string[] {
  return [
    `  ${name}:`,
    `    certificate: ${emu.leaf.certPath}`,
    `    privateKey: ${emu.leaf.keyPath}`,
    `    trustAnchorArn: ${emu.arns.trustAnchorArn}`,
    `    profileArn: ${emu.arns.profileArn}`,
    `    roleArn: ${emu.arns.roleArn}`,
    `    endpoint: ${emu.url}`,
  ];
}

export async function startTestEmulator(t: Teardownable, opts: TestEmulatorOptions = {}): Promise<TestEmulator> {
  const dir = opts.dir ?? (await tempDir('ra-emu-'));
  const ca = await makeCA(dir, 'Emulator Test Root CA');
  let intermediate: CertFiles | undefined;
  let issuer = ca;
  if (opts.chain) {
    intermediate = await makeCA(dir, 'Emulator Test Intermediate CA', { issuer: ca });
    issuer = intermediate;
  }
  const leaf = await makeLeaf(dir, issuer, opts.leafName ?? 'emulator-test-client', { keyType: opts.keyType ?? 'p256' });
  const region = opts.region ?? DEFAULT_REGION;
  const arns: Arns = { ...DEFAULT_ARNS, ...opts.arns };
  if (region !== DEFAULT_REGION && !opts.arns) {
    arns.trustAnchorArn = arns.trustAnchorArn.replace(`:${DEFAULT_REGION}:`, `:${region}:`);
    arns.profileArn = arns.profileArn.replace(`:${DEFAULT_REGION}:`, `:${region}:`);
  }
  const strict = opts.strictArns ?? true;
  const { dir: _d, keyType: _k, lifetime, chain: _c, strictArns: _s, arns: _a, leafName: _l, ...emuOpts } = opts;
  const emulator = await startEmulator({
    trustAnchorCaPems: [ca.certPem],
    credentialLifetimeSeconds: lifetime ?? 3600,
    region,
    quiet: true,
    ...(strict ? { trustAnchorArns: [arns.trustAnchorArn], profileArns: [arns.profileArn], roleArns: [arns.roleArn] } : {}),
    ...emuOpts,
  });
  t.teardown(() => emulator.close());
  const identitySource: IdentitySource = { certificate: leaf.certPath, privateKey: leaf.keyPath };
  if (intermediate) identitySource.intermediates = intermediate.certPath;
  return {
    emulator,
    url: emulator.url,
    dir,
    ca,
    intermediate,
    leaf,
    identitySource,
    arns,
    region,
    accountId: DEFAULT_ACCOUNT,
    loadIdentity: () => loadIdentity(identitySource),
  };
}

export interface CallOptions {
  arns: Arns;
  region?: string;
  durationSeconds?: number;
  roleSessionName?: string;
  /** Signing time (default now). */
  date?: Date;
  /** Put the ARNs in the query string instead of the body. */
  arnsInQuery?: boolean;
  /** Change the signed headers before sending (tampering tests). */
  mutate?: (headers: Record<string, string>) => void;
  /** Send this body instead of the signed one (tampering tests). */
  sendBody?: string;
}

export interface CallResult {
  status: number;
  /** X-Amzn-ErrorType header, if any. */
  errorType?: string;
  /** Parsed JSON body (undefined if not JSON). */
  json?: any;
  text: string;
}

/** Signs a CreateSession request with `identity` (our signer) and sends it to the emulator. */
export async function callCreateSession(url: string, identity: Identity, opts: CallOptions): Promise<CallResult> {
  const u = new URL(url);
  const region = opts.region ?? DEFAULT_REGION;
  let path = '/sessions';
  const bodyObj: Record<string, unknown> = {};
  if (opts.durationSeconds !== undefined) bodyObj.durationSeconds = opts.durationSeconds;
  if (opts.roleSessionName !== undefined) bodyObj.roleSessionName = opts.roleSessionName;
  if (opts.arnsInQuery) {
    path += '?' + new URLSearchParams({ ...opts.arns }).toString();
  } else Object.assign(bodyObj, opts.arns);
  const body = JSON.stringify(bodyObj);
  const headers = await signX509Request({ identity, region, host: u.host, path, body, date: opts.date });
  opts.mutate?.(headers);
  const { Host: _h, ...send } = headers;
  const res = await fetch(new URL(path, url), { method: 'POST', headers: send, body: opts.sendBody ?? body });
  const text = await res.text();
  let json: any;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, errorType: res.headers.get('x-amzn-errortype') ?? undefined, json, text };
}

/** Issues one set of credentials from the emulator (CreateSession with env's identity and ARNs). */
export async function issueCredentials(
  env: TestEmulator,
  opts: Partial<CallOptions> = {},
): Promise<{ accessKeyId: string; secretAccessKey: string; sessionToken: string; expiration: string }> {
  const r = await callCreateSession(env.url, await env.loadIdentity(), { arns: env.arns, region: env.region, ...opts });
  if (r.status !== 201) throw new Error(`CreateSession failed: ${r.status} ${r.errorType ?? ''} ${r.json?.message ?? ''}`);
  return r.json.credentialSet[0].credentials;
}

/**
 * Builds an Identity straight from PEM files WITHOUT the loader's rule checks,
 * for adversarial fixtures (expired, CA:TRUE leaf, ...) that loadIdentity rightly refuses.
 */
export async function rawIdentity(certPath: string, keyPath: string, intermediatesPath?: string): Promise<Identity> {
  const pem = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;
  const [leaf, ...rest] = ((await readFile(certPath, 'utf8')).match(pem) ?? []).map((b) => new X509Certificate(b));
  if (!leaf) throw new Error(`${certPath}: no certificate`);
  const chain = [...rest, ...(intermediatesPath ? ((await readFile(intermediatesPath, 'utf8')).match(pem) ?? []).map((b) => new X509Certificate(b)) : [])];
  const privateKey = createPrivateKey(await readFile(keyPath));
  return {
    certificate: leaf,
    certificateDer: leaf.raw,
    chain,
    signer: fileSigner(privateKey, keyPath),
    serialDecimal: BigInt('0x' + leaf.serialNumber).toString(10),
    source: { certificate: certPath, privateKey: keyPath, intermediates: intermediatesPath },
    warnings: [],
  };
}

/** Reads a file (convenience for tests that need the CA PEM). */
export const readText = (p: string) => readFile(p, 'utf8');
