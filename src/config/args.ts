// node:util parseArgs for every command, with clear messages for the two
// mistakes an unset shell variable makes and parseArgs explains badly:
//   --endpoint "$UNSET"             → an empty value (parseArgs accepts it silently)
//   --endpoint $UNSET --role-arn …  → the next option taken for the value
//                                    (parseArgs: "argument is ambiguous")
// Other parse errors are rethrown as they are, for each command's own wording.
import { parseArgs, type ParseArgsConfig } from 'node:util';

/** Options whose empty value means something (an empty password). */
const EMPTY_ALLOWED = /password$/;

export function parseFlags<const T extends ParseArgsConfig>(config: T): ReturnType<typeof parseArgs<T>> {
  const options: NonNullable<ParseArgsConfig['options']> = config.options ?? {};
  const args = config.args ?? [];
  const isOption = (word: string) => {
    const name = word.replace(/^--?/, '').replace(/=.*$/s, '');
    return options[name] !== undefined || options[name.replace(/^no-/, '')] !== undefined || Object.values(options).some((o) => o.short !== undefined && word === `-${o.short}`);
  };
  for (let i = 0; i < args.length; i++) {
    const m = /^--([^=]+)(?:=(.*))?$/s.exec(args[i]!);
    if (args[i] === '--') break;
    if (!m || options[m[1]!]?.type !== 'string') continue;
    const flag = `--${m[1]}`;
    const inline = m[2] !== undefined;
    const value = inline ? m[2] : args[i + 1];
    if (value === '' && !EMPTY_ALLOWED.test(m[1]!)) {
      throw new Error(`${flag} is empty (an unset shell variable?): give it a value, or leave ${flag} out`);
    }
    if (inline) continue;
    if (value === undefined) throw new Error(`${flag} needs a value`);
    if (value.startsWith('-')) {
      // Never echo a value that may be a secret: name it only when it is one of our options.
      const next = isOption(value) ? `the option ${value.replace(/=.*$/s, '')}` : 'an argument starting with "-"';
      throw new Error(`${flag} needs a value, but ${next} follows it (an unset shell variable?); give ${flag} VALUE, or ${flag}=VALUE for a value that starts with "-"`);
    }
    i++;
  }
  return parseArgs(config);
}
