// Profile → identity source: the certificate, key and chain files and the key's
// password. The ONE place a password is resolved, for serve, update,
// credential-process and check alike (where it may come from, and which source
// wins, is decided by passwordInput in src/config/profile.ts).
import { PKCS11_PIN_ENV } from '../config/settings.js';
import type { ProfileConfig } from '../config/types.js';
import { readPasswordFile } from '../identity/files.js';
import { isPkcs11Uri } from '../identity/pkcs11-uri.js';
import type { IdentitySource } from '../identity/types.js';

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

/** The identity files and password of a profile (reads the password file, if any). */
export async function identitySourceFromProfile(settings: IdentitySettings): Promise<IdentitySource> {
  const source: IdentitySource = { certificate: settings.certificate };
  if (settings.privateKey !== undefined) source.privateKey = settings.privateKey;
  if (settings.intermediates !== undefined) source.intermediates = settings.intermediates;
  const password = await keyPassword(settings);
  if (password !== undefined) source.password = password;
  if (settings.noTpmKeyPassword) source.noTpmKeyPassword = true;
  if (settings.pkcs11Lib !== undefined) source.pkcs11Lib = settings.pkcs11Lib;
  if (settings.reusePin) source.reusePin = true;
  // Read only for a profile that uses a token, so a stray PIN setting never touches a file-key profile.
  if ([settings.certificate, settings.privateKey].some((s) => s !== undefined && isPkcs11Uri(s))) {
    const pin = await pkcs11Pin(settings);
    if (pin) {
      source.pkcs11Pin = pin.pin;
      source.pkcs11PinOrigin = pin.origin;
    }
  }
  return source;
}
