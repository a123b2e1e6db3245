// RFC 7512 PKCS#11 URIs (`pkcs11:token=Prod;object=client;type=private?pin-source=file:/etc/ra/pin`),
// as AWS's aws_signing_helper and OpenSSL/p11-kit tools accept them. Parsing
// only: nothing here touches a module. A `pin-value` never appears in a
// message: messages show a URI only through redactPkcs11Uri.
import { UserError } from '../errors.js';
import type { IdentitySource } from './types.js';

export const PKCS11_SCHEME = 'pkcs11:';

/** The object classes of RFC 7512's `type` attribute. */
export type Pkcs11ObjectType = 'cert' | 'private' | 'public' | 'secret-key' | 'data';

export interface Pkcs11Uri {
  // Token (CK_TOKEN_INFO)
  token?: string;
  manufacturer?: string;
  serial?: string;
  model?: string;
  // Slot (CK_SLOT_INFO)
  slotId?: number;
  slotDescription?: string;
  slotManufacturer?: string;
  // Library (CK_INFO)
  libraryManufacturer?: string;
  libraryDescription?: string;
  libraryVersion?: string;
  // Object
  object?: string;
  type?: Pkcs11ObjectType;
  /** CKA_ID bytes. */
  id?: Buffer;
  // Query attributes
  /** The PIN itself (secret: never log). */
  pinValue?: string;
  /** Where to read the PIN: `file:/path`, `file:///path` or an absolute path. */
  pinSource?: string;
  modulePath?: string;
  moduleName?: string;
}

type StringKey = Exclude<keyof Pkcs11Uri, 'slotId' | 'id' | 'type'>;

const PATH_ATTRS: Record<string, keyof Pkcs11Uri> = {
  token: 'token',
  manufacturer: 'manufacturer',
  serial: 'serial',
  model: 'model',
  'slot-id': 'slotId',
  'slot-description': 'slotDescription',
  'slot-manufacturer': 'slotManufacturer',
  'library-manufacturer': 'libraryManufacturer',
  'library-description': 'libraryDescription',
  'library-version': 'libraryVersion',
  object: 'object',
  type: 'type',
  id: 'id',
};

const QUERY_ATTRS: Record<string, keyof Pkcs11Uri> = {
  'pin-value': 'pinValue',
  'pin-source': 'pinSource',
  'module-path': 'modulePath',
  'module-name': 'moduleName',
};

const TYPES: readonly Pkcs11ObjectType[] = ['cert', 'private', 'public', 'secret-key', 'data'];

export function isPkcs11Uri(spec: string): boolean {
  return spec.slice(0, PKCS11_SCHEME.length).toLowerCase() === PKCS11_SCHEME;
}

/**
 * The URI with the value of pin-value (or of any other PIN-like attribute, such
 * as a misspelt `pin=` or `pin%2Dvalue=` the parser is about to refuse) replaced,
 * safe for messages and logs. Works by attribute — a query attribute runs to the
 * next `&`, a path attribute to the next `;` — as the parser splits them, so a
 * PIN holding `?`, `;` or `#` is hidden whole.
 */
export function redactPkcs11Uri(spec: string): string {
  const q = spec.indexOf('?');
  const path = redactParts((q < 0 ? spec : spec.slice(0, q)).split(';'), PATH_ATTRS).join(';');
  return q < 0 ? path : `${path}?${redactParts(spec.slice(q + 1).split('&'), QUERY_ATTRS).join('&')}`;
}

/**
 * `parts` with PIN values redacted. A PIN holding an unencoded `&` (or `;` in
 * the path) splits into parts after the PIN attribute that name no known
 * attribute: they are the rest of the PIN, and are left out with it.
 */
function redactParts(parts: string[], known: Record<string, keyof Pkcs11Uri>): string[] {
  const out: string[] = [];
  let inPin = false;
  for (const part of parts) {
    if (inPin && !isAttribute(part, known)) continue;
    const redacted = redactAttribute(part);
    inPin = redacted !== part;
    out.push(redacted);
  }
  return out;
}

/** The attribute name of `part` (`name=value`), percent-decoded and lower-cased; undefined without `=`. */
function attributeName(part: string): string | undefined {
  const eq = part.indexOf('=');
  if (eq < 0) return undefined;
  let name = part.slice(0, eq);
  try {
    name = decodeURIComponent(name);
  } catch {
    // a malformed escape: judge the name as written
  }
  return name.toLowerCase();
}

/** `part` names one of `known` (so it is not the tail of a PIN split at an unencoded `&` or `;`). */
function isAttribute(part: string, known: Record<string, keyof Pkcs11Uri> = QUERY_ATTRS): boolean {
  const name = attributeName(part);
  return name !== undefined && Object.hasOwn(known, name);
}

function redactAttribute(part: string): string {
  const name = attributeName(part);
  if (name === undefined) return part;
  return name.includes('pin') && !name.endsWith('pin-source') ? `${part.slice(0, part.indexOf('=') + 1)}REDACTED` : part;
}

/** The refusal of a query part that follows a PIN and is no known attribute: most likely the PIN's own `&`, so nothing of it is shown. */
function failPinAmpersand(spec: string): never {
  fail(spec, 'the part after pin-value is no query attribute; if the PIN holds "&", write it as %26 (or use pin-source=file:/path)');
}

function fail(spec: string, what: string): never {
  throw new UserError(`${redactPkcs11Uri(spec)}: ${what}; expected an RFC 7512 URI like pkcs11:token=LABEL;object=LABEL;type=private`, {
    reason: 'pkcs11_uri',
  });
}

/** Percent-decodes to bytes (RFC 3986); a malformed escape is an error. */
function decodeBytes(spec: string, name: string, raw: string): Buffer {
  const out: number[] = [];
  for (let i = 0; i < raw.length; i++) {
    const c = raw[i]!;
    if (c === '%') {
      const hex = raw.slice(i + 1, i + 3);
      if (!/^[0-9a-fA-F]{2}$/.test(hex)) fail(spec, `bad percent-escape in ${name} (expected %XX)`);
      out.push(parseInt(hex, 16));
      i += 2;
    } else {
      out.push(...Buffer.from(c, 'utf8'));
    }
  }
  return Buffer.from(out);
}

function decodeText(spec: string, name: string, raw: string): string {
  const bytes = decodeBytes(spec, name, raw);
  const text = bytes.toString('utf8');
  if (!Buffer.from(text, 'utf8').equals(bytes)) fail(spec, `${name} is not valid UTF-8 after percent-decoding`);
  return text;
}

/**
 * Parses a `pkcs11:` URI. Unknown attributes, repeated attributes and
 * malformed values are errors (RFC 7512 §2.3: a consumer must not guess);
 * vendor attributes (`x-…`) are refused as well, since we cannot honour them.
 */
export function parsePkcs11Uri(spec: string): Pkcs11Uri {
  if (!isPkcs11Uri(spec)) fail(spec, 'not a pkcs11: URI');
  const rest = spec.slice(PKCS11_SCHEME.length);
  if (rest.includes('#')) fail(spec, 'a fragment (#) is not allowed');
  const q = rest.indexOf('?');
  const path = q < 0 ? rest : rest.slice(0, q);
  const query = q < 0 ? '' : rest.slice(q + 1);
  const uri: Pkcs11Uri = {};
  const seen = new Set<string>();
  let afterPin = false;
  const take = (part: string, table: Record<string, keyof Pkcs11Uri>, where: 'path' | 'query') => {
    if (part === '') return;
    if (where === 'query') {
      if (afterPin && !isAttribute(part)) failPinAmpersand(spec);
      afterPin = attributeName(part) === 'pin-value';
    }
    const eq = part.indexOf('=');
    if (eq <= 0) fail(spec, `attribute "${redactPkcs11Uri(part)}" has no name=value form`);
    const name = part.slice(0, eq).toLowerCase();
    const raw = part.slice(eq + 1);
    const field = Object.hasOwn(table, name) ? table[name] : undefined;
    if (!field) {
      const other = where === 'path' ? QUERY_ATTRS[name] : PATH_ATTRS[name];
      if (other) fail(spec, `${name} belongs in the ${where === 'path' ? 'query (after ?)' : 'path (before ?)'}`);
      const known = Object.keys(table).join(', ');
      fail(spec, `unknown ${where} attribute "${name}" (known: ${known})`);
    }
    if (seen.has(name)) fail(spec, `attribute ${name} is given twice`);
    seen.add(name);
    if (field === 'id') {
      uri.id = decodeBytes(spec, name, raw);
      if (uri.id.length === 0) fail(spec, 'id is empty');
    } else if (field === 'slotId') {
      if (!/^\d{1,20}$/.test(raw)) fail(spec, `slot-id must be a decimal number, got "${raw}"`);
      const n = Number(raw);
      if (!Number.isSafeInteger(n)) fail(spec, `slot-id ${raw} is too large`);
      uri.slotId = n;
    } else if (field === 'type') {
      const t = decodeText(spec, name, raw).toLowerCase();
      if (!TYPES.includes(t as Pkcs11ObjectType)) fail(spec, `type must be one of ${TYPES.join(', ')}, got "${t}"`);
      uri.type = t as Pkcs11ObjectType;
    } else {
      uri[field as StringKey] = decodeText(spec, name, raw);
    }
  };
  for (const part of path.split(';')) take(part, PATH_ATTRS, 'path');
  for (const part of query.split('&')) take(part, QUERY_ATTRS, 'query');
  if (uri.libraryVersion !== undefined && !/^\d+(\.\d+)?$/.test(uri.libraryVersion)) {
    fail(spec, `library-version must look like 2 or 2.40, got "${uri.libraryVersion}"`);
  }
  return uri;
}

function encode(value: string | Buffer): string {
  const bytes = typeof value === 'string' ? Buffer.from(value, 'utf8') : value;
  let out = '';
  for (const b of bytes) {
    const c = String.fromCharCode(b);
    out += /[A-Za-z0-9\-._~:[\]@!$'()*+,=&]/.test(c) && b < 0x80 ? c : `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/** Formats the identifying (non-secret) path attributes back into a URI; the PIN is never included. */
export function formatPkcs11Uri(uri: Pkcs11Uri): string {
  const parts: string[] = [];
  for (const [name, field] of Object.entries(PATH_ATTRS)) {
    const v = uri[field];
    if (v === undefined) continue;
    parts.push(`${name}=${typeof v === 'number' ? String(v) : encode(v as string | Buffer)}`);
  }
  return `${PKCS11_SCHEME}${parts.join(';')}`;
}

/**
 * Takes a pin-value out of a URI: the spec without it (safe to show anywhere)
 * and the PIN. Other URIs and strings come back unchanged.
 */
export function takePinValue(spec: string): { spec: string; pin?: string } {
  if (!isPkcs11Uri(spec)) return { spec };
  const q = spec.indexOf('?');
  if (q < 0) return { spec };
  const parts = spec.slice(q + 1).split('&');
  const pinParts = parts.filter((p) => /^pin-value=/i.test(p));
  if (pinParts.length !== 1) return { spec }; // none, or repeated: the parser reports it
  const after = parts.slice(parts.indexOf(pinParts[0]!) + 1).find((p) => p !== '');
  if (after !== undefined && !isAttribute(after)) failPinAmpersand(spec);
  if (parts.some((p) => /^pin-source=/i.test(p))) {
    fail(spec, 'give either pin-value or pin-source, not both');
  }
  const pin = decodeText(spec, 'pin-value', pinParts[0]!.slice('pin-value='.length));
  const rest = parts.filter((p) => p !== pinParts[0]);
  return { spec: rest.length ? `${spec.slice(0, q)}?${rest.join('&')}` : spec.slice(0, q), pin };
}

/**
 * Moves a pin-value out of the certificate/key URIs into pkcs11Pin (a URI's
 * PIN beats --pkcs11-pin-file and the environment), so the specs that
 * messages, logs and `check` show never carry it.
 */
export function separateUriPins(source: IdentitySource): IdentitySource {
  const cert = takePinValue(source.certificate);
  const key = source.privateKey === undefined ? undefined : takePinValue(source.privateKey);
  const pin = key?.pin ?? cert.pin;
  if (pin === undefined) return source;
  const out: IdentitySource = { ...source, certificate: cert.spec, pkcs11Pin: pin, pkcs11PinOrigin: 'pin-value in the URI' };
  if (key) out.privateKey = key.spec;
  return out;
}
