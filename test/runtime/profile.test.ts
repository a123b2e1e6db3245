// The glue from a validated profile to the clients: FIPS and the STS endpoint
// reach the Roles Anywhere and STS clients, and the served role is the chain's last.
import t from 'tap';
import { validateProfile } from '../../src/config/profile.js';
import { clientOptionsFromProfile, servedRoleArn, stsOptionsFromProfile } from '../../src/runtime/profile.js';
import { endpointFor, stsEndpointFor } from '../../src/rolesanywhere/endpoint.js';

const TA = 'arn:aws:rolesanywhere:us-gov-west-1:123456789012:trust-anchor/11111111-2222-3333-4444-555555555555';
const PA = 'arn:aws-us-gov:rolesanywhere:us-gov-west-1:123456789012:profile/66666666-7777-8888-9999-000000000000';
const base = {
  certificate: '/c',
  privateKey: '/k',
  trustAnchorArn: TA.replace('arn:aws:', 'arn:aws-us-gov:'),
  profileArn: PA,
  roleArn: 'arn:aws-us-gov:iam::123456789012:role/app',
};

t.test('fips reaches both clients; the served role is the last hop', async (t) => {
  const p = validateProfile({ ...base, fips: true, assumeRole: [{ roleArn: 'arn:aws-us-gov:iam::210987654321:role/Deploy' }] }, 'profiles.gov');
  const ra = clientOptionsFromProfile(p);
  t.equal(ra.fips, true);
  t.equal(endpointFor(ra.region!, { fips: ra.fips }), 'https://rolesanywhere-fips.us-gov-west-1.amazonaws.com');
  const sts = stsOptionsFromProfile(p);
  t.equal(sts.fips, true);
  t.equal(sts.region, 'us-gov-west-1');
  t.notOk('endpoint' in sts, "the Roles Anywhere endpoint is not STS's");
  t.equal(stsEndpointFor(sts.region, { fips: sts.fips }), 'https://sts.us-gov-west-1.amazonaws.com');
  t.equal(servedRoleArn(p), 'arn:aws-us-gov:iam::210987654321:role/Deploy');

  const plain = validateProfile({ ...base, endpoint: 'http://127.0.0.1:9', stsEndpoint: 'http://127.0.0.1:8' }, 'profiles.p');
  t.notOk(clientOptionsFromProfile(plain).fips);
  t.equal(clientOptionsFromProfile(plain).endpoint, 'http://127.0.0.1:9');
  t.equal(stsOptionsFromProfile(plain).stsEndpoint, 'http://127.0.0.1:8');
  t.equal(servedRoleArn(plain), base.roleArn, 'without a chain: the Roles Anywhere role');
});
