import t from 'tap';
import { parseProfileArn, parseRoleArn, parseTrustAnchorArn } from '../../src/rolesanywhere/arn.js';
import { endpointFor,
  stsEndpointFor, parseEndpoint, resolveRegion, validateSessionParameters } from '../../src/rolesanywhere/endpoint.js';
import { isLoopbackHostname as isLoopbackHost } from '../../src/net/loopback.js';
import { matchesNoProxy, parseProxyUrl, proxyFor } from '../../src/rolesanywhere/transport.js';
import { UserError } from '../../src/errors.js';

const TA = 'arn:aws:rolesanywhere:eu-central-1:123456789012:trust-anchor/0d3f2c1a-8b7e-4c5d-9a6f-112233445566';
const PR = 'arn:aws:rolesanywhere:eu-central-1:123456789012:profile/7e6d5c4b-3a29-4817-a6b5-c4d3e2f1a0b9';
const ROLE = 'arn:aws:iam::123456789012:role/path/to/my-role';

t.test('ARN parsing', async (t) => {
  t.match(parseTrustAnchorArn(TA), { partition: 'aws', region: 'eu-central-1', accountId: '123456789012', kind: 'trust-anchor', id: '0d3f2c1a-8b7e-4c5d-9a6f-112233445566' });
  t.match(parseProfileArn(PR), { kind: 'profile' });
  t.match(parseRoleArn(ROLE), { accountId: '123456789012', name: 'my-role' });
  t.match(parseTrustAnchorArn('arn:aws-cn:rolesanywhere:cn-north-1:123456789012:trust-anchor/0d3f2c1a-8b7e-4c5d-9a6f-112233445566'), { partition: 'aws-cn' });
  t.match(parseRoleArn('arn:aws-us-gov:iam::123456789012:role/r'), { partition: 'aws-us-gov' });
  const bad: [() => unknown, RegExp][] = [
    [() => parseTrustAnchorArn('nope'), /--trust-anchor-arn "nope" is not a Roles Anywhere trust-anchor ARN \(not an ARN\): expected arn:aws:rolesanywhere:<region>:<account-id>:trust-anchor\/<id>/],
    [() => parseTrustAnchorArn(PR), /this is a profile ARN — check which flag/],
    [() => parseTrustAnchorArn(TA.replace('123456789012', '1234')), /account ID must be 12 digits/],
    [() => parseTrustAnchorArn(TA.replace('0d3f2c1a-', '0d3f2c1a_')), /the ID must be letters, digits and dashes/],
    [() => parseTrustAnchorArn(TA.replace('arn:aws:', 'arn:aws-cn:')), /region eu-central-1 is not in partition aws-cn/],
    [() => parseProfileArn(ROLE), /this is an IAM ARN — did you swap/],
    [() => parseRoleArn(PR), /this is a Roles Anywhere ARN — did you swap/],
    [() => parseRoleArn('arn:aws:iam::123456789012:user/bob'), /role\/<optional path\/>name/],
    [() => parseRoleArn('arn:aws:iam:us-east-1:123456789012:role/r'), /IAM ARNs have no region/],
  ];
  for (const [fn, re] of bad) t.throws(fn, { message: re, reason: 'invalid_arn' });
});

t.test('region resolution', async (t) => {
  t.equal(resolveRegion(TA, PR), 'eu-central-1');
  t.equal(resolveRegion(TA, PR, 'eu-central-1'), 'eu-central-1');
  t.throws(() => resolveRegion(TA, PR.replace('eu-central-1', 'us-east-1')), { message: /trust anchor is in eu-central-1 but the profile is in us-east-1/, reason: 'region_mismatch' });
  t.throws(() => resolveRegion(TA, PR, 'us-east-1'), { message: /--region us-east-1 differs from the trust anchor's region eu-central-1/ });
  t.throws(() => resolveRegion(TA, PR, 'Frankfurt'), { message: /--region "Frankfurt" is not an AWS region name/ });
  t.throws(() => resolveRegion(TA, PR.replace('123456789012', '210987654321')), { message: /account 123456789012 but the profile to account 210987654321/ });
  t.equal(validateSessionParameters({ trustAnchorArn: TA, profileArn: PR, roleArn: ROLE, durationSeconds: 43200, roleSessionName: 'ci.job-42@x' }), 'eu-central-1');
  t.throws(() => validateSessionParameters({ trustAnchorArn: TA, profileArn: PR, roleArn: ROLE, durationSeconds: 43201 }), /out of range/);
  t.throws(() => validateSessionParameters({ trustAnchorArn: TA, profileArn: PR, roleArn: ROLE, roleSessionName: 'has space' }), /--role-session-name/);
  t.throws(() => validateSessionParameters({ trustAnchorArn: TA, profileArn: PR, roleArn: 'arn:aws-cn:iam::123456789012:role/r' }), /partition aws-cn/);
});

t.test('endpoints', async (t) => {
  t.equal(endpointFor('us-east-1'), 'https://rolesanywhere.us-east-1.amazonaws.com');
  t.equal(endpointFor('us-gov-west-1', { fips: true }), 'https://rolesanywhere-fips.us-gov-west-1.amazonaws.com');
  t.equal(endpointFor('cn-northwest-1'), 'https://rolesanywhere.cn-northwest-1.amazonaws.com.cn');
  t.equal(endpointFor('us-east-2', { fips: true }), 'https://rolesanywhere-fips.us-east-2.amazonaws.com');
  t.throws(() => endpointFor('ca-central-1', { fips: true }), { message: /Roles Anywhere has no FIPS endpoint in ca-central-1 \(it has one in us-east-1, .*us-gov-west-1\): drop fips/, reason: 'no_fips_endpoint' });
  t.throws(() => endpointFor('eu-west-1', { fips: true }), { reason: 'no_fips_endpoint' });
  t.equal(stsEndpointFor('eu-west-1'), 'https://sts.eu-west-1.amazonaws.com');
  t.equal(stsEndpointFor('cn-north-1'), 'https://sts.cn-north-1.amazonaws.com.cn');
  t.equal(stsEndpointFor('us-west-2', { fips: true }), 'https://sts-fips.us-west-2.amazonaws.com');
  t.equal(stsEndpointFor('us-gov-west-1', { fips: true }), 'https://sts.us-gov-west-1.amazonaws.com', "GovCloud's STS endpoint is its FIPS endpoint");
  t.throws(() => stsEndpointFor('ca-central-1', { fips: true }), { message: /STS has no FIPS endpoint in ca-central-1.*stsEndpoint \(--sts-endpoint\)/ });
  for (const ok of ['https://anything.example.com', 'http://127.0.0.1:8080', 'http://127.9.9.9', 'http://[::1]:80', 'http://localhost:1']) {
    t.type(parseEndpoint(ok), URL, ok);
  }
  for (const [bad, re] of [
    ['http://10.0.0.1', /plain http to a host that is not loopback/],
    ['http://169.254.169.254', /plain http/],
    ['http://localhost.example.com', /plain http/],
    ['ftp://x', /^--endpoint: unsupported scheme ftp: the endpoint must be an https:\/\/ URL$/],
    ['https://u:p@x', /user name or password/],
    ['https://x/?a=1', /query string/],
    ['not a url', /is not a URL/],
  ] as const) {
    t.throws(() => parseEndpoint(bad), { message: re }, bad);
  }
  // A value that is not a URL is echoed, but never a user:password@ part of it.
  for (const bad of ['https://user:s3cr3t@exa mple.com', 'https://user:s3cr3t@host:99999/x']) {
    let message = '';
    try {
      parseEndpoint(bad, 'endpoint');
    } catch (err) {
      message = (err as Error).message;
    }
    t.match(message, /^endpoint: "…@host.* is not a URL: give e\.g\. https:|^endpoint: "…@exa mple\.com" is not a URL/, bad);
    t.notMatch(message, /s3cr3t|user/, `${bad}: no credentials in the message`);
  }
  t.ok(isLoopbackHost('[::ffff:127.0.0.1]'));
  t.notOk(isLoopbackHost('::ffff:10.0.0.1'));
});

t.test('NO_PROXY matching and proxy selection', async (t) => {
  const cases: [string, string, number, boolean][] = [
    ['*', 'anything.example', 443, true],
    ['example.com', 'example.com', 443, true],
    ['example.com', 'ra.example.com', 443, true],
    ['example.com', 'notexample.com', 443, false],
    ['.example.com', 'ra.example.com', 443, true],
    ['*.example.com', 'ra.example.com', 443, true],
    ['example.com:8443', 'example.com', 443, false],
    ['example.com:8443', 'example.com', 8443, true],
    ['10.0.0.0/8', '10.1.2.3', 443, true],
    ['10.0.0.0/8', '11.1.2.3', 443, false],
    ['10.0.0.0/8', 'example.com', 443, false],
    ['fd00::/8', '[fd00::1]', 443, true],
    ['[::1]:443', '::1', 443, true],
    ['192.168.1.1', '192.168.1.1', 443, true],
    ['a.com, b.com  c.com', 'c.com', 443, true],
    ['', 'x.com', 443, false],
  ];
  for (const [np, host, port, want] of cases) t.equal(matchesNoProxy(np, host, port), want, `NO_PROXY=${JSON.stringify(np)} ${host}:${port}`);

  const target = new URL('https://rolesanywhere.us-east-1.amazonaws.com');
  t.equal(proxyFor(target, {}), undefined);
  t.equal(proxyFor(target, { HTTPS_PROXY: 'http://proxy:3128' })?.host, 'proxy:3128');
  t.equal(proxyFor(target, { https_proxy: 'proxy:3128' })?.href, 'http://proxy:3128/');
  t.equal(proxyFor(target, { HTTPS_PROXY: 'http://proxy:3128', no_proxy: 'amazonaws.com' }), undefined);
  t.equal(proxyFor(new URL('https://127.0.0.1:9000'), { HTTPS_PROXY: 'http://proxy:3128' }), undefined, 'loopback never proxied');
  t.equal(proxyFor(new URL('http://127.0.0.1:9000'), { HTTPS_PROXY: 'http://proxy:3128' }), undefined);
  t.throws(() => parseProxyUrl('socks5://x:1'), UserError);
  t.throws(() => parseProxyUrl('http://'), UserError);
});
