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
    res.writeHead(200, { 'content-type': 'application/jwk-set+json' }).end(JSON.stringify(cluster.jwks()));
  };
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
    server.closeAllConnections();
    return state.close();
  });
  return state;
}
