// Profile → identity source: the certificate, key and chain files and the key's
// password. The ONE place a password is resolved, for serve, update,
// credential-process and check alike (where it may come from, and which source
// wins, is decided by passwordInput in src/config/profile.ts).
import { hash } from 'node:crypto';
import { PKCS11_PIN_ENV } from '../config/settings.js';
import type { ProfileConfig } from '../config/types.js';
import { readPasswordFile } from '../identity/files.js';
import { certificateSourceFor, keySourceFor } from '../identity/key-sources.js';
import { loadIdentity } from '../identity/load.js';
import { isPkcs11Uri } from '../identity/pkcs11-uri.js';
import type { Identity, IdentitySource } from '../identity/types.js';
import { hashIdentityFiles } from '../identity/watch.js';

/** The identity part of a profile (what `check` has without ARNs). */
export type IdentitySettings = Pick<ProfileConfig, 'certificate' | 'privateKey' | 'intermediates' | 'keyPasswordFile' | 'keyPassword' | 'noTpmKeyPassword'> &
  Partial<Pick<ProfileConfig, 'pkcs11Lib' | 'pkcs11PinFile' | 'reusePin'>>;

/**
 * The token PIN for pkcs11: URIs without their own: the PIN file's contents
 * (one trailing newline dropped), else ROLESANYWHERE_PKCS11_PIN (empty counts
 * as unset), else none. Never prompted for. Returns where it came from, for messages.
 */
export async function pkcs11Pin(settings: IdentitySettings, env: NodeJS.ProcessEnv = process.env): Promise<{ pin: string; origin: string } | undefined> {
  if (settings.pkcs11PinFile !== undefined) {
    return { pin: await readPasswordFile(settings.pkcs11PinFile, 'PIN file'), origin: `PIN file ${settings.pkcs11PinFile}` };
  }
  const v = env[PKCS11_PIN_ENV];
  return v === undefined || v === '' ? undefined : { pin: v, origin: PKCS11_PIN_ENV };
}

/** The key's password: the password file's contents (one trailing newline dropped), else the password given, else none. */
export async function keyPassword(settings: IdentitySettings): Promise<string | undefined> {
  if (settings.keyPasswordFile !== undefined) return readPasswordFile(settings.keyPasswordFile);
  return settings.keyPassword;
}

/** The secrets of a profile's identity, read now: the key password and, for a token key, the PIN. */
async function addSecrets(source: IdentitySource, settings: IdentitySettings): Promise<IdentitySource> {
  const out: IdentitySource = { ...source };
  delete out.password;
  delete out.pkcs11Pin;
  delete out.pkcs11PinOrigin;
  const password = await keyPassword(settings);
  if (password !== undefined) out.password = password;
  // Read only for a profile that uses a token, so a stray PIN setting never touches a file-key profile.
  if ([out.certificate, out.privateKey].some((s) => s !== undefined && isPkcs11Uri(s))) {
    const pin = await pkcs11Pin(settings);
    if (pin) {
      out.pkcs11Pin = pin.pin;
      out.pkcs11PinOrigin = pin.origin;
    }
  }
  return out;
}

/** The identity files, password and PIN of a profile (reads the password and PIN files, if any). */
export function identitySourceFromProfile(settings: IdentitySettings): Promise<IdentitySource> {
  return addSecrets(identityFiles(settings), settings);
}

/** The identity files (and key-source settings) of a profile, without secrets (what the certificate watcher watches). */
export function identityFiles(settings: IdentitySettings): IdentitySource {
  const source: IdentitySource = { certificate: settings.certificate };
  if (settings.privateKey !== undefined) source.privateKey = settings.privateKey;
  if (settings.intermediates !== undefined) source.intermediates = settings.intermediates;
  if (settings.noTpmKeyPassword) source.noTpmKeyPassword = true;
  if (settings.pkcs11Lib !== undefined) source.pkcs11Lib = settings.pkcs11Lib;
  if (settings.reusePin) source.reusePin = true;
  return source;
}

/** Files whose change means the identity must be reloaded, besides the certificate, key and chain. */
export function secretFiles(settings: IdentitySettings): string[] {
  return [settings.keyPasswordFile, settings.pkcs11PinFile].filter((f): f is string => f !== undefined);
}

/**
 * Loads a profile's identity from `files` (default: the profile's own; the
 * watcher passes what it watches), with the password and PIN read now, so a
 * changed password or PIN file takes effect with the rotated key.
 */
export async function loadProfileIdentity(profile: IdentitySettings & { expiryWarningDays: number }, files: IdentitySource = identityFiles(profile)): Promise<Identity> {
  return loadIdentity(await addSecrets(files, profile), { expiryWarningDays: profile.expiryWarningDays });
}

/**
 * Loaded identities shared between the profiles of one daemon that load the same
 * files with the same password (many profiles on one certificate — the node-agent
 * case): one certificate object and key object instead of one per profile (~27 KB of
 * native memory each; docs/benchmarks.md). An identity is reused only while the
 * files it was loaded from hold the same bytes (the watcher's content hash), so a
 * rotated file — or a Kubernetes `..data` swap — is loaded afresh, by the first
 * profile whose watcher sees it. Only file keys are shared: a token or TPM signer holds a session
 * that its own profile closes when it rotates. Identities are immutable; entries
 * are held weakly, so an identity no profile uses any more is collected.
 */
export class SharedIdentities {
  private readonly entries = new Map<string, { stamp: string; identity: Promise<Identity> | WeakRef<Identity> }>();

  /** `loadProfileIdentity`, answered from the shared entry when it is still current. */
  async load(profile: IdentitySettings & { expiryWarningDays: number }, files: IdentitySource = identityFiles(profile)): Promise<Identity> {
    const source = await addSecrets(files, profile);
    const options = { expiryWarningDays: profile.expiryWarningDays };
    if (!fileKeyed(source)) return loadIdentity(source, options);
    // Hashed: the password is part of what makes two sources the same, and a key is no place to keep it.
    const key = hash('sha256', JSON.stringify([source.certificate, source.privateKey ?? null, source.intermediates ?? null, source.password ?? null, options.expiryWarningDays]));
    const stamp = await hashIdentityFiles(source);
    const entry = this.entries.get(key);
    if (entry !== undefined && entry.stamp === stamp) {
      const held = entry.identity instanceof WeakRef ? entry.identity.deref() : entry.identity;
      if (held !== undefined) return held;
    }
    // The stamp is taken before loading: a file that changes meanwhile makes the next caller load again.
    const loading = loadIdentity(source, options);
    const fresh = { stamp, identity: loading as Promise<Identity> | WeakRef<Identity> };
    this.entries.set(key, fresh);
    try {
      const identity = await loading;
      if (this.entries.get(key) === fresh) fresh.identity = new WeakRef(identity);
      return identity;
    } catch (err) {
      if (this.entries.get(key) === fresh) this.entries.delete(key);
      throw err;
    }
  }
}

/** A certificate file with a key file (or a PKCS#12 bundle): what SharedIdentities may share. */
function fileKeyed(source: IdentitySource): boolean {
  if (certificateSourceFor(source.certificate) !== undefined) return false;
  return source.privateKey === undefined || keySourceFor(source.privateKey).name === 'file';
}
