// The machine's AWS CLIs (botocore 1.43 via pyenv; Debian's AWS CLI v2.9) get
// credentials from the daemon and call STS on the emulator. v2.9 predates
// AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE (AWS CLI v2 2.15.0): it needs the token in
// AWS_CONTAINER_AUTHORIZATION_TOKEN, the line `serve` prints as a comment.
import t from 'tap';
import { runProcess } from '../helpers/cli.js';
import { cleanAwsEnv, startEmulatedDaemon } from '../helpers/daemon.js';
import { missing as needs } from '../helpers/needs.js';

t.test('aws CLIs against the daemon', async (t) => {
  const d = await startEmulatedDaemon(t);
  await d.daemon.session('main')!.waitFor((s) => s.status().ready, 15_000);
  const base = `http://127.0.0.1:${d.port}`;
  const call = async (cli: string, extra: NodeJS.ProcessEnv) => {
    const env = await cleanAwsEnv(extra);
    const r = await runProcess(cli, ['sts', 'get-caller-identity', '--endpoint-url', d.emu.url, '--output', 'json'], { env, cleanEnv: true, timeoutMs: 45_000 });
    return r;
  };
  const expectOk = (t: Tap.Test, r: { code: number | null; stdout: string; stderr: string }) => {
    t.equal(r.code, 0, r.code === 0 ? 'exit 0' : `exit ${r.code}: ${r.stderr.slice(0, 500)}`);
    if (r.code !== 0) return;
    const out = JSON.parse(r.stdout);
    t.equal(out.Account, d.emu.accountId);
    t.match(out.Arn, /assumed-role\/rolesanywhere-test-role\//);
  };

  t.test('botocore aws CLI v1: container endpoint with token file', { skip: needs('aws-cli') ?? false }, async (t) => {
    expectOk(t, await call('aws', { AWS_CONTAINER_CREDENTIALS_FULL_URI: `${base}/v1/credentials`, AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE: d.config.tokenFile }));
  });

  t.test('botocore aws CLI v1: IMDSv2', { skip: needs('aws-cli') ?? false }, async (t) => {
    expectOk(t, await call('aws', { AWS_EC2_METADATA_SERVICE_ENDPOINT: `${base}/` }));
  });

  t.test('Debian AWS CLI v2.9: container endpoint with env token', { skip: needs('aws-cli-debian') ?? false }, async (t) => {
    expectOk(t, await call('/usr/bin/aws', { AWS_CONTAINER_CREDENTIALS_FULL_URI: `${base}/v1/credentials`, AWS_CONTAINER_AUTHORIZATION_TOKEN: d.token }));
  });

  // What `serve` prints, pasted into a shell: the export lines alone (v2.9 ignores the token
  // file and gets 401), then with the printed hint for older clients uncommented.
  t.test('Debian AWS CLI v2.9: the printed lines need the printed hint for older clients', { skip: needs('aws-cli-debian') ?? false }, async (t) => {
    const lines = d.daemon.exportLines().filter((l) => !l.includes('AWS_EC2_METADATA_SERVICE_ENDPOINT'));
    const hint = lines.find((l) => l.startsWith('# export AWS_CONTAINER_AUTHORIZATION_TOKEN='));
    t.equal(hint, `# export AWS_CONTAINER_AUTHORIZATION_TOKEN=$(cat ${d.config.tokenFile})`, 'serve prints the line for clients that ignore the token file');
    t.match(lines.join('\n'), /^# AWS CLI v2 before 2\.15\.0 \(Debian 12: 2\.9\.19\) .*ignore the token file/m, 'and says which clients need it');
    const pasted = async (extra: string[]) => {
      const script = [...lines, ...extra, `exec /usr/bin/aws sts get-caller-identity --endpoint-url ${d.emu.url} --output json`].join('\n');
      const env = await cleanAwsEnv();
      return runProcess('bash', ['-c', script], { env, cleanEnv: true, timeoutMs: 45_000 });
    };
    const without = await pasted([]);
    t.not(without.code, 0, 'the export lines alone: v2.9 sends no token');
    t.match(without.stderr, /401|Authorization|credentials/i);
    expectOk(t, await pasted([hint!.slice(2)]));
  });

  t.test('Debian AWS CLI v2.9: IMDSv2', { skip: needs('aws-cli-debian') ?? false }, async (t) => {
    expectOk(t, await call('/usr/bin/aws', { AWS_EC2_METADATA_SERVICE_ENDPOINT: `${base}/` }));
  });

  t.test('a wrong token is refused by the daemon and the CLI fails', { skip: needs('aws-cli') ?? false }, async (t) => {
    const r = await call('aws', { AWS_CONTAINER_CREDENTIALS_FULL_URI: `${base}/v1/credentials`, AWS_CONTAINER_AUTHORIZATION_TOKEN: 'wrong-token-0123456789' });
    t.not(r.code, 0);
  });

  t.test('counters', { skip: needs('aws-cli', 'aws-cli-debian') ?? false }, async (t) => {
    t.equal(d.emu.emulator.stats.createSession.total, 1, 'CLI calls caused no extra CreateSession');
    t.ok(d.emu.emulator.stats.sts.ok >= 4, 'STS accepted the served credentials');
  });
});
