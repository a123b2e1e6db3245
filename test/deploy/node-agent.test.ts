// deploy/kubernetes: every manifest parses; the DaemonSet's daemon config runs
// through the real config loader and agrees with the manifests around it (mount
// paths, service account, RBAC, the pod snippet's token audience, address and
// binding); the init step's script, where this machine can, really puts the
// addresses on a dummy interface inside a network namespace of the test's own.
import t from 'tap';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { loadDaemonConfig } from '../../src/config/load.js';
import { DEFAULT_POD_LISTEN } from '../../src/podidentity/config.js';
import { REPO } from '../helpers/cli.js';
import { makeNetns, run } from '../helpers/netns.js';
import { tempDir } from '../helpers/pki.js';

const DIR = join(REPO, 'deploy', 'kubernetes');
type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

async function docs(file: string): Promise<Json[]> {
  const parsed = parseAllDocuments(await readFile(join(DIR, file), 'utf8'));
  const list = Array.isArray(parsed) ? parsed : [parsed];
  for (const d of list) if (d.errors.length) throw new Error(`${file}: ${d.errors.map((e) => e.message).join('; ')}`);
  return list.map((d) => d.toJS() as Json).filter((o) => o !== null);
}

t.test('every manifest parses and names its objects', async (t) => {
  const files = (await readdir(DIR)).filter((f) => /\.ya?ml$/.test(f));
  t.ok(files.includes('node-agent.yaml') && files.includes('rbac.yaml') && files.includes('pod.yaml'));
  for (const f of files) {
    for (const o of await docs(f)) {
      t.type(o.apiVersion, 'string', `${f}: apiVersion`);
      t.type(o.kind, 'string', `${f}: kind`);
      t.type(o.metadata?.name, 'string', `${f}: ${o.kind} has a name`);
    }
  }
});

t.test('the node agent DaemonSet, its config, RBAC and the pod snippet fit together', async (t) => {
  const agent = await docs('node-agent.yaml');
  const rbac = await docs('rbac.yaml');
  const podDocs = await docs('pod.yaml');
  const kind = (list: Json[], k: string) => list.filter((o) => o.kind === k);
  const [ds] = kind(agent, 'DaemonSet');
  const [cm] = kind(agent, 'ConfigMap');
  const [sa] = kind(agent, 'ServiceAccount');
  t.ok(ds && cm && sa);
  const spec: Json = ds!.spec.template.spec;
  t.same(ds!.spec.selector.matchLabels, ds!.spec.template.metadata.labels, 'selector matches');
  t.equal(spec.hostNetwork, true, 'host network');
  t.equal(spec.dnsPolicy, 'ClusterFirstWithHostNet', 'cluster DNS from the host network (kubernetes.default.svc)');
  t.equal(spec.serviceAccountName, sa!.metadata.name);

  // Init step: the link-local addresses on a dummy interface, with NET_ADMIN only.
  const [init] = spec.initContainers as Json[];
  const script: string = init!.command[init!.command.length - 1];
  t.match(script, /type dummy/);
  t.match(script, /169\.254\.170\.23\/32/);
  t.match(script, /fd00:ec2::23\/128/);
  t.same(init!.securityContext.capabilities, { drop: ['ALL'], add: ['NET_ADMIN'] });

  // The agent: only NET_BIND_SERVICE (port 80), read-only root, no escalation.
  const [c] = spec.containers as Json[];
  t.same(c!.securityContext.capabilities, { drop: ['ALL'], add: ['NET_BIND_SERVICE'] });
  t.equal(c!.securityContext.readOnlyRootFilesystem, true);
  t.equal(c!.securityContext.allowPrivilegeEscalation, false);
  // Probes: httpGet on the health port, which the config's health.listen serves (on every address: host network).
  const healthPort = (c!.ports as Json[]).find((p) => p.name === 'health')!.containerPort;
  for (const [probe, path] of [[c!.startupProbe, '/readyz'], [c!.readinessProbe, '/readyz'], [c!.livenessProbe, '/healthz']] as const) {
    t.same(probe.httpGet, { path, port: 'health' }, `${path} probe on the health port`);
  }
  t.equal(ds!.spec.template.metadata.annotations['prometheus.io/port'], String(healthPort), 'Prometheus scrapes the health port');
  const vol = (name: string) => (spec.volumes as Json[]).find((v) => v.name === name);
  const mountOf = (pred: (v: Json) => boolean) => (c!.volumeMounts as Json[]).find((m) => pred(vol(m.name) ?? {}));

  // The config: where --config points, from the ConfigMap, valid for the real loader.
  const cfgPath: string = c!.args[c!.args.indexOf('--config') + 1];
  const cmMount = mountOf((v) => v.configMap?.name === cm!.metadata.name);
  t.equal(dirname(cfgPath), cmMount?.mountPath, 'the ConfigMap is mounted where --config points');
  const dir = await tempDir('ra-k8s-agent-');
  const file = join(dir, 'config.yaml');
  await writeFile(file, cm!.data[cfgPath.slice(cmMount!.mountPath.length + 1)]);
  const cfg = await loadDaemonConfig({ argv: ['--config', file], env: {} });
  t.ok(cfg.health?.listen.some((a) => a.port === healthPort && (a.host === '0.0.0.0' || a.host === '::')), 'health.listen serves the probe port on the node IP');
  const pi = cfg.podIdentity!;
  t.ok(pi, 'podIdentity configured');
  t.same(pi.listen, DEFAULT_POD_LISTEN, "EKS Pod Identity's addresses");
  t.ok('url' in pi.jwks && pi.jwks.url === 'https://kubernetes.default.svc/openid/v1/jwks', 'JWKS from the API server');
  if ('url' in pi.jwks) {
    t.equal(pi.jwks.caFile, '/var/run/secrets/kubernetes.io/serviceaccount/ca.crt');
    t.equal(pi.jwks.tokenFile, '/var/run/secrets/kubernetes.io/serviceaccount/token');
  }
  t.not(spec.automountServiceAccountToken, false, 'the agent gets its own token for the JWKS URL');
  t.equal(cfg.tokenFile.startsWith((c!.volumeMounts as Json[]).find((m) => vol(m.name)?.emptyDir)!.mountPath), true, 'endpoint token on the emptyDir');

  // The node certificate: cert-manager CSI (or a Secret), mounted read-only where the profiles read it.
  const certMount = mountOf((v) => v.csi?.driver === 'csi.cert-manager.io' || v.secret !== undefined);
  t.ok(certMount, 'node certificate volume from cert-manager CSI or a Secret');
  t.equal(certMount?.readOnly, true);
  t.match(vol(certMount!.name)!.csi.volumeAttributes['csi.cert-manager.io/key-usages'], /client auth/);
  for (const p of Object.values(cfg.profiles)) {
    t.equal(dirname(p.certificate), certMount!.mountPath, `${p.name}: certificate from the node certificate volume`);
    t.equal(dirname(p.privateKey!), certMount!.mountPath);
  }

  // RBAC: the agent's service account may read the issuer's keys.
  const [crb] = kind(rbac, 'ClusterRoleBinding');
  t.equal(crb!.roleRef.name, 'system:service-account-issuer-discovery');
  t.same(crb!.subjects, [{ kind: 'ServiceAccount', name: sa!.metadata.name, namespace: sa!.metadata.namespace }]);

  // The pod snippet: projected token with an accepted audience, the two env vars, a binding for its SA.
  const [pod] = kind(podDocs, 'Pod');
  const app: Json = pod!.spec.containers[0];
  const env = Object.fromEntries((app.env as Json[]).map((e) => [e.name, e.value]));
  const uri = new URL(env.AWS_CONTAINER_CREDENTIALS_FULL_URI);
  t.equal(uri.pathname, '/v1/credentials');
  t.ok(pi.listen.some((a) => a.host === uri.hostname && a.port === Number(uri.port || 80)), 'the URI is an agent address');
  const tokenFile: string = env.AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE;
  const tokenMount = (app.volumeMounts as Json[]).find((m) => tokenFile.startsWith(m.mountPath + '/'));
  t.ok(tokenMount, 'the token file is on a mounted volume');
  const projected = (pod!.spec.volumes as Json[]).find((v) => v.name === tokenMount!.name)!.projected.sources[0].serviceAccountToken;
  t.equal(join(tokenMount!.mountPath, projected.path), tokenFile, 'the projected token is the file the SDK reads');
  t.ok(pi.audiences.includes(projected.audience), 'its audience is accepted');
  const bound = pi.bindings.find((b) => b.namespace === pod!.metadata.namespace && (b.serviceAccount === '*' || b.serviceAccount === pod!.spec.serviceAccountName));
  t.ok(bound, 'the pod\'s service account is bound');
});

t.test('the init step adds the addresses (in a network namespace of the test\'s own)', async (t) => {
  const made = await makeNetns(t, 'ra-init');
  if ('skip' in made) return t.skip(made.skip);
  const { ns } = made;
  const [ds] = (await docs('node-agent.yaml')).filter((o) => o.kind === 'DaemonSet');
  const init = ds!.spec.template.spec.initContainers[0];
  const probe = await run('ip', ['-n', ns, 'link', 'add', 'probe0', 'type', 'dummy']).then(
    () => true,
    () => false,
  );
  if (!probe) return t.skip('this kernel has no dummy interfaces (module not loaded)');
  await run('ip', ['-n', ns, 'link', 'del', 'probe0']);
  const script: string = init.command[init.command.length - 1];
  for (let i = 0; i < 2; i++) await run('ip', ['netns', 'exec', ns, 'sh', '-ec', script]); // twice: idempotent
  const { stdout } = await run('ip', ['-n', ns, 'addr', 'show', 'dev', 'rolesanywhere0']);
  t.match(stdout, /inet 169\.254\.170\.23\/32/);
  t.match(stdout, /inet6 fd00:ec2::23\/128/);
});
