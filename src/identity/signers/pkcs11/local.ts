// The PKCS#11 operations as they run in the thread that holds the module (the worker, worker-host.ts):
// parse the URI, pick the module and the PIN, then open a key or read a certificate.
import { UserError } from '../../../errors.js';
import { describeKeyType } from '../../keys.js';
import { formatPkcs11Uri, parsePkcs11Uri, redactPkcs11Uri, type Pkcs11Uri } from '../../pkcs11-uri.js';
import type { KeySourceOptions, SourceCertificate } from '../../types.js';
import { keyAlgorithmOfKey, type Signer } from '../../signer.js';
import { type Handle, type Pkcs11Api, ck, ckr } from './binding.js';
import { Module, moduleFor, releaseModule, resolveModule } from './module.js';
import { type Found, attribute, findObjects, findToken, objectName, objectTemplate, trimmed } from './objects.js';
import { type Pin, login, resolvePin } from './pin.js';
import { type KeyQuery, Pkcs11Signer, closeQuietly, locate, provePublicKey } from './signer.js';

type Pkcs11Options = KeySourceOptions;
function keyQuery(uri: Pkcs11Uri, spec: string, what: 'key' | 'certificate'): KeyQuery {
  const expected = what === 'key' ? 'private' : 'cert';
  if (uri.type !== undefined && uri.type !== expected) {
    const flag = what === 'key' ? '--private-key' : '--certificate';
    throw new UserError(`${redactPkcs11Uri(spec)}: ${flag} names an object of type=${uri.type}; use type=${expected} (or leave type out)`, { reason: 'pkcs11_uri' });
  }
  return { uri, spec, label: uri.object, id: uri.id };
}

interface Context {
  uri: Pkcs11Uri;
  query: KeyQuery;
  pin: Pin | undefined;
  module: Module;
}

/**
 * Parses the URI, picks the module and the PIN, and runs `fn` on the
 * initialized module (after any other call on it). A failure of the module
 * itself becomes a UserError naming it. The module stays in use after a
 * success when `keep` (a signer holds it), else it is released.
 */
async function onModule<T>(spec: string, options: Pkcs11Options, what: 'key' | 'certificate', keep: boolean, fn: (c: Context) => Promise<T>): Promise<T> {
  const uri = parsePkcs11Uri(spec);
  const query = keyQuery(uri, spec, what);
  const pin = await resolvePin(uri, spec, options);
  const { path, origin } = resolveModule(uri, spec, options);
  const module = moduleFor(path, origin);
  module.users++;
  let ok = false;
  try {
    const result = await module.run(async () => {
      try {
        module.init();
        return await fn({ uri, query, pin, module });
      } catch (err) {
        if (err instanceof UserError) throw err;
        throw new UserError(`${redactPkcs11Uri(spec)}: PKCS#11 module ${path} failed (${ckr(err) ?? (err as Error).message.split('\n')[0]})`, {
          reason: 'pkcs11_module',
          cause: err,
        });
      }
    });
    ok = true;
    return result;
  } finally {
    if (!ok || !keep) releaseModule(module);
  }
}

/** Opens the private key a pkcs11: URI names and returns a signer that keeps its session (in this thread). */
export function openHere(spec: string, options: Pkcs11Options = {}): Promise<Signer> {
  return onModule(spec, options, 'key', true, async ({ query, pin, module }) => {
    const located = locate(module, query, pin, options.certificate);
    let publicKey = located.key.publicKey;
    try {
      if (!publicKey) {
        if (located.key.alwaysAuthenticate) {
          throw new UserError(`${redactPkcs11Uri(spec)}: the token shows no public key for this key; store its public key on the token`, {
            reason: 'pkcs11_public_key_missing',
          });
        }
        publicKey = await provePublicKey(module, located, options.certificate, spec);
      }
      if (!keyAlgorithmOfKey(publicKey)) throw new UserError(`${redactPkcs11Uri(spec)}: ${describeKeyType(publicKey)} keys cannot sign for Roles Anywhere`);
    } catch (err) {
      closeQuietly(module.api, located.session);
      throw err;
    }
    return new Pkcs11Signer(module, { ...query, label: located.key.label, id: located.key.id }, pin, options.reusePin ?? false, located, publicKey);
  });
}

/** The X.509 certificates a pkcs11: URI matches on its token (logging in only when none is visible without). */
function findCertificates(api: Pkcs11Api, module: Module, found: Found, session: Handle, query: KeyQuery, pin: Pin | undefined): Handle[] {
  const template = [...objectTemplate('CKO_CERTIFICATE', query.label, query.id), { type: ck('CKA_CERTIFICATE_TYPE'), value: ck('CKC_X_509') }];
  let handles = findObjects(api, session, template);
  // Some tokens hide certificates until login.
  if (handles.length === 0 && pin) {
    login(module, found, session, pin);
    handles = findObjects(api, session, template);
  }
  return handles;
}

/** A certificate on a token and a URI naming it (for `read-certificate-data`). */
export interface ListedCertificate {
  der: Buffer;
  uri: string;
}

/** Every X.509 certificate a pkcs11: URI matches (in this thread); none is an empty list. */
export function listCertificatesHere(spec: string, options: Pkcs11Options = {}): Promise<ListedCertificate[]> {
  return onModule(spec, options, 'certificate', false, async ({ uri, query, pin, module }) => {
    const api = module.api;
    const found = findToken(api, uri, spec, module.path);
    const slot = api.C_GetSlotInfo(found.slot);
    const session = api.C_OpenSession(found.slot, ck('CKF_SERIAL_SESSION'));
    try {
      const out: ListedCertificate[] = [];
      for (const handle of findCertificates(api, module, found, session, query, pin)) {
        const der = attribute(api, session, handle, ck('CKA_VALUE'));
        if (!der || der.length === 0) continue;
        const id = attribute(api, session, handle, ck('CKA_ID'));
        const label = attribute(api, session, handle, ck('CKA_LABEL'))?.toString('utf8');
        // The attributes aws_signing_helper lists, and the token label, which picks the token most plainly.
        const certUri: Pkcs11Uri = {
          token: trimmed(found.token.label),
          manufacturer: trimmed(found.token.manufacturerID),
          serial: trimmed(found.token.serialNumber),
          model: trimmed(found.token.model),
          slotDescription: trimmed(slot.slotDescription),
          slotManufacturer: trimmed(slot.manufacturerID),
          type: 'cert',
        };
        if (label !== undefined) certUri.object = label;
        if (id && id.length > 0) certUri.id = id;
        out.push({ der: Buffer.from(der), uri: formatPkcs11Uri(certUri) });
      }
      return out;
    } finally {
      closeQuietly(api, session);
    }
  });
}

/** Reads the X.509 certificate a `--certificate pkcs11:…` URI names (in this thread). */
export function readCertificateHere(spec: string, options: Pkcs11Options = {}): Promise<SourceCertificate> {
  return onModule(spec, options, 'certificate', false, async ({ uri, query, pin, module }) => {
    const api = module.api;
    const found = findToken(api, uri, spec, module.path);
    const session = api.C_OpenSession(found.slot, ck('CKF_SERIAL_SESSION'));
    try {
      const handles = findCertificates(api, module, found, session, query, pin);
      const what = objectName(query.label, query.id);
      if (handles.length === 0) {
        throw new UserError(`${redactPkcs11Uri(spec)}: no X.509 certificate ${what} on ${found.name}; check object= / id=, or give the certificate as a file`, {
          reason: 'pkcs11_object_not_found',
        });
      }
      if (handles.length > 1) {
        throw new UserError(`${redactPkcs11Uri(spec)}: ${handles.length} certificates match on ${found.name}; add object= or id= to the URI to pick one`, {
          reason: 'pkcs11_object_ambiguous',
        });
      }
      const handle = handles[0]!;
      const der = attribute(api, session, handle, ck('CKA_VALUE'));
      if (!der || der.length === 0) {
        throw new UserError(`${redactPkcs11Uri(spec)}: the certificate ${what} on ${found.name} has no readable value`, { reason: 'cert_corrupt' });
      }
      const id = attribute(api, session, handle, ck('CKA_ID'));
      const label = attribute(api, session, handle, ck('CKA_LABEL'))?.toString('utf8');
      // The key next to it: same token, same CKA_ID (or the same label when the certificate has no ID).
      const keyUri: Pkcs11Uri = { ...uri, type: 'private' };
      delete keyUri.pinValue;
      delete keyUri.pinSource;
      delete keyUri.object;
      delete keyUri.id;
      if (id && id.length > 0) keyUri.id = id;
      else if (label !== undefined) keyUri.object = label;
      if (keyUri.token === undefined) keyUri.token = trimmed(found.token.label);
      let keySpec = formatPkcs11Uri(keyUri);
      if (uri.modulePath !== undefined) keySpec += `?module-path=${encodeURIComponent(uri.modulePath)}`;
      // The PIN travels in the options, never inside the derived URI (which appears in messages and `check`).
      const keyOptions: Pkcs11Options = { ...options };
      if (pin) {
        keyOptions.pkcs11Pin = pin.value;
        keyOptions.pkcs11PinOrigin = pin.origin;
      }
      return {
        der: Buffer.from(der),
        keySpec,
        keyOptions,
        description: `pkcs11 certificate ${objectName(label, id && id.length ? id : undefined)} on ${found.name}`,
      };
    } finally {
      closeQuietly(api, session);
    }
  });
}

