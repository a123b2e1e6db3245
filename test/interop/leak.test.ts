// Secret-leak test: a real `serve --log-level debug` process through fetches,
// background refreshes, outages and bad requests; no issued secret key,
// session token, endpoint token or IMDS token appears in its output or /metrics.
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { httpRequest, spawnServe, waitUntil } from '../helpers/daemon.js';
import { startTestEmulator } from '../helpers/emulator.js';
import { tempDir } from '../helpers/pki.js';

t.test('no secret ever appears in logs or metrics', async (t) => {
  // 10 s credentials: a background refresh at about 5 s, so the outage and recovery come soon.
  const emu = await startTestEmulator(t, { lifetime: 10 });
  const dir = await tempDir('ra-leak-');
  const tokenFile = join(dir, 'token');
  const cfg = join(dir, 'daemon.yaml');
  await writeFile(
    cfg,
    `listen: ["127.0.0.1:0"]
tokenFile: ${tokenFile}
refresh: { backoffInitialMs: 200, backoffMaxMs: 1000 }
watch: { debounceMs: 100, recheckIntervalMs: 1000 }
profiles:
  main:
    certificate: ${emu.identitySource.certificate}
    privateKey: ${emu.identitySource.privateKey}
    trustAnchorArn: ${emu.arns.trustAnchorArn}
    profileArn: ${emu.arns.profileArn}
    roleArn: ${emu.arns.roleArn}
    endpoint: ${emu.url}
`,
  );
  const d = spawnServe(t, ['--config', cfg, '--log-level', 'debug']);
  const port = await d.port();
  const token = await readFile(tokenFile, 'utf8');
  const imdsTokens: string[] = [];
  const bodies: string[] = [];
  await waitUntil('first credentials', async () => (await httpRequest(port, 'GET', '/v1/credentials', { authorization: token })).status === 200, 20_000, 100);

  const exercise = async () => {
    bodies.push((await httpRequest(port, 'GET', '/v1/credentials', { authorization: token })).body);
    bodies.push((await httpRequest(port, 'GET', '/v1/credentials/main', { authorization: token })).body);
    const put = await httpRequest(port, 'PUT', '/latest/api/token', { 'x-aws-ec2-metadata-token-ttl-seconds': '300' });
    imdsTokens.push(put.body);
    bodies.push((await httpRequest(port, 'GET', '/latest/meta-data/iam/security-credentials/rolesanywhere-test-role', { 'x-aws-ec2-metadata-token': put.body })).body);
    // Bad requests, some carrying secrets in the wrong place.
    await httpRequest(port, 'GET', '/v1/credentials', { authorization: token + 'x' });
    await httpRequest(port, 'GET', '/v1/credentials/nope', { authorization: token });
    await httpRequest(port, 'GET', `/v1/credentials/${encodeURIComponent('x')}`, { authorization: 'Bearer ' + token });
    await httpRequest(port, 'GET', '/latest/meta-data/iam/security-credentials/', { 'x-aws-ec2-metadata-token': put.body + 'x' });
    await httpRequest(port, 'PUT', '/latest/api/token', { 'x-aws-ec2-metadata-token-ttl-seconds': '300', 'x-forwarded-for': '1.2.3.4' });
    await httpRequest(port, 'GET', '/v1/credentials', { authorization: token, host: 'evil.example' });
  };

  await exercise();
  // Background refresh.
  await waitUntil('a background refresh', () => emu.emulator.stats.createSession.ok >= 2, 30_000, 200);
  await exercise();
  // Outage: failures get logged.
  emu.emulator.setFaults([{ kind: 'status', status: 500, times: 2 }, { kind: 'drop', times: 2 }, { kind: 'status', status: 403, errorType: 'AccessDeniedException', times: 1 }]);
  await waitUntil('faults fired', () => Object.values(emu.emulator.stats.faultsInjected).reduce((a, b) => a + b, 0) >= 5, 30_000, 200);
  await waitUntil('recovered', () => emu.emulator.stats.createSession.ok >= 3, 30_000, 200);
  await exercise();
  // Reload.
  d.child.kill('SIGHUP');
  await d.waitForOutput(/configuration reloaded/);
  const metrics = (await httpRequest(port, 'GET', '/metrics')).body;
  const ready = (await httpRequest(port, 'GET', '/readyz')).body;
  d.child.kill('SIGTERM');
  const exit = await d.exited;
  t.equal(exit.code, 0);

  const haystack = d.output() + metrics + ready;
  t.ok(d.output().includes('"outcome":"failure"'), 'failures were logged');
  t.ok(d.output().includes('"outcome":"success"'), 'refreshes were logged');
  const secrets: Array<[string, string]> = [['endpoint token', token]];
  for (const c of emu.emulator.issued) {
    secrets.push(['secret access key', c.secretAccessKey], ['session token', c.sessionToken]);
  }
  for (const it of imdsTokens) secrets.push(['IMDS token', it]);
  t.ok(emu.emulator.issued.length >= 3, `several credential sets issued (${emu.emulator.issued.length})`);
  t.ok(imdsTokens.length >= 3 && imdsTokens.every((x) => x.length > 20));
  // The served bodies do carry the secrets (proves the search would find them).
  t.ok(emu.emulator.issued.some((c) => bodies.some((b) => b.includes(c.secretAccessKey) && b.includes(c.sessionToken))), 'served bodies carry the secrets (the search can find them)');
  const leaked = secrets.filter(([, s]) => haystack.includes(s)).map(([what]) => what);
  t.same(leaked, [], 'no secret found in stdout, stderr, /metrics or /readyz');
  // Also no fragment long enough to matter (first 16 chars) of any secret key.
  const partial = emu.emulator.issued.filter((c) => haystack.includes(c.secretAccessKey.slice(0, 16))).length;
  t.equal(partial, 0, 'no secret key prefix either');
});
