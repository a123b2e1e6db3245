/**
 * The validated configuration the rest of the program consumes. Produced by
 * src/config (flags > environment > YAML file); everything here is already
 * checked, defaulted and resolved (regions, absolute paths).
 */

/** One Roles Anywhere identity + session to keep fresh. */
export interface ProfileConfig {
  /** Profile name (the YAML key; `default` for a single flag-defined profile). */
  name: string;
  certificate: string;
  privateKey?: string;
  intermediates?: string;
  keyPasswordFile?: string;
  /** Password given directly (env ROLESANYWHERE_KEY_PASSWORD or --pkcs8-password). Never log it. */
  keyPassword?: string;
  trustAnchorArn: string;
  profileArn: string;
  roleArn: string;
  /** Resolved: explicit region, else the trust anchor ARN's region. */
  region: string;
  /** Override of the Roles Anywhere endpoint URL. */
  endpoint?: string;
  /** PEM file of extra TLS roots for the endpoint. */
  caBundle?: string;
  /** Skip TLS verification (loudly warned). */
  noVerifySsl: boolean;
  /** Use HTTPS_PROXY / NO_PROXY from the environment. */
  withProxy: boolean;
  /** Requested session length in seconds (900..43200, default 3600). */
  sessionDuration: number;
  roleSessionName?: string;
  /** Warn when the certificate expires within this many days (default 7). */
  expiryWarningDays: number;
}

export interface ListenAddress {
  /** IPv4 address, host name, or IPv6 address WITHOUT brackets (`::1`), as net.Server#listen wants it. */
  host: string;
  /** 0..65535; 0 = the OS picks a free port (tests). */
  port: number;
}

export interface DaemonConfig {
  /** Where the config came from (file path), for messages. */
  source?: string;
  listen: ListenAddress[];
  /** Permit non-loopback listen addresses (warned). */
  allowNonLoopback: boolean;
  /** Endpoint token file (created with 0600 when missing). */
  tokenFile: string;
  imds: {
    enabled: boolean;
    /** Profile served over IMDS (defaults to the only profile). */
    profile?: string;
    allowV1: boolean;
  };
  /** Keyed by profile name; at least one. */
  profiles: Record<string, ProfileConfig>;
  /** Served by GET /v1/credentials: the IMDS profile, or the only one. */
  defaultProfile?: string;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace';
  refresh: {
    /** First retry delay after a failed refresh (ms, default 1000). */
    backoffInitialMs: number;
    /** Cap for the retry delay (ms, default 30000). */
    backoffMaxMs: number;
    /** CreateSession calls in flight at once across all profiles (default 4; absent = default). */
    maxConcurrent?: number;
    /** CreateSession calls started per second across all profiles (token bucket, burst of one second's worth; default 10; absent = default). */
    maxCallsPerSecond?: number;
  };
  watch: {
    /** Debounce for certificate file events (ms, default 500). */
    debounceMs: number;
    /** Periodic re-check of certificate files (ms, default 60000). */
    recheckIntervalMs: number;
  };
}
