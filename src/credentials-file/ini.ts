// Minimal, byte-preserving edits of an AWS shared credentials file (INI as
// botocore's configparser reads it). Only the managed keys of one section
// change; every other byte — other sections, comments, blank lines, spacing,
// CRLF line endings, unknown keys — stays exactly as it was.
//
// Text is handled as latin1 ("binary") so arbitrary bytes round-trip; the
// values we write are ASCII and the section name is converted to UTF-8 bytes.
import { UserError } from '../errors.js';

export interface Line {
  /** Content without the line ending. */
  text: string;
  /** '\n', '\r\n', '\r' or '' (last line without one). */
  eol: string;
}

function splitLines(text: string): Line[] {
  const lines: Line[] = [];
  const re = /([^\r\n]*)(\r\n|\n|\r|$)/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(text)) !== null) {
    if (m[0] === '') break;
    lines.push({ text: m[1]!, eol: m[2]! });
  }
  return lines;
}

// ---- reading, exactly as Python's configparser (RawConfigParser, strict) does ----------------
//
// Every line gets the role configparser gives it. What decides a role is
// configparser's state: the current section, the current option and the
// indentation of the last option or header line. A non-blank line indented
// deeper than that continues the current option's value (so does an indented
// `[section]` line after a key); blank and comment lines change nothing (an
// indented line after a blank line still continues the value); keys may be
// indented.

/** Whitespace as Python's str.strip() and `\s` see it in ASCII (JavaScript's trim differs: \x1c-\x1f, \xa0). */
const PY_WS = ' \t\n\r\v\f\x1c\x1d\x1e\x1f';
const PY_WS_CLASS = '[ \\t\\n\\r\\v\\f\\x1c-\\x1f]';
const OPTION_RE = new RegExp(`^(.*?)${PY_WS_CLASS}*([=:])${PY_WS_CLASS}*(.*)$`, 's');
const BOM = '\xef\xbb\xbf';

function pyStrip(s: string): string {
  let a = 0;
  let b = s.length;
  while (a < b && PY_WS.includes(s[a]!)) a++;
  while (b > a && PY_WS.includes(s[b - 1]!)) b--;
  return s.slice(a, b);
}

function pyIndent(s: string): number {
  let i = 0;
  while (i < s.length && PY_WS.includes(s[i]!)) i++;
  return i;
}

/** configparser's optionxform: lower-case (ASCII only here, so other bytes survive untouched). */
function optionKey(name: string): string {
  return pyStrip(name).replace(/[A-Z]+/g, (c) => c.toLowerCase());
}

/** configparser's special section, inherited by every other one. */
export const DEFAULT_SECTION = 'DEFAULT';

export type IniRole =
  | { kind: 'blank' }
  | { kind: 'comment' }
  | { kind: 'section'; name: string; indent: number }
  | { kind: 'option'; section: string; key: string; indent: number; value: string; valueStart: number }
  /** A line continuing the value of the option on line `option`. */
  | { kind: 'continuation'; option: number; value: string }
  /** A line configparser cannot read. */
  | { kind: 'invalid'; error: IniErrorKind };

export type IniErrorKind = 'MissingSectionHeaderError' | 'DuplicateSectionError' | 'DuplicateOptionError' | 'ParsingError';

export interface IniParse {
  lines: Line[];
  roles: IniRole[];
  /** The error configparser raises for this text, with its line index; undefined when it reads the file. */
  error?: { kind: IniErrorKind; line: number };
}

/**
 * Gives every line its configparser role. Unlike configparser it does not
 * stop at the first error: it records the one configparser would raise
 * (immediate errors win over a ParsingError, which configparser raises only
 * at the end) and keeps going the way configparser would have.
 */
export function parseIni(text: string): IniParse {
  const lines = splitLines(text);
  const roles: IniRole[] = [];
  let section: string | undefined;
  let option: number | undefined; // line index of the current option; undefined also for an empty option name
  let indentLevel = 0;
  const seenSections = new Set<string>();
  const seenOptions = new Set<string>();
  let fatal: IniParse['error'];
  let deferred: IniParse['error'];
  const fail = (kind: IniErrorKind, line: number, immediate: boolean) => {
    if (immediate) fatal ??= { kind, line };
    else deferred ??= { kind, line };
  };
  lines.forEach((line, i) => {
    const text = i === 0 && line.text.startsWith(BOM) ? line.text.slice(BOM.length) : line.text;
    const value = pyStrip(text);
    if (value.startsWith('#') || value.startsWith(';')) return roles.push({ kind: 'comment' });
    if (value === '') return roles.push({ kind: 'blank' });
    const indent = pyIndent(text);
    if (section !== undefined && option !== undefined && indent > indentLevel) {
      return roles.push({ kind: 'continuation', option, value });
    }
    indentLevel = indent;
    const header = /^\[(.+)\]/s.exec(value);
    if (header) {
      const name = header[1]!;
      if (name !== DEFAULT_SECTION && seenSections.has(name)) fail('DuplicateSectionError', i, true);
      seenSections.add(name);
      section = name;
      option = undefined;
      return roles.push({ kind: 'section', name, indent });
    }
    if (section === undefined) {
      fail('MissingSectionHeaderError', i, true);
      return roles.push({ kind: 'invalid', error: 'MissingSectionHeaderError' });
    }
    const m = OPTION_RE.exec(value);
    if (!m) {
      fail('ParsingError', i, false);
      return roles.push({ kind: 'invalid', error: 'ParsingError' });
    }
    if (m[1] === '') fail('ParsingError', i, false);
    const key = optionKey(m[1]!);
    const id = `${section}\u0000${key}`;
    if (seenOptions.has(id)) fail('DuplicateOptionError', i, true);
    seenOptions.add(id);
    option = key === '' ? undefined : i;
    // Where the value starts in the raw line: after the indentation, the name, the delimiter and the spaces around it.
    const valueStart = line.text.length - text.length + indent + (value.length - m[3]!.length);
    return roles.push({ kind: 'option', section, key, indent, value: pyStrip(m[3]!), valueStart });
  });
  return { lines, roles, error: fatal ?? deferred };
}

/** What configparser (and so botocore and the AWS CLI) reads from a credentials file. */
export type IniView =
  | { ok: true; sections: Record<string, Record<string, string>>; defaults: Record<string, string> }
  | { ok: false; error: IniErrorKind; line: number };

/** The sections and values configparser reads from `text` (latin1-decoded bytes), or the error it raises. */
export function readIni(text: string): IniView {
  const parsed = parseIni(text);
  if (parsed.error) return { ok: false, error: parsed.error.kind, line: parsed.error.line + 1 };
  const values = new Map<number, string[]>();
  const sections: Record<string, Record<string, string>> = {};
  const defaults: Record<string, string> = {};
  let option: number | undefined;
  parsed.roles.forEach((role, i) => {
    if (role.kind === 'section') {
      option = undefined;
      if (role.name !== DEFAULT_SECTION) sections[role.name] ??= {};
    } else if (role.kind === 'option') {
      option = role.key === '' ? undefined : i;
      values.set(i, [role.value]);
    } else if (role.kind === 'continuation') values.get(role.option)!.push(role.value);
    // configparser keeps blank lines inside a value (empty_lines_in_values), then strips the end.
    else if (role.kind === 'blank' && option !== undefined) values.get(option)!.push('');
  });
  for (const [i, parts] of values) {
    const role = parsed.roles[i] as Extract<IniRole, { kind: 'option' }>;
    const target = role.section === DEFAULT_SECTION ? defaults : (sections[role.section] ??= {});
    target[role.key] = pyRstrip(parts.join('\n'));
  }
  return { ok: true, sections, defaults };
}

function pyRstrip(s: string): string {
  let b = s.length;
  while (b > 0 && PY_WS.includes(s[b - 1]!)) b--;
  return s.slice(0, b);
}

export function validateProfileName(name: string): void {
  if (!name || /[\][\r\n]/.test(name) || name.trim() !== name) {
    throw new UserError(`--profile "${name.replace(/[\r\n]/g, ' ')}" is not a usable profile name: use letters, digits and -_. without brackets or surrounding spaces`, {
      reason: 'invalid_profile_name',
    });
  }
  if (name === DEFAULT_SECTION) {
    throw new UserError(
      `--profile ${DEFAULT_SECTION} names the credentials file's special section whose keys every other profile inherits (Python's configparser, used by the AWS CLI): choose another profile name (the AWS CLI's own default profile is "default", lower-case)`,
      { reason: 'invalid_profile_name' },
    );
  }
}

/**
 * Sets `values` (key → ASCII value) in section `[profile]` of the credentials
 * file text `original` (latin1-decoded), returning the new text. Lines are
 * read as configparser reads them (see parseIni). Existing keys are replaced
 * in place (keeping their indentation, spelling and separator, dropping the
 * old value's continuation lines), missing ones are added after the section's
 * last value, indented like the line that follows, so that no neighbouring
 * line changes its meaning, and a missing section is appended at the end.
 * `remove` keys are deleted from the section.
 */
export function setSectionValues(original: string, profile: string, values: Record<string, string>, remove: string[] = [], file = 'the credentials file'): string {
  validateProfileName(profile);
  for (const [k, v] of Object.entries(values)) {
    if (/[\r\n]/.test(v) || /[^\x20-\x7e]/.test(v)) throw new Error(`value for ${k} is not printable ASCII`);
  }
  const sectionName = Buffer.from(profile, 'utf8').toString('latin1');
  const { lines, roles } = parseIni(original);
  const eol = lines.find((l) => l.eol !== '')?.eol ?? '\n';

  const headers = roles.flatMap((r, i) => (r.kind === 'section' ? [{ i, name: r.name }] : []));
  const matching = headers.filter((h) => h.name === sectionName);
  if (matching.length > 1) {
    throw new UserError(`${file} has the section [${profile}] ${matching.length} times, which the AWS CLI rejects: merge them by hand, then run update again`, {
      reason: 'duplicate_section',
    });
  }

  const wanted = new Map(Object.entries(values).map(([k, v]) => [k.toLowerCase(), v]));
  const dropped = new Set(remove.map((k) => k.toLowerCase()));

  if (matching.length === 0) {
    // An unindented header is never a continuation line, whatever precedes it.
    let prefix = original;
    if (prefix.length > 0 && lines[lines.length - 1]!.eol === '') prefix += eol;
    if (prefix.length > 0 && pyStrip(lines[lines.length - 1]!.text) !== '') prefix += eol;
    const body = [`[${sectionName}]`, ...Object.entries(values).map(([k, v]) => `${k} = ${v}`)].join(eol);
    return prefix + body + eol;
  }

  const start = matching[0]!.i;
  const end = headers.find((h) => h.i > start)?.i ?? lines.length; // exclusive
  const out: Line[] = lines.slice(0, start + 1);
  const written = new Set<string>();
  let lastValueOut = out.length - 1; // index in `out` after which to insert missing keys
  let lastValueIn = start; // the same place in `lines`
  const skipped = new Set<number>(); // option lines replaced or dropped: their continuations go too
  const removed = new Set<number>(); // input lines not copied as they were
  for (let i = start + 1; i < end; i++) {
    const line = lines[i]!;
    const role = roles[i]!;
    if (role.kind === 'continuation' && skipped.has(role.option)) {
      removed.add(i);
      continue;
    }
    if (role.kind === 'option' && (wanted.has(role.key) || dropped.has(role.key))) {
      skipped.add(i);
      removed.add(i);
      // Replace the first occurrence; drop duplicates and removed keys.
      if (wanted.has(role.key) && !written.has(role.key)) {
        out.push({ text: line.text.slice(0, role.valueStart) + wanted.get(role.key)!, eol: line.eol });
        written.add(role.key);
        lastValueOut = out.length - 1;
        lastValueIn = i;
      }
      continue;
    }
    out.push(line);
    if (role.kind === 'option' || role.kind === 'continuation' || role.kind === 'invalid') {
      lastValueOut = out.length - 1;
      lastValueIn = i;
    }
  }
  const missing = [...wanted.entries()].filter(([k]) => !written.has(k));
  if (missing.length > 0) {
    // Indent new keys like the next line that means something (a header, or nothing at the end):
    // then that line keeps its role, and the new keys are not continuations of the value before.
    let indent = '';
    for (let i = lastValueIn + 1; i < lines.length; i++) {
      const r = roles[i]!;
      if (r.kind === 'blank' || r.kind === 'comment' || removed.has(i)) continue;
      indent = lines[i]!.text.slice(0, pyIndent(lines[i]!.text));
      break;
    }
    const at = out[lastValueOut]!;
    if (at.eol === '') at.eol = eol;
    const inserted = missing.map(([k, v]) => ({ text: `${indent}${k} = ${v}`, eol }));
    out.splice(lastValueOut + 1, 0, ...inserted);
  }
  const rest = lines.slice(end);
  return [...out, ...rest].map((l) => l.text + l.eol).join('');
}
