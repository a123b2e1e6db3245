// The lines `serve` prints are enough on their own: pasted into a shell with no
// other AWS_* variable and empty AWS config files, the AWS SDK for JavaScript
// and the aws CLI get credentials and call STS. Against the emulator that needs
// the region (AWS_REGION) and STS at the emulator (AWS_ENDPOINT_URL_STS).
import t from 'tap';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import { runProcess } from '../helpers/cli.js';
import { spawnServe, withEnv } from '../helpers/daemon.js';
import { startTestEmulator } from '../helpers/emulator.js';
import { tempDir } from '../helpers/pki.js';

const emu = await startTestEmulator(t);
const dir = await tempDir('ra-exports-');
const d = spawnServe(t, [
  '--certificate', emu.leaf.certPath, '--private-key', emu.leaf.keyPath,
  '--trust-anchor-arn', emu.arns.trustAnchorArn, '--profile-arn', emu.arns.profileArn, '--role-arn', emu.arns.roleArn,
  '--endpoint', emu.url, '--listen', '127.0.0.1:0', '--token-file', join(dir, 'token'),
]);
await d.port();
await d.waitForOutput(/"outcome":"success"/);

/** The `export NAME=value` lines, as a shell would set them. */
const exported = Object.fromEntries([...d.stderr().matchAll(/^\s*export ([A-Z_0-9]+)=(\S+)$/gm)].map((m) => [m[1]!, m[2]!]));

/** Only what serve printed, plus empty AWS config files and what runs programs. */
async function shellEnv(): Promise<NodeJS.ProcessEnv> {
  const config = join(dir, 'aws-config');
  const credentials = join(dir, 'aws-credentials');
  await writeFile(config, '');
  await writeFile(credentials, '');
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: dir, AWS_CONFIG_FILE: config, AWS_SHARED_CREDENTIALS_FILE: credentials, AWS_PAGER: '' };
  for (const k of Object.keys(process.env)) if (k.startsWith('PYENV')) env[k] = process.env[k];
  return { ...env, ...exported };
}

t.test('serve prints the region and, for a loopback emulator, where STS is', async (t) => {
  t.equal(exported.AWS_REGION, emu.region, 'export AWS_REGION=<the profile region> (SDKs, CLI v2)');
  t.equal(exported.AWS_DEFAULT_REGION, emu.region, 'export AWS_DEFAULT_REGION=<the profile region> (CLI v1)');
  t.equal(exported.AWS_ENDPOINT_URL_STS, emu.url, 'export AWS_ENDPOINT_URL_STS=<the emulator>');
  t.match(d.stderr(), new RegExp(`aws --endpoint-url ${emu.url} sts`), 'the form older CLIs need');
});

t.test('the JS SDK with only those variables calls STS', async (t) => {
  const out = await withEnv(await shellEnv(), async () => {
    const client = new STSClient({ maxAttempts: 1 });
    try {
      return await client.send(new GetCallerIdentityCommand({}));
    } finally {
      client.destroy();
    }
  });
  t.equal(out.Account, emu.accountId);
  t.match(out.Arn, /assumed-role\/rolesanywhere-test-role\//);
});

t.test('the aws CLI (botocore) with only those variables calls STS', async (t) => {
  const r = await runProcess('aws', ['sts', 'get-caller-identity', '--output', 'json'], { cleanEnv: true, env: await shellEnv(), timeoutMs: 45_000 });
  t.equal(r.code, 0, `exit 0 (${r.stderr.slice(0, 300)})`);
  t.equal(JSON.parse(r.stdout || '{}').Account, emu.accountId);
});

t.test('an https endpoint (the real service) gets the region but no STS line', async (t) => {
  const real = spawnServe(t, [
    '--certificate', emu.leaf.certPath, '--private-key', emu.leaf.keyPath,
    '--trust-anchor-arn', emu.arns.trustAnchorArn.replace(':us-east-1:', ':eu-west-1:'), '--profile-arn', emu.arns.profileArn.replace(':us-east-1:', ':eu-west-1:'),
    '--role-arn', emu.arns.roleArn, '--endpoint', 'https://127.0.0.1:9', '--listen', '127.0.0.1:0', '--token-file', join(dir, 'token2'),
  ]);
  await real.port();
  t.match(real.stderr(), /^\s*export AWS_REGION=eu-west-1$/m);
  t.notMatch(real.stderr(), /AWS_ENDPOINT_URL_STS|--endpoint-url/);
});
