import { isDeepStrictEqual } from 'node:util';
import { RELOAD_KEEPS_CREDENTIALS } from '../config/settings.js';
import type { DaemonConfig, ProfileConfig } from '../config/types.js';
import { CallLimiter } from '../credentials/limiter.js';
import type { CredentialSession, FetchCredentials } from '../credentials/session.js';
import { UserError } from '../errors.js';
import type { Identity, IdentitySource } from '../identity/types.js';
import { WatcherRegistry, type IdentityWatcher } from '../identity/watch.js';
import { openPipeline } from '../runtime/pipeline.js';
import { servedRoleArn } from '../runtime/profile.js';
import type { Logger } from '../log.js';
import { silentLogger } from '../log.js';
import { isLoopbackHostname } from '../net/loopback.js';
import { buildApp } from './app.js';
import { CallerLookup } from './callers.js';
import { callerStateFor, readAccounts, type CallerState } from './caller-policy.js';
import { ConnectionLimits } from './connections.js';
import { healthHandler, readiness } from './health.js';
import { ImdsTokenStore } from './imds-tokens.js';
import { closeAll, listenAll, urlHost, type BoundServer } from './listen.js';
import { RequestMetrics } from './metrics.js';
import type { ServedProfile, ServerState } from './state.js';
import { ensureEndpointToken, type EndpointToken, TokenVerifier } from './token.js';
import { PodIdentityMetrics } from './pod-metrics.js';
import { podIdentitySurface, PodIdentityService } from './pod-identity.js';
import { OnDemandSessions } from '../podidentity/sessions.js';
import type { PodIdentityConfig } from '../podidentity/config.js';

export interface DaemonDeps {
  /** Builds the CreateSession call for a profile. */
  fetchFactory: (profile: ProfileConfig) => FetchCredentials;
  /** Loads a profile's identity (validated) from the files the watcher passes. */
  loadIdentity: (profile: ProfileConfig, source: IdentitySource) => Promise<Identity>;
  logger?: Logger;
  /** Where the kernel's TCP socket tables are (default /proc/self/net); tests point it elsewhere to act as a system without /proc. */
  procNet?: string;
}

type ProfileRuntime = Awaited<ReturnType<typeof openPipeline>>;

function limiterOptions(refresh: DaemonConfig['refresh']): { maxConcurrent?: number; maxCallsPerSecond?: number } {
  return { maxConcurrent: refresh.maxConcurrent, maxCallsPerSecond: refresh.maxCallsPerSecond };
}

/** The refresh settings of a session (applied in place on reload, like the limiter's). */
function sessionRefreshSettings(refresh: DaemonConfig['refresh']): { backoffInitialMs: number; backoffMaxMs: number } {
  return { backoffInitialMs: refresh.backoffInitialMs, backoffMaxMs: refresh.backoffMaxMs };
}

function sameCredentialSubject(a: ProfileConfig, b: ProfileConfig): boolean {
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  for (const k of keys) {
    if (RELOAD_KEEPS_CREDENTIALS.has(k)) continue; // the settings table's keepsCredentials rows
    if (!isDeepStrictEqual((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k])) return false;
  }
  return true;
}

/**
 * The running daemon: one credential session + certificate watcher per
 * profile, the HTTP app bound to every listen address, and reload. All
 * sessions share one CreateSession limiter, and all watchers one registry of
 * file watchers.
 */
export class Daemon {
  private config: DaemonConfig;
  /** The addresses actually bound: listen changes need a restart, so a reload never changes them. */
  private readonly listening: DaemonConfig['listen'];
  private readonly deps: DaemonDeps;
  private readonly log: Logger;
  private runtimes = new Map<string, ProfileRuntime>();
  private state!: ServerState;
  private bound: BoundServer[] = [];
  /** The pod-identity listeners (podIdentity.listen), bound at start only. */
  private podBound: BoundServer[] = [];
  /** The health listeners (health.listen), bound at start only. */
  private healthBound: BoundServer[] = [];
  private readonly healthListening: DaemonConfig['health']['listen'];
  private pod?: PodIdentityService;
  readonly podMetrics = new PodIdentityMetrics();
  readonly metrics = new RequestMetrics();
  readonly imdsTokens = new ImdsTokenStore();
  /** Caps CreateSession calls across all profiles (refresh.maxConcurrent, refresh.maxCallsPerSecond). */
  readonly limiter: CallLimiter;
  /** Shares certificate file watchers between profiles. */
  readonly watchers = new WatcherRegistry();
  /** Finds the local user behind connections from local processes. */
  private readonly callerLookup: CallerLookup;
  /** connections.max and connections.maxPerUser over every listener. */
  private readonly connections: ConnectionLimits;
  private closed = false;
  /** Called after every refresh outcome of any profile (onRefresh). */
  private readonly refreshListeners = new Set<() => void>();
  /** The endpoint token last read or written (a reload keeps a token it wrote in a shared directory while the file is still that one). */
  private endpointToken?: { path: string; token: EndpointToken };

  private constructor(config: DaemonConfig, deps: DaemonDeps) {
    this.config = config;
    this.listening = config.listen;
    this.healthListening = config.health?.listen;
    this.deps = deps;
    this.log = deps.logger ?? silentLogger();
    this.callerLookup = new CallerLookup(deps.procNet);
    this.connections = new ConnectionLimits(config.connections, this.metrics, this.callerLookup, this.log);
    this.limiter = new CallLimiter(limiterOptions(config.refresh));
  }

  /**
   * Reads the token, loads every identity (a bad one fails start-up with its
   * message), binds every listen address, then starts the sessions without
   * waiting for the first CreateSession (readyz tells).
   */
  static async start(config: DaemonConfig, deps: DaemonDeps): Promise<Daemon> {
    const d = new Daemon(config, deps);
    const token = await d.readToken(config);
    const callers = await d.callerState(config, 'start');
    const pod = config.podIdentity ? await d.buildPodIdentity(config, config.podIdentity) : undefined;
    let runtimes: Map<string, ProfileRuntime>;
    try {
      runtimes = await d.buildRuntimes(config, new Map());
    } catch (err) {
      pod?.sessions.close();
      throw err;
    }
    d.runtimes = runtimes;
    d.pod = pod;
    d.state = d.stateFor(config, runtimes, token, callers);
    if (!config.listen.every((a) => isLoopbackHostname(a.host))) {
      d.log.warn(
        { listen: config.listen.map((a) => urlHost(a.host, a.port)) },
        config.imds.enabled && config.imds.onNonLoopbackUnsafe
          ? 'listening on a non-loopback address with imds.onNonLoopbackUnsafe: IMDS needs no secret, so every client that can reach it gets AWS credentials (and the container endpoint to anyone holding the endpoint token); local users there are still checked against callers'
          : 'listening on a non-loopback address: anyone who can reach it and holds the endpoint token gets AWS credentials from the container endpoint (local users are still checked against callers); IMDS is not served there (imds.onNonLoopbackUnsafe)',
      );
    }
    const app = buildApp({ getState: () => d.state, metrics: d.metrics, imdsTokens: d.imdsTokens, logger: d.log, callers: d.callerLookup });
    try {
      d.bound = await listenAll(app, config.listen, undefined, (message) => d.log.warn(message));
      if (config.podIdentity) {
        d.podBound = await listenAll(app, config.podIdentity.listen, podIdentitySurface(() => d.pod)).catch((err: unknown) => {
          if (err instanceof UserError && err.reason === 'address_unavailable') {
            throw new UserError(
              `podIdentity.listen: ${err.message.replace(/; choose another --listen address$/, '')}; add it to an interface first (e.g. ip addr add 169.254.170.23/32 dev lo, or the DaemonSet's init step in deploy/kubernetes/node-agent.yaml)`,
              { reason: err.reason },
            );
          }
          throw err;
        });
      }
      if (config.health?.listen) {
        d.healthBound = await listenAll(healthHandler(() => d.state, d.metrics), config.health.listen).catch((err: unknown) => {
          throw err instanceof UserError ? new UserError(`health.listen: ${err.message.replace(/--listen address/, '--health-listen address')}`, { reason: err.reason }) : err;
        });
      }
    } catch (err) {
      d.pod?.sessions.close();
      await closeAll([...d.bound, ...d.podBound], 0);
      await d.stopRuntimes(runtimes.values());
      await app.close().catch(() => undefined);
      throw err;
    }
    for (const b of [...d.bound, ...d.podBound, ...d.healthBound]) d.connections.watch(b.server);
    for (const rt of runtimes.values()) d.activate(rt, config);
    d.log.info(
      { listen: d.bound.map((b) => urlHost(b.host, b.port)), profiles: [...runtimes.keys()], imds: config.imds.enabled ? config.imds.profile ?? null : false },
      'serving credentials',
    );
    if (d.healthBound.length > 0) d.log.info({ listen: d.healthBound.map((b) => urlHost(b.host, b.port)) }, 'serving /healthz, /readyz and /metrics');
    if (config.podIdentity) {
      d.log.info(
        { listen: d.podBound.map((b) => urlHost(b.host, b.port)), bindings: config.podIdentity.bindings.map((b) => `${b.namespace}/${b.serviceAccount}=${b.profile}`), sessionStart: config.podIdentity.sessionStart },
        'serving pod identity',
      );
    }
    return d;
  }

  /** How many profiles have credentials, and whether the readiness rule (/readyz) holds. */
  readiness(): { ready: number; total: number; ok: boolean } {
    const r = readiness(this.state, false);
    const profiles = Object.values(r.body.profiles as Record<string, { ready: boolean }>);
    return { ready: profiles.filter((p) => p.ready).length, total: profiles.length, ok: r.status === 200 };
  }

  /** Calls `listener` after every refresh outcome of every profile, present and future; returns the unsubscribe function. */
  onRefresh(listener: () => void): () => void {
    this.refreshListeners.add(listener);
    return () => this.refreshListeners.delete(listener);
  }

  /** Bound addresses (actual ports). */
  get addresses(): Array<{ host: string; port: number }> {
    return this.bound.map((b) => ({ host: b.host, port: b.port }));
  }

  /** Bound health addresses (actual ports). */
  get healthAddresses(): Array<{ host: string; port: number }> {
    return this.healthBound.map((b) => ({ host: b.host, port: b.port }));
  }

  /** Bound pod-identity addresses (actual ports). */
  get podAddresses(): Array<{ host: string; port: number }> {
    return this.podBound.map((b) => ({ host: b.host, port: b.port }));
  }

  /** The pod-identity service in use (tests, metrics). */
  get podIdentity(): PodIdentityService | undefined {
    return this.pod;
  }

  get currentConfig(): DaemonConfig {
    return this.config;
  }

  session(profile: string): CredentialSession | undefined {
    return this.runtimes.get(profile)?.session;
  }

  watcher(profile: string): IdentityWatcher | undefined {
    return this.runtimes.get(profile)?.watcher;
  }

  /** The lines a user needs to point SDKs here (never the token). */
  exportLines(): string[] {
    const preferred = this.bound.find((b) => b.host === '127.0.0.1') ?? this.bound.find((b) => isLoopbackHostname(b.host)) ?? this.bound[0];
    if (!preferred) return [];
    const host = preferred.host === '0.0.0.0' ? '127.0.0.1' : preferred.host === '::' ? '::1' : preferred.host;
    const base = `http://${urlHost(host, preferred.port)}`;
    const lines = [
      `export AWS_CONTAINER_CREDENTIALS_FULL_URI=${base}/v1/credentials`,
      `export AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=${this.config.tokenFile}`,
      // Clients older than the token file (their container provider reads only the variable) get 401
      // "missing Authorization header" without it; the token itself is never printed.
      '# AWS CLI v2 before 2.15.0 (Debian 12: 2.9.19) and v1 before 1.30.0 (botocore before 1.32.0) ignore the token file; for them also:',
      `# export AWS_CONTAINER_AUTHORIZATION_TOKEN=$(cat ${this.config.tokenFile})`,
    ];
    if (this.config.imds.enabled) lines.push(`export AWS_EC2_METADATA_SERVICE_ENDPOINT=${base}/`);
    // SDKs and CLIs need a region of their own ("Region is missing" / "You must specify a region"):
    // the one of the profile /v1/credentials serves. The SDKs read AWS_REGION, the aws CLI v1 AWS_DEFAULT_REGION.
    const served = this.config.profiles[this.state.defaultProfile ?? ''] ?? Object.values(this.config.profiles)[0];
    if (served) lines.push(`export AWS_REGION=${served.region}`, `export AWS_DEFAULT_REGION=${served.region}`);
    // A plain-http Roles Anywhere endpoint is a loopback emulator, which answers STS too; credentials
    // it issued are unknown to the real STS.
    const endpoint = served?.endpoint && URL.parse(served.endpoint);
    if (endpoint && endpoint.protocol === 'http:') {
      lines.push(
        `# the Roles Anywhere endpoint is a local emulator: send STS calls to it (AWS CLI v2 before 2.13 and v1 before 1.29 ignore that variable: aws --endpoint-url ${endpoint.origin} sts ...)`,
        `export AWS_ENDPOINT_URL_STS=${endpoint.origin}`,
      );
    }
    return lines;
  }

  /**
   * Applies a new, already validated config. Loads the token and the identities
   * of new/changed profiles first; if anything fails, nothing changes and the
   * error is thrown. Unchanged profiles keep their sessions and re-check their
   * certificate files. Listen changes need a restart (logged).
   */
  async reload(config: DaemonConfig): Promise<void> {
    if (this.closed) return;
    const token = await this.readToken(config);
    try {
      await this.apply(config, token);
    } catch (err) {
      // The file on disk is the new token already (it was missing or replaced): serve what clients now read.
      if (this.endpointToken?.token.created) this.state = { ...this.state, token };
      throw err;
    }
  }

  private async apply(config: DaemonConfig, token: TokenVerifier): Promise<void> {
    const callers = await this.callerState(config, 'reload');
    const podChanged = !isDeepStrictEqual(config.podIdentity, this.config.podIdentity);
    const pod = podChanged && config.podIdentity ? await this.buildPodIdentity(config, config.podIdentity) : podChanged ? undefined : this.pod;
    // Unchanged profiles keep their runtime (and cached credentials) even when the
    // refresh or watch settings change: those are applied in place below.
    let fresh: Map<string, ProfileRuntime>;
    try {
      fresh = await this.buildRuntimes(config, this.runtimes);
    } catch (err) {
      if (pod !== this.pod) pod?.sessions.close();
      throw err;
    }
    const old = this.runtimes;
    if (this.closed) {
      if (pod !== this.pod) pod?.sessions.close();
      // close() ran while the identities were loading: start nothing, drop what was built.
      await this.stopRuntimes([...fresh.values()].filter((rt) => old.get(rt.config.name) !== rt));
      return;
    }
    this.limiter.configure(limiterOptions(config.refresh));
    this.connections.configure(config.connections);
    const added: string[] = [];
    const changed: string[] = [];
    const removed: string[] = [];
    for (const [name, rt] of fresh) {
      const prev = old.get(name);
      if (!prev) added.push(name);
      else if (prev !== rt) changed.push(name);
    }
    for (const name of old.keys()) if (!fresh.has(name)) removed.push(name);
    this.runtimes = fresh;
    if (pod !== this.pod) {
      this.pod?.sessions.close();
      this.pod = pod;
    }
    this.state = this.stateFor(config, fresh, token, callers);
    const retired = [...old.values()].filter((rt) => fresh.get(rt.config.name) !== rt);
    await this.stopRuntimes(retired);
    for (const rt of fresh.values()) {
      if (old.get(rt.config.name) === rt) {
        rt.session.setBackoff(sessionRefreshSettings(config.refresh));
        rt.watcher.setTiming(config.watch);
        void rt.watcher.check();
      } else this.activate(rt, config);
    }
    if (podChanged && !isDeepStrictEqual(config.podIdentity?.listen, this.config.podIdentity?.listen)) {
      this.log.warn({ listen: config.podIdentity?.listen.map((a) => urlHost(a.host, a.port)) ?? [] }, 'pod-identity listen address changes take effect only after a restart; still listening on the old addresses');
    }
    if (!isDeepStrictEqual(config.health?.listen, this.healthListening)) {
      this.log.warn({ listen: config.health?.listen?.map((a) => urlHost(a.host, a.port)) ?? [] }, 'health.listen changes take effect only after a restart; still listening on the old addresses');
    }
    if (!isDeepStrictEqual(config.listen, this.listening) || config.allowNonLoopback !== this.config.allowNonLoopback) {
      this.log.warn({ listen: config.listen.map((a) => urlHost(a.host, a.port)) }, 'listen address changes take effect only after a restart; still listening on the old addresses');
    }
    this.config = config;
    this.log.info({ added, changed, removed, unchanged: [...fresh.keys()].filter((n) => !added.includes(n) && !changed.includes(n)) }, 'configuration reloaded');
  }

  /** Stops accepting, lets in-flight requests finish, stops sessions and watchers. */
  async close(graceMs = 5_000): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const closing = closeAll([...this.bound, ...this.podBound, ...this.healthBound], graceMs);
    this.pod?.sessions.close();
    await this.stopRuntimes(this.runtimes.values());
    await closing;
  }

  private async readToken(config: DaemonConfig): Promise<TokenVerifier> {
    const previous = this.endpointToken?.path === config.tokenFile ? this.endpointToken.token : undefined;
    const t = await ensureEndpointToken(config.tokenFile, previous);
    this.endpointToken = { path: config.tokenFile, token: t };
    if (t.shared) this.log.info({ tokenFile: config.tokenFile }, t.shared);
    else if (t.created) this.log.info({ tokenFile: config.tokenFile }, 'generated a new endpoint token file');
    for (const warning of t.warnings) this.log.warn({ tokenFile: config.tokenFile }, warning);
    return new TokenVerifier(t.value);
  }

  /**
   * Every profile's allowed callers, resolved against /etc/passwd and /etc/group now
   * (start-up, reload), and whether local callers can be identified now: where the socket
   * table cannot be read (no /proc: macOS; a mount over /proc/self/net), a config with
   * `callers` does not start (without allowUnidentifiedCallers), and otherwise the daemon
   * says what it serves. Every lookup checks again: a table that becomes unreadable
   * later refuses those callers then, one that becomes readable serves them.
   */
  private async callerState(config: DaemonConfig, when: 'start' | 'reload'): Promise<CallerState> {
    const state = callerStateFor(config.profiles, await readAccounts(), process.getuid?.() ?? 0, config.allowUnidentifiedCallers);
    for (const [profile, policy] of state.policies) this.log.debug({ profile, uids: policy.allowed }, 'callers allowed');
    const why = await this.callerLookup.unavailable();
    if (why === undefined) return state;
    const configured = Object.values(config.profiles).filter((p) => p.callers !== undefined).map((p) => p.name);
    if (config.allowUnidentifiedCallers) {
      this.log.warn({ why }, 'cannot identify local callers, and allowUnidentifiedCallers is set: callers is not enforced; every local user gets IMDS credentials, and the container endpoint to anyone holding the endpoint token');
      return state;
    }
    if (configured.length > 0) {
      const message = `cannot identify local callers: ${why}, so the callers setting (profiles ${configured.join(', ')}) cannot be enforced; run where /proc/self/net/tcp is readable (Linux), or remove callers (the container endpoint then needs only the endpoint token, and IMDS is not served), or set allowUnidentifiedCallers: true to serve every local user`;
      if (when === 'start') throw new UserError(message, { reason: 'callers' });
      this.log.error(message);
      return state;
    }
    this.log.warn(
      { why },
      `cannot identify local callers: local users cannot be told apart, so the container endpoint is served to any local process holding the endpoint token${config.imds.enabled ? ', and IMDS (which needs no secret) is refused to them; set allowUnidentifiedCallers: true to serve IMDS to every local user' : ''}`,
    );
    return state;
  }

  private stateFor(config: DaemonConfig, runtimes: Map<string, ProfileRuntime>, token: TokenVerifier, callers: CallerState | undefined): ServerState {
    const profiles = new Map<string, ServedProfile>();
    const onDemand = this.pod?.sessions.managed;
    for (const [name, rt] of runtimes) {
      const served: ServedProfile = { session: rt.session, roleArn: servedRoleArn(rt.config), region: rt.config.region };
      if (onDemand?.has(name)) served.onDemand = true;
      profiles.set(name, served);
    }
    const names = [...runtimes.keys()];
    const imdsProfile = config.imds.profile ?? (names.length === 1 ? names[0] : undefined);
    return {
      profiles,
      defaultProfile: config.defaultProfile ?? (config.imds.enabled ? imdsProfile : undefined) ?? (names.length === 1 ? names[0] : undefined),
      imds: { enabled: config.imds.enabled, profile: imdsProfile, allowV1: config.imds.allowV1, onNonLoopback: config.imds.onNonLoopbackUnsafe },
      token,
      extraMetrics: config.podIdentity ? () => this.podMetrics.render() : undefined,
      callers,
    };
  }

  /** Reuses runtimes whose profile config is unchanged; builds (loads identities for) the rest. */
  private async buildRuntimes(config: DaemonConfig, existing: Map<string, ProfileRuntime>): Promise<Map<string, ProfileRuntime>> {
    const out = new Map<string, ProfileRuntime>();
    const built: ProfileRuntime[] = [];
    try {
      for (const [name, profile] of Object.entries(config.profiles)) {
        const prev = existing.get(name);
        if (prev && isDeepStrictEqual(prev.config, profile)) {
          out.set(name, prev);
          continue;
        }
        const rt = await this.buildRuntime(config, profile);
        built.push(rt);
        out.set(name, rt);
        // Still-valid credentials survive a change that does not touch who they are for.
        if (prev && sameCredentialSubject(prev.config, profile)) rt.session.adoptCredentials(prev.session);
      }
    } catch (err) {
      await this.stopRuntimes(built);
      throw err;
    }
    return out;
  }

  private buildRuntime(config: DaemonConfig, profile: ProfileConfig): Promise<ProfileRuntime> {
    return openPipeline(profile, {
      refresh: sessionRefreshSettings(config.refresh),
      watch: config.watch,
      logger: this.log,
      fetch: this.deps.fetchFactory(profile),
      wrapFetch: (f) => this.limiter.wrap(f),
      loadIdentity: this.deps.loadIdentity,
      registry: this.watchers,
    });
  }

  private activate(rt: ProfileRuntime, config: DaemonConfig): void {
    rt.session.subscribe(() => {
      for (const l of [...this.refreshListeners]) l();
    });
    // Profiles only pod-identity bindings use start on their first request (podIdentity.sessionStart: onDemand).
    const onDemand = this.pod?.sessions.managed.has(rt.config.name) === true && config.podIdentity?.sessionStart === 'onDemand';
    rt.start({ session: !onDemand });
  }

  /**
   * The pod-identity service of a config: its verifier has loaded the keys
   * (a JWKS file that cannot be read fails start-up/reload; an unreachable
   * JWKS URL is retried on requests, which get 503 until it answers).
   */
  private async buildPodIdentity(config: DaemonConfig, pi: PodIdentityConfig): Promise<PodIdentityService> {
    const log = this.log.child({ component: 'pod-identity' });
    // Loaded only when pod identity is configured: jose is ≈ 1–10 MB of RSS (docs/benchmarks.md).
    const { PodTokenVerifier } = await import('../podidentity/verify.js');
    const verifier = new PodTokenVerifier({
      issuer: pi.issuer,
      audiences: pi.audiences,
      jwks: pi.jwks,
      minRefetchIntervalMs: pi.jwks.refetchIntervalSeconds * 1000,
      maxTokenLifetimeSeconds: pi.maxTokenLifetimeSeconds,
      logger: log,
    });
    try {
      await verifier.load();
    } catch (err) {
      if ('file' in pi.jwks) {
        throw err instanceof UserError ? new UserError(`podIdentity.jwks: ${err.message}`, { reason: err.reason }) : err;
      }
      // Logged by the verifier; requests get 503 naming the reason until the URL answers.
    }
    // Profiles served to ordinary clients by default (or over IMDS) keep running; the others are the bindings' own.
    const always = new Set([config.defaultProfile, config.imds.enabled ? config.imds.profile : undefined].filter((n): n is string => n !== undefined));
    const managed = new Set(pi.bindings.map((b) => b.profile).filter((n) => !always.has(n)));
    const sessions = new OnDemandSessions({
      session: (name) => this.runtimes.get(name)?.session,
      managed,
      idleTimeoutMs: pi.idleTimeoutSeconds * 1000,
      logger: log,
    });
    return new PodIdentityService({ verifier, bindings: pi.bindings, sessions, metrics: this.podMetrics, logger: log });
  }

  private async stopRuntimes(runtimes: Iterable<ProfileRuntime>): Promise<void> {
    const list = [...runtimes];
    await Promise.all(list.map((rt) => rt.stop()));
  }
}
