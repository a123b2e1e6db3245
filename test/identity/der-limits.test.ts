// Element size limits of the DER reader: a 300 KB OBJECT IDENTIFIER took 51 s to
// decode (BigInt arcs, superlinear); now anything beyond what certificates hold
// is refused at once with a DerError (the loaders turn it into "corrupt").
import t from 'tap';
import { decodeOid, DerError, MAX_INTEGER_BYTES, MAX_OID_BYTES, parseDer, readInteger, readOid } from '../../src/asn1/reader.js';

function tlv(tag: number, content: Buffer): Buffer {
  const len = content.length;
  const head = len < 0x80 ? Buffer.from([tag, len]) : Buffer.from([tag, 0x84, len >>> 24, (len >>> 16) & 0xff, (len >>> 8) & 0xff, len & 0xff]);
  return Buffer.concat([head, content]);
}

t.test('real OIDs decode; a UUID arc (2.25.<128 bits>) fits', async (t) => {
  t.equal(decodeOid(Buffer.from('2a864886f70d01010b', 'hex')), '1.2.840.113549.1.1.11');
  const uuid = 0xffffffffffffffffffffffffffffffffn;
  const bytes: number[] = [];
  for (let v = uuid; v > 0n; v >>= 7n) bytes.unshift(Number(v & 0x7fn) | (bytes.length ? 0x80 : 0));
  t.equal(decodeOid(Buffer.from([0x69, ...bytes])), `2.25.${uuid}`);
});

t.test('a 300 KB OID (one endless arc, or many arcs) is refused at once', async (t) => {
  const oneArc = Buffer.concat([Buffer.from([0x2a]), Buffer.alloc(300_000, 0xff), Buffer.from([0x01])]);
  t.throws(() => readOid(parseDer(tlv(0x06, oneArc))), DerError);
  t.throws(() => decodeOid(oneArc), { message: /OBJECT IDENTIFIER of 300002 bytes/ });
  t.throws(() => decodeOid(Buffer.concat([Buffer.from([0x2a]), Buffer.alloc(MAX_OID_BYTES, 0x01)])), DerError, 'many small arcs');
  t.throws(() => decodeOid(Buffer.concat([Buffer.from([0x2a]), Buffer.alloc(30, 0x81), Buffer.from([0x01])])), { message: /arc longer than 20 bytes/ });
});

t.test('an INTEGER beyond 4096 bits is refused', async (t) => {
  t.equal(readInteger(parseDer(tlv(0x02, Buffer.from([0x01, 0x00])))), 256n);
  t.throws(() => readInteger(parseDer(tlv(0x02, Buffer.alloc(MAX_INTEGER_BYTES + 1, 0x11)))), { message: /INTEGER of 513 bytes/ });
});
