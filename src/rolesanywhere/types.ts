/** Temporary AWS credentials as returned by CreateSession. */
export interface AwsCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken: string;
  /** When the credentials stop working. */
  expiration: Date;
  /** The role the session assumed (from the response, or the requested role ARN). */
  roleArn: string;
  /** The account of the role, from its ARN. */
  accountId?: string;
  /** The assumed-role ARN, when the service returned it. */
  assumedRoleArn?: string;
  /** The service's clock minus ours, from the answer's Date header (0 when within its precision; absent without one). */
  clockOffsetMs?: number;
  /** Role chaining: what each AssumeRole hop gave, in order (no secrets); these credentials are the last hop's. */
  chain?: HopResult[];
}

/** What one successful AssumeRole hop gave (no secrets). */
export interface HopResult {
  roleArn: string;
  assumedRoleArn?: string;
  expiration: Date;
}

/** Everything that selects which session to create (not how to connect). */
export interface SessionParameters {
  trustAnchorArn: string;
  profileArn: string;
  roleArn: string;
  /** Seconds, 900..43200; the service default is 3600. */
  durationSeconds?: number;
  roleSessionName?: string;
}
