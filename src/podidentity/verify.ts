// Verifies Kubernetes projected service-account tokens with `jose` (never
// hand-written crypto): RS256/ES256 signature against the cluster's JWKS,
// issuer, audience, exp/nbf with a small leeway, and the `kubernetes.io`
// claims. A verified token is remembered by its SHA-256 until it expires, so
// the steady-state cost of a request is one hash and one map lookup.
//
// Refusals name the check that failed and never contain the token (nor claim
// values taken from an unverified token).
import { createHash } from 'node:crypto';
import { createLocalJWKSet, errors, jwtVerify, type JSONWebKeySet, type JWTPayload } from 'jose';
import { describeError } from '../errors.js';
import type { Logger } from '../log.js';
import { silentLogger } from '../log.js';
import { describeJwks, fetchJwks, JWKS_FETCH_TIMEOUT_MS, type JwksConfig } from './jwks.js';
import { DEFAULT_MAX_TOKEN_LIFETIME_SECONDS } from './config.js';

/** Largest token accepted (real projected tokens are 1–2 KB). */
export const MAX_TOKEN_BYTES = 8 * 1024;
/** Clock skew tolerated on exp and nbf, seconds. */
export const LEEWAY_SECONDS = 30;
/** Verified tokens remembered at most (oldest dropped first). */
export const MAX_CACHED_TOKENS = 10_000;
/** The only signature algorithms kube-apiserver uses for service-account tokens. */
export const ALGORITHMS = ['RS256', 'ES256'];

/** Which check refused a token (metrics label; stable). */
export type TokenCheck =
  | 'missing'
  | 'too_large'
  | 'malformed'
  | 'algorithm'
  | 'unknown_key'
  | 'signature'
  | 'issuer'
  | 'audience'
  | 'expired'
  | 'not_yet_valid'
  | 'lifetime'
  | 'claims'
  | 'keys_unavailable';

/** Who a verified token speaks for. */
export interface PodIdentity {
  namespace: string;
  serviceAccount: string;
  podName: string;
  podUid: string;
  /** Token expiry, ms since epoch. */
  expiresAtMs: number;
}

export type Verification = { ok: true; identity: PodIdentity; cached: boolean } | { ok: false; check: TokenCheck; message: string };

export interface VerifierOptions {
  issuer: string;
  audiences: string[];
  jwks: JwksConfig;
  /** Least time between two JWKS fetches caused by an unknown `kid` (ms). */
  minRefetchIntervalMs?: number;
  /** Keys older than this are re-fetched before the next verification (ms; failures keep the old keys). */
  maxKeyAgeMs?: number;
  /** Longest validity accepted, seconds (exp − iat, and exp − now; default 24 h). */
  maxTokenLifetimeSeconds?: number;
  /** Deadline of one JWKS URL fetch, body included (ms; default JWKS_FETCH_TIMEOUT_MS). */
  jwksTimeoutMs?: number;
  logger?: Logger;
  /** ms since epoch; tests may inject. */
  now?: () => number;
}

/** The token without an optional "Bearer " prefix. */
const bare = (header: string) => (header.startsWith('Bearer ') ? header.slice(7) : header);
/** The cache key of a token: never the token itself. */
const tokenHash = (header: string) => createHash('sha256').update(bare(header)).digest('base64url');

const fail = (check: TokenCheck, message: string): Verification => ({ ok: false, check, message });

function str(v: unknown): v is string {
  return typeof v === 'string' && v.length > 0 && v.length <= 253;
}

/** The `kubernetes.io` claims of a verified payload, or why they are unusable. */
function podIdentityOf(payload: JWTPayload): PodIdentity | string {
  const k8s = (payload as Record<string, unknown>)['kubernetes.io'] as Record<string, unknown> | undefined;
  if (!k8s || typeof k8s !== 'object') return 'the token has no "kubernetes.io" claim (is it a projected service-account token?)';
  const sa = k8s.serviceaccount as { name?: unknown } | undefined;
  const pod = k8s.pod as { name?: unknown; uid?: unknown } | undefined;
  if (!str(k8s.namespace)) return 'the "kubernetes.io" claim has no namespace';
  if (!sa || !str(sa.name)) return 'the "kubernetes.io" claim has no serviceaccount.name';
  if (!pod || !str(pod.name) || !str(pod.uid)) {
    return 'the token is not bound to a pod (no kubernetes.io.pod); use a projected service-account token volume, not a TokenRequest without a pod';
  }
  if (payload.sub !== `system:serviceaccount:${k8s.namespace}:${sa.name}`) return 'the "sub" claim does not match the kubernetes.io namespace and service account';
  if (typeof payload.exp !== 'number') return 'the token has no "exp" claim';
  return { namespace: k8s.namespace, serviceAccount: sa.name, podName: pod.name, podUid: pod.uid, expiresAtMs: payload.exp * 1000 };
}

/**
 * One verifier per podIdentity configuration. Holds the key set (loaded by
 * `load()`, re-fetched on an unknown kid at most every
 * `minRefetchIntervalMs`, and when older than `maxKeyAgeMs`) and the cache of
 * verified tokens (cleared whenever the key set changes).
 */
export class PodTokenVerifier {
  private readonly options: VerifierOptions;
  private readonly log: Logger;
  private readonly now: () => number;
  private readonly minRefetchMs: number;
  private readonly maxKeyAgeMs: number;
  private keys?: ReturnType<typeof createLocalJWKSet>;
  private keysText?: string;
  private fetchedAt = -Infinity;
  private lastAttemptAt = -Infinity;
  private lastError?: string;
  private fetching?: Promise<void>;
  private readonly cache = new Map<string, PodIdentity>();
  /** JWKS fetches made (tests, metrics). */
  fetches = 0;

  constructor(options: VerifierOptions) {
    this.options = options;
    this.log = options.logger ?? silentLogger();
    this.now = options.now ?? Date.now;
    this.minRefetchMs = options.minRefetchIntervalMs ?? 10_000;
    this.maxKeyAgeMs = options.maxKeyAgeMs ?? 3_600_000;
  }

  /** Fetches the key set now; throws the source's error (a UserError naming it). */
  async load(): Promise<void> {
    await this.fetchKeys(true);
  }

  get keysLoaded(): boolean {
    return this.keys !== undefined;
  }

  get cachedTokens(): number {
    return this.cache.size;
  }

  /**
   * The identity of an already verified, unexpired token (one hash, one map
   * lookup), or undefined: then `verify()` decides. Synchronous.
   */
  lookup(header: string | undefined): PodIdentity | undefined {
    if (header === undefined || header.length > MAX_TOKEN_BYTES || this.cache.size === 0) return undefined;
    const now = this.now();
    // Keys due for a re-fetch: `verify()` fetches them (a removed key clears the cache), so a
    // verified token outlives its key's removal from the JWKS by at most maxKeyAgeMs.
    if (now - this.fetchedAt > this.maxKeyAgeMs) return undefined;
    const hash = tokenHash(header);
    const hit = this.cache.get(hash);
    if (hit === undefined) return undefined;
    if (now <= hit.expiresAtMs + LEEWAY_SECONDS * 1000) return hit;
    this.cache.delete(hash);
    return undefined;
  }

  /** Verifies the value of an Authorization header (the raw token, or "Bearer <token>"). */
  async verify(header: string | undefined): Promise<Verification> {
    if (header === undefined || header === '') {
      return fail('missing', 'missing Authorization header: send the pod\'s projected service-account token (AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE)');
    }
    if (header.length > MAX_TOKEN_BYTES) return fail('too_large', `the token is over ${MAX_TOKEN_BYTES} bytes; send the projected service-account token`);
    const hit = this.lookup(header);
    if (hit) return { ok: true, identity: hit, cached: true };
    const token = bare(header);
    if (!/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*$/.test(token)) {
      return fail('malformed', 'the Authorization header is not a JWT (expected header.payload.signature in base64url)');
    }
    const now = this.now();
    if (now - this.fetchedAt > this.maxKeyAgeMs && now - this.lastAttemptAt >= this.minRefetchMs) await this.fetchKeys(false);
    if (!this.keys) {
      return fail('keys_unavailable', `the cluster's signing keys are not loaded (${describeJwks(this.options.jwks)}: ${this.lastError ?? 'not fetched yet'})`);
    }
    const result = await this.check(token);
    if (result.ok) {
      if (this.cache.size >= MAX_CACHED_TOKENS) this.cache.delete(this.cache.keys().next().value!);
      this.cache.set(tokenHash(header), result.identity);
    }
    return result;
  }

  private async check(token: string, retried = false): Promise<Verification> {
    const { issuer, audiences } = this.options;
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, this.keys!, {
        algorithms: ALGORITHMS,
        issuer,
        audience: audiences,
        clockTolerance: LEEWAY_SECONDS,
        requiredClaims: ['exp'],
        currentDate: new Date(this.now()),
      }));
    } catch (err) {
      if (err instanceof errors.JWKSNoMatchingKey && !retried && (this.fetching || this.now() - this.lastAttemptAt >= this.minRefetchMs)) {
        // A key rotation: fetch the key set again (bounded rate; or join the fetch in flight) and retry once.
        await this.fetchKeys(false);
        return this.check(token, true);
      }
      return this.refusal(err);
    }
    const identity = podIdentityOf(payload);
    if (typeof identity === 'string') return fail('claims', identity);
    const tooLong = this.lifetimeProblem(payload);
    if (tooLong) return fail('lifetime', tooLong);
    return { ok: true, identity, cached: false };
  }

  /**
   * Why a token is valid for too long, or undefined: its lifetime (exp − iat)
   * and its remaining time (exp − now) must both stay within the cap, so a
   * stolen token cannot serve for ever (an `exp` of 1e20 was once accepted).
   */
  private lifetimeProblem(payload: JWTPayload): string | undefined {
    const max = this.options.maxTokenLifetimeSeconds ?? DEFAULT_MAX_TOKEN_LIFETIME_SECONDS;
    const exp = payload.exp!;
    const lifetime = typeof payload.iat === 'number' ? exp - payload.iat : undefined;
    const remaining = exp - this.now() / 1000;
    const [what, seconds] = lifetime !== undefined && lifetime > remaining ? ['exp − iat', lifetime] : ['exp − now', remaining];
    if (seconds <= max + LEEWAY_SECONDS) return undefined;
    return `the token is valid for ${seconds > 1e12 ? 'ever' : `${Math.round(seconds)} s`} (${what}), more than podIdentity.maxTokenLifetimeSeconds (${max} s); use a projected token with a shorter expirationSeconds (kubelet's default is 3600)`;
  }

  private refusal(err: unknown): Verification {
    const { issuer, audiences } = this.options;
    if (err instanceof errors.JWTExpired) return fail('expired', 'the token has expired (exp is in the past); kubelet refreshes projected tokens: re-read the token file');
    if (err instanceof errors.JWTClaimValidationFailed) {
      switch (err.claim) {
        case 'iss':
          return fail('issuer', `the token's issuer (iss) is not ${issuer}; check podIdentity.issuer against the cluster's --service-account-issuer`);
        case 'aud':
          return fail('audience', `the token's audience (aud) is not ${audiences.join(' or ')}; set the projected volume's audience to it`);
        case 'nbf':
          return fail('not_yet_valid', 'the token is not valid yet (nbf is in the future); check the node clocks');
        case 'exp':
          return fail('claims', 'the token has no usable "exp" claim');
        default:
          return fail('claims', `the token's "${err.claim}" claim is not acceptable`);
      }
    }
    if (err instanceof errors.JOSEAlgNotAllowed || err instanceof errors.JOSENotSupported) {
      return fail('algorithm', `the token's signature algorithm is not accepted (only ${ALGORITHMS.join(' and ')}; never "none")`);
    }
    if (err instanceof errors.JWKSNoMatchingKey || err instanceof errors.JWKSMultipleMatchingKeys) {
      return fail('unknown_key', `no key in the cluster's JWKS (${describeJwks(this.options.jwks)}) matches the token's kid and algorithm; the keys are re-fetched at most every ${Math.round(this.minRefetchMs / 1000)} s`);
    }
    if (err instanceof errors.JWSSignatureVerificationFailed) return fail('signature', 'the token\'s signature does not verify against the cluster\'s key (tampered, or signed by another key)');
    if (err instanceof errors.JWTInvalid || err instanceof errors.JWSInvalid) return fail('malformed', 'the token is not a well-formed JWT');
    this.log.debug({ error: describeError(err) }, 'pod token refused');
    return fail('malformed', 'the token could not be verified');
  }

  /** One fetch at a time; a failure keeps the previous keys. `strict` rethrows. */
  private fetchKeys(strict: boolean): Promise<void> {
    this.fetching ??= (async () => {
      this.lastAttemptAt = this.now();
      this.fetches++;
      try {
        const set: JSONWebKeySet = await fetchJwks(this.options.jwks, { timeoutMs: this.options.jwksTimeoutMs ?? JWKS_FETCH_TIMEOUT_MS });
        const text = JSON.stringify(set);
        if (text !== this.keysText) {
          const kids = set.keys.map((k) => k.kid ?? '(no kid)');
          if (this.keysText !== undefined) this.log.info({ jwks: describeJwks(this.options.jwks), kids }, 'cluster signing keys changed; verified-token cache cleared');
          this.keys = createLocalJWKSet(set);
          this.keysText = text;
          this.cache.clear();
        }
        this.fetchedAt = this.now();
        this.lastError = undefined;
      } catch (err) {
        this.lastError = describeError(err);
        this.log.warn({ jwks: describeJwks(this.options.jwks), error: this.lastError }, this.keys ? 'cannot re-fetch the cluster signing keys; keeping the previous ones' : 'cannot fetch the cluster signing keys');
        if (strict) throw err;
      }
    })().finally(() => {
      this.fetching = undefined;
    });
    return this.fetching;
  }
}
