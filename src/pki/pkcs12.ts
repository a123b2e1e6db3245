/**
 * Writes PKCS#12 (RFC 7292) bundles with node:crypto, in OpenSSL 3's default
 * shape: the private key in a pkcs8ShroudedKeyBag and the certificates in an
 * encrypted SafeContents, both PBES2 (PBKDF2-HMAC-SHA256, AES-256-CBC), and an
 * HMAC-SHA256 integrity MAC keyed with the PKCS#12 KDF (RFC 7292 appendix B).
 * Works for RSA and EC keys alike (node-forge's writer handles RSA only).
 */
import { createCipheriv, createHash, createHmac, pbkdf2Sync, randomBytes, type KeyObject, type X509Certificate } from 'node:crypto';
import { pkcs12Kdf } from '../identity/pkcs12-kdf.js';
import { algorithm, bmpString, explicit, implicit, integer, nullValue, octetString, oid, sequence, set } from '../asn1/encoder.js';
import { OID } from '../asn1/oids.js';

/** OpenSSL 3's PKCS12_DEFAULT_ITER. */
export const DEFAULT_ITERATIONS = 2048;

export interface Pkcs12Input {
  privateKey: KeyObject;
  /** The certificate matching the key. */
  certificate: X509Certificate;
  /** Extra certificates (intermediates, CA), nearest the leaf first. */
  chain?: X509Certificate[];
  password: string;
  /** Shown by tools as the bundle entry's name. */
  friendlyName?: string;
  iterations?: number;
}

/** PBES2 encryption: returns the AlgorithmIdentifier and the ciphertext. */
function pbes2Encrypt(plaintext: Buffer, password: string, iterations: number): { algorithm: Buffer; ciphertext: Buffer } {
  const salt = randomBytes(16);
  const iv = randomBytes(16);
  // PBES2 inside PKCS#12 takes the password's UTF-8 bytes (as OpenSSL does; RFC 9579).
  const key = pbkdf2Sync(Buffer.from(password, 'utf8'), salt, iterations, 32, 'sha256');
  const cipher = createCipheriv('aes-256-cbc', key, iv);
  const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  key.fill(0);
  const alg = algorithm(
    OID.pbes2,
    sequence(
      algorithm(OID.pbkdf2, sequence(octetString(salt), integer(iterations), algorithm(OID.hmacWithSHA256, null))),
      algorithm(OID.aes256Cbc, octetString(iv)),
    ),
  );
  return { algorithm: alg, ciphertext };
}

function attributes(localKeyId: Buffer, friendlyName?: string): Buffer {
  const attrs = [sequence(oid(OID.localKeyId), set(octetString(localKeyId)))];
  if (friendlyName) attrs.push(sequence(oid(OID.friendlyName), set(bmpString(friendlyName))));
  return set(...attrs);
}

function certBag(cert: X509Certificate, attrs?: Buffer): Buffer {
  const value = sequence(oid(OID.x509Certificate), explicit(0, octetString(cert.raw)));
  return attrs ? sequence(oid(OID.certBag), explicit(0, value), attrs) : sequence(oid(OID.certBag), explicit(0, value));
}

/** A DER PKCS#12 (PFX) bundle holding the key, its certificate and the chain. */
export function createPkcs12(input: Pkcs12Input): Buffer {
  if (input.privateKey.type !== 'private') throw new TypeError('createPkcs12 needs a private key');
  const iterations = input.iterations ?? DEFAULT_ITERATIONS;
  // localKeyId ties the key to its certificate (OpenSSL uses the certificate's SHA-1).
  const localKeyId = createHash('sha1').update(input.certificate.raw).digest();
  const leafAttrs = attributes(localKeyId, input.friendlyName);

  // Certificates: an EncryptedData ContentInfo.
  const certContents = sequence(certBag(input.certificate, leafAttrs), ...(input.chain ?? []).map((c) => certBag(c)));
  const certEnc = pbes2Encrypt(certContents, input.password, iterations);
  const certInfo = sequence(
    oid(OID.encryptedData),
    explicit(0, sequence(integer(0), sequence(oid(OID.data), certEnc.algorithm, implicit(0, certEnc.ciphertext)))),
  );

  // Key: a plain Data ContentInfo holding a shrouded (encrypted) key bag.
  const pkcs8 = input.privateKey.export({ type: 'pkcs8', format: 'der' });
  const keyEnc = pbes2Encrypt(pkcs8, input.password, iterations);
  pkcs8.fill(0);
  const keyBag = sequence(
    oid(OID.pkcs8ShroudedKeyBag),
    explicit(0, sequence(keyEnc.algorithm, octetString(keyEnc.ciphertext))),
    leafAttrs,
  );
  const keyInfo = sequence(oid(OID.data), explicit(0, octetString(sequence(keyBag))));

  const authSafe = sequence(certInfo, keyInfo);
  const macSalt = randomBytes(16);
  const macKey = pkcs12Kdf(input.password, macSalt, 3, iterations, 32, 'sha256');
  const mac = createHmac('sha256', macKey).update(authSafe).digest();
  macKey.fill(0);
  const macData = sequence(sequence(algorithm(OID.sha256, nullValue()), octetString(mac)), octetString(macSalt), integer(iterations));

  return sequence(integer(3), sequence(oid(OID.data), explicit(0, octetString(authSafe))), macData);
}
