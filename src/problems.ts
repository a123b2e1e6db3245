// Collecting configuration problems so a user sees ALL of them at once, each
// naming the exact field (YAML path, flag or environment variable) and the fix.
import { UserError } from './errors.js';

/** What a settings-table section's `finish` step gets: the rest of the validated config (src/config/settings.ts). */
export interface SectionContext {
  path: string;
  problems: Problem[];
  /** Resolves a path given in the config file (relative to its directory, ~ expanded). */
  resolvePath: (p: string) => string;
  /** Names of the configured profiles. */
  profiles: readonly string[];
  /** The ordinary listen addresses (ListenAddress of src/net/listen-address.ts). */
  listen: readonly { host: string; port: number }[];
}

export interface Problem {
  /** `profiles.app.roleArn`, `listen[1]`, `--role-arn`, `ROLESANYWHERE_REGION`, or '' for the whole input. */
  path: string;
  message: string;
}

/**
 * Invalid configuration. `message` is one line for a single problem, or a
 * header line followed by one indented line per problem. `problems` holds the
 * same list for programs (tests, the daemon's reload log).
 */
export class ConfigError extends UserError {
  readonly problems: Problem[];
  /** What was being read: the config file path, or `command line`. */
  readonly origin: string;

  constructor(origin: string, problems: Problem[]) {
    super(formatProblems(origin, problems), { reason: 'invalid_config' });
    this.name = 'ConfigError';
    this.problems = problems;
    this.origin = origin;
  }
}

export function formatProblem(p: Problem): string {
  return p.path ? `${p.path}: ${p.message}` : p.message;
}

export function formatProblems(origin: string, problems: Problem[]): string {
  const lines = problems.map(formatProblem);
  if (lines.length === 1) return `invalid configuration (${origin}): ${lines[0]}`;
  return `invalid configuration (${origin}), ${lines.length} problems:\n${lines.map((l) => `  ${l}`).join('\n')}`;
}

/** Levenshtein distance, case-insensitive. */
function distance(a: string, b: string): number {
  a = a.toLowerCase();
  b = b.toLowerCase();
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return row[b.length]!;
}

/** The known key closest to `word`, when it is plausibly a typo of it. */
export function closest(word: string, known: readonly string[]): string | undefined {
  const norm = (s: string) => s.toLowerCase().replace(/[-_]/g, '');
  let best: string | undefined;
  let bestD = Infinity;
  for (const k of known) {
    const d = norm(k) === norm(word) ? 0 : distance(word, k);
    if (d < bestD) {
      bestD = d;
      best = k;
    }
  }
  if (best === undefined) return undefined;
  return bestD <= Math.max(2, Math.floor(best.length / 3)) ? best : undefined;
}

/** `unknown key — did you mean X?` / `unknown key (known keys: …)`. */
export function unknownKeyMessage(key: string, known: readonly string[]): string {
  const guess = closest(key, known);
  return guess ? `unknown key — did you mean ${guess}?` : `unknown key (known keys: ${known.join(', ')})`;
}

/** Short, safe rendering of a user value in a message (never use for secrets). */
export function show(value: unknown): string {
  let s: string;
  if (typeof value === 'string') s = JSON.stringify(value);
  else if (value === null) s = 'null';
  else if (Array.isArray(value)) s = 'a list';
  else if (typeof value === 'object') s = 'a mapping';
  else s = String(value);
  return s.length > 120 ? `${s.slice(0, 117)}...` : s;
}

export function typeName(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  return `a ${typeof value}`;
}

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Names for a message: all of them up to `max`, else the first `max` and how many more (a config may have 1000 profiles). */
export function nameList(names: readonly string[], max = 10): string {
  if (names.length <= max) return names.join(', ');
  return `${names.slice(0, max).join(', ')} … and ${names.length - max} more`;
}
