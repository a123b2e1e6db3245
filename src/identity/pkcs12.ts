// PKCS#12 (.p12/.pfx) reader. Node's crypto cannot read PKCS#12, and
// node-forge's reader re-encodes certificates and rejects EC keys, so we walk
// the structure ourselves (RFC 7292) and decrypt with node:crypto: the PKCS#12
// key derivation, PBE-SHA1-3DES, PBES2 (PBKDF2 + AES-CBC / 3DES) and the
// SHA-1/SHA-2 MACs. Only RC2 (`openssl pkcs12 -legacy`) comes from forge,
// because OpenSSL 3 keeps RC2 in its legacy provider, which Node does not load.
import { createDecipheriv, createHash, createHmac, createPrivateKey, pbkdf2, timingSafeEqual, type KeyObject } from 'node:crypto';
import type NodeForge from 'node-forge';
import { UserError } from '../errors.js';
import { child, DerError, expect, parseDer, readOctets, readOid, readSmallInteger, TAG, type Asn1 } from '../asn1/reader.js';
import { HASH_OIDS } from './x509-fields.js';
import { PASSWORD_HINT } from './keys.js';
import { bmpPassword, pkcs12KdfAsync } from './pkcs12-kdf.js';
import { OID } from '../asn1/oids.js';

const PKCS12_PBE: Record<string, { cipher: string; keyLen: number; ivLen: number; rc2Bits?: number }> = {
  '1.2.840.113549.1.12.1.3': { cipher: 'des-ede3-cbc', keyLen: 24, ivLen: 8 },
  '1.2.840.113549.1.12.1.4': { cipher: 'des-ede-cbc', keyLen: 16, ivLen: 8 },
  '1.2.840.113549.1.12.1.5': { cipher: 'rc2-cbc', keyLen: 16, ivLen: 8, rc2Bits: 128 },
  '1.2.840.113549.1.12.1.6': { cipher: 'rc2-cbc', keyLen: 5, ivLen: 8, rc2Bits: 40 },
};

const PBES2_CIPHERS: Record<string, { cipher: string; keyLen: number }> = {
  '2.16.840.1.101.3.4.1.2': { cipher: 'aes-128-cbc', keyLen: 16 },
  '2.16.840.1.101.3.4.1.22': { cipher: 'aes-192-cbc', keyLen: 24 },
  '2.16.840.1.101.3.4.1.42': { cipher: 'aes-256-cbc', keyLen: 32 },
  '1.2.840.113549.3.7': { cipher: 'des-ede3-cbc', keyLen: 24 },
};

const PRF_OIDS: Record<string, string> = {
  '1.2.840.113549.2.7': 'sha1',
  '1.2.840.113549.2.8': 'sha224',
  '1.2.840.113549.2.9': 'sha256',
  '1.2.840.113549.2.10': 'sha384',
  '1.2.840.113549.2.11': 'sha512',
};

/**
 * Iteration counts above these are refused: the count comes from the file, and
 * 2^31 would keep us hashing for hours. Real writers use 2048 (OpenSSL),
 * 2000 (Windows) or 10000 (Java); our PKCS#12 KDF runs ~1 s per million.
 */
const MAX_PKCS12_KDF_ITERATIONS = 1_000_000;
const MAX_PBKDF2_ITERATIONS = 10_000_000;

/**
 * Key-derivation work one bundle may ask for in all, in hash iterations (each
 * derivation: iterations × output blocks), over every bag, the MAC and every
 * password tried. Ordinary bundles need a few thousand; 8 key bags at 10 M
 * iterations each held the event loop for ~40 s. Over it → refused.
 */
export const MAX_PKCS12_WORK = 4_000_000;

/** The work still allowed while reading one bundle. */
class WorkBudget {
  used = 0;
  charge(iterations: number, blocks: number): void {
    this.used += iterations * blocks;
    if (this.used > MAX_PKCS12_WORK) throw new Pkcs12Failure('budget', `more than ${MAX_PKCS12_WORK} key-derivation iterations in all`);
  }
}

const pbkdf2Async = (password: Buffer, salt: Buffer, iterations: number, keyLen: number, digest: string): Promise<Buffer> =>
  new Promise((resolve, reject) => pbkdf2(password, salt, iterations, keyLen, digest, (err, key) => (err ? reject(err) : resolve(key))));

function iterationCount(node: Asn1, what: string, max: number): number {
  const n = readSmallInteger(node);
  if (n < 1 || n > max) throw new Pkcs12Failure('unsupported', `iteration count ${n} for the ${what} (the limit is ${max})`);
  return n;
}

/** A password in the two encodings PKCS#12 uses. */
interface Password {
  /** BMPString (UTF-16BE) with a two-byte terminator, for the PKCS#12 KDF. */
  bmp: Buffer;
  /** Raw UTF-8, for PBES2/PBKDF2. */
  utf8: Buffer;
}

function passwordOf(text: string): Password {
  return { bmp: bmpPassword(text), utf8: Buffer.from(text, 'utf8') };
}

/** OpenSSL also tries a NULL password (no bytes at all) when the given one is empty. */
const NULL_PASSWORD: Password = { bmp: Buffer.alloc(0), utf8: Buffer.alloc(0) };

class Pkcs12Failure extends Error {
  constructor(
    readonly kind: 'password' | 'unsupported' | 'corrupt' | 'budget',
    message: string,
  ) {
    super(message);
  }
}

/**
 * node-forge, loaded on first need: only RC2 (`openssl pkcs12 -legacy`) needs it, and it
 * costs resident memory. Parsing is synchronous, so a bundle that needs it stops with
 * NeedsForge and parsePkcs12 loads forge and parses again.
 */
let forgeModule: typeof NodeForge | undefined;
class NeedsForge extends Error {}
function forgeLib(): typeof NodeForge {
  if (!forgeModule) throw new NeedsForge('node-forge is not loaded yet');
  return forgeModule;
}

function decipher(cipher: string, key: Buffer, iv: Buffer, data: Buffer, rc2Bits?: number): Buffer {
  if (rc2Bits !== undefined) {
    const forge = forgeLib();
    const c = forge.rc2.createDecryptionCipher(forge.util.createBuffer(key.toString('binary')), rc2Bits);
    c.start(forge.util.createBuffer(iv.toString('binary')));
    c.update(forge.util.createBuffer(data.toString('binary')));
    if (!c.finish()) throw new Pkcs12Failure('password', 'bad padding');
    return Buffer.from(c.output.getBytes(), 'binary');
  }
  try {
    const d = createDecipheriv(cipher, key, iv);
    return Buffer.concat([d.update(data), d.final()]);
  } catch (err) {
    const code = (err as { code?: string }).code ?? '';
    if (/UNSUPPORTED|INVALID|UNKNOWN/.test(code) && !/BAD_DECRYPT/.test(code)) {
      throw new Pkcs12Failure('unsupported', `cipher ${cipher} is not available`);
    }
    throw new Pkcs12Failure('password', 'bad padding');
  }
}

/**
 * Decrypts data protected by a PKCS#12 PBE or PBES2 AlgorithmIdentifier. The key
 * derivation runs off the event loop (PBKDF2 in libuv's pool) or yields to it
 * (the PKCS#12 KDF), within `budget`.
 */
async function decrypt(alg: Asn1, data: Buffer, pw: Password, budget: WorkBudget): Promise<Buffer> {
  const oid = readOid(child(alg, 0, 'encryption algorithm'));
  const params = alg.children[1];
  const pbe = PKCS12_PBE[oid];
  if (pbe) {
    const p = expect(params, TAG.SEQUENCE, 'PBE parameters');
    const salt = readOctets(child(p, 0, 'PBE salt'));
    const iterations = iterationCount(child(p, 1, 'PBE iterations'), 'key derivation', MAX_PKCS12_KDF_ITERATIONS);
    budget.charge(iterations, Math.ceil(pbe.keyLen / 20) + Math.ceil(pbe.ivLen / 20));
    const key = await pkcs12KdfAsync(pw.bmp, salt, 1, iterations, pbe.keyLen, 'sha1');
    const iv = await pkcs12KdfAsync(pw.bmp, salt, 2, iterations, pbe.ivLen, 'sha1');
    return decipher(pbe.cipher, key, iv, data, pbe.rc2Bits);
  }
  if (oid === OID.pbes2) {
    const p = expect(params, TAG.SEQUENCE, 'PBES2 parameters');
    const kdf = expect(p.children[0], TAG.SEQUENCE, 'PBES2 key derivation');
    const enc = expect(p.children[1], TAG.SEQUENCE, 'PBES2 encryption scheme');
    const kdfOid = readOid(child(kdf, 0, 'KDF OID'));
    if (kdfOid !== OID.pbkdf2) throw new Pkcs12Failure('unsupported', `key derivation ${kdfOid} (only PBKDF2 is supported)`);
    const kp = expect(kdf.children[1], TAG.SEQUENCE, 'PBKDF2 parameters');
    const salt = readOctets(expect(kp.children[0], TAG.OCTET_STRING, 'PBKDF2 salt'));
    const iterations = iterationCount(child(kp, 1, 'PBKDF2 iterations'), 'key derivation', MAX_PBKDF2_ITERATIONS);
    let keyLength: number | undefined;
    let prf = 'sha1';
    for (const c of kp.children.slice(2)) {
      if (c.tag === TAG.INTEGER) keyLength = readSmallInteger(c);
      else if (c.tag === TAG.SEQUENCE) {
        const prfOid = readOid(child(c, 0, 'PRF OID'));
        const h = PRF_OIDS[prfOid];
        if (!h) throw new Pkcs12Failure('unsupported', `PBKDF2 PRF ${prfOid}`);
        prf = h;
      }
    }
    const encOid = readOid(child(enc, 0, 'cipher OID'));
    const cipher = PBES2_CIPHERS[encOid];
    if (!cipher) throw new Pkcs12Failure('unsupported', `cipher ${encOid}`);
    const iv = readOctets(expect(enc.children[1], TAG.OCTET_STRING, 'cipher IV'));
    // The cipher fixes the key size; any other keyLength is not a key for it (and a huge one would hang PBKDF2).
    if (keyLength !== undefined && keyLength !== cipher.keyLen) throw new Pkcs12Failure('unsupported', `PBKDF2 key length ${keyLength} for ${cipher.cipher}`);
    budget.charge(iterations, Math.ceil(cipher.keyLen / createHash(prf).digest().length));
    const key = await pbkdf2Async(pw.utf8, salt, iterations, cipher.keyLen, prf);
    return decipher(cipher.cipher, key, iv, data);
  }
  throw new Pkcs12Failure('unsupported', `encryption algorithm ${oid}`);
}

interface MacData {
  hash: string;
  digest: Buffer;
  salt: Buffer;
  iterations: number;
}

function readMacData(node: Asn1): MacData {
  const digestInfo = expect(node.children[0], TAG.SEQUENCE, 'MAC DigestInfo');
  const alg = expect(digestInfo.children[0], TAG.SEQUENCE, 'MAC algorithm');
  const oid = readOid(child(alg, 0, 'MAC algorithm OID'));
  if (oid === OID.pbmac1) throw new Pkcs12Failure('unsupported', 'PBMAC1 integrity protection');
  const hash = HASH_OIDS[oid];
  if (!hash || hash === 'md2') throw new Pkcs12Failure('unsupported', `MAC algorithm ${oid}`);
  return {
    hash,
    digest: readOctets(expect(digestInfo.children[1], TAG.OCTET_STRING, 'MAC digest')),
    salt: readOctets(expect(node.children[1], TAG.OCTET_STRING, 'MAC salt')),
    iterations: node.children[2] ? iterationCount(node.children[2], 'integrity check (MAC)', MAX_PKCS12_KDF_ITERATIONS) : 1,
  };
}

async function macMatches(mac: MacData, authSafe: Buffer, pw: Password, budget: WorkBudget): Promise<boolean> {
  const u = createHash(mac.hash).digest().length;
  budget.charge(mac.iterations, 1);
  const key = await pkcs12KdfAsync(pw.bmp, mac.salt, 3, mac.iterations, u, mac.hash);
  const computed = createHmac(mac.hash, key).update(authSafe).digest();
  return computed.length === mac.digest.length && timingSafeEqual(computed, mac.digest);
}

/** Content octets of a ContentInfo of type data: `[0] EXPLICIT OCTET STRING`. */
function dataContent(contentInfo: Asn1): Buffer {
  const wrapper = expect(contentInfo.children[1], 0xa0, 'ContentInfo content');
  return readOctets(expect(wrapper.children[0], wrapper.children[0]?.constructed ? 0x24 : TAG.OCTET_STRING, 'data content'));
}

export interface Pkcs12Contents {
  keys: KeyObject[];
  /** Certificate DERs, in bag order. */
  certs: Buffer[];
}

async function walkBags(safeContents: Buffer, pw: Password, out: Pkcs12Contents, budget: WorkBudget, depth = 0): Promise<void> {
  if (depth > 8) throw new DerError('PKCS#12 bags nested too deeply');
  const seq = expect(parseDer(safeContents, true), TAG.SEQUENCE, 'SafeContents');
  for (const bag of seq.children) {
    const bagId = readOid(child(bag, 0, 'bag id'));
    const value = expect(bag.children[1], 0xa0, 'bag value').children[0];
    if (!value) throw new DerError('empty bag value');
    switch (bagId) {
      case OID.keyBag:
        out.keys.push(createPrivateKey({ key: value.raw, format: 'der', type: 'pkcs8' }));
        break;
      case OID.pkcs8ShroudedKeyBag: {
        const alg = expect(value.children[0], TAG.SEQUENCE, 'key encryption algorithm');
        const encrypted = readOctets(expect(value.children[1], TAG.OCTET_STRING, 'encrypted key'));
        const plain = await decrypt(alg, encrypted, pw, budget);
        let key: KeyObject;
        try {
          key = createPrivateKey({ key: plain, format: 'der', type: 'pkcs8' });
        } catch {
          // Padding happened to check out but the plaintext is garbage: a wrong password.
          throw new Pkcs12Failure('password', 'undecodable key');
        }
        out.keys.push(key);
        break;
      }
      case OID.certBag: {
        const certId = readOid(child(value, 0, 'certificate type'));
        if (certId !== OID.x509Certificate) break;
        const wrapped = expect(value.children[1], 0xa0, 'certificate value').children[0];
        if (!wrapped) throw new DerError('empty certificate bag');
        out.certs.push(Buffer.from(readOctets(wrapped)));
        break;
      }
      case OID.safeContentsBag:
        await walkBags(value.raw, pw, out, budget, depth + 1);
        break;
      default:
        // CRLs, secrets and unknown bags carry nothing we need.
        break;
    }
  }
}

/**
 * Reads a PKCS#12 bundle: every private key and certificate in it. `path` is
 * used in messages only. Throws a one-line UserError (missing/wrong password,
 * unsupported encryption, corrupt file).
 */
export async function parsePkcs12(data: Buffer, password: string | undefined, path: string): Promise<Pkcs12Contents> {
  try {
    return await parseLoaded(data, password, path);
  } catch (err) {
    if (!(err instanceof UserError && err.cause instanceof NeedsForge)) throw err;
  }
  forgeModule = (await import('node-forge')).default;
  return parseLoaded(data, password, path);
}

async function parseLoaded(data: Buffer, password: string | undefined, path: string): Promise<Pkcs12Contents> {
  const budget = new WorkBudget();
  const corrupt = (err?: unknown) =>
    new UserError(`${path}: PKCS#12 bundle is corrupt or truncated`, { reason: 'pkcs12_corrupt', cause: err });
  try {
    const pfx = expect(parseDer(data, true), TAG.SEQUENCE, 'PFX');
    const version = readSmallInteger(child(pfx, 0, 'PFX version'));
    if (version !== 3) throw new Pkcs12Failure('unsupported', `PKCS#12 version ${version}`);
    const authSafeInfo = expect(pfx.children[1], TAG.SEQUENCE, 'authSafe');
    const contentType = readOid(child(authSafeInfo, 0, 'authSafe content type'));
    if (contentType !== OID.data) throw new Pkcs12Failure('unsupported', 'public-key integrity mode (signed PKCS#12)');
    const authSafe = dataContent(authSafeInfo);

    const candidates = password === undefined ? [passwordOf(''), NULL_PASSWORD] : password === '' ? [passwordOf(''), NULL_PASSWORD] : [passwordOf(password)];
    let pw: Password | undefined;
    if (pfx.children[2]) {
      const mac = readMacData(pfx.children[2]);
      for (const c of candidates) {
        if (await macMatches(mac, authSafe, c, budget)) {
          pw = c;
          break;
        }
      }
      if (!pw) throw new Pkcs12Failure('password', 'MAC mismatch');
    }
    const tryWith = async (p: Password): Promise<Pkcs12Contents> => {
      const out: Pkcs12Contents = { keys: [], certs: [] };
      const infos = expect(parseDer(authSafe, true), TAG.SEQUENCE, 'AuthenticatedSafe');
      for (const info of infos.children) {
        const type = readOid(child(info, 0, 'content type'));
        if (type === OID.data) {
          await walkBags(dataContent(info), p, out, budget);
        } else if (type === OID.encryptedData) {
          const encData = expect(expect(info.children[1], 0xa0, 'EncryptedData wrapper').children[0], TAG.SEQUENCE, 'EncryptedData');
          const eci = expect(encData.children[1], TAG.SEQUENCE, 'EncryptedContentInfo');
          const alg = expect(eci.children[1], TAG.SEQUENCE, 'content encryption algorithm');
          const content = eci.children[2];
          if (!content || (content.tag !== 0x80 && content.tag !== 0xa0)) throw new DerError('missing encrypted content');
          await walkBags(await decrypt(alg, readOctets(content), p, budget), p, out, budget);
        } else {
          throw new Pkcs12Failure('unsupported', `content type ${type} (enveloped PKCS#12)`);
        }
      }
      return out;
    };
    if (pw) return await tryWith(pw);
    // No MAC: the password is checked only by decryption.
    let last: unknown;
    for (const c of candidates) {
      try {
        return await tryWith(c);
      } catch (err) {
        last = err;
        if (!(err instanceof Pkcs12Failure && err.kind === 'password')) break;
      }
    }
    throw last;
  } catch (err) {
    if (err instanceof UserError) throw err;
    if (err instanceof Pkcs12Failure) {
      if (err.kind === 'password') {
        if (password === undefined) {
          throw new UserError(`${path}: PKCS#12 bundle is encrypted; ${PASSWORD_HINT}`, { reason: 'password_required' });
        }
        throw new UserError(`${path}: wrong password for the PKCS#12 bundle; check the password file or ROLESANYWHERE_KEY_PASSWORD`, {
          reason: 'password_wrong',
        });
      }
      if (err.kind === 'budget') {
        throw new UserError(`${path}: PKCS#12 bundle asks for ${err.message}, far beyond what ordinary bundles need; re-export it with \`openssl pkcs12 -export\` (OpenSSL 3 defaults)`, {
          reason: 'pkcs12_too_costly',
        });
      }
      if (err.kind === 'unsupported') {
        throw new UserError(`${path}: PKCS#12 bundle uses an unsupported ${err.message}; re-export it with \`openssl pkcs12 -export\` (OpenSSL 3 defaults)`, {
          reason: 'pkcs12_unsupported',
        });
      }
    }
    throw corrupt(err);
  }
}
