// RFC 7512 PKCS#11 URIs: the forms AWS's helper, p11-kit and OpenSC accept,
// and a precise refusal for everything else, never echoing a pin-value.
import t from 'tap';
import { formatPkcs11Uri, isPkcs11Uri, parsePkcs11Uri, redactPkcs11Uri, separateUriPins } from '../../src/identity/pkcs11-uri.js';

t.test('parses path and query attributes', async (t) => {
  t.same(parsePkcs11Uri('pkcs11:token=Prod%20HSM;object=client;type=private?pin-value=1234'), {
    token: 'Prod HSM',
    object: 'client',
    type: 'private',
    pinValue: '1234',
  });
  const u = parsePkcs11Uri('pkcs11:model=PKCS%2315%20emulated;manufacturer=piv_II;serial=42facd1f749ece7f;token=YubiKey%20PIV;id=%02;slot-id=3?pin-source=file:/etc/ra/pin&module-path=/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so');
  t.equal(u.model, 'PKCS#15 emulated');
  t.equal(u.manufacturer, 'piv_II');
  t.equal(u.serial, '42facd1f749ece7f');
  t.equal(u.token, 'YubiKey PIV');
  t.same(u.id, Buffer.from([2]));
  t.equal(u.slotId, 3);
  t.equal(u.pinSource, 'file:/etc/ra/pin');
  t.equal(u.modulePath, '/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so');
  t.same(parsePkcs11Uri('pkcs11:'), {}, 'the empty URI matches everything');
  t.same(parsePkcs11Uri('PKCS11:object=a'), { object: 'a' }, 'scheme is case-insensitive');
  t.same(parsePkcs11Uri('pkcs11:library-manufacturer=SoftHSM;library-version=2.6').libraryVersion, '2.6');
  t.same(parsePkcs11Uri('pkcs11:object=caf%C3%A9').object, 'café', 'UTF-8 after percent-decoding');
  t.same(parsePkcs11Uri('pkcs11:id=%01%02%ff').id, Buffer.from([1, 2, 255]), 'id is raw bytes');
});

t.test('refuses what it cannot honour, with the reason', async (t) => {
  const bad: Array<[string, RegExp]> = [
    ['file.pem', /not a pkcs11: URI/],
    ['pkcs11:object=a;object=b', /attribute object is given twice/],
    ['pkcs11:objekt=a', /unknown path attribute "objekt"/],
    ['pkcs11:object=a;pin-value=1', /pin-value belongs in the query \(after \?\)/],
    ['pkcs11:object=a?token=b', /token belongs in the path \(before \?\)/],
    ['pkcs11:type=secret', /type must be one of cert, private, public, secret-key, data/],
    ['pkcs11:slot-id=x', /slot-id must be a decimal number/],
    ['pkcs11:object=%zz', /bad percent-escape in object/],
    ['pkcs11:object=%ff', /not valid UTF-8/],
    ['pkcs11:id=', /id is empty/],
    ['pkcs11:object', /has no name=value form/],
    ['pkcs11:object=a#frag', /fragment/],
    ['pkcs11:library-version=two', /library-version must look like/],
    ['pkcs11:x-vendor=1', /unknown path attribute "x-vendor"/],
  ];
  for (const [uri, re] of bad) {
    t.throws(() => parsePkcs11Uri(uri), re, uri);
    t.throws(() => parsePkcs11Uri(uri), /expected an RFC 7512 URI like pkcs11:token=LABEL;object=LABEL;type=private/);
  }
  for (const secret of [
    'pkcs11:objekt=a?pin-value=s3cr3t',
    'pkcs11:object=a?pin-value=s3cr3t&pin-value=x',
    'pkcs11:object=a?pin-value=s3cr3t%zz',
    // A PIN holding a character the old pattern stopped at: all of it stays hidden.
    'pkcs11:object=a?pin-value=12?s3cr3t&pin-value=x',
    'pkcs11:object=a?pin-value=12;s3cr3t&pin-value=x',
    'pkcs11:object=a?pin-value=12#s3cr3t',
    // A misspelt PIN attribute is refused without echoing its value.
    'pkcs11:object=a?pin=s3cr3t',
    'pkcs11:object=a?pin%2Dvalue=s3cr3t',
    'pkcs11:object=a?PIN_VALUE=s3cr3t',
  ]) {
    let message = '';
    try {
      parsePkcs11Uri(secret);
    } catch (err) {
      message = (err as Error).message;
    }
    t.ok(message, `${redactPkcs11Uri(secret)} refused`);
    t.notMatch(message, 's3cr3t', 'the PIN is not echoed');
  }
});

t.test('redaction and formatting', async (t) => {
  t.equal(redactPkcs11Uri('pkcs11:token=a?pin-value=1234&module-path=/x'), 'pkcs11:token=a?pin-value=REDACTED&module-path=/x');
  t.equal(redactPkcs11Uri('pkcs11:token=a;PIN-VALUE=1234'), 'pkcs11:token=a;PIN-VALUE=REDACTED');
  t.equal(redactPkcs11Uri('pkcs11:token=a?pin-value=12?34;56#78&module-path=/x'), 'pkcs11:token=a?pin-value=REDACTED&module-path=/x');
  t.equal(redactPkcs11Uri('pkcs11:pin-value=1234;token=a'), 'pkcs11:pin-value=REDACTED;token=a');
  t.equal(redactPkcs11Uri('pkcs11:token=a?pin-source=file:/etc/ra/pin'), 'pkcs11:token=a?pin-source=file:/etc/ra/pin', 'a PIN file path is not secret');
  t.ok(isPkcs11Uri('pkcs11:'));
  t.notOk(isPkcs11Uri('/etc/ra/pkcs11:x'));
  const uri = parsePkcs11Uri('pkcs11:token=My%20Token;object=a%3Bb;id=%01%AB;type=private?pin-value=9');
  const text = formatPkcs11Uri(uri);
  t.equal(text, 'pkcs11:token=My%20Token;object=a%3Bb;type=private;id=%01%AB');
  t.notMatch(text, /pin/, 'formatting never includes the PIN');
  const again = parsePkcs11Uri(text);
  t.same({ ...again }, { token: 'My Token', object: 'a;b', type: 'private', id: Buffer.from([1, 0xab]) }, 'round trip');
});

// Issue 21 (11): an unencoded `&` in a pin-value split the PIN, and the parser's
// error quoted the part after it ("attribute "s3cr3t" has no name=value form").
t.test('a PIN with an unencoded & is refused without echoing any of it', async (t) => {
  for (const uri of [
    'pkcs11:object=a?pin-value=9q&s3cr3t',
    'pkcs11:object=a?pin-value=9q&s3cr3t&module-name=x',
    'pkcs11:object=a?pin-value=9q&s3=cr3t',
    'pkcs11:object=a?module-name=x&pin-value=9q&&s3cr3t',
    'pkcs11:object=a;pin-value=9q;s3cr3t',
  ]) {
    const messages: string[] = [];
    for (const attempt of [() => parsePkcs11Uri(uri), () => separateUriPins({ certificate: uri, privateKey: uri })]) {
      try {
        attempt();
        messages.push('');
      } catch (err) {
        messages.push((err as Error).message);
      }
    }
    t.ok(messages[0], `parser refuses ${redactPkcs11Uri(uri)}`);
    for (const m of [...messages, redactPkcs11Uri(uri)]) {
      t.notMatch(m, /9q|s3|cr3t/, `no PIN fragment in: ${m}`);
    }
  }
  t.match(
    (() => {
      try {
        separateUriPins({ certificate: 'pkcs11:object=a?pin-value=9q&s3cr3t' });
      } catch (err) {
        return (err as Error).message;
      }
      return '';
    })(),
    /%26/,
    'the message says how to write &',
  );
  t.equal(redactPkcs11Uri('pkcs11:token=a?pin-value=9q&34&module-path=/x'), 'pkcs11:token=a?pin-value=REDACTED&module-path=/x');
});
