/** One `podIdentity.bindings` entry: a service account (or every one of a namespace) → a profile. */
export interface Binding {
  namespace: string;
  /** A service account name, or "*" for every service account of the namespace. */
  serviceAccount: string;
  profile: string;
}

/** The metrics label and log name of a binding: `namespace/serviceAccount`. */
export function bindingName(b: Pick<Binding, 'namespace' | 'serviceAccount'>): string {
  return `${b.namespace}/${b.serviceAccount}`;
}

/** The first binding matching the service account, if any. */
export function matchBinding(bindings: readonly Binding[], namespace: string, serviceAccount: string): Binding | undefined {
  return bindings.find((b) => b.namespace === namespace && (b.serviceAccount === '*' || b.serviceAccount === serviceAccount));
}

/** Index of an earlier binding that already matches everything `bindings[i]` would (so it can never match), or -1. */
export function shadowedBy(bindings: readonly Binding[], i: number): number {
  const b = bindings[i]!;
  return bindings.slice(0, i).findIndex((a) => a.namespace === b.namespace && (a.serviceAccount === '*' || a.serviceAccount === b.serviceAccount));
}
