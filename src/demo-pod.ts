#!/usr/bin/env node
// One "pod" of `npm run demo -- --pod-identity`: an unmodified AWS SDK for
// JavaScript v3 client with no credentials of its own. The SDK's default chain
// finds them the way it does in an EKS pod: AWS_CONTAINER_CREDENTIALS_FULL_URI
// (the node agent) and AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE (this pod's own
// projected service-account token, re-read on every fetch); AWS_REGION and
// AWS_ENDPOINT_URL_STS point STS at the emulator. Prints one JSON line
// {"arn","accessKeyId"} on stdout, or one line on stderr and exit 1.
import { GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';

const sts = new STSClient({ maxAttempts: 2 });
try {
  const identity = await sts.send(new GetCallerIdentityCommand({}));
  const credentials = await sts.config.credentials();
  process.stdout.write(`${JSON.stringify({ arn: identity.Arn, accessKeyId: credentials.accessKeyId })}\n`);
} catch (err) {
  process.stderr.write(`${(err as Error).name}: ${(err as Error).message.split('\n')[0]}\n`);
  process.exitCode = 1;
} finally {
  sts.destroy();
}
