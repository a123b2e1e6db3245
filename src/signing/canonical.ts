import aws4 from 'aws4';
import { createHash } from 'node:crypto';

/** The service name in the credential scope of every Roles Anywhere request. */
export const SERVICE = 'rolesanywhere';

export interface CanonicalInput {
  method: string;
  /** Path with optional query string, e.g. `/sessions` or `/sessions?profileArn=...`. */
  path: string;
  /** Only the headers to sign (Host included). Names in any case. */
  headers: Record<string, string>;
  body: string;
  region: string;
  service?: string;
  /** `YYYYMMDDTHHMMSSZ`, the X-Amz-Date value. */
  amzDate: string;
}

export interface CanonicalParts {
  canonicalRequest: string;
  signedHeaders: string;
  /** `<YYYYMMDD>/<region>/<service>/aws4_request` */
  scope: string;
}

/** `YYYYMMDDTHHMMSSZ` in UTC. */
export function formatAmzDate(date: Date): string {
  return date.toISOString().replace(/[:-]|\.\d{3}/g, '');
}

/** Parses `YYYYMMDDTHHMMSSZ`; undefined when malformed. */
export function parseAmzDate(value: string): Date | undefined {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(value);
  if (!m) return undefined;
  const d = new Date(Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!));
  return Number.isNaN(d.getTime()) ? undefined : d;
}

export function sha256Hex(data: string | Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/**
 * The SigV4 canonical request, signed-header list and scope, built by aws4 so
 * that our canonicalisation (URI encoding, query sorting, header folding) is
 * the same well-tested one AWS clients use. aws4 is told not to add or change
 * headers: we sign exactly the headers given.
 */
export function canonicalParts(input: CanonicalInput): CanonicalParts {
  const host = Object.entries(input.headers).find(([k]) => k.toLowerCase() === 'host')?.[1];
  const signer = new aws4.RequestSigner(
    {
      method: input.method,
      path: input.path,
      headers: { ...input.headers },
      body: input.body,
      service: input.service ?? SERVICE,
      region: input.region,
      host,
      doNotModifyHeaders: true,
    } as aws4.Request,
    { accessKeyId: 'unused', secretAccessKey: 'unused' },
  ) as aws4.RequestSigner & {
    datetime: string;
    canonicalString(): string;
    signedHeaders(): string;
    credentialString(): string;
  };
  signer.datetime = input.amzDate;
  return {
    canonicalRequest: signer.canonicalString(),
    signedHeaders: signer.signedHeaders(),
    scope: signer.credentialString(),
  };
}

export function stringToSign(algorithm: string, amzDate: string, scope: string, canonicalRequest: string): string {
  return [algorithm, amzDate, scope, sha256Hex(canonicalRequest)].join('\n');
}
