/**
 * A small DER (ASN.1 Distinguished Encoding Rules) encoder. Just enough for
 * X.509 certificates and PKCS#12 bundles; every encoder returns the complete
 * TLV (tag, length, value) as a Buffer. Reading is src/asn1/reader.ts.
 */
import { TAG } from './reader.js';

export { TAG };

/** Length octets: short form below 128, long form (0x80 | count, big-endian) above. */
export function encodeLength(length: number): Buffer {
  if (!Number.isSafeInteger(length) || length < 0) throw new RangeError(`invalid DER length ${length}`);
  if (length < 0x80) return Buffer.from([length]);
  const bytes: number[] = [];
  for (let n = length; n > 0; n = Math.floor(n / 256)) bytes.unshift(n % 256);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

/** A complete TLV with a single-byte tag. */
export function tlv(tag: number, content: Buffer): Buffer {
  return Buffer.concat([Buffer.from([tag]), encodeLength(content.length), content]);
}

export function boolean(value: boolean): Buffer {
  return tlv(TAG.BOOLEAN, Buffer.from([value ? 0xff : 0x00]));
}

/**
 * INTEGER in two's complement, minimal length. A Buffer argument is an
 * unsigned big-endian magnitude (e.g. a serial number): leading zero bytes are
 * dropped and one 0x00 is prepended when the top bit is set, so it stays positive.
 */
export function integer(value: number | bigint | Buffer): Buffer {
  if (Buffer.isBuffer(value)) {
    let start = 0;
    while (start < value.length - 1 && value[start] === 0) start++;
    let bytes = value.subarray(start);
    if (bytes.length === 0) bytes = Buffer.from([0]);
    if (bytes[0]! & 0x80) bytes = Buffer.concat([Buffer.from([0]), bytes]);
    return tlv(TAG.INTEGER, Buffer.from(bytes));
  }
  let n = BigInt(value);
  const out: number[] = [];
  if (n >= 0n) {
    do {
      out.unshift(Number(n & 0xffn));
      n >>= 8n;
    } while (n > 0n);
    if (out[0]! & 0x80) out.unshift(0);
  } else {
    do {
      out.unshift(Number(n & 0xffn));
      n >>= 8n;
    } while (n < -1n);
    if (!(out[0]! & 0x80)) out.unshift(0xff);
  }
  return tlv(TAG.INTEGER, Buffer.from(out));
}

/** BIT STRING: the unused-bits octet, then the bytes. */
export function bitString(bytes: Buffer, unusedBits = 0): Buffer {
  if (unusedBits < 0 || unusedBits > 7 || (bytes.length === 0 && unusedBits !== 0)) {
    throw new RangeError(`invalid BIT STRING unused bit count ${unusedBits}`);
  }
  return tlv(TAG.BIT_STRING, Buffer.concat([Buffer.from([unusedBits]), bytes]));
}

/**
 * A named-bit BIT STRING (e.g. keyUsage): bit 0 is the most significant bit
 * of the first byte. DER drops trailing zero bits.
 */
export function namedBits(bits: number[]): Buffer {
  if (bits.length === 0) return bitString(Buffer.alloc(0));
  const highest = Math.max(...bits);
  const bytes = Buffer.alloc(Math.floor(highest / 8) + 1);
  for (const bit of bits) bytes[Math.floor(bit / 8)]! |= 0x80 >> bit % 8;
  return bitString(bytes, 7 - (highest % 8));
}

export function octetString(bytes: Buffer): Buffer {
  return tlv(TAG.OCTET_STRING, bytes);
}

export function nullValue(): Buffer {
  return Buffer.from([TAG.NULL, 0x00]);
}

/** OBJECT IDENTIFIER from dotted notation ("1.2.840.113549.1.1.11"). */
export function oid(dotted: string): Buffer {
  if (!/^[0-2](\.(0|[1-9][0-9]*))+$/.test(dotted)) throw new RangeError(`invalid OID "${dotted}"`);
  const arcs = dotted.split('.').map((a) => BigInt(a));
  const [first, second, ...rest] = arcs as [bigint, bigint, ...bigint[]];
  if (first < 2n && second > 39n) throw new RangeError(`invalid OID "${dotted}"`);
  const out: number[] = [];
  for (const arc of [first * 40n + second, ...rest]) {
    const group: number[] = [Number(arc & 0x7fn)];
    for (let n = arc >> 7n; n > 0n; n >>= 7n) group.unshift(Number(n & 0x7fn) | 0x80);
    out.push(...group);
  }
  return tlv(TAG.OID, Buffer.from(out));
}

export function utf8String(value: string): Buffer {
  return tlv(TAG.UTF8_STRING, Buffer.from(value, 'utf8'));
}

const PRINTABLE = /^[A-Za-z0-9 '()+,\-./:=?]*$/;

export function isPrintable(value: string): boolean {
  return PRINTABLE.test(value);
}

export function printableString(value: string): Buffer {
  if (!isPrintable(value)) throw new RangeError(`"${value}" has characters not allowed in a PrintableString`);
  return tlv(TAG.PRINTABLE_STRING, Buffer.from(value, 'ascii'));
}

export function ia5String(value: string): Buffer {
  if (!/^[\x00-\x7f]*$/.test(value)) throw new RangeError(`"${value}" is not ASCII (IA5String)`);
  return tlv(TAG.IA5_STRING, Buffer.from(value, 'ascii'));
}

/** BMPString: UTF-16 big-endian (PKCS#12 friendlyName). */
export function bmpString(value: string): Buffer {
  const le = Buffer.from(value, 'utf16le');
  return tlv(TAG.BMP_STRING, le.swap16());
}

function pad(n: number, width = 2): string {
  return String(n).padStart(width, '0');
}

function checkDate(date: Date): void {
  if (Number.isNaN(date.getTime())) throw new RangeError('invalid date');
}

/** UTCTime YYMMDDHHMMSSZ; only for years 1950..2049. */
export function utcTime(date: Date): Buffer {
  checkDate(date);
  const y = date.getUTCFullYear();
  if (y < 1950 || y > 2049) throw new RangeError(`UTCTime cannot hold the year ${y}`);
  const s =
    pad(y % 100) + pad(date.getUTCMonth() + 1) + pad(date.getUTCDate()) +
    pad(date.getUTCHours()) + pad(date.getUTCMinutes()) + pad(date.getUTCSeconds()) + 'Z';
  return tlv(TAG.UTC_TIME, Buffer.from(s, 'ascii'));
}

/** GeneralizedTime YYYYMMDDHHMMSSZ (no fractional seconds, as RFC 5280 requires). */
export function generalizedTime(date: Date): Buffer {
  checkDate(date);
  const y = date.getUTCFullYear();
  if (y < 0 || y > 9999) throw new RangeError(`GeneralizedTime cannot hold the year ${y}`);
  const s =
    pad(y, 4) + pad(date.getUTCMonth() + 1) + pad(date.getUTCDate()) +
    pad(date.getUTCHours()) + pad(date.getUTCMinutes()) + pad(date.getUTCSeconds()) + 'Z';
  return tlv(TAG.GENERALIZED_TIME, Buffer.from(s, 'ascii'));
}

/** RFC 5280 Time: UTCTime through 2049, GeneralizedTime from 2050. */
export function time(date: Date): Buffer {
  checkDate(date);
  const y = date.getUTCFullYear();
  return y >= 1950 && y <= 2049 ? utcTime(date) : generalizedTime(date);
}

export function sequence(...items: Buffer[]): Buffer {
  return tlv(TAG.SEQUENCE, Buffer.concat(items));
}

/** SET OF: DER orders the elements by their encodings. */
export function set(...items: Buffer[]): Buffer {
  return tlv(TAG.SET, Buffer.concat([...items].sort(Buffer.compare)));
}

/** [n] EXPLICIT: a constructed context tag wrapping a complete TLV. */
export function explicit(tagNumber: number, inner: Buffer): Buffer {
  if (tagNumber < 0 || tagNumber > 30) throw new RangeError(`unsupported tag number ${tagNumber}`);
  return tlv(0xa0 | tagNumber, inner);
}

/**
 * [n] IMPLICIT: replaces the tag of `content`'s type. Pass the raw value bytes
 * (not a TLV); `constructed` for SEQUENCE/SET-based types.
 */
export function implicit(tagNumber: number, content: Buffer, constructed = false): Buffer {
  if (tagNumber < 0 || tagNumber > 30) throw new RangeError(`unsupported tag number ${tagNumber}`);
  return tlv((constructed ? 0xa0 : 0x80) | tagNumber, content);
}

/** An AlgorithmIdentifier; `params` undefined omits the parameters, `null` writes NULL. */
export function algorithm(dotted: string, params?: Buffer | null): Buffer {
  if (params === undefined) return sequence(oid(dotted));
  return sequence(oid(dotted), params === null ? nullValue() : params);
}
