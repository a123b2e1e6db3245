// Profile → identity source: the certificate, key and chain files and the key's
// password. The ONE place a password is resolved, for serve, update,
// credential-process and check alike (where it may come from, and which source
// wins, is decided by passwordInput in src/config/profile.ts).
import { PKCS11_PIN_ENV } from '../config/settings.js';
import type { ProfileConfig } from '../config/types.js';
import { readPasswordFile } from '../identity/files.js';
import { loadIdentity } from '../identity/load.js';
import { isPkcs11Uri } from '../identity/pkcs11-uri.js';
import type { Identity, IdentitySource } from '../identity/types.js';

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
