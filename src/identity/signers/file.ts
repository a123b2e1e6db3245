// Key source "file": a private key in a PEM or DER file (PKCS#1, PKCS#8,
// SEC1, encrypted PKCS#8 or traditional PEM), or a key found inside the
// certificate file or a PKCS#12 bundle. Signs with Node's crypto.
import { createPublicKey, sign as cryptoSign, type KeyObject } from 'node:crypto';
import { UserError } from '../../errors.js';
import { readInputFile } from '../files.js';
import { keyTypeProblem, parsePrivateKey } from '../keys.js';
import { keyAlgorithmOfKey, SIGNING_ALGORITHMS, type Signer } from '../signer.js';
import type { KeySourceOptions } from '../types.js';

/**
 * A key whose type Roles Anywhere cannot use at all (Ed25519, DSA, …): no
 * signer can be made, but `check` still reports on its public half.
 */
export class UnusableKeyError extends UserError {
  constructor(
    message: string,
    readonly publicKey: KeyObject,
  ) {
    super(message, { reason: 'key_type_unsupported' });
  }
}

/** Wraps an already parsed private key; `path` names where it came from (for messages only). */
export function fileSigner(privateKey: KeyObject, path: string): Signer {
  const publicKey = createPublicKey(privateKey);
  const keyAlgorithm = keyAlgorithmOfKey(publicKey);
  if (!keyAlgorithm) throw new UnusableKeyError(`${path}: ${keyTypeProblem(publicKey)}`, publicKey);
  // RSA: PKCS#1 v1.5 (Node's default for RSA keys). EC: DER SEQUENCE{r,s} (Node's
  // default dsaEncoding), SHA-256 also for P-384. ML-DSA: no digest argument —
  // pure ML-DSA over the bytes themselves with an empty context (FIPS 204).
  const pure = keyAlgorithm === 'ML-DSA';
  return {
    kind: 'file',
    keyAlgorithm,
    algorithm: SIGNING_ALGORITHMS[keyAlgorithm],
    publicKey,
    sign: async (data, digest = 'sha256') => cryptoSign(pure ? null : digest, data, privateKey),
    describe: () => `file ${path}`,
  };
}

export const name = 'file';

/** Every spec another source does not claim is a file path (the registry asks this source last). */
export function claims(_spec: string): boolean {
  return true;
}

export async function open(spec: string, options: KeySourceOptions = {}): Promise<Signer> {
  const data = await readInputFile(spec, 'private key');
  const key = parsePrivateKey(data, options.password === undefined ? { path: spec } : { path: spec, password: options.password });
  return fileSigner(key, spec);
}
