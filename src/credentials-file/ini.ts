// Minimal, byte-preserving edits of an AWS shared credentials file (INI as
// botocore's configparser reads it). Only the managed keys of one section
// change; every other byte — other sections, comments, blank lines, spacing,
// CRLF line endings, unknown keys — stays exactly as it was.
//
// Text is handled as latin1 ("binary") so arbitrary bytes round-trip; the
// values we write are ASCII and the section name is converted to UTF-8 bytes.
import { UserError } from '../errors.js';

interface Line {
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

/** The section name of a header line (`[name]`, as configparser reads it), else undefined. */
function sectionOf(text: string): string | undefined {
  // A UTF-8 byte order mark (EF BB BF, seen here as latin1) may precede the first header.
  const m = /^\[(.+)\]/.exec(text.replace(/^\xef\xbb\xbf/, '').trim());
  return m ? m[1] : undefined;
}

function isComment(text: string): boolean {
  const t = text.trim();
  return t.startsWith('#') || t.startsWith(';');
}

/** `key = value` / `key: value` → key (lower-cased as configparser does) and where the value starts. */
function keyOf(text: string): { key: string; valueStart: number } | undefined {
  if (/^\s/.test(text) || isComment(text) || text.trim() === '') return undefined;
  const m = /^([^=:]+?)(\s*[=:]\s*)/.exec(text);
  if (!m) return undefined;
  return { key: m[1]!.trim().toLowerCase(), valueStart: m[0].length };
}

/** A line continuing the previous key's value (indented, non-blank). */
function isContinuation(text: string): boolean {
  return /^\s/.test(text) && text.trim() !== '';
}

export function validateProfileName(name: string): void {
  if (!name || /[\][\r\n]/.test(name) || name.trim() !== name) {
    throw new UserError(`--profile "${name.replace(/[\r\n]/g, ' ')}" is not a usable profile name: use letters, digits and -_. without brackets or surrounding spaces`, {
      reason: 'invalid_profile_name',
    });
  }
}

/**
 * Sets `values` (key → ASCII value) in section `[profile]` of the credentials
 * file text `original` (latin1-decoded), returning the new text. Existing
 * keys are replaced in place (keeping their spelling and separator), missing
 * ones are added after the section's last key, and a missing section is
 * appended at the end. `remove` keys are deleted from the section.
 */
export function setSectionValues(original: string, profile: string, values: Record<string, string>, remove: string[] = [], file = 'the credentials file'): string {
  validateProfileName(profile);
  for (const [k, v] of Object.entries(values)) {
    if (/[\r\n]/.test(v) || /[^\x20-\x7e]/.test(v)) throw new Error(`value for ${k} is not printable ASCII`);
  }
  const sectionName = Buffer.from(profile, 'utf8').toString('latin1');
  const lines = splitLines(original);
  const eol = lines.find((l) => l.eol !== '')?.eol ?? '\n';

  const headers = lines.map((l, i) => ({ i, name: sectionOf(l.text) })).filter((h) => h.name !== undefined);
  const matching = headers.filter((h) => h.name === sectionName);
  if (matching.length > 1) {
    throw new UserError(`${file} has the section [${profile}] ${matching.length} times, which the AWS CLI rejects: merge them by hand, then run update again`, {
      reason: 'duplicate_section',
    });
  }

  const wanted = new Map(Object.entries(values).map(([k, v]) => [k.toLowerCase(), v]));
  const dropped = new Set(remove.map((k) => k.toLowerCase()));

  if (matching.length === 0) {
    let prefix = original;
    if (prefix.length > 0 && lines[lines.length - 1]!.eol === '') prefix += eol;
    if (prefix.length > 0 && lines[lines.length - 1]!.text.trim() !== '') prefix += eol;
    const body = [`[${sectionName}]`, ...Object.entries(values).map(([k, v]) => `${k} = ${v}`)].join(eol);
    return prefix + body + eol;
  }

  const start = matching[0]!.i;
  const next = headers.find((h) => h.i > start);
  const end = next ? next.i : lines.length; // exclusive
  const out: Line[] = lines.slice(0, start + 1);
  const written = new Set<string>();
  let lastKeyOut = out.length - 1; // index in `out` after which to insert missing keys
  let skippingContinuation = false;
  for (let i = start + 1; i < end; i++) {
    const line = lines[i]!;
    if (skippingContinuation && isContinuation(line.text)) continue;
    skippingContinuation = false;
    const k = keyOf(line.text);
    if (k && (wanted.has(k.key) || dropped.has(k.key))) {
      // Replace (first occurrence) or drop (duplicates, removed keys), with any continuation lines.
      skippingContinuation = true;
      if (wanted.has(k.key) && !written.has(k.key)) {
        out.push({ text: line.text.slice(0, k.valueStart) + wanted.get(k.key)!, eol: line.eol });
        written.add(k.key);
        lastKeyOut = out.length - 1;
      }
      continue;
    }
    out.push(line);
    if (k || (isContinuation(line.text) && !isComment(line.text))) lastKeyOut = out.length - 1;
  }
  const missing = [...wanted.entries()].filter(([k]) => !written.has(k));
  if (missing.length > 0) {
    const at = out[lastKeyOut]!;
    if (at.eol === '') at.eol = eol;
    const inserted = missing.map(([k, v]) => ({ text: `${k} = ${v}`, eol }));
    out.splice(lastKeyOut + 1, 0, ...inserted);
  }
  const rest = lines.slice(end);
  return [...out, ...rest].map((l) => l.text + l.eol).join('');
}
