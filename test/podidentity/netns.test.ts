// The node agent on EKS Pod Identity's address, for real: in a network
// namespace of the test's own (root only) with 169.254.170.23 on its loopback,
// the emulator, the agent (`serve`, a real process) and clients run inside it;
// the AWS SDK for JavaScript and the aws CLI, given only
// AWS_CONTAINER_CREDENTIALS_FULL_URI=http://169.254.170.23/v1/credentials and a
// token file, get the bound role's credentials and call STS. Nothing leaves the
// namespace.
import t from 'tap';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CLI, REPO, runProcess } from '../helpers/cli.js';
import { cleanAwsEnv } from '../helpers/daemon.js';
import { DEFAULT_ARNS } from '../helpers/emulator.js';
import { AUDIENCE, ISSUER, makeCluster } from '../helpers/kube.js';
import { makeNetns, run } from '../helpers/netns.js';
import { makeCA, makeLeaf, tempDir } from '../helpers/pki.js';


function spawnIn(t: Tap.Test, ns: string, args: string[]): { child: ChildProcess; waitFor(re: RegExp): Promise<RegExpMatchArray>; output(): string } {
  const child = spawn('ip', ['netns', 'exec', ns, process.execPath, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: process.env.PATH, HOME: process.env.HOME } });
  let out = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (out += d));
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  const waitFor = async (re: RegExp) => {
    const deadline = Date.now() + 30_000;
    for (;;) {
      const m = out.match(re);
      if (m) return m;
      if (child.exitCode !== null || Date.now() > deadline) throw new Error(`no ${re} in output:\n${out.slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  return { child, waitFor, output: () => out };
}

t.test('SDK and CLI in a network namespace get credentials from 169.254.170.23', async (t) => {
  const made = await makeNetns(t, 'ra-pod');
  if ('skip' in made) return t.skip(made.skip);
  const { ns } = made;
  await run('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
  await run('ip', ['-n', ns, 'addr', 'add', '169.254.170.23/32', 'dev', 'lo']);
  // Both of EKS's addresses (the default podIdentity.listen), where IPv6 is available.
  const v6 = await run('ip', ['-n', ns, '-6', 'addr', 'add', 'fd00:ec2::23/128', 'dev', 'lo', 'nodad']).then(
    () => true,
    () => false,
  );

  const dir = await tempDir('ra-netns-');
  const ca = await makeCA(dir, 'Netns Test CA');
  const leaf = await makeLeaf(dir, ca, 'node-1');
  const emu = spawnIn(t, ns, [CLI, 'emulator', '--trust-anchor-ca', ca.certPath, '--quiet']);
  const emuUrl = (await emu.waitFor(/emulator listening on (http:\/\/127\.0\.0\.1:\d+)/))[1]!;

  const cluster = await makeCluster(dir);
  const config = {
    listen: ['127.0.0.1:9911'],
    tokenFile: join(dir, 'endpoint-token'),
    imds: { enabled: false },
    podIdentity: {
      ...(v6 ? {} : { listen: ['169.254.170.23:80'] }),
      issuer: ISSUER,
      audiences: [AUDIENCE],
      jwks: { file: cluster.jwksFile },
      bindings: [{ namespace: 'shop', serviceAccount: 'checkout', profile: 'checkout' }],
    },
    profiles: {
      checkout: {
        certificate: leaf.certPath,
        privateKey: leaf.keyPath,
        trustAnchorArn: DEFAULT_ARNS.trustAnchorArn,
        profileArn: DEFAULT_ARNS.profileArn,
        roleArn: DEFAULT_ARNS.roleArn.replace(/role\/.*/, 'role/checkout'),
        endpoint: emuUrl,
      },
    },
  };
  const configFile = join(dir, 'agent.yaml');
  await writeFile(configFile, JSON.stringify(config));
  const agent = spawnIn(t, ns, [CLI, 'serve', '--config', configFile]);
  await agent.waitFor(/serving pod identity/);

  const tokenFile = join(dir, 'pod-token');
  await writeFile(tokenFile, await cluster.mint({ namespace: 'shop', serviceAccount: 'checkout' }));
  const env = await cleanAwsEnv({
    AWS_CONTAINER_CREDENTIALS_FULL_URI: 'http://169.254.170.23/v1/credentials',
    AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE: tokenFile,
    EMU_URL: emuUrl,
  });

  const sdkCall = (extra: NodeJS.ProcessEnv) =>
    runProcess(
      'ip',
      [
        'netns', 'exec', ns, process.execPath, '--input-type=module', '-e',
        `import { STSClient, GetCallerIdentityCommand } from '@aws-sdk/client-sts';
         import { fromNodeProviderChain } from '@aws-sdk/credential-providers';
         const c = new STSClient({ region: 'us-east-1', endpoint: process.env.EMU_URL, credentials: fromNodeProviderChain(), maxAttempts: 1 });
         const out = await c.send(new GetCallerIdentityCommand({}));
         console.log(JSON.stringify({ Arn: out.Arn }));`,
      ],
      { env: { ...env, ...extra }, cleanEnv: true, cwd: REPO, timeoutMs: 60_000 },
    );
  const sdk = await sdkCall({});
  t.equal(sdk.code, 0, sdk.code === 0 ? 'SDK exit 0' : `SDK failed: ${sdk.stderr.slice(0, 800)}`);
  if (sdk.code === 0) t.match(JSON.parse(sdk.stdout).Arn, /:assumed-role\/checkout\//, 'the bound role, verified by the emulator');
  if (v6) {
    const sdk6 = await sdkCall({ AWS_CONTAINER_CREDENTIALS_FULL_URI: 'http://[fd00:ec2::23]/v1/credentials' });
    t.equal(sdk6.code, 0, sdk6.code === 0 ? 'SDK via [fd00:ec2::23] exit 0' : `SDK via IPv6 failed: ${sdk6.stderr.slice(0, 800)}`);
    if (sdk6.code === 0) t.match(JSON.parse(sdk6.stdout).Arn, /:assumed-role\/checkout\//);
  }

  const cli = await runProcess('ip', ['netns', 'exec', ns, 'aws', 'sts', 'get-caller-identity', '--endpoint-url', emuUrl, '--output', 'json'], { env, cleanEnv: true, timeoutMs: 60_000 });
  t.equal(cli.code, 0, cli.code === 0 ? 'aws CLI exit 0' : `aws CLI failed: ${cli.stderr.slice(0, 800)}`);
  if (cli.code === 0) t.match(JSON.parse(cli.stdout).Arn, /:assumed-role\/checkout\//);

  const token = (await readFile(tokenFile, 'utf8')).split('.')[2]!;
  t.notOk(agent.output().includes(token), 'the pod token is not in the agent\'s output');
});
