import type { FoundToken } from './caller.js';

/**
 * A short-lived cache of valid tokens, for the daemon's HTTP server. Without it every request
 * looks its token up in the Store (a token query and a project query, queued on SQLite behind
 * every write of the daemon), though an agent sends the same token again and again.
 *
 * What it keeps and for how long is the whole of its contract:
 * - only tokens that were valid when looked up (not revoked, project present). An unknown or
 *   revoked token is looked up every time, so every refusal is still recorded where
 *   `resolveCaller` records it;
 * - for `ttlMs` at most: a token revoked elsewhere (`sos tokens revoke`, a lifecycle restart) is
 *   refused by the daemon within `ttlMs` of its revocation, and its `last_used_at` is still
 *   touched (the Store does that, at most once a minute, on a real lookup);
 * - lookups of one token that overlap share one Store query.
 */
export class TokenCache {
  private readonly valid = new Map<string, { token: FoundToken; until: number }>();
  private readonly pending = new Map<string, Promise<FoundToken | undefined>>();

  constructor(
    private readonly find: (hash: string) => Promise<FoundToken | undefined>,
    private readonly ttlMs: number,
    private readonly maxEntries = 10_000,
    private readonly now: () => number = Date.now,
  ) {}

  /** The token with this secret hash, from the cache while fresh, else from `find`. */
  findByHash(hash: string): Promise<FoundToken | undefined> {
    const hit = this.valid.get(hash);
    if (hit !== undefined) {
      if (hit.until > this.now()) return Promise.resolve(hit.token);
      this.valid.delete(hash);
    }
    const inFlight = this.pending.get(hash);
    if (inFlight !== undefined) return inFlight;
    const lookup = this.find(hash)
      .then((token) => {
        if (token !== undefined && token.revokedAt === null && token.projectExists) this.keep(hash, token);
        return token;
      })
      .finally(() => this.pending.delete(hash));
    this.pending.set(hash, lookup);
    return lookup;
  }

  /** Forgets every token (the next request of each looks it up again). */
  clear(): void {
    this.valid.clear();
  }

  private keep(hash: string, token: FoundToken): void {
    const now = this.now();
    if (this.valid.size >= this.maxEntries) {
      for (const [key, entry] of this.valid) if (entry.until <= now) this.valid.delete(key);
      if (this.valid.size >= this.maxEntries) this.valid.clear();
    }
    this.valid.set(hash, { token, until: now + this.ttlMs });
  }
}
