// Differential test: the credentials-file reader and `update`'s writer agree
// with Python's configparser (what botocore and the AWS CLI use). Thousands of
// generated files, with indented keys and headers, continuation lines after
// blank lines, comments, CR/LF/CRLF, duplicates and malformed lines, are read
// by both; then each file configparser accepts is updated, and configparser
// must read the result as the original with exactly the managed keys changed.
import { execFileSync } from 'node:child_process';
import { isDeepStrictEqual } from 'node:util';
import t from 'tap';
import { readIni, setSectionValues, type IniView } from '../../src/credentials-file/ini.js';
import { prng } from '../helpers/fuzz.js';

const PYTHON = `
import sys, json, io, configparser
out = []
for text in json.load(sys.stdin):
    cp = configparser.RawConfigParser()
    try:
        cp.read_file(io.StringIO(text, newline=None))
        out.append({'ok': True, 'sections': {s: dict(cp._sections[s]) for s in cp.sections()}, 'defaults': dict(cp._defaults)})
    except configparser.ParsingError as e:
        if type(e) is configparser.ParsingError:
            out.append({'ok': False, 'error': 'ParsingError', 'line': e.errors[0][0]})
        else:
            out.append({'ok': False, 'error': type(e).__name__, 'line': e.lineno})
    except configparser.Error as e:
        out.append({'ok': False, 'error': type(e).__name__, 'line': e.lineno})
json.dump(out, sys.stdout)
`;

function configparser(texts: string[]): IniView[] {
  return JSON.parse(execFileSync('python3', ['-c', PYTHON], { input: JSON.stringify(texts), maxBuffer: 256 * 1024 * 1024 }).toString('utf8')) as IniView[];
}

function generator(random: () => number) {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!;
  const indent = () => (random() < 0.55 ? '' : pick([' ', '  ', '    ', '\t', ' \t', '        ']));
  const sp = () => pick(['', ' ', ' ', '  ', '\t']);
  const keys = ['aws_access_key_id', 'AWS_Secret_Access_Key', 'aws_session_token', 'aws_security_token', 'region', 'output', 'x'];
  const values = ['v', 'AKIAOLD', '', 'a=b', 'x : y', 'old token', '[not] a header', '#notacomment', 'trailing  '];
  const line = (): string => {
    const r = random();
    if (r < 0.2) return `${indent()}[${pick(['p', 'default', 'other', 'DEFAULT', 'a]b', ' p ', 'p', 'default'])}]${pick(['', '', ' ', ' ; x', 'junk'])}`;
    if (r < 0.6) return `${indent()}${pick(keys)}${sp()}${pick(['=', '=', ':'])}${sp()}${pick(values)}`;
    if (r < 0.7) return `${pick(['  ', '    ', '\t', ' '])}${pick(['continued', 'more token', 'k = v', '[p]', '#x'])}`;
    if (r < 0.8) return pick(['', '', '   ', '\t', '\f']);
    if (r < 0.9) return `${indent()}${pick(['#', ';'])}${pick([' comment', '', ' [p]', ' k = v'])}`;
    if (r < 0.95) return pick(['novalue', '=nokey', ':', '[]', ' [']);
    return `${indent()}${pick(keys)} = ${pick(values)}`;
  };
  return (): string => {
    const n = 1 + Math.floor(random() * 10);
    const lines: string[] = [];
    if (random() < 0.8) lines.push(`[${pick(['p', 'default', 'other'])}]`);
    for (let i = 0; i < n; i++) lines.push(line());
    const eol = random() < 0.8 ? '\n' : pick(['\r\n', '\r']);
    let text = '';
    for (const l of lines) text += l + (random() < 0.95 ? eol : pick(['\n', '\r\n', '\r']));
    if (random() < 0.2) text = text.replace(/(\r\n|\r|\n)$/, '');
    return text;
  };
}

const SEED = Number(process.env.INI_DIFF_SEED ?? 12);
const COUNT = Number(process.env.INI_DIFF_COUNT ?? 4000);
const V = { aws_access_key_id: 'ASIANEW', aws_secret_access_key: 'new/secret+key', aws_session_token: 'newtoken==' };

t.test(`our reader and configparser agree on ${COUNT} generated files (seed ${SEED})`, async (t) => {
  const make = generator(prng(SEED));
  const files = Array.from({ length: COUNT }, make);
  const python = configparser(files);
  let mismatches = 0;
  let strict = 0;
  files.forEach((text, i) => {
    const ours = readIni(text);
    // Thousands of t.same calls cost more than the comparisons: a strict match is a pass
    // without one; anything else goes through t.same, which decides and shows the diff.
    if (isDeepStrictEqual(ours, python[i])) return void strict++;
    if (!t.same(ours, python[i], `file ${i}: ${JSON.stringify(text)}`, { diagnostic: true }) && ++mismatches > 5) throw new Error('too many mismatches');
  });
  t.pass(`${strict} of ${COUNT} files read exactly as configparser reads them`);
  const accepted = python.filter((v) => v.ok).length;
  t.ok(accepted > COUNT / 5 && accepted < COUNT, `a mix of accepted (${accepted}) and refused files`);
});

t.test(`after update, configparser reads exactly the managed keys changed (seed ${SEED})`, async (t) => {
  const random = prng(SEED + 1);
  const make = generator(random);
  const files = Array.from({ length: COUNT }, make);
  const before = configparser(files);
  const cases: Array<{ text: string; profile: string; expected: IniView }> = [];
  files.forEach((text, i) => {
    const view = before[i]!;
    if (!view.ok) return;
    const profile = ['p', 'default', 'other', 'fresh'][Math.floor(random() * 4)]!;
    const updated = setSectionValues(text, profile, V, ['aws_security_token']);
    const section = { ...(view.sections[profile] ?? {}) };
    delete section.aws_security_token;
    Object.assign(section, V);
    cases.push({ text: updated, profile, expected: { ok: true, sections: { ...view.sections, [profile]: section }, defaults: view.defaults } });
  });
  const after = configparser(cases.map((c) => c.text));
  let mismatches = 0;
  cases.forEach((c, i) => {
    if (!isDeepStrictEqual(after[i], c.expected) && !t.same(after[i], c.expected, `update [${c.profile}]: ${JSON.stringify(c.text)}`, { diagnostic: true }) && ++mismatches > 5) {
      throw new Error('too many mismatches');
    }
    // Updating again changes nothing: the writer finds everything it wrote.
    if (setSectionValues(c.text, c.profile, V, ['aws_security_token']) !== c.text && ++mismatches > 5) throw new Error('a second update changed the file');
  });
  t.ok(cases.length > COUNT / 5, `${cases.length} updates checked`);
});
