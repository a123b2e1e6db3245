// The daemon's configuration: command-line flags > ROLESANYWHERE_* environment
// variables > YAML file > built-in defaults.
//
// How the three sources combine (see config/daemon.example.yaml):
// - Global settings (listen, tokenFile, imds, allowNonLoopback, logLevel): a
//   flag beats its environment variable, which beats the file's key.
// - Profiles come from the file's `profiles:` mapping. The file's top-level
//   region, endpoint, caBundle, sessionDuration, noVerifySsl, withProxy and
//   expiryWarningDays are defaults every profile inherits.
// - Profile flags/variables (--certificate, --role-arn, ROLESANYWHERE_REGION, …)
//   define or override ONE profile: the one named by --profile-name (env
//   ROLESANYWHERE_PROFILE_NAME); without it, the file's only profile, or
//   `default` when there is no file. Without a file they are the whole profile.
//
// loadDaemonConfig only reads: it never creates, writes or changes a file, so
// the daemon can call it again on SIGHUP and keep the old config when it throws.
// It does not open the certificate, key or password files either; that happens
// when the identity is loaded.
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { isIP } from 'node:net';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { UserError } from '../errors.js';
import type { DaemonConfig, ListenAddress, ProfileConfig } from './types.js';
import { isLoopbackHostname } from '../net/loopback.js';
import { isValidRegion } from '../rolesanywhere/arn.js';
import { ConfigError, isPlainObject, show, typeName, unknownKeyMessage, type Problem } from './problems.js';
import {
  checkEndpoint,
  checkProfile,
  envName,
  flagLabel,
  parseBoolean,
  PROFILE_FLAG,
  PROFILE_KEYS,
  PROFILE_NAME,
  PROFILE_OPTIONS,
  PROFILE_USAGE,
  profileInputFromFlags,
  resolvePath,
  type ProfileDefaults,
  type ProfileKey,
} from './profile.js';

export const DEFAULT_PORT = 9911;
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace'] as const;

/** parseArgs options of `serve`: the profile flags plus the daemon's own. */
export const SERVE_OPTIONS = {
  ...PROFILE_OPTIONS,
  config: { type: 'string' },
  listen: { type: 'string', multiple: true },
  port: { type: 'string' },
  'token-file': { type: 'string' },
  'allow-non-loopback': { type: 'boolean' },
  imds: { type: 'boolean' },
  'no-imds': { type: 'boolean' },
  'imds-allow-v1': { type: 'boolean' },
  'log-level': { type: 'string' },
  'profile-name': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies NonNullable<ParseArgsConfig['options']>;

export const SERVE_USAGE = `Usage: rolesanywhere-credentiald serve [--config FILE] [options]

Keeps temporary AWS credentials fresh and serves them on the container-credentials
endpoint (/v1/credentials) and IMDSv2. Precedence: flags > environment > config file.

Daemon options (each also read from ROLESANYWHERE_<OPTION_IN_UPPER_SNAKE>):
  --config FILE               YAML config (env ROLESANYWHERE_CONFIG); see config/daemon.example.yaml
  --listen HOST:PORT          address to serve on, repeatable (env: comma-separated); [::1]:9911 for IPv6
  --port N                    same as --listen 127.0.0.1:N (aws_signing_helper compatibility; default ${DEFAULT_PORT})
  --allow-non-loopback        permit listen addresses other machines can reach
  --token-file FILE           endpoint token for AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE (default:
                              $RUNTIME_DIRECTORY/token, /run/rolesanywhere-credentiald/token as root,
                              $XDG_RUNTIME_DIR/rolesanywhere-credentiald/token, else
                              ~/.cache/rolesanywhere-credentiald/token)
  --imds / --no-imds          serve IMDSv2 too (default: on)
  --imds-allow-v1             also answer IMDSv1 (token-less) requests
  --log-level LEVEL           fatal, error, warn, info (default), debug, trace
  --profile-name NAME         the profile the profile options define or override
                              (default: the config's only profile, or "default")

${PROFILE_USAGE}`;

export const TOP_KEYS = [
  'listen',
  'tokenFile',
  'imds',
  'allowNonLoopback',
  'logLevel',
  'refresh',
  'watch',
  'profiles',
  // Defaults shared by every profile:
  'region',
  'endpoint',
  'caBundle',
  'sessionDuration',
  'noVerifySsl',
  'withProxy',
  'expiryWarningDays',
] as const;
const IMDS_KEYS = ['enabled', 'profile', 'allowV1'] as const;
const REFRESH_KEYS = ['backoffInitialMs', 'backoffMaxMs', 'maxConcurrent', 'maxCallsPerSecond'] as const;
const WATCH_KEYS = ['debounceMs', 'recheckIntervalMs'] as const;

export interface LoadOptions {
  /** `serve` arguments (without the command name). */
  argv: string[];
  env: NodeJS.ProcessEnv;
  /** Base for relative paths given on the command line or in the environment (default process.cwd()). */
  cwd?: string;
  /** Effective uid, for the default token file (default process.getuid()). */
  uid?: number;
}

export type ServeValues = ReturnType<typeof parseServeArgs>;

/** Parses `serve` arguments; unknown options and stray arguments are UserErrors. */
export function parseServeArgs(argv: string[]) {
  try {
    return parseArgs({ args: argv, options: SERVE_OPTIONS, strict: true, allowPositionals: false }).values;
  } catch (err) {
    const msg = err instanceof Error ? err.message.split('\n')[0]! : String(err);
    throw new UserError(`${msg.replace(/\. To specify a positional argument.*$/, '')}; run \`rolesanywhere-credentiald serve --help\` for the options`, {
      reason: 'bad_arguments',
    });
  }
}

/** Where the endpoint token lives unless configured. */
export function defaultTokenFile(env: NodeJS.ProcessEnv, uid: number | undefined): string {
  if (env.RUNTIME_DIRECTORY) return join(env.RUNTIME_DIRECTORY.split(':')[0]!, 'token');
  if (uid === 0) return '/run/rolesanywhere-credentiald/token';
  if (env.XDG_RUNTIME_DIR) return join(env.XDG_RUNTIME_DIR, 'rolesanywhere-credentiald', 'token');
  const cache = env.XDG_CACHE_HOME || join(env.HOME || homedir(), '.cache');
  return join(cache, 'rolesanywhere-credentiald', 'token');
}

/** Parses `host:port` / `[v6]:port`; host is returned without brackets. */
export function parseListenAddress(text: string): { address?: ListenAddress; error?: string } {
  const s = text.trim();
  const example = 'expected "host:port", e.g. 127.0.0.1:9911 or [::1]:9911';
  let host: string;
  let portText: string;
  const v6 = /^\[([^\]]+)\]:(\d+)$/.exec(s);
  const plain = /^([^:[\]\s]+):(\d+)$/.exec(s);
  if (v6) {
    host = v6[1]!;
    portText = v6[2]!;
    if (isIP(host) !== 6) return { error: `${show(text)}: ${host} is not an IPv6 address` };
  } else if (plain) {
    host = plain[1]!;
    portText = plain[2]!;
    if (isIP(host) !== 4 && !/^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$/.test(host)) {
      return { error: `${show(text)}: ${show(host)} is not an IP address or host name` };
    }
  } else if ((s.match(/:/g) ?? []).length > 1 && !s.startsWith('[')) {
    return { error: `${show(text)}: put IPv6 addresses in brackets, e.g. [::1]:9911` };
  } else {
    return { error: `${example}, got ${show(text)}` };
  }
  const port = Number(portText);
  if (!Number.isInteger(port) || port > 65535) return { error: `${show(text)}: port must be 1..65535 (0 picks a free port)` };
  return { address: { host, port } };
}

function splitList(text: string): string[] {
  return text
    .split(/[,\s]+/)
    .map((s) => s.trim())
    .filter(Boolean);
}

function envValue(env: NodeJS.ProcessEnv, name: string): string | undefined {
  const v = env[name];
  return v === undefined || v === '' ? undefined : v;
}

/** YAML syntax error → `line L, column C: message`. */
function yamlProblems(errors: { message: string; linePos?: [{ line: number; col: number }, ...unknown[]] | undefined }[]): Problem[] {
  return errors.map((e) => {
    const message = (e.message.split('\n')[0] ?? '').replace(/ at line \d+, column \d+:?$/, '');
    const pos = e.linePos?.[0];
    return { path: pos ? `line ${pos.line}, column ${pos.col}` : '', message: `YAML syntax error: ${message}` };
  });
}

async function readConfigFile(file: string, label: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new UserError(`config file not found: ${file} (from ${label}); check the path`, { reason: 'config_missing' });
    if (code === 'EISDIR') throw new UserError(`config file ${file} (from ${label}) is a directory; give the YAML file's path`, { reason: 'config_missing' });
    if (code === 'EACCES' || code === 'EPERM') {
      throw new UserError(`cannot read config file ${file} (from ${label}): permission denied; make it readable by the daemon's user`, { reason: 'config_unreadable' });
    }
    throw new UserError(`cannot read config file ${file} (from ${label}): ${(err as Error).message}`, { reason: 'config_unreadable' });
  }
  // Loaded on first use: a flag/environment-only daemon never parses YAML.
  const { parseDocument } = await import('yaml');
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) throw new ConfigError(file, yamlProblems(doc.errors));
  if (doc.contents === null) {
    throw new UserError(`config file ${file} is empty; see config/daemon.example.yaml for the keys`, { reason: 'invalid_config' });
  }
  return doc.toJS();
}

class Checker {
  constructor(readonly problems: Problem[]) {}
  add(path: string, message: string): void {
    this.problems.push({ path, message });
  }
  keys(obj: Record<string, unknown>, known: readonly string[], prefix: string): void {
    for (const k of Object.keys(obj)) if (!known.includes(k)) this.add(prefix ? `${prefix}.${k}` : k, unknownKeyMessage(k, known));
  }
  bool(v: unknown, path: string): boolean | undefined {
    if (v === undefined || v === null) return undefined;
    if (typeof v === 'boolean') return v;
    if (typeof v === 'string' && parseBoolean(v) !== undefined) return parseBoolean(v);
    this.add(path, `expected true or false, got ${show(v)}`);
    return undefined;
  }
  int(v: unknown, path: string, min: number, max: number, what: string): number | undefined {
    if (v === undefined || v === null) return undefined;
    const n = typeof v === 'number' ? v : typeof v === 'string' && /^\s*\d+\s*$/.test(v) ? Number(v) : NaN;
    if (!Number.isInteger(n) || n < min || n > max) {
      this.add(path, `${what}, got ${show(v)}`);
      return undefined;
    }
    return n;
  }
  str(v: unknown, path: string): string | undefined {
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'string') this.add(path, `expected a string, got ${typeName(v)}`);
    else if (v.trim() === '') this.add(path, 'is empty');
    else return v;
    return undefined;
  }
  mapping(v: unknown, path: string): Record<string, unknown> | undefined {
    if (v === undefined || v === null) return undefined;
    if (isPlainObject(v)) return v;
    this.add(path, `expected a mapping, got ${typeName(v)}`);
    return undefined;
  }
}

/** A setting's value and where it came from (for messages). */
interface Sourced<T> {
  value: T;
  label: string;
}

function pick<T>(...candidates: (Sourced<T> | undefined)[]): Sourced<T> | undefined {
  return candidates.find((c) => c !== undefined);
}

/**
 * Builds the validated daemon configuration. Reads the config file (if any)
 * and nothing else; throws a UserError (ConfigError listing every problem)
 * when anything is wrong.
 */
export async function loadDaemonConfig(options: LoadOptions): Promise<DaemonConfig> {
  const { env } = options;
  const cwd = options.cwd ?? process.cwd();
  const uid = options.uid ?? process.getuid?.();
  const home = env.HOME || homedir();
  const values = parseServeArgs(options.argv);
  const problems: Problem[] = [];
  const c = new Checker(problems);

  const flagStr = (flag: keyof typeof SERVE_OPTIONS): Sourced<string> | undefined => {
    const v = values[flag];
    return typeof v === 'string' ? { value: v, label: `--${flag}` } : undefined;
  };
  const envStr = (flag: string): Sourced<string> | undefined => {
    const v = envValue(env, envName(flag));
    return v === undefined ? undefined : { value: v, label: envName(flag) };
  };
  const flagBool = (flag: keyof typeof SERVE_OPTIONS): Sourced<boolean> | undefined => (values[flag] === true ? { value: true, label: `--${flag}` } : undefined);
  const envBool = (flag: string): Sourced<boolean> | undefined => {
    const v = envStr(flag);
    if (!v) return undefined;
    const b = parseBoolean(v.value);
    if (b === undefined) {
      c.add(v.label, `expected true or false, got ${show(v.value)}`);
      return undefined;
    }
    return { value: b, label: v.label };
  };

  // ---- the file ----
  const configSrc = pick(flagStr('config'), envStr('config'));
  let file: Record<string, unknown> = {};
  let source: string | undefined;
  let baseDir = cwd;
  if (configSrc) {
    source = resolvePath(configSrc.value, cwd, home);
    baseDir = dirname(source);
    const doc = await readConfigFile(source, configSrc.label);
    if (!isPlainObject(doc)) {
      throw new ConfigError(source, [{ path: '', message: `the file must be a YAML mapping of settings (listen, profiles, …), got ${typeName(doc)}` }]);
    }
    file = doc;
    c.keys(file, TOP_KEYS, '');
  }
  const origin = source ?? 'command line';
  const fileVal = <T>(key: string, value: T | undefined): Sourced<T> | undefined => (value === undefined ? undefined : { value, label: key });

  // ---- listen ----
  const rawListen: { text: unknown; label: string }[] = [];
  let allowNonLoopbackLabel = 'allowNonLoopback: true (or --allow-non-loopback)';
  const flagListen = values.listen;
  const flagPort = flagStr('port');
  const envListen = envStr('listen');
  const envPort = envStr('port');
  const portToListen = (p: Sourced<string>) => {
    const n = c.int(p.value, p.label, 0, 65535, 'must be a port number 1..65535 (0 picks a free port)');
    if (n !== undefined) rawListen.push({ text: `127.0.0.1:${n}`, label: p.label });
  };
  if (flagListen && flagListen.length > 0) {
    if (flagPort) c.add('--port', 'give either --listen or --port, not both');
    flagListen.forEach((l, i) => rawListen.push({ text: l, label: `--listen[${i}]` }));
  } else if (flagPort) {
    portToListen(flagPort);
  } else if (envListen) {
    splitList(envListen.value).forEach((l, i) => rawListen.push({ text: l, label: `${envListen.label}[${i}]` }));
  } else if (envPort) {
    portToListen(envPort);
  } else if (file.listen !== undefined && file.listen !== null) {
    const l = file.listen;
    if (typeof l === 'string') rawListen.push({ text: l, label: 'listen' });
    else if (Array.isArray(l)) {
      if (l.length === 0) c.add('listen', 'is an empty list; give at least one "host:port"');
      l.forEach((x, i) => rawListen.push({ text: x, label: `listen[${i}]` }));
    } else c.add('listen', `expected a list of "host:port", got ${typeName(l)}`);
  } else {
    rawListen.push({ text: `127.0.0.1:${DEFAULT_PORT}`, label: 'default listen address' });
  }

  const allowNonLoopback = pick(flagBool('allow-non-loopback'), envBool('allow-non-loopback'), fileVal('allowNonLoopback', c.bool(file.allowNonLoopback, 'allowNonLoopback')));
  if (!source) allowNonLoopbackLabel = '--allow-non-loopback';
  const listen: ListenAddress[] = [];
  const seen = new Map<string, string>();
  for (const { text, label } of rawListen) {
    if (typeof text !== 'string') {
      c.add(label, `expected "host:port", got ${typeName(text)}`);
      continue;
    }
    const r = parseListenAddress(text);
    if (!r.address) {
      c.add(label, r.error!);
      continue;
    }
    const { host, port } = r.address;
    if (!isLoopbackHostname(host) && !allowNonLoopback?.value) {
      c.add(
        label,
        `${text} is not a loopback address, so other machines could fetch credentials from it; listen on 127.0.0.1 or [::1], or set ${allowNonLoopbackLabel} if a firewall or network policy restricts who can connect`,
      );
    }
    const key = `${host.toLowerCase()}|${port}`;
    if (port !== 0 && seen.has(key)) c.add(label, `duplicate of ${seen.get(key)}`);
    else seen.set(key, label);
    listen.push({ host, port });
  }

  // ---- token file, log level ----
  const tokenSrc = pick(flagStr('token-file'), envStr('token-file'));
  let tokenFile: string;
  if (tokenSrc) tokenFile = resolvePath(tokenSrc.value, cwd, home);
  else {
    const t = c.str(file.tokenFile, 'tokenFile');
    tokenFile = t !== undefined ? resolvePath(t, baseDir, home) : defaultTokenFile(env, uid);
  }

  const levelSrc = pick(flagStr('log-level'), envStr('log-level'), fileVal('logLevel', file.logLevel === null ? undefined : file.logLevel));
  let logLevel: DaemonConfig['logLevel'] = 'info';
  if (levelSrc) {
    const v = levelSrc.value;
    if (typeof v === 'string' && (LOG_LEVELS as readonly string[]).includes(v.toLowerCase())) logLevel = v.toLowerCase() as DaemonConfig['logLevel'];
    else c.add(levelSrc.label, `expected one of ${LOG_LEVELS.join(', ')}, got ${show(v)}`);
  }

  // ---- refresh, watch ----
  const refreshRaw = c.mapping(file.refresh, 'refresh') ?? {};
  c.keys(refreshRaw, REFRESH_KEYS, 'refresh');
  const refresh: DaemonConfig['refresh'] = {
    backoffInitialMs: c.int(refreshRaw.backoffInitialMs, 'refresh.backoffInitialMs', 1, 3_600_000, 'must be milliseconds from 1 to 3600000') ?? 1000,
    backoffMaxMs: c.int(refreshRaw.backoffMaxMs, 'refresh.backoffMaxMs', 1, 3_600_000, 'must be milliseconds from 1 to 3600000') ?? 30_000,
  };
  // Shared by all profiles; left out when unset (the limiter's defaults: 4 and 10).
  const maxConcurrent = c.int(refreshRaw.maxConcurrent, 'refresh.maxConcurrent', 1, 1000, 'must be a number of calls from 1 to 1000');
  if (maxConcurrent !== undefined) refresh.maxConcurrent = maxConcurrent;
  const maxCallsPerSecond = c.int(refreshRaw.maxCallsPerSecond, 'refresh.maxCallsPerSecond', 1, 10_000, 'must be calls per second from 1 to 10000');
  if (maxCallsPerSecond !== undefined) refresh.maxCallsPerSecond = maxCallsPerSecond;
  if (refresh.backoffInitialMs > refresh.backoffMaxMs) {
    c.add('refresh.backoffMaxMs', `is smaller than refresh.backoffInitialMs (${refresh.backoffInitialMs}); make it at least as large`);
  }
  const watchRaw = c.mapping(file.watch, 'watch') ?? {};
  c.keys(watchRaw, WATCH_KEYS, 'watch');
  const watch = {
    debounceMs: c.int(watchRaw.debounceMs, 'watch.debounceMs', 0, 600_000, 'must be milliseconds from 0 to 600000') ?? 500,
    recheckIntervalMs: c.int(watchRaw.recheckIntervalMs, 'watch.recheckIntervalMs', 1, 86_400_000, 'must be milliseconds from 1 to 86400000') ?? 60_000,
  };

  // ---- profile defaults (top level of the file) ----
  const defaults: ProfileDefaults = { baseDir, home, defaultsLabel: (k) => `top-level ${k}` };
  {
    const region = c.str(file.region, 'region')?.trim();
    if (region !== undefined) {
      if (isValidRegion(region)) defaults.region = region;
      else c.add('region', `not an AWS region name (expected e.g. us-east-1), got ${show(region)}`);
    }
    const endpoint = c.str(file.endpoint, 'endpoint')?.trim();
    if (endpoint !== undefined) {
      const r = checkEndpoint(endpoint);
      if (r.error) c.add('endpoint', r.error);
      else defaults.endpoint = r.url!;
    }
    const caBundle = c.str(file.caBundle, 'caBundle');
    if (caBundle !== undefined) defaults.caBundle = resolvePath(caBundle, baseDir, home);
    const sd = c.int(file.sessionDuration, 'sessionDuration', 900, 43200, 'must be a whole number of seconds from 900 to 43200 (15 minutes to 12 hours)');
    if (sd !== undefined) defaults.sessionDuration = sd;
    const nv = c.bool(file.noVerifySsl, 'noVerifySsl');
    if (nv !== undefined) defaults.noVerifySsl = nv;
    const wp = c.bool(file.withProxy, 'withProxy');
    if (wp !== undefined) defaults.withProxy = wp;
    const ew = c.int(file.expiryWarningDays, 'expiryWarningDays', 0, 3650, 'must be a whole number of days from 0 to 3650');
    if (ew !== undefined) defaults.expiryWarningDays = ew;
  }

  // ---- profiles ----
  const fileProfiles = source ? c.mapping(file.profiles, 'profiles') : undefined;
  const input = profileInputFromFlags(values, env);
  problems.push(...input.problems);
  // Flag/env paths are relative to the working directory, file paths to the file's directory.
  for (const key of ['certificate', 'privateKey', 'intermediates', 'keyPasswordFile', 'caBundle'] as const) {
    const v = input.raw[key];
    if (typeof v === 'string' && v.trim() !== '') input.raw[key] = resolvePath(v, cwd, home);
  }
  const fileNames = fileProfiles ? Object.keys(fileProfiles) : [];
  const nameSrc = pick(flagStr('profile-name'), envStr('profile-name'));
  let target: string | undefined;
  if (input.given || nameSrc) {
    if (nameSrc) target = nameSrc.value;
    else if (fileNames.length === 0) target = 'default';
    else if (fileNames.length === 1) target = fileNames[0]!;
    else {
      const given = Object.values(input.labels).filter(Boolean).join(', ') || 'password';
      c.add(
        'command line',
        `profile settings from flags/environment (${given}) apply to one profile, but the config has several (${fileNames.join(', ')}); add --profile-name NAME (or ROLESANYWHERE_PROFILE_NAME)`,
      );
    }
    if (target !== undefined && nameSrc && !input.given && source && !fileNames.includes(target)) {
      c.add(nameSrc.label, `no profile named ${show(target)} in the config (defined: ${fileNames.join(', ') || 'none'}) and no profile options given to define it`);
      target = undefined;
    }
    if (target !== undefined && !PROFILE_NAME.test(target)) {
      c.add(nameSrc?.label ?? 'profile name', `${show(target)} may contain only letters, digits, _ . -`);
      target = undefined;
    }
  }
  if (source && !fileProfiles && !(input.given && target !== undefined)) {
    c.add('profiles', 'required: a mapping of profile names to their certificate, key and ARNs (see config/daemon.example.yaml)');
  }
  if (fileProfiles && fileNames.length === 0 && !(input.given && target !== undefined)) {
    c.add('profiles', 'is empty; define at least one profile');
  }
  if (!source && !input.given) {
    throw new UserError(
      'no profile configured: give --config FILE (or ROLESANYWHERE_CONFIG), or --certificate, --private-key, --trust-anchor-arn, --profile-arn and --role-arn (or their ROLESANYWHERE_* variables); run `rolesanywhere-credentiald serve --help`',
      { reason: 'invalid_config' },
    );
  }

  const profiles: Record<string, ProfileConfig> = {};
  const names = [...fileNames];
  if (target !== undefined && !names.includes(target)) names.push(target);
  for (const name of names) {
    const prefix = `profiles.${name}`;
    if (fileProfiles && name in fileProfiles && !PROFILE_NAME.test(name)) {
      c.add(prefix, `profile names may contain only letters, digits, _ . - (got ${show(name)})`);
      continue;
    }
    let raw: unknown = fileProfiles?.[name];
    const fromFile = fileProfiles !== undefined && name in fileProfiles;
    const ctxDefaults: ProfileDefaults = { ...defaults };
    let label = (key: string) => (key ? `${prefix}.${key}` : prefix);
    let keyPassword: string | undefined;
    if (name === target) {
      if (fromFile && !isPlainObject(raw)) {
        c.add(prefix, `expected a mapping of profile settings, got ${typeName(raw)}`);
        continue;
      }
      const merged: Record<string, unknown> = { ...(raw as Record<string, unknown> | undefined) };
      if (input.raw.keyPasswordFile !== undefined || input.keyPassword !== undefined) delete merged.keyPasswordFile;
      for (const [k, v] of Object.entries(input.raw)) merged[k] = v;
      raw = merged;
      keyPassword = input.keyPassword;
      const fl = flagLabel(input.labels);
      label = (key: string) => {
        if (!key) return prefix;
        if (input.labels[key]) return input.labels[key]!;
        if (fromFile) return `${prefix}.${key}`;
        const flag = PROFILE_FLAG[key as ProfileKey];
        return flag ? fl(key) : `${prefix}.${key}`;
      };
    }
    const ctx: Parameters<typeof checkProfile>[1] = { label, defaults: ctxDefaults, problems };
    if (keyPassword !== undefined) ctx.keyPassword = keyPassword;
    const p = checkProfile(raw, ctx, name);
    if (p) profiles[name] = p;
  }

  // ---- IMDS ----
  const imdsRaw = c.mapping(file.imds, 'imds') ?? {};
  c.keys(imdsRaw, IMDS_KEYS, 'imds');
  if (values.imds && values['no-imds']) c.add('--imds', 'give either --imds or --no-imds, not both');
  const noImdsEnv = envBool('no-imds');
  const enabledSrc = pick(
    flagBool('imds'),
    values['no-imds'] ? { value: false, label: '--no-imds' } : undefined,
    envBool('imds'),
    noImdsEnv ? { value: !noImdsEnv.value, label: noImdsEnv.label } : undefined,
    fileVal('imds.enabled', c.bool(imdsRaw.enabled, 'imds.enabled')),
  );
  const allowV1 = pick(flagBool('imds-allow-v1'), envBool('imds-allow-v1'), fileVal('imds.allowV1', c.bool(imdsRaw.allowV1, 'imds.allowV1')));
  const imds: DaemonConfig['imds'] = { enabled: enabledSrc?.value ?? true, allowV1: allowV1?.value ?? false };
  const imdsProfile = c.str(imdsRaw.profile, 'imds.profile');
  if (imdsProfile !== undefined) {
    if (!names.includes(imdsProfile)) {
      c.add('imds.profile', `no profile named ${show(imdsProfile)}; defined profiles: ${names.join(', ') || '(none)'}`);
    } else imds.profile = imdsProfile;
  } else if (imds.enabled && names.length === 1) {
    imds.profile = names[0]!;
  } else if (imds.enabled && names.length > 1) {
    c.add('imds.profile', `required: IMDS serves one profile and there are ${names.length} (${names.join(', ')}); name one, or set imds.enabled: false`);
  }

  if (problems.length > 0) throw new ConfigError(origin, problems);

  const config: DaemonConfig = {
    listen,
    allowNonLoopback: allowNonLoopback?.value ?? false,
    tokenFile,
    imds,
    profiles,
    logLevel,
    refresh,
    watch,
  };
  if (source) config.source = source;
  const defaultProfile = imds.profile ?? (names.length === 1 ? names[0] : undefined);
  if (defaultProfile !== undefined) config.defaultProfile = defaultProfile;
  return config;
}

function formatListen(a: ListenAddress): string {
  return a.host.includes(':') ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}

/** A plain-text summary of a validated config, safe to print or log (no secrets). */
export function explainConfig(config: DaemonConfig): string {
  const lines: string[] = [];
  lines.push(`source: ${config.source ?? 'command line and environment'}`);
  lines.push(`listen: ${config.listen.map(formatListen).join(', ')}${config.allowNonLoopback ? ' (non-loopback allowed)' : ''}`);
  lines.push(`token file: ${config.tokenFile}`);
  lines.push(
    `imds: ${config.imds.enabled ? `enabled, serving profile ${config.imds.profile ?? '(none)'}${config.imds.allowV1 ? ', IMDSv1 allowed' : ', IMDSv2 only'}` : 'disabled'}`,
  );
  lines.push(`default profile (/v1/credentials): ${config.defaultProfile ?? '(none: clients must name a profile)'}`);
  lines.push(`log level: ${config.logLevel}`);
  for (const p of Object.values(config.profiles)) {
    lines.push(`profile ${p.name}:`);
    lines.push(`  certificate: ${p.certificate}`);
    if (p.privateKey) lines.push(`  private key: ${p.privateKey}`);
    if (p.intermediates) lines.push(`  intermediates: ${p.intermediates}`);
    lines.push(`  key password: ${p.keyPasswordFile ? `from ${p.keyPasswordFile}` : p.keyPassword !== undefined ? 'given (hidden)' : 'none'}`);
    lines.push(`  trust anchor: ${p.trustAnchorArn}`);
    lines.push(`  profile: ${p.profileArn}`);
    lines.push(`  role: ${p.roleArn}${p.roleSessionName ? ` (session name ${p.roleSessionName})` : ''}`);
    lines.push(`  region: ${p.region}${p.endpoint ? `, endpoint ${p.endpoint}` : ''}`);
    lines.push(`  session duration: ${p.sessionDuration}s`);
    lines.push(
      `  TLS: ${p.noVerifySsl ? 'NOT VERIFIED (--no-verify-ssl)' : 'verified'}${p.caBundle ? `, extra roots ${p.caBundle}` : ''}; proxy: ${p.withProxy ? 'HTTPS_PROXY/NO_PROXY honoured' : 'direct'}`,
    );
    lines.push(`  expiry warning: ${p.expiryWarningDays} days before`);
  }
  return lines.join('\n');
}

export { PROFILE_KEYS };
