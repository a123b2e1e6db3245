// update and serve refresh on the same schedule: both run the credential
// pipeline (src/runtime/pipeline.ts) with the same settings, so with short
// credential lifetimes each schedules its next refresh at half the lifetime ± 10 %.
import t from 'tap';
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { UPDATE_TIMING } from '../../src/cli/update.js';
import { loadDaemonConfig } from '../../src/config/load.js';
import { CLI, cleanEnv, waitFor } from '../helpers/cli.js';
import { startTestEmulator } from '../helpers/emulator.js';
import { tempDir } from '../helpers/pki.js';

const LIFETIME_S = 4;

function start(t: Tap, args: string[], env: NodeJS.ProcessEnv): { child: ChildProcess; out: () => string } {
  const child = spawn(process.execPath, [CLI, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (out += d));
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  return { child, out: () => out };
}
type Tap = typeof t;

t.test('update uses serve\'s default refresh and watch settings', async (t) => {
  const emu = await startTestEmulator(t);
  const cfg = await loadDaemonConfig({
    argv: ['--certificate', emu.leaf.certPath, '--private-key', emu.leaf.keyPath, '--trust-anchor-arn', emu.arns.trustAnchorArn, '--profile-arn', emu.arns.profileArn, '--role-arn', emu.arns.roleArn],
    env: {},
  });
  t.same(UPDATE_TIMING.refresh, { backoffInitialMs: cfg.refresh.backoffInitialMs, backoffMaxMs: cfg.refresh.backoffMaxMs });
  t.same(UPDATE_TIMING.watch, cfg.watch);
});

t.test('with short lifetimes, update and serve both schedule at half the lifetime ± 10 %', async (t) => {
  const emu = await startTestEmulator(t, { lifetime: LIFETIME_S });
  const dir = await tempDir('ra-policy-');
  const profile = ['--certificate', emu.leaf.certPath, '--private-key', emu.leaf.keyPath, '--trust-anchor-arn', emu.arns.trustAnchorArn, '--profile-arn', emu.arns.profileArn, '--role-arn', emu.arns.roleArn, '--endpoint', emu.url];
  const update = start(t, ['update', '--profile', 'p', ...profile], cleanEnv({ AWS_SHARED_CREDENTIALS_FILE: join(dir, 'credentials') }));
  const serve = start(t, ['serve', '--listen', '127.0.0.1:0', '--token-file', join(dir, 'token'), '--no-imds', ...profile], cleanEnv());

  const updateDelays = () => [...update.out().matchAll(/next refresh in (\d+)s/g)].map((m) => Number(m[1]) * 1000);
  const serveDelays = () => [...serve.out().matchAll(/"nextRefreshInMs":(\d+)/g)].map((m) => Number(m[1]));
  await waitFor(() => updateDelays().length >= 3 && serveDelays().length >= 3, 'three refreshes by each', 60_000);

  // The emulator's expirations are whole seconds, so a session's actual lifetime is between
  // LIFETIME_S - 1 and LIFETIME_S seconds: half of it ± 10 % of it.
  const low = (LIFETIME_S - 1) * 1000 * 0.4;
  const high = LIFETIME_S * 1000 * 0.6;
  for (const d of serveDelays()) t.ok(d >= low && d <= high, `serve: next refresh in ${d} ms`);
  // update prints whole seconds.
  for (const d of updateDelays()) t.ok(d >= Math.round(low / 1000) * 1000 && d <= Math.round(high / 1000) * 1000, `update: next refresh in ${d} ms`);
  t.ok(emu.emulator.issued.length >= 6, 'both kept refreshing against the service');

  for (const p of [update, serve]) {
    const exited = new Promise<number | null>((resolve) => p.child.on('close', (code) => resolve(code)));
    p.child.kill('SIGTERM');
    t.equal(await exited, 0, 'exit 0 on SIGTERM');
  }
});
