import t from 'tap';
import { parseArgs } from 'node:util';
import { ConfigError } from '../../src/problems.js';
import { PROFILE_OPTIONS, profileFromFlags, validateProfile, envName } from '../../src/config/profile.js';
import { UserError } from '../../src/errors.js';

const TA = 'arn:aws:rolesanywhere:eu-west-1:123456789012:trust-anchor/6f2a1c2e-1111-4222-8333-944455556666';
const PA = 'arn:aws:rolesanywhere:eu-west-1:123456789012:profile/0a1b2c3d-1111-4222-8333-944455556666';
const ROLE = 'arn:aws:iam::123456789012:role/app-role';

function flags(args: string[]) {
  return parseArgs({ args, options: PROFILE_OPTIONS, strict: true, allowPositionals: false }).values;
}

function problemsOf(fn: () => unknown): { path: string; message: string }[] {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  throw new Error('expected a ConfigError');
}

const base = ['--certificate', 'c.pem', '--private-key', 'k.pem', '--trust-anchor-arn', TA, '--profile-arn', PA, '--role-arn', ROLE];

t.test('flags give a complete profile with defaults and absolute paths', async (t) => {
  const p = profileFromFlags(flags(base), {}, { cwd: '/srv/app' });
  t.equal(p.name, 'default');
  t.equal(p.certificate, '/srv/app/c.pem');
  t.equal(p.privateKey, '/srv/app/k.pem');
  t.equal(p.region, 'eu-west-1', 'region from the trust anchor ARN');
  t.equal(p.sessionDuration, 3600);
  t.equal(p.expiryWarningDays, 7);
  t.equal(p.withProxy, true);
  t.equal(p.noVerifySsl, false);
  t.equal(p.keyPassword, undefined);
  t.equal(p.endpoint, undefined);
});

t.test('every profile flag falls back to ROLESANYWHERE_<FLAG>', async (t) => {
  const env = {
    ROLESANYWHERE_CERTIFICATE: '/e/c.pem',
    ROLESANYWHERE_PRIVATE_KEY: 'k.pem',
    ROLESANYWHERE_INTERMEDIATES: '/e/chain.pem',
    ROLESANYWHERE_TRUST_ANCHOR_ARN: TA,
    ROLESANYWHERE_PROFILE_ARN: PA,
    ROLESANYWHERE_ROLE_ARN: ROLE,
    ROLESANYWHERE_REGION: 'eu-west-1',
    ROLESANYWHERE_ENDPOINT: 'http://127.0.0.1:8443/',
    ROLESANYWHERE_SESSION_DURATION: '900',
    ROLESANYWHERE_ROLE_SESSION_NAME: 'me@host',
    ROLESANYWHERE_NO_VERIFY_SSL: 'true',
    ROLESANYWHERE_WITH_PROXY: 'false',
    ROLESANYWHERE_CA_BUNDLE: '/e/ca.pem',
    ROLESANYWHERE_EXPIRY_WARNING_DAYS: '30',
    ROLESANYWHERE_KEY_PASSWORD_FILE: '/e/pass',
  };
  const p = profileFromFlags({}, env, { cwd: '/w', name: 'envy' });
  t.equal(p.name, 'envy');
  t.equal(p.certificate, '/e/c.pem');
  t.equal(p.privateKey, '/w/k.pem');
  t.equal(p.intermediates, '/e/chain.pem');
  t.equal(p.endpoint, 'http://127.0.0.1:8443', 'trailing slash dropped');
  t.equal(p.sessionDuration, 900);
  t.equal(p.roleSessionName, 'me@host');
  t.equal(p.noVerifySsl, true);
  t.equal(p.withProxy, false);
  t.equal(p.caBundle, '/e/ca.pem');
  t.equal(p.expiryWarningDays, 30);
  t.equal(p.keyPasswordFile, '/e/pass');
  t.equal(envName('trust-anchor-arn'), 'ROLESANYWHERE_TRUST_ANCHOR_ARN');
});

t.test('flags beat the environment', async (t) => {
  const env = { ROLESANYWHERE_ROLE_ARN: 'arn:aws:iam::123456789012:role/from-env', ROLESANYWHERE_SESSION_DURATION: '7200', ROLESANYWHERE_CERTIFICATE: '/env.pem' };
  const p = profileFromFlags(flags([...base, '--session-duration', '1800']), env, { cwd: '/w' });
  t.equal(p.roleArn, ROLE);
  t.equal(p.sessionDuration, 1800);
  t.equal(p.certificate, '/w/c.pem');
  const q = profileFromFlags(flags(base.filter((_, i) => i > 1 || false).slice(0)), { ...env }, { cwd: '/w' });
  t.equal(q.certificate, '/env.pem', 'env used where the flag is absent');
});

t.test('password sources', async (t) => {
  const secret = 'pa55-word';
  const a = profileFromFlags(flags([...base, '--pkcs8-password', secret]), {}, {});
  t.ok(a.keyPassword === secret, 'from --pkcs8-password');
  const b = profileFromFlags(flags(base), { ROLESANYWHERE_KEY_PASSWORD: secret }, {});
  t.ok(b.keyPassword === secret, 'from ROLESANYWHERE_KEY_PASSWORD');
  const c = profileFromFlags(flags([...base, '--key-password-file', '/p']), { ROLESANYWHERE_KEY_PASSWORD: secret }, {});
  t.equal(c.keyPasswordFile, '/p');
  t.ok(c.keyPassword === undefined, 'flag file beats env password');
  const probs = problemsOf(() => profileFromFlags(flags([...base, '--key-password-file', '/p', '--pkcs8-password', secret]), {}, {}));
  t.equal(probs.length, 1);
  t.match(probs[0]!.message, /either --key-password-file or --pkcs8-password/);
  t.notMatch(JSON.stringify(probs), secret, 'the password never appears in messages');
});

t.test('missing required flags are all reported, named by flag and variable', async (t) => {
  const probs = problemsOf(() => profileFromFlags({}, {}, {}));
  const paths = probs.map((p) => p.path);
  t.same(paths.sort(), [
    '--certificate (or ROLESANYWHERE_CERTIFICATE)',
    '--profile-arn (or ROLESANYWHERE_PROFILE_ARN)',
    '--role-arn (or ROLESANYWHERE_ROLE_ARN)',
    '--trust-anchor-arn (or ROLESANYWHERE_TRUST_ANCHOR_ARN)',
  ]);
  for (const p of probs) t.match(p.message, /^required: /);
  const err = (() => {
    try {
      profileFromFlags({}, {}, {});
    } catch (e) {
      return e;
    }
  })();
  t.ok(err instanceof UserError, 'a UserError');
  t.match((err as Error).message, /^invalid configuration \(command line\), 4 problems:\n  --/);
});

t.test('private key required unless PKCS#12', async (t) => {
  const noKey = ['--certificate', 'c.pem', '--trust-anchor-arn', TA, '--profile-arn', PA, '--role-arn', ROLE];
  const probs = problemsOf(() => profileFromFlags(flags(noKey), {}, {}));
  t.equal(probs.length, 1);
  t.equal(probs[0]!.path, '--private-key (or ROLESANYWHERE_PRIVATE_KEY)');
  t.match(probs[0]!.message, /required/);
  const p = profileFromFlags(flags(['--certificate', 'id.P12', ...noKey.slice(2)]), {}, {});
  t.equal(p.privateKey, undefined);
  const both = problemsOf(() => profileFromFlags(flags(['--certificate', 'id.pfx', '--private-key', 'k', ...noKey.slice(2)]), {}, {}));
  t.match(both[0]!.message, /not used with a PKCS#12 bundle/);
});

t.test('validateProfile: field-path errors for every rule, all together', async (t) => {
  const raw = {
    certificate: 'c.pem',
    privateKey: 'k.pem',
    trustAnchorArn: 'arn:aws:rolesanywhere:us-east-1:123456789012:profile/abc',
    profileArn: 'arn:aws:rolesanywhere:us-east-1:12345:profile/abc',
    roleArn: 'arn:aws:iam::123456789012:user/bob',
    region: 'Europe',
    endpoint: 'http://rolesanywhere.example.com',
    sessionDuration: 60,
    roleSessionName: 'x',
    expiryWarningDays: -1,
    noVerifySsl: 'maybe',
    roleArm: 'typo',
  };
  const probs = problemsOf(() => validateProfile(raw, 'profiles.app'));
  const byPath = Object.fromEntries(probs.map((p) => [p.path, p.message]));
  t.match(byPath['profiles.app.roleArn'], 'not an IAM role ARN (expected arn:aws:iam::<12-digit account>:role/<name>)');
  t.match(byPath['profiles.app.trustAnchorArn'], /this is a profile ARN; expected arn:<partition>:rolesanywhere:<region>:<account>:trust-anchor\/<id>/);
  t.match(byPath['profiles.app.profileArn'], /not a Roles Anywhere profile ARN \(expected arn:<partition>:rolesanywhere:<region>:<account>:profile\/<id>\)/);
  t.match(byPath['profiles.app.region'], /not an AWS region name/);
  t.match(byPath['profiles.app.endpoint'], /plain http is allowed only for loopback hosts/);
  t.match(byPath['profiles.app.sessionDuration'], /900 to 43200/);
  t.match(byPath['profiles.app.roleSessionName'], /2-64 characters/);
  t.match(byPath['profiles.app.expiryWarningDays'], /0 to 3650/);
  t.match(byPath['profiles.app.noVerifySsl'], /expected true or false/);
  t.equal(byPath['profiles.app.roleArm'], 'unknown key — did you mean roleArn?');
  t.equal(probs.length, 10);
});

t.test('region rules', async (t) => {
  const ok = { certificate: '/c', privateKey: '/k', trustAnchorArn: TA, profileArn: PA, roleArn: ROLE };
  t.equal(validateProfile(ok, 'profiles.a').region, 'eu-west-1');
  t.equal(validateProfile(ok, 'profiles.a').name, 'a');
  const otherRegionProfile = PA.replace('eu-west-1', 'us-east-1');
  let probs = problemsOf(() => validateProfile({ ...ok, profileArn: otherRegionProfile }, 'profiles.a'));
  t.equal(probs[0]!.path, 'profiles.a.profileArn');
  t.match(probs[0]!.message, /us-east-1 but the trust anchor is in eu-west-1/);
  probs = problemsOf(() => validateProfile({ ...ok, region: 'us-east-1' }, 'profiles.a'));
  t.equal(probs[0]!.path, 'profiles.a.region');
  probs = problemsOf(() => validateProfile(ok, 'profiles.a', { region: 'us-east-1', defaultsLabel: (k) => `top-level ${k}` }));
  t.match(probs[0]!.message, /top-level region us-east-1 does not match the trust anchor's region eu-west-1/);
  t.equal(validateProfile(ok, 'profiles.a', { region: 'eu-west-1' }).region, 'eu-west-1');
  const cn = {
    ...ok,
    trustAnchorArn: 'arn:aws-cn:rolesanywhere:cn-north-1:123456789012:trust-anchor/abc',
    profileArn: 'arn:aws-cn:rolesanywhere:cn-north-1:123456789012:profile/def',
    roleArn: 'arn:aws-cn:iam::123456789012:role/path/to/r',
  };
  t.equal(validateProfile(cn, 'p').region, 'cn-north-1');
  probs = problemsOf(() => validateProfile({ ...cn, roleArn: ROLE }, 'p'));
  t.match(probs[0]!.message, /partition aws but the trust anchor is in aws-cn/);
});

t.test('endpoint rules', async (t) => {
  const ok = { certificate: '/c', privateKey: '/k', trustAnchorArn: TA, profileArn: PA, roleArn: ROLE };
  for (const good of ['https://rolesanywhere.eu-west-1.amazonaws.com', 'http://127.0.0.1:9000', 'http://[::1]:9000/', 'http://localhost:1/base/']) {
    t.ok(validateProfile({ ...ok, endpoint: good }, 'p').endpoint, good);
  }
  t.equal(validateProfile({ ...ok, endpoint: 'http://localhost:1/base/' }, 'p').endpoint, 'http://localhost:1/base');
  for (const [bad, re] of [
    ['not a url', /not a URL/],
    ['ftp://x', /unsupported scheme ftp/],
    ['http://10.0.0.1:80', /loopback/],
    ['https://u:p@host', /user name or password/],
    ['https://host/?a=1', /query string/],
  ] as const) {
    const probs = problemsOf(() => validateProfile({ ...ok, endpoint: bad }, 'p'));
    t.equal(probs[0]!.path, 'p.endpoint');
    t.match(probs[0]!.message, re);
  }
});

t.test('passwords are refused in a profile mapping, without echoing them', async (t) => {
  const probs = problemsOf(() =>
    validateProfile({ certificate: '/c', privateKey: '/k', trustAnchorArn: TA, profileArn: PA, roleArn: ROLE, keyPassword: 'hunter2' }, 'profiles.x'),
  );
  t.equal(probs[0]!.path, 'profiles.x.keyPassword');
  t.match(probs[0]!.message, /passwords are not allowed.*keyPasswordFile/);
  t.notMatch(JSON.stringify(probs), 'hunter2');
});

t.test('bad environment booleans and duration', async (t) => {
  const probs = problemsOf(() => profileFromFlags(flags(base), { ROLESANYWHERE_NO_VERIFY_SSL: 'sure', ROLESANYWHERE_SESSION_DURATION: '1h' }, {}));
  const byPath = Object.fromEntries(probs.map((p) => [p.path, p.message]));
  t.match(byPath['ROLESANYWHERE_NO_VERIFY_SSL'], /expected true or false/);
  t.match(byPath['ROLESANYWHERE_SESSION_DURATION'], /900 to 43200/);
});

t.test('--without-proxy and tilde paths', async (t) => {
  const p = profileFromFlags(flags([...base.map((a) => (a === 'c.pem' ? '~/certs/c.pem' : a)), '--without-proxy']), { HOME: '/home/u' }, {});
  t.equal(p.withProxy, false);
  t.equal(p.certificate, '/home/u/certs/c.pem');
  t.equal(profileFromFlags(flags([...base, '--with-proxy']), {}, {}).withProxy, true);
});

t.test('assumeRole: hops validated with field paths; one hop from flags', async (t) => {
  const ok = { certificate: '/c', privateKey: '/k', trustAnchorArn: TA, profileArn: PA, roleArn: ROLE };
  const hops = [
    { roleArn: 'arn:aws:iam::210987654321:role/Deploy', externalId: 'ext-7', roleSessionName: 'ci-deploy', durationSeconds: 3600 },
    { roleArn: 'arn:aws:iam::345678901234:role/path/Audit' },
  ];
  t.same(validateProfile({ ...ok, assumeRole: hops }, 'profiles.a').assumeRole, hops);
  t.same(validateProfile({ ...ok, assumeRole: [] }, 'profiles.a').assumeRole, [], 'an empty list: no chain');
  t.same(validateProfile(ok, 'profiles.a', { assumeRole: hops.slice(1) }).assumeRole, hops.slice(1), 'inherited from the top level');
  t.same(validateProfile({ ...ok, assumeRole: [] }, 'profiles.a', { assumeRole: hops }).assumeRole, [], 'a profile overrides the inherited chain');

  const bad = byPathOf(() =>
    validateProfile(
      {
        ...ok,
        assumeRole: [
          { roleArn: 'arn:aws:iam::2109:role/Deploy', externalId: 'x', roleSessionName: 'has space', durationSeconds: 899, policy: '{}' },
          { externalId: 'a'.repeat(1225) },
          'arn:aws:iam::345678901234:role/Audit',
          { roleArn: 'arn:aws:iam::345678901234:role/Audit', durationSeconds: 43201, externalId: 'ok/with:colon' },
        ],
      },
      'profiles.a',
    ),
  );
  t.match(bad['profiles.a.assumeRole[0].roleArn'], /not an IAM role ARN .*12 digits/);
  t.match(bad['profiles.a.assumeRole[0].externalId'], /must be 2-1224 characters of letters, digits and _\+=,\.@:\/-/);
  t.match(bad['profiles.a.assumeRole[0].roleSessionName'], /2-64 characters/);
  t.match(bad['profiles.a.assumeRole[0].durationSeconds'], /900 to 43200, got 899/);
  t.match(bad['profiles.a.assumeRole[0].policy'], /unknown key/);
  t.match(bad['profiles.a.assumeRole[1].roleArn'], /required: the IAM role to assume/);
  t.match(bad['profiles.a.assumeRole[1].externalId'], /2-1224/);
  t.match(bad['profiles.a.assumeRole[2]'], /expected a mapping \{ roleArn/);
  t.match(bad['profiles.a.assumeRole[3].durationSeconds'], /43201/);
  t.notOk(bad['profiles.a.assumeRole[3].externalId'], 'colons and slashes are allowed in an ExternalId');
  t.match(byPathOf(() => validateProfile({ ...ok, assumeRole: { roleArn: ROLE } }, 'profiles.a'))['profiles.a.assumeRole'], /expected a list of roles to assume in turn/);
  t.match(byPathOf(() => validateProfile({ ...ok, assumeRole: Array(11).fill({ roleArn: ROLE }) }, 'profiles.a'))['profiles.a.assumeRole'], /chain at most 10/);

  const p = profileFromFlags(flags([...base, '--assume-role-arn', 'arn:aws:iam::210987654321:role/Deploy', '--external-id', 'ext-7', '--sts-endpoint', 'http://127.0.0.1:9/']), {});
  t.same(p.assumeRole, [{ roleArn: 'arn:aws:iam::210987654321:role/Deploy', externalId: 'ext-7' }]);
  t.equal(p.stsEndpoint, 'http://127.0.0.1:9');
  const fromEnv = profileFromFlags(flags(base), { ROLESANYWHERE_ASSUME_ROLE_ARN: 'arn:aws:iam::210987654321:role/Deploy', AWS_ENDPOINT_URL_STS: 'https://sts.example.com' });
  t.same(fromEnv.assumeRole, [{ roleArn: 'arn:aws:iam::210987654321:role/Deploy' }]);
  t.equal(fromEnv.stsEndpoint, 'https://sts.example.com', 'AWS_ENDPOINT_URL_STS honoured');
  t.match(problemsOf(() => profileFromFlags(flags([...base, '--external-id', 'ext-7']), {}))[0], { path: '--external-id', message: /give --assume-role-arn ARN too/ });
  t.match(problemsOf(() => profileFromFlags(flags([...base, '--assume-role-arn', ROLE, '--sts-endpoint', 'http://sts.example.com']), {}))[0], { path: '--sts-endpoint', message: /plain http is allowed only for loopback hosts/ });
});

t.test('fips: only where the region has FIPS endpoints', async (t) => {
  const us = { certificate: '/c', privateKey: '/k', trustAnchorArn: TA.replace('eu-west-1', 'us-west-2'), profileArn: PA.replace('eu-west-1', 'us-west-2'), roleArn: ROLE, fips: true };
  t.equal(validateProfile(us, 'profiles.a').fips, true);
  const hop = [{ roleArn: 'arn:aws:iam::210987654321:role/Deploy' }];
  t.equal(validateProfile({ ...us, assumeRole: hop }, 'profiles.a').fips, true, 'us-west-2 has sts-fips too');
  const eu = { ...us, trustAnchorArn: TA, profileArn: PA };
  t.match(byPathOf(() => validateProfile(eu, 'profiles.a'))['profiles.a.fips'], /Roles Anywhere has no FIPS endpoint in eu-west-1 \(it has one in us-east-1, us-east-2, us-west-1, us-west-2, us-gov-east-1, us-gov-west-1\)/);
  t.equal(validateProfile({ ...eu, endpoint: 'https://ra.example.com' }, 'profiles.a').fips, true, 'an explicit endpoint is used as given');
  t.match(byPathOf(() => validateProfile({ ...eu, endpoint: 'https://ra.example.com', assumeRole: hop }, 'profiles.a'))['profiles.a.fips'], /STS has no FIPS endpoint in eu-west-1/);
  t.equal(validateProfile({ ...eu, endpoint: 'https://ra.example.com', stsEndpoint: 'https://sts.example.com', assumeRole: hop }, 'profiles.a').fips, true);
  t.match(problemsOf(() => profileFromFlags(flags([...base, '--fips']), {}))[0], { path: '--fips', message: /no FIPS endpoint in eu-west-1/ });
});

function byPathOf(fn: () => unknown): Record<string, string> {
  return Object.fromEntries(problemsOf(fn).map((p) => [p.path, p.message]));
}
