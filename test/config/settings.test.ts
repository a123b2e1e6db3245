// The settings table is the one source of truth: README's option tables, every
// command's --help, the example config and the parser must all agree with it,
// both ways (nothing documented that the table lacks, nothing in the table undocumented).
import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { loadDaemonConfig } from '../../src/config/load.js';
import { profileFromFlags } from '../../src/config/profile.js';
import { commandsOf, envNames, keysOf, readSetting, SETTINGS, TOP_KEYS, type Command, type Setting } from '../../src/config/settings.js';
import { argvSecretWarnings, flagSuggestion, optionsFor } from '../../src/config/command-line.js';
import { REPO, runCli } from '../helpers/cli.js';
import { readme, tableAfter } from '../helpers/readme.js';

const ROWS: readonly Setting[] = SETTINGS;
const example = readFileSync(join(REPO, 'config', 'daemon.example.yaml'), 'utf8');


const ticked = (cell: string, re: RegExp) => [...cell.matchAll(re)].map((m) => m[1]!);
const flagsIn = (cell: string) => ticked(cell, /`--([a-z0-9-]+)/g);
const envsIn = (cell: string) => ticked(cell, /`((?:ROLESANYWHERE|AWS)_[A-Z0-9_]+)`/g);

function checkTable(t: Tap, heading: string, rows: Setting[]): void {
  const table = tableAfter(heading);
  const documented = new Map<string, string[]>();
  const documentedEnvs = new Set<string>();
  for (const [flagCell, envCell] of table) {
    for (const f of flagsIn(flagCell!)) documented.set(f, envsIn(envCell!));
    for (const e of envsIn(envCell!)) documentedEnvs.add(e);
  }
  for (const s of rows) {
    for (const f of [s.flag, s.negFlag].filter((x): x is string => x !== undefined)) {
      t.ok(documented.has(f), `${heading} documents --${f}`);
    }
    for (const { name } of envNames(s)) t.ok(documentedEnvs.has(name), `${heading} documents ${name} (of ${s.flag ?? s.key})`);
  }
  const known = new Set(rows.flatMap((s) => [s.flag, s.negFlag]));
  for (const [flag, envs] of documented) {
    t.ok(known.has(flag), `${heading}: --${flag} is a row of the settings table`);
    const s = rows.find((r) => r.flag === flag || r.negFlag === flag);
    if (!s) continue;
    const real = envNames(s).map((e) => e.name);
    for (const e of envs) t.ok(real.includes(e), `${heading}: ${e} is --${flag}'s variable`);
  }
}

type Tap = typeof t;

const profileRows = ROWS.filter((s) => s.flag && (s.scope === 'profile' || s.scope === 'inherited'));
const serveRows = ROWS.filter((s) => s.flag && s.scope === 'daemon');

t.test('README option tables match the settings table (both ways)', async (t) => {
  checkTable(t, 'Profile options (all three commands):', profileRows);
  checkTable(t, '`serve` options:', serveRows);
});

t.test('README one-line option lists of update and check match the table', async (t) => {
  for (const [command, heading] of [
    ['update', '`update`:'],
    ['check', '`check`:'],
  ] as const) {
    const para = readme.slice(readme.indexOf(heading)).split(/\n`[a-z][^`]*`:|\n\n/)[0]!;
    const documented = new Set(flagsIn(para));
    const own = ROWS.filter((s) => s.flag && commandsOf(s).includes(command) && (command === 'check' || s.scope === 'command'));
    for (const s of own) t.ok(documented.has(s.flag!), `${heading} lists --${s.flag}`);
    for (const f of documented) t.ok(own.some((s) => s.flag === f), `${heading} --${f} is a row for ${command}`);
  }
});

t.test('every --help lists exactly its rows from the table', async (t) => {
  for (const command of ['serve', 'credential-process', 'update', 'check', 'sign-string', 'read-certificate-data'] as Command[]) {
    const help = (await runCli([command, '--help'])).stdout;
    const shown = new Set([...help.matchAll(/(?:^|\s|\/)--([a-z0-9][a-z0-9-]*)/gm)].map((m) => m[1]!));
    const expected = new Set(Object.keys(optionsFor(command)));
    for (const f of expected) t.ok(shown.has(f), `${command} --help shows --${f}`);
    for (const f of shown) {
      // Mentions in the prose (e.g. `--once` in update's description) must still be real options.
      t.ok(expected.has(f), `${command} --help: --${f} is one of its options`);
    }
    for (const s of ROWS.filter((r) => r.flag && commandsOf(r).includes(command))) {
      const firstLine = s.help.split('\n')[0]!;
      t.ok(help.includes(firstLine), `${command} --help carries the table's help for --${s.flag}`);
    }
  }
});

t.test('every YAML key is in the example config and accepted by the loader', async (t) => {
  for (const s of ROWS) {
    if (!s.key || s.type === 'section') continue;
    const last = s.key.split('.').at(-1)!;
    t.match(example, new RegExp(`^\\s*#?\\s*${last}:`, 'm'), `daemon.example.yaml mentions ${s.key}`);
  }
  t.ok(TOP_KEYS.includes('refresh') && TOP_KEYS.includes('profiles') && TOP_KEYS.includes('region'), 'top-level keys come from the rows');
  t.notOk(TOP_KEYS.includes('certificate'), 'a profile-only key is not a top-level key');
  t.same(keysOf('refresh'), ['backoffInitialMs', 'backoffMaxMs', 'maxConcurrent', 'maxCallsPerSecond']);
});

t.test('defaults and environment come from the rows', async (t) => {
  const TA = 'arn:aws:rolesanywhere:us-east-1:123456789012:trust-anchor/abc';
  const PA = 'arn:aws:rolesanywhere:us-east-1:123456789012:profile/def';
  const ROLE = 'arn:aws:iam::123456789012:role/r';
  const env: NodeJS.ProcessEnv = {};
  for (const [flag, value] of [
    ['certificate', '/c.pem'],
    ['private-key', '/k.pem'],
    ['trust-anchor-arn', TA],
    ['profile-arn', PA],
    ['role-arn', ROLE],
  ]) {
    env[envNames(ROWS.find((s) => s.flag === flag)!)[0]!.name] = value;
  }
  const p = profileFromFlags({}, env);
  for (const s of ROWS.filter((r) => (r.scope === 'profile' || r.scope === 'inherited') && r.key && 'default' in r)) {
    t.equal((p as Record<string, unknown>)[s.key!], (s as { default: unknown }).default, `${s.key} defaults to the row's default`);
  }
  const cfg = await loadDaemonConfig({ argv: [], env });
  for (const s of ROWS.filter((r) => r.scope === 'daemon' && r.key?.includes('.') && 'default' in r)) {
    const [section, key] = s.key!.split('.') as [keyof typeof cfg, string];
    t.equal((cfg[section] as Record<string, unknown>)[key], (s as { default: unknown }).default, `${s.key} defaults to the row's default`);
  }
});

t.test('a mistyped flag gets the same "did you mean" a mistyped key gets', async (t) => {
  t.equal(flagSuggestion("Unknown option '--certficate'", 'serve'), ' (did you mean --certificate?)');
  t.equal(flagSuggestion("Unknown option '--role-ar'", 'credential-process'), ' (did you mean --role-arn?)');
  t.equal(flagSuggestion("Unknown option '--onc'", 'update'), ' (did you mean --once?)');
  t.equal(flagSuggestion("Unknown option '--zzzzzzzzzzzz'", 'serve'), '');
  t.throws(() => parseArgs({ args: ['--nope'], options: optionsFor('check'), strict: true }));
  for (const [command, args, guess] of [
    ['serve', ['--certficate', 'x'], '--certificate'],
    ['credential-process', ['--trust-anchor', 'x'], '--trust-anchor-arn'],
    ['update', ['--profle', 'x'], '--profile'],
    ['check', ['--private-kye', 'x'], '--private-key'],
  ] as const) {
    const r = await runCli([command, ...args], { cleanEnv: true });
    t.equal(r.code, 1, `${command}: exit 1`);
    t.match(r.stderr, `did you mean ${guess}?`, `${command} ${args[0]}`);
  }
});

t.test('a section row validates with its own validator', async (t) => {
  const row: Setting = {
    key: 'podIdentity',
    scope: 'daemon',
    type: 'section',
    help: 'test',
    validate: (raw, path, problems) => {
      if (!Array.isArray(raw)) {
        problems.push({ path, message: 'expected a list' });
        return undefined;
      }
      return raw.length;
    },
  };
  const problems: { path: string; message: string }[] = [];
  t.equal(readSetting(row, [1, 2], 'podIdentity', problems), 2);
  t.equal(readSetting(row, 'x', 'podIdentity', problems), undefined);
  t.same(problems, [{ path: 'podIdentity', message: 'expected a list' }]);
  t.equal(readSetting(row, undefined, 'podIdentity', problems), undefined, 'absent is not validated');
});

t.test('every secret a flag can carry names its safer form (the command-line warning quotes it)', async (t) => {
  const rows = SETTINGS.filter((s) => 'secret' in s && s.secret && 'flag' in s && s.flag);
  t.ok(rows.length >= 2, '--pkcs8-password and --tpm-key-password at least');
  for (const s of rows) t.match((s as { safer?: string }).safer, /FILE|ROLESANYWHERE_/, `--${(s as { flag: string }).flag} has a safer form`);
  t.same(argvSecretWarnings(['--pkcs8-password', 'x', '--role-arn', 'pkcs11:a?pin-value=1'], 'credential-process').length, 1, 'a pin-value outside a URI flag is not one');
  t.same(argvSecretWarnings(['--private-key', 'pkcs11:object=k?pin-source=file:/p'], 'update'), [], 'pin-source is the safe form');
  t.same(argvSecretWarnings(['--', '--pkcs8-password', 'x'], 'update'), [], 'nothing after --');
});
