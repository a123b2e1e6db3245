// The key sources, registered in one place. Each source is one file under
// signers/ exporting { name, claims(spec), open(spec, options) }; the first
// source that claims a `--private-key` value opens it. "file" claims
// everything, so it is asked last. A source that can also hold the
// certificate (a PKCS#11 token) exports readCertificate for `--certificate`.
import type { X509Certificate } from 'node:crypto';
import type { Signer } from './signer.js';
import * as file from './signers/file.js';
import * as pkcs11 from './signers/pkcs11.js';
import * as tpm from './signers/tpm.js';
import type { IdentitySource } from './types.js';

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

/** Most specific first; "file" (claims every spec) last. */
export const KEY_SOURCES: readonly KeySource[] = [pkcs11, tpm, file];

/** The key source holding a `--certificate` value, or undefined for a certificate file. */
export function certificateSourceFor(spec: string): KeySource | undefined {
  return KEY_SOURCES.find((s) => s.readCertificate && s.claims(spec));
}

/** The key-source options an identity source carries (everything but the specs themselves). */
export function keySourceOptions(source: IdentitySource): KeySourceOptions {
  const o: KeySourceOptions = {};
  if (source.password !== undefined) o.password = source.password;
  if (source.noTpmKeyPassword) o.noTpmKeyPassword = true;
  if (source.pkcs11Lib !== undefined) o.pkcs11Lib = source.pkcs11Lib;
  if (source.pkcs11Pin !== undefined) o.pkcs11Pin = source.pkcs11Pin;
  if (source.pkcs11PinOrigin !== undefined) o.pkcs11PinOrigin = source.pkcs11PinOrigin;
  if (source.reusePin !== undefined) o.reusePin = source.reusePin;
  return o;
}

export function keySourceFor(spec: string): KeySource {
  return KEY_SOURCES.find((s) => s.claims(spec)) ?? file;
}

/** Whether a `--private-key` value is a file path (to resolve, read and watch) rather than a device key's URI. */
export function isKeyFile(spec: string): boolean {
  const lower = spec.toLowerCase();
  return !KEY_SOURCES.some((s) => s.scheme !== undefined && lower.startsWith(`${s.scheme}:`));
}

/** Opens the signer a `--private-key` value names, through the source that claims it. */
export function openSigner(spec: string, options: KeySourceOptions = {}): Promise<Signer> {
  return keySourceFor(spec).open(spec, options);
}
