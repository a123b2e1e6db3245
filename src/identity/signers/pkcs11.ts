// Key source "pkcs11": a private key inside a PKCS#11 token (SoftHSM, a
// YubiKey's PIV applet through OpenSC or ykcs11, a network HSM), named by an
// RFC 7512 URI as AWS's aws_signing_helper takes it. The key never leaves the
// token: we ask the token to sign and read only public attributes.
//
// Mechanism: the `pkcs11js` native binding (an optional dependency, loaded
// only when a pkcs11: URI is used). It keeps one logged-in session per key for
// the daemon's lifetime, so a refresh costs one C_Sign instead of a process
// start and a fresh login (which a subprocess such as pkcs11-tool would need,
// with the PIN on its command line), and it reports the token's CKR_* codes so
// every failure gets a precise message. Every token call runs in a worker
// thread with a deadline (pkcs11/worker-host.ts): most PKCS#11 calls are
// synchronous, and a module that hangs must not stall the routes.
//
// Signatures: RSA with CKM_SHA256_RSA_PKCS (or CKM_RSA_PKCS over a DigestInfo
// when the token only has that); EC with CKM_ECDSA over the SHA-256 digest
// computed here (SHA-384/512 likewise, for `sign-string --digest`), the token's raw r‖s turned into the DER SEQUENCE the service
// expects. Every signature is verified with the public key before use, so a
// token that answers garbage fails loudly here and not at the service.
//
// Recovery: any PKCS#11 error while signing (token unplugged, module or
// daemon restarted, handles gone) finalizes the module and re-opens it from
// scratch once; if that fails too the refresh fails like any other and the
// session keeps serving its cached credentials. A refused PIN is never tried
// again by this process, so a retry loop cannot lock the token.
//
// The parts, one job a file (src/identity/signers/pkcs11/): binding.ts (pkcs11js), module.ts (modules),
// objects.ts (token and object lookup), pin.ts (PIN and login), signer.ts (signing), local.ts (open and
// read in the module's thread), worker-host.ts (the worker thread, its wire protocol and deadlines).
import { isPkcs11Uri } from '../pkcs11-uri.js';

export const name = 'pkcs11';
/** `pkcs11:` specs name objects on a token, not files (key-sources.ts isKeyFile). */
export const scheme = 'pkcs11';

export function claims(spec: string): boolean {
  return isPkcs11Uri(spec);
}

export { listCertificates, open, readCertificate, setPkcs11Deadlines } from './pkcs11/worker-host.js';
export { ecdsaDer } from './pkcs11/signer.js';
export { defaultPkcs11Lib } from './pkcs11/module.js';
