import { hash as oneShotHash, randomBytes } from 'node:crypto';

export const IMDS_MAX_TTL_SECONDS = 21600;

/**
 * IMDSv2 session tokens: random, expiring, bounded in number (oldest evicted
 * first). Only hashes are kept, so the store itself holds no usable token.
 */
export class ImdsTokenStore {
  private readonly tokens = new Map<string, number>();

  constructor(
    private readonly maxEntries = 10_000,
    private readonly now: () => number = Date.now,
  ) {}

  issue(ttlSeconds: number): string {
    const token = randomBytes(32).toString('base64url');
    const key = hash(token);
    if (this.tokens.size >= this.maxEntries) this.evict();
    this.tokens.set(key, this.now() + ttlSeconds * 1000);
    return token;
  }

  valid(token: string | string[] | undefined): boolean {
    if (typeof token !== 'string' || token.length === 0 || token.length > 200) return false;
    const key = hash(token);
    const exp = this.tokens.get(key);
    if (exp === undefined) return false;
    if (this.now() >= exp) {
      this.tokens.delete(key);
      return false;
    }
    return true;
  }

  get size(): number {
    return this.tokens.size;
  }

  private evict(): void {
    const now = this.now();
    for (const [k, exp] of this.tokens) if (now >= exp) this.tokens.delete(k);
    while (this.tokens.size >= this.maxEntries) {
      const oldest = this.tokens.keys().next();
      if (oldest.done) break;
      this.tokens.delete(oldest.value);
    }
  }
}

function hash(token: string): string {
  return oneShotHash('sha256', token, 'base64');
}

/** Parses the TTL header: an integer 1..21600, else undefined. */
export function parseTtl(value: string | string[] | undefined): number | undefined {
  if (typeof value !== 'string' || !/^\s*\d{1,6}\s*$/.test(value)) return undefined;
  const n = Number(value.trim());
  return n >= 1 && n <= IMDS_MAX_TTL_SECONDS ? n : undefined;
}
