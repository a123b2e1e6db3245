// The unit under a real systemd: systemd as PID 1 in a podman container (Debian trixie,
// the base image + apt-get install systemd), the unit file as shipped, the bundle behind
// /usr/local/bin/rolesanywhere-credentiald, the emulator on the host (--network host).
// Type=notify: `systemctl start` returns only once the profile has credentials; while
// CreateSession fails the unit stays "activating" and says so in its status.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { REPO } from '../helpers/cli.js';
import { emulatorProfileYaml, startTestEmulator } from '../helpers/emulator.js';
import { waitUntil } from '../helpers/daemon.js';
import { tempDir } from '../helpers/pki.js';
import { BASE_IMAGE, buildOnce, contentTag, podman, podmanSkipReason } from '../helpers/podman.js';

// procps: the unit's ExecReload=/bin/kill (Debian's minbase has no kill binary).
const DOCKERFILE = `FROM ${BASE_IMAGE}
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends systemd systemd-sysv procps >/dev/null && rm -rf /var/lib/apt/lists/*
CMD ["/lib/systemd/systemd"]
`;
const UNIT = 'rolesanywhere-credentiald';

const skip = await podmanSkipReason();
if (skip) t.plan(0, skip);
else await main();

async function main() {
  t.setTimeout(1_800_000);
  const image = contentTag('rolesanywhere-credentiald-systemd-test', [DOCKERFILE]);
  const name = `ra-systemd-${process.pid}`;
  const exec = (cmd: string) => podman(['exec', name, 'sh', '-c', cmd]);
  const show = async () =>
    Object.fromEntries(
      (await exec(`systemctl show -p ActiveState,SubState,StatusText,Result,MainPID ${UNIT}`)).stdout
        .trim()
        .split('\n')
        .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
    ) as Record<string, string>;

  t.before(async () => {
    const ctx = await tempDir('ra-systemd-image-');
    await writeFile(join(ctx, 'Dockerfile'), DOCKERFILE);
    await buildOnce(image, ctx);
  });

  t.test('Type=notify: start returns after the first credentials; reload and stop', async (t) => {
    const emu = await startTestEmulator(t);
    emu.emulator.setFaults({ kind: 'status', status: 503, errorType: 'ServiceUnavailable', message: 'held by the test' });
    await podman(['rm', '-f', name]).catch(() => undefined);
    t.teardown(() => podman(['rm', '-f', '-t', '0', name]).catch(() => undefined));
    // --privileged: the unit's sandboxing (ProtectSystem=, PrivateDevices=, ...) needs mount namespaces.
    await podman(['run', '-d', '--name', name, '--network', 'host', '--privileged', '--systemd=always', image]);
    await waitUntil('systemd is up', async () => /^(running|degraded)/.test((await exec('systemctl is-system-running').catch((e: { stdout?: string }) => ({ stdout: e.stdout ?? '' }))).stdout), 120_000, 500);

    // Installed as the unit's header says: executable, group, config and key files.
    const files = await tempDir('ra-systemd-files-');
    await writeFile(join(files, 'wrapper'), '#!/bin/sh\nexec /usr/local/bin/node --max-semi-space-size=2 /opt/rolesanywhere-credentiald/dist/bundle/cli.js "$@"\n', { mode: 0o755 });
    const profile = emulatorProfileYaml({ ...emu, leaf: { ...emu.leaf, certPath: '/etc/rolesanywhere-credentiald/leaf.pem', keyPath: '/etc/rolesanywhere-credentiald/leaf.key' } }, 'main');
    await writeFile(join(files, 'config.yaml'), ['listen: ["127.0.0.1:0"]', 'refresh:', '  backoffInitialMs: 200', '  backoffMaxMs: 500', 'profiles:', ...profile].join('\n') + '\n');
    await exec('mkdir -p /opt/rolesanywhere-credentiald/dist /etc/rolesanywhere-credentiald');
    await podman(['cp', join(REPO, 'dist', 'bundle'), `${name}:/opt/rolesanywhere-credentiald/dist/bundle`]);
    await podman(['cp', join(files, 'wrapper'), `${name}:/usr/local/bin/rolesanywhere-credentiald`]);
    await podman(['cp', join(REPO, 'systemd', `${UNIT}.service`), `${name}:/etc/systemd/system/${UNIT}.service`]);
    await podman(['cp', join(files, 'config.yaml'), `${name}:/etc/rolesanywhere-credentiald/config.yaml`]);
    await podman(['cp', emu.leaf.certPath, `${name}:/etc/rolesanywhere-credentiald/leaf.pem`]);
    await podman(['cp', emu.leaf.keyPath, `${name}:/etc/rolesanywhere-credentiald/leaf.key`]);
    await exec(
      'groupadd --system rolesanywhere && cd /etc/rolesanywhere-credentiald && chown root:rolesanywhere leaf.pem leaf.key config.yaml && chmod 0640 leaf.pem leaf.key config.yaml && systemctl daemon-reload',
    );

    // While every CreateSession fails, the start job waits: activating, 0 of 1.
    await exec(`systemctl start --no-block ${UNIT}`);
    await waitUntil('two refused CreateSession calls', () => (emu.emulator.stats.faultsInjected.status ?? 0) >= 2, 60_000);
    const waiting = await show();
    t.same([waiting.ActiveState, waiting.SubState], ['activating', 'start'], 'not started while there are no credentials');
    t.equal(waiting.StatusText, 'profiles with credentials: 0 of 1', 'STATUS= says how many have credentials');
    t.equal(emu.emulator.issued.length, 0, 'none issued yet');

    emu.emulator.clearFaults();
    // `systemctl start` of a unit being started waits for that start job: it returns once READY=1 arrived.
    await exec(`systemctl start ${UNIT}`);
    const started = await show();
    t.same([started.ActiveState, started.SubState], ['active', 'running'], 'started');
    t.equal(started.StatusText, 'profiles with credentials: 1 of 1', 'STATUS= after READY=1');
    t.ok(emu.emulator.issued.length >= 1, 'after the emulator issued credentials');
    const pid = started.MainPID;

    await exec(`systemctl reload ${UNIT}`);
    await waitUntil('the reload is logged', async () => (await exec(`journalctl -u ${UNIT} --no-pager -o cat`)).stdout.includes('configuration reloaded'), 60_000, 250);
    await waitUntil('READY=1 after the reload', async () => (await show()).SubState === 'running', 60_000, 250);
    const reloaded = await show();
    t.equal(reloaded.MainPID, pid, 'the same process after the reload');
    t.equal(reloaded.StatusText, 'profiles with credentials: 1 of 1', 'STATUS= after the reload');

    await exec(`systemctl stop ${UNIT}`);
    const stopped = await show();
    t.same([stopped.ActiveState, stopped.Result], ['inactive', 'success'], 'stopped cleanly');
  });
}
