// Where the cluster's service-account signing keys come from: a JWKS file
// (e.g. copied from `kubectl get --raw /openid/v1/jwks`) or the API server's
// JWKS URL (https, with the cluster CA and the agent's own bearer token, both
// re-read on every fetch so their rotation just works). Every read is
// size-capped before parsing; a key set that is not a JWKS is refused with a
// message naming the source.
import type { JSONWebKeySet } from 'jose';
import { UserError } from '../errors.js';
import { readInputFile } from '../identity/files.js';
import { httpRequest, makeAgent, TimeoutError, type HttpResponse } from '../rolesanywhere/transport.js';

/** Largest JWKS document accepted (file or HTTP body). */
export const MAX_JWKS_BYTES = 256 * 1024;
/** Most keys a JWKS may hold. */
export const MAX_JWKS_KEYS = 100;
/** Largest CA bundle / bearer token file read. */
const MAX_AUX_FILE_BYTES = 256 * 1024;
/** Deadline of one JWKS URL fetch, from connecting to the last byte of the body. */
export const JWKS_FETCH_TIMEOUT_MS = 5_000;

export type JwksConfig = { file: string } | { url: string; caFile?: string; tokenFile?: string };

/** Parses and checks a JWKS document; `where` names its source in messages. */
export function parseJwks(text: string, where: string): JSONWebKeySet {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    throw new UserError(`${where}: not JSON; expected a JWKS like {"keys":[{"kty":"RSA","kid":"…","n":"…","e":"AQAB"}]}`, { reason: 'jwks_invalid' });
  }
  const keys = (doc as { keys?: unknown } | null)?.keys;
  if (!doc || typeof doc !== 'object' || !Array.isArray(keys)) {
    throw new UserError(`${where}: not a JWKS: expected an object with a "keys" array`, { reason: 'jwks_invalid' });
  }
  if (keys.length === 0) throw new UserError(`${where}: the JWKS has no keys`, { reason: 'jwks_invalid' });
  if (keys.length > MAX_JWKS_KEYS) throw new UserError(`${where}: the JWKS has ${keys.length} keys, over the limit of ${MAX_JWKS_KEYS}`, { reason: 'jwks_invalid' });
  keys.forEach((k: unknown, i: number) => {
    if (!k || typeof k !== 'object' || typeof (k as { kty?: unknown }).kty !== 'string') {
      throw new UserError(`${where}: key ${i + 1} is not a JWK (no "kty")`, { reason: 'jwks_invalid' });
    }
    if ('d' in (k as object)) throw new UserError(`${where}: key ${i + 1} is a PRIVATE key; publish only the public keys (remove "d")`, { reason: 'jwks_invalid' });
  });
  return { keys: keys as JSONWebKeySet['keys'] };
}

/** Fetches the key set once from its configured source; `timeoutMs` bounds a URL fetch as a whole (tests shorten it). */
export async function fetchJwks(config: JwksConfig, { timeoutMs = JWKS_FETCH_TIMEOUT_MS }: { timeoutMs?: number } = {}): Promise<JSONWebKeySet> {
  if ('file' in config) {
    const data = await readInputFile(config.file, 'JWKS', { maxBytes: MAX_JWKS_BYTES });
    return parseJwks(data.toString('utf8'), config.file);
  }
  const url = new URL(config.url);
  const where = `${url.origin}${url.pathname}`;
  const headers: Record<string, string> = { accept: 'application/json' };
  if (config.tokenFile) {
    // The agent's own projected service-account token: re-read each time (kubelet rotates it).
    const token = (await readInputFile(config.tokenFile, 'bearer token', { maxBytes: MAX_AUX_FILE_BYTES })).toString('utf8').trim();
    if (!token) throw new UserError(`${config.tokenFile}: bearer token file is empty`, { reason: 'file_empty' });
    headers.authorization = `Bearer ${token}`;
  }
  const ca = config.caFile ? await readInputFile(config.caFile, 'CA certificate', { maxBytes: MAX_AUX_FILE_BYTES }) : undefined;
  let res: HttpResponse;
  try {
    // The cluster CA alone is trusted (Node's roots when none is given); never a proxy: the API server is in the cluster.
    const tls = { rejectUnauthorized: true, ...(ca ? { ca: [ca.toString('utf8')] } : {}) };
    const agent = await makeAgent(url, tls);
    try {
      res = await httpRequest(url, { method: 'GET', headers, body: '', agent, tls, connectTimeoutMs: timeoutMs, timeoutMs, maxBodyBytes: MAX_JWKS_BYTES });
    } finally {
      agent.destroy();
    }
  } catch (err) {
    if (err instanceof TimeoutError) throw new UserError(`${where}: no complete JWKS answer within ${timeoutMs} ms`, { reason: 'jwks_unreachable', cause: err });
    if ((err as NodeJS.ErrnoException).code === 'EBODYTOOLARGE') throw new UserError(`${where}: the JWKS answer is over ${MAX_JWKS_BYTES} bytes`, { reason: 'jwks_invalid' });
    const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    const tls = typeof code === 'string' && /CERT|SSL|TLS|SELF_SIGNED/i.test(code);
    throw new UserError(
      `${where}: cannot fetch the JWKS (${code})${tls ? '; check podIdentity.jwks.caFile (the cluster CA, e.g. /var/run/secrets/kubernetes.io/serviceaccount/ca.crt)' : ''}`,
      { reason: 'jwks_unreachable', cause: err },
    );
  }
  if (res.status === 401 || res.status === 403) {
    throw new UserError(
      `${where}: the API server answered ${res.status}; give podIdentity.jwks.tokenFile and bind the agent's service account to the system:service-account-issuer-discovery ClusterRole (deploy/kubernetes/rbac.yaml)`,
      { reason: 'jwks_denied' },
    );
  }
  if (res.status !== 200) throw new UserError(`${where}: the JWKS request answered HTTP ${res.status}`, { reason: 'jwks_unreachable' });
  return parseJwks(res.body, where);
}

/** A short description of the source for logs and messages. */
export function describeJwks(config: JwksConfig): string {
  return 'file' in config ? `file ${config.file}` : `url ${config.url}`;
}
