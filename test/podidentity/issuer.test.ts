// `pki pod-token`: a service-account issuer without a cluster. Its tokens are
// checked by the daemon's own verifier, configured through the real config
// loader from the pod-identity.yaml the command writes.
import t from 'tap';
import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { loadDaemonConfig } from '../../src/config/load.js';
import { PodTokenVerifier } from '../../src/podidentity/verify.js';
import { runCli } from '../helpers/cli.js';
import { STUB_PROFILE as profile } from '../helpers/kube.js';
import { tempDir } from '../helpers/pki.js';


const mode = async (p: string) => (await stat(p)).mode & 0o777;
const claimsOf = (token: string) => JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString('utf8'));
const headerOf = (token: string) => JSON.parse(Buffer.from(token.split('.')[0]!, 'base64url').toString('utf8'));

/** The daemon's verifier, from a daemon config made of the issuer's pod-identity.yaml plus bindings. */
async function verifierFor(dir: string, issuerDir: string): Promise<PodTokenVerifier> {
  const snippet = parseYaml(await readFile(join(issuerDir, 'pod-identity.yaml'), 'utf8')) as { podIdentity: Record<string, unknown> };
  const file = join(dir, 'agent.yaml');
  const podIdentity = { ...snippet.podIdentity, listen: ['127.0.0.1:0'], bindings: [{ namespace: 'shop', serviceAccount: 'checkout', profile: 'app' }] };
  await writeFile(file, JSON.stringify({ imds: { enabled: false }, profiles: { app: profile }, podIdentity }));
  const config = await loadDaemonConfig({ argv: ['--config', file], env: { HOME: dir } });
  const p = config.podIdentity!;
  const verifier = new PodTokenVerifier({ issuer: p.issuer, audiences: p.audiences, jwks: p.jwks });
  await verifier.load();
  return verifier;
}

t.test('the first pod-token makes an issuer; its tokens pass the daemon verifier configured from pod-identity.yaml', async (t) => {
  const dir = await tempDir('ra-podtok-');
  const issuerDir = join(dir, 'cluster');
  const out = join(dir, 'pods', 'checkout', 'token');
  const res = await runCli(['pki', 'pod-token', '--issuer-dir', issuerDir, '--namespace', 'shop', '--service-account', 'checkout', '--out', out]);
  t.equal(res.code, 0, res.stderr);
  t.match(res.stdout, /^Created a service-account issuer in .*cluster \(RS256, kid [A-Za-z0-9_-]{43}\):/);
  t.match(res.stdout, /Wrote a projected service-account token for shop\/checkout \(pod checkout-0, audience rolesanywhere-credentiald, expires \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\)/);
  t.match(res.stdout, new RegExp(`export AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=${out}\\n`));
  t.same((await readdir(issuerDir)).sort(), ['jwks.json', 'openid-configuration.json', 'pod-identity.yaml', 'sa.key']);
  t.equal(await mode(join(issuerDir, 'sa.key')), 0o600, 'signing key 0600');
  t.equal(await mode(out), 0o600, 'token file 0600');
  const token = await readFile(out, 'utf8');
  t.notOk(res.stdout.includes(token) || res.stdout.includes(token.split('.')[2]!), 'the token is not printed');
  t.match(token, /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/, 'a bare JWT with no trailing newline, as kubelet writes it');
  const jwks = JSON.parse(await readFile(join(issuerDir, 'jwks.json'), 'utf8'));
  t.equal(jwks.keys.length, 1);
  t.notOk('d' in jwks.keys[0] || 'p' in jwks.keys[0], 'the JWKS holds only the public key');
  t.same({ kty: jwks.keys[0].kty, alg: jwks.keys[0].alg, use: jwks.keys[0].use, kid: jwks.keys[0].kid }, { kty: 'RSA', alg: 'RS256', use: 'sig', kid: headerOf(token).kid });

  // The shape of a kubelet-mounted token (kube-apiserver 1.30+).
  const c = claimsOf(token);
  t.same(Object.keys(c).sort(), ['aud', 'exp', 'iat', 'iss', 'jti', 'kubernetes.io', 'nbf', 'sub']);
  t.equal(c.iss, 'https://kubernetes.default.svc.cluster.local');
  t.same(c.aud, ['rolesanywhere-credentiald']);
  t.equal(c.sub, 'system:serviceaccount:shop:checkout');
  t.equal(c.exp - c.iat, 3600);
  t.equal(c.nbf, c.iat);
  t.ok(Math.abs(c.iat - Date.now() / 1000) < 120, 'issued now');
  const k = c['kubernetes.io'];
  t.same(Object.keys(k).sort(), ['namespace', 'node', 'pod', 'serviceaccount']);
  t.equal(k.namespace, 'shop');
  t.equal(k.serviceaccount.name, 'checkout');
  t.equal(k.pod.name, 'checkout-0');
  for (const uid of [k.serviceaccount.uid, k.pod.uid, k.node.uid, c.jti]) t.match(uid, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  t.same(headerOf(token), { alg: 'RS256', kid: headerOf(token).kid });

  const verifier = await verifierFor(dir, issuerDir);
  const v = await verifier.verify(token);
  t.ok(v.ok, JSON.stringify(v));
  if (v.ok) {
    t.same({ ns: v.identity.namespace, sa: v.identity.serviceAccount, pod: v.identity.podName, uid: v.identity.podUid }, { ns: 'shop', sa: 'checkout', pod: 'checkout-0', uid: k.pod.uid });
    t.equal(v.identity.expiresAtMs, c.exp * 1000);
  }

  // Again for the same pod (a rotation): same issuer key, same service account and pod uids, a new jti, the file replaced.
  const again = await runCli(['pki', 'pod-token', '--issuer-dir', issuerDir, '--namespace', 'shop', '--service-account', 'checkout', '--out', out, '--expiration-seconds', '600']);
  t.equal(again.code, 0, again.stderr);
  t.notMatch(again.stdout, /Created/, 'the existing issuer is used');
  const rotated = await readFile(out, 'utf8');
  t.not(rotated, token);
  const c2 = claimsOf(rotated);
  t.equal(headerOf(rotated).kid, headerOf(token).kid);
  t.equal(c2['kubernetes.io'].serviceaccount.uid, k.serviceaccount.uid, 'a service account keeps its uid');
  t.equal(c2['kubernetes.io'].pod.uid, k.pod.uid, 'the same pod keeps its uid');
  t.not(c2.jti, c.jti);
  t.equal(c2.exp - c2.iat, 600);
  t.ok((await verifier.verify(rotated)).ok);

  // Another pod of another namespace, and other audiences or issuers: the verifier tells them apart.
  const other = join(dir, 'pods', 'report', 'token');
  t.equal((await runCli(['pki', 'pod-token', '--issuer-dir', issuerDir, '--namespace', 'batch', '--service-account', 'report', '--pod', 'report-7f9c4', '--out', other])).code, 0);
  const vo = await verifier.verify(await readFile(other, 'utf8'));
  t.ok(vo.ok && vo.identity.namespace === 'batch' && vo.identity.serviceAccount === 'report' && vo.identity.podName === 'report-7f9c4', 'batch/report pod');
  t.not(claimsOf(await readFile(other, 'utf8'))['kubernetes.io'].pod.uid, k.pod.uid, 'another pod, another uid');

  const wrongAud = join(dir, 'wrong-aud');
  t.equal((await runCli(['pki', 'pod-token', '--issuer-dir', issuerDir, '--namespace', 'shop', '--service-account', 'checkout', '--audience', 'sts.amazonaws.com', '--out', wrongAud])).code, 0);
  t.match(await verifier.verify(await readFile(wrongAud, 'utf8')), { ok: false, check: 'audience' });

  const otherCluster = join(dir, 'other-cluster');
  const foreign = join(dir, 'foreign');
  t.equal((await runCli(['pki', 'pod-token', '--issuer-dir', otherCluster, '--namespace', 'shop', '--service-account', 'checkout', '--out', foreign, '--issuer', 'https://oidc.example.test/cluster-2', '--key-type', 'ec'])).code, 0);
  t.match(await verifier.verify(await readFile(foreign, 'utf8')), { ok: false, check: 'unknown_key' }, "another cluster's token: not this issuer's key");
  const ecToken = await readFile(foreign, 'utf8');
  t.equal(headerOf(ecToken).alg, 'ES256');
  const ecVerifier = await verifierFor(await tempDir('ra-podtok-'), otherCluster);
  const ve = await ecVerifier.verify(ecToken);
  t.ok(ve.ok, `ES256 issuer with its own iss verifies: ${JSON.stringify(ve)}`);
});

t.test('pod-token: bad input is one clear message, exit 1, and creates nothing', async (t) => {
  const dir = await tempDir('ra-podtok-');
  const issuerDir = join(dir, 'cluster');
  const base = ['pki', 'pod-token', '--issuer-dir', issuerDir, '--out', join(dir, 'token')];
  const cases: Array<[string[], RegExp]> = [
    [[...base, '--namespace', 'Shop', '--service-account', 'checkout'], /--namespace "Shop" is not a Kubernetes namespace name/],
    [[...base, '--namespace', 'shop', '--service-account', 'check_out'], /--service-account "check_out" is not a service account name/],
    [[...base, '--namespace', 'shop'], /pki pod-token needs --service-account/],
    [['pki', 'pod-token', '--namespace', 'shop', '--service-account', 'a', '--out', join(dir, 'token')], /needs --issuer-dir/],
    [[...base, '--namespace', 'shop', '--service-account', 'a', '--issuer', 'http://plain.example'], /--issuer "http:\/\/plain\.example" must be an https URL/],
    [[...base, '--namespace', 'shop', '--service-account', 'a', '--key-type', 'dsa'], /--key-type must be "rsa" or "ec"/],
    [[...base, '--namespace', 'shop', '--service-account', 'a', '--expiration-seconds', 'soon'], /--expiration-seconds must be whole seconds/],
    [[...base, '--namespace', 'shop', '--service-account', 'a', '--bogus'], /unknown option '--bogus'/],
  ];
  for (const [args, message] of cases) {
    const r = await runCli(args);
    t.equal(r.code, 1, args.join(' '));
    t.match(r.stderr, message);
    t.equal(r.stderr.trim().split('\n').length, 1, 'one line');
  }
  await t.rejects(stat(issuerDir), 'no issuer was created by a refused command');

  // An expiry outside Kubernetes' bounds is refused after the issuer exists, and writes no token.
  const ok = await runCli([...base, '--namespace', 'shop', '--service-account', 'a']);
  t.equal(ok.code, 0, ok.stderr);
  const short = await runCli(['pki', 'pod-token', '--issuer-dir', issuerDir, '--namespace', 'shop', '--service-account', 'a', '--out', join(dir, 'short'), '--expiration-seconds', '60']);
  t.equal(short.code, 1);
  t.match(short.stderr, /--expiration-seconds must be whole seconds from 600 \(the Kubernetes minimum\)/);
  await t.rejects(stat(join(dir, 'short')));
  const reIssuer = await runCli(['pki', 'pod-token', '--issuer-dir', issuerDir, '--namespace', 'shop', '--service-account', 'a', '--out', join(dir, 't2'), '--issuer', 'https://other.example']);
  t.equal(reIssuer.code, 1);
  t.match(reIssuer.stderr, /--issuer applies only to a new issuer, and .*cluster holds one \(iss https:\/\/kubernetes\.default\.svc\.cluster\.local\)/);
  const help = await runCli(['pki', 'pod-token', '--help']);
  t.equal(help.code, 0);
  t.match(help.stdout, /Usage: rolesanywhere-credentiald pki pod-token/);
});
