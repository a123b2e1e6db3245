// The signer on a token, in the thread that holds the module: signs with the token's key, verifies
// every signature with the public key, and starts the module over once when the token goes away.
// locate() finds the key (again, after a reset).
import { createHash, randomBytes, verify as cryptoVerify, X509Certificate, type KeyObject } from 'node:crypto';
import { UserError } from '../../../errors.js';
import { integer, nullValue, octetString, oid, sequence } from '../../../asn1/encoder.js';
import { spkiOf } from '../../keys.js';
import { redactPkcs11Uri, type Pkcs11Uri } from '../../pkcs11-uri.js';
import { SIGNING_ALGORITHMS, type SignDigest, type Signer } from '../../signer.js';
import { type Handle, type Pkcs11Api, ck, ckr } from './binding.js';
import { Module, releaseModule } from './module.js';
import { type Found, type KeyInfo, attribute, findObjects, findToken, objectName, objectTemplate, readKey, trimmed } from './objects.js';
import { PIN_FIX, type Pin, login } from './pin.js';

interface Located {
  found: Found;
  session: Handle;
  key: KeyInfo;
}

/** Everything needed to find the key again after a reset. */
export interface KeyQuery {
  uri: Pkcs11Uri;
  spec: string;
  label: string | undefined;
  id: Buffer | undefined;
}

/** Reasons that mean "the token or module is not there right now" when a running signer reopens. */
const UNAVAILABLE = new Set(['pkcs11_module', 'pkcs11_token_not_found']);

export class Pkcs11Signer implements Signer {
  readonly kind = 'pkcs11';
  readonly keyAlgorithm: 'RSA' | 'EC';
  readonly algorithm: Signer['algorithm'];
  readonly publicKey: KeyObject;
  private session: Handle | undefined;
  private keyHandle: Handle | undefined;
  private generation: number;
  private closed = false;
  /** The slot's mechanisms (undefined: the token would not say), to fall back to CKM_RSA_PKCS. */
  private mechanisms: number[] | undefined;
  private readonly description: string;

  constructor(
    private readonly module: Module,
    private readonly query: KeyQuery,
    private readonly pin: Pin | undefined,
    private readonly reusePin: boolean,
    located: Located,
    publicKey: KeyObject,
  ) {
    this.publicKey = publicKey;
    this.keyAlgorithm = located.key.keyType;
    this.algorithm = SIGNING_ALGORITHMS[this.keyAlgorithm];
    this.session = located.session;
    this.keyHandle = located.key.handle;
    this.generation = module.generation;
    this.adopt(located);
    const found = located.found;
    this.description =
      `pkcs11 token "${trimmed(found.token.label)}" (serial ${trimmed(found.token.serialNumber)})` +
      ` ${objectName(located.key.label, located.key.id)} via ${module.path}`;
  }

  private adopt(located: Located): void {
    this.session = located.session;
    this.keyHandle = located.key.handle;
    this.generation = this.module.generation;
    if (this.keyAlgorithm === 'RSA') this.mechanisms = safeMechanisms(this.module.api, located.found.slot);
    this.alwaysAuthenticate = located.key.alwaysAuthenticate;
  }

  private alwaysAuthenticate = false;

  describe(): string {
    return this.description;
  }

  sign(data: Buffer, digest: SignDigest = 'sha256'): Promise<Buffer> {
    return this.module.run(async () => {
      if (this.closed) throw new Error('PKCS#11 signer used after close');
      let lastErr: unknown;
      for (let attempt = 0; attempt < 2; attempt++) {
        try {
          if (!this.session || this.generation !== this.module.generation) this.reopen();
          return await this.signOnce(data, digest);
        } catch (err) {
          lastErr = err;
          if (err instanceof UserError && UNAVAILABLE.has(err.reason)) {
            throw new UserError(`${this.description}: the token is unavailable (${err.message}); will retry at the next refresh`, {
              reason: 'pkcs11_unavailable',
              cause: err,
            });
          }
          if (err instanceof UserError) throw err;
          // Token unplugged, module restarted, handles invalid…: start the module over once.
          this.session = undefined;
          this.module.reset();
        }
      }
      const code = ckr(lastErr) ?? (lastErr as Error).message.split('\n')[0];
      throw new UserError(`${this.description}: signing failed (${code}); the token may be unplugged or its module failed — will retry at the next refresh`, {
        reason: 'pkcs11_sign_failed',
        cause: lastErr,
      });
    });
  }

  /** Opens the token again after a reset and checks the key there is still the same key. */
  private reopen(): void {
    this.module.init();
    const located = locate(this.module, this.query, this.pin, undefined);
    if (!spkiOf(located.key.publicKey ?? this.publicKey).equals(spkiOf(this.publicKey))) {
      closeQuietly(this.module.api, located.session);
      throw new UserError(`${this.description}: the key on the token is no longer the one loaded at start; reload the daemon after replacing a key`, {
        reason: 'pkcs11_key_changed',
      });
    }
    this.adopt(located);
  }

  private async signOnce(data: Buffer, digestName: SignDigest): Promise<Buffer> {
    const api = this.module.api;
    const session = this.session!;
    const digest = createHash(digestName).update(data).digest();
    const hashed = ck(`CKM_${digestName.toUpperCase()}_RSA_PKCS`);
    let mechanism: number;
    let input: Buffer;
    if (this.keyAlgorithm === 'EC') {
      mechanism = ck('CKM_ECDSA');
      input = digest;
    } else if (!this.mechanisms || this.mechanisms.includes(hashed) || !this.mechanisms.includes(ck('CKM_RSA_PKCS'))) {
      mechanism = hashed;
      input = data;
    } else {
      // PKCS#1 v1.5 over DigestInfo{hash, digest}: what CKM_SHA256_RSA_PKCS (…384, …512) does inside the token.
      mechanism = ck('CKM_RSA_PKCS');
      input = sequence(sequence(oid(DIGEST_OIDS[digestName]), nullValue()), octetString(digest));
    }
    api.C_SignInit(session, { mechanism }, this.keyHandle!);
    if (this.alwaysAuthenticate) this.contextLogin(session);
    const raw = await api.C_SignAsync(session, input, Buffer.alloc(1024));
    const signature = this.keyAlgorithm === 'EC' ? ecdsaDer(raw, this.description) : Buffer.from(raw);
    const ok = cryptoVerify(digestName, data, { key: this.publicKey, dsaEncoding: 'der' }, signature);
    if (!ok) {
      throw new UserError(`${this.description}: the token returned a signature that does not verify with the key's public key; the token or module is faulty`, {
        reason: 'pkcs11_bad_signature',
      });
    }
    return signature;
  }

  /** CKA_ALWAYS_AUTHENTICATE keys (e.g. PIV slot 9c) want the PIN again for each signature. */
  private contextLogin(session: Handle): void {
    if (!this.reusePin || !this.pin) {
      throw new UserError(
        `${this.description}: the key requires the PIN for every signature (CKA_ALWAYS_AUTHENTICATE); add --reuse-pin (YAML reusePin: true) ` +
          `to give the token PIN again${this.pin ? '' : `, and a PIN: ${PIN_FIX}`}`,
        { reason: 'pkcs11_always_authenticate' },
      );
    }
    try {
      this.module.api.C_Login(session, ck('CKU_CONTEXT_SPECIFIC'), this.pin.value);
    } catch (err) {
      throw new UserError(`${this.description}: the per-signature login (--reuse-pin) was refused (${ckr(err) ?? 'error'})`, {
        reason: 'pkcs11_login',
        cause: err,
      });
    }
  }

  async close(): Promise<void> {
    await this.module.run(async () => {
      if (this.closed) return;
      this.closed = true;
      if (this.session && this.generation === this.module.generation) closeQuietly(this.module.api, this.session);
      this.session = undefined;
      releaseModule(this.module);
    });
  }
}

function safeMechanisms(api: Pkcs11Api, slot: Handle): number[] | undefined {
  try {
    return api.C_GetMechanismList(slot);
  } catch {
    return undefined;
  }
}

export function closeQuietly(api: Pkcs11Api, session: Handle): void {
  try {
    api.C_CloseSession(session);
  } catch {
    // Already closed with its token.
  }
}

/** NIST hash algorithm OIDs, for a DigestInfo. */
const DIGEST_OIDS: Readonly<Record<SignDigest, string>> = {
  sha256: '2.16.840.1.101.3.4.2.1',
  sha384: '2.16.840.1.101.3.4.2.2',
  sha512: '2.16.840.1.101.3.4.2.3',
};

/** CKM_ECDSA's raw r‖s (two equal halves) as DER SEQUENCE { INTEGER r, INTEGER s }. */
export function ecdsaDer(raw: Buffer, who = 'PKCS#11 token'): Buffer {
  if (raw.length === 0 || raw.length % 2 !== 0) {
    throw new UserError(`${who}: the token returned a ${raw.length}-byte ECDSA signature, not r‖s; the token or module is faulty`, { reason: 'pkcs11_bad_signature' });
  }
  const half = raw.length / 2;
  return sequence(integer(raw.subarray(0, half)), integer(raw.subarray(half)));
}


/** Finds the token, opens a session, logs in and finds the one private key the query names. */
export function locate(module: Module, query: KeyQuery, pin: Pin | undefined, certificate: X509Certificate | undefined): Located {
  const api = module.api;
  const { uri, spec } = query;
  const found = findToken(api, uri, spec, module.path);
  const session = api.C_OpenSession(found.slot, ck('CKF_SERIAL_SESSION'));
  try {
    if (pin) login(module, found, session, pin);
    const handles = findObjects(api, session, objectTemplate('CKO_PRIVATE_KEY', query.label, query.id));
    const what = objectName(query.label, query.id);
    if (handles.length === 0) {
      if (!pin && found.token.flags & ck('CKF_LOGIN_REQUIRED')) {
        throw new UserError(`${redactPkcs11Uri(spec)}: no private key visible on ${found.name} without logging in; the token needs a PIN: ${PIN_FIX}`, {
          reason: 'pkcs11_pin_required',
        });
      }
      const labels = findObjects(api, session, objectTemplate('CKO_PRIVATE_KEY', undefined, undefined))
        .slice(0, 20)
        .map((h) => {
          const l = attribute(api, session, h, ck('CKA_LABEL'))?.toString('utf8');
          const i = attribute(api, session, h, ck('CKA_ID'));
          return objectName(l, i && i.length ? i : undefined);
        });
      throw new UserError(
        `${redactPkcs11Uri(spec)}: no private key ${what} on ${found.name} (private keys there: ${labels.length ? labels.join(', ') : 'none'}); check object= / id=`,
        { reason: 'pkcs11_object_not_found' },
      );
    }
    const keys = handles.map((h) => readKey(api, session, h));
    const usable = keys.filter((k): k is KeyInfo => !('unsupported' in k));
    if (usable.length === 0) {
      const k = keys[0] as { unsupported: string };
      throw new UserError(`${redactPkcs11Uri(spec)}: ${what} on ${found.name} is ${k.unsupported}; Roles Anywhere needs an RSA or EC P-256/P-384 key`, {
        reason: 'key_type_unsupported',
      });
    }
    let chosen: KeyInfo | undefined;
    if (usable.length === 1) chosen = usable[0];
    else if (certificate) {
      const want = spkiOf(certificate.publicKey);
      chosen = usable.find((k) => k.publicKey && spkiOf(k.publicKey).equals(want));
    }
    if (!chosen) {
      const names = usable.map((k) => objectName(k.label, k.id)).join(', ');
      throw new UserError(`${redactPkcs11Uri(spec)}: ${usable.length} private keys match on ${found.name} (${names}); add object= or id= to the URI to pick one`, {
        reason: 'pkcs11_object_ambiguous',
      });
    }
    return { found, session, key: chosen };
  } catch (err) {
    closeQuietly(api, session);
    throw err;
  }
}

/** Proves that an EC key with no readable public half is the certificate's key: one test signature. */
export async function provePublicKey(module: Module, located: Located, certificate: X509Certificate | undefined, spec: string): Promise<KeyObject> {
  const who = `${redactPkcs11Uri(spec)}: ${objectName(located.key.label, located.key.id)} on ${located.found.name}`;
  if (!certificate) {
    throw new UserError(`${who}: the token shows no public key for this EC key (no public key object with its CKA_ID); store the public key or certificate on the token`, {
      reason: 'pkcs11_public_key_missing',
    });
  }
  const candidate = certificate.publicKey;
  const challenge = randomBytes(32);
  const api = module.api;
  api.C_SignInit(located.session, { mechanism: ck('CKM_ECDSA') }, located.key.handle);
  const raw = await api.C_SignAsync(located.session, createHash('sha256').update(challenge).digest(), Buffer.alloc(1024));
  if (!cryptoVerify('sha256', challenge, { key: candidate, dsaEncoding: 'der' }, ecdsaDer(raw, who))) {
    throw new UserError(`${who}: the key does not match the certificate (a test signature does not verify with the certificate's public key); use the key the certificate was issued for`, {
      reason: 'key_mismatch',
    });
  }
  return candidate;
}

