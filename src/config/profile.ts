// One Roles Anywhere profile: from command-line flags (compatible with AWS's
// `aws_signing_helper credential-process`), environment variables
// (ROLESANYWHERE_<FLAG_IN_UPPER_SNAKE>) or a YAML mapping; validated with
// every problem reported at once, paths made absolute, region resolved.
//
// Nothing here touches the files it names: whether the certificate and key
// exist and are usable is checked when the identity is loaded.
import { homedir } from 'node:os';
import { isAbsolute, resolve } from 'node:path';
import type { ParseArgsConfig } from 'node:util';
import type { ProfileConfig } from './types.js';
import { isLoopbackHostname } from '../net/loopback.js';
import { checkRoleArn, checkRolesAnywhereArn, isValidRegion, type RoleArn, type RolesAnywhereArn } from '../rolesanywhere/arn.js';
import { isValidRoleSessionName } from '../rolesanywhere/endpoint.js';
import { ConfigError, isPlainObject, show, typeName, unknownKeyMessage, type Problem } from './problems.js';

/**
 * `node:util` parseArgs options for one profile. Names and meanings follow
 * `aws_signing_helper credential-process`; `--key-password-file`,
 * `--ca-bundle`, `--expiry-warning-days` and `--without-proxy` are ours.
 *
 * Proxy: like the AWS SDKs we honour HTTPS_PROXY/NO_PROXY by default
 * (`--with-proxy` is accepted for compatibility and is a no-op);
 * `--without-proxy` (or ROLESANYWHERE_WITH_PROXY=false) connects directly.
 */
export const PROFILE_OPTIONS = {
  certificate: { type: 'string' },
  'private-key': { type: 'string' },
  intermediates: { type: 'string' },
  'trust-anchor-arn': { type: 'string' },
  'profile-arn': { type: 'string' },
  'role-arn': { type: 'string' },
  region: { type: 'string' },
  endpoint: { type: 'string' },
  'session-duration': { type: 'string' },
  'role-session-name': { type: 'string' },
  'pkcs8-password': { type: 'string' },
  'with-proxy': { type: 'boolean' },
  'without-proxy': { type: 'boolean' },
  'no-verify-ssl': { type: 'boolean' },
  'key-password-file': { type: 'string' },
  'ca-bundle': { type: 'string' },
  'expiry-warning-days': { type: 'string' },
} as const satisfies NonNullable<ParseArgsConfig['options']>;

/** Help text lines for PROFILE_OPTIONS (for commands' --help). */
export const PROFILE_USAGE = `Profile options (each also read from ROLESANYWHERE_<OPTION_IN_UPPER_SNAKE>, e.g. ROLESANYWHERE_ROLE_ARN):
  --certificate FILE          PEM certificate (leaf first; extra blocks = chain) or PKCS#12 .p12/.pfx
  --private-key FILE          PEM/DER private key (not with a PKCS#12 bundle)
  --intermediates FILE        PEM bundle of intermediate CA certificates
  --trust-anchor-arn ARN      arn:aws:rolesanywhere:<region>:<account>:trust-anchor/<id>
  --profile-arn ARN           arn:aws:rolesanywhere:<region>:<account>:profile/<id>
  --role-arn ARN              arn:aws:iam::<account>:role/<name>
  --region REGION             default: the trust anchor ARN's region
  --endpoint URL              Roles Anywhere endpoint (https; http only for loopback hosts)
  --session-duration SECONDS  900..43200 (default 3600)
  --role-session-name NAME    2-64 characters [A-Za-z0-9_+=,.@-]
  --key-password-file FILE    file holding the key/PKCS#12 password (env ROLESANYWHERE_KEY_PASSWORD also works)
  --pkcs8-password PASSWORD   the password itself (visible to other local users in the process list; prefer a file)
  --ca-bundle FILE            extra PEM roots trusted for the endpoint's TLS certificate
  --no-verify-ssl             do not verify the endpoint's TLS certificate (testing only)
  --with-proxy                accepted for compatibility: HTTPS_PROXY/NO_PROXY are honoured by default
  --without-proxy             ignore HTTPS_PROXY and connect directly
  --expiry-warning-days N     warn when the certificate expires within N days (default 7)`;

/** Defaults a profile inherits (the config file's top-level keys) and how to resolve its paths. */
export interface ProfileDefaults {
  /** Profile name; default: the last segment of `path`, else `default`. */
  name?: string;
  /** Relative paths resolve against this directory (default: process.cwd()). */
  baseDir?: string;
  /** For `~/` expansion (default: os.homedir()). */
  home?: string;
  region?: string;
  endpoint?: string;
  caBundle?: string;
  sessionDuration?: number;
  noVerifySsl?: boolean;
  withProxy?: boolean;
  expiryWarningDays?: number;
  /** How messages name where the defaults came from, e.g. `top-level region`. Default: `default region`. */
  defaultsLabel?: (key: string) => string;
}

export const DEFAULT_SESSION_DURATION = 3600;
export const DEFAULT_EXPIRY_WARNING_DAYS = 7;

/** Keys a profile mapping may hold (YAML, camelCase). */
export const PROFILE_KEYS = [
  'certificate',
  'privateKey',
  'intermediates',
  'keyPasswordFile',
  'trustAnchorArn',
  'profileArn',
  'roleArn',
  'region',
  'endpoint',
  'caBundle',
  'noVerifySsl',
  'withProxy',
  'sessionDuration',
  'roleSessionName',
  'expiryWarningDays',
] as const;
export type ProfileKey = (typeof PROFILE_KEYS)[number];

/** YAML key → flag name. */
export const PROFILE_FLAG: Record<ProfileKey, string> = {
  certificate: 'certificate',
  privateKey: 'private-key',
  intermediates: 'intermediates',
  keyPasswordFile: 'key-password-file',
  trustAnchorArn: 'trust-anchor-arn',
  profileArn: 'profile-arn',
  roleArn: 'role-arn',
  region: 'region',
  endpoint: 'endpoint',
  caBundle: 'ca-bundle',
  noVerifySsl: 'no-verify-ssl',
  withProxy: 'with-proxy',
  sessionDuration: 'session-duration',
  roleSessionName: 'role-session-name',
  expiryWarningDays: 'expiry-warning-days',
};

const PASSWORD_KEYS = new Set(['keyPassword', 'password', 'pkcs8Password', 'passphrase', 'keyPassphrase', 'pass']);

/** `role-arn` → `ROLESANYWHERE_ROLE_ARN`. */
export function envName(flag: string): string {
  return `ROLESANYWHERE_${flag.replace(/-/g, '_').toUpperCase()}`;
}

export const PROFILE_NAME = /^[A-Za-z0-9_.-]+$/;

/** Region of a Roles Anywhere trust anchor/profile ARN, if it is one. */
export function regionOfArn(arn: string): string | undefined {
  for (const kind of ['trust-anchor', 'profile'] as const) {
    const r = checkRolesAnywhereArn(arn, kind);
    if (r.ok) return r.arn.region;
  }
  return undefined;
}

/** Parses `true/false/1/0/yes/no/on/off` (environment values). */
export function parseBoolean(text: string): boolean | undefined {
  const t = text.trim().toLowerCase();
  if (['1', 'true', 'yes', 'on'].includes(t)) return true;
  if (['0', 'false', 'no', 'off'].includes(t)) return false;
  return undefined;
}

/** Resolves `~/x` and relative paths to absolute ones. */
export function resolvePath(p: string, baseDir: string, home?: string): string {
  let out = p;
  if (out === '~' || out.startsWith('~/')) out = (home ?? homedir()) + out.slice(1);
  return isAbsolute(out) ? resolve(out) : resolve(baseDir, out);
}

/** Validated endpoint URL without a trailing slash, or a problem message. */
export function checkEndpoint(value: string): { url?: string; error?: string } {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return { error: `not a URL (expected e.g. https://rolesanywhere.us-east-1.amazonaws.com)` };
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') return { error: `unsupported scheme ${url.protocol.replace(/:$/, '')}; use https://` };
  if (url.protocol === 'http:' && !isLoopbackHostname(url.hostname)) {
    return { error: `plain http is allowed only for loopback hosts (127.0.0.1, [::1], localhost); use https://` };
  }
  if (url.username || url.password) return { error: 'must not contain a user name or password' };
  if (url.search || url.hash) return { error: 'must not contain a query string or fragment' };
  return { url: `${url.origin}${url.pathname.replace(/\/+$/, '')}` };
}

interface CheckContext {
  /** Names a field in messages. */
  label: (key: string) => string;
  defaults: ProfileDefaults;
  problems: Problem[];
  /** A password given on the command line / environment (never from a file). */
  keyPassword?: string;
}

function defaultName(path: string): string {
  const m = /(?:^|\.)([^.]+)$/.exec(path);
  return path.startsWith('profiles.') && m ? m[1]! : 'default';
}

/**
 * Checks one profile mapping; returns it validated, or undefined after
 * pushing problems. Used by validateProfile, profileFromFlags and the config file loader.
 */
export function checkProfile(raw: unknown, ctx: CheckContext, name: string): ProfileConfig | undefined {
  const { label, defaults, problems } = ctx;
  const before = problems.length;
  const add = (key: string, message: string) => problems.push({ path: label(key), message });
  const defaultLabel = defaults.defaultsLabel ?? ((k: string) => `default ${k}`);
  if (!isPlainObject(raw)) {
    problems.push({ path: label(''), message: `expected a mapping of profile settings, got ${typeName(raw)}` });
    return undefined;
  }
  const baseDir = defaults.baseDir ?? process.cwd();

  for (const key of Object.keys(raw)) {
    if ((PROFILE_KEYS as readonly string[]).includes(key)) continue;
    if (PASSWORD_KEYS.has(key)) {
      add(key, 'passwords are not allowed in the configuration; put the password in a file only the daemon can read and set keyPasswordFile');
    } else {
      add(key, unknownKeyMessage(key, PROFILE_KEYS));
    }
  }

  const str = (key: ProfileKey): string | undefined => {
    const v = raw[key];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'string') {
      add(key, `expected a string, got ${typeName(v)}`);
      return undefined;
    }
    if (v.trim() === '') {
      add(key, 'is empty');
      return undefined;
    }
    return v;
  };
  const path = (key: ProfileKey): string | undefined => {
    const v = str(key);
    return v === undefined ? undefined : resolvePath(v, baseDir, defaults.home);
  };
  const bool = (key: ProfileKey): boolean | undefined => {
    const v = raw[key];
    if (v === undefined || v === null) return undefined;
    if (typeof v === 'boolean') return v;
    if (typeof v === 'string') {
      const b = parseBoolean(v);
      if (b !== undefined) return b;
    }
    add(key, `expected true or false, got ${show(v)}`);
    return undefined;
  };
  const int = (key: ProfileKey, min: number, max: number, what: string): number | undefined => {
    const v = raw[key];
    if (v === undefined || v === null) return undefined;
    const n = typeof v === 'number' ? v : typeof v === 'string' && /^\s*\d+\s*$/.test(v) ? Number(v) : NaN;
    if (!Number.isInteger(n) || n < min || n > max) {
      add(key, `${what}, got ${show(v)}`);
      return undefined;
    }
    return n;
  };

  const certificate = path('certificate');
  const privateKey = path('privateKey');
  const intermediates = path('intermediates');
  const keyPasswordFile = path('keyPasswordFile');
  const caBundle = path('caBundle') ?? defaults.caBundle;
  const noVerifySsl = bool('noVerifySsl') ?? defaults.noVerifySsl ?? false;
  const withProxy = bool('withProxy') ?? defaults.withProxy ?? true;
  const sessionDuration =
    int('sessionDuration', 900, 43200, 'must be a whole number of seconds from 900 to 43200 (15 minutes to 12 hours)') ??
    defaults.sessionDuration ??
    DEFAULT_SESSION_DURATION;
  const expiryWarningDays =
    int('expiryWarningDays', 0, 3650, 'must be a whole number of days from 0 to 3650') ?? defaults.expiryWarningDays ?? DEFAULT_EXPIRY_WARNING_DAYS;

  const required = (key: ProfileKey, what: string): void => {
    if (raw[key] === undefined || raw[key] === null) add(key, `required: ${what}`);
  };
  required('certificate', 'the certificate file (PEM, or a PKCS#12 .p12/.pfx bundle)');
  required('trustAnchorArn', 'the trust anchor ARN (arn:aws:rolesanywhere:<region>:<account>:trust-anchor/<id>)');
  required('profileArn', 'the Roles Anywhere profile ARN (arn:aws:rolesanywhere:<region>:<account>:profile/<id>)');
  required('roleArn', 'the IAM role to assume (arn:aws:iam::<account>:role/<name>)');

  const isBundle = certificate !== undefined && /\.(p12|pfx)$/i.test(certificate);
  if (certificate !== undefined && !isBundle && raw.privateKey == null) {
    add('privateKey', 'required: the private key file for the certificate (only a PKCS#12 .p12/.pfx bundle carries its own key)');
  }
  if (isBundle && privateKey !== undefined) {
    add('privateKey', 'not used with a PKCS#12 bundle (the key is inside it); remove it');
  }
  if (keyPasswordFile !== undefined && ctx.keyPassword !== undefined) {
    add('keyPasswordFile', 'give either a password file or a password, not both');
  }

  // ARNs and region.
  // The client's rules (src/rolesanywhere/arn.ts), so a profile that validates here is not refused later.
  const arnOf = (key: 'trustAnchorArn' | 'profileArn', kind: RolesAnywhereArn['kind']): RolesAnywhereArn | undefined => {
    const v = str(key)?.trim();
    if (v === undefined) return undefined;
    const r = checkRolesAnywhereArn(v, kind);
    if (r.ok) return r.arn;
    const expected = `arn:<partition>:rolesanywhere:<region>:<account>:${kind}/<id>`;
    if (r.otherKind) add(key, `this is a ${r.otherKind} ARN; expected ${expected}`);
    else add(key, `not a Roles Anywhere ${kind} ARN (expected ${expected}), got ${show(v)}: ${r.why}`);
    return undefined;
  };
  const trustAnchorArn = str('trustAnchorArn')?.trim();
  const profileArn = str('profileArn')?.trim();
  const ta = arnOf('trustAnchorArn', 'trust-anchor');
  const pa = arnOf('profileArn', 'profile');
  const roleArn = str('roleArn')?.trim();
  let role: RoleArn | undefined;
  if (roleArn !== undefined) {
    const r = checkRoleArn(roleArn);
    if (r.ok) role = r.arn;
    else add('roleArn', `not an IAM role ARN (expected arn:aws:iam::<12-digit account>:role/<name>), got ${show(roleArn)}: ${r.why}`);
  }
  if (ta && pa && ta.region !== pa.region) {
    add('profileArn', `is in region ${pa.region} but the trust anchor is in ${ta.region}; a trust anchor and profile must be in the same region`);
  }
  if (ta && pa && ta.partition !== pa.partition) {
    add('profileArn', `is in partition ${pa.partition} but the trust anchor is in ${ta.partition}`);
  }
  if (ta && role && role.partition !== ta.partition) {
    add('roleArn', `is in partition ${role.partition} but the trust anchor is in ${ta.partition}`);
  }

  let region: string | undefined;
  const ownRegion = str('region')?.trim();
  if (ownRegion !== undefined && !isValidRegion(ownRegion)) {
    add('region', `not an AWS region name (expected e.g. us-east-1), got ${show(ownRegion)}`);
  } else if (ownRegion !== undefined) {
    region = ownRegion;
    if (ta && ta.region !== ownRegion) add('region', `is ${ownRegion} but the trust anchor is in ${ta.region}; remove region or make them match`);
  } else if (defaults.region !== undefined) {
    region = defaults.region;
    if (ta && ta.region !== defaults.region) {
      add('region', `the ${defaultLabel('region')} ${defaults.region} does not match the trust anchor's region ${ta.region}; set region: ${ta.region} for this profile or fix the ARN`);
    }
  } else {
    region = ta?.region;
  }

  let endpoint = defaults.endpoint;
  const ownEndpoint = str('endpoint')?.trim();
  if (ownEndpoint !== undefined) {
    const r = checkEndpoint(ownEndpoint);
    if (r.error) add('endpoint', r.error);
    else endpoint = r.url;
  }

  const roleSessionName = str('roleSessionName');
  if (roleSessionName !== undefined && !isValidRoleSessionName(roleSessionName)) {
    add('roleSessionName', `must be 2-64 characters of letters, digits and _+=,.@- , got ${show(roleSessionName)}`);
  }

  if (problems.length > before) return undefined;
  const out: ProfileConfig = {
    name,
    certificate: certificate!,
    trustAnchorArn: trustAnchorArn!,
    profileArn: profileArn!,
    roleArn: roleArn!,
    region: region!,
    noVerifySsl,
    withProxy,
    sessionDuration,
    expiryWarningDays,
  };
  if (privateKey !== undefined) out.privateKey = privateKey;
  if (intermediates !== undefined) out.intermediates = intermediates;
  if (keyPasswordFile !== undefined) out.keyPasswordFile = keyPasswordFile;
  if (ctx.keyPassword !== undefined) out.keyPassword = ctx.keyPassword;
  if (endpoint !== undefined) out.endpoint = endpoint;
  if (caBundle !== undefined) out.caBundle = caBundle;
  if (roleSessionName !== undefined) out.roleSessionName = roleSessionName;
  return out;
}

/**
 * Validates one profile mapping (YAML shape, camelCase keys). `path` prefixes
 * field names in messages (`profiles.app` → `profiles.app.roleArn: …`).
 * Throws a ConfigError (a UserError) listing every problem.
 */
export function validateProfile(raw: unknown, path: string, defaults: ProfileDefaults = {}): ProfileConfig {
  const problems: Problem[] = [];
  const label = (key: string) => (key ? (path ? `${path}.${key}` : key) : path);
  const name = defaults.name ?? defaultName(path);
  const out = checkProfile(raw, { label, defaults, problems }, name);
  if (!out) throw new ConfigError(path || 'profile', problems);
  return out;
}

/** Profile settings gathered from flags and environment, before validation. */
export interface ProfileInput {
  /** YAML-shaped settings (only those given). */
  raw: Partial<Record<ProfileKey, unknown>>;
  /** How to name each given key in messages (`--role-arn` or `ROLESANYWHERE_ROLE_ARN`). */
  labels: Partial<Record<string, string>>;
  keyPassword?: string;
  problems: Problem[];
  /** True when any profile setting was given by flag or environment. */
  given: boolean;
}

type FlagValues = Record<string, string | boolean | (string | boolean)[] | undefined>;

function envValue(env: NodeJS.ProcessEnv, name: string): string | undefined {
  const v = env[name];
  return v === undefined || v === '' ? undefined : v;
}

/** Collects profile settings from parsed flags, falling back to ROLESANYWHERE_* environment variables. */
export function profileInputFromFlags(values: FlagValues, env: NodeJS.ProcessEnv): ProfileInput {
  const raw: ProfileInput['raw'] = {};
  const labels: ProfileInput['labels'] = {};
  const problems: Problem[] = [];
  for (const key of PROFILE_KEYS) {
    const flag = PROFILE_FLAG[key];
    if (key === 'keyPasswordFile' || key === 'withProxy') continue;
    const fv = values[flag];
    if (fv !== undefined && fv !== false) {
      raw[key] = fv;
      labels[key] = `--${flag}`;
      continue;
    }
    const ev = envValue(env, envName(flag));
    if (ev !== undefined) {
      labels[key] = envName(flag);
      if (key === 'noVerifySsl') {
        const b = parseBoolean(ev);
        if (b === undefined) problems.push({ path: envName(flag), message: `expected true or false, got ${show(ev)}` });
        else raw[key] = b;
      } else {
        raw[key] = ev;
      }
    }
  }

  // Proxy: on by default; --without-proxy or ROLESANYWHERE_WITH_PROXY=false turns it off.
  if (values['with-proxy'] === true && values['without-proxy'] === true) {
    problems.push({ path: '--with-proxy', message: 'give either --with-proxy or --without-proxy, not both' });
  } else if (values['without-proxy'] === true) {
    raw.withProxy = false;
    labels.withProxy = '--without-proxy';
  } else if (values['with-proxy'] === true) {
    raw.withProxy = true;
    labels.withProxy = '--with-proxy';
  } else {
    for (const name of [envName('with-proxy'), envName('without-proxy')]) {
      const ev = envValue(env, name);
      if (ev === undefined) continue;
      const b = parseBoolean(ev);
      if (b === undefined) problems.push({ path: name, message: `expected true or false, got ${show(ev)}` });
      else raw.withProxy = name === envName('with-proxy') ? b : !b;
      labels.withProxy = name;
      break;
    }
  }

  // Password: flags beat the environment; within one level, only one source.
  let keyPassword: string | undefined;
  const flagFile = typeof values['key-password-file'] === 'string' ? values['key-password-file'] : undefined;
  const flagPass = typeof values['pkcs8-password'] === 'string' ? values['pkcs8-password'] : undefined;
  if (flagFile !== undefined || flagPass !== undefined) {
    if (flagFile !== undefined && flagPass !== undefined) {
      problems.push({ path: '--key-password-file', message: 'give either --key-password-file or --pkcs8-password, not both' });
    } else if (flagFile !== undefined) {
      raw.keyPasswordFile = flagFile;
      labels.keyPasswordFile = '--key-password-file';
    } else {
      keyPassword = flagPass;
    }
  } else {
    const envFile = envValue(env, envName('key-password-file'));
    // An empty password is a legitimate value for these two, so only unset counts as absent.
    const envPass = env[envName('key-password')] ?? env[envName('pkcs8-password')];
    if (envFile !== undefined && envPass !== undefined) {
      problems.push({ path: envName('key-password-file'), message: `give either ${envName('key-password-file')} or ${envName('key-password')}, not both` });
    } else if (envFile !== undefined) {
      raw.keyPasswordFile = envFile;
      labels.keyPasswordFile = envName('key-password-file');
    } else if (envPass !== undefined) {
      keyPassword = envPass;
    }
  }
  const given = Object.keys(raw).length > 0 || keyPassword !== undefined;
  const out: ProfileInput = { raw, labels, problems, given };
  if (keyPassword !== undefined) out.keyPassword = keyPassword;
  return out;
}

/** Names a flag-defined field: the flag or variable that set it, else both options. */
export function flagLabel(labels: ProfileInput['labels']): (key: string) => string {
  return (key: string) => {
    if (!key) return 'command line';
    const given = labels[key];
    if (given) return given;
    const flag = PROFILE_FLAG[key as ProfileKey];
    return flag ? `--${flag} (or ${envName(flag)})` : key;
  };
}

export interface FromFlagsOptions {
  /** Profile name (default `default`). */
  name?: string;
  /** Base for relative paths (default process.cwd()). */
  cwd?: string;
}

/**
 * One profile from parsed PROFILE_OPTIONS flags, each falling back to
 * ROLESANYWHERE_<FLAG_IN_UPPER_SNAKE>. The key password comes from
 * --key-password-file / --pkcs8-password, else ROLESANYWHERE_KEY_PASSWORD_FILE /
 * ROLESANYWHERE_KEY_PASSWORD (ROLESANYWHERE_PKCS8_PASSWORD). Throws ConfigError.
 */
export function profileFromFlags(values: FlagValues, env: NodeJS.ProcessEnv, options: FromFlagsOptions = {}): ProfileConfig {
  const input = profileInputFromFlags(values, env);
  const problems = [...input.problems];
  const name = options.name ?? 'default';
  if (!PROFILE_NAME.test(name)) problems.push({ path: 'profile name', message: `${show(name)} may contain only letters, digits, _ . -` });
  const defaults: ProfileDefaults = { baseDir: options.cwd ?? process.cwd() };
  if (env.HOME) defaults.home = env.HOME;
  const ctx: CheckContext = { label: flagLabel(input.labels), defaults, problems };
  if (input.keyPassword !== undefined) ctx.keyPassword = input.keyPassword;
  const out = checkProfile(input.raw, ctx, name);
  if (!out || problems.length > 0) throw new ConfigError('command line', problems);
  return out;
}
