// `sign-string`: aws_signing_helper's key test. Signs the helper's fixed
// message with a key from any key source (file, PKCS#11 token, TPM) through
// the one signer interface, and prints the signature as the helper does.
// Contacts nothing.
import { createHash, type KeyObject } from 'node:crypto';
import { readSetting, settingOfFlag, type SIGN_STRING_FORMATS } from '../config/settings.js';
import { usageFor } from '../config/command-line.js';
import { UserError } from '../errors.js';
import { keyMatchesCertificate } from '../identity/keys.js';
import { openSigner, keySourceOptions } from '../identity/key-sources.js';
import { readIdentityMaterial } from '../identity/load.js';
import { keyAlgorithmOfKey, type SignDigest, type Signer } from '../identity/signer.js';
import { formatProblem, type Problem } from '../problems.js';
import { identitySourceFromProfile } from '../runtime/identity-source.js';
import { identityFromFlags } from './identity-args.js';
import { parseCommandFlags } from './profile-args.js';

export const summary = "sign aws_signing_helper's fixed test message with a key (checks that it signs; contacts nothing)";

const USAGE = `Usage: rolesanywhere-credentiald sign-string --private-key KEY [--certificate FILE] [options]

aws_signing_helper's sign-string: signs its fixed test message
  "AWS Roles Anywhere Credential Helper Signing Test" || "1" ||
  SHA256("IAM RA" || public key)
(the public key as PKCS#1 RSAPublicKey DER for RSA, the uncompressed point for
EC, nothing for ML-DSA) with the key and prints the signature on stdout, with
no newline, exactly as the helper does. RSA signatures are the same bytes as
the helper's; ECDSA and ML-DSA ones differ each time but verify the same way.
The key may be a file, a pkcs11: URI or a TPM key (a certificate on a token
brings its key). Contacts nothing.

${usageFor('sign-string')}
`;

export const SIGN_STRING_PREFIX = 'AWS Roles Anywhere Credential Helper Signing Test';
export const SIGN_STRING_VERSION = 1;

/** The public key bytes the helper hashes into its message: PKCS#1 RSAPublicKey DER, or the uncompressed EC point (0x04 ‖ X ‖ Y); none for ML-DSA. */
function publicKeyBytes(key: KeyObject): Buffer | undefined {
  const alg = keyAlgorithmOfKey(key);
  if (alg === 'RSA') return key.export({ type: 'pkcs1', format: 'der' });
  if (alg === 'EC') {
    const jwk = key.export({ format: 'jwk' });
    // JWK coordinates are the field size long (RFC 7518 §6.2.1.2), as the point encoding wants them.
    return Buffer.concat([Buffer.from([4]), Buffer.from(jwk.x!, 'base64url'), Buffer.from(jwk.y!, 'base64url')]);
  }
  return undefined;
}

/** The message aws_signing_helper's sign-string signs for this public key. */
export function signStringMessage(publicKey: KeyObject): Buffer {
  const bytes = publicKeyBytes(publicKey);
  const suffix = bytes ? createHash('sha256').update('IAM RA').update(bytes).digest() : Buffer.alloc(0);
  return Buffer.concat([Buffer.from(`${SIGN_STRING_PREFIX}${SIGN_STRING_VERSION}`), suffix]);
}

/** The signature as the helper prints it: hex in a JSON string, bare hex, or the bytes; never a newline. */
export function formatSignature(signature: Buffer, format: (typeof SIGN_STRING_FORMATS)[number]): Buffer {
  const hex = signature.toString('hex');
  if (format === 'bin') return signature;
  return Buffer.from(format === 'json' ? JSON.stringify(hex) : hex);
}

export async function run(argv: string[]): Promise<number> {
  const values = parseCommandFlags(argv, 'sign-string');
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const problems: Problem[] = [];
  const identity = identityFromFlags(values, process.env, problems);
  const digest = readSetting(settingOfFlag('digest')!, values.digest, '--digest', problems) as SignDigest | undefined;
  const format = readSetting(settingOfFlag('format')!, values.format, '--format', problems) as (typeof SIGN_STRING_FORMATS)[number] | undefined;
  if (problems.length > 0) throw new UserError(`sign-string: ${problems.map(formatProblem).join('; ')}`, { reason: 'invalid_flags' });
  if (!identity.privateKey && !identity.certificate) {
    throw new UserError('sign-string: give the key with --private-key (a key file, TSS2 TPM key file, handle:0x81… or pkcs11: URI), or --certificate with a PKCS#12 bundle or a pkcs11: URI of a certificate with its key', {
      reason: 'invalid_flags',
    });
  }

  let signer: Signer;
  const source = await identitySourceFromProfile({ ...identity, certificate: identity.certificate ?? '' });
  if (identity.certificate) {
    // As the helper: the certificate must be readable; the key signs whether or not it matches (a note says so).
    const material = await readIdentityMaterial(source, { requireKey: true });
    signer = material.signer!;
    if (!keyMatchesCertificate(signer.publicKey, material.leaf)) {
      process.stderr.write(`sign-string: note: the key (${signer.describe()}) does not match the certificate ${material.source.certificate}\n`);
    }
  } else {
    signer = await openSigner(source.privateKey!, keySourceOptions(source));
  }
  try {
    const signature = await signer.sign(signStringMessage(signer.publicKey), digest ?? 'sha256');
    process.stdout.write(formatSignature(signature, format ?? 'json'));
  } finally {
    await signer.close?.();
  }
  return 0;
}
