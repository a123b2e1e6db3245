// One Roles Anywhere profile: from command-line flags (compatible with AWS's
// `aws_signing_helper credential-process`), environment variables
// (ROLESANYWHERE_<FLAG_IN_UPPER_SNAKE>) or a YAML mapping; validated with
// every problem reported at once, paths made absolute, region resolved.
//
// Nothing here touches the files it names: whether the certificate and key
// exist and are usable is checked when the identity is loaded.
import { isAbsolute, resolve } from 'node:path';
import { homeDirectory } from './home.js';
import type { ProfileConfig } from './types.js';
import { isKeyFile } from '../identity/key-sources.js';
import { isPkcs11Uri } from '../identity/pkcs11-uri.js';
import { checkRoleArn, checkRolesAnywhereArn, type RoleArn, type RolesAnywhereArn } from '../rolesanywhere/arn.js';
import { roleArnProblem } from './assume-role.js';
import { fipsProblem } from '../rolesanywhere/endpoint.js';
import { ConfigError, isPlainObject, show, typeName, unknownKeyMessage, type Problem } from '../problems.js';
import { checkEndpoint, DEFAULT_EXPIRY_WARNING_DAYS, DEFAULT_SESSION_DURATION, envName, envNames, INHERITED_SETTINGS, parseBoolean, PROFILE_KEYS, PROFILE_SETTINGS, readSetting, settingOfFlag, type ProfileValues, type Setting } from './settings.js';
import { optionsFor, usageFor } from './command-line.js';

/** `node:util` parseArgs options of the profile commands (credential-process, update): generated from the settings table. */
export const PROFILE_OPTIONS = optionsFor('credential-process');

/** Help text of the profile options (for commands' --help), from the settings table. */
export const PROFILE_USAGE = usageFor('credential-process');

type InheritedKey = (typeof INHERITED_SETTINGS)[number]['key'] & keyof ProfileValues;

/** Defaults a profile inherits (the config file's top-level keys) and how to resolve its paths. */
export interface ProfileDefaults extends Partial<Pick<ProfileValues, InheritedKey>> {
  /** Profile name; default: the last segment of `path`, else `default`. */
  name?: string;
  /** Relative paths resolve against this directory (default: process.cwd()). */
  baseDir?: string;
  /** For `~/` expansion (default: $HOME, else the user database's home; asked for only when a path starts with ~). */
  home?: string;
  /** How messages name where the defaults came from, e.g. `top-level region`. Default: `default region`. */
  defaultsLabel?: (key: string) => string;
}

export { DEFAULT_SESSION_DURATION, DEFAULT_EXPIRY_WARNING_DAYS, PROFILE_KEYS, envName, parseBoolean, checkEndpoint };
export type ProfileKey = keyof ProfileValues;

/** YAML key → flag name. */
export const PROFILE_FLAG: Partial<Record<ProfileKey, string>> = Object.fromEntries(
  PROFILE_SETTINGS.filter((s) => s.flag !== undefined).map((s) => [s.key!, s.flag!]),
);

const PASSWORD_KEYS = new Set(['keyPassword', 'password', 'pkcs8Password', 'passphrase', 'keyPassphrase', 'pass']);

export const PROFILE_NAME = /^[A-Za-z0-9_.-]+$/;

/** Region of a Roles Anywhere trust anchor/profile ARN, if it is one. */
export function regionOfArn(arn: string): string | undefined {
  for (const kind of ['trust-anchor', 'profile'] as const) {
    const r = checkRolesAnywhereArn(arn, kind);
    if (r.ok) return r.arn.region;
  }
  return undefined;
}


/** Resolves `~/x` and relative paths to absolute ones. */
export function resolvePath(p: string, baseDir: string, home?: string): string {
  // A key or certificate in a device (`pkcs11:…`, `handle:0x81000001`) is not a file.
  if (!isKeyFile(p)) return p;
  let out = p;
  if (out === '~' || out.startsWith('~/')) out = (home ?? homeDirectory(process.env, `the path ${p}`)) + out.slice(1);
  return isAbsolute(out) ? resolve(out) : resolve(baseDir, out);
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
 * Each field is read by its row of the settings table; the rules that relate
 * several fields are in crossCheck below.
 */
export function checkProfile(raw: unknown, ctx: CheckContext, name: string): ProfileConfig | undefined {
  const { label, defaults, problems } = ctx;
  const before = problems.length;
  const add = (key: string, message: string) => problems.push({ path: label(key), message });
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

  const values: Record<string, unknown> = { name };
  for (const s of PROFILE_SETTINGS) {
    const key = s.key!;
    if (s.required && (raw[key] === undefined || raw[key] === null)) add(key, `required: ${s.required}`);
    let v = readSetting(s, raw[key], label(key), problems);
    if (v !== undefined && s.type === 'path') v = resolvePath(v as string, baseDir, defaults.home);
    if (v === undefined && s.scope === 'inherited') v = (defaults as Record<string, unknown>)[key];
    if (v === undefined && 'default' in s) v = s.default;
    if (v !== undefined) values[key] = v;
  }
  if (ctx.keyPassword !== undefined) values.keyPassword = ctx.keyPassword;
  crossCheck(raw, values, ctx, add);
  if (problems.length > before) return undefined;
  return values as unknown as ProfileConfig;
}

/** The one hand-written check: rules between fields (key vs bundle, password sources, ARN regions/partitions, region). */
function crossCheck(raw: Record<string, unknown>, values: Record<string, unknown>, ctx: CheckContext, add: (key: string, message: string) => void): void {
  const defaultLabel = ctx.defaults.defaultsLabel ?? ((k: string) => `default ${k}`);
  const certificate = values.certificate as string | undefined;
  const isBundle = certificate !== undefined && /\.(p12|pfx)$/i.test(certificate);
  // A certificate on a token has its key next to it (found by its CKA_ID).
  const onToken = certificate !== undefined && isPkcs11Uri(certificate);
  if (certificate !== undefined && !isBundle && !onToken && raw.privateKey == null) {
    add('privateKey', 'required: the private key file for the certificate (only a PKCS#12 .p12/.pfx bundle carries its own key), or a pkcs11: URI');
  }
  if (isBundle && values.privateKey !== undefined) {
    add('privateKey', 'not used with a PKCS#12 bundle (the key is inside it); remove it');
  }
  if (values.keyPasswordFile !== undefined && ctx.keyPassword !== undefined) {
    add('keyPasswordFile', 'give either a password file or a password, not both');
  }

  // ARNs that passed their own row's check; the client's rules (src/rolesanywhere/arn.ts).
  const arn = (key: string, kind: RolesAnywhereArn['kind']): RolesAnywhereArn | undefined => {
    const v = values[key];
    if (typeof v !== 'string') return undefined;
    const r = checkRolesAnywhereArn(v, kind);
    return r.ok ? r.arn : undefined;
  };
  const ta = arn('trustAnchorArn', 'trust-anchor');
  const pa = arn('profileArn', 'profile');
  const r = typeof values.roleArn === 'string' ? checkRoleArn(values.roleArn) : undefined;
  const role: RoleArn | undefined = r?.ok ? r.arn : undefined;
  if (ta && pa && ta.region !== pa.region) {
    add('profileArn', `is in region ${pa.region} but the trust anchor is in ${ta.region}; a trust anchor and profile must be in the same region`);
  }
  if (ta && pa && ta.partition !== pa.partition) {
    add('profileArn', `is in partition ${pa.partition} but the trust anchor is in ${ta.partition}`);
  }
  if (ta && role && role.partition !== ta.partition) {
    add('roleArn', `is in partition ${role.partition} but the trust anchor is in ${ta.partition}`);
  }

  // Region: its own (must match the trust anchor), else the inherited default (same), else the trust anchor's.
  const own = raw.region !== undefined && raw.region !== null;
  const region = values.region as string | undefined;
  if (own && region !== undefined) {
    if (ta && ta.region !== region) add('region', `is ${region} but the trust anchor is in ${ta.region}; remove region or make them match`);
  } else if (!own && region !== undefined) {
    if (ta && ta.region !== region) {
      add('region', `the ${defaultLabel('region')} ${region} does not match the trust anchor's region ${ta.region}; set region: ${ta.region} for this profile or fix the ARN`);
    }
  } else if (!own && ta) {
    values.region = ta.region;
  }

  // FIPS endpoints exist only in some regions; an explicit endpoint is used as given.
  const finalRegion = values.region as string | undefined;
  if (values.fips === true && finalRegion !== undefined) {
    const ra = values.endpoint === undefined ? fipsProblem('rolesanywhere', finalRegion) : undefined;
    const hops = values.assumeRole as unknown[] | undefined;
    const sts = hops && hops.length > 0 && values.stsEndpoint === undefined ? fipsProblem('sts', finalRegion) : undefined;
    if (ra ?? sts) add('fips', (ra ?? sts)!);
  }
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

/** An environment variable's value; set-but-empty counts as unset (as for every ROLESANYWHERE_* variable). */
export function envValue(env: NodeJS.ProcessEnv, name: string): string | undefined {
  const v = env[name];
  return v === undefined || v === '' ? undefined : v;
}

/** Collects profile settings from parsed flags, falling back to their ROLESANYWHERE_* environment variables (from the settings table). */
export function profileInputFromFlags(values: FlagValues, env: NodeJS.ProcessEnv): ProfileInput {
  const raw: ProfileInput['raw'] = {};
  const labels: ProfileInput['labels'] = {};
  const problems: Problem[] = [];
  for (const s of PROFILE_SETTINGS) {
    const key = s.key! as ProfileKey;
    if (!s.flag || key === 'keyPasswordFile') continue;
    const given = flagOrEnv(s, values, env, problems);
    if (given) {
      raw[key] = given.value;
      labels[key] = given.label;
    }
  }
  assumeRoleInput(raw, values, env, problems);
  const pw = passwordInput(values, env);
  problems.push(...pw.problems);
  if (pw.keyPasswordFile) {
    raw.keyPasswordFile = pw.keyPasswordFile.value;
    labels.keyPasswordFile = pw.keyPasswordFile.label;
  }
  const given = Object.keys(raw).length > 0 || pw.keyPassword !== undefined;
  const out: ProfileInput = { raw, labels, problems, given };
  if (pw.keyPassword !== undefined) out.keyPassword = pw.keyPassword;
  return out;
}

/**
 * --external-id (or its variable) joins the one hop --assume-role-arn gives:
 * `assumeRole: [{ roleArn, externalId }]`. Without a role to assume it is a mistake.
 */
function assumeRoleInput(raw: ProfileInput['raw'], values: FlagValues, env: NodeJS.ProcessEnv, problems: Problem[]): void {
  const row = settingOfFlag('external-id')!;
  const given = flagOrEnv(row, values, env, problems);
  if (!given) return;
  const externalId = readSetting(row, given.value, given.label, problems) as string | undefined;
  if (externalId === undefined) return;
  const arn = raw.assumeRole;
  if (typeof arn !== 'string') {
    problems.push({ path: given.label, message: 'is for the role --assume-role-arn names; give --assume-role-arn ARN too (or set externalId in the config file\'s assumeRole list)' });
    return;
  }
  // A bad ARN stays a string, for its own row to report under --assume-role-arn.
  if (roleArnProblem(arn) === undefined) raw.assumeRole = [{ roleArn: arn.trim(), externalId }];
}

/**
 * One setting's value from its flag, else its environment variable(s), with
 * the name of where it came from. A boolean's off-switch (`--without-proxy`,
 * ROLESANYWHERE_WITHOUT_PROXY) gives the opposite value; giving both flags is a problem.
 */
export function flagOrEnv(s: Setting, values: FlagValues, env: NodeJS.ProcessEnv, problems: Problem[]): { value: unknown; label: string } | undefined {
  if (s.flag) {
    const on = values[s.flag];
    const off = s.negFlag ? values[s.negFlag] : undefined;
    if (on === true && off === true) {
      problems.push({ path: `--${s.flag}`, message: `give either --${s.flag} or --${s.negFlag}, not both` });
      return undefined;
    }
    if (off === true) return { value: false, label: `--${s.negFlag}` };
    if (on !== undefined && on !== false) return { value: on, label: `--${s.flag}` };
  }
  for (const { name, inverted } of envNames(s)) {
    const ev = envValue(env, name);
    if (ev === undefined) continue;
    if (!inverted) return { value: ev, label: name };
    const b = parseBoolean(ev);
    if (b === undefined) {
      problems.push({ path: name, message: `expected true or false, got ${show(ev)}` });
      return undefined;
    }
    return { value: !b, label: name };
  }
  return undefined;
}

/** Where a key's password comes from, before anything is read. */
export interface PasswordInput {
  keyPasswordFile?: { value: string; label: string };
  /** The password itself (--pkcs8-password, ROLESANYWHERE_KEY_PASSWORD / ROLESANYWHERE_PKCS8_PASSWORD). Never log it. */
  keyPassword?: string;
  problems: Problem[];
}

/**
 * The key/PKCS#12 password source of every command (serve, credential-process,
 * update and check): flags beat the environment; within one level only one
 * source. An empty environment variable counts as unset, as for every other
 * setting.
 */
export function passwordInput(values: FlagValues, env: NodeJS.ProcessEnv): PasswordInput {
  const out: PasswordInput = { problems: [] };
  const flagFile = typeof values['key-password-file'] === 'string' ? values['key-password-file'] : undefined;
  // --tpm-key-password is aws_signing_helper's name for the same thing, for TPM keys.
  const passFlags = (['pkcs8-password', 'tpm-key-password'] as const).filter((f) => typeof values[f] === 'string');
  const flagPass = passFlags.length > 0 ? (values[passFlags[0]!] as string) : undefined;
  if (flagFile !== undefined || flagPass !== undefined) {
    const given = [...(flagFile !== undefined ? ['key-password-file'] : []), ...passFlags].map((f) => `--${f}`);
    if (given.length > 1) {
      const message = given.length === 2 ? `give either ${given[0]} or ${given[1]}, not both` : `give only one of ${given.join(', ')}`;
      out.problems.push({ path: given[0]!, message });
    } else if (flagFile !== undefined) {
      out.keyPasswordFile = { value: flagFile, label: '--key-password-file' };
    } else {
      out.keyPassword = flagPass;
    }
    return out;
  }
  const fileEnv = envName('key-password-file');
  const envFile = envValue(env, fileEnv);
  // Like every ROLESANYWHERE_* variable, an empty one counts as unset (`docker run -e VAR=`);
  // an empty password comes from an empty password file or `--pkcs8-password ''`.
  const passEnv = settingOfFlag('pkcs8-password')!;
  const envPass = envNames(passEnv).map(({ name }) => envValue(env, name)).find((v) => v !== undefined);
  if (envFile !== undefined && envPass !== undefined) {
    out.problems.push({ path: fileEnv, message: `give either ${fileEnv} or ${envNames(passEnv)[0]!.name}, not both` });
  } else if (envFile !== undefined) {
    out.keyPasswordFile = { value: envFile, label: fileEnv };
  } else if (envPass !== undefined) {
    out.keyPassword = envPass;
  }
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
