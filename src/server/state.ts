import type { CredentialSession } from '../credentials/session.js';
import type { CallerState } from './caller-policy.js';
import type { TokenVerifier } from './token.js';

export interface ServedProfile {
  session: CredentialSession;
  roleArn: string;
  region: string;
  /** A pod-identity binding's session: started on demand, stopped when idle (idle is not "not ready"). */
  onDemand?: boolean;
}

/** What the routes read. Swapped as a whole on reload; routes never do I/O. */
export interface ServerState {
  profiles: Map<string, ServedProfile>;
  /** Served at GET /v1/credentials. */
  defaultProfile?: string;
  /** onNonLoopback: serve IMDS on connections made to a non-loopback address too (imds.onNonLoopbackUnsafe). */
  imds: { enabled: boolean; profile?: string; allowV1: boolean; onNonLoopback?: boolean };
  token: TokenVerifier;
  /** More Prometheus families appended to /metrics (pod identity). */
  extraMetrics?: () => string;
  /** Which local users may have each profile's credentials (connections from local processes); absent: no caller check (tests). */
  callers?: CallerState;
}
