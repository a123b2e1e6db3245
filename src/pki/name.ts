/**
 * X.501 distinguished names from the strings users type: OpenSSL's
 * `/CN=x/O=y` form or the comma form `CN=x,O=y`. Attributes keep the order
 * written (the order `openssl x509 -subject` and Node print them in).
 */
import { UserError } from '../errors.js';
import { ia5String, isPrintable, oid, printableString, sequence, set, utf8String } from '../asn1/encoder.js';
import { readOid, TAG, type Asn1 } from '../asn1/reader.js';

export interface NameAttribute {
  /** Short name as written (CN, O, …), upper-cased. */
  type: string;
  value: string;
}

type Encoding = 'utf8' | 'printable' | 'ia5';

const ATTRIBUTES: Record<string, { oid: string; encoding: Encoding; max?: number }> = {
  CN: { oid: '2.5.4.3', encoding: 'utf8', max: 64 },
  SN: { oid: '2.5.4.4', encoding: 'utf8' },
  SERIALNUMBER: { oid: '2.5.4.5', encoding: 'printable', max: 64 },
  C: { oid: '2.5.4.6', encoding: 'printable' },
  L: { oid: '2.5.4.7', encoding: 'utf8', max: 128 },
  ST: { oid: '2.5.4.8', encoding: 'utf8', max: 128 },
  STREET: { oid: '2.5.4.9', encoding: 'utf8' },
  O: { oid: '2.5.4.10', encoding: 'utf8', max: 64 },
  OU: { oid: '2.5.4.11', encoding: 'utf8', max: 64 },
  TITLE: { oid: '2.5.4.12', encoding: 'utf8' },
  GN: { oid: '2.5.4.42', encoding: 'utf8' },
  UID: { oid: '0.9.2342.19200300.100.1.1', encoding: 'utf8' },
  DC: { oid: '0.9.2342.19200300.100.1.25', encoding: 'ia5' },
  EMAILADDRESS: { oid: '1.2.840.113549.1.9.1', encoding: 'ia5', max: 255 },
};

const ALIASES: Record<string, string> = { EMAIL: 'EMAILADDRESS', S: 'ST', GIVENNAME: 'GN', SURNAME: 'SN' };

export const SUPPORTED_ATTRIBUTES = Object.keys(ATTRIBUTES);

/** Splits on an unescaped separator, unescaping `\x` to `x`. */
function splitEscaped(text: string, separator: string): string[] {
  const parts: string[] = [];
  let current = '';
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (ch === '\\' && i + 1 < text.length) {
      current += text[++i]!;
    } else if (ch === separator) {
      parts.push(current);
      current = '';
    } else {
      current += ch;
    }
  }
  parts.push(current);
  return parts;
}

/** Parses `/CN=x/O=y` or `CN=x,O=y` (a backslash escapes the separator). */
export function parseSubject(text: string): NameAttribute[] {
  const trimmed = text.trim();
  if (trimmed === '') throw new UserError('the subject is empty; give e.g. "/CN=my-host/O=Example"');
  const pieces = trimmed.startsWith('/') ? splitEscaped(trimmed.slice(1), '/') : splitEscaped(trimmed, ',');
  const attrs: NameAttribute[] = [];
  for (const raw of pieces) {
    const piece = raw.trim();
    if (piece === '') continue;
    const eq = piece.indexOf('=');
    if (eq <= 0) {
      throw new UserError(`subject part "${piece}" is not TYPE=value; write the subject like "/CN=my-host/O=Example"`);
    }
    let type = piece.slice(0, eq).trim().toUpperCase();
    type = ALIASES[type] ?? type;
    const value = piece.slice(eq + 1).trim();
    const spec = ATTRIBUTES[type];
    if (!spec) {
      throw new UserError(`unknown subject attribute "${piece.slice(0, eq).trim()}"; use one of ${SUPPORTED_ATTRIBUTES.join(', ')}`);
    }
    if (value === '') throw new UserError(`subject attribute ${type} has an empty value`);
    if (spec.max !== undefined && [...value].length > spec.max) {
      throw new UserError(`subject attribute ${type} is longer than ${spec.max} characters`);
    }
    if (type === 'C' && !/^[A-Za-z]{2}$/.test(value)) {
      throw new UserError(`subject attribute C must be a two-letter country code, not "${value}"`);
    }
    if (spec.encoding === 'printable' && !isPrintable(value)) {
      throw new UserError(`subject attribute ${type} may hold only letters, digits, spaces and '()+,-./:=?`);
    }
    if (spec.encoding === 'ia5' && !/^[\x20-\x7e]*$/.test(value)) {
      throw new UserError(`subject attribute ${type} must be plain ASCII`);
    }
    attrs.push({ type, value });
  }
  if (attrs.length === 0) throw new UserError('the subject is empty; give e.g. "/CN=my-host/O=Example"');
  return attrs;
}

/** Name ::= SEQUENCE OF RelativeDistinguishedName (one attribute per RDN). */
export function encodeName(attrs: NameAttribute[]): Buffer {
  return sequence(
    ...attrs.map((a) => {
      const spec = ATTRIBUTES[a.type];
      if (!spec) throw new RangeError(`unknown name attribute ${a.type}`);
      const value =
        spec.encoding === 'printable' ? printableString(a.value) : spec.encoding === 'ia5' ? ia5String(a.value) : utf8String(a.value);
      return set(sequence(oid(spec.oid), value));
    }),
  );
}

/** `CN=x, O=y` for messages. */
export function formatName(attrs: NameAttribute[]): string {
  return attrs.map((a) => `${a.type}=${a.value}`).join(', ');
}

/** C0 and C1 control characters (NUL included): never part of a name anyone means. */
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

/** The text of a DirectoryString-like value, or undefined when it is no string type. */
function nameValueText(node: Asn1): string | undefined {
  if (node.cls !== 0 || node.constructed) return undefined;
  switch (node.tagNumber) {
    case TAG.UTF8_STRING:
      return node.value.toString('utf8');
    case 0x12: // NumericString
    case TAG.PRINTABLE_STRING:
    case 0x14: // TeletexString
    case TAG.IA5_STRING:
    case 0x1a: // VisibleString
      return node.value.toString('latin1');
    case TAG.BMP_STRING:
      return Buffer.from(node.value).swap16().toString('utf16le');
    case 0x1c: {
      // UniversalString: UTF-32BE
      let out = '';
      for (let i = 0; i + 3 < node.value.length; i += 4) out += String.fromCodePoint(Math.min(node.value.readUInt32BE(i), 0x10ffff));
      return out;
    }
    default:
      return undefined;
  }
}

/**
 * What is wrong with a requester's subject Name (a CSR's), as a phrase, or
 * undefined: a name is certified as written only when every RDN holds exactly
 * one attribute, there is at most one CN, and no value holds a control
 * character (a NUL inside a CN makes tools disagree on what the name is).
 */
export function subjectNameProblem(name: Asn1): string | undefined {
  let cns = 0;
  for (const [i, rdn] of name.children.entries()) {
    if (rdn.tag !== TAG.SET) return `has a part (RDN ${i + 1}) that is not a SET`;
    if (rdn.children.length === 0) return `has an empty RDN (number ${i + 1})`;
    if (rdn.children.length > 1) return `has a multi-valued RDN (number ${i + 1}, ${rdn.children.length} attributes joined with "+")`;
    const atv = rdn.children[0]!;
    let type: string;
    try {
      if (atv.tag !== TAG.SEQUENCE || atv.children.length !== 2) throw new Error('not type and value');
      type = readOid(atv.children[0]!);
    } catch {
      return `has a malformed attribute in RDN ${i + 1}`;
    }
    const short = Object.entries(ATTRIBUTES).find(([, a]) => a.oid === type)?.[0] ?? type;
    if (type === ATTRIBUTES.CN!.oid && ++cns > 1) return 'has more than one CN';
    const text = nameValueText(atv.children[1]!);
    if (text === undefined) return `has a ${short} whose value is not a string`;
    if (CONTROL.test(text)) return `has a control character (such as NUL) in its ${short}`;
  }
  return undefined;
}
