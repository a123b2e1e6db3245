// dist/bundle/ (scripts/bundle.js) is what every home runs: it must stand alone (no
// node_modules but the optional native pkcs11js), find its PKCS#11 worker beside it, and
// hold its source in V8 as one-byte text.
import { cp, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { asciiOnly } from '../../scripts/bundle.js';
import { REPO, runProcess } from '../helpers/cli.js';
import { startTestEmulator } from '../helpers/emulator.js';
import { tempDir } from '../helpers/pki.js';

const BUNDLE = join(REPO, 'dist', 'bundle');

t.test('the bundle: an entry, the program, the worker; CommonJS; ASCII only', async (t) => {
  t.same((await readdir(BUNDLE)).sort(), ['cli.js', 'main.js', 'package.json', 'pkcs11-worker.js']);
  t.same(JSON.parse(await readFile(join(BUNDLE, 'package.json'), 'utf8')), { type: 'commonjs' });
  for (const f of ['cli.js', 'main.js', 'pkcs11-worker.js']) {
    const text = await readFile(join(BUNDLE, f), 'latin1');
    // One character outside ASCII and V8 holds the whole file as UTF-16: twice the memory.
    t.equal(/[^\x00-\x7f]/.exec(text)?.index, undefined, `${f} is ASCII only`);
  }
  const entry = await readFile(join(BUNDLE, 'cli.js'), 'utf8');
  t.ok(entry.length < 10_000, 'the entry is small: the cache is on before main.js compiles');
  t.ok(entry.indexOf('enableCompileCache') < entry.indexOf('require("./main.js")'), 'compile cache first, then the program');
});

t.test('asciiOnly escapes what esbuild leaves, and the code means the same', async (t) => {
  const source = 'module.exports = [`a—b ${1}`, "é", /—/.test("—"), "😀".length]; // ≤ in a comment';
  const escaped = asciiOnly(source);
  t.notMatch(escaped, /[^\x00-\x7f]/);
  const run = (code: string) => {
    const m = { exports: undefined as unknown };
    new Function('module', code)(m);
    return m.exports;
  };
  t.same(run(escaped), run(source));
  t.same(run(escaped), ['a—b 1', 'é', true, 2]);
});

t.test('a copy of dist/bundle/ alone runs every command; PKCS#11 says what it needs', async (t) => {
  const dir = await tempDir('ra-bundle-');
  await cp(BUNDLE, join(dir, 'bundle'), { recursive: true });
  const cli = join(dir, 'bundle', 'cli.js');
  const env = { PATH: process.env.PATH, HOME: dir };
  const help = await runProcess(process.execPath, [cli, '--help'], { cleanEnv: true, env, cwd: dir });
  t.equal(help.code, 0, '--help');
  t.match(help.stdout, /credential-process/);
  t.notMatch(help.stdout, '(unavailable)', 'every command loads from the bundle alone');

  const emu = await startTestEmulator(t);
  const arns = ['--trust-anchor-arn', emu.arns.trustAnchorArn, '--profile-arn', emu.arns.profileArn, '--role-arn', emu.arns.roleArn, '--endpoint', emu.url];
  const cp1 = await runProcess(process.execPath, [cli, 'credential-process', '--certificate', emu.leaf.certPath, '--private-key', emu.leaf.keyPath, ...arns], { cleanEnv: true, env, cwd: dir });
  t.equal(cp1.code, 0, cp1.stderr);
  t.equal(JSON.parse(cp1.stdout).AccessKeyId, emu.emulator.issued.at(-1)!.accessKeyId, 'credentials from the emulator');

  // No node_modules here: the worker starts from pkcs11-worker.js beside main.js and
  // reports the missing native module (were the worker not found, the error would say so).
  const p11 = await runProcess(process.execPath, [cli, 'credential-process', '--certificate', emu.leaf.certPath, '--private-key', 'pkcs11:token=t;object=k?pin-value=1234', ...arns], { cleanEnv: true, env, cwd: dir });
  t.equal(p11.code, 1);
  t.match(p11.stderr, /PKCS#11 keys need the optional native module pkcs11js/);
  t.notMatch(p11.stderr, /1234/, 'never the PIN');
});
