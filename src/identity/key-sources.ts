// The key sources, registered in one place. Each source is one file under
// signers/ exporting { name, claims(spec), open(spec, options) }; the first
// source that claims a `--private-key` value opens it. "file" claims
// everything, so it is asked last. A source that can also hold the
// certificate (a PKCS#11 token) exports readCertificate for `--certificate`.
import type { Signer } from './signer.js';
import * as file from './signers/file.js';
import * as pkcs11 from './signers/pkcs11.js';
import * as tpm from './signers/tpm.js';
import type { IdentitySource, KeySource, KeySourceOptions } from './types.js';

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
