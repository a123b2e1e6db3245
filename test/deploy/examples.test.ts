// Every example under config/ parses and passes the same validation the daemon
// runs (the files they reference need not exist: identity loading checks those).
import t from 'tap';
import { chmod, mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { loadDaemonConfig, TOP_KEYS } from '../../src/config/load.js';
import { PROFILE_KEYS } from '../../src/config/profile.js';
import { secretFilesOf } from '../../src/identity/files.js';
import { REPO, runProcess } from '../helpers/cli.js';
import { tempDir } from '../helpers/pki.js';

const CONFIG_DIR = join(REPO, 'config');
const ENV = { HOME: '/home/tester' };

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

t.test('every YAML file under config/ parses without errors', async (t) => {
  const files = (await readdir(CONFIG_DIR)).filter((f) => /\.ya?ml$/.test(f));
  t.ok(files.length >= 4, 'the examples exist');
  for (const f of files) {
    const docs = parseAllDocuments(await readFile(join(CONFIG_DIR, f), 'utf8'));
    const list = Array.isArray(docs) ? docs : [docs];
    t.ok(list.length >= 1, `${f}: has documents`);
    for (const d of list) t.same(d.errors.map((e) => e.message), [], `${f}: no YAML errors`);
  }
});

t.test('daemon.example.yaml documents every key and loads', async (t) => {
  const file = join(CONFIG_DIR, 'daemon.example.yaml');
  const text = await readFile(file, 'utf8');
  for (const k of [...TOP_KEYS, ...PROFILE_KEYS, 'enabled', 'allowV1', 'backoffInitialMs', 'backoffMaxMs', 'debounceMs', 'recheckIntervalMs']) {
    t.match(text, new RegExp(`^\\s*#?\\s*${k}:`, 'm'), `mentions ${k}`);
  }
  const cfg = await loadDaemonConfig({ argv: ['--config', file], env: ENV });
  t.same(Object.keys(cfg.profiles), ['app']);
  t.equal(cfg.imds.profile, 'app');
  t.equal(cfg.defaultProfile, 'app');
  t.same(cfg.listen, [
    { host: '127.0.0.1', port: 9911 },
    { host: '::1', port: 9911 },
  ]);
  t.equal(cfg.profiles.app!.intermediates, '/etc/rolesanywhere-credentiald/app/chain.pem');
  t.equal(cfg.profiles.app!.region, 'us-east-1');
});

t.test('laptop.yaml: one profile, loopback, token in the user runtime dir', async (t) => {
  const cfg = await loadDaemonConfig({ argv: ['--config', join(CONFIG_DIR, 'laptop.yaml')], env: { ...ENV, XDG_RUNTIME_DIR: '/run/user/1000' }, uid: 1000 });
  t.same(Object.keys(cfg.profiles), ['dev']);
  t.same(cfg.listen, [{ host: '127.0.0.1', port: 9911 }]);
  t.equal(cfg.tokenFile, '/run/user/1000/rolesanywhere-credentiald/token');
  t.equal(cfg.profiles.dev!.certificate, '/home/tester/.config/rolesanywhere-credentiald/dev.crt', '~ expanded');
  t.equal(cfg.profiles.dev!.region, 'eu-west-1');
});

t.test('systemd-host.yaml: several profiles under /etc', async (t) => {
  const cfg = await loadDaemonConfig({ argv: ['--config', join(CONFIG_DIR, 'systemd-host.yaml')], env: ENV });
  t.same(Object.keys(cfg.profiles).sort(), ['batch', 'web']);
  t.equal(cfg.imds.profile, 'web');
  t.equal(cfg.tokenFile, '/run/rolesanywhere-credentiald/token');
  t.equal(cfg.profiles.batch!.privateKey, undefined, 'PKCS#12 carries its key');
  t.equal(cfg.profiles.batch!.keyPasswordFile, '/etc/rolesanywhere-credentiald/batch/identity.pass');
  t.equal(cfg.profiles.batch!.sessionDuration, 7200);
  t.equal(cfg.profiles.web!.sessionDuration, 3600);
  t.equal(cfg.profiles.web!.expiryWarningDays, 14, 'top-level default inherited');
  for (const p of Object.values(cfg.profiles)) t.match(p.certificate, /^\/etc\/rolesanywhere-credentiald\//);
});

t.test("systemd-host.yaml: the header's chmod recipe reaches every secret file its profiles name (.key, .pass, .p12/.pfx)", async (t) => {
  const text = await readFile(join(CONFIG_DIR, 'systemd-host.yaml'), 'utf8');
  // The recipe as written (comment marks and line continuations removed), run on a copy of the tree.
  const lines = text.split('\n').map((l) => l.replace(/^#\s*/, ''));
  const start = lines.findIndex((l) => /^(find|chmod) .*\/etc\/rolesanywhere-credentiald/.test(l));
  t.ok(start >= 0, 'the header has a chmod recipe');
  let recipe = '';
  for (let i = start; i < lines.length; i++) {
    recipe += lines[i]!.replace(/\\$/, ' ');
    if (!lines[i]!.endsWith('\\')) break;
  }
  const cfg = await loadDaemonConfig({ argv: ['--config', join(CONFIG_DIR, 'systemd-host.yaml')], env: ENV });
  const root = await tempDir('ra-chmod-');
  const secrets = Object.values(cfg.profiles).flatMap((p) => secretFilesOf(p).flatMap((f) => (f.path ? [f.path] : [])));
  t.ok(secrets.some((p) => p.endsWith('.p12')), 'the example has a PKCS#12 bundle');
  const copies = secrets.map((p) => join(root, p));
  // A .pfx too: the daemon treats both extensions as PKCS#12.
  copies.push(join(root, '/etc/rolesanywhere-credentiald/other/identity.pfx'));
  for (const c of copies) {
    await mkdir(dirname(c), { recursive: true });
    await writeFile(c, 'x', { mode: 0o644 });
    await chmod(c, 0o644);
  }
  const res = await runProcess('/bin/sh', ['-c', recipe.replaceAll('/etc/rolesanywhere-credentiald', join(root, 'etc/rolesanywhere-credentiald'))]);
  t.equal(res.code, 0, res.stderr);
  for (const c of copies) t.equal(((await stat(c)).mode & 0o777).toString(8), '640', `${c.slice(root.length)} is 0640 after the recipe`);
});

t.test('kubernetes-pod.yaml: native sidecar shape, and its ConfigMap is a valid daemon config', async (t) => {
  const docs = parseAllDocuments(await readFile(join(CONFIG_DIR, 'kubernetes-pod.yaml'), 'utf8'));
  const objs = (Array.isArray(docs) ? docs : [docs]).map((d) => d.toJS() as Json);
  const byKind = (kind: string) => objs.filter((o) => o?.kind === kind);
  const [deploy] = [...byKind('Deployment'), ...byKind('Pod')];
  const [cm] = byKind('ConfigMap');
  t.ok(deploy, 'a Deployment or Pod');
  t.ok(cm, 'a ConfigMap');
  const pod: Json = deploy!.kind === 'Pod' ? deploy!.spec : deploy!.spec.template.spec;
  t.same(deploy!.spec.selector?.matchLabels, deploy!.spec.template?.metadata?.labels, 'selector matches the template labels');

  // Sidecar: an init container that keeps running.
  const sidecars = (pod.initContainers ?? []).filter((c: Json) => c.restartPolicy === 'Always');
  t.equal(sidecars.length, 1, 'one init container with restartPolicy Always');
  const sc: Json = sidecars[0];
  const app: Json = pod.containers[0];
  t.ok(app, 'an app container');

  const env = Object.fromEntries((app.env ?? []).map((e: Json) => [e.name, e.value]));
  t.equal(env.AWS_CONTAINER_CREDENTIALS_FULL_URI, 'http://127.0.0.1:9911/v1/credentials');
  t.equal(env.AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE, '/var/run/rolesanywhere/token');

  // Volumes: token on an in-memory emptyDir mounted in both at the token's directory.
  const vol = (name: string) => (pod.volumes as Json[]).find((v) => v.name === name);
  const mountAt = (c: Json, path: string) => (c.volumeMounts as Json[]).find((m) => m.mountPath === path);
  const tokenDir = dirname(env.AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE);
  const scTokenMount = mountAt(sc, tokenDir);
  const appTokenMount = mountAt(app, tokenDir);
  t.ok(scTokenMount && appTokenMount, 'both containers mount the token directory');
  t.equal(scTokenMount?.name, appTokenMount?.name, 'the same volume');
  t.equal(vol(scTokenMount?.name)?.emptyDir?.medium, 'Memory', 'token volume is an in-memory emptyDir');
  t.equal(appTokenMount?.readOnly, true, 'the app only reads the token');

  // Probes.
  const probeText = (p: Json | undefined) => JSON.stringify(p ?? {});
  t.match(probeText(sc.startupProbe), '/readyz');
  t.match(probeText(sc.readinessProbe), '/readyz');
  t.match(probeText(sc.livenessProbe), '/healthz');

  // Security contexts.
  for (const c of [sc, app]) {
    const s = c.securityContext ?? {};
    t.equal(s.allowPrivilegeEscalation, false, `${c.name}: no privilege escalation`);
    t.equal(s.readOnlyRootFilesystem, true, `${c.name}: read-only root`);
    t.same(s.capabilities?.drop, ['ALL'], `${c.name}: drops all capabilities`);
    t.equal(s.runAsNonRoot ?? pod.securityContext?.runAsNonRoot, true, `${c.name}: non-root`);
  }

  // The cert-manager Secret, mounted read-only, with the keys cert-manager writes.
  const tlsMount = (sc.volumeMounts as Json[]).find((m) => vol(m.name)?.secret);
  t.ok(tlsMount, 'a Secret volume on the sidecar');
  t.equal(tlsMount?.readOnly, true);
  const [certificate] = byKind('Certificate');
  if (certificate) t.equal(vol(tlsMount!.name)!.secret.secretName, certificate.spec.secretName, 'the Secret cert-manager writes');

  // The ConfigMap: mounted where --config points, and valid.
  const cmMount = (sc.volumeMounts as Json[]).find((m) => vol(m.name)?.configMap?.name === cm!.metadata.name);
  t.ok(cmMount, 'the ConfigMap is mounted on the sidecar');
  const cfgIdx = (sc.args as string[]).indexOf('--config');
  t.ok(cfgIdx >= 0, 'serve --config');
  const cfgPath: string = sc.args[cfgIdx + 1];
  t.equal(dirname(cfgPath), cmMount?.mountPath);
  const key = cfgPath.slice(cmMount!.mountPath.length + 1);
  t.type(cm!.data[key], 'string', 'the ConfigMap holds the file --config names');

  const dir = await tempDir('ra-k8s-');
  const file = join(dir, 'config.yaml');
  await writeFile(file, cm!.data[key]);
  const cfg = await loadDaemonConfig({ argv: sc.args.slice(1).map((a: string) => (a === cfgPath ? file : a)), env: {} });
  t.equal(cfg.tokenFile, env.AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE, 'daemon writes the token where the app reads it');
  const uri = new URL(env.AWS_CONTAINER_CREDENTIALS_FULL_URI);
  t.ok(cfg.listen.some((l) => l.host === uri.hostname && l.port === Number(uri.port)), 'daemon listens where the app connects');
  t.equal(cfg.imds.enabled, false, 'IMDS off in the pod');
  t.ok(cfg.defaultProfile, 'a default profile for /v1/credentials');
  for (const p of Object.values(cfg.profiles)) {
    t.equal(dirname(p.certificate), tlsMount!.mountPath, 'certificate from the Secret mount');
    t.equal(dirname(p.privateKey!), tlsMount!.mountPath, 'key from the Secret mount');
  }

  // Probes and metrics: httpGet on the health listener (health.listen), which kubelet and
  // Prometheus reach on the pod IP; the credential listener stays on loopback.
  const healthPort = (sc.ports as Json[] | undefined)?.find((p) => p.name === 'health')?.containerPort;
  t.ok(healthPort, 'the sidecar declares a port named health');
  t.same(cfg.health.listen, [{ host: '0.0.0.0', port: healthPort }], 'health.listen is that port on every address (the pod IP)');
  t.ok(cfg.listen.every((l) => l.host === '127.0.0.1'), 'credentials on loopback only');
  for (const [probe, path] of [
    [sc.startupProbe, '/readyz'],
    [sc.readinessProbe, '/readyz'],
    [sc.livenessProbe, '/healthz'],
  ] as const) {
    t.same(probe.httpGet, { path, port: 'health' }, `${path}: httpGet on the health port`);
    t.notOk(probe.exec, 'no exec probe (each would start a Node process)');
  }
  const annotations = deploy!.spec.template.metadata.annotations ?? {};
  t.equal(annotations['prometheus.io/scrape'], 'true');
  t.equal(annotations['prometheus.io/port'], String(healthPort));
  t.equal(annotations['prometheus.io/path'], '/metrics');
  const [podMonitor] = byKind('PodMonitor');
  t.ok(podMonitor, 'a PodMonitor for the Prometheus Operator');
  t.same(podMonitor!.spec.selector.matchLabels, deploy!.spec.template.metadata.labels, 'it selects the pods');
  t.match(podMonitor!.spec.podMetricsEndpoints, [{ port: 'health', path: '/metrics' }]);
  // Memory: the request covers the measured idle RSS (docs/benchmarks.md) and the limit leaves room.
  const mi = (q: string) => Number(/^(\d+)Mi$/.exec(q)?.[1] ?? NaN);
  t.ok(mi(sc.resources.requests.memory) >= 69 && mi(sc.resources.requests.memory) <= 90, 'memory request near the measured idle RSS');
  t.ok(mi(sc.resources.limits.memory) > mi(sc.resources.requests.memory), 'a limit above the request');
});
