// Shared by `check` and `sign-string`: the identity options (certificate, key,
// chain, key password, TPM and token settings) from flags and environment, with
// the same password and PIN sources and precedence as the profile commands.
import { flagOrEnv, passwordInput } from '../config/profile.js';
import { setting } from '../config/settings.js';
import type { Problem } from '../problems.js';
import type { IdentitySettings } from '../runtime/identity-source.js';
import type { FlagValues } from './profile-args.js';

/** IdentitySettings without the certificate (sign-string may have a token or TPM key alone). */
export type IdentityFlags = Omit<IdentitySettings, 'certificate'> & { certificate?: string };

/** The identity settings the flags (and their environment variables) give; problems are pushed, not thrown. */
export function identityFromFlags(values: FlagValues, env: NodeJS.ProcessEnv, problems: Problem[]): IdentityFlags {
  const text = (flag: string): string | undefined => (typeof values[flag] === 'string' ? (values[flag] as string) : undefined);
  const pw = passwordInput(values, env);
  problems.push(...pw.problems);
  const pkcs11Lib = flagOrEnv(setting('pkcs11Lib'), values, env, problems);
  const pinFile = flagOrEnv(setting('pkcs11PinFile'), values, env, problems);
  const settings: IdentityFlags = {};
  const certificate = text('certificate');
  const privateKey = text('private-key');
  const intermediates = text('intermediates');
  if (certificate) settings.certificate = certificate;
  if (privateKey) settings.privateKey = privateKey;
  if (intermediates) settings.intermediates = intermediates;
  if (pw.keyPasswordFile) settings.keyPasswordFile = pw.keyPasswordFile.value;
  if (pw.keyPassword !== undefined) settings.keyPassword = pw.keyPassword;
  if (values['no-tpm-key-password'] === true) settings.noTpmKeyPassword = true;
  if (values['reuse-pin'] === true) settings.reusePin = true;
  if (pkcs11Lib) settings.pkcs11Lib = String(pkcs11Lib.value);
  if (pinFile) settings.pkcs11PinFile = String(pinFile.value);
  return settings;
}
