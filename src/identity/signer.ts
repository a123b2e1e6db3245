// The one interface every key source implements (file keys, PKCS#11 tokens,
// TPM keys): a public key to match against the certificate and an async
// `sign` that returns exactly the signature bytes the service expects. The
// rest of the daemon never sees a private key, so a key that cannot leave its
// token is as usable as a file.
import { generateKeyPairSync, type KeyObject } from 'node:crypto';

export type SigningAlgorithm = 'AWS4-X509-RSA-SHA256' | 'AWS4-X509-ECDSA-SHA256' | 'AWS4-X509-MLDSA';
export type KeyAlgorithm = 'RSA' | 'EC' | 'ML-DSA';
/** The digest an RSA or ECDSA signature is made over (SigV4-X509 uses sha256; `sign-string --digest` the others too). */
export type SignDigest = 'sha256' | 'sha384' | 'sha512';
export const SIGN_DIGESTS: readonly SignDigest[] = ['sha256', 'sha384', 'sha512'];

export interface Signer {
  /** Key source: 'file' | 'pkcs11' | 'tpm'. */
  readonly kind: string;
  readonly keyAlgorithm: KeyAlgorithm;
  readonly algorithm: SigningAlgorithm;
  /** Matched against the certificate's public key, once, in identity/. */
  readonly publicKey: KeyObject;
  /**
   * Signs the string-to-sign bytes and returns exactly the signature bytes the
   * service expects: RSA PKCS#1 v1.5 over SHA-256; ECDSA DER SEQUENCE{r,s}
   * over SHA-256 (also for P-384); ML-DSA pure, empty context, no pre-hash.
   * `digest` (default sha256) picks another hash for RSA and ECDSA, as
   * aws_signing_helper's `sign-string --digest` does; ML-DSA ignores it.
   */
  sign(data: Buffer, digest?: SignDigest): Promise<Buffer>;
  /** Secret-free description for logs and `check` ("file /etc/ra/key.pem", "pkcs11 token=… object=…", "tpm handle 0x81000001"). */
  describe(): string;
  close?(): Promise<void>;
}

/** The SigV4-X509 algorithm name for each key algorithm (PROTOCOLS.md §1, §5). */
export const SIGNING_ALGORITHMS: Readonly<Record<KeyAlgorithm, SigningAlgorithm>> = {
  RSA: 'AWS4-X509-RSA-SHA256',
  EC: 'AWS4-X509-ECDSA-SHA256',
  'ML-DSA': 'AWS4-X509-MLDSA',
};

/** The key algorithm of a public or private key, or undefined for a type Roles Anywhere cannot use at all. */
export function keyAlgorithmOfKey(key: KeyObject): KeyAlgorithm | undefined {
  const type = key.asymmetricKeyType as string | undefined;
  if (type === 'rsa') return 'RSA';
  if (type === 'ec') return 'EC';
  if (type === 'ml-dsa-44' || type === 'ml-dsa-65' || type === 'ml-dsa-87') return 'ML-DSA';
  return undefined;
}

let mlDsaRuntime: string | undefined | null = null;
/**
 * Why this Node.js cannot use ML-DSA keys (Node added them in 24.7, on
 * OpenSSL 3.5), or undefined when it can. Checked once, lazily.
 */
export function mlDsaUnsupported(): string | undefined {
  if (mlDsaRuntime === null) {
    try {
      generateKeyPairSync('ml-dsa-44');
      mlDsaRuntime = undefined;
    } catch {
      mlDsaRuntime = `ML-DSA keys need Node.js 24.7 or later built with OpenSSL 3.5 (this is Node.js ${process.version} with OpenSSL ${process.versions.openssl ?? 'unknown'}); run the daemon with a newer Node.js`;
    }
  }
  return mlDsaRuntime;
}
