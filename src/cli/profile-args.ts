// Shared by the `credential-process` and `update` commands: flag parsing into
// a validated profile (the settings table's options for the command).
import { parseFlags } from '../config/args.js';
import { profileFromFlags } from '../config/profile.js';
import { argvSecretWarnings, flagSuggestion, optionsFor, type Command } from '../config/settings.js';
import type { ProfileConfig } from '../config/types.js';
import { UserError } from '../errors.js';

export interface ParsedCommand<V> {
  values: V;
  profile?: ProfileConfig;
  help: boolean;
}

/** parseArgs with the command's options from the settings table; errors become one-line UserErrors naming the fix. */
export function parseProfileArgs(argv: string[], command: Command, env: NodeJS.ProcessEnv = process.env) {
  const options = optionsFor(command);
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseFlags({ args: argv, options, strict: true, allowPositionals: false }) as { values: Record<string, string | boolean | undefined> });
  } catch (err) {
    const msg = err instanceof Error ? err.message.split('\n')[0]! : String(err);
    throw new UserError(`${command}: ${msg.replace(/\. To specify .*$/, '')}${flagSuggestion(msg, command)} — run \`${command} --help\` for the options`, { reason: 'invalid_flags' });
  }
  if (values.help) return { values, help: true as const };
  for (const w of argvSecretWarnings(argv, command)) process.stderr.write(`warning: ${w}\n`);
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

