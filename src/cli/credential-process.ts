// `credential-process`: one CreateSession, printed in the AWS CLI/SDK
// credential_process format. Flag-compatible with
// `aws_signing_helper credential-process`.
import { usageFor } from '../config/command-line.js';
import { parseProfileArgs } from './profile-args.js';
import { obtainCredentials } from '../runtime/pipeline.js';
import { NO_VERIFY_SSL_WARNING } from '../runtime/profile.js';
import { isoSeconds } from '../timers.js';

export const summary = 'print temporary credentials once, for credential_process in ~/.aws/config';

const USAGE = `Usage: rolesanywhere-credentiald credential-process [options]

Obtains temporary AWS credentials from IAM Roles Anywhere once and prints them
on stdout in the credential_process format:
  {"Version":1,"AccessKeyId":…,"SecretAccessKey":…,"SessionToken":…,"Expiration":"YYYY-MM-DDTHH:MM:SSZ"}
Errors go to stderr (one line) with exit status 1 and nothing on stdout.

In ~/.aws/config:
  [profile ra]
  credential_process = rolesanywhere-credentiald credential-process --certificate /path/cert.pem --private-key /path/key.pem --trust-anchor-arn ARN --profile-arn ARN --role-arn ARN

${usageFor('credential-process')}
`;

export async function run(argv: string[]): Promise<number> {
  const parsed = parseProfileArgs(argv, 'credential-process');
  if (parsed.help || !parsed.profile) {
    process.stdout.write(USAGE);
    return 0;
  }
  const profile = parsed.profile;
  if (profile.noVerifySsl) process.stderr.write(`${NO_VERIFY_SSL_WARNING}\n`);
  const creds = await obtainCredentials(profile);
  const out = {
    Version: 1,
    AccessKeyId: creds.accessKeyId,
    SecretAccessKey: creds.secretAccessKey,
    SessionToken: creds.sessionToken,
    Expiration: isoSeconds(creds.expiration),
  };
  process.stdout.write(`${JSON.stringify(out)}\n`);
  return 0;
}
