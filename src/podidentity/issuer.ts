// A cluster's service-account issuer, without a cluster: a signing key, its
// JWKS, and projected service-account tokens shaped like the ones kubelet
// mounts (claims as kube-apiserver 1.30+ writes them), signed with `jose`.
// For trying pod identity on one machine (`pki pod-token`, `npm run demo --
// --pod-identity`); the daemon trusts it through `podIdentity.jwks.file`.
//
// DIR/sa.key                     signing key (PKCS#8 PEM, 0600; kubeadm's name)
// DIR/jwks.json                  its public key, as /openid/v1/jwks serves it
// DIR/openid-configuration.json  the discovery document (/.well-known/openid-configuration): the issuer
// DIR/pod-identity.yaml          the daemon's podIdentity settings that trust this issuer
import { createHash, createPrivateKey, createPublicKey, generateKeyPair, randomUUID, type KeyObject } from 'node:crypto';
import { hostname } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { calculateJwkThumbprint, exportJWK, SignJWT } from 'jose';
import { UserError } from '../errors.js';
import { readAtMost, readInputFile } from '../identity/files.js';
import { checkTargets, writeOutputs } from '../pki/ca.js';
import { parseJwks } from './jwks.js';

/** kube-apiserver's issuer on most distributions (`--service-account-issuer`). */
export const DEFAULT_POD_ISSUER = 'https://kubernetes.default.svc.cluster.local';
/** The audience the README's pod volumes ask for. */
export const DEFAULT_POD_AUDIENCE = 'rolesanywhere-credentiald';
/** kubelet's default `expirationSeconds`; the API refuses less than 600. */
export const DEFAULT_TOKEN_SECONDS = 3600;
export const MIN_TOKEN_SECONDS = 600;
export const MAX_TOKEN_SECONDS = 7 * 86_400;

export type IssuerKeyType = 'rsa' | 'ec';

export interface PodIssuer {
  dir: string;
  issuer: string;
  audience: string;
  alg: 'RS256' | 'ES256';
  kid: string;
  privateKey: KeyObject;
  paths: { key: string; jwks: string; discovery: string; config: string };
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

export function issuerPaths(dir: string): PodIssuer['paths'] {
  return { key: join(dir, 'sa.key'), jwks: join(dir, 'jwks.json'), discovery: join(dir, 'openid-configuration.json'), config: join(dir, 'pod-identity.yaml') };
}

function checkIssuerUrl(issuer: string): string {
  let url: URL;
  try {
    url = new URL(issuer);
  } catch {
    throw new UserError(`--issuer "${issuer}" is not a URL; give the cluster's --service-account-issuer, e.g. ${DEFAULT_POD_ISSUER}`);
  }
  if (url.protocol !== 'https:' || url.username || url.password || url.search || url.hash) {
    throw new UserError(`--issuer "${issuer}" must be an https URL without credentials, query or fragment (an OIDC issuer), e.g. ${DEFAULT_POD_ISSUER}`);
  }
  return issuer;
}

/** The podIdentity settings (without bindings) that make the daemon trust this issuer. */
export function podIdentityYaml(i: Pick<PodIssuer, 'issuer' | 'audience' | 'paths'>): string {
  return [
    `# The daemon's podIdentity settings for the test issuer in ${dirname(i.paths.jwks)}`,
    '# (add listen and bindings; see docs/homes.md, "Kubernetes node agent").',
    'podIdentity:',
    `  issuer: ${i.issuer}`,
    `  audiences: [${i.audience}]`,
    `  jwks: { file: ${JSON.stringify(i.paths.jwks)} }`,
    '',
  ].join('\n');
}

/** Creates a new issuer in `dir` (refusing to replace one unless `force`). */
export async function createPodIssuer(opts: { dir: string; issuer?: string; keyType?: IssuerKeyType; force?: boolean }): Promise<PodIssuer> {
  const dir = resolve(opts.dir);
  const paths = issuerPaths(dir);
  const issuer = checkIssuerUrl(opts.issuer ?? DEFAULT_POD_ISSUER);
  const audience = DEFAULT_POD_AUDIENCE;
  await checkTargets(dir, Object.values(paths), opts.force ?? false);
  const ec = opts.keyType === 'ec';
  const { privateKey, publicKey } = ec
    ? await promisify(generateKeyPair)('ec', { namedCurve: 'P-256' })
    : await promisify(generateKeyPair)('rsa', { modulusLength: 2048, publicExponent: 0x10001 });
  const alg = ec ? 'ES256' : 'RS256';
  const jwk = await exportJWK(publicKey);
  const kid = await calculateJwkThumbprint(jwk);
  const discovery = {
    issuer,
    jwks_uri: `${issuer.replace(/\/$/, '')}/openid/v1/jwks`,
    response_types_supported: ['id_token'],
    subject_types_supported: ['public'],
    id_token_signing_alg_values_supported: [alg],
  };
  const result: PodIssuer = { dir, issuer, audience, alg, kid, privateKey, paths };
  await writeOutputs(dir, [
    { path: paths.key, content: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), mode: 0o600 },
    { path: paths.jwks, content: `${JSON.stringify({ keys: [{ use: 'sig', kty: jwk.kty, kid, alg, ...jwk }] }, null, 2)}\n`, mode: 0o644 },
    { path: paths.discovery, content: `${JSON.stringify(discovery, null, 2)}\n`, mode: 0o644 },
    { path: paths.config, content: podIdentityYaml(result), mode: 0o644 },
  ]);
  return result;
}

/** Reads an issuer `createPodIssuer` made; undefined when `dir` holds none. */
export async function loadPodIssuer(dirArg: string): Promise<PodIssuer | undefined> {
  const dir = resolve(dirArg);
  const paths = issuerPaths(dir);
  let keyPem: Buffer;
  try {
    keyPem = await readInputFile(paths.key, 'private key', { maxBytes: 64 * 1024 });
  } catch (err) {
    if ((err as UserError).reason === 'file_not_found') return undefined;
    throw err;
  }
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(keyPem);
  } catch {
    throw new UserError(`${paths.key} is not a PEM private key; make the issuer again with --force`);
  }
  if (privateKey.asymmetricKeyType !== 'rsa' && privateKey.asymmetricKeyType !== 'ec') throw new UserError(`${paths.key} is not an RSA or EC key; make the issuer again with --force`);
  const jwks = parseJwks((await readInputFile(paths.jwks, 'JWKS', { maxBytes: 256 * 1024 })).toString('utf8'), paths.jwks);
  let discovery: { issuer?: unknown };
  try {
    discovery = JSON.parse((await readAtMost(paths.discovery, 64 * 1024, () => new Error('too large'))).toString('utf8'));
  } catch {
    throw new UserError(`${paths.discovery} is missing or not JSON; make the issuer again with --force`);
  }
  const issuer = checkIssuerUrl(String(discovery.issuer ?? ''));
  const audience = DEFAULT_POD_AUDIENCE;
  const publicJwk = await exportJWK(createPublicKey(privateKey));
  const kid = await calculateJwkThumbprint(publicJwk);
  const published = jwks.keys.find((k) => k.kid === kid);
  if (!published) throw new UserError(`${paths.jwks} does not hold the public key of ${paths.key} (kid ${kid}); make the issuer again with --force`);
  const alg = privateKey.asymmetricKeyType === 'ec' ? 'ES256' : 'RS256';
  return { dir, issuer, audience, alg, kid, privateKey, paths };
}

function checkAudience(audience: string): string {
  if (audience.trim() === '' || audience.length > 253 || /[\s,]/.test(audience)) {
    throw new UserError(`--audience "${audience}" must be one non-empty word (the projected volume's audience), e.g. ${DEFAULT_POD_AUDIENCE}`);
  }
  return audience;
}

export interface MintOptions {
  namespace: string;
  serviceAccount: string;
  /** Default `<serviceAccount>-0`. */
  podName?: string;
  /** Default the issuer's. */
  audience?: string;
  expirationSeconds?: number;
  now?: Date;
}

/** A stable UUID-shaped id for an object of this issuer (the same service account always has the same uid). */
function stableUid(issuer: PodIssuer, ...parts: string[]): string {
  const h = createHash('sha256').update([issuer.kid, ...parts].join('\0')).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-${((parseInt(h[16]!, 16) & 3) | 8).toString(16)}${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

/** Checks a namespace / service account / pod name as Kubernetes would. */
export function checkPodNames(o: { namespace: string; serviceAccount: string; podName?: string }): void {
  if (!(o.namespace.length <= 63 && DNS_LABEL.test(o.namespace))) throw new UserError(`--namespace "${o.namespace}" is not a Kubernetes namespace name (lowercase letters, digits and -, up to 63)`);
  if (!DNS_SUBDOMAIN.test(o.serviceAccount)) throw new UserError(`--service-account "${o.serviceAccount}" is not a service account name (lowercase letters, digits, - and ., up to 253)`);
  if (o.podName !== undefined && !DNS_SUBDOMAIN.test(o.podName)) throw new UserError(`--pod "${o.podName}" is not a pod name (lowercase letters, digits, - and ., up to 253)`);
}

/**
 * Mints a token as kubelet's projected service-account volume would hold it:
 * iss, sub system:serviceaccount:NS:SA, aud [audience], exp/iat/nbf, jti, and
 * kubernetes.io {namespace, node, pod, serviceaccount} (kube-apiserver 1.30+).
 */
export async function mintPodToken(issuer: PodIssuer, o: MintOptions): Promise<{ token: string; claims: Record<string, unknown>; expiresAt: Date }> {
  checkPodNames(o);
  const seconds = o.expirationSeconds ?? DEFAULT_TOKEN_SECONDS;
  if (!Number.isInteger(seconds) || seconds < MIN_TOKEN_SECONDS || seconds > MAX_TOKEN_SECONDS) {
    throw new UserError(`--expiration-seconds must be whole seconds from ${MIN_TOKEN_SECONDS} (the Kubernetes minimum) to ${MAX_TOKEN_SECONDS}, not ${seconds}`);
  }
  const audience = checkAudience(o.audience ?? issuer.audience);
  const podName = o.podName ?? `${o.serviceAccount}-0`.slice(0, 253);
  const now = Math.floor((o.now ?? new Date()).getTime() / 1000);
  const node = hostname().toLowerCase() || 'node';
  const claims = {
    aud: [audience],
    exp: now + seconds,
    iat: now,
    iss: issuer.issuer,
    jti: randomUUID(),
    'kubernetes.io': {
      namespace: o.namespace,
      node: { name: node, uid: stableUid(issuer, 'node', node) },
      pod: { name: podName, uid: stableUid(issuer, 'pod', o.namespace, podName) },
      serviceaccount: { name: o.serviceAccount, uid: stableUid(issuer, 'serviceaccount', o.namespace, o.serviceAccount) },
    },
    nbf: now,
    sub: `system:serviceaccount:${o.namespace}:${o.serviceAccount}`,
  };
  const token = await new SignJWT(claims).setProtectedHeader({ alg: issuer.alg, kid: issuer.kid }).sign(issuer.privateKey);
  return { token, claims, expiresAt: new Date((now + seconds) * 1000) };
}

/** Writes a token file as kubelet does: the JWT, no trailing newline, replaced atomically (0600 here). */
export async function writeTokenFile(path: string, token: string): Promise<string> {
  const file = resolve(path);
  await writeOutputs(dirname(file), [{ path: file, content: token, mode: 0o600 }]);
  return file;
}
