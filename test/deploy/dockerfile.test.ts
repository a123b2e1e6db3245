// Static checks of the Dockerfile (no Docker daemon needed) plus the one thing
// that breaks images most often: what the runtime stage copies (the bundle) must
// be enough to run the CLI. The image itself, built and run: container.test.ts.
import t from 'tap';
import { execFile } from 'node:child_process';
import { access, cp, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { REPO } from '../helpers/cli.js';
import { tempDir } from '../helpers/pki.js';
import { statusServer } from '../helpers/status-server.js';

const run = promisify(execFile);

interface Instruction {
  op: string;
  args: string;
  stage: number;
}

async function instructions(): Promise<Instruction[]> {
  const lines = (await readFile(join(REPO, 'Dockerfile'), 'utf8')).split('\n').filter((l) => !/^\s*#/.test(l));
  const joined = lines.join('\n').replace(/\\\n/g, ' ');
  const out: Instruction[] = [];
  let stage = -1;
  for (const line of joined.split('\n')) {
    const m = /^\s*([A-Za-z]+)\s+(.*)$/.exec(line);
    if (!m) continue;
    const op = m[1]!.toUpperCase();
    if (op === 'FROM') stage++;
    out.push({ op, args: m[2]!.trim(), stage });
  }
  return out;
}

/** JSON-array (exec) form, or undefined for shell form. */
function execForm(args: string): string[] | undefined {
  try {
    const v = JSON.parse(args);
    return Array.isArray(v) ? v : undefined;
  } catch {
    return undefined;
  }
}

t.test('stages, base image, user, ports, entrypoint', async (t) => {
  const ins = await instructions();
  const froms = ins.filter((i) => i.op === 'FROM');
  t.equal(froms.length, 2, 'multi-stage: build + runtime');
  for (const f of froms) t.match(f.args, /^node:24-trixie-slim\b/, 'Node 24 LTS on Debian 13 slim');
  const last = froms.length - 1;
  const runtime = ins.filter((i) => i.stage === last);
  const users = runtime.filter((i) => i.op === 'USER');
  t.equal(users.length, 1, 'runtime sets USER');
  const user = users[0]!.args.split(':')[0]!;
  t.notOk(['root', '0', ''].includes(user), `non-root user (${user})`);
  t.same(runtime.filter((i) => i.op === 'EXPOSE').map((i) => i.args), ['9911']);
  const nodeFlags: string[] = JSON.parse(await readFile(join(REPO, 'package.json'), 'utf8')).nodeFlags;
  t.same(execForm(runtime.find((i) => i.op === 'ENTRYPOINT')!.args), ['node', ...nodeFlags, '/app/dist/bundle/cli.js'], 'node with the V8 settings of package.json nodeFlags');
  t.same(execForm(runtime.find((i) => i.op === 'CMD')!.args), ['serve']);
  // The bundle carries every production dependency: no install in the runtime stage.
  t.same(runtime.filter((i) => i.op === 'RUN' && /\bnpm\b/.test(i.args)).map((i) => i.args), [], 'no npm in the runtime stage');
  t.same(
    runtime.filter((i) => i.op === 'COPY').map((i) => i.args),
    ['--from=build /src/dist/bundle ./dist/bundle', 'config ./config'],
    'the runtime stage copies the bundle and config/ only',
  );
  const build = ins.filter((i) => i.stage === 0 && i.op === 'RUN').map((i) => i.args).join('\n');
  t.match(build, /npm ci/);
  t.match(build, /npm run build/);
});

t.test('every COPY source exists and is not excluded by .dockerignore', async (t) => {
  const ins = await instructions();
  const ignore = (await readFile(join(REPO, '.dockerignore'), 'utf8'))
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
  const tsconfig = JSON.parse(await readFile(join(REPO, 'tsconfig.json'), 'utf8'));
  const workdirOf = (stage: number) => ins.filter((i) => i.stage === stage && i.op === 'WORKDIR').map((i) => i.args).pop();
  for (const c of ins.filter((i) => i.op === 'COPY')) {
    const parts = c.args.split(/\s+/);
    const from = parts.find((p) => p.startsWith('--from='));
    const paths = parts.filter((p) => !p.startsWith('--'));
    const sources = paths.slice(0, -1);
    if (from) {
      // From the build stage: must be what the build writes (the bundle, in tsconfig's outDir under WORKDIR).
      for (const s of sources) t.equal(s, `${workdirOf(0)}/${tsconfig.compilerOptions.outDir}/bundle`, `COPY ${c.args}: the build output`);
      continue;
    }
    for (const s of sources) {
      await t.resolves(access(join(REPO, s)), `${s} exists`);
      t.notOk(ignore.includes(s) || ignore.includes(`/${s}`), `${s} is not in .dockerignore`);
      t.notMatch(s, /\.(key|pem|p12|pfx)$|secret|password|token/i, `${s} is not secret material`);
    }
  }
  for (const must of ['node_modules', 'dist', '.git']) t.ok(ignore.includes(must), `.dockerignore excludes ${must}`);
});

t.test('no secrets in ENV/ARG', async (t) => {
  const ins = await instructions();
  const vars = ins.filter((i) => i.op === 'ENV' || i.op === 'ARG').flatMap((i) => [...i.args.matchAll(/([A-Za-z_][A-Za-z0-9_]*)=/g)].map((m) => m[1]!));
  t.ok(vars.length > 0);
  for (const v of vars) t.notMatch(v, /SECRET|PASSWORD|ACCESS_KEY|SESSION_TOKEN|AUTHORIZATION|PRIVATE|^AWS_/i, `${v} is not a secret`);
});

t.test('HEALTHCHECK hits /healthz and really works', async (t) => {
  const ins = await instructions();
  const hc = ins.find((i) => i.op === 'HEALTHCHECK');
  t.ok(hc, 'has a HEALTHCHECK');
  const cmdIdx = hc!.args.indexOf('CMD');
  const cmd = execForm(hc!.args.slice(cmdIdx + 3).trim());
  t.ok(cmd, 'exec form (no shell/curl in slim images)');
  t.equal(cmd![0], 'node');
  t.match(cmd!.join(' '), '127.0.0.1:9911/healthz');
  for (const [status, want] of [
    [200, 0],
    [500, 1],
  ] as const) {
    const srv = await statusServer(status);
    const args = cmd!.slice(1).map((a) => a.replace('127.0.0.1:9911', `127.0.0.1:${srv.port}`));
    const code = await run(process.execPath, args).then(
      () => 0,
      (e: { code?: number }) => e.code ?? -1,
    );
    await srv.close();
    t.equal(code, want, `HTTP ${status} → exit ${want}`);
    t.same(srv.paths, ['/healthz']);
  }
});

t.test('the bundle alone (what the image ships, no node_modules) runs every command', async (t) => {
  await t.resolves(access(join(REPO, 'dist', 'bundle', 'cli.js')), 'dist/ is built (npm run build)');
  const dir = await tempDir('ra-bundle-only-');
  await cp(join(REPO, 'dist', 'bundle'), join(dir, 'dist', 'bundle'), { recursive: true });
  const res = await run(process.execPath, ['dist/bundle/cli.js', '--help'], { cwd: dir }).then(
    (r) => ({ code: 0, stdout: r.stdout, stderr: r.stderr }),
    (e: { code?: number; stdout?: string; stderr?: string }) => ({ code: e.code ?? -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' }),
  );
  t.equal(res.code, 0, `--help exits 0 (${res.stderr.slice(0, 300)})`);
  t.match(res.stdout, /serve/);
  t.notMatch(res.stdout, '(unavailable)', 'every command module loads from the bundle alone');
});
