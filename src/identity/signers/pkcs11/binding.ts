// The parts of pkcs11js we use, loaded on first use: types for its API (so the build does not need the optional
// package; handles are the module's CK_ULONG bytes), its CK_* constants and its CKR_* error codes.
import { createRequire } from 'node:module';
import { isSea } from 'node:sea';
import { UserError } from '../../../errors.js';


export type Handle = Buffer;
export interface Attribute {
  type: number;
  value?: number | boolean | string | Buffer;
}
export interface TokenInfo {
  label: string;
  manufacturerID: string;
  model: string;
  serialNumber: string;
  flags: number;
}
interface SlotInfo {
  slotDescription: string;
  manufacturerID: string;
}
interface ModuleInfo {
  manufacturerID: string;
  libraryDescription: string;
  libraryVersion: { major: number; minor: number };
}
export interface Pkcs11Api {
  load(path: string): void;
  close(): void;
  C_Initialize(options?: { flags?: number }): void;
  C_Finalize(): void;
  C_GetInfo(): ModuleInfo;
  C_GetSlotList(tokenPresent?: boolean): Handle[];
  C_GetSlotInfo(slot: Handle): SlotInfo;
  C_GetTokenInfo(slot: Handle): TokenInfo;
  C_GetMechanismList(slot: Handle): number[];
  C_OpenSession(slot: Handle, flags: number): Handle;
  C_CloseSession(session: Handle): void;
  C_Login(session: Handle, userType: number, pin?: string): void;
  C_FindObjectsInit(session: Handle, template: Attribute[]): void;
  C_FindObjects(session: Handle, max: number): Handle[];
  C_FindObjectsFinal(session: Handle): void;
  C_GetAttributeValue(session: Handle, object: Handle, template: Attribute[]): Attribute[];
  C_SignInit(session: Handle, mechanism: { mechanism: number }, key: Handle): void;
  C_SignAsync(session: Handle, data: Buffer, out: Buffer): Promise<Buffer>;
}
interface Pkcs11Binding {
  PKCS11: new () => Pkcs11Api;
  [constant: string]: unknown;
}

let binding: Pkcs11Binding | undefined;

/** Loads pkcs11js on first use: file keys never need it (or a compiler to build it). */
export function loadBinding(): Pkcs11Binding {
  if (binding) return binding;
  if (isSea()) {
    throw new UserError(
      'PKCS#11 keys are not available in the single-file executable: it cannot load the native module pkcs11js. ' +
        'For PKCS#11 keys install the npm package instead (README, "Install"); file keys work in the executable.',
      { reason: 'pkcs11_unavailable' },
    );
  }
  try {
    binding = createRequire(import.meta.url)('pkcs11js') as Pkcs11Binding;
  } catch (err) {
    throw new UserError(
      'PKCS#11 keys need the optional native module pkcs11js, which is not installed or was not built ' +
        `(${(err as Error).message.split('\n')[0]}); install it where rolesanywhere-credentiald is installed with ` +
        '`npm install pkcs11js` (needs a C++ compiler, make and Python at install time). File keys work without it.',
      { reason: 'pkcs11_unavailable', cause: err },
    );
  }
  return binding;
}

/** A CK_* constant from pkcs11js (one source of truth for the PKCS#11 numbers). */
export function ck(name: string): number {
  const v = loadBinding()[name];
  if (typeof v !== 'number') throw new Error(`pkcs11js has no constant ${name}`);
  return v;
}

/** The CKR_ name of a pkcs11js error, or undefined for anything else. */
export function ckr(err: unknown): string | undefined {
  const m = /\b(CKR_[A-Z0-9_]+)/.exec(err instanceof Error ? err.message : '');
  return m?.[1];
}

