import { hash as oneShotHash, randomBytes } from 'node:crypto';

export const IMDS_MAX_TTL_SECONDS = 21600;

/** Tokens held at once, in all (each is ~100 bytes of memory). */
export const IMDS_MAX_TOKENS = 10_000;
/** Tokens one caller (a local uid, else a remote address) holds at once; its oldest goes first. */
export const IMDS_MAX_TOKENS_PER_CALLER = 1_000;

/**
 * IMDSv2 session tokens: random, expiring, bounded in number. Only hashes are
 * kept, so the store itself holds no usable token. Eviction is fair: a caller
 * over its own limit loses its own oldest token, and a full store evicts the
 * oldest token of the caller holding the most, so one caller flooding the
 * store cannot evict the tokens of another.
 */
export class ImdsTokenStore {
  private readonly tokens = new Map<string, { exp: number; owner: string }>();
  /** Per caller, its token hashes in issue order. */
  private readonly byOwner = new Map<string, Set<string>>();

  constructor(
    private readonly maxEntries = IMDS_MAX_TOKENS,
    private readonly now: () => number = Date.now,
    private readonly maxPerOwner = IMDS_MAX_TOKENS_PER_CALLER,
  ) {}

  /** A new token valid for `ttlSeconds`, held for `owner` (who asked: `uid:1000`, `addr:10.0.0.5`). */
  issue(ttlSeconds: number, owner = ''): string {
    const token = randomBytes(32).toString('base64url');
    const key = hash(token);
    let own = this.byOwner.get(owner);
    if (own === undefined) {
      own = new Set();
      this.byOwner.set(owner, own);
    }
    if (own.size >= this.maxPerOwner) this.purgeExpired();
    if (own.size >= this.maxPerOwner) this.delete(own.values().next().value!);
    if (this.tokens.size >= this.maxEntries) this.purgeExpired();
    if (this.tokens.size >= this.maxEntries) {
      let largest: Set<string> | undefined;
      for (const set of this.byOwner.values()) if (largest === undefined || set.size > largest.size) largest = set;
      const oldest = largest?.values().next();
      if (oldest && !oldest.done) this.delete(oldest.value);
    }
    this.tokens.set(key, { exp: this.now() + ttlSeconds * 1000, owner });
    own.add(key);
    this.byOwner.set(owner, own);
    return token;
  }

  valid(token: string | string[] | undefined): boolean {
    if (typeof token !== 'string' || token.length === 0 || token.length > 200) return false;
    const key = hash(token);
    const entry = this.tokens.get(key);
    if (entry === undefined) return false;
    if (this.now() >= entry.exp) {
      this.delete(key);
      return false;
    }
    return true;
  }

  get size(): number {
    return this.tokens.size;
  }

  private delete(key: string): void {
    const entry = this.tokens.get(key);
    if (entry === undefined) return;
    this.tokens.delete(key);
    const own = this.byOwner.get(entry.owner);
    own?.delete(key);
    if (own?.size === 0) this.byOwner.delete(entry.owner);
  }

  private purgeExpired(): void {
    const now = this.now();
    for (const [k, e] of this.tokens) if (now >= e.exp) this.delete(k);
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
