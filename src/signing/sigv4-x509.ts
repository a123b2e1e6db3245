import { sign as cryptoSign } from 'node:crypto';
import type { Identity, KeyAlgorithm } from '../identity/types.js';
import { canonicalParts, formatAmzDate, stringToSign } from './canonical.js';

export const ALGORITHMS: Record<KeyAlgorithm, string> = {
  RSA: 'AWS4-X509-RSA-SHA256',
  EC: 'AWS4-X509-ECDSA-SHA256',
};

export interface SignInput {
  identity: Identity;
  region: string;
  /** Host header value (with `:port` when not the scheme's default). */
  host: string;
  method?: string;
  /** Path with optional query string. */
  path?: string;
  body: string;
  /** Signing time; defaults to now. */
  date?: Date;
}

/**
 * Signs a Roles Anywhere request with the identity's private key (SigV4 with
 * an X.509 certificate, PROTOCOLS.md §1). Returns every header to send,
 * Authorization included.
 */
export function signX509Request(input: SignInput): Record<string, string> {
  const { identity } = input;
  const amzDate = formatAmzDate(input.date ?? new Date());
  const headers: Record<string, string> = {
    'Content-Type': 'application/json',
    Host: input.host,
    'X-Amz-Date': amzDate,
    'X-Amz-X509': identity.certificateDer.toString('base64'),
  };
  if (identity.chain.length > 0) {
    headers['X-Amz-X509-Chain'] = identity.chain.map((c) => c.raw.toString('base64')).join(',');
  }
  const algorithm = ALGORITHMS[identity.keyAlgorithm];
  const parts = canonicalParts({
    method: input.method ?? 'POST',
    path: input.path ?? '/sessions',
    headers,
    body: input.body,
    region: input.region,
    amzDate,
  });
  const toSign = stringToSign(algorithm, amzDate, parts.scope, parts.canonicalRequest);
  // RSA: PKCS#1 v1.5 (Node's default for RSA keys). EC: DER SEQUENCE{r,s} (Node's default dsaEncoding).
  const signature = cryptoSign('sha256', Buffer.from(toSign, 'utf8'), identity.privateKey).toString('hex');
  headers.Authorization =
    `${algorithm} Credential=${identity.serialDecimal}/${parts.scope}, ` +
    `SignedHeaders=${parts.signedHeaders}, Signature=${signature}`;
  return headers;
}
