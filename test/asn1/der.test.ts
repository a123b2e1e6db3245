import t from 'tap';
import {
  bitString,
  bmpString,
  boolean,
  encodeLength,
  explicit,
  generalizedTime,
  ia5String,
  implicit,
  integer,
  namedBits,
  nullValue,
  octetString,
  oid,
  printableString,
  sequence,
  set,
  time,
  utcTime,
  utf8String,
} from '../../src/asn1/encoder.js';
import { decodeOid, parseDer } from '../../src/asn1/reader.js';

const hex = (b: Buffer): string => b.toString('hex');

t.test('lengths: short and long form', async (t) => {
  t.equal(hex(encodeLength(0)), '00');
  t.equal(hex(encodeLength(127)), '7f');
  t.equal(hex(encodeLength(128)), '8180');
  t.equal(hex(encodeLength(255)), '81ff');
  t.equal(hex(encodeLength(256)), '820100');
  t.equal(hex(encodeLength(65536)), '83010000');
  t.equal(hex(octetString(Buffer.alloc(200))).slice(0, 6), '0481c8');
  t.throws(() => encodeLength(-1));
});

t.test('INTEGER: minimal two\'s complement', async (t) => {
  t.equal(hex(integer(0)), '020100');
  t.equal(hex(integer(1)), '020101');
  t.equal(hex(integer(127)), '02017f');
  t.equal(hex(integer(0x80)), '02020080');
  t.equal(hex(integer(256)), '02020100');
  t.equal(hex(integer(2048)), '02020800');
  t.equal(hex(integer(-1)), '0201ff');
  t.equal(hex(integer(-128)), '020180');
  t.equal(hex(integer(-129)), '0202ff7f');
  t.equal(hex(integer(2n ** 64n)), '0209010000000000000000');
  // Buffers are unsigned magnitudes: leading zeros dropped, 00 added before a set top bit.
  t.equal(hex(integer(Buffer.from('80', 'hex'))), '02020080');
  t.equal(hex(integer(Buffer.from('00007f', 'hex'))), '02017f');
  t.equal(hex(integer(Buffer.from('000080', 'hex'))), '02020080');
  t.equal(hex(integer(Buffer.from('0000', 'hex'))), '020100');
});

t.test('BOOLEAN, NULL, OCTET STRING, BIT STRING', async (t) => {
  t.equal(hex(boolean(true)), '0101ff');
  t.equal(hex(boolean(false)), '010100');
  t.equal(hex(nullValue()), '0500');
  t.equal(hex(octetString(Buffer.from('0102', 'hex'))), '04020102');
  t.equal(hex(bitString(Buffer.from('ff', 'hex'))), '030200ff');
  t.equal(hex(bitString(Buffer.alloc(0))), '030100');
  t.throws(() => bitString(Buffer.from('00', 'hex'), 8));
});

t.test('named bits (keyUsage) drop trailing zero bits', async (t) => {
  // digitalSignature only: 1 bit used, 7 unused: 03 02 07 80
  t.equal(hex(namedBits([0])), '03020780');
  // keyCertSign (5) + cRLSign (6): 0000011x -> 06, 1 unused bit
  t.equal(hex(namedBits([5, 6])), '03020106');
  // digitalSignature + keyEncipherment: 101xxxxx -> a0, 5 unused
  t.equal(hex(namedBits([0, 2])), '030205a0');
  // decipherOnly (8) spills into a second byte
  t.equal(hex(namedBits([0, 8])), '0303078080');
});

t.test('OBJECT IDENTIFIER', async (t) => {
  t.equal(hex(oid('1.2.840.113549.1.1.11')), '06092a864886f70d01010b');
  t.equal(hex(oid('2.5.29.19')), '0603551d13');
  t.equal(hex(oid('1.2.840.10045.4.3.2')), '06082a8648ce3d040302');
  t.equal(hex(oid('1.3.6.1.5.5.7.3.2')), '06082b06010505070302');
  t.equal(hex(oid('2.16.840.1.101.3.4.1.42')), '060960864801650304012a');
  t.equal(hex(oid('0.9.2342.19200300.100.1.25')), '060a0992268993f22c640119');
  t.equal(hex(oid('2.999.3')), '0603883703'); // first arc 2 allows second arcs > 39
  for (const dotted of ['1.2.840.113549.1.1.11', '2.5.29.19', '2.999.3', '0.9.2342.19200300.100.1.25']) {
    t.equal(decodeOid(parseDer(oid(dotted)).value), dotted, `round trip ${dotted}`);
  }
  t.throws(() => oid('1.40'));
  t.throws(() => oid('3.1'));
  t.throws(() => oid('1.2.x'));
  t.throws(() => oid('1'));
});

t.test('strings', async (t) => {
  t.equal(hex(utf8String('hé')), '0c0368c3a9');
  t.equal(hex(printableString('US')), '13025553');
  t.throws(() => printableString('a@b'));
  t.equal(hex(ia5String('a@b')), '1603614062');
  t.throws(() => ia5String('é'));
  t.equal(hex(bmpString('ab')), '1e0400610062');
});

t.test('times: UTCTime through 2049, GeneralizedTime from 2050', async (t) => {
  const d = new Date(Date.UTC(2024, 0, 2, 3, 4, 5, 678));
  t.equal(utcTime(d).toString('latin1'), '\x17\x0d240102030405Z');
  t.equal(generalizedTime(d).toString('latin1'), '\x18\x0f20240102030405Z');
  t.equal(hex(time(new Date(Date.UTC(2049, 11, 31, 23, 59, 59))).subarray(0, 1)), '17');
  t.equal(time(new Date(Date.UTC(2049, 11, 31, 23, 59, 59))).subarray(2).toString(), '491231235959Z');
  t.equal(hex(time(new Date(Date.UTC(2050, 0, 1))).subarray(0, 1)), '18');
  t.equal(time(new Date(Date.UTC(2050, 0, 1))).subarray(2).toString(), '20500101000000Z');
  t.equal(time(new Date(Date.UTC(1950, 0, 1))).subarray(2).toString(), '500101000000Z');
  t.equal(hex(time(new Date(Date.UTC(1949, 11, 31))).subarray(0, 1)), '18');
  t.throws(() => utcTime(new Date(Date.UTC(2050, 0, 1))));
  t.throws(() => time(new Date(NaN)));
});

t.test('SEQUENCE, SET (sorted), context tags', async (t) => {
  t.equal(hex(sequence()), '3000');
  t.equal(hex(sequence(integer(1), nullValue())), '30050201010500');
  // DER SET OF orders elements by encoding.
  t.equal(hex(set(integer(2), integer(1))), '3106020101020102');
  t.equal(hex(explicit(0, integer(2))), 'a003020102');
  t.equal(hex(explicit(3, sequence())), 'a3023000');
  t.equal(hex(implicit(0, Buffer.from('abcd', 'hex'))), '8002abcd');
  t.equal(hex(implicit(1, Buffer.from('3000', 'hex'), true)), 'a1023000');
});

t.test('reader round-trips what the encoder writes', async (t) => {
  const enc = sequence(integer(5), octetString(Buffer.alloc(300, 1)), sequence(oid('2.5.4.3')));
  const top = parseDer(enc);
  t.equal(top.tag, 0x30);
  t.equal(top.raw.length, enc.length);
  const kids = top.children;
  t.equal(kids.length, 3);
  t.equal(hex(kids[0]!.value), '05');
  t.equal(kids[1]!.value.length, 300);
  t.equal(decodeOid(kids[2]!.children[0]!.value), '2.5.4.3');
  t.throws(() => parseDer(enc.subarray(0, 10)), /truncated/);
});
