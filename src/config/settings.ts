// THE settings table: every configuration setting of every command, one row each.
//
// Generated from it (do not write these by hand anywhere else):
//   - every command's parseArgs options and option help text, the "did you mean"
//     of a mistyped flag, refused helper flags and argv secret warnings
//     (command-line.ts: optionsFor, usageFor, flagSuggestion, refusedFlag, argvSecretWarnings)
//   - the ROLESANYWHERE_* environment lookup (envNames, readFlagsAndEnv)
//   - the known YAML keys per section and their "did you mean" (keysOf)
//   - defaults and per-field validation (readSetting), and the config types
//     (ProfileConfig / sections in types.ts are mapped types over these rows)
//   - the README option tables and the --help texts are checked against it by
//     test/config/settings.test.ts.
//
// HOW TO ADD A SETTING — add one row below, then use the value:
//   key      YAML path: 'region' (a profile key / top-level key), 'refresh.backoffMaxMs'
//            (a key in a daemon section); leave out for flag/env-only settings.
//   flag     kebab-case flag name without `--` (leave out for file-only settings);
//            arg: its metavariable in --help ('FILE', 'N'); booleans have none.
//            negFlag: the off-switch of a boolean flag (`--no-imds`).
//   env      defaults to ROLESANYWHERE_<FLAG_IN_UPPER_SNAKE> (and the negFlag's twin,
//            meaning the opposite); give a list to override, [] for none.
//   scope    'daemon'    a daemon setting (serve only), in the file's top level or a section;
//            'profile'   one profile's setting (profiles.<name>.<key>), flags for all profile commands;
//            'inherited' like 'profile', and the file's top-level key is every profile's default;
//            'command'   a command-line option of the commands listed in `commands` only.
//   type     'string' | 'path' | 'boolean' | 'int' (min, max, range text) | 'enum' (values)
//            | 'list' (read by hand in load.ts: listen, profiles)
//            | 'section': a value with its own validator, `validate(raw, path, problems)`,
//              returning the validated value (push problems at `path` / `${path}.sub[0]`).
//              raw is the YAML value, or the flag's value (an array when `multiple`),
//              or the environment string. Where it lands:
//                daemon row, key 'podIdentity'      → DaemonConfig.podIdentity
//                daemon row, key 'health.listen'    → DaemonConfig.health.listen
//                  (any dotted daemon key makes a section: its keys are checked and
//                   "did you mean"-ed, its rows read, its defaults filled, its type generated)
//                profile/inherited row, key 'callers' → ProfileConfig.callers
//              Its TypeScript type is the validator's return type (write it out).
//   parse    optional: (text) => { value } | { error } for strings (normalise/validate).
//   default  the value when unset (also shown in --help when `defaultText` is absent).
//   required the "required: …" message when a profile must have it.
//   help     the --help line(s) ('\n' continues on the next line).
//   secret   true for values that must never be logged or shown (passwords).
//   keepsCredentials  true for a profile setting a reload may change while the profile keeps
//            serving its cached credentials (Server reload: RELOAD_KEEPS_CREDENTIALS).
//   commands which commands take the flag (default: profile/inherited → serve,
//            credential-process, update; daemon → serve); 'check', 'sign-string' and
//            'read-certificate-data' must be listed to get it.
//   refused  for an aws_signing_helper flag that cannot work here: the flag is parsed
//            (so it is not "unknown") and giving it fails with this message (refusedFlag).
// Then document the flag/env in README.md's option tables and the key in
// config/daemon.example.yaml (tests fail until you do).
import { DEFAULT_MAX_CALLS_PER_SECOND, DEFAULT_MAX_CONCURRENT } from '../credentials/limiter.js';
import { DEFAULT_BACKOFF_INITIAL_MS, DEFAULT_BACKOFF_MAX_MS } from '../credentials/session.js';
import { isPkcs11Uri, parsePkcs11Uri } from '../identity/pkcs11-uri.js';
import { checkRolesAnywhereArn, isValidRegion, checkRoleArn } from '../rolesanywhere/arn.js';
import { checkEndpointUrl, isValidRoleSessionName } from '../rolesanywhere/endpoint.js';
import { show, typeName, type Problem, type SectionContext } from '../problems.js';
import { checkPodIdentity, finishPodIdentity } from '../podidentity/config.js';
import { validateCallers } from './callers.js';
import { externalIdProblem, validateAssumeRole } from './assume-role.js';
import { checkHealthListen, finishHealthListen } from './health.js';
import { SIGN_DIGESTS } from '../identity/signer.js';

export type Command = 'serve' | 'credential-process' | 'update' | 'check' | 'sign-string' | 'read-certificate-data';
export type Scope = 'daemon' | 'profile' | 'inherited' | 'command';
export type Parsed<T> = { value: T; error?: undefined } | { error: string; value?: undefined };

interface Common {
  key?: string;
  flag?: string;
  arg?: string;
  negFlag?: string;
  /** Help line of negFlag when it gets its own line (else `--flag / --negFlag` share one). */
  negHelp?: string;
  env?: readonly string[];
  scope: Scope;
  commands?: readonly Command[];
  help: string;
  /** Shown in --help instead of the default value (computed defaults). */
  defaultText?: string;
  secret?: boolean;
  /** For a secret flag: the safer way to give it, named in the warning when it is given on the command line. */
  safer?: string;
  required?: string;
  multiple?: boolean;
  short?: string;
  /** Always present after validation even without a default (computed, e.g. region). */
  always?: boolean;
  /**
   * A profile setting a reload may change while the profile keeps serving its cached credentials: it changes
   * how the next session is asked for or who may have it, not whose credentials these are. A change to any
   * other profile setting (identity, key source, role, profile, trust anchor…) drops them.
   */
  keepsCredentials?: true;
  /** Giving the flag fails with this message (an aws_signing_helper flag that cannot work here). */
  refused?: string;
}
export interface StringSetting extends Common {
  type: 'string' | 'path';
  parse?: (text: string) => Parsed<string>;
  default?: string;
}
export interface BooleanSetting extends Common {
  type: 'boolean';
  default?: boolean;
}
export interface IntSetting extends Common {
  type: 'int';
  min: number;
  max: number;
  /** Completes "must be …", e.g. "a whole number of days from 0 to 3650". */
  range: string;
  default?: number;
}
export interface EnumSetting extends Common {
  type: 'enum';
  values: readonly string[];
  default?: string;
}
/** A value the loader reads by hand (e.g. listen: flags, env list and file list with per-item paths). */
export interface ListSetting extends Common {
  type: 'list';
}
export type { SectionContext };

/** A daemon-level YAML section (mapping or list) with its own validator. */
export interface SectionSetting<T = unknown> extends Common {
  type: 'section';
  validate: (raw: unknown, path: string, problems: Problem[]) => T | undefined;
  /**
   * Optional second step once profiles and listen addresses are known: cross-checks
   * (problems at ctx.path…) and resolving file paths. Returns the final value.
   */
  finish?(value: T, ctx: SectionContext): T | undefined;
  default?: T;
}
export type Setting = StringSetting | BooleanSetting | IntSetting | EnumSetting | ListSetting | SectionSetting;

export const PROFILE_COMMANDS = ['serve', 'credential-process', 'update'] as const;
/** Commands that open a private key: the profile commands, `check` and `sign-string`. */
const KEY_COMMANDS = [...PROFILE_COMMANDS, 'check', 'sign-string'] as const;
/** aws_signing_helper's commands: their flags are taken with its meaning, or refused by name. */
const HELPER_COMMANDS = [...PROFILE_COMMANDS, 'sign-string', 'read-certificate-data'] as const;
const OS_STORE_REFUSAL =
  'OS certificate stores (the Windows certificate store, the macOS Keychain) are not supported on this platform; ' +
  'give the certificate and key with --certificate and --private-key (files, a pkcs11: URI or a TPM key)';
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace'] as const;
export const SIGN_STRING_FORMATS = ['json', 'text', 'bin'] as const;
export const DEFAULT_PORT = 9911;
export const DEFAULT_SESSION_DURATION = 3600;
export const DEFAULT_EXPIRY_WARNING_DAYS = 7;
/** The variable holding a token PIN (an env-only row: never a flag or YAML key). */
export const PKCS11_PIN_ENV = 'ROLESANYWHERE_PKCS11_PIN';

/** Validated endpoint URL without a trailing slash, or a problem message. */
export function checkEndpoint(value: string): { url?: string; error?: string } {
  const r = checkEndpointUrl(value);
  if ('problem' in r) return { error: r.problem };
  return { url: `${r.url.origin}${r.url.pathname.replace(/\/+$/, '')}` };
}

function parseEndpointSetting(text: string): Parsed<string> {
  const r = checkEndpoint(text.trim());
  return r.error !== undefined ? { error: r.error } : { value: r.url! };
}

function arnParser(kind: 'trust-anchor' | 'profile') {
  return (text: string): Parsed<string> => {
    const v = text.trim();
    const r = checkRolesAnywhereArn(v, kind);
    if (r.ok) return { value: v };
    const expected = `arn:<partition>:rolesanywhere:<region>:<account>:${kind}/<id>`;
    if (r.otherKind) return { error: `this is a ${r.otherKind} ARN; expected ${expected}` };
    return { error: `not a Roles Anywhere ${kind} ARN (expected ${expected}), got ${show(v)}: ${r.why}` };
  };
}

/** A pkcs11: URI is checked when the configuration is read (a file path is left to the loader). */
export function pkcs11UriParser(text: string): Parsed<string> {
  if (!isPkcs11Uri(text)) return { value: text };
  try {
    parsePkcs11Uri(text);
    return { value: text };
  } catch (err) {
    return { error: (err as Error).message };
  }
}

/**
 * Every setting. Order = order in --help. Read the comment at the top of this
 * file before adding a row.
 */
export const SETTINGS = [
  // ---- profile settings (serve, credential-process, update; some also check) ----
  {
    key: 'certificate', flag: 'certificate', arg: 'FILE', scope: 'profile', type: 'path', commands: [...KEY_COMMANDS, 'read-certificate-data'],
    parse: pkcs11UriParser,
    required: 'the certificate file (PEM, or a PKCS#12 .p12/.pfx bundle), or a pkcs11: URI',
    help: 'PEM certificate (leaf first; extra blocks = chain) or PKCS#12 .p12/.pfx,\nor pkcs11:token=…;object=… (a certificate on a token)',
  },
  {
    key: 'privateKey', flag: 'private-key', arg: 'FILE', scope: 'profile', type: 'path', commands: KEY_COMMANDS,
    parse: pkcs11UriParser,
    help: 'PEM/DER private key (not with a PKCS#12 bundle), a TSS2 PEM TPM key file,\na TPM persistent handle handle:0x81000001, or pkcs11:token=…;object=…;type=private',
  },
  {
    key: 'intermediates', flag: 'intermediates', arg: 'FILE', scope: 'profile', type: 'path', commands: [...PROFILE_COMMANDS, 'check'],
    help: 'PEM bundle of intermediate CA certificates',
  },
  {
    key: 'trustAnchorArn', flag: 'trust-anchor-arn', arg: 'ARN', scope: 'profile', type: 'string', parse: arnParser('trust-anchor'),
    required: 'the trust anchor ARN (arn:aws:rolesanywhere:<region>:<account>:trust-anchor/<id>)',
    help: 'arn:aws:rolesanywhere:<region>:<account>:trust-anchor/<id>',
  },
  {
    key: 'profileArn', flag: 'profile-arn', arg: 'ARN', scope: 'profile', type: 'string', parse: arnParser('profile'),
    required: 'the Roles Anywhere profile ARN (arn:aws:rolesanywhere:<region>:<account>:profile/<id>)',
    help: 'arn:aws:rolesanywhere:<region>:<account>:profile/<id>',
  },
  {
    key: 'roleArn', flag: 'role-arn', arg: 'ARN', scope: 'profile', type: 'string',
    parse: (text: string): Parsed<string> => {
      const v = text.trim();
      const r = checkRoleArn(v);
      return r.ok ? { value: v } : { error: `not an IAM role ARN (expected arn:aws:iam::<12-digit account>:role/<name>), got ${show(v)}: ${r.why}` };
    },
    required: 'the IAM role to assume (arn:aws:iam::<account>:role/<name>)',
    help: 'arn:aws:iam::<account>:role/<name>',
  },
  {
    key: 'region', keepsCredentials: true, flag: 'region', arg: 'REGION', scope: 'inherited', type: 'string', always: true,
    parse: (text: string): Parsed<string> => {
      const v = text.trim();
      return isValidRegion(v) ? { value: v } : { error: `not an AWS region name (expected e.g. us-east-1), got ${show(v)}` };
    },
    help: "default: the trust anchor ARN's region",
  },
  {
    key: 'endpoint', keepsCredentials: true, flag: 'endpoint', arg: 'URL', scope: 'inherited', type: 'string',
    parse: parseEndpointSetting,
    help: 'Roles Anywhere endpoint (https; http only for loopback hosts)',
  },
  {
    key: 'fips', keepsCredentials: true, flag: 'fips', scope: 'inherited', type: 'boolean', default: false,
    help: 'use the FIPS endpoints of Roles Anywhere and STS (only where the region has\nthem: us-east-1, us-east-2, us-west-1, us-west-2, us-gov-east-1, us-gov-west-1)',
  },
  {
    key: 'sessionDuration', keepsCredentials: true, flag: 'session-duration', arg: 'SECONDS', scope: 'inherited', type: 'int', min: 900, max: 43200,
    range: 'a whole number of seconds from 900 to 43200 (15 minutes to 12 hours)', default: DEFAULT_SESSION_DURATION,
    help: `900..43200 (default ${DEFAULT_SESSION_DURATION})`,
  },
  {
    key: 'roleSessionName', keepsCredentials: true, flag: 'role-session-name', arg: 'NAME', scope: 'profile', type: 'string',
    parse: (v: string): Parsed<string> =>
      isValidRoleSessionName(v) ? { value: v } : { error: `must be 2-64 characters of letters, digits and _+=,.@- , got ${show(v)}` },
    help: '2-64 characters [A-Za-z0-9_+=,.@-]',
  },
  {
    // The file's list of hops; one hop from the command line (with --external-id).
    key: 'assumeRole', flag: 'assume-role-arn', arg: 'ARN', scope: 'inherited', type: 'section', validate: validateAssumeRole,
    help: 'then assume this IAM role with STS AssumeRole (role chaining); in the config\nfile a list of hops: [{ roleArn, externalId, roleSessionName, durationSeconds }]',
  },
  {
    flag: 'external-id', arg: 'ID', scope: 'profile', type: 'string',
    parse: (v: string): Parsed<string> => {
      const problem = externalIdProblem(v);
      return problem ? { error: problem } : { value: v };
    },
    help: "the ExternalId the --assume-role-arn role's trust policy requires",
  },
  {
    key: 'stsEndpoint', keepsCredentials: true, flag: 'sts-endpoint', arg: 'URL', scope: 'inherited', type: 'string', env: ['ROLESANYWHERE_STS_ENDPOINT', 'AWS_ENDPOINT_URL_STS'],
    parse: parseEndpointSetting,
    help: 'STS endpoint for assumeRole (default: the region\'s; env AWS_ENDPOINT_URL_STS too)',
  },
  {
    key: 'keyPasswordFile', flag: 'key-password-file', arg: 'FILE', scope: 'profile', type: 'path', commands: KEY_COMMANDS,
    help: 'file holding the key/PKCS#12 password (env ROLESANYWHERE_KEY_PASSWORD also works)',
  },
  {
    // Never a YAML key: a password does not belong in a config file.
    flag: 'pkcs8-password', arg: 'PASSWORD', scope: 'profile', type: 'string', secret: true, commands: KEY_COMMANDS,
    env: ['ROLESANYWHERE_KEY_PASSWORD', 'ROLESANYWHERE_PKCS8_PASSWORD'],
    help: 'the password itself (visible to other local users in the process list; prefer a file)',
    safer: '--key-password-file FILE or ROLESANYWHERE_KEY_PASSWORD',
  },
  {
    // aws_signing_helper's flag; never a YAML key (keyPasswordFile holds a TPM key's password too).
    flag: 'tpm-key-password', arg: 'PASSWORD', scope: 'profile', type: 'string', secret: true, commands: KEY_COMMANDS, env: [],
    help: 'the TPM key password itself (aws_signing_helper compatibility; visible in\nthe process list; prefer --key-password-file)',
    safer: '--key-password-file FILE or ROLESANYWHERE_KEY_PASSWORD',
  },
  {
    key: 'noTpmKeyPassword', flag: 'no-tpm-key-password', scope: 'profile', type: 'boolean', commands: KEY_COMMANDS,
    help: 'the TPM key has no password (aws_signing_helper compatibility)',
  },
  {
    key: 'pkcs11Lib', flag: 'pkcs11-lib', arg: 'PATH', scope: 'inherited', type: 'string', commands: [...KEY_COMMANDS, 'read-certificate-data'],
    defaultText: 'p11-kit-proxy.so',
    help: "PKCS#11 module for pkcs11: URIs (default: p11-kit's proxy,\nwhich loads every module registered with p11-kit)",
  },
  {
    key: 'pkcs11PinFile', flag: 'pkcs11-pin-file', arg: 'FILE', scope: 'profile', type: 'path', commands: [...KEY_COMMANDS, 'read-certificate-data'],
    help: 'file holding the token PIN (env ROLESANYWHERE_PKCS11_PIN also works)',
  },
  {
    // Never a YAML key or a flag: a PIN belongs in a file or the environment. Read by src/runtime/identity-source.ts.
    scope: 'profile', type: 'string', secret: true, env: [PKCS11_PIN_ENV],
    help: 'the token PIN itself, for every profile without a PIN file',
  },
  {
    key: 'reusePin', flag: 'reuse-pin', scope: 'profile', type: 'boolean', default: false, commands: [...PROFILE_COMMANDS, 'sign-string'],
    help: 'log in again with the PIN for keys that want it for every\nsignature (CKA_ALWAYS_AUTHENTICATE, e.g. YubiKey PIV slot 9c)',
  },
  {
    key: 'caBundle', keepsCredentials: true, flag: 'ca-bundle', arg: 'FILE', scope: 'inherited', type: 'path',
    help: "extra PEM roots trusted for the endpoint's TLS certificate",
  },
  {
    key: 'noVerifySsl', keepsCredentials: true, flag: 'no-verify-ssl', scope: 'inherited', type: 'boolean', default: false,
    help: "do not verify the endpoint's TLS certificate (testing only)",
  },
  {
    key: 'withProxy', keepsCredentials: true, flag: 'with-proxy', negFlag: 'without-proxy', scope: 'inherited', type: 'boolean', default: true,
    help: 'accepted for compatibility: HTTPS_PROXY/NO_PROXY are honoured by default',
    negHelp: 'ignore HTTPS_PROXY and connect directly',
  },
  {
    // Serve only: a mapping no flag can express; the top-level one is every profile's default.
    key: 'callers', keepsCredentials: true, scope: 'inherited', type: 'section', commands: ['serve'], validate: validateCallers,
    defaultText: "the daemon's own user",
    help: 'local users/groups (names or ids) allowed to get credentials (any local\nprocess, on any listener): { users: [...], groups: [...] }',
  },
  {
    key: 'expiryWarningDays', keepsCredentials: true, flag: 'expiry-warning-days', arg: 'N', scope: 'inherited', type: 'int', min: 0, max: 3650,
    range: 'a whole number of days from 0 to 3650', default: DEFAULT_EXPIRY_WARNING_DAYS, commands: [...PROFILE_COMMANDS, 'check'],
    help: `warn when the certificate expires within N days (default ${DEFAULT_EXPIRY_WARNING_DAYS})`,
  },
  {
    // aws_signing_helper's OS certificate store flags (Windows, macOS): parsed, then refused.
    flag: 'cert-selector', arg: 'SELECTOR', scope: 'profile', type: 'string', env: [], commands: HELPER_COMMANDS, refused: OS_STORE_REFUSAL,
    help: 'aws_signing_helper: a certificate in the Windows/macOS certificate store;\nnot supported on this platform',
  },
  {
    flag: 'system-store-name', arg: 'NAME', scope: 'profile', type: 'string', env: [], commands: HELPER_COMMANDS, refused: OS_STORE_REFUSAL,
    help: 'aws_signing_helper: a Windows system certificate store; not supported\non this platform',
  },
  {
    flag: 'use-latest-expiring-certificate', scope: 'profile', type: 'boolean', env: [], commands: [...PROFILE_COMMANDS, 'sign-string'], refused: OS_STORE_REFUSAL,
    help: 'aws_signing_helper: pick among certificate store matches; not supported\non this platform',
  },

  // ---- daemon settings (serve) ----
  {
    flag: 'config', arg: 'FILE', scope: 'daemon', type: 'path',
    help: 'YAML config (env ROLESANYWHERE_CONFIG); see config/daemon.example.yaml',
  },
  {
    key: 'listen', flag: 'listen', arg: 'HOST:PORT', scope: 'daemon', type: 'list', multiple: true,
    help: 'IP address and port to serve on, repeatable (env: comma-separated);\n[::1]:9911 for IPv6; host names are refused',
  },
  {
    flag: 'port', arg: 'N', scope: 'daemon', type: 'int', min: 0, max: 65535, range: 'a port number 1..65535 (0 picks a free port)',
    help: `same as --listen 127.0.0.1:N (aws_signing_helper compatibility; default ${DEFAULT_PORT})`,
  },
  {
    // Checked in load.ts (checkHopLimit): Node.js has no per-socket IP TTL for TCP.
    flag: 'hop-limit', arg: 'N', scope: 'daemon', type: 'int', min: 1, max: 255, range: 'an IP TTL from 1 to 255',
    help: "aws_signing_helper's IP TTL of responses: only this host's default TTL is\naccepted (Node.js cannot set a TCP socket's TTL)",
  },
  {
    key: 'allowNonLoopback', flag: 'allow-non-loopback', scope: 'daemon', type: 'boolean', default: false,
    help: 'permit listen addresses other machines can reach',
  },
  {
    key: 'allowUnidentifiedCallers', flag: 'allow-unidentified-callers', scope: 'daemon', type: 'boolean', default: false,
    help: 'serve local callers whose user cannot be looked up (no readable\n/proc/net/tcp, e.g. macOS): callers is then not enforced and every\nlocal user gets IMDS credentials',
  },
  {
    key: 'tokenFile', flag: 'token-file', arg: 'FILE', scope: 'daemon', type: 'path', always: true,
    defaultText:
      '$RUNTIME_DIRECTORY/token, /run/rolesanywhere-credentiald/token as root,\n$XDG_RUNTIME_DIR/rolesanywhere-credentiald/token, else\n~/.cache/rolesanywhere-credentiald/token',
    help: 'endpoint token for AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE (default:\n$RUNTIME_DIRECTORY/token, /run/rolesanywhere-credentiald/token as root,\n$XDG_RUNTIME_DIR/rolesanywhere-credentiald/token, else\n~/.cache/rolesanywhere-credentiald/token)',
  },
  {
    key: 'imds.enabled', flag: 'imds', negFlag: 'no-imds', scope: 'daemon', type: 'boolean', default: true,
    help: 'serve IMDSv2 too (default: on)',
  },
  {
    key: 'imds.profile', scope: 'daemon', type: 'string',
    help: 'the profile IMDS serves (default: the only profile)',
  },
  {
    key: 'imds.allowV1', flag: 'imds-allow-v1', scope: 'daemon', type: 'boolean', default: false,
    help: 'also answer IMDSv1 (token-less) requests',
  },
  {
    key: 'imds.onNonLoopbackUnsafe', flag: 'imds-on-non-loopback-unsafe', scope: 'daemon', type: 'boolean', default: false,
    help: 'also serve IMDS on non-loopback listen addresses: IMDS needs no secret,\nso every client that can connect there gets credentials',
  },
  {
    key: 'logLevel', flag: 'log-level', arg: 'LEVEL', scope: 'daemon', type: 'enum', values: LOG_LEVELS, default: 'info',
    help: 'fatal, error, warn, info (default), debug, trace',
  },
  {
    flag: 'profile-name', arg: 'NAME', scope: 'daemon', type: 'string',
    help: 'the profile the profile options define or override\n(default: the config\'s only profile, or "default")',
  },
  {
    key: 'refresh.backoffInitialMs', scope: 'daemon', type: 'int', min: 1, max: 3_600_000, range: 'milliseconds from 1 to 3600000', default: DEFAULT_BACKOFF_INITIAL_MS,
    help: 'first retry delay after a failed refresh',
  },
  {
    key: 'refresh.backoffMaxMs', scope: 'daemon', type: 'int', min: 1, max: 3_600_000, range: 'milliseconds from 1 to 3600000', default: DEFAULT_BACKOFF_MAX_MS,
    help: 'cap for the retry delay',
  },
  {
    key: 'refresh.maxConcurrent', scope: 'daemon', type: 'int', min: 1, max: 1000, range: 'a number of calls from 1 to 1000', defaultText: String(DEFAULT_MAX_CONCURRENT),
    help: 'CreateSession calls in flight at once across all profiles',
  },
  {
    key: 'refresh.maxCallsPerSecond', scope: 'daemon', type: 'int', min: 1, max: 10_000, range: 'calls per second from 1 to 10000', defaultText: String(DEFAULT_MAX_CALLS_PER_SECOND),
    help: 'CreateSession calls started per second across all profiles',
  },
  {
    key: 'watch.debounceMs', scope: 'daemon', type: 'int', min: 0, max: 600_000, range: 'milliseconds from 0 to 600000', default: 500,
    help: 'debounce for certificate file events',
  },
  {
    key: 'watch.recheckIntervalMs', scope: 'daemon', type: 'int', min: 1, max: 86_400_000, range: 'milliseconds from 1 to 86400000', default: 60_000,
    help: 'periodic re-check of certificate files',
  },
  {
    key: 'connections.max', flag: 'max-connections', arg: 'N', scope: 'daemon', type: 'int', min: 1, max: 1_000_000, range: 'a number of connections from 1 to 1000000', default: 4096,
    help: 'open connections at most, over all listeners (more are closed at once)',
  },
  {
    key: 'connections.maxPerUser', flag: 'max-connections-per-user', arg: 'N', scope: 'daemon', type: 'int', min: 1, max: 1_000_000, range: 'a number of connections from 1 to 1000000', default: 256,
    help: 'open connections at most per local user (uid)',
  },
  {
    key: 'podIdentity', scope: 'daemon', type: 'section', validate: checkPodIdentity, finish: finishPodIdentity,
    help: 'node-agent mode: pods present their service-account token and get the profile bound to it (docs/homes.md, "Kubernetes node agent")',
  },
  {
    key: 'health.listen', flag: 'health-listen', arg: 'HOST:PORT', scope: 'daemon', type: 'section', multiple: true,
    validate: checkHealthListen, finish: finishHealthListen,
    help: 'also serve /healthz, /readyz and /metrics (nothing else) here, repeatable,\ne.g. 0.0.0.0:9912 for kubelet probes and Prometheus; allowed off loopback',
  },
  {
    key: 'profiles', scope: 'daemon', type: 'list',
    help: 'profile name → profile settings',
  },

  // ---- command-only options ----
  { flag: 'ca', arg: 'FILE', scope: 'command', type: 'path', commands: ['check'], help: "the trust anchor's CA certificate(s), PEM or DER", env: [] },
  { flag: 'profile', arg: 'NAME', scope: 'command', type: 'string', commands: ['update'], help: 'credentials file profile to write (default: default)', env: [] },
  { flag: 'once', scope: 'command', type: 'boolean', commands: ['update'], help: 'write once and exit', env: [] },
  {
    flag: 'debug', scope: 'command', type: 'boolean', commands: HELPER_COMMANDS, env: [],
    help: 'more detail on stderr (aws_signing_helper compatibility): serve logs at\nlevel debug (unless a log level is set); the other commands print the\ncauses of an error',
  },
  {
    flag: 'digest', arg: 'DIGEST', scope: 'command', type: 'enum', values: SIGN_DIGESTS, default: 'sha256', commands: ['sign-string'], env: [],
    help: 'SHA256 (default), SHA384 or SHA512: the hash an RSA or EC key signs\n(an ML-DSA key signs the message itself)',
  },
  {
    flag: 'format', arg: 'FORMAT', scope: 'command', type: 'enum', values: SIGN_STRING_FORMATS, default: 'json', commands: ['sign-string'], env: [],
    help: 'json (default: the hex signature as a JSON string), text (hex) or bin\n(the signature bytes)',
  },
] as const satisfies readonly Setting[];

export type SettingRow = (typeof SETTINGS)[number];
const ROWS: readonly Setting[] = SETTINGS;

/** `role-arn` → `ROLESANYWHERE_ROLE_ARN`. */
export function envName(flag: string): string {
  return `ROLESANYWHERE_${flag.replace(/-/g, '_').toUpperCase()}`;
}

/** Parses `true/false/1/0/yes/no/on/off` (environment values). */
export function parseBoolean(text: string): boolean | undefined {
  const t = text.trim().toLowerCase();
  if (['1', 'true', 'yes', 'on'].includes(t)) return true;
  if (['0', 'false', 'no', 'off'].includes(t)) return false;
  return undefined;
}

export function commandsOf(s: Setting): readonly Command[] {
  if (s.commands) return s.commands;
  return s.scope === 'daemon' ? ['serve'] : PROFILE_COMMANDS;
}

/** Environment variables of a setting: [name, inverted] pairs (the negFlag's twin means the opposite). */
export function envNames(s: Setting): { name: string; inverted: boolean }[] {
  if (s.env) return s.env.map((name) => ({ name, inverted: false }));
  if (!s.flag) return [];
  const out = [{ name: envName(s.flag), inverted: false }];
  if (s.negFlag) out.push({ name: envName(s.negFlag), inverted: true });
  return out;
}

/** The setting with this YAML key. */
export function setting(key: string): Setting {
  const s = ROWS.find((r) => r.key === key);
  if (!s) throw new Error(`no setting ${key}`);
  return s;
}

/** The built-in default of a numeric setting (refresh.*, watch.*, …). */
export function defaultOf(key: string): number {
  const s = setting(key);
  if (s.type !== 'int' || s.default === undefined) throw new Error(`${key} has no numeric default`);
  return s.default;
}

/** The setting with this flag (or off-switch flag). */
export function settingOfFlag(flag: string): Setting | undefined {
  return ROWS.find((r) => r.flag === flag || r.negFlag === flag);
}

/** Settings a profile mapping may hold. */
export const PROFILE_SETTINGS = ROWS.filter((s) => (s.scope === 'profile' || s.scope === 'inherited') && s.key !== undefined);
/** Keys a profile mapping may hold (YAML, camelCase). */
export const PROFILE_KEYS = PROFILE_SETTINGS.map((s) => s.key!);

/** The profile settings a reload may change while the profile keeps its cached credentials (the rows' keepsCredentials). */
export const RELOAD_KEEPS_CREDENTIALS: ReadonlySet<string> = new Set(PROFILE_SETTINGS.filter((s) => s.keepsCredentials).map((s) => s.key!));
/** Settings whose top-level value is every profile's default. */
export const INHERITED_SETTINGS = ROWS.filter((s) => s.scope === 'inherited');

/** Known keys directly under a YAML section ('' = the file's top level). */
export function keysOf(section: string): string[] {
  const out: string[] = [];
  const prefix = section ? `${section}.` : '';
  for (const s of ROWS) {
    if (!s.key || !s.key.startsWith(prefix)) continue;
    if (s.scope === 'profile' || s.scope === 'command') continue;
    const first = s.key.slice(prefix.length).split('.')[0]!;
    if (!out.includes(first)) out.push(first);
  }
  return out;
}
/** Top-level keys of the config file. */
export const TOP_KEYS = keysOf('');
/** Daemon sections made of rows (`refresh` from `refresh.backoffMaxMs`, …): each becomes DaemonConfig[name]. */
export const SECTION_NAMES = [...new Set(ROWS.filter((s) => s.scope === 'daemon' && s.key?.includes('.')).map((s) => s.key!.split('.')[0]!))];

// ---- reading one value ----

/**
 * Validates one raw value (YAML value, flag or environment string) against
 * its row; pushes a problem at `path` and returns undefined when it is wrong.
 * Paths come back unresolved (the caller knows the base directory).
 */
export function readSetting(s: Setting, raw: unknown, path: string, problems: Problem[]): unknown {
  if (raw === undefined || raw === null) return undefined;
  const add = (message: string) => {
    problems.push({ path, message });
    return undefined;
  };
  switch (s.type) {
    case 'string':
    case 'path': {
      if (typeof raw !== 'string') return add(`expected a string, got ${typeName(raw)}`);
      if (raw.trim() === '') return add('is empty');
      if (!s.parse) return raw;
      const r = s.parse(raw);
      return r.error !== undefined ? add(r.error) : r.value;
    }
    case 'boolean': {
      if (typeof raw === 'boolean') return raw;
      if (typeof raw === 'string') {
        const b = parseBoolean(raw);
        if (b !== undefined) return b;
      }
      return add(`expected true or false, got ${show(raw)}`);
    }
    case 'int': {
      const n = typeof raw === 'number' ? raw : typeof raw === 'string' && /^\s*\d+\s*$/.test(raw) ? Number(raw) : NaN;
      if (!Number.isInteger(n) || n < s.min || n > s.max) return add(`must be ${s.range}, got ${show(raw)}`);
      return n;
    }
    case 'enum': {
      if (typeof raw === 'string' && s.values.includes(raw.toLowerCase())) return raw.toLowerCase();
      return add(`expected one of ${s.values.join(', ')}, got ${show(raw)}`);
    }
    case 'section':
      return s.validate(raw, path, problems);
    case 'list':
      return raw;
  }
}

// ---- types generated from the rows ----

type ValueOf<S> = S extends { type: 'boolean' }
  ? boolean
  : S extends { type: 'int' }
    ? number
    : S extends { type: 'enum'; values: readonly (infer V)[] }
      ? V
      : S extends { type: 'section'; validate: (...a: never[]) => infer T }
        ? Exclude<T, undefined>
        : string;
type Present<S> = S extends { default: unknown } ? true : S extends { required: string } ? true : S extends { always: true } ? true : false;
type KeyOf<S> = S extends { key: infer K extends string } ? K : never;
type Strip<K extends string, P extends string> = K extends `${P}.${infer R}` ? R : never;

/** The validated values of rows `S`, keyed by YAML key (after `prefix.`), optional unless defaulted/required. */
export type ValuesOf<S, P extends string = never> = {
  [R in S as Present<R> extends true ? ([P] extends [never] ? KeyOf<R> : Strip<KeyOf<R>, P>) : never]: ValueOf<R>;
} & {
  [R in S as Present<R> extends true ? never : [P] extends [never] ? KeyOf<R> : Strip<KeyOf<R>, P>]?: ValueOf<R>;
};

type ProfileRows = Extract<SettingRow, { scope: 'profile' | 'inherited'; key: string }>;
/** A validated profile's settings (types.ts adds name and the password). */
export type ProfileValues = ValuesOf<ProfileRows>;
/** A daemon section's validated values (`refresh`, `watch`, `imds`, …). */
export type SectionValues<P extends string> = ValuesOf<Extract<SettingRow, { scope: 'daemon'; key: `${P}.${string}` }>, P>;
type SectionName = KeyOf<Extract<SettingRow, { scope: 'daemon' }>> extends infer K ? (K extends `${infer P}.${string}` ? P : never) : never;
/** Every daemon section made of rows, plus every top-level 'section' row (its validator's result). */
export type DaemonSections = { [P in SectionName]: SectionValues<P> } & ValuesOf<Extract<SettingRow, { scope: 'daemon'; type: 'section' }>>;
