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
import { isPkcs11Uri, redactPkcs11Uri } from '../identity/pkcs11-uri.js';
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { parseFlags } from './args.js';
import { UserError } from '../errors.js';
import { homeDirectory } from './home.js';
import { permissionHint, readAtMost } from '../identity/files.js';
import type { DaemonConfig, ListenAddress, ProfileConfig } from './types.js';
import { isLoopbackHostname } from '../net/loopback.js';
import { parseListenAddress } from '../net/listen-address.js';
import { ConfigError, isPlainObject, nameList, show, typeName, unknownKeyMessage, type Problem } from '../problems.js';
import { checkProfile, envValue, flagLabel, flagOrEnv, PROFILE_FLAG, PROFILE_NAME, profileInputFromFlags, resolvePath, type ProfileDefaults, type ProfileKey } from './profile.js';
import { DEFAULT_PORT, envName, INHERITED_SETTINGS, keysOf, LOG_LEVELS, PROFILE_KEYS, PROFILE_SETTINGS, readSetting, SECTION_NAMES, setting, settingOfFlag, SETTINGS, TOP_KEYS, type Setting } from './settings.js';
import { flagSuggestion, optionsFor, refusedFlag, usageFor } from './command-line.js';

export { DEFAULT_PORT, LOG_LEVELS, TOP_KEYS };

/** parseArgs options of `serve`: the daemon's and the profile flags, from the settings table. */
export const SERVE_OPTIONS = optionsFor('serve');

export const SERVE_USAGE = `Usage: rolesanywhere-credentiald serve [--config FILE] [options]

Keeps temporary AWS credentials fresh and serves them on the container-credentials
endpoint (/v1/credentials) and IMDSv2. Precedence: flags > environment > config file.

${usageFor('serve')}`;

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
  let values;
  try {
    values = parseFlags({ args: argv, options: SERVE_OPTIONS, strict: true, allowPositionals: false }).values;
  } catch (err) {
    const msg = err instanceof Error ? err.message.split('\n')[0]! : String(err);
    throw new UserError(`${msg.replace(/\. To specify a positional argument.*$/, '')}${flagSuggestion(msg, 'serve')}; run \`rolesanywhere-credentiald serve --help\` for the options`, {
      reason: 'bad_arguments',
    });
  }
  const refused = refusedFlag(values, 'serve');
  if (refused) throw new UserError(refused, { reason: 'bad_arguments' });
  return values;
}

/** Where Linux keeps the IP TTL every socket starts with. */
const DEFAULT_TTL_FILE = '/proc/sys/net/ipv4/ip_default_ttl';

/**
 * aws_signing_helper's `serve --hop-limit N` sets the IP TTL of its responses
 * (1 keeps them from crossing a router, like EC2's IMDS). Node.js can set the
 * TTL of UDP sockets only, so the one value honoured is the one every socket
 * already has: this host's default TTL. Anything else is refused with a way to
 * get the same effect.
 */
export async function checkHopLimit(n: number, label: string, ttlFile = DEFAULT_TTL_FILE): Promise<string | undefined> {
  const text = await readFile(ttlFile, 'utf8').catch(() => undefined);
  const system = text !== undefined && /^\d+\s*$/.test(text) ? Number(text) : undefined;
  if (n === system) return undefined;
  return (
    `Node.js cannot set the IP TTL of TCP responses, so ${label} ${n} cannot be honoured` +
    (system !== undefined ? ` (this host's default, ${system}, is the only value accepted)` : '') +
    '; remove it: the endpoint listens on loopback only unless --allow-non-loopback, so responses never leave this host, ' +
    'or set the TTL in the firewall (e.g. nft add rule inet filter output tcp sport 9911 ip ttl set 1)'
  );
}

/** Where the endpoint token lives unless configured. */
export function defaultTokenFile(env: NodeJS.ProcessEnv, uid: number | undefined): string {
  if (env.RUNTIME_DIRECTORY) return join(env.RUNTIME_DIRECTORY.split(':')[0]!, 'token');
  if (uid === 0) return '/run/rolesanywhere-credentiald/token';
  if (env.XDG_RUNTIME_DIR) return join(env.XDG_RUNTIME_DIR, 'rolesanywhere-credentiald', 'token');
  const cache = env.XDG_CACHE_HOME || join(homeDirectory(env, 'the default token file (~/.cache/rolesanywhere-credentiald/token; set --token-file, tokenFile or XDG_RUNTIME_DIR)'), '.cache');
  return join(cache, 'rolesanywhere-credentiald', 'token');
}

function splitList(text: string): string[] {
  return text
    .split(/[,\s]+/)
    .map((s) => s.trim())
    .filter(Boolean);
}

/** YAML syntax error → `line L, column C: message`. */
function yamlProblems(errors: { message: string; linePos?: [{ line: number; col: number }, ...unknown[]] | undefined }[]): Problem[] {
  return errors.map((e) => {
    const message = (e.message.split('\n')[0] ?? '').replace(/ at line \d+, column \d+:?$/, '');
    const pos = e.linePos?.[0];
    return { path: pos ? `line ${pos.line}, column ${pos.col}` : '', message: `YAML syntax error: ${message}` };
  });
}

/**
 * The largest config file read. A real one is a few KB even with hundreds of
 * profiles; the cap stops a wrong path (a log, an image, /dev/zero) from being
 * read whole into memory before YAML parsing.
 */
export const MAX_CONFIG_BYTES = 1024 * 1024;

async function readConfigFile(file: string, label: string): Promise<unknown> {
  let text: string;
  try {
    const tooLarge = (size: number | undefined) =>
      new UserError(
        `config file ${file} (from ${label}) is ${size === undefined ? 'larger than' : `${size} bytes, more than`} the ${MAX_CONFIG_BYTES} bytes ` +
          'a config file can be; check that the path names the YAML config file',
        { reason: 'file_too_large' },
      );
    text = (await readAtMost(file, MAX_CONFIG_BYTES, tooLarge)).toString('utf8');
  } catch (err) {
    if (err instanceof UserError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new UserError(`config file not found: ${file} (from ${label}); check the path`, { reason: 'config_missing' });
    if (code === 'EISDIR') throw new UserError(`config file ${file} (from ${label}) is a directory; give the YAML file's path`, { reason: 'config_missing' });
    if (code === 'EACCES' || code === 'EPERM') {
      throw new UserError(`cannot read config file ${file} (from ${label}): permission denied; ${permissionHint(file)}`, { reason: 'config_unreadable' });
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
  const home = env.HOME || undefined;
  const values = parseServeArgs(options.argv);
  const problems: Problem[] = [];
  const c = new Checker(problems);

  const flagStr = (flag: string): Sourced<string> | undefined => {
    const v = values[flag];
    return typeof v === 'string' ? { value: v, label: `--${flag}` } : undefined;
  };
  const envStr = (flag: string): Sourced<string> | undefined => {
    const v = envValue(env, envName(flag));
    return v === undefined ? undefined : { value: v, label: envName(flag) };
  };
  /** A setting's value: flag > environment > file (at its YAML path) > nothing; validated by its row. */
  const daemonSetting = <T>(key: string): Sourced<T> | undefined => {
    const s = setting(key);
    const given = flagOrEnv(s, values, env, problems);
    if (given) {
      const v = readSetting(s, given.value, given.label, problems);
      return v === undefined ? undefined : { value: v as T, label: given.label };
    }
    const v = readSetting(s, fileAt(key), key, problems);
    return v === undefined ? undefined : { value: v as T, label: key };
  };
  const fileAt = (key: string): unknown => key.split('.').reduce<unknown>((o, k) => (isPlainObject(o) ? o[k] : undefined), file);
  /** A daemon section (`refresh`, `watch`, `imds`): its keys checked, each row read, defaults filled. */
  const section = (name: string): Record<string, unknown> => {
    const raw = c.mapping(file[name], name) ?? {};
    c.keys(raw, keysOf(name), name);
    const out: Record<string, unknown> = {};
    for (const s of SETTINGS as readonly Setting[]) {
      if (!s.key?.startsWith(`${name}.`)) continue;
      const v = daemonSetting(s.key)?.value ?? ('default' in s ? s.default : undefined);
      if (v !== undefined) out[s.key.slice(name.length + 1)] = v;
    }
    return out;
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

  // ---- listen ----
  const rawListen: { text: unknown; label: string }[] = [];
  let allowNonLoopbackLabel = 'allowNonLoopback: true (or --allow-non-loopback)';
  const flagListen = values.listen as string[] | undefined;
  const flagPort = flagStr('port');
  const envListen = envStr('listen');
  const envPort = envStr('port');
  const portToListen = (p: Sourced<string>) => {
    const n = readSetting(settingOfFlag('port')!, p.value, p.label, problems);
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

  const allowNonLoopback = daemonSetting<boolean>('allowNonLoopback');
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
  const tokenSrc = daemonSetting<string>('tokenFile');
  // Flag/environment paths are relative to the working directory, the file's to its directory.
  const tokenFile = tokenSrc ? resolvePath(tokenSrc.value, tokenSrc.label === 'tokenFile' ? baseDir : cwd, home) : defaultTokenFile(env, uid);
  // aws_signing_helper's --debug: debug logs, unless --log-level says otherwise.
  const logLevel = daemonSetting<DaemonConfig['logLevel']>('logLevel')?.value ?? (values.debug === true ? 'debug' : 'info');
  const hopLimit = flagOrEnv(settingOfFlag('hop-limit')!, values, env, problems);
  if (hopLimit) {
    const n = readSetting(settingOfFlag('hop-limit')!, hopLimit.value, hopLimit.label, problems) as number | undefined;
    const refusal = n === undefined ? undefined : await checkHopLimit(n, hopLimit.label);
    if (refusal) c.add(hopLimit.label, refusal);
  }

  // ---- sections (refresh, watch, imds, and any section a row adds) ----
  const sections: Record<string, unknown> = {};
  for (const name of SECTION_NAMES) sections[name] = section(name);
  for (const s of SETTINGS as readonly Setting[]) {
    // A top-level key with its own validator (type 'section').
    if (s.type !== 'section' || s.scope !== 'daemon' || !s.key || s.key.includes('.')) continue;
    const v = daemonSetting(s.key)?.value ?? s.default;
    if (v !== undefined) sections[s.key] = v;
  }
  const refresh = sections.refresh as DaemonConfig['refresh'];
  if (refresh.backoffInitialMs > refresh.backoffMaxMs) {
    c.add('refresh.backoffMaxMs', `is smaller than refresh.backoffInitialMs (${refresh.backoffInitialMs}); make it at least as large`);
  }

  // ---- profile defaults (top level of the file) ----
  const defaults: ProfileDefaults = { baseDir, home, defaultsLabel: (k) => `top-level ${k}` };
  for (const s of INHERITED_SETTINGS) {
    const key = s.key!;
    let v = readSetting(s, file[key], key, problems);
    if (v !== undefined && s.type === 'path') v = resolvePath(v as string, baseDir, home);
    if (v !== undefined) (defaults as Record<string, unknown>)[key] = v;
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
        `profile settings from flags/environment (${given}) apply to one profile, but the config has several (${nameList(fileNames)}); add --profile-name NAME (or ROLESANYWHERE_PROFILE_NAME)`,
      );
    }
    if (target !== undefined && nameSrc && !input.given && source && !fileNames.includes(target)) {
      c.add(nameSrc.label, `no profile named ${show(target)} in the config (defined: ${nameList(fileNames) || 'none'}) and no profile options given to define it`);
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
  const imds = sections.imds as DaemonConfig['imds'];
  const imdsProfile = imds.profile;
  if (imdsProfile !== undefined) {
    if (!names.includes(imdsProfile)) {
      c.add('imds.profile', `no profile named ${show(imdsProfile)}; defined profiles: ${nameList(names) || '(none)'}`);
      delete imds.profile;
    }
  } else if (imds.enabled && names.length === 1) {
    imds.profile = names[0]!;
  } else if (imds.enabled && names.length > 1) {
    c.add('imds.profile', `required: IMDS serves one profile and there are ${names.length} (${nameList(names)}); name one, or set imds.enabled: false`);
  }

  // ---- sections' cross-checks (bindings name profiles, addresses not shared, paths resolved) ----
  for (const s of SETTINGS as readonly Setting[]) {
    if (s.type !== 'section' || !s.finish || !s.key) continue;
    // A dotted key ('health.listen') lives in its section's object.
    const dot = s.key.indexOf('.');
    const holder = (dot < 0 ? sections : sections[s.key.slice(0, dot)]) as Record<string, unknown> | undefined;
    const name = dot < 0 ? s.key : s.key.slice(dot + 1);
    if (holder?.[name] === undefined) continue;
    const v = s.finish(holder[name], { path: s.key, problems, resolvePath: (p) => resolvePath(p, baseDir, home), profiles: names, listen });
    if (v === undefined) delete holder[name];
    else holder[name] = v;
  }

  if (problems.length > 0) throw new ConfigError(origin, problems);

  const config = {
    ...sections,
    listen,
    allowNonLoopback: allowNonLoopback?.value ?? false,
    allowUnidentifiedCallers: daemonSetting<boolean>('allowUnidentifiedCallers')?.value ?? false,
    tokenFile,
    imds,
    profiles,
    logLevel,
  } as DaemonConfig;
  if (source) config.source = source;
  const defaultProfile = imds.profile ?? (names.length === 1 ? names[0] : undefined);
  if (defaultProfile !== undefined) config.defaultProfile = defaultProfile;
  return config;
}

function formatListen(a: ListenAddress): string {
  return a.host.includes(':') ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}

/** A value for explainConfig: lists joined, listen addresses as host:port, secrets hidden. */
function explainValue(s: Setting, value: unknown): string {
  if (s.secret) return 'given (hidden)';
  if (typeof value === 'string' && isPkcs11Uri(value)) return redactPkcs11Uri(value);
  if (s.key === 'listen') return (value as ListenAddress[]).map(formatListen).join(', ');
  if (Array.isArray(value)) return value.map((v) => (typeof v === 'object' ? JSON.stringify(v) : String(v))).join(', ');
  if (typeof value === 'object' && value !== null) return JSON.stringify(value);
  return String(value);
}

/**
 * A plain-text summary of a validated config, safe to print or log: one line
 * per setting of the table (secrets hidden), then each profile's settings.
 */
export function explainConfig(config: DaemonConfig): string {
  const lines: string[] = [];
  const at = (obj: unknown, key: string): unknown => key.split('.').reduce<unknown>((o, k) => (isPlainObject(o) ? o[k] : undefined), obj);
  lines.push(`source: ${config.source ?? 'command line and environment'}`);
  for (const s of SETTINGS as readonly Setting[]) {
    if (s.scope !== 'daemon' || !s.key || s.key === 'profiles') continue;
    const v = at(config, s.key);
    if (v !== undefined) lines.push(`${s.key}: ${explainValue(s, v)}`);
  }
  lines.push(`default profile (/v1/credentials): ${config.defaultProfile ?? '(none: clients must name a profile)'}`);
  for (const p of Object.values(config.profiles)) {
    lines.push(`profile ${p.name}:`);
    for (const s of PROFILE_SETTINGS) {
      const v = (p as Record<string, unknown>)[s.key!];
      if (v !== undefined) lines.push(`  ${s.key}: ${explainValue(s, v)}`);
    }
    lines.push(`  key password: ${p.keyPasswordFile ? `from ${p.keyPasswordFile}` : p.keyPassword !== undefined ? 'given (hidden)' : 'none'}`);
    if (p.noVerifySsl) lines.push('  WARNING: the endpoint\'s TLS certificate is NOT verified (noVerifySsl)');
  }
  return lines.join('\n');
}

export { PROFILE_KEYS, parseListenAddress };
