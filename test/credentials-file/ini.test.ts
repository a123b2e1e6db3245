import t from 'tap';
import { readIni, setSectionValues, validateProfileName } from '../../src/credentials-file/ini.js';
import { UserError } from '../../src/errors.js';

const V = { aws_access_key_id: 'ASIANEW', aws_secret_access_key: 'newsecret', aws_session_token: 'newtoken' };

t.test('appends a missing section, keeping everything before it', async (t) => {
  t.equal(setSectionValues('', 'default', V), '[default]\naws_access_key_id = ASIANEW\naws_secret_access_key = newsecret\naws_session_token = newtoken\n');
  const orig = '# my creds\n[other]\naws_access_key_id = AKIAOTHER\n';
  const out = setSectionValues(orig, 'ra', V);
  t.ok(out.startsWith(orig), 'original bytes are a prefix');
  t.equal(out.slice(orig.length), '\n[ra]\naws_access_key_id = ASIANEW\naws_secret_access_key = newsecret\naws_session_token = newtoken\n');
  const noEol = '[other]\nx = 1';
  t.equal(setSectionValues(noEol, 'ra', V).slice(0, noEol.length + 2), `${noEol}\n\n`, 'file without final newline gets one before the new section');
  const crlf = '[other]\r\nx = 1\r\n';
  t.equal(setSectionValues(crlf, 'ra', V), `${crlf}\r\n[ra]\r\naws_access_key_id = ASIANEW\r\naws_secret_access_key = newsecret\r\naws_session_token = newtoken\r\n`, 'CRLF file: CRLF section');
});

t.test('replaces managed keys in place, keeps unknown keys, comments, spacing, other sections', async (t) => {
  const orig = [
    '; top comment',
    '[default]',
    'aws_access_key_id=AKIADEFAULT',
    'aws_secret_access_key   =   defaultsecret',
    '',
    '[ra]',
    '# keep me',
    'AWS_ACCESS_KEY_ID = OLD',
    'region = eu-west-1',
    'aws_secret_access_key: oldsecret',
    '  continued-old-secret-line',
    'aws_session_token = oldtoken',
    'aws_security_token = legacy',
    '',
    '   ',
    '[after]',
    'aws_access_key_id = AKIAAFTER',
    '',
  ].join('\n');
  const out = setSectionValues(orig, 'ra', V, ['aws_security_token']);
  t.equal(
    out,
    [
      '; top comment',
      '[default]',
      'aws_access_key_id=AKIADEFAULT',
      'aws_secret_access_key   =   defaultsecret',
      '',
      '[ra]',
      '# keep me',
      'AWS_ACCESS_KEY_ID = ASIANEW',
      'region = eu-west-1',
      'aws_secret_access_key: newsecret',
      'aws_session_token = newtoken',
      '',
      '   ',
      '[after]',
      'aws_access_key_id = AKIAAFTER',
      '',
    ].join('\n'),
  );
});

t.test('adds missing keys after the section\'s last key, before trailing blanks and the next section', async (t) => {
  const orig = '[ra]\r\nregion = us-east-1\r\naws_access_key_id = OLD\r\n\r\n# about next\r\n[next]\r\nk = v\r\n';
  const out = setSectionValues(orig, 'ra', V);
  t.equal(out, '[ra]\r\nregion = us-east-1\r\naws_access_key_id = ASIANEW\r\naws_secret_access_key = newsecret\r\naws_session_token = newtoken\r\n\r\n# about next\r\n[next]\r\nk = v\r\n');
  const last = '[a]\nk = v\n[ra]\nregion = x';
  t.equal(setSectionValues(last, 'ra', V), '[a]\nk = v\n[ra]\nregion = x\naws_access_key_id = ASIANEW\naws_secret_access_key = newsecret\naws_session_token = newtoken\n');
  const emptySection = '[ra]\n[b]\n';
  t.equal(setSectionValues(emptySection, 'ra', V), '[ra]\naws_access_key_id = ASIANEW\naws_secret_access_key = newsecret\naws_session_token = newtoken\n[b]\n');
});

t.test('section names match exactly; bytes outside ASCII survive', async (t) => {
  const orig = Buffer.from('[ra-2]\nk = v\n# café ☕\n[ra]\naws_access_key_id = OLD\n', 'utf8').toString('latin1');
  const out = setSectionValues(orig, 'ra', V);
  t.equal(Buffer.from(out, 'latin1').toString('utf8'), '[ra-2]\nk = v\n# café ☕\n[ra]\naws_access_key_id = ASIANEW\naws_secret_access_key = newsecret\naws_session_token = newtoken\n');
});

t.test('refuses duplicate sections and bad profile names', async (t) => {
  t.throws(() => setSectionValues('[ra]\na=1\n[ra]\nb=2\n', 'ra', V, [], '/x/credentials'), { message: /\/x\/credentials has the section \[ra\] 2 times.*merge them by hand/ });
  for (const bad of ['', 'a]b', 'a\nb', ' ra']) {
    t.throws(() => setSectionValues('', bad, V), UserError, `profile name ${JSON.stringify(bad)}`);
  }
});

t.test('a UTF-8 byte order mark before the first section header does not hide that section', async (t) => {
  // Files saved by Windows editors start with EF BB BF. The section after it
  // must be found and edited in place; appending a second [default] made the
  // next write refuse the file as having a duplicate section.
  const bom = '\xef\xbb\xbf';
  const orig = `${bom}[default]\r\naws_access_key_id = OLD\r\n\r\n[other]\r\nx = 1\r\n`;
  const out = setSectionValues(orig, 'default', V);
  t.equal(out, `${bom}[default]\r\naws_access_key_id = ASIANEW\r\naws_secret_access_key = newsecret\r\naws_session_token = newtoken\r\n\r\n[other]\r\nx = 1\r\n`);
  t.equal(setSectionValues(out, 'default', V), out, 'a second write finds the same section');
});

t.test('indented keys are replaced in place, not duplicated (botocore rejected the whole file)', async (t) => {
  const orig = '[ra]\n  aws_access_key_id = OLD\n  aws_secret_access_key = OLDSECRET\n  region = eu-west-1\n[next]\nk = v\n';
  t.equal(
    setSectionValues(orig, 'ra', V),
    '[ra]\n  aws_access_key_id = ASIANEW\n  aws_secret_access_key = newsecret\n  region = eu-west-1\naws_session_token = newtoken\n[next]\nk = v\n',
  );
  t.same(readIni(setSectionValues(orig, 'ra', V)), {
    ok: true,
    sections: { ra: { ...V, region: 'eu-west-1' }, next: { k: 'v' } },
    defaults: {},
  });
});

t.test('an indented [section] after a key and an indented line after a blank line continue the value, as configparser reads them', async (t) => {
  const orig = '[ra]\naws_session_token = OLD\n\n   oldtoken-part2\n  [ra]\n';
  t.same(readIni(orig), { ok: true, sections: { ra: { aws_session_token: 'OLD\n\noldtoken-part2\n[ra]' } }, defaults: {} });
  const out = setSectionValues(orig, 'ra', V);
  t.equal(out, '[ra]\naws_session_token = newtoken\naws_access_key_id = ASIANEW\naws_secret_access_key = newsecret\n\n');
  t.same(readIni(out), { ok: true, sections: { ra: V }, defaults: {} });
});

t.test('--profile DEFAULT is refused: every other profile would inherit its keys', async (t) => {
  t.throws(() => setSectionValues('', 'DEFAULT', V), { message: /special section whose keys every other profile inherits/ });
  t.throws(() => validateProfileName('DEFAULT'), UserError);
  t.doesNotThrow(() => validateProfileName('default'));
});
