// The README is the contract users read first: its commands must run, and
// every flag, environment variable, metric and file it names must exist.
import t from 'tap';
import { existsSync, readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { envName } from '../src/config/profile.js';
import { checkRoleArn, checkRolesAnywhereArn } from '../src/rolesanywhere/arn.js';
import { exampleArns } from '../src/emulator/examples.js';
import { loadDaemonConfig } from '../src/config/load.js';
import { CLI, REPO, runCli, runProcess } from './helpers/cli.js';
import { tempDir } from './helpers/pki.js';
import { blockAfter, readme, tableAfter } from './helpers/readme.js';



const flagsIn = (text: string) => [...text.matchAll(/`(--[a-z0-9-]+)/g)].map((m) => m[1]!);
/** A reference entry such as "`emulator`: `--port`, …", up to the next entry or paragraph (its lines may start with a flag). */
const entryAfter = (heading: string) => readme.slice(readme.indexOf(heading)).split(/\n`[^`\n]+`:|\n\n/)[0]!;

t.test('the quick start names the two contract commands', async (t) => {
  const quick = blockAfter('## Quick start');
  t.match(quick, /npm ci && npm run demo/);
  t.match(quick, /npm ci && npm test/);
});

t.test('the certificate commands run as written', async (t) => {
  const dir = await tempDir('ra-readme-');
  await writeFile(join(dir, 'pw.txt'), 'a pfx password\n', { mode: 0o600 });
  const commands = blockAfter('### 1. Make (or bring) a certificate')
    .split('\n')
    .map((l) => l.replace(/\s+#.*$/, '').trim())
    .filter(Boolean);
  t.equal(commands.length, 3, 'pki init, pki issue, check');
  for (const command of commands) {
    const words = command.split(/\s+/);
    t.equal(words[0], 'rolesanywhere-credentiald', `${command}: the installed command`);
    const res = await runCli(words.slice(1), { cwd: dir });
    t.equal(res.code, 0, `${command} → exit 0 (${res.stderr.trim().split('\n')[0] ?? ''})`);
    if (words[1] === 'check') t.notMatch(res.stdout, /^FAIL/m, 'check passes every rule on the pki certificate');
  }
  for (const f of ['pki/ca.pem', 'pki/ca.key', 'pki/client.pem', 'pki/client.key', 'pki/web-1.pem', 'pki/web-1.pfx']) {
    t.ok(existsSync(join(dir, f)), `${f} written`);
  }
});

t.test('every command in the reference exists and has --help', async (t) => {
  const rows = tableAfter('### Commands');
  t.ok(rows.length >= 6);
  for (const [cell] of rows) {
    const name = /`([a-z-]+)/.exec(cell!)![1]!;
    const res = await runCli([name, '--help']);
    t.equal(res.code, 0, `${name} --help exits 0`);
    t.match(res.stdout, /Usage:/, `${name} --help prints usage`);
  }
});

t.test('every documented flag and environment variable is real', async (t) => {
  const profileHelp = (await runCli(['credential-process', '--help'])).stdout;
  const serveHelp = (await runCli(['serve', '--help'])).stdout;
  const check = (rows: string[][], help: string, what: string) => {
    for (const [flagCell, envCell] of rows) {
      for (const flag of flagsIn(flagCell!)) {
        t.ok(help.includes(flag), `${what}: ${flag} appears in --help`);
        const env = /`(ROLESANYWHERE_[A-Z0-9_]+)`/.exec(envCell ?? '')?.[1];
        if (env && !flag.startsWith('--no-') && !flag.startsWith('--without-')) {
          t.equal(env, envName(flag.slice(2)), `${flag} ↔ ${env}`);
        }
      }
    }
  };
  check(tableAfter('Profile options (all three commands):'), profileHelp, 'profile option');
  check(tableAfter('`serve` options:'), serveHelp, 'serve option');

  const sources = ['src/config/settings.ts', 'src/config/profile.ts', 'src/config/load.ts', 'src/cli/pki.ts', 'src/runtime/profile.ts', 'src/identity/files.ts', 'src/cli/check.ts']
    .map((f) => readFileSync(join(REPO, f), 'utf8'))
    .join('\n');
  // A variable is real when the code names it, or when it is the ROLESANYWHERE_* twin of a real flag.
  const fromFlags = new Set([...flagsIn(profileHelp.replace(/(--[a-z0-9-]+)/g, '`$1')), ...flagsIn(serveHelp.replace(/(--[a-z0-9-]+)/g, '`$1'))].map((f) => envName(f.slice(2))));
  for (const env of new Set([...readme.matchAll(/\b(ROLESANYWHERE_[A-Z0-9_]+)\b/g)].map((m) => m[1]!))) {
    if (env.endsWith('_')) continue;
    const kebab = env.slice('ROLESANYWHERE_'.length).toLowerCase().replace(/_/g, '-');
    const read = sources.includes(`.${env} `) || sources.includes(`.${env};`) || sources.includes(`'${env}'`) || sources.includes(`envName('${kebab}')`);
    t.ok(read || fromFlags.has(env), `${env} is read by the code`);
  }
  for (const [cmd, heading] of [
    ['check', '`check`:'],
    ['update', '`update`:'],
    ['emulator', '`emulator`:'],
  ] as const) {
    const help = (await runCli([cmd, '--help'])).stdout;
    // The whole entry: it runs on to the next line that starts another command's entry.
    const entry = entryAfter(heading);
    for (const flag of flagsIn(entry)) t.ok(help.includes(flag), `${cmd}: ${flag} appears in --help`);
    if (cmd === 'emulator') {
      // And the other way round: every emulator option is in the reference.
      const helpFlags = [...help.matchAll(/^\s+(--[a-z0-9-]+)/gm)].map((m) => m[1]!).filter((f) => f !== '--help');
      t.ok(helpFlags.length >= 8, `emulator --help lists its options (${helpFlags.join(' ')})`);
      for (const flag of helpFlags) t.ok(flagsIn(entry).includes(flag), `emulator: ${flag} is in the README's emulator entry`);
    }
  }
  for (const [sub, heading] of [
    ['init', '`pki init DIR`:'],
    ['issue', '`pki issue`:'],
    ['pod-token', '`pki pod-token`:'],
  ] as const) {
    const help = (await runCli(['pki', sub, '--help'])).stdout;
    const para = entryAfter(heading);
    for (const flag of flagsIn(para)) t.ok(help.includes(flag), `pki ${sub}: ${flag} appears in --help`);
  }
});

t.test('every documented metric is exported and every linked file exists', async (t) => {
  const metricsSource = ['src/server/metrics.ts', 'src/server/pod-metrics.ts'].map((f) => readFileSync(join(REPO, f), 'utf8')).join('\n');
  const names = new Set([...readme.matchAll(/`(rolesanywhere_[a-z_]+)/g)].map((m) => m[1]!));
  t.ok(names.size >= 10, 'the README lists the metrics');
  for (const name of names) t.ok(metricsSource.includes(`'${name}'`), `${name} is exported`);
  for (const m of readme.matchAll(/\]\(((?!https?:)[^)#]+)\)/g)) {
    t.ok(existsSync(join(REPO, m[1]!)), `linked file ${m[1]} exists`);
  }
  // The guides the README links (docs/*.md): their links are relative to docs/.
  for (const guide of ['docs/homes.md', 'docs/keys.md', 'docs/benchmarks.md']) {
    t.ok(readme.includes(`](${guide})`), `the README links ${guide}`);
    for (const m of readFileSync(join(REPO, guide), 'utf8').matchAll(/\]\(((?!https?:)[^)#]+)\)/g)) {
      t.ok(existsSync(join(REPO, 'docs', m[1]!)), `${guide}: linked file ${m[1]} exists`);
    }
  }
});

t.test('every ARN in the README is one the validator accepts', async (t) => {
  const arns = [...readme.matchAll(/arn:aws:[a-z0-9-]+:[^\s"`',)]*/g)].map((m) => m[0]);
  t.ok(arns.length >= 6, `the README has example ARNs (${arns.length})`);
  for (const arn of arns) {
    const kind = /:trust-anchor\//.test(arn) ? 'trust-anchor' : /:profile\//.test(arn) ? 'profile' : /^arn:aws:iam::/.test(arn) ? 'role' : 'other';
    if (kind === 'other') continue; // sts assumed-role ARNs in sample output
    const r = kind === 'role' ? checkRoleArn(arn) : checkRolesAnywhereArn(arn, kind);
    t.ok(r.ok, `${arn} is a valid ${kind} ARN${r.ok ? '' : `: ${r.why}`}`);
  }
});

t.test('the emulator walkthrough shows the ARNs the emulator prints', async (t) => {
  const walk = blockAfter('### The same by hand, against the emulator');
  for (const arn of Object.values(exampleArns('us-east-1'))) t.ok(walk.includes(arn), `${arn} (from the emulator's guide)`);
  t.match(walk, /emulator --trust-anchor-ca \.\/pki\/ca\.pem/);
});

t.test('the pod-identity walkthrough runs as written: a pod token, the emulator, the node agent, the aws CLI', async (t) => {
  const block = blockAfter('*Try it without a cluster:*');
  t.match(readme, /`npm run demo -- --pod-identity`/);
  const dir = await tempDir('ra-readme-pod-');
  // Its agent.yaml is a valid daemon config once the two pki commands have run.
  for (const line of block.split('\n').filter((l) => /^rolesanywhere-credentiald pki /.test(l))) {
    const res = await runCli(line.split(/\s+/).slice(1), { cwd: dir });
    t.equal(res.code, 0, `${line} → exit 0 (${res.stderr.trim()})`);
  }
  const yaml = /cat > agent\.yaml <<'EOF'\n([\s\S]*?)\nEOF\n/.exec(block)?.[1];
  t.ok(yaml, 'the block writes agent.yaml');
  await writeFile(join(dir, 'agent.yaml'), yaml!);
  const config = await loadDaemonConfig({ argv: ['--config', join(dir, 'agent.yaml')], env: { HOME: dir }, cwd: dir });
  t.equal(config.podIdentity?.jwks && 'file' in config.podIdentity.jwks ? config.podIdentity.jwks.file : '', join(dir, 'cluster/jwks.json'));
  t.equal(config.podIdentity?.issuer, (await import('../src/podidentity/issuer.js')).DEFAULT_POD_ISSUER, 'the issuer pki pod-token made');

  // The whole block as a script, in a network namespace of its own (its ports are fixed).
  if (process.getuid?.() !== 0) return t.skip('running the block end to end needs root (a network namespace of its own for ports 9910/9911/9913)');
  const run = await tempDir('ra-readme-pod-');
  const script = ['set -e', 'ip link set lo up', `rolesanywhere-credentiald() { "${process.execPath}" "${CLI}" "$@"; }`, 'export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null'];
  let n = 0;
  for (const line of block.split('\n')) {
    if (/^rolesanywhere-credentiald (emulator|serve) /.test(line)) {
      // Another shell in the README: here in the background, then wait until it answers.
      script.push(`${line} > bg-${++n}.log 2>&1 &`);
      if (/ serve /.test(line)) {
        script.push(`for i in $(seq 150); do "${process.execPath}" -e "fetch('http://127.0.0.1:9911/readyz').then(r => process.exit(r.status === 200 ? 0 : 1), () => process.exit(1))" && break; sleep 0.2; done`);
      }
    } else script.push(line);
  }
  script.push('kill $(jobs -p)');
  await writeFile(join(run, 'walkthrough.sh'), script.join('\n') + '\n');
  const res = await runProcess('unshare', ['-n', 'bash', join(run, 'walkthrough.sh')], { cwd: run, timeoutMs: 120_000 });
  t.equal(res.code, 0, res.stderr);
  t.match(res.stdout, /"Arn": "arn:aws:sts::123456789012:assumed-role\/checkout\/\d+"/, 'the pod got the checkout role');
});
