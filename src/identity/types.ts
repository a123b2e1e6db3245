import type { X509Certificate } from 'node:crypto';
import type { KeySourceOptions } from './key-sources.js';
import type { Signer } from './signer.js';

/** What to load: the paths and password sources a user gave. */
export interface IdentitySource extends Pick<KeySourceOptions, 'pkcs11Lib' | 'pkcs11Pin' | 'pkcs11PinOrigin' | 'reusePin' | 'noTpmKeyPassword'> {
  /**
   * PEM certificate (leaf first, extra CERTIFICATE blocks are the chain), a PKCS#12 (.p12/.pfx) bundle,
   * or a `pkcs11:` URI of a certificate on a token.
   */
  certificate: string;
  /**
   * PEM/DER private key file, or a key source's spec (`pkcs11:…;type=private`, `handle:0x81000001`, a TSS2 PEM TPM key file). Omitted when `certificate`
   * is a PKCS#12 bundle, or a token certificate whose key is found by its ID.
   */
  privateKey?: string;
  /** PEM bundle of intermediate CA certificates. */
  intermediates?: string;
  /** Password for an encrypted key or PKCS#12 bundle (or a TPM key's auth value). */
  password?: string;
}

export type { KeyAlgorithm, Signer, SigningAlgorithm } from './signer.js';

/** A loaded, validated signing identity. Immutable once built. */
export interface Identity {
  /** Leaf certificate. */
  certificate: X509Certificate;
  /** Leaf certificate DER. */
  certificateDer: Buffer;
  /** Intermediate CA certificates, nearest the leaf first (as sent in X-Amz-X509-Chain). */
  chain: X509Certificate[];
  /** Signs with the private key, wherever it lives (file, token, TPM); its public key matches the certificate. */
  signer: Signer;
  /** Leaf serial number in decimal, as the service expects in the Credential field. */
  serialDecimal: string;
  /** Files it was loaded from (for messages). */
  source: IdentitySource;
  /** Warnings found while loading (e.g. certificate expires soon); never secrets. */
  warnings: string[];
}
