// MINIMAL BOOTSTRAP VERSION — the identity work (PKCS#12, encrypted keys,
// requirement checks, precise errors) replaces this file; keep the exported
// signature.
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { UserError } from '../errors.js';
import type { Identity, IdentitySource } from './types.js';

export interface LoadOptions {
  /** Warn when the leaf expires within this many days (default 7). */
  expiryWarningDays?: number;
  now?: Date;
}

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

export async function loadIdentity(source: IdentitySource, _options: LoadOptions = {}): Promise<Identity> {
  const certText = await readFile(source.certificate, 'utf8');
  const blocks = certText.match(PEM_CERT) ?? [];
  if (blocks.length === 0) throw new UserError(`${source.certificate}: no PEM certificate found`);
  const [leaf, ...rest] = blocks.map((b) => new X509Certificate(b));
  const chain = [...rest];
  if (source.intermediates) {
    const t = await readFile(source.intermediates, 'utf8');
    for (const b of t.match(PEM_CERT) ?? []) chain.push(new X509Certificate(b));
  }
  if (!source.privateKey) throw new UserError(`${source.certificate}: --private-key is required`);
  const privateKey = createPrivateKey({ key: await readFile(source.privateKey), passphrase: source.password });
  const keyAlgorithm = privateKey.asymmetricKeyType === 'ec' ? 'EC' : 'RSA';
  return {
    certificate: leaf!,
    certificateDer: leaf!.raw,
    chain,
    privateKey,
    keyAlgorithm,
    serialDecimal: BigInt('0x' + leaf!.serialNumber).toString(10),
    source,
    warnings: [],
  };
}
