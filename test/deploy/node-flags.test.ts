// The V8 settings (package.json "nodeFlags"; docs/benchmarks.md, "V8 settings") are in
// the start command of every home: the npm command, the image, the single-file
// executable and the systemd unit's npm form; and the npm command runs through a link.
import { mkdir, readFile, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { REPO, runProcess } from '../helpers/cli.js';
import { tempDir } from '../helpers/pki.js';

const pkg = JSON.parse(await readFile(join(REPO, 'package.json'), 'utf8'));
const flags: string[] = pkg.nodeFlags;

t.test('one list of flags, in every start command', async (t) => {
  t.ok(Array.isArray(flags) && flags.length > 0 && flags.every((f) => f.startsWith('--')), 'package.json nodeFlags');
  const bin = await readFile(join(REPO, pkg.bin['rolesanywhere-credentiald']), 'utf8');
  t.match(bin, `exec node ${flags.join(' ')} "$here/../dist/bundle/cli.js" "$@"`, 'npm command');
  const docker = await readFile(join(REPO, 'Dockerfile'), 'utf8');
  t.match(docker, `ENTRYPOINT ["node", ${flags.map((f) => JSON.stringify(f)).join(', ')}, "/app/dist/bundle/cli.js"]`, 'image');
  t.match(await readFile(join(REPO, 'scripts', 'build-sea.js'), 'utf8'), 'execArgv: pkg.nodeFlags', 'single-file executable');
  t.match(await readFile(join(REPO, 'systemd', 'rolesanywhere-credentiald.service'), 'utf8'), `ExecStart=/usr/bin/node ${flags.join(' ')} /opt/rolesanywhere-credentiald/dist/bundle/cli.js`, 'unit, npm form');
  t.ok(pkg.files.includes('bin'), 'the command is in the package');
});

t.test('the npm command runs through a link, as npm installs it', async (t) => {
  const dir = await tempDir('ra-bin-');
  await mkdir(join(dir, '.bin'));
  const link = join(dir, '.bin', 'rolesanywhere-credentiald');
  await symlink(join(REPO, pkg.bin['rolesanywhere-credentiald']), link);
  const r = await runProcess(link, ['--version'], { env: { PATH: `${process.execPath.replace(/\/node$/, '')}:${process.env.PATH}` } });
  t.equal(r.code, 0, r.stderr);
  t.equal(r.stdout.trim(), pkg.version);
});
