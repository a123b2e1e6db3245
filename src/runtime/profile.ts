// Glue from a validated ProfileConfig to what the Roles Anywhere client takes
// (the client itself knows nothing of config/). Shared by every command.
import type { ProfileConfig } from '../config/types.js';
import type { ClientOptions } from '../rolesanywhere/client.js';
import type { StsOptions } from '../rolesanywhere/sts.js';
import type { SessionParameters } from '../rolesanywhere/types.js';

export function sessionParametersFromProfile(profile: ProfileConfig): SessionParameters {
  const params: SessionParameters = {
    trustAnchorArn: profile.trustAnchorArn,
    profileArn: profile.profileArn,
    roleArn: profile.roleArn,
    durationSeconds: profile.sessionDuration,
  };
  if (profile.roleSessionName !== undefined) params.roleSessionName = profile.roleSessionName;
  return params;
}

export function clientOptionsFromProfile(profile: ProfileConfig, extra: Partial<ClientOptions> = {}): ClientOptions {
  const options: ClientOptions = {
    region: profile.region,
    noVerifySsl: profile.noVerifySsl,
    withProxy: profile.withProxy,
    ...extra,
  };
  if (profile.endpoint !== undefined) options.endpoint = profile.endpoint;
  if (profile.caBundle !== undefined) options.caBundle = profile.caBundle;
  if (profile.fips) options.fips = true;
  return options;
}

/** How to reach STS for the profile's assumeRole hops: the same connection settings, its STS endpoint. */
export function stsOptionsFromProfile(profile: ProfileConfig, extra: Partial<ClientOptions> = {}): StsOptions {
  const { endpoint: _endpoint, region: _region, ...rest } = clientOptionsFromProfile(profile, extra);
  const options: StsOptions = { ...rest, region: profile.region };
  if (profile.stsEndpoint !== undefined) options.stsEndpoint = profile.stsEndpoint;
  return options;
}

/** The role the profile's credentials are for: the last assumeRole hop's, else the Roles Anywhere role. */
export function servedRoleArn(profile: ProfileConfig): string {
  return profile.assumeRole?.at(-1)?.roleArn ?? profile.roleArn;
}

/** The loud warning printed whenever TLS verification is off. */
export const NO_VERIFY_SSL_WARNING =
  'WARNING: --no-verify-ssl is set: the Roles Anywhere endpoint\'s TLS certificate is NOT verified, ' +
  'so anyone on the network path can impersonate it and read the issued AWS credentials. Use only for testing; prefer --ca-bundle FILE.';
