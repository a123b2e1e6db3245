import { MetricsWriter } from './metrics.js';

/** Distinct pods remembered per binding; past this the count stops growing (and says so). */
export const MAX_PODS_PER_BINDING = 4096;

interface BindingCounters {
  requests: number;
  refusals: Map<string, number>;
  pods: Set<string>;
}

/**
 * Pod-identity counters per binding: requests, refusals by reason, distinct
 * pods seen (a bounded set of pod UIDs). Refusals before a binding is known
 * (an invalid token, an unbound service account) are counted under binding "".
 * Holds no token and no credential.
 */
export class PodIdentityMetrics {
  private readonly bindings = new Map<string, BindingCounters>();

  private of(binding: string): BindingCounters {
    let c = this.bindings.get(binding);
    if (!c) {
      c = { requests: 0, refusals: new Map(), pods: new Set() };
      this.bindings.set(binding, c);
    }
    return c;
  }

  request(binding: string, podUid: string): void {
    const c = this.of(binding);
    c.requests++;
    if (c.pods.size < MAX_PODS_PER_BINDING) c.pods.add(podUid);
  }

  refusal(binding: string, reason: string): void {
    const c = this.of(binding);
    c.refusals.set(reason, (c.refusals.get(reason) ?? 0) + 1);
  }

  requests(binding: string): number {
    return this.bindings.get(binding)?.requests ?? 0;
  }

  refusals(binding: string, reason: string): number {
    return this.bindings.get(binding)?.refusals.get(reason) ?? 0;
  }

  distinctPods(binding: string): number {
    return this.bindings.get(binding)?.pods.size ?? 0;
  }

  /** Prometheus text for the pod-identity families. */
  render(): string {
    const w = new MetricsWriter();
    const all = [...this.bindings].filter(([name]) => name !== '');
    w.family('rolesanywhere_pod_identity_requests_total', 'counter', 'Pod-identity requests with a valid token, by binding (namespace/serviceAccount).', all.map(([binding, c]) => [{ binding }, c.requests]));
    const refusals: Array<[Record<string, string>, number]> = [];
    for (const [binding, c] of this.bindings) for (const [reason, n] of c.refusals) refusals.push([{ binding, reason }, n]);
    w.family('rolesanywhere_pod_identity_refusals_total', 'counter', 'Pod-identity requests refused, by binding ("" when no binding could be determined) and reason.', refusals);
    w.family(
      'rolesanywhere_pod_identity_distinct_pods',
      'gauge',
      `Distinct pods (by UID) that got credentials through the binding since start (counting stops at ${MAX_PODS_PER_BINDING}).`,
      all.map(([binding, c]) => [{ binding }, c.pods.size]),
    );
    return w.toString();
  }
}
