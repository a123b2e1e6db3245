// The command line, generated from the settings table (settings.ts): each
// command's parseArgs options and --help text, the "did you mean" of a mistyped
// flag, aws_signing_helper flags refused by name, and warnings for secrets given
// in argv.
import type { ParseArgsConfig } from 'node:util';
import { isPkcs11Uri } from '../identity/pkcs11-uri.js';
import { closest } from '../problems.js';
import { commandsOf, pkcs11UriParser, PKCS11_PIN_ENV, SETTINGS, settingOfFlag, type Command, type Setting } from './settings.js';

const ROWS: readonly Setting[] = SETTINGS;

type Options = NonNullable<ParseArgsConfig['options']>;

/** parseArgs options of a command, with --help. */
export function optionsFor(command: Command): Options {
  const options: Options = {};
  for (const s of ROWS) {
    if (!s.flag || !commandsOf(s).includes(command)) continue;
    const type = s.type === 'boolean' ? 'boolean' : 'string';
    options[s.flag] = s.multiple ? { type, multiple: true } : s.short ? { type, short: s.short } : { type };
    if (s.negFlag) options[s.negFlag] = { type: 'boolean' };
  }
  options.help = { type: 'boolean', short: 'h' };
  return options;
}

const COLUMN = 28;

function usageLine(left: string, help: string): string {
  const [first, ...rest] = help.split('\n');
  const pad = left.length + 2 > COLUMN ? `${left}\n${' '.repeat(COLUMN + 2)}` : left.padEnd(COLUMN);
  return [`  ${pad}${first}`, ...rest.map((l) => `${' '.repeat(COLUMN + 2)}${l}`)].join('\n');
}

function usageOf(s: Setting): string[] {
  const flag = `--${s.flag}${s.arg ? ` ${s.arg}` : ''}`;
  if (s.negFlag && s.negHelp) return [usageLine(flag, s.help), usageLine(`--${s.negFlag}`, s.negHelp)];
  if (s.negFlag) return [usageLine(`${flag} / --${s.negFlag}`, s.help)];
  return [usageLine(flag, s.help)];
}

/**
 * Help text of a command's options from the table: for `serve` the daemon
 * options then the profile options; for the others the command's own options
 * then the profile options it takes. Ends with the --help line.
 */
export function usageFor(command: Command): string {
  const rows = ROWS.filter((s) => s.flag && commandsOf(s).includes(command));
  const own = rows.filter((s) => s.scope === 'daemon' || s.scope === 'command');
  const profile = rows.filter((s) => s.scope === 'profile' || s.scope === 'inherited');
  const parts: string[] = [];
  if (own.length > 0) {
    const head = command === 'serve' ? 'Daemon options (each also read from ROLESANYWHERE_<OPTION_IN_UPPER_SNAKE>):' : 'Options:';
    parts.push([head, ...own.flatMap(usageOf)].join('\n'));
  }
  const head =
    command === 'check' || command === 'sign-string'
      ? 'Identity options (the password also from ROLESANYWHERE_KEY_PASSWORD_FILE / ROLESANYWHERE_KEY_PASSWORD):'
      : command === 'read-certificate-data'
        ? 'Certificate options:'
        : 'Profile options (each also read from ROLESANYWHERE_<OPTION_IN_UPPER_SNAKE>, e.g. ROLESANYWHERE_ROLE_ARN):';
  parts.push([head, ...profile.flatMap(usageOf), usageLine('-h, --help', 'show this help')].join('\n'));
  return parts.join('\n\n');
}

/** `--certficate` → ` (did you mean --certificate?)` for a parseArgs "Unknown option" message ('' otherwise). */
export function flagSuggestion(message: string, command: Command): string {
  const m = /Unknown option '(-{1,2}[^']+)'/.exec(message);
  if (!m) return '';
  const word = m[1]!.replace(/^-+/, '').replace(/=.*$/, '');
  const guess = closest(word, Object.keys(optionsFor(command)));
  return guess ? ` (did you mean --${guess}?)` : '';
}

/** The message for a refused flag given to `command` (an aws_signing_helper flag that cannot work here), or undefined. */
export function refusedFlag(values: Record<string, unknown>, command: Command): string | undefined {
  const s = ROWS.find((r) => r.refused && r.flag && commandsOf(r).includes(command) && values[r.flag] !== undefined && values[r.flag] !== false);
  return s ? `--${s.flag}: ${s.refused}` : undefined;
}

/** A pkcs11: URI carrying its PIN (a pin-value attribute, in the path or the query). */
function hasPinValue(value: string): boolean {
  return isPkcs11Uri(value) && /[:;?&]pin-value=/i.test(value);
}

/**
 * Warnings for secrets given on `command`'s command line, which every local
 * user can read (/proc/PID/cmdline, ps): a secret flag's value (rows with
 * `secret`), and a pin-value in a pkcs11: URI. Each names the flag and the
 * safer form, never the secret; one per flag.
 */
export function argvSecretWarnings(argv: readonly string[], command: Command): string[] {
  const out = new Map<string, string>();
  const visible = 'puts it in the command line, which every local user can read (ps, /proc/PID/cmdline)';
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') break;
    const m = /^--([^=]+)(?:=(.*))?$/s.exec(arg);
    if (!m) continue;
    const s = settingOfFlag(m[1]!);
    if (!s || s.flag !== m[1] || !commandsOf(s).includes(command) || s.type === 'boolean') continue;
    const value = m[2] ?? argv[++i];
    if (value === undefined) continue;
    if (s.secret && s.safer) out.set(s.flag, `--${s.flag} ${visible}; give it with ${s.safer}`);
    else if ('parse' in s && s.parse === pkcs11UriParser && hasPinValue(value)) {
      out.set(s.flag, `--${s.flag}: the pkcs11: URI's pin-value ${visible}; use pin-source=file:/path in the URI, --pkcs11-pin-file FILE or ${PKCS11_PIN_ENV}`);
    }
  }
  return [...out.values()];
}
