import type { Identity } from '../identity/types.js';
import { canonicalParts, formatAmzDate, stringToSign } from './canonical.js';

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
 * Signs a Roles Anywhere request with the identity's signer (SigV4 with an
 * X.509 certificate, PROTOCOLS.md §1 and §5). Returns every header to send,
 * Authorization included.
 */
export async function signX509Request(input: SignInput): Promise<Record<string, string>> {
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
  const algorithm = identity.signer.algorithm;
  const parts = canonicalParts({
    method: input.method ?? 'POST',
    path: input.path ?? '/sessions',
    headers,
    body: input.body,
    region: input.region,
    amzDate,
  });
  const toSign = stringToSign(algorithm, amzDate, parts.scope, parts.canonicalRequest);
  // The signer returns the exact bytes the service expects for its algorithm (see identity/signer.ts).
  const signature = (await identity.signer.sign(Buffer.from(toSign, 'utf8'))).toString('hex');
  headers.Authorization =
    `${algorithm} Credential=${identity.serialDecimal}/${parts.scope}, ` +
    `SignedHeaders=${parts.signedHeaders}, Signature=${signature}`;
  return headers;
}
