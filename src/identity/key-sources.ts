// The key sources, registered in one place. Each source is one file under
// signers/ exporting { name, claims(spec), open(spec, options) }; the first
// source that claims a `--private-key` value opens it. "file" claims
// everything, so it is asked last.
import type { Signer } from './signer.js';
import * as file from './signers/file.js';

/** What a key source may need besides the spec itself. Sources add optional fields here. */
export interface KeySourceOptions {
  /** Password of an encrypted key file (or the key's auth value, for sources that have one). */
  password?: string;
}

export interface KeySource {
  readonly name: string;
  claims(spec: string): boolean;
  open(spec: string, options: KeySourceOptions): Promise<Signer>;
}

/** Most specific first; "file" (claims every spec) last. */
export const KEY_SOURCES: readonly KeySource[] = [file];

export function keySourceFor(spec: string): KeySource {
  return KEY_SOURCES.find((s) => s.claims(spec)) ?? file;
}

/** Opens the signer a `--private-key` value names, through the source that claims it. */
export function openSigner(spec: string, options: KeySourceOptions = {}): Promise<Signer> {
  return keySourceFor(spec).open(spec, options);
}
