// PodTokenVerifier against real tokens (jose-signed, as kube-apiserver signs
// them) and a real JWKS server on 127.0.0.1: the JWKS fetch's overall deadline
// and the cap on a token's lifetime (issue 21, item 4 and the pod-token cap).
import t from 'tap';
import { SignJWT } from 'jose';
import { randomUUID } from 'node:crypto';
import { PodTokenVerifier, type Verification } from '../../src/podidentity/verify.js';
import { AUDIENCE, ISSUER, makeCluster, makeKey, serveJwks, type SigningKey } from '../helpers/kube.js';
import { tempDir } from '../helpers/pki.js';

const dir = await tempDir('ra-verify-');
const cluster = await makeCluster(dir);

/** A pod token with the given iat/exp (seconds since epoch). */
function token(key: SigningKey, claims: { iat?: number; exp: number }): Promise<string> {
  const jwt = new SignJWT({
    'kubernetes.io': { namespace: 'shop', serviceaccount: { name: 'checkout', uid: randomUUID() }, pod: { name: 'checkout-1', uid: randomUUID() } },
    ...(claims.iat === undefined ? {} : { iat: claims.iat }),
    exp: claims.exp,
  })
    .setProtectedHeader({ alg: key.alg, kid: key.kid })
    .setIssuer(ISSUER)
    .setAudience(AUDIENCE)
    .setSubject('system:serviceaccount:shop:checkout');
  return jwt.sign(key.privateKey);
}

/** `verify`, or 'no answer' when it has not settled after `ms` (a liveness guard, not a timing assertion). */
async function settled(p: Promise<Verification>, ms = 20_000): Promise<Verification | 'no answer'> {
  let timer: NodeJS.Timeout | undefined;
  const guard = new Promise<'no answer'>((resolve) => (timer = setTimeout(() => resolve('no answer'), ms)));
  try {
    return await Promise.race([p, guard]);
  } finally {
    clearTimeout(timer);
  }
}

// Issue 21: "an exp of 1e20 was accepted" — pod tokens had no maximum lifetime.
t.test('tokens valid for longer than maxTokenLifetimeSeconds are refused, naming the setting', async (t) => {
  const verifier = new PodTokenVerifier({ issuer: ISSUER, audiences: [AUDIENCE], jwks: { file: cluster.jwksFile } });
  await verifier.load();
  const now = Math.floor(Date.now() / 1000);
  const ok = await verifier.verify(await token(cluster.rsa, { iat: now, exp: now + 3600 }));
  t.equal(ok.ok, true, 'a 1-hour token (kubelet default) is accepted');
  const day = await verifier.verify(await token(cluster.ec, { iat: now, exp: now + 86_400 }));
  t.equal(day.ok, true, 'exactly the default cap (24 h) is accepted');
  const cases: Array<[string, { iat?: number; exp: number }, RegExp]> = [
    ['exp 1e20', { iat: now, exp: 1e20 }, /valid for ever \(exp − (iat|now)\)/],
    ['two days', { iat: now, exp: now + 2 * 86_400 }, /valid for 172800 s \(exp − iat\)/],
    ['no iat, a year ahead', { exp: now + 365 * 86_400 }, /\(exp − now\)/],
    ['iat set just below exp, exp a year ahead', { iat: now + 365 * 86_400 - 60, exp: now + 365 * 86_400 }, /\(exp − now\)/],
  ];
  for (const [label, claims, re] of cases) {
    const v = await verifier.verify(await token(cluster.rsa, claims));
    t.equal(v.ok, false, `${label}: refused`);
    if (v.ok) continue;
    t.equal(v.check, 'lifetime', `${label}: the lifetime check`);
    t.match(v.message, re, `${label}: says how long`);
    t.match(v.message, /more than podIdentity\.maxTokenLifetimeSeconds \(86400 s\)/, `${label}: names the setting`);
  }
  const strict = new PodTokenVerifier({ issuer: ISSUER, audiences: [AUDIENCE], jwks: { file: cluster.jwksFile }, maxTokenLifetimeSeconds: 1800 });
  await strict.load();
  const v = await strict.verify(await token(cluster.rsa, { iat: now, exp: now + 3600 }));
  t.match(v, { ok: false, check: 'lifetime', message: /\(1800 s\)/ }, 'the setting lowers the cap');
});

// Issue 21 (4): a JWKS server sending a byte every 3 s stayed under the 5 s idle
// timeout; the single in-flight fetch never settled, and every later token with an
// unknown kid hung — even after the server recovered.
t.test('a JWKS fetch has an overall deadline, body included; lookups work again once the server recovers', async (t) => {
  const server = await serveJwks(t, cluster);
  const verifier = new PodTokenVerifier({
    issuer: ISSUER,
    audiences: [AUDIENCE],
    jwks: { url: server.url },
    minRefetchIntervalMs: 0,
    jwksTimeoutMs: 1500,
  });
  await verifier.load();
  const now = Math.floor(Date.now() / 1000);
  t.equal((await verifier.verify(await token(cluster.rsa, { iat: now, exp: now + 3600 }))).ok, true, 'keys loaded while the server answers');

  // The cluster rotates to a new key while the API server is stuck mid-answer.
  const rotated = await makeKey('rsa-2', 'RS256');
  cluster.published = [rotated, cluster.ec];
  server.dripMs = 300;
  for (const attempt of [1, 2]) {
    const v = await settled(verifier.verify(await token(rotated, { iat: now, exp: now + 3600 })));
    t.not(v, 'no answer', `unknown kid while the JWKS server drips (attempt ${attempt}): the verification settles`);
    t.match(v, { ok: false, check: 'unknown_key' }, `attempt ${attempt}: refused for the unknown key`);
  }
  await t.rejects(verifier.load(), { message: /no complete JWKS answer within 1500 ms/, reason: 'jwks_unreachable' }, 'the fetch names its deadline');

  server.dripMs = undefined; // the API server recovers
  const v = await settled(verifier.verify(await token(rotated, { iat: now, exp: now + 3600 })));
  t.match(v, { ok: true }, 'the rotated key is fetched and the token accepted');
});

// Issue 21 (theoretical): a verified token was answered from the cache without
// looking at the keys' age, so it could outlive its key's removal from the JWKS
// for as long as no uncached token came along. Now at most maxKeyAgeMs.
t.test("a cached token stops being accepted once the keys are due and its key is gone", async (t) => {
  const own = await makeCluster(await tempDir('ra-verify-rm-'));
  let now = Date.now();
  const verifier = new PodTokenVerifier({ issuer: ISSUER, audiences: [AUDIENCE], jwks: { file: own.jwksFile }, maxKeyAgeMs: 3_600_000, minRefetchIntervalMs: 10_000, now: () => now });
  await verifier.load();
  const s = Math.floor(now / 1000);
  const tok = await token(own.rsa, { iat: s, exp: s + 86_400 });
  t.match(await verifier.verify(tok), { ok: true, cached: false });
  t.ok(verifier.lookup(tok), 'answered from the cache');
  own.published = [own.ec]; // the cluster drops the RSA key
  await own.writeJwks();
  now += 30 * 60_000;
  t.ok(verifier.lookup(tok), 'within the key age: still cached');
  now += 31 * 60_000;
  t.equal(verifier.lookup(tok), undefined, 'keys over the age: no cached answer');
  t.match(await verifier.verify(tok), { ok: false, check: 'unknown_key' }, 'the re-fetched key set refuses it');
});
