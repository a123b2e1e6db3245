// Test helper: a "cluster" that is only a pair of signing keys, minting
// projected service-account tokens the way kube-apiserver does (iss, aud, exp,
// nbf, iat, sub, kubernetes.io claims) and publishing its JWKS as a file and
// over HTTP(S).
//
//   const cluster = await makeCluster(dir);          // RSA (kid rsa-1, RS256) + P-256 (kid ec-1, ES256)
//   cluster.jwksFile                                  // JWKS file with both public keys
//   await cluster.mint({ namespace: 'shop', serviceAccount: 'checkout' })   // RS256 token
//   await cluster.mint({ ..., key: 'ec' })            // ES256 token
//   const srv = await serveJwks(t, cluster, { tls: true, bearer: 'abc' })  // https://127.0.0.1:PORT/openid/v1/jwks
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { randomUUID } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';
import { openssl } from './pki.js';

export const ISSUER = 'https://kubernetes.default.svc.cluster.local';
export const AUDIENCE = 'rolesanywhere-credentiald';

/** A profile for pod-identity configs that are only loaded, never served (its files need not exist). */
export const STUB_PROFILE = {
  certificate: 'c.pem',
  privateKey: 'k.pem',
  trustAnchorArn: 'arn:aws:rolesanywhere:us-east-1:111122223333:trust-anchor/0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d',
  profileArn: 'arn:aws:rolesanywhere:us-east-1:111122223333:profile/1b2c3d4e-5f6a-4b7c-8d9e-0f1a2b3c4d5e',
  roleArn: 'arn:aws:iam::111122223333:role/app',
};

export interface SigningKey {
  kid: string;
  alg: 'RS256' | 'ES256';
  privateKey: CryptoKey;
  jwk: JWK;
}

export async function makeKey(kid: string, alg: 'RS256' | 'ES256'): Promise<SigningKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const jwk = { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' };
  return { kid, alg, privateKey, jwk };
}

export interface MintOptions {
  namespace: string;
  serviceAccount: string;
  podName?: string;
  podUid?: string;
  /** 'rsa' (default), 'ec', or another key (not in the JWKS: "wrong key"). */
  key?: 'rsa' | 'ec' | SigningKey;
  /** Claim this kid instead of the key's own. */
  kid?: string;
  issuer?: string;
  audience?: string | string[];
  /** Seconds from now (default 3600; negative = expired). */
  expiresIn?: number;
  /** Seconds from now for nbf (default -5). */
  notBefore?: number;
  /** Leave the kubernetes.io pod binding out. */
  noPod?: boolean;
}

export interface Cluster {
  rsa: SigningKey;
  ec: SigningKey;
  /** Keys published in the JWKS (default rsa + ec). */
  published: SigningKey[];
  jwksFile: string;
  jwks(): { keys: JWK[] };
  /** Rewrites jwksFile with `published`. */
  writeJwks(): Promise<void>;
  mint(opts: MintOptions): Promise<string>;
}

export async function makeCluster(dir: string): Promise<Cluster> {
  const rsa = await makeKey('rsa-1', 'RS256');
  const ec = await makeKey('ec-1', 'ES256');
  const jwksFile = join(dir, 'jwks.json');
  const cluster: Cluster = {
    rsa,
    ec,
    published: [rsa, ec],
    jwksFile,
    jwks: () => ({ keys: cluster.published.map((k) => k.jwk) }),
    writeJwks: () => writeFile(jwksFile, JSON.stringify(cluster.jwks())),
    async mint(o) {
      const key = o.key === undefined || o.key === 'rsa' ? rsa : o.key === 'ec' ? ec : o.key;
      const now = Math.floor(Date.now() / 1000);
      const podName = o.podName ?? `${o.serviceAccount}-pod`;
      const claims: Record<string, unknown> = {
        'kubernetes.io': {
          namespace: o.namespace,
          serviceaccount: { name: o.serviceAccount, uid: randomUUID() },
          ...(o.noPod ? {} : { pod: { name: podName, uid: o.podUid ?? randomUUID() } }),
        },
      };
      return new SignJWT(claims)
        .setProtectedHeader({ alg: key.alg, kid: o.kid ?? key.kid })
        .setIssuer(o.issuer ?? ISSUER)
        .setAudience(o.audience ?? AUDIENCE)
        .setSubject(`system:serviceaccount:${o.namespace}:${o.serviceAccount}`)
        .setIssuedAt(now)
        .setNotBefore(now + (o.notBefore ?? -5))
        .setExpirationTime(now + (o.expiresIn ?? 3600))
        .sign(key.privateKey);
    },
  };
  await cluster.writeJwks();
  return cluster;
}

/** base64url JSON. */
const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');

/** The token with `alg: none` and no signature, same claims. */
export function algNone(token: string): string {
  const [, payload] = token.split('.');
  return `${b64({ alg: 'none', typ: 'JWT' })}.${payload}.`;
}

/** The token with one claim changed and the original signature kept. */
export function tampered(token: string, change: (claims: Record<string, any>) => void): string {
  const [header, payload, sig] = token.split('.');
  const claims = JSON.parse(Buffer.from(payload!, 'base64url').toString('utf8'));
  change(claims);
  return `${header}.${b64(claims)}.${sig}`;
}

export interface JwksServer {
  url: string;
  /** Requests served (all, including refused ones). */
  hits: number;
  /**
   * While set, a JWKS request gets 200 and then one byte of body every this many
   * ms, never the end (a server stuck mid-answer that no idle timeout catches).
   */
  dripMs?: number;
  caFile?: string;
  close(): Promise<void>;
}

/** Serves the cluster's current JWKS at /openid/v1/jwks on 127.0.0.1 (https with its own CA when `tls`; bearer check when `bearer`). */
export async function serveJwks(t: { teardown(fn: () => unknown): void }, cluster: Cluster, opts: { dir?: string; tls?: boolean; bearer?: () => string } = {}): Promise<JwksServer> {
  const state: JwksServer = { url: '', hits: 0, close: async () => undefined };
  const handler = (req: IncomingMessage, res: ServerResponse) => {
    state.hits++;
    if (req.url !== '/openid/v1/jwks') {
      res.writeHead(404).end();
      return;
    }
    if (opts.bearer && req.headers.authorization !== `Bearer ${opts.bearer()}`) {
      res.writeHead(401, { 'content-type': 'application/json' }).end('{"kind":"Status","code":401}');
      return;
    }
    if (state.dripMs !== undefined) {
      res.writeHead(200, { 'content-type': 'application/jwk-set+json' });
      const timer = setInterval(() => res.write(' '), state.dripMs);
      drips.add(timer);
      res.on('close', () => {
        clearInterval(timer);
        drips.delete(timer);
      });
      res.write('{');
      return;
    }
    res.writeHead(200, { 'content-type': 'application/jwk-set+json' }).end(JSON.stringify(cluster.jwks()));
  };
  const drips = new Set<NodeJS.Timeout>();
  let server;
  if (opts.tls) {
    const dir = opts.dir!;
    const key = join(dir, 'apiserver.key');
    const cert = join(dir, 'apiserver.pem');
    await openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1']);
    server = createHttpsServer({ key: await readFile(key), cert: await readFile(cert) }, handler);
    state.caFile = cert;
  } else server = createHttpServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  state.url = `${opts.tls ? 'https' : 'http'}://127.0.0.1:${port}/openid/v1/jwks`;
  state.close = () => new Promise<void>((resolve) => server.close(() => resolve()));
  t.teardown(() => {
    for (const d of drips) clearInterval(d);
    server.closeAllConnections();
    return state.close();
  });
  return state;
}

// ---- kubelet's volumes and a container started the way a runtime starts it ----
//
//   await emptyDir(dir, { fsGroup: 1000, memory: true })   // tmpfs 1777 → 3777 root:1000, unmounted at teardown
//   await atomicWriter(dir, { 'tls.crt': pem }, { defaultMode: 0o440, fsGroup: 1000 })   // ..2026_…/, ..data →, tls.crt → ..data/tls.crt
//   await atomicUpdate(dir, { 'tls.crt': renewed }, …)                                   // ..data swapped by a rename, the old directory removed
//   containerScript({ uid, gid, groups, readOnlyRoot, caps, mounts, command })   // for `unshare -m … sh -ec`
import { chmod, chown, mkdir, readlink, rename, rm, symlink, writeFile as writeFileP } from 'node:fs/promises';
import { existsSync, realpathSync } from 'node:fs';
import { dirname, sep } from 'node:path';
import { run } from './netns.js';

/**
 * An emptyDir as kubelet makes it: 0777 root:root; a memory-backed one is a
 * tmpfs (1777); with fsGroup G the volume ownership step sets group G, adds
 * group rw and setgid (2777, or 3777 on the sticky tmpfs).
 */
export async function emptyDir(t: { teardown(fn: () => unknown): void }, dir: string, o: { fsGroup?: number; memory?: boolean } = {}): Promise<string> {
  await mkdir(dir, { recursive: true });
  if (o.memory) {
    await run('mount', ['-t', 'tmpfs', '-o', 'size=16m', 'tmpfs', dir]); // tmpfs's own mode: 1777 root:root
    t.teardown(() => run('umount', ['-l', dir]).catch(() => undefined));
  } else {
    await chmod(dir, 0o777);
  }
  await chown(dir, 0, o.fsGroup ?? 0);
  const mode = (o.memory ? 0o1777 : 0o777) | (o.fsGroup !== undefined ? 0o2000 : 0);
  await chmod(dir, mode); // after chown, which clears setgid
  return dir;
}

/**
 * A Secret/ConfigMap/projected volume as kubelet's atomic writer leaves it: the
 * files in a timestamped directory, `..data` → it, one symlink per key; files
 * of mode defaultMode (0644 unless given) owned by root, group fsGroup (which
 * then may read them: kubelet adds 0440 on read-only volumes).
 */
export async function atomicWriter(dir: string, files: Record<string, string>, o: { defaultMode?: number; fsGroup?: number } = {}): Promise<string> {
  await mkdir(dir, { recursive: true });
  const stamp = await writeStamped(dir, files, o);
  for (const key of Object.keys(files)) await symlink(`..data/${key}`, join(dir, key));
  await symlink(stamp, join(dir, '..data'));
  await chown(dir, 0, o.fsGroup ?? 0);
  await chmod(dir, 0o1777 | (o.fsGroup !== undefined ? 0o2000 : 0)); // the wrapped tmpfs emptyDir kubelet writes into
  return dir;
}

/** An update as the atomic writer makes it (same keys): a new timestamped directory, `..data_tmp` renamed over `..data`, the old directory removed. */
export async function atomicUpdate(dir: string, files: Record<string, string>, o: { defaultMode?: number; fsGroup?: number } = {}): Promise<void> {
  const old = await readlink(join(dir, '..data'));
  const stamp = await writeStamped(dir, files, o);
  await symlink(stamp, join(dir, '..data_tmp'));
  await rename(join(dir, '..data_tmp'), join(dir, '..data'));
  await rm(join(dir, old), { recursive: true });
}

let stamps = 0;
async function writeStamped(dir: string, files: Record<string, string>, o: { defaultMode?: number; fsGroup?: number }): Promise<string> {
  const ns = String(++stamps).padStart(9, '0');
  const stamp = `..${new Date().toISOString().replace(/[-:]/g, '_').replace('T', '_').replace(/\.\d+Z$/, `.${ns}`)}`;
  await mkdir(join(dir, stamp), { mode: 0o755 });
  for (const [key, text] of Object.entries(files)) {
    const p = join(dir, stamp, key);
    await writeFileP(p, text);
    await chown(p, 0, o.fsGroup ?? 0);
    await chmod(p, (o.defaultMode ?? 0o644) | (o.fsGroup !== undefined ? 0o440 : 0));
  }
  return stamp;
}

export interface ContainerSpec {
  uid: number;
  gid: number;
  /** Supplementary groups (the pod's fsGroup). */
  groups: number[];
  /** securityContext.readOnlyRootFilesystem */
  readOnlyRoot: boolean;
  /** Capabilities kept (securityContext.capabilities after drop ALL), e.g. ['net_bind_service']. */
  caps: string[];
  mounts: { path: string; source: string; readOnly?: boolean }[];
  /** Lines appended to files of the container's own root (e.g. /etc/hosts), before it becomes read-only. */
  append?: Record<string, string>;
  command: string[];
}

const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/**
 * The shell script that turns `unshare -m --propagation private sh -ec SCRIPT`
 * into the container: where a mount path does not exist on this machine, its
 * deepest existing parent gets a throw-away overlay (so nothing is created on
 * the host); every volume is bind-mounted (read-only ones remounted ro); the
 * root and those overlays become read-only with readOnlyRootFilesystem; then
 * setpriv runs the command as uid:gid with the groups, no_new_privs
 * (allowPrivilegeEscalation: false) and only the kept capabilities.
 */
export function containerScript(c: ContainerSpec, scratch: string): string {
  const lines: string[] = [];
  const overlays: string[] = [];
  const needed = [...c.mounts.map((m) => m.path), ...Object.keys(c.append ?? {})];
  for (const path of needed) {
    let p = path;
    while (!existsSync(p)) p = dirname(p);
    if (p === path && !Object.keys(c.append ?? {}).includes(path)) continue;
    const real = realpathSync(Object.keys(c.append ?? {}).includes(path) ? dirname(path) : p);
    if (real === sep) throw new Error(`${path}: no parent to overlay`);
    if (!overlays.some((o) => real === o || real.startsWith(o + sep))) overlays.push(real);
  }
  overlays.forEach((o, i) => {
    const base = join(scratch, `overlay-${i}`);
    lines.push(`mkdir -p ${q(base)}`, `mount -t tmpfs tmpfs ${q(base)}`, `mkdir ${q(base + '/u')} ${q(base + '/w')}`);
    lines.push(`mount -t overlay overlay -o lowerdir=${o},upperdir=${base}/u,workdir=${base}/w ${q(o)}`);
  });
  for (const [file, text] of Object.entries(c.append ?? {})) lines.push(`printf '%s\\n' ${q(text)} >> ${q(file)}`);
  for (const m of c.mounts) {
    lines.push(`mkdir -p ${q(m.path)}`, `mount --bind ${q(m.source)} ${q(m.path)}`);
    if (m.readOnly) lines.push(`mount -o remount,bind,ro ${q(m.path)}`);
  }
  if (c.readOnlyRoot) for (const p of ['/', ...overlays]) lines.push(`mount -o remount,bind,ro ${q(p)}`);
  const caps = c.caps.length ? `-all,${c.caps.map((x) => `+${x}`).join(',')}` : '-all';
  const groups = c.groups.length ? `--groups=${c.groups.join(',')}` : '--clear-groups';
  const ambient = c.uid === 0 ? [] : ['--inh-caps=-all', '--ambient-caps=-all'];
  lines.push(
    ['exec', 'setpriv', `--reuid=${c.uid}`, `--regid=${c.gid}`, groups, '--no-new-privs', `--bounding-set=${caps}`, ...ambient, '--', ...c.command].map((a, i) => (i < 2 ? a : q(a))).join(' '),
  );
  return lines.join('\n');
}
