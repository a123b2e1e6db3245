// The credential pipeline of one profile:
//   profile → identity source (files + password) → identity (watched for rotation)
//   → signed CreateSession → CredentialSession (refresh schedule, backoff, expiry).
// serve runs one per profile behind its HTTP routes; update runs one and writes
// the credentials file on every refresh; credential-process makes one fetch.
// All three use the same identity loading, the same CreateSession call and
// (serve and update) the same refresh policy.
import type { ProfileConfig } from '../config/types.js';
import { CredentialSession, type FetchCredentials } from '../credentials/session.js';
import { describeError, UserError } from '../errors.js';
import { exposedSecretFiles, secretFilesOf } from '../identity/files.js';
import type { Identity, IdentitySource } from '../identity/types.js';
import { IdentityWatcher, type WatcherRegistry } from '../identity/watch.js';
import { silentLogger, type Logger } from '../log.js';
import { createSession, type ClientOptions } from '../rolesanywhere/client.js';
import type { AwsCredentials } from '../rolesanywhere/types.js';
import { identityFiles, loadProfileIdentity, secretFiles } from './identity-source.js';
import { assumeRoleChain } from '../rolesanywhere/sts.js';
import { clientOptionsFromProfile, sessionParametersFromProfile, stsOptionsFromProfile } from './profile.js';

/** Refresh pacing (refresh.backoffInitialMs / backoffMaxMs) and file watching (watch.*). */
export interface PipelineTiming {
  refresh: { backoffInitialMs: number; backoffMaxMs: number };
  watch: { debounceMs: number; recheckIntervalMs: number };
}

export interface PipelineOptions extends PipelineTiming {
  logger?: Logger;
  /** The CreateSession call (default: sessionFetcher). */
  fetch?: FetchCredentials;
  /** Wraps the fetch (the daemon's shared limiter). */
  wrapFetch?: (fetch: FetchCredentials) => FetchCredentials;
  /** Loads the identity from the files the watcher passes (default: loadProfileIdentity). */
  loadIdentity?: (profile: ProfileConfig, files: IdentitySource) => Promise<Identity>;
  /** Shares file watchers between profiles (serve). */
  registry?: WatcherRegistry;
  /** Called with each new identity's warnings and with each refused certificate change. */
  onIdentity?: (identity: Identity) => void;
  onIdentityError?: (err: unknown) => void;
}

/** One profile's running pipeline. */
export interface Pipeline {
  readonly config: ProfileConfig;
  readonly session: CredentialSession;
  readonly watcher: IdentityWatcher;
}

/**
 * The CreateSession call a session makes for a profile. The session retries
 * with its own backoff while serving cached credentials, and the daemon's
 * shared limiter paces session attempts (not HTTP calls): one quick in-call
 * retry absorbs a dropped connection without waiting a backoff step, and bounds
 * an attempt to 2 HTTP calls (so during an outage at most
 * 2 × refresh.maxCallsPerSecond calls/s). More would multiply calls exactly
 * when the service is failing or throttling.
 */
export function sessionFetcher(profile: ProfileConfig, logger: Logger = silentLogger()): FetchCredentials {
  const params = sessionParametersFromProfile(profile);
  const log = logger.child({ profile: profile.name });
  const options = clientOptionsFromProfile(profile, {
    maxAttempts: 2,
    timeoutMs: 10_000,
    onRetry: (info) => log.debug({ attempt: info.attempt, delayMs: info.delayMs, reason: info.error.reason, error: info.error.message }, 'CreateSession attempt failed; retrying'),
  });
  const hops = profile.assumeRole ?? [];
  if (hops.length === 0) return (identity, signal) => createSession(identity, params, options, signal);
  const sts = stsOptionsFromProfile(profile, {
    maxAttempts: 2,
    timeoutMs: 10_000,
    onRetry: (info) => log.debug({ attempt: info.attempt, delayMs: info.delayMs, reason: info.error.reason, error: info.error.message }, 'AssumeRole attempt failed; retrying'),
  });
  return async (identity, signal) => assumeRoleChain(await createSession(identity, params, options, signal), hops, identity.serialDecimal, sts, signal);
}

/**
 * Loads the profile's identity (a bad one throws a UserError naming the
 * profile), and builds its watcher and session; `start` begins refreshing and
 * watching, `stop` ends both.
 */
export async function openPipeline(profile: ProfileConfig, options: PipelineOptions): Promise<Pipeline & { start(opts?: { session?: boolean }): void; stop(): Promise<void> }> {
  const logger = options.logger ?? silentLogger();
  const log = logger.child({ profile: profile.name });
  const load = options.loadIdentity ?? ((p: ProfileConfig, files: IdentitySource) => loadProfileIdentity(p, files));
  const watcher = new IdentityWatcher({
    source: identityFiles(profile),
    load: (files) => load(profile, files),
    extraFiles: secretFiles(profile),
    debounceMs: options.watch.debounceMs,
    recheckIntervalMs: options.watch.recheckIntervalMs,
    logger: log,
    ...(options.registry ? { registry: options.registry } : {}),
  });
  let identity: Identity;
  try {
    identity = await watcher.loadInitial();
  } catch (err) {
    throw err instanceof UserError
      ? new UserError(`profile "${profile.name}": ${err.message}`, { reason: err.reason, exitCode: err.exitCode })
      : new UserError(`profile "${profile.name}": cannot load the certificate/key: ${describeError(err)}`, { reason: 'identity' });
  }
  const warn = (id: Identity) => {
    for (const w of id.warnings) log.warn({ serial: id.serialDecimal }, w);
    options.onIdentity?.(id);
  };
  warn(identity);
  for (const f of await exposedSecretFiles(secretFilesOf(profile))) log.warn({ event: 'secret_file_exposed', file: f.path }, f.message);
  log.info({ event: 'identity_loaded', serial: identity.serialDecimal, keySource: identity.signer.describe() }, 'certificate and key loaded');
  const fetch = options.fetch ?? sessionFetcher(profile, logger);
  const session = new CredentialSession({
    profile: profile.name,
    identity,
    fetchCredentials: options.wrapFetch ? options.wrapFetch(fetch) : fetch,
    backoffInitialMs: options.refresh.backoffInitialMs,
    backoffMaxMs: options.refresh.backoffMaxMs,
    logger,
  });
  watcher.onIdentity = (id) => {
    warn(id);
    const previous = session.identity;
    session.setIdentity(id);
    // A token key holds a session on the token: let it go (a signature in progress finishes first).
    if (previous.signer !== id.signer) previous.signer.close?.().catch(() => undefined);
  };
  watcher.onError = (err) => {
    session.recordIdentityError(err);
    options.onIdentityError?.(err);
  };
  return {
    config: profile,
    session,
    watcher,
    /** Starts watching, and refreshing unless `session: false` (started later, on demand). */
    start(opts: { session?: boolean } = {}) {
      if (opts.session !== false) session.start();
      watcher.watch().catch((err) => log.error({ error: describeError(err) }, 'cannot watch the certificate files; relying on the periodic re-check'));
    },
    async stop() {
      session.stop();
      await watcher.close().catch(() => undefined);
      await session.identity.signer.close?.().catch(() => undefined);
    },
  };
}

export interface ObtainOptions {
  /** Where to report warnings (certificate expiring soon, a key other users can read…); default stderr. */
  warn?: (line: string) => void;
  client?: Partial<ClientOptions>;
  signal?: AbortSignal;
}

/** One pass of the pipeline without a session: load the identity (fresh) and make one CreateSession call. */
export async function obtainCredentials(profile: ProfileConfig, opts: ObtainOptions = {}): Promise<AwsCredentials> {
  const identity = await loadProfileIdentity(profile);
  const warn = opts.warn ?? ((l) => process.stderr.write(`${l}\n`));
  for (const w of identity.warnings) warn(`warning: ${w}`);
  // The same check (and message) as serve's secret_file_exposed warning.
  for (const f of await exposedSecretFiles(secretFilesOf(profile))) warn(`warning: ${f.message}`);
  const creds = await createSession(identity, sessionParametersFromProfile(profile), clientOptionsFromProfile(profile, opts.client), opts.signal);
  const hops = profile.assumeRole ?? [];
  return hops.length === 0 ? creds : assumeRoleChain(creds, hops, identity.serialDecimal, stsOptionsFromProfile(profile, opts.client), opts.signal);
}
