// podIdentity config: defaults, and every mistake reported with its field path.
import t from 'tap';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { loadDaemonConfig } from '../../src/config/load.js';
import { ConfigError } from '../../src/problems.js';
import { STUB_PROFILE as profile } from '../helpers/kube.js';
import { tempDir } from '../helpers/pki.js';


async function load(podIdentity: unknown) {
  const dir = await tempDir('ra-podcfg-');
  const file = join(dir, 'c.yaml');
  await writeFile(file, JSON.stringify({ imds: { enabled: false }, profiles: { app: profile, batch: profile }, podIdentity }));
  return { dir, load: () => loadDaemonConfig({ argv: ['--config', file], env: { HOME: dir } }) };
}

async function problems(podIdentity: unknown): Promise<string[]> {
  const { load: l } = await load(podIdentity);
  try {
    await l();
  } catch (err) {
    if (err instanceof ConfigError) return err.problems.map((p) => `${p.path}: ${p.message}`);
    throw err;
  }
  return [];
}

const base = { issuer: 'https://k8s.example', audiences: ['ra'], jwks: { file: 'jwks.json' }, bindings: [{ namespace: 'shop', serviceAccount: 'checkout', profile: 'app' }] };

t.test('defaults', async (t) => {
  const { dir, load: l } = await load(base);
  const cfg = await l();
  t.same(cfg.podIdentity, {
    listen: [
      { host: '169.254.170.23', port: 80 },
      { host: 'fd00:ec2::23', port: 80 },
    ],
    issuer: 'https://k8s.example',
    audiences: ['ra'],
    jwks: { file: join(dir, 'jwks.json'), refetchIntervalSeconds: 10 },
    bindings: [{ namespace: 'shop', serviceAccount: 'checkout', profile: 'app' }],
    sessionStart: 'onDemand',
    idleTimeoutSeconds: 3600,
    maxTokenLifetimeSeconds: 86400,
  });
});

t.test('mistakes name their field', async (t) => {
  const cases: Array<[unknown, RegExp]> = [
    ['yes', /^podIdentity: expected a mapping/],
    [{ ...base, issuer: undefined }, /^podIdentity\.issuer: required/],
    [{ ...base, audiences: 'ra' }, /^podIdentity\.audiences: a non-empty list/],
    [{ ...base, jwks: undefined }, /^podIdentity\.jwks: required/],
    [{ ...base, jwks: { file: 'a', url: 'https://x' } }, /^podIdentity\.jwks: give either file or url, not both/],
    [{ ...base, jwks: { url: 'http://k8s.example/jwks' } }, /^podIdentity\.jwks\.url: must be https/],
    [{ ...base, jwks: { url: 'https://admin:s3cr3t@k8s.example/jwks' } }, /^podIdentity\.jwks\.url: must not contain credentials/],
    [{ ...base, jwks: { file: 'a', tokenFile: 't' } }, /^podIdentity\.jwks\.tokenFile: only applies to jwks\.url/],
    [{ ...base, jwks: { file: 'a', refetchIntervalSeconds: 0 } }, /^podIdentity\.jwks\.refetchIntervalSeconds: must be whole seconds from 1/],
    [{ ...base, bindings: [] }, /^podIdentity\.bindings: a non-empty list/],
    [{ ...base, bindings: [{ namespace: 'shop', serviceAccount: 'x', profile: 'nope' }] }, /^podIdentity\.bindings\[0\]\.profile: no profile named "nope"; defined profiles: app, batch/],
    [{ ...base, bindings: [{ namespace: '*', serviceAccount: 'x', profile: 'app' }] }, /^podIdentity\.bindings\[0\]\.namespace: must name one namespace/],
    [{ ...base, bindings: [{ namespace: 'Shop', serviceAccount: 'x', profile: 'app' }] }, /^podIdentity\.bindings\[0\]\.namespace: "Shop" is not a Kubernetes namespace name/],
    [{ ...base, bindings: [{ namespace: 'shop', serviceAccount: 'x', profile: 'app', role: 'r' }] }, /^podIdentity\.bindings\[0\]\.role: unknown key/],
    [
      { ...base, bindings: [{ namespace: 'b', serviceAccount: '*', profile: 'batch' }, { namespace: 'b', serviceAccount: 'nightly', profile: 'app' }] },
      /^podIdentity\.bindings\[1\]: can never match: bindings\[0\] \(b\/\*\) already matches b\/nightly/,
    ],
    [{ ...base, listen: ['169.254.170.23'] }, /^podIdentity\.listen\[0\]: expected "host:port"/],
    [{ ...base, sessionStart: 'lazy' }, /^podIdentity\.sessionStart: expected onDemand or atStart/],
    [{ ...base, idleTimeoutSeconds: -1 }, /^podIdentity\.idleTimeoutSeconds: must be whole seconds from 0/],
    [{ ...base, maxTokenLifetimeSeconds: 1e20 }, /^podIdentity\.maxTokenLifetimeSeconds: must be whole seconds from 600 to 31536000/],
    [{ ...base, maxTokenLifetimeSeconds: '1d' }, /^podIdentity\.maxTokenLifetimeSeconds: must be whole seconds/],
    [{ ...base, listen: ['127.0.0.1:9911'] }, /^podIdentity\.listen\[0\]: 127\.0\.0\.1:9911 is also an ordinary listen address/],
    [{ ...base, issuers: 'x' }, /^podIdentity\.issuers: unknown key/],
  ];
  for (const [input, re] of cases) {
    const got = await problems(input);
    t.ok(got.some((p) => re.test(p)), `${re}: ${got.join(' | ')}`);
  }
});

t.test('a password in jwks.url is never quoted back', async (t) => {
  for (const url of ['http://admin:s3cr3t@k8s.example/jwks', 'https://admin:s3cr3t@k8s example/jwks', 'ftp://admin:s3cr3t@k8s.example/jwks']) {
    const got = await problems({ ...base, jwks: { url } });
    t.ok(got.some((p) => p.startsWith('podIdentity.jwks.url: ')), `${url.replace('s3cr3t', '…')} refused: ${got.join(' | ').replaceAll('s3cr3t', '…')}`);
    t.notOk(got.some((p) => p.includes('s3cr3t')), 'the password is not in the message');
  }
});

t.test('a pod-identity address missing on this machine: start-up says how to add it', async (t) => {
  const { networkInterfaces } = await import('node:os');
  if (Object.values(networkInterfaces()).flat().some((a) => a?.address === '169.254.170.23')) return t.skip('this machine has 169.254.170.23');
  const { Daemon } = await import('../../src/server/daemon.js');
  const { daemonDeps } = await import('../../src/cli/serve.js');
  const { silentLogger } = await import('../../src/log.js');
  const { dir, load: l } = await load({ ...base, listen: ['169.254.170.23:0'] });
  await writeFile(join(dir, 'jwks.json'), JSON.stringify({ keys: [{ kty: 'EC', crv: 'P-256', kid: 'k', x: 'f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU', y: 'x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0' }] }));
  const cfg = await l();
  const leaf = await (await import('../helpers/pki.js')).makeChain(dir);
  for (const p of Object.values(cfg.profiles)) {
    p.certificate = leaf.leaf.certPath;
    p.privateKey = leaf.leaf.keyPath;
  }
  cfg.tokenFile = join(dir, 'token');
  cfg.listen = [{ host: '127.0.0.1', port: 0 }];
  await t.rejects(Daemon.start(cfg, daemonDeps(silentLogger())), /podIdentity\.listen: cannot listen on 169\.254\.170\.23:0: no such local address on this machine; add it to an interface first \(e\.g\. ip addr add 169\.254\.170\.23\/32 dev lo/);
});
