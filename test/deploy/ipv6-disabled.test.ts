// config/systemd-host.yaml listens on 127.0.0.1 and [::1]. On a host with IPv6
// disabled (here: a network namespace of the test's own with
// net.ipv6.conf.*.disable_ipv6=1) the daemon must still start: it serves on
// 127.0.0.1 and warns that [::1] is skipped. A config with only [::1] gets a
// clear error. The shipped file's listen addresses are used as they are.
import t from 'tap';
import { spawn } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parse } from 'yaml';
import { CLI, REPO } from '../helpers/cli.js';
import { waitUntil } from '../helpers/daemon.js';
import { makeNetns, run } from '../helpers/netns.js';
import { makeCA, makeLeaf, tempDir } from '../helpers/pki.js';
import { exampleArns } from '../../src/emulator/examples.js';
import { missing as needs } from '../helpers/needs.js';

const cannot = needs('netns');
const netns = cannot ? { skip: cannot } : await makeNetns(t, 'ra-v6off');
if ('skip' in netns) {
  t.plan(0, netns.skip);
} else {
  const { ns } = netns;
  await run('ip', ['netns', 'exec', ns, 'ip', 'link', 'set', 'lo', 'up']);
  for (const dev of ['all', 'default', 'lo']) await run('ip', ['netns', 'exec', ns, 'sysctl', '-qw', `net.ipv6.conf.${dev}.disable_ipv6=1`]);
  const inNs = (args: string[]) => spawn('ip', ['netns', 'exec', ns, process.execPath, CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const collect = (child: ReturnType<typeof inNs>) => {
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (out += d));
    t.teardown(() => child.kill('SIGKILL'));
    return () => out;
  };

  const shipped = parse(await readFile(join(REPO, 'config', 'systemd-host.yaml'), 'utf8')) as { listen: string[] };

  const dir = await tempDir('ra-v6off-');
  const ca = await makeCA(dir);
  const leaf = await makeLeaf(dir, ca, 'v6off-client');
  // The emulator, inside the namespace too.
  const emu = inNs(['emulator', '--trust-anchor-ca', ca.certPath, '--quiet']);
  const emuOut = collect(emu);
  await waitUntil('emulator', () => /http:\/\/127\.0\.0\.1:\d+/.test(emuOut()) || emu.exitCode !== null);
  const emuUrl = /http:\/\/127\.0\.0\.1:\d+/.exec(emuOut())![0];
  const arns = exampleArns('us-east-1');
  const config = async (listen: string[]) => {
    const file = join(dir, `config-${listen.length}.yaml`);
    await writeFile(
      file,
      [
        `listen: ${JSON.stringify(listen)}`,
        `tokenFile: ${join(dir, 'token')}`,
        'profiles:',
        '  web:',
        `    certificate: ${leaf.certPath}`,
        `    privateKey: ${leaf.keyPath}`,
        ...Object.entries(arns).map(([k, v]) => `    ${k}: ${v}`),
        `    endpoint: ${emuUrl}`,
        '',
      ].join('\n'),
    );
    return file;
  };
  const inNsFetch = async (url: string) =>
    (await run('ip', ['netns', 'exec', ns, process.execPath, '-e', `fetch(${JSON.stringify(url)}).then((r) => process.stdout.write(String(r.status)), () => process.stdout.write('error'))`])).stdout;

  t.test('the shipped listen addresses: serves on 127.0.0.1, warns about [::1]', async (t) => {
    t.ok(shipped.listen.includes('[::1]:9911') && shipped.listen.includes('127.0.0.1:9911'), 'the shipped config lists both loopbacks');
    const d = inNs(['serve', '--config', await config(shipped.listen)]);
    const out = collect(d);
    await waitUntil('ready', async () => d.exitCode !== null || (await inNsFetch('http://127.0.0.1:9911/readyz')) === '200', 30_000);
    t.equal(d.exitCode, null, `still running (${out().slice(-400)})`);
    t.equal(await inNsFetch('http://127.0.0.1:9911/readyz'), '200', 'ready on 127.0.0.1:9911');
    t.match(out(), /not listening on \[::1\]:9911: IPv6 is disabled on this host/);
    t.match(out(), /export AWS_CONTAINER_CREDENTIALS_FULL_URI=http:\/\/127\.0\.0\.1:9911\/v1\/credentials/);
    d.kill('SIGTERM');
  });

  t.test('only [::1] configured: a clear error', async (t) => {
    const d = inNs(['serve', '--config', await config(['[::1]:9911'])]);
    const out = collect(d);
    const code = await new Promise((r) => d.on('exit', r));
    t.equal(code, 1);
    t.match(out(), /cannot listen on \[::1\]:9911: IPv6 is disabled on this host; listen on 127\.0\.0\.1 instead/);
  });
}
