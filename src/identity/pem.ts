// PEM block reader: labels, RFC 1421 headers (Proc-Type/DEK-Info of
// traditional encrypted keys) and base64 bodies. Text outside blocks (e.g.
// "Bag Attributes" or `openssl x509 -text` output) is ignored.

export interface PemBlock {
  /** e.g. CERTIFICATE, PRIVATE KEY, RSA PRIVATE KEY. */
  label: string;
  headers: Record<string, string>;
  /** Decoded body. */
  der: Buffer;
  /** The block's text, BEGIN to END lines inclusive. */
  text: string;
  /** 1-based position among the file's blocks. */
  index: number;
}

export class PemError extends Error {
  override name = 'PemError';
}

export function looksLikePem(data: Buffer): boolean {
  return data.includes('-----BEGIN ');
}

const BEGIN = /^-----BEGIN ([A-Z0-9 #]+)-----\s*$/;
const END = /^-----END ([A-Z0-9 #]+)-----\s*$/;

/** Reads every PEM block. Throws PemError on a truncated block or bad base64. */
export function parsePem(text: string): PemBlock[] {
  const lines = text.split(/\r?\n/);
  const blocks: PemBlock[] = [];
  let current: { label: string; lines: string[]; start: number } | undefined;
  for (let n = 0; n < lines.length; n++) {
    const line = lines[n]!.trim();
    if (!current) {
      const m = line.match(BEGIN);
      if (m) current = { label: m[1]!, lines: [], start: n };
      continue;
    }
    const end = line.match(END);
    if (end) {
      if (end[1] !== current.label) {
        throw new PemError(`PEM block "${current.label}" ends with "END ${end[1]}"`);
      }
      blocks.push(finishBlock(current.label, current.lines, lines.slice(current.start, n + 1).join('\n'), blocks.length + 1));
      current = undefined;
      continue;
    }
    if (BEGIN.test(line)) throw new PemError(`PEM block "${current.label}" has no END line (truncated file?)`);
    current.lines.push(line);
  }
  if (current) throw new PemError(`PEM block "${current.label}" has no END line (truncated file?)`);
  return blocks;
}

function finishBlock(label: string, bodyLines: string[], text: string, index: number): PemBlock {
  const headers: Record<string, string> = {};
  let i = 0;
  // RFC 1421 headers: "Name: value" lines before a blank line.
  if (bodyLines[0]?.includes(':')) {
    for (; i < bodyLines.length && bodyLines[i] !== ''; i++) {
      const m = bodyLines[i]!.match(/^([A-Za-z-]+):\s*(.*)$/);
      if (!m) break;
      headers[m[1]!] = m[2]!;
    }
  }
  const b64 = bodyLines.slice(i).join('');
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(b64) || b64.length % 4 !== 0) {
    throw new PemError(`PEM block "${label}" #${index} has corrupt base64`);
  }
  const der = Buffer.from(b64, 'base64');
  if (der.length === 0) throw new PemError(`PEM block "${label}" #${index} is empty`);
  return { label, headers, der, text, index };
}

export function toPem(label: string, der: Buffer): string {
  const b64 = der.toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n$/, '');
  return `-----BEGIN ${label}-----\n${b64}\n-----END ${label}-----\n`;
}

export const CERT_LABELS = new Set(['CERTIFICATE', 'X509 CERTIFICATE']);
export const KEY_LABELS = new Set([
  'PRIVATE KEY',
  'ENCRYPTED PRIVATE KEY',
  'RSA PRIVATE KEY',
  'EC PRIVATE KEY',
  'DSA PRIVATE KEY',
  'OPENSSH PRIVATE KEY',
]);

/** The PEM text of every CERTIFICATE block in `text`, in order (other blocks and text ignored). */
export function certificateBlocks(text: string): string[] {
  return text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
}
