// The pod-identity authentication of GET /v1/credentials: verify the pod's
// projected service-account token, pick the first binding of its service
// account, make sure that binding's session runs, and hand the route the
// profile to serve — which then answers exactly as the container endpoint
// does. 401 says which token check failed (never the token), 403 names the
// unbound namespace/service account.
//
// Steady state (a token seen before, its session holding credentials) is
// synchronous: one hash, two map lookups.
import type { Logger } from '../log.js';
import { silentLogger } from '../log.js';
import { refusal, type Refusal } from './checks.js';
import type { CredentialSurface } from './credential-routes.js';
import { bindingName, matchBinding, type Binding } from '../podidentity/bindings.js';
import type { PodIdentityMetrics } from './pod-metrics.js';
import type { OnDemandSessions } from '../podidentity/sessions.js';
import type { PodIdentity, PodTokenVerifier } from '../podidentity/verify.js';

/** The profile to serve, or the answer that refuses the request. */
export type PodAuthentication = { profile: string } | Refusal;

export interface PodIdentityServiceOptions {
  verifier: PodTokenVerifier;
  bindings: readonly Binding[];
  sessions: OnDemandSessions;
  metrics: PodIdentityMetrics;
  logger?: Logger;
}

const NAMED = refusal(404, 'NotFound', 'the pod-identity endpoint serves only GET /v1/credentials: the profile is the one bound to the pod\'s service account');

export class PodIdentityService {
  readonly verifier: PodTokenVerifier;
  readonly bindings: readonly Binding[];
  readonly sessions: OnDemandSessions;
  private readonly metrics: PodIdentityMetrics;
  private readonly log: Logger;
  /** `namespace/serviceAccount` → its binding (null: unbound); bindings are fixed for this service's life. */
  private readonly matches = new Map<string, Binding | null>();

  constructor(options: PodIdentityServiceOptions) {
    this.verifier = options.verifier;
    this.bindings = options.bindings;
    this.sessions = options.sessions;
    this.metrics = options.metrics;
    this.log = options.logger ?? silentLogger();
  }

  authenticate(authorization: string | undefined): PodAuthentication | Promise<PodAuthentication> {
    const known = this.verifier.lookup(authorization);
    if (known) {
      const binding = this.bindingOf(known);
      if (binding && this.sessions.ready(binding.profile)) {
        this.metrics.request(bindingName(binding), known.podUid);
        return { profile: binding.profile };
      }
    }
    return this.authenticateSlow(authorization);
  }

  private async authenticateSlow(authorization: string | undefined): Promise<PodAuthentication> {
    const v = await this.verifier.verify(authorization);
    if (!v.ok) {
      this.metrics.refusal('', v.check);
      if (v.check === 'keys_unavailable') return refusal(503, 'CredentialsUnavailable', v.message);
      this.log.debug({ check: v.check }, 'pod token refused');
      return refusal(401, 'AccessDenied', `invalid service-account token (${v.check}): ${v.message}`);
    }
    const { namespace, serviceAccount, podName, podUid } = v.identity;
    const binding = this.bindingOf(v.identity);
    if (!binding) {
      this.metrics.refusal('', 'unbound');
      this.log.info({ namespace, serviceAccount, pod: podName }, 'pod identity refused: service account not bound');
      return refusal(403, 'AccessDenied', `service account ${namespace}/${serviceAccount} is not bound to a profile on this node; add a podIdentity.bindings entry for it`);
    }
    const name = bindingName(binding);
    this.metrics.request(name, podUid);
    if (!v.cached) this.log.debug({ binding: name, pod: `${namespace}/${podName}`, profile: binding.profile }, 'pod token verified');
    const found = await this.sessions.use(binding.profile);
    if (!found) {
      this.metrics.refusal(name, 'unknown_profile');
      return refusal(503, 'CredentialsUnavailable', `binding ${name} names profile "${binding.profile}", which is not loaded`);
    }
    if (!found.ok) {
      this.metrics.refusal(name, 'unavailable');
      return refusal(503, 'CredentialsUnavailable', found.message);
    }
    return { profile: binding.profile };
  }

  private bindingOf(id: PodIdentity): Binding | undefined {
    const key = `${id.namespace}/${id.serviceAccount}`;
    let b = this.matches.get(key);
    if (b === undefined) {
      b = matchBinding(this.bindings, id.namespace, id.serviceAccount) ?? null;
      if (this.matches.size < 10_000) this.matches.set(key, b);
    }
    return b ?? undefined;
  }
}

/**
 * What the pod-identity listeners serve: GET /v1/credentials authenticated by
 * the pod's token (no Host guard: the token is the guard), nothing else — no
 * profiles by name, no IMDS, no health or metrics.
 */
export function podIdentitySurface(service: () => PodIdentityService | undefined): CredentialSurface {
  const gone = refusal(503, 'CredentialsUnavailable', 'pod identity is no longer configured (removed by a reload); restart the daemon to stop listening');
  const check = (req: { headers: { authorization?: string } }, ctx: { profile: string | undefined }) => {
    if (ctx.profile !== undefined) return NAMED;
    const s = service();
    if (!s) return gone;
    const apply = (a: PodAuthentication): Refusal | undefined => {
      if ('status' in a) return a;
      ctx.profile = a.profile;
      return undefined;
    };
    const a = s.authenticate(req.headers.authorization);
    return a instanceof Promise ? a.then(apply) : apply(a);
  };
  return {
    container: { authenticate: [check], authorize: [] },
    noHostGuard: true,
    otherwise: refusal(404, 'NotFound', 'the pod-identity endpoint serves only GET /v1/credentials'),
  };
}
