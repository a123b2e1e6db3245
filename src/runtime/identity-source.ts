// Profile → identity source: the certificate, key and chain files and the key's
// password. The ONE place a password is resolved, for serve, update,
// credential-process and check alike (where it may come from, and which source
// wins, is decided by passwordInput in src/config/profile.ts).
import type { ProfileConfig } from '../config/types.js';
import { readPasswordFile } from '../identity/files.js';
import type { IdentitySource } from '../identity/types.js';

/** The identity part of a profile (what `check` has without ARNs). */
export type IdentitySettings = Pick<ProfileConfig, 'certificate' | 'privateKey' | 'intermediates' | 'keyPasswordFile' | 'keyPassword' | 'noTpmKeyPassword'>;

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
  return source;
}
