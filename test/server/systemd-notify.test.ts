// systemd's readiness protocol against a real datagram socket: the test binds
// $NOTIFY_SOCKET itself (python3; Node has no datagram Unix sockets), runs `serve`
// as a process with it, and reads what arrives. The daemon talks through the real
// systemd-notify, which waits until the listener has taken the message (the barrier).
import { spawn, execFileSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { systemdNotifier } from '../../src/server/systemd-notify.js';
import { silentLogger } from '../../src/log.js';
import { emulatorProfileYaml, startTestEmulator } from '../helpers/emulator.js';
import { httpRequest, spawnServe, waitUntil } from '../helpers/daemon.js';
import { tempDir } from '../helpers/pki.js';

const LISTENER = `
import json, os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
print("listening", flush=True)
while True:
    msg, fds, _flags, _addr = socket.recv_fds(s, 65536, 16)
    for fd in fds:
        os.close(fd)  # systemd-notify's barrier: it waits until this end is closed
    if msg != b"BARRIER=1":
        print(json.dumps(msg.decode()), flush=True)
`;

function have(cmd: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

const missing = ['python3', 'systemd-notify'].filter((c) => !have(c));
if (missing.length) t.plan(0, `needs ${missing.join(' and ')} (apt-get install python3 systemd)`);

interface Listener {
  path: string;
  /** Every message so far, as sent (newline-separated fields). */
  messages: string[];
}

async function notifySocket(t: Test): Promise<Listener> {
  const dir = await tempDir('ra-notify-');
  const path = join(dir, 'notify.sock');
  const child = spawn('python3', ['-c', LISTENER, path], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.teardown(() => void child.kill());
  const messages: string[] = [];
  let buf = '';
  let listening = false;
  child.stdout.setEncoding('utf8').on('data', (d: string) => {
    buf += d;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      if (line === 'listening') listening = true;
      else messages.push(JSON.parse(line) as string);
    }
  });
  await waitUntil('the notify socket is bound', () => listening);
  return { path, messages };
}

const fields = (m: string) => Object.fromEntries(m.split('\n').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));

t.test('READY=1 only once the profile has credentials; RELOADING=1/READY=1 around SIGHUP; STOPPING=1', async (t) => {
  const emu = await startTestEmulator(t);
  // Every CreateSession fails until the test clears the fault.
  emu.emulator.setFaults({ kind: 'status', status: 503, errorType: 'ServiceUnavailable', message: 'held by the test' });
  const sock = await notifySocket(t);
  const dir = await tempDir('ra-notify-daemon-');
  const cfg = join(dir, 'config.yaml');
  await writeFile(
    cfg,
    ['listen: ["127.0.0.1:0"]', `tokenFile: ${join(dir, 'token')}`, 'refresh:', '  backoffInitialMs: 100', '  backoffMaxMs: 200', 'profiles:', ...emulatorProfileYaml(emu)].join('\n') + '\n',
  );
  const d = spawnServe(t, ['--config', cfg], { NOTIFY_SOCKET: sock.path });
  const port = await d.port();

  // Two failed CreateSession calls (the second after a backoff): still not ready.
  await waitUntil('two refused CreateSession calls', () => (emu.emulator.stats.faultsInjected.status ?? 0) >= 2);
  await waitUntil('the status message', () => sock.messages.length >= 1);
  t.same(fields(sock.messages[0]!), { STATUS: 'profiles with credentials: 0 of 1' }, 'the first message is the status, not READY=1');
  t.equal((await httpRequest(port, 'GET', '/readyz')).status, 503, '/readyz agrees: not ready');
  t.notOk(sock.messages.some((m) => fields(m).READY), 'no READY=1 while CreateSession fails');

  emu.emulator.clearFaults();
  await waitUntil('READY=1', () => sock.messages.some((m) => fields(m).READY === '1'));
  t.ok(emu.emulator.issued.length >= 1, 'READY=1 came after the emulator issued credentials');
  const ready = sock.messages.filter((m) => fields(m).READY === '1');
  t.equal(ready.length, 1, 'READY=1 once');
  t.same(fields(ready[0]!), { READY: '1', STATUS: 'profiles with credentials: 1 of 1' });
  t.equal((await httpRequest(port, 'GET', '/readyz')).status, 200, '/readyz agrees: ready');

  const before = sock.messages.length;
  d.child.kill('SIGHUP');
  await d.waitForOutput(/configuration reloaded/);
  await waitUntil('READY=1 after the reload', () => sock.messages.slice(before).some((m) => fields(m).READY === '1'));
  const around = sock.messages.slice(before).map(fields);
  t.equal(around[0]!.RELOADING, '1', 'RELOADING=1 first');
  t.match(around[0]!.MONOTONIC_USEC, /^[1-9]\d*$/, 'with MONOTONIC_USEC (systemd 253+)');
  // CLOCK_MONOTONIC of this machine, read by the test the same way the daemon reads it.
  t.ok(BigInt(around[0]!.MONOTONIC_USEC!) <= process.hrtime.bigint() / 1000n, 'MONOTONIC_USEC is CLOCK_MONOTONIC (not wall time)');
  t.same(around[1], { READY: '1', STATUS: 'profiles with credentials: 1 of 1' }, 'then READY=1 with the status');

  const beforeStop = sock.messages.length;
  d.child.kill('SIGTERM');
  t.same(await d.exited, { code: 0, signal: null }, 'exit 0');
  t.same(sock.messages.slice(beforeStop).map(fields), [{ STOPPING: '1', STATUS: 'shutting down' }], 'STOPPING=1 before exit');
});

t.test('a SIGHUP before the first READY=1 sends no RELOADING=1', async (t) => {
  const emu = await startTestEmulator(t);
  emu.emulator.setFaults({ kind: 'status', status: 503 });
  const sock = await notifySocket(t);
  const dir = await tempDir('ra-notify-daemon-');
  const cfg = join(dir, 'config.yaml');
  await writeFile(cfg, ['listen: ["127.0.0.1:0"]', `tokenFile: ${join(dir, 'token')}`, 'refresh:', '  backoffInitialMs: 100', '  backoffMaxMs: 200', 'profiles:', ...emulatorProfileYaml(emu)].join('\n') + '\n');
  const d = spawnServe(t, ['--config', cfg], { NOTIFY_SOCKET: sock.path });
  await d.port();
  d.child.kill('SIGHUP');
  await d.waitForOutput(/configuration reloaded/);
  emu.emulator.clearFaults();
  await waitUntil('READY=1', () => sock.messages.some((m) => fields(m).READY === '1'));
  t.notOk(sock.messages.some((m) => fields(m).RELOADING), 'no RELOADING=1');
  t.equal(sock.messages.filter((m) => fields(m).READY === '1').length, 1, 'READY=1 once, after credentials');
  d.child.kill('SIGTERM');
  await d.exited;
});

t.test('without NOTIFY_SOCKET nothing runs', async (t) => {
  const dir = await tempDir('ra-notify-none-');
  const marker = join(dir, 'ran');
  const recorder = join(dir, 'recorder');
  await writeFile(recorder, `#!/bin/sh\necho "$@" >> ${marker}\n`, { mode: 0o755 });
  const off = systemdNotifier({}, silentLogger(), recorder);
  t.equal(off.enabled, false);
  await off.send({ READY: '1' });
  const on = systemdNotifier({ NOTIFY_SOCKET: join(dir, 'sock') }, silentLogger(), recorder);
  await on.send({ READY: '1', STATUS: 'two\nlines' });
  const { readFile } = await import('node:fs/promises');
  t.equal(await readFile(marker, 'utf8'), 'READY=1 STATUS=two lines\n', 'only the enabled notifier ran the command, newlines flattened');
});
