// The ASN.1 reader: enough DER (and the BER indefinite lengths that some
// PKCS#12 writers use) to read certificate fields, key structures and PKCS#12
// bundles. Node's X509Certificate hides the version, key usage bits and
// signature algorithm, so we read them ourselves. The matching encoder is
// src/asn1/encoder.ts.

export class DerError extends Error {
  override name = 'DerError';
}

export const TAG = {
  BOOLEAN: 0x01,
  INTEGER: 0x02,
  BIT_STRING: 0x03,
  OCTET_STRING: 0x04,
  NULL: 0x05,
  OID: 0x06,
  UTF8_STRING: 0x0c,
  PRINTABLE_STRING: 0x13,
  IA5_STRING: 0x16,
  UTC_TIME: 0x17,
  GENERALIZED_TIME: 0x18,
  BMP_STRING: 0x1e,
  SEQUENCE: 0x30,
  SET: 0x31,
} as const;

export interface Asn1 {
  /** Full identifier octet (class, constructed bit, tag number). */
  tag: number;
  constructed: boolean;
  /** 0 universal, 1 application, 2 context-specific, 3 private. */
  cls: number;
  tagNumber: number;
  /** Content octets (for indefinite lengths: without the end-of-contents marker). */
  value: Buffer;
  /** The whole encoding, header included. */
  raw: Buffer;
  /** Parsed children when constructed. */
  children: Asn1[];
}

function readOne(buf: Buffer, offset: number, depth: number): { node: Asn1; next: number } {
  if (depth > 64) throw new DerError('ASN.1 nesting too deep');
  if (offset >= buf.length) throw new DerError('truncated ASN.1 (no tag)');
  const tag = buf[offset]!;
  if ((tag & 0x1f) === 0x1f) throw new DerError('unsupported high-number ASN.1 tag');
  let pos = offset + 1;
  if (pos >= buf.length) throw new DerError('truncated ASN.1 (no length)');
  const first = buf[pos++]!;
  const constructed = (tag & 0x20) !== 0;
  let length: number | undefined;
  if (first < 0x80) length = first;
  else if (first === 0x80) {
    if (!constructed) throw new DerError('indefinite length on a primitive ASN.1 value');
    length = undefined;
  } else {
    const n = first & 0x7f;
    if (n > 4) throw new DerError('ASN.1 length too large');
    if (pos + n > buf.length) throw new DerError('truncated ASN.1 length');
    length = 0;
    for (let i = 0; i < n; i++) length = length * 256 + buf[pos++]!;
  }
  const children: Asn1[] = [];
  let contentEnd: number;
  let next: number;
  if (length === undefined) {
    let p = pos;
    for (;;) {
      if (p + 2 > buf.length) throw new DerError('truncated ASN.1 (missing end-of-contents)');
      if (buf[p] === 0 && buf[p + 1] === 0) break;
      const child = readOne(buf, p, depth + 1);
      children.push(child.node);
      p = child.next;
    }
    contentEnd = p;
    next = p + 2;
  } else {
    contentEnd = pos + length;
    if (contentEnd > buf.length) throw new DerError('truncated ASN.1 value');
    next = contentEnd;
    if (constructed) {
      let p = pos;
      while (p < contentEnd) {
        const child = readOne(buf.subarray(0, contentEnd), p, depth + 1);
        children.push(child.node);
        p = child.next;
      }
    }
  }
  return {
    node: {
      tag,
      constructed,
      cls: tag >> 6,
      tagNumber: tag & 0x1f,
      value: buf.subarray(pos, contentEnd),
      raw: buf.subarray(offset, next),
      children,
    },
    next,
  };
}

/** Parses one ASN.1 value; `allowTrailing` permits bytes after it. */
export function parseDer(buf: Buffer, allowTrailing = false): Asn1 {
  const { node, next } = readOne(buf, 0, 0);
  if (!allowTrailing && next !== buf.length) throw new DerError('unexpected data after the ASN.1 value');
  return node;
}

export function expect(node: Asn1 | undefined, tag: number, what: string): Asn1 {
  if (!node) throw new DerError(`missing ${what}`);
  if (node.tag !== tag) throw new DerError(`unexpected ASN.1 tag 0x${node.tag.toString(16)} for ${what}`);
  return node;
}

export function child(node: Asn1, index: number, what: string): Asn1 {
  const c = node.children[index];
  if (!c) throw new DerError(`missing ${what}`);
  return c;
}

/**
 * Size limits on what certificates, keys and PKCS#12 bundles really contain: an
 * OBJECT IDENTIFIER of at most 128 content octets with arcs of at most 20 octets
 * (140 bits: a UUID arc under 2.25 takes 19), an INTEGER of at most 512 octets.
 * Arcs and integers are BigInts, and decoding a huge one is superlinear (a
 * 300 KB OID took 51 s).
 */
export const MAX_OID_BYTES = 128;
export const MAX_OID_ARC_BYTES = 20;
export const MAX_INTEGER_BYTES = 512;

/** Decodes an OBJECT IDENTIFIER's content octets to dotted notation. */
export function decodeOid(content: Buffer): string {
  if (content.length === 0) throw new DerError('empty OBJECT IDENTIFIER');
  if (content.length > MAX_OID_BYTES) throw new DerError(`OBJECT IDENTIFIER of ${content.length} bytes (the limit is ${MAX_OID_BYTES})`);
  const arcs: bigint[] = [];
  let n = 0n;
  let arcBytes = 0;
  for (const byte of content) {
    if (++arcBytes > MAX_OID_ARC_BYTES) throw new DerError(`OBJECT IDENTIFIER arc longer than ${MAX_OID_ARC_BYTES} bytes`);
    n = (n << 7n) | BigInt(byte & 0x7f);
    if (!(byte & 0x80)) {
      arcs.push(n);
      n = 0n;
      arcBytes = 0;
    }
  }
  const first = arcs.shift() ?? 0n;
  const head = first < 80n ? [first / 40n, first % 40n] : [2n, first - 80n];
  return [...head, ...arcs].join('.');
}

export function readOid(node: Asn1): string {
  if (node.tag !== TAG.OID) throw new DerError('expected an OBJECT IDENTIFIER');
  return decodeOid(node.value);
}

export function readInteger(node: Asn1): bigint {
  if (node.tag !== TAG.INTEGER) throw new DerError('expected an INTEGER');
  if (node.value.length === 0) throw new DerError('empty INTEGER');
  if (node.value.length > MAX_INTEGER_BYTES) throw new DerError(`INTEGER of ${node.value.length} bytes (the limit is ${MAX_INTEGER_BYTES})`);
  let n = BigInt('0x' + node.value.toString('hex'));
  if (node.value[0]! & 0x80) n -= 1n << BigInt(node.value.length * 8);
  return n;
}

export function readSmallInteger(node: Asn1): number {
  const n = readInteger(node);
  if (n > BigInt(Number.MAX_SAFE_INTEGER) || n < 0n) throw new DerError('INTEGER out of range');
  return Number(n);
}

/** OCTET STRING contents; joins the pieces of a constructed (BER) one. */
export function readOctets(node: Asn1): Buffer {
  if (!node.constructed) return node.value;
  return Buffer.concat(node.children.map(readOctets));
}

export function readBitString(node: Asn1): { unusedBits: number; bytes: Buffer } {
  if (node.tag !== TAG.BIT_STRING) throw new DerError('expected a BIT STRING');
  if (node.value.length === 0) throw new DerError('empty BIT STRING');
  return { unusedBits: node.value[0]!, bytes: node.value.subarray(1) };
}

/** Reads a UTCTime or GeneralizedTime (the forms X.509 uses). */
export function readTime(node: Asn1): Date {
  const s = node.value.toString('latin1');
  let m: RegExpMatchArray | null;
  if (node.tag === TAG.UTC_TIME) {
    m = s.match(/^(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})?Z$/);
    if (!m) throw new DerError('malformed UTCTime');
    const yy = Number(m[1]);
    const year = yy >= 50 ? 1900 + yy : 2000 + yy;
    return new Date(Date.UTC(year, Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6] ?? 0)));
  }
  if (node.tag === TAG.GENERALIZED_TIME) {
    m = s.match(/^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})?(?:\.\d+)?Z$/);
    if (!m) throw new DerError('malformed GeneralizedTime');
    return new Date(Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6] ?? 0)));
  }
  throw new DerError('expected a time value');
}
