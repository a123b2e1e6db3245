// The Kubernetes examples started the way kubelet starts them (root only): the
// manifests are read, not copied — config/kubernetes-pod.yaml (sidecar),
// deploy/kubernetes/node-agent.yaml and deploy/kubernetes/pod.yaml. Each pod
// gets a network namespace of the test's own; each volume is built with
// kubelet's semantics (emptyDir 0777 root:root or 2777 root:fsGroup, memory-backed
// a tmpfs of 1777/3777; Secret/ConfigMap/projected volumes by the atomic writer:
// timestamped directory, `..data` symlink, per-key symlinks, defaultMode, group
// fsGroup); each container runs in its own mount namespace with those volumes
// bind-mounted at the manifest's mount paths (read-only where the manifest says,
// a read-only root with readOnlyRootFilesystem), as the manifest's uid/gid/fsGroup,
// with no_new_privs and only the capabilities it keeps, with the manifest's args
// and env. The only additions: the Roles Anywhere endpoint (the bundled emulator:
// `endpoint:` added to the ConfigMap's config) and STS's instead of AWS, and
// kubernetes.default.svc in /etc/hosts for the node agent's JWKS fetch. The app
// container's `aws sts get-caller-identity` (made with the AWS SDK's default
// chain, as its own uid) must then get the role's credentials from the daemon.
import t from 'tap';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { otherUserRuntime, REPO, runProcess } from '../helpers/cli.js';
import { atomicUpdate, atomicWriter, containerScript, emptyDir, makeCluster, type ContainerSpec } from '../helpers/kube.js';
import { makeNetns, run } from '../helpers/netns.js';
import { makeCA, makeLeaf, openssl, tempDir } from '../helpers/pki.js';

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

async function manifest(path: string): Promise<Json[]> {
  const parsed = parseAllDocuments(await readFile(join(REPO, path), 'utf8'));
  return (Array.isArray(parsed) ? parsed : [parsed]).map((d) => d.toJS() as Json).filter((o) => o !== null);
}
const podSpec = (objs: Json[]): { spec: Json; meta: Json } => {
  const o = objs.find((x) => ['Deployment', 'DaemonSet', 'Pod'].includes(x.kind))!;
  return o.kind === 'Pod' ? { spec: o.spec, meta: o.metadata } : { spec: o.spec.template.spec, meta: { ...o.spec.template.metadata, namespace: o.metadata.namespace } };
};

/** Runs `cmd` in the pod's network namespace; killed at teardown. */
function spawnIn(t: { teardown(fn: () => unknown): void }, ns: string, cmd: string[], env: NodeJS.ProcessEnv = {}): { child: ChildProcess; output(): string; exited: Promise<number | null>; waitFor(re: RegExp): Promise<RegExpMatchArray> } {
  const child = spawn('ip', ['netns', 'exec', ns, ...cmd], { stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: process.env.PATH, ...env } });
  let out = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (out += d));
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  const waitFor = async (re: RegExp) => {
    const deadline = Date.now() + 60_000;
    for (;;) {
      const m = out.match(re);
      if (m) return m;
      if (child.exitCode !== null || Date.now() > deadline) throw new Error(`no ${re} in output:\n${out.slice(-3000)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  return { child, output: () => out, exited, waitFor };
}

/** A container of the manifest: its securityContext over the pod's, its mounts mapped onto the volumes built. */
function container(pod: Json, c: Json, volumes: Map<string, string>, command: string[], extra: Partial<ContainerSpec> = {}): ContainerSpec {
  const psc: Json = pod.securityContext ?? {};
  const sc: Json = c.securityContext ?? {};
  const uid: number = sc.runAsUser ?? psc.runAsUser ?? 1000; // the image's USER (node, 1000) when unset
  const gid: number = sc.runAsGroup ?? psc.runAsGroup ?? uid;
  if ((sc.runAsNonRoot ?? psc.runAsNonRoot) === true && uid === 0) throw new Error(`${c.name}: runAsNonRoot with uid 0`);
  return {
    uid,
    gid,
    groups: psc.fsGroup !== undefined ? [psc.fsGroup] : [],
    readOnlyRoot: sc.readOnlyRootFilesystem === true,
    caps: ((sc.capabilities?.add ?? []) as string[]).map((x) => x.toLowerCase()),
    mounts: ((c.volumeMounts ?? []) as Json[]).map((m) => {
      const source = volumes.get(m.name);
      if (!source) throw new Error(`${c.name}: no volume ${m.name}`);
      return { path: m.mountPath, source, readOnly: m.readOnly === true };
    }),
    command,
    ...extra,
  };
}

/** The ConfigMap's config.yaml with one line added: every profile's Roles Anywhere endpoint is the emulator (the top-level key is inherited). */
const withEndpoint = (data: Record<string, string>, url: string): Record<string, string> =>
  Object.fromEntries(Object.entries(data).map(([k, v]) => [k, /\.ya?ml$/.test(k) ? `${v}endpoint: ${url}\n` : v]));
const unshare = (script: string) => ['unshare', '-m', '--propagation', 'private', 'sh', '-ec', script];
const envOf = (c: Json): Record<string, string> => Object.fromEntries(((c.env ?? []) as Json[]).map((e) => [e.name, String(e.value)]));
/**
 * The app's command without its endless loop: the call its aws CLI makes, made
 * with the AWS SDK for JavaScript's default chain (what aws-cli v2 in the
 * manifest's image does: the container provider with the token file), STS on
 * the emulator. This machine's CLIs cannot stand in as another uid: Debian's
 * /usr/bin/aws is v2.9, which reads only AWS_CONTAINER_AUTHORIZATION_TOKEN, and
 * the current botocore lives under /root.
 */
const awsCall = (c: Json, stsUrl: string, node: string, script: string): string[] => {
  const m = /\baws sts get-caller-identity\b/.exec(c.command.join(' '));
  if (!m) throw new Error(`${c.name}: no aws sts get-caller-identity in its command`);
  return [node, script, stsUrl];
};
/** That call, bundled with the SDK (otherUserRuntime's script): the endpoint is its argument. */
const AWS_CALL = `const { STSClient, GetCallerIdentityCommand } = require('@aws-sdk/client-sts'); const { fromNodeProviderChain } = require('@aws-sdk/credential-providers');
  new STSClient({ endpoint: process.argv[2], credentials: fromNodeProviderChain(), maxAttempts: 1 }).send(new GetCallerIdentityCommand({}))
    .then((o) => console.log(JSON.stringify({ Arn: o.Arn })), (e) => { console.error(String(e)); process.exit(1); });`;

/** kubelet's httpGet probe, from inside the pod's network namespace. */
async function probe(ns: string, port: number, path: string): Promise<number> {
  const r = await run('ip', ['netns', 'exec', ns, process.execPath, '-e', `require('http').get('http://127.0.0.1:${port}${path}', (r) => { console.log(r.statusCode); r.resume(); }).on('error', () => console.log(0))`]);
  return Number(r.stdout.trim());
}
async function until(what: string, cond: () => Promise<boolean>, proc: { child: ChildProcess; output(): string }): Promise<void> {
  const deadline = Date.now() + 60_000;
  const out = proc.output;
  while (!(await cond())) {
    if (Date.now() > deadline || proc.child.exitCode !== null) throw new Error(`timed out waiting for ${what}:\n${out().slice(-3000)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

// A container's PATH (no /root/.pyenv shims a non-root uid cannot read): Debian's /usr/bin/aws.
const env0 = { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' };
// The containers' uids run copies of Node, the CLI and the SDK (the clone may be closed to them: /root, a 0700 directory),
// under /var/tmp: the app containers mount a /tmp of their own (an emptyDir) over the host's.
const rt = process.getuid?.() === 0 ? await otherUserRuntime('/var/tmp') : undefined;

if (rt === undefined) {
  t.skip('needs root: network and mount namespaces, tmpfs mounts, setpriv');
} else if ('skip' in rt) {
  t.plan(0, rt.skip);
} else {
  const nodeCmd = (args: string[]) => [rt.node, rt.cli, ...args];
  const awsCallScript = await rt.script('aws-call.cjs', AWS_CALL);
  t.test('config/kubernetes-pod.yaml: the sidecar starts on its volumes and the app container gets credentials', async (t) => {
    const made = await makeNetns(t, 'ra-kpod');
    if ('skip' in made) return t.skip(made.skip);
    const { ns } = made;
    await run('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    const objs = await manifest('config/kubernetes-pod.yaml');
    const { spec: pod } = podSpec(objs);
    const cm = objs.find((o) => o.kind === 'ConfigMap')!;
    const dir = await tempDir('ra-kpod-');
    const pki = dir;
    const ca = await makeCA(pki, 'Pod Test CA', { keyType: 'p256' });
    const leaf = await makeLeaf(pki, ca, 'app.default.svc');
    const emu = spawnIn(t, ns, nodeCmd(['emulator', '--trust-anchor-ca', ca.certPath, '--quiet']));
    const emuUrl = (await emu.waitFor(/emulator listening on (http:\/\/127\.0\.0\.1:\d+)/))[1]!;

    const fsGroup: number | undefined = pod.securityContext?.fsGroup;
    const volumes = new Map<string, string>();
    for (const v of pod.volumes as Json[]) {
      const at = join(dir, 'volumes', v.name);
      if (v.emptyDir) volumes.set(v.name, await emptyDir(t, at, { fsGroup, memory: v.emptyDir.medium === 'Memory' }));
      else if (v.configMap) volumes.set(v.name, await atomicWriter(at, withEndpoint(objs.find((o) => o.kind === 'ConfigMap' && o.metadata.name === v.configMap.name)!.data, emuUrl), { defaultMode: v.configMap.defaultMode, fsGroup }));
      else if (v.secret) {
        // What cert-manager writes into a kubernetes.io/tls Secret: the chain appended to tls.crt.
        const files = { 'tls.crt': leaf.certPem + ca.certPem, 'tls.key': await readFile(leaf.keyPath, 'utf8'), 'ca.crt': ca.certPem };
        volumes.set(v.name, await atomicWriter(at, files, { defaultMode: v.secret.defaultMode, fsGroup }));
      } else throw new Error(`volume ${v.name}: not built by this test`);
    }
    t.ok(cm, 'the ConfigMap the pod mounts');

    // The sidecar (init container with restartPolicy: Always) first, as kubelet starts it.
    const sc: Json = (pod.initContainers as Json[]).find((c) => c.restartPolicy === 'Always');
    const scSpec = container(pod, sc, volumes, nodeCmd(sc.args));
    const daemon = spawnIn(t, ns, unshare(containerScript(scSpec, join(dir, 'scratch-sc'))), envOf(sc));
    const healthPort: number = (sc.ports as Json[]).find((p) => p.name === sc.startupProbe.httpGet.port)!.containerPort;
    await until('the startup probe', async () => (await probe(ns, healthPort, sc.startupProbe.httpGet.path)) === 200, daemon);
    t.pass(`startup probe ${sc.startupProbe.httpGet.path} passed as uid ${scSpec.uid} with a read-only root`);
    t.match(daemon.output(), /token directory \/var\/run\/rolesanywhere is writable by other users \(mode 3777, owner uid 0, group 1000/, 'the tmpfs emptyDir with fsGroup, accepted and said so');
    t.notMatch(daemon.output(), /"level":50/, 'no error');
    // No warning: the key is 0440 root:fsGroup on the Secret volume (defaultMode 0440; kubelet adds g+r with fsGroup) and
    // the daemon (not root, the files' owner) reads it through that group, which only the pod's containers hold.
    t.same(daemon.output().match(/"level":40.*?"msg"/g)?.map((l) => /"event":"(\w+)"/.exec(l)?.[1]) ?? [], [], 'no warning');
    t.notMatch(daemon.output(), /secret_file_exposed/, 'the group-readable key on the Secret volume is not reported');

    // The app container only after the sidecar is started; its own uid, its mounts, its env.
    const app: Json = pod.containers[0];
    const appSpec = container(pod, app, volumes, awsCall(app, emuUrl, rt.node, awsCallScript));
    const res = await runProcess('ip', ['netns', 'exec', ns, ...unshare(containerScript(appSpec, join(dir, 'scratch-app')))], { cleanEnv: true, env: { ...env0, ...envOf(app) }, timeoutMs: 90_000 });
    t.equal(res.code, 0, res.code === 0 ? "the app container's call succeeded" : `the app container's call failed: ${res.stderr.slice(0, 600)}`);
    if (res.code === 0) t.match(JSON.parse(res.stdout).Arn, /:assumed-role\/app\/app$/, 'as the role and session name of the ConfigMap profile');

    // Another container of the pod with its own uid (a log shipper, say): it can read the token through the
    // fsGroup (0640, group fsGroup), but the daemon's callers check refuses its uid.
    const fetchWithToken = [
      rt.node,
      '-e',
      `const token = require('fs').readFileSync(process.env.AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE, 'utf8');
       require('http').get(process.env.AWS_CONTAINER_CREDENTIALS_FULL_URI, { headers: { authorization: token } }, (r) => { console.log(r.statusCode); r.resume(); });`,
    ];
    const other = await runProcess('ip', ['netns', 'exec', ns, ...unshare(containerScript({ ...appSpec, uid: 1001, gid: 1001, command: fetchWithToken }, join(dir, 'scratch-other')))], { cleanEnv: true, env: { ...env0, ...envOf(app) }, timeoutMs: 90_000 });
    t.equal(other.stdout.trim(), '403', `it read the token but the callers check refuses its uid (${other.stderr.slice(0, 300)})`);
    // cert-manager renews the Secret: kubelet swaps ..data; the daemon loads the new pair and signs with it.
    const renewed = await makeLeaf(pki, ca, 'app.default.svc-renewed');
    const tlsVol = (pod.volumes as Json[]).find((v) => v.secret)!;
    await atomicUpdate(volumes.get(tlsVol.name)!, { 'tls.crt': renewed.certPem + ca.certPem, 'tls.key': await readFile(renewed.keyPath, 'utf8'), 'ca.crt': ca.certPem }, { defaultMode: tlsVol.secret.defaultMode, fsGroup });
    await daemon.waitFor(new RegExp(`"event":"refresh","outcome":"success"[^\n]*"serial":"${renewed.serialDecimal}"`));
    t.pass('the renewed certificate, swapped in by ..data, got new credentials');
    const again = await runProcess('ip', ['netns', 'exec', ns, ...unshare(containerScript(appSpec, join(dir, 'scratch-app2')))], { cleanEnv: true, env: { ...env0, ...envOf(app) }, timeoutMs: 90_000 });
    t.equal(again.code, 0, again.code === 0 ? 'the app still gets credentials' : `the app failed after the renewal: ${again.stderr.slice(0, 600)}`);

    t.equal(await probe(ns, healthPort, '/healthz'), 200, 'liveness probe');
    daemon.child.kill('SIGTERM');
    t.equal(await daemon.exited, 0, 'SIGTERM: clean exit');
  });

  t.test('deploy/kubernetes/node-agent.yaml + pod.yaml: the init step, the agent as root with NET_BIND_SERVICE only, a pod with its projected token', async (t) => {
    const made = await makeNetns(t, 'ra-knode');
    if ('skip' in made) return t.skip(made.skip);
    const { ns } = made; // the node's network (hostNetwork: true)
    await run('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    const dummy = await run('ip', ['-n', ns, 'link', 'add', 'probe0', 'type', 'dummy']).then(
      () => true,
      () => false,
    );
    if (dummy) await run('ip', ['-n', ns, 'link', 'del', 'probe0']);

    const agentObjs = await manifest('deploy/kubernetes/node-agent.yaml');
    const { spec: ds } = podSpec(agentObjs);
    const sa = agentObjs.find((o) => o.kind === 'ServiceAccount')!;
    const dir = await tempDir('ra-knode-');
    const pki = dir;
    const ca = await makeCA(pki, 'Node Test CA', { keyType: 'p256' });
    const leaf = await makeLeaf(pki, ca, 'node-1.rolesanywhere-node-agent');
    const emu = spawnIn(t, ns, nodeCmd(['emulator', '--trust-anchor-ca', ca.certPath, '--quiet']));
    const emuUrl = (await emu.waitFor(/emulator listening on (http:\/\/127\.0\.0\.1:\d+)/))[1]!;

    // The API server's JWKS endpoint at kubernetes.default.svc:443 (TLS, bearer = the agent's own token).
    const cluster = await makeCluster(dir);
    const agentToken = await cluster.mint({ namespace: sa.metadata.namespace, serviceAccount: sa.metadata.name });
    const apiKey = join(pki, 'apiserver.key');
    const apiCert = join(pki, 'apiserver.pem');
    await openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', apiKey, '-out', apiCert, '-days', '2', '-subj', '/CN=kubernetes', '-addext', 'subjectAltName=DNS:kubernetes.default.svc']);
    await writeFile(join(dir, 'agent-token'), agentToken);
    const api = spawnIn(t, ns, [
      process.execPath,
      '-e',
      `const fs = require('fs'); const [key, cert, jwks, tok] = process.argv.slice(1);
       require('https').createServer({ key: fs.readFileSync(key), cert: fs.readFileSync(cert) }, (q, r) => {
         if (q.url !== '/openid/v1/jwks') return r.writeHead(404).end();
         if (q.headers.authorization !== 'Bearer ' + fs.readFileSync(tok, 'utf8')) return r.writeHead(401).end();
         r.writeHead(200, { 'content-type': 'application/jwk-set+json' }).end(fs.readFileSync(jwks));
         console.log('jwks served');
       }).listen(443, '127.0.0.1', () => console.log('api listening'));`,
      apiKey,
      apiCert,
      cluster.jwksFile,
      join(dir, 'agent-token'),
    ]);
    await api.waitFor(/api listening/);

    const fsGroup: number | undefined = ds.securityContext?.fsGroup;
    const volumes = new Map<string, string>();
    for (const v of ds.volumes as Json[]) {
      const at = join(dir, 'volumes', v.name);
      if (v.emptyDir) volumes.set(v.name, await emptyDir(t, at, { fsGroup, memory: v.emptyDir.medium === 'Memory' }));
      else if (v.configMap) volumes.set(v.name, await atomicWriter(at, withEndpoint(agentObjs.find((o) => o.kind === 'ConfigMap' && o.metadata.name === v.configMap.name)!.data, emuUrl), { defaultMode: v.configMap.defaultMode, fsGroup }));
      else if (v.csi?.driver === 'csi.cert-manager.io') {
        // cert-manager's CSI driver: a key made on the node and its certificate, written like the atomic writer.
        volumes.set(v.name, await atomicWriter(at, { 'tls.crt': leaf.certPem + ca.certPem, 'tls.key': await readFile(leaf.keyPath, 'utf8'), 'ca.crt': ca.certPem }, { defaultMode: 0o644, fsGroup }));
      } else throw new Error(`volume ${v.name}: not built by this test`);
    }
    // automountServiceAccountToken: kubelet's projected kube-api-access volume (token, ca.crt, namespace; 0644).
    t.not(ds.automountServiceAccountToken, false);
    volumes.set('kube-api-access', await atomicWriter(join(dir, 'volumes', 'kube-api-access'), { token: agentToken, 'ca.crt': await readFile(apiCert, 'utf8'), namespace: sa.metadata.namespace }, { defaultMode: 0o644, fsGroup }));
    const apiAccess = { path: '/var/run/secrets/kubernetes.io/serviceaccount', source: volumes.get('kube-api-access')!, readOnly: true };

    // Init container: the manifest's script, as root with NET_ADMIN only (where this kernel has dummy interfaces).
    const init: Json = ds.initContainers[0];
    let v6: boolean;
    if (dummy) {
      const initSpec = container(ds, init, volumes, init.command);
      t.same(initSpec.caps, ['net_admin']);
      const initRun = await runProcess('ip', ['netns', 'exec', ns, ...unshare(containerScript(initSpec, join(dir, 'scratch-init')))], { cleanEnv: true, env: env0 });
      t.equal(initRun.code, 0, `init container (${initRun.stderr.slice(0, 400)})`);
      const addrs = (await run('ip', ['-n', ns, 'addr', 'show', 'dev', 'rolesanywhere0'])).stdout;
      t.match(addrs, /inet 169\.254\.170\.23\/32/);
      v6 = /inet6 fd00:ec2::23\/128/.test(addrs);
    } else {
      t.comment('this kernel has no dummy interfaces: the init step is not run; the addresses go on lo instead');
      await run('ip', ['-n', ns, 'addr', 'add', '169.254.170.23/32', 'dev', 'lo']);
      v6 = await run('ip', ['-n', ns, '-6', 'addr', 'add', 'fd00:ec2::23/128', 'dev', 'lo', 'nodad']).then(
        () => true,
        () => false,
      );
    }
    if (!v6) t.comment('no IPv6 in this namespace: the agent cannot bind [fd00:ec2::23]:80');

    // The agent: uid 0, NET_BIND_SERVICE only, read-only root, its volumes + the service-account token.
    const agent: Json = ds.containers[0];
    const agentSpec = container(ds, agent, volumes, nodeCmd(agent.args), { append: { '/etc/hosts': '127.0.0.1 kubernetes.default.svc' } });
    agentSpec.mounts.push(apiAccess);
    t.same(agentSpec.caps, ['net_bind_service']);
    const agentProc = spawnIn(t, ns, unshare(containerScript(agentSpec, join(dir, 'scratch-agent'))), envOf(agent));
    const healthPort: number = (agent.ports as Json[]).find((p) => p.name === agent.startupProbe.httpGet.port)!.containerPort;
    await until('the startup probe', async () => (await probe(ns, healthPort, agent.startupProbe.httpGet.path)) === 200, agentProc);
    t.pass('startup probe passed');
    t.match(agentProc.output(), /token directory \/var\/run\/rolesanywhere is writable by other users \(mode 1777, owner uid 0, group 0/, 'the tmpfs emptyDir, accepted and said so');

    // The pod (pod.yaml) on this node: its projected token (audience, expirationSeconds), as uid 1000.
    const podObjs = await manifest('deploy/kubernetes/pod.yaml');
    const { spec: pod, meta: podMeta } = podSpec(podObjs);
    const podFsGroup: number | undefined = pod.securityContext?.fsGroup;
    const podVolumes = new Map<string, string>();
    for (const v of pod.volumes as Json[]) {
      const at = join(dir, 'pod-volumes', v.name);
      if (v.emptyDir) podVolumes.set(v.name, await emptyDir(t, at, { fsGroup: podFsGroup, memory: v.emptyDir.medium === 'Memory' }));
      else if (v.projected) {
        const files: Record<string, string> = {};
        for (const s of v.projected.sources as Json[]) {
          const sat = s.serviceAccountToken;
          t.ok(sat, 'a service-account token source');
          files[sat.path] = await cluster.mint({ namespace: podMeta.namespace, serviceAccount: pod.serviceAccountName, podName: podMeta.name, audience: sat.audience, expiresIn: sat.expirationSeconds });
        }
        podVolumes.set(v.name, await atomicWriter(at, files, { defaultMode: v.projected.defaultMode, fsGroup: podFsGroup }));
      } else throw new Error(`volume ${v.name}: not built by this test`);
    }
    const app: Json = pod.containers[0];
    const appSpec = container(pod, app, podVolumes, awsCall(app, emuUrl, rt.node, awsCallScript));
    const res = await runProcess('ip', ['netns', 'exec', ns, ...unshare(containerScript(appSpec, join(dir, 'scratch-app')))], { cleanEnv: true, env: { ...env0, ...envOf(app) }, timeoutMs: 90_000 });
    t.equal(res.code, 0, res.code === 0 ? "the pod's call succeeded" : `the pod's call failed: ${res.stderr.slice(0, 600)}`);
    if (res.code === 0) t.match(JSON.parse(res.stdout).Arn, /:assumed-role\/checkout\//, "the role its service account's binding names");
    // kubelet rewrites the projected token before it expires (a ..data swap); the SDK reads the new one.
    const tokVol = (pod.volumes as Json[]).find((v) => v.projected)!;
    const sat = tokVol.projected.sources[0].serviceAccountToken;
    const rotated = await cluster.mint({ namespace: podMeta.namespace, serviceAccount: pod.serviceAccountName, podName: podMeta.name, audience: sat.audience, expiresIn: sat.expirationSeconds });
    await atomicUpdate(podVolumes.get(tokVol.name)!, { [sat.path]: rotated }, { defaultMode: tokVol.projected.defaultMode, fsGroup: podFsGroup });
    const again = await runProcess('ip', ['netns', 'exec', ns, ...unshare(containerScript(appSpec, join(dir, 'scratch-app2')))], { cleanEnv: true, env: { ...env0, ...envOf(app) }, timeoutMs: 90_000 });
    t.equal(again.code, 0, again.code === 0 ? 'with the rotated token too' : `failed with the rotated token: ${again.stderr.slice(0, 600)}`);
    t.match(api.output(), /jwks served/, "the agent fetched the cluster's keys from https://kubernetes.default.svc with its own token and ca.crt");
    t.notMatch(agentProc.output(), /"level":50/, 'no error');
    // The only warnings: the node key, 0644 in the CSI volume (the driver's default mode), is readable by every user of the agent's
    // container; chmod cannot change it there, so the warning names the volume's and the CSI driver's mode settings instead.
    t.same([...new Set(agentProc.output().match(/"level":40.*?"msg"/g)?.map((l) => /"event":"(\w+)"/.exec(l)?.[1]) ?? [])], ['secret_file_exposed']);
    t.match(agentProc.output(), /"event":"secret_file_exposed".*tls\.key: the private key file is open to every local user \(mode 644\); it is on a read-only Kubernetes volume \(\/etc\/rolesanywhere\/node\), where chmod cannot change it; set defaultMode: 0400.*csi\.cert-manager\.io\/fs-group/);
    t.notMatch(agentProc.output(), /run chmod/, 'no chmod advice for a read-only volume');
    agentProc.child.kill('SIGTERM');
    t.equal(await agentProc.exited, 0, 'SIGTERM: clean exit');
  });
}
