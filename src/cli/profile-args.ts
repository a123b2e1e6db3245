// Shared by the `credential-process` and `update` commands: flag parsing into
// a validated profile (the settings table's options for the command).
import { parseFlags } from '../config/args.js';
import { profileFromFlags } from '../config/profile.js';
import { type Command } from '../config/settings.js';
import { argvSecretWarnings, flagSuggestion, optionsFor, refusedFlag } from '../config/command-line.js';
import type { ProfileConfig } from '../config/types.js';
import { enableDebugOutput, UserError } from '../errors.js';

export interface ParsedCommand<V> {
  values: V;
  profile?: ProfileConfig;
  help: boolean;
}

export type FlagValues = Record<string, string | boolean | undefined>;

/**
 * parseArgs with the command's options from the settings table; errors become
 * one-line UserErrors naming the fix. A refused aws_signing_helper flag is an
 * error; `--debug` turns on the CLI's debug output; a secret given in argv is
 * warned about (argvSecretWarnings).
 */
export function parseCommandFlags(argv: string[], command: Command): FlagValues {
  let values: FlagValues;
  try {
    ({ values } = parseFlags({ args: argv, options: optionsFor(command), strict: true, allowPositionals: false }) as { values: FlagValues });
  } catch (err) {
    const msg = err instanceof Error ? err.message.split('\n')[0]! : String(err);
    throw new UserError(`${command}: ${msg.replace(/\. To specify .*$/, '')}${flagSuggestion(msg, command)} — run \`${command} --help\` for the options`, { reason: 'invalid_flags' });
  }
  if (values.help) return values;
  const refused = refusedFlag(values, command);
  if (refused) throw new UserError(`${command}: ${refused}`, { reason: 'invalid_flags' });
  if (values.debug === true) enableDebugOutput();
  for (const w of argvSecretWarnings(argv, command)) process.stderr.write(`warning: ${w}\n`);
  return values;
}

/** The command's flags (parseCommandFlags) and the profile they define. */
export function parseProfileArgs(argv: string[], command: Command, env: NodeJS.ProcessEnv = process.env) {
  const values = parseCommandFlags(argv, command);
  if (values.help) return { values, help: true as const };
  let profile: ProfileConfig;
  try {
    profile = profileFromFlags(values, env, { name: 'default' });
  } catch (err) {
    const problems = (err as { problems?: { path: string; message: string }[] }).problems;
    if (err instanceof UserError && problems && problems.length > 0) {
      const missing = problems.filter((p) => p.message.startsWith('required'));
      const others = problems.filter((p) => !p.message.startsWith('required'));
      const parts: string[] = [];
      if (missing.length > 0) parts.push(`missing required ${missing.map((p) => p.path.replace(/ \(or .*\)$/, '')).join(', ')}`);
      for (const p of others) parts.push(p.path ? `${p.path}: ${p.message}` : p.message);
      throw new UserError(`${command}: ${parts.join('; ')}`, { reason: 'invalid_flags' });
    }
    throw err;
  }
  return { values, profile, help: false as const };
}

