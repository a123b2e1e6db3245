// The token PIN: where it comes from, and logging in without ever spending a refused PIN twice.
import { createHash, randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { UserError } from '../../../errors.js';
import { readPasswordFile } from '../../files.js';
import { redactPkcs11Uri, type Pkcs11Uri } from '../../pkcs11-uri.js';
import type { KeySourceOptions } from '../../types.js';
import { type Handle, type TokenInfo, ck, ckr } from './binding.js';
import { Module } from './module.js';
import { type Found } from './objects.js';

type Pkcs11Options = KeySourceOptions;
export interface Pin {
  value: string;
  /** Where it came from, for messages. */
  origin: string;
}

/** The PIN: the URI's pin-value, else its pin-source file, else the option (--pkcs11-pin-file / ROLESANYWHERE_PKCS11_PIN). */
export async function resolvePin(uri: Pkcs11Uri, spec: string, options: Pkcs11Options): Promise<Pin | undefined> {
  if (uri.pinValue !== undefined && uri.pinSource !== undefined) {
    throw new UserError(`${redactPkcs11Uri(spec)}: give either pin-value or pin-source, not both`, { reason: 'pkcs11_uri' });
  }
  if (uri.pinValue !== undefined) return { value: uri.pinValue, origin: 'pin-value in the URI' };
  if (uri.pinSource !== undefined) {
    let path = uri.pinSource;
    if (/^file:/i.test(path)) {
      try {
        path = fileURLToPath(/^file:\/\//i.test(path) ? path : `file://${path.slice(5)}`);
      } catch {
        throw new UserError(`${redactPkcs11Uri(spec)}: pin-source ${uri.pinSource} is not a file: URI or an absolute path`, { reason: 'pkcs11_uri' });
      }
    }
    if (!path.startsWith('/')) {
      throw new UserError(`${redactPkcs11Uri(spec)}: pin-source must be an absolute path or a file: URI, got ${uri.pinSource}`, { reason: 'pkcs11_uri' });
    }
    return { value: await readPasswordFile(path, 'pin-source'), origin: `pin-source ${path}` };
  }
  if (options.pkcs11Pin !== undefined) return { value: options.pkcs11Pin, origin: options.pkcs11PinOrigin ?? 'the configured PIN' };
  return undefined;
}

export const PIN_FIX = 'give it with --pkcs11-pin-file FILE, ROLESANYWHERE_PKCS11_PIN, or pin-source=FILE in the URI';

/** Refused PINs, remembered (salted hashes only) so no retry spends the token's remaining tries. */
const refusedPins = new Set<string>();
const pinSalt = randomBytes(16);
function pinKey(modulePath: string, token: TokenInfo, pin: string): string {
  return createHash('sha256').update(pinSalt).update(`${modulePath}\0${token.serialNumber}\0${token.label}\0`).update(pin, 'utf8').digest('hex');
}


/** Logs in with the PIN (once per token; "already logged in" is success). */
export function login(module: Module, found: Found, session: Handle, pin: Pin): void {
  const key = pinKey(module.path, found.token, pin.value);
  if (refusedPins.has(key)) {
    throw new UserError(`${found.name}: this PIN (from ${pin.origin}) was already refused by the token; not trying it again so the token does not lock — fix the PIN and restart or reload`, {
      reason: 'pkcs11_pin_incorrect',
    });
  }
  if (found.token.flags & ck('CKF_USER_PIN_LOCKED')) {
    throw new UserError(`${found.name}: the user PIN is locked after too many wrong PINs; unblock it with the token's PUK or SO PIN`, { reason: 'pkcs11_pin_locked' });
  }
  try {
    module.api.C_Login(session, ck('CKU_USER'), pin.value);
  } catch (err) {
    const code = ckr(err);
    if (code === 'CKR_USER_ALREADY_LOGGED_IN') return;
    if (code === 'CKR_PIN_INCORRECT') {
      refusedPins.add(key);
      throw new UserError(`${found.name}: login failed: wrong PIN (CKR_PIN_INCORRECT, from ${pin.origin}); fix the PIN — each wrong try counts toward locking the token`, {
        reason: 'pkcs11_pin_incorrect',
        cause: err,
      });
    }
    if (code === 'CKR_PIN_LOCKED') {
      throw new UserError(`${found.name}: login failed: the user PIN is locked (CKR_PIN_LOCKED); unblock it with the token's PUK or SO PIN`, {
        reason: 'pkcs11_pin_locked',
        cause: err,
      });
    }
    if (code === 'CKR_PIN_LEN_RANGE' || code === 'CKR_ARGUMENTS_BAD') {
      throw new UserError(`${found.name}: login failed: the PIN (from ${pin.origin}) has a length the token does not accept (${code})`, {
        reason: 'pkcs11_pin_incorrect',
        cause: err,
      });
    }
    throw new UserError(`${found.name}: login failed (${code ?? (err as Error).message.split('\n')[0]})`, { reason: 'pkcs11_login', cause: err });
  }
}

