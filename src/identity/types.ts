import type { X509Certificate } from 'node:crypto';
import type { Signer } from './signer.js';

/** What a key source may need besides the spec itself. Sources add optional fields here. */
export interface KeySourceOptions {
  /** Password of an encrypted key file (or the key's auth value, for sources that have one). */
  password?: string;
  /** The TPM key's auth value is empty, even where the key file says otherwise (aws_signing_helper's --no-tpm-key-password). */
  noTpmKeyPassword?: boolean;
  /** PKCS#11 module (--pkcs11-lib); default: the URI's module-path, else p11-kit's proxy module. */
  pkcs11Lib?: string;
  /** Token PIN from --pkcs11-pin-file / ROLESANYWHERE_PKCS11_PIN (a PIN in the URI wins). Secret. */
  pkcs11Pin?: string;
  /** Where pkcs11Pin came from, for messages ("--pkcs11-pin-file /etc/ra/pin"); never the PIN. */
  pkcs11PinOrigin?: string;
  /** --reuse-pin: log in again with the PIN for keys that want it for every signature (CKA_ALWAYS_AUTHENTICATE). */
  reusePin?: boolean;
  /** The certificate the key must match, when already read (picks among several matching keys). */
  certificate?: X509Certificate;
}

/** A certificate held by a key source, and the spec + options of the private key next to it. */
export interface SourceCertificate {
  der: Buffer;
  keySpec: string;
  keyOptions: KeySourceOptions;
  /** Secret-free description for messages. */
  description: string;
}

export interface KeySource {
  readonly name: string;
  /** A URI scheme (`handle`, `pkcs11`) whose specs name a key in a device, not a file. */
  readonly scheme?: string;
  claims(spec: string): boolean;
  open(spec: string, options: KeySourceOptions): Promise<Signer>;
  /** Reads a certificate stored in the key source (`--certificate pkcs11:…`). */
  readCertificate?(spec: string, options: KeySourceOptions): Promise<SourceCertificate>;
  /** Every certificate the spec matches, with a URI naming each (`read-certificate-data`). */
  listCertificates?(spec: string, options: KeySourceOptions): Promise<{ der: Buffer; uri: string }[]>;
}

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
