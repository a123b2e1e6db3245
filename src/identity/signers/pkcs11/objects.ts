// Token and object lookup on a module, and the public keys of the objects found.
import { createPublicKey, type KeyObject } from 'node:crypto';
import { UserError } from '../../../errors.js';
import { decodeOid, parseDer, TAG } from '../../../asn1/reader.js';
import { redactPkcs11Uri, type Pkcs11Uri } from '../../pkcs11-uri.js';
import { type Attribute, type Handle, type Pkcs11Api, type TokenInfo, ck } from './binding.js';

export function trimmed(s: string): string {
  return s.replace(/[\s\0]+$/, '');
}

function slotNumber(slot: Handle): number {
  return slot.length >= 8 ? Number(slot.readBigUInt64LE(0)) : slot.readUInt32LE(0);
}

export interface Found {
  slot: Handle;
  token: TokenInfo;
  /** `token "LABEL"` (with the serial when labels repeat), for messages. */
  name: string;
}

function tokenName(info: TokenInfo): string {
  return `token "${trimmed(info.label)}"`;
}

function checkLibrary(api: Pkcs11Api, uri: Pkcs11Uri, spec: string, modulePath: string): void {
  if (uri.libraryManufacturer === undefined && uri.libraryDescription === undefined && uri.libraryVersion === undefined) return;
  const info = api.C_GetInfo();
  const version = `${info.libraryVersion.major}.${info.libraryVersion.minor}`;
  const mismatch =
    (uri.libraryManufacturer !== undefined && trimmed(info.manufacturerID) !== uri.libraryManufacturer) ||
    (uri.libraryDescription !== undefined && trimmed(info.libraryDescription) !== uri.libraryDescription) ||
    (uri.libraryVersion !== undefined && (uri.libraryVersion.includes('.') ? version : String(info.libraryVersion.major)) !== uri.libraryVersion);
  if (mismatch) {
    throw new UserError(
      `${redactPkcs11Uri(spec)}: module ${modulePath} is "${trimmed(info.libraryDescription)}" by "${trimmed(info.manufacturerID)}" version ${version}, ` +
        'not the library the URI names; fix the library-* attributes or --pkcs11-lib',
      { reason: 'pkcs11_token_not_found' },
    );
  }
}

/** The one token the URI names among the present tokens. */
export function findToken(api: Pkcs11Api, uri: Pkcs11Uri, spec: string, modulePath: string): Found {
  checkLibrary(api, uri, spec, modulePath);
  const slots = api.C_GetSlotList(true);
  const present: TokenInfo[] = [];
  const matches: Found[] = [];
  for (const slot of slots) {
    let token: TokenInfo;
    try {
      token = api.C_GetTokenInfo(slot);
    } catch {
      continue; // removed between the two calls, or not initialized
    }
    if (!(token.flags & ck('CKF_TOKEN_INITIALIZED'))) continue;
    present.push(token);
    if (uri.token !== undefined && trimmed(token.label) !== uri.token) continue;
    if (uri.manufacturer !== undefined && trimmed(token.manufacturerID) !== uri.manufacturer) continue;
    if (uri.serial !== undefined && trimmed(token.serialNumber) !== uri.serial) continue;
    if (uri.model !== undefined && trimmed(token.model) !== uri.model) continue;
    if (uri.slotId !== undefined && slotNumber(slot) !== uri.slotId) continue;
    if (uri.slotDescription !== undefined || uri.slotManufacturer !== undefined) {
      const info = api.C_GetSlotInfo(slot);
      if (uri.slotDescription !== undefined && trimmed(info.slotDescription) !== uri.slotDescription) continue;
      if (uri.slotManufacturer !== undefined && trimmed(info.manufacturerID) !== uri.slotManufacturer) continue;
    }
    matches.push({ slot, token, name: tokenName(token) });
  }
  const list = present.length ? present.map((t) => `"${trimmed(t.label)}" (serial ${trimmed(t.serialNumber)})`).join(', ') : 'none';
  if (matches.length === 0) {
    throw new UserError(`${redactPkcs11Uri(spec)}: no token matches in PKCS#11 module ${modulePath} (tokens present: ${list}); check token= (or the token is not plugged in)`, {
      reason: 'pkcs11_token_not_found',
    });
  }
  if (matches.length > 1) {
    throw new UserError(`${redactPkcs11Uri(spec)}: ${matches.length} tokens match (${list}); add token= or serial= to the URI to pick one`, {
      reason: 'pkcs11_token_ambiguous',
    });
  }
  return matches[0]!;
}

export function findObjects(api: Pkcs11Api, session: Handle, template: Attribute[]): Handle[] {
  api.C_FindObjectsInit(session, template);
  const out: Handle[] = [];
  try {
    for (;;) {
      const batch = api.C_FindObjects(session, 64);
      if (batch.length === 0) break;
      out.push(...batch);
      if (out.length > 4096) break;
    }
  } finally {
    api.C_FindObjectsFinal(session);
  }
  return out;
}

/** One attribute's raw value, or undefined when the token does not have or will not show it. */
export function attribute(api: Pkcs11Api, session: Handle, object: Handle, type: number): Buffer | undefined {
  try {
    const [a] = api.C_GetAttributeValue(session, object, [{ type }]);
    return Buffer.isBuffer(a?.value) ? a.value : undefined;
  } catch {
    return undefined;
  }
}

function ulong(b: Buffer | undefined): number | undefined {
  if (!b || b.length === 0) return undefined;
  return b.length >= 8 ? Number(b.readBigUInt64LE(0)) : b.readUInt32LE(0);
}

function bool(b: Buffer | undefined): boolean | undefined {
  return b && b.length > 0 ? b[0] !== 0 : undefined;
}

export function objectTemplate(klass: string, label: string | undefined, id: Buffer | undefined): Attribute[] {
  const t: Attribute[] = [{ type: ck('CKA_CLASS'), value: ck(klass) }];
  if (label !== undefined) t.push({ type: ck('CKA_LABEL'), value: Buffer.from(label, 'utf8') });
  if (id !== undefined) t.push({ type: ck('CKA_ID'), value: id });
  return t;
}

/** `object="client" id=01` for messages. */
export function objectName(label: string | undefined, id: Buffer | undefined): string {
  const parts: string[] = [];
  if (label !== undefined) parts.push(`object "${label}"`);
  if (id !== undefined) parts.push(`id ${id.toString('hex')}`);
  return parts.join(' ') || 'any object';
}

// ---------------------------------------------------------------------------
// Public keys from token attributes

const CURVES: Record<string, string> = {
  '1.2.840.10045.3.1.7': 'P-256',
  '1.3.132.0.34': 'P-384',
  '1.3.132.0.35': 'P-521',
};

function b64url(b: Buffer): string {
  let i = 0;
  while (i < b.length - 1 && b[i] === 0) i++;
  return b.subarray(i).toString('base64url');
}

function rsaPublicKey(modulus: Buffer, exponent: Buffer): KeyObject {
  return createPublicKey({ key: { kty: 'RSA', n: b64url(modulus), e: b64url(exponent) }, format: 'jwk' });
}

/** The curve OID of CKA_EC_PARAMS (a DER OBJECT IDENTIFIER), or undefined for explicit parameters. */
function curveOf(params: Buffer): string | undefined {
  try {
    const node = parseDer(params);
    return node.tag === TAG.OID ? decodeOid(node.value) : undefined;
  } catch {
    return undefined;
  }
}

function ecPublicKey(params: Buffer, point: Buffer): KeyObject | undefined {
  const curveOid = curveOf(params);
  const crv = curveOid ? CURVES[curveOid] : undefined;
  if (!crv) return undefined;
  const size = crv === 'P-256' ? 32 : crv === 'P-384' ? 48 : 66;
  // CKA_EC_POINT is a DER OCTET STRING around the point; some tokens give the bare point.
  let raw = point;
  if (!(point.length === 2 * size + 1 && point[0] === 0x04)) {
    try {
      const node = parseDer(point);
      if (node.tag === TAG.OCTET_STRING) raw = node.value;
    } catch {
      return undefined;
    }
  }
  if (raw.length !== 2 * size + 1 || raw[0] !== 0x04) return undefined;
  const x = raw.subarray(1, 1 + size).toString('base64url');
  const y = raw.subarray(1 + size).toString('base64url');
  return createPublicKey({ key: { kty: 'EC', crv, x, y }, format: 'jwk' });
}

export interface KeyInfo {
  handle: Handle;
  label: string | undefined;
  id: Buffer | undefined;
  keyType: 'RSA' | 'EC';
  alwaysAuthenticate: boolean;
  publicKey: KeyObject | undefined;
  curveOid?: string;
}

export function readKey(api: Pkcs11Api, session: Handle, handle: Handle): KeyInfo | { unsupported: string; label?: string; id?: Buffer } {
  const labelRaw = attribute(api, session, handle, ck('CKA_LABEL'));
  const label = labelRaw?.toString('utf8');
  const id = attribute(api, session, handle, ck('CKA_ID'));
  const idOrUndef = id && id.length > 0 ? id : undefined;
  const keyType = ulong(attribute(api, session, handle, ck('CKA_KEY_TYPE')));
  const alwaysAuthenticate = bool(attribute(api, session, handle, ck('CKA_ALWAYS_AUTHENTICATE'))) ?? false;
  if (keyType === ck('CKK_RSA')) {
    let modulus = attribute(api, session, handle, ck('CKA_MODULUS'));
    let exponent = attribute(api, session, handle, ck('CKA_PUBLIC_EXPONENT'));
    if ((!modulus || !exponent) && idOrUndef) {
      const [pub] = findObjects(api, session, objectTemplate('CKO_PUBLIC_KEY', undefined, idOrUndef));
      if (pub) {
        modulus = attribute(api, session, pub, ck('CKA_MODULUS'));
        exponent = attribute(api, session, pub, ck('CKA_PUBLIC_EXPONENT'));
      }
    }
    const publicKey = modulus && exponent ? rsaPublicKey(modulus, exponent) : undefined;
    return { handle, label, id: idOrUndef, keyType: 'RSA', alwaysAuthenticate, publicKey };
  }
  if (keyType === ck('CKK_EC')) {
    const params = attribute(api, session, handle, ck('CKA_EC_PARAMS'));
    let publicKey: KeyObject | undefined;
    const curveOid = params ? curveOf(params) : undefined;
    if (curveOid && !CURVES[curveOid]) {
      return { unsupported: `an EC key on curve ${curveOid}`, ...(label ? { label } : {}), ...(idOrUndef ? { id: idOrUndef } : {}) };
    }
    if (params) {
      const pubs = findObjects(api, session, objectTemplate('CKO_PUBLIC_KEY', idOrUndef ? undefined : label, idOrUndef));
      for (const pub of pubs) {
        const point = attribute(api, session, pub, ck('CKA_EC_POINT'));
        const key = point ? ecPublicKey(params, point) : undefined;
        if (key) {
          publicKey = key;
          break;
        }
      }
    }
    return { handle, label, id: idOrUndef, keyType: 'EC', alwaysAuthenticate, publicKey, ...(curveOid ? { curveOid } : {}) };
  }
  return { unsupported: keyType === undefined ? 'a key of unknown type' : `a key of PKCS#11 key type ${keyType}`, ...(label ? { label } : {}), ...(idOrUndef ? { id: idOrUndef } : {}) };
}

