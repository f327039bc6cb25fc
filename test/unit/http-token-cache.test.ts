import { describe, expect, it } from 'vitest';
import type { FoundToken } from '../../src/core/auth/caller.js';
import { TokenCache } from '../../src/core/auth/token-cache.js';

/**
 * The daemon's cache of valid tokens (auth/token-cache.ts): a valid token is trusted for the TTL
 * and then looked up again, a refused one is looked up every time, overlapping lookups share one.
 */

const token = (over: Partial<FoundToken> = {}): FoundToken => ({
  id: 'tok_1',
  project: 'default',
  agent: 'kasra',
  role: 'agent',
  prefix: 'sos_abcdefgh',
  createdAt: 0,
  lastUsedAt: null,
  revokedAt: null,
  projectExists: true,
  ...over,
});

/** A Store stand-in: the token table as a map, every lookup counted. */
function table(rows: Record<string, FoundToken>) {
  const calls: string[] = [];
  return {
    rows,
    calls,
    find: async (hash: string) => {
      calls.push(hash);
      await Promise.resolve();
      return rows[hash];
    },
  };
}

describe('TokenCache', () => {
  it('trusts a valid token for the TTL, then looks it up again and sees a revocation', async () => {
    let now = 1_000;
    const t = table({ h: token() });
    const cache = new TokenCache(t.find, 1_000, 100, () => now);
    expect(await cache.findByHash('h')).toMatchObject({ id: 'tok_1', revokedAt: null });
    now += 999;
    expect(await cache.findByHash('h')).toMatchObject({ revokedAt: null });
    expect(t.calls).toHaveLength(1);
    t.rows.h = token({ revokedAt: now });
    now += 1; // the TTL is over
    expect(await cache.findByHash('h')).toMatchObject({ revokedAt: 1_999 });
    // A refused token is never kept: each request looks it up (and is refused, and counted) again.
    expect(await cache.findByHash('h')).toMatchObject({ revokedAt: 1_999 });
    expect(t.calls).toHaveLength(3);
  });

  it('never keeps an unknown token, or one whose project is gone', async () => {
    const t = table({ gone: token({ projectExists: false }) });
    const cache = new TokenCache(t.find, 60_000);
    for (let i = 0; i < 3; i++) {
      expect(await cache.findByHash('nope')).toBeUndefined();
      expect(await cache.findByHash('gone')).toMatchObject({ projectExists: false });
    }
    expect(t.calls).toEqual(['nope', 'gone', 'nope', 'gone', 'nope', 'gone']);
  });

  it('lets overlapping lookups of one token share one query; a failed lookup is not kept', async () => {
    const t = table({ h: token() });
    const cache = new TokenCache(t.find, 60_000);
    const all = await Promise.all(Array.from({ length: 50 }, () => cache.findByHash('h')));
    expect(new Set(all.map((x) => x?.id))).toEqual(new Set(['tok_1']));
    expect(t.calls).toHaveLength(1);

    let fail = true;
    const flaky = new TokenCache(async (hash) => {
      if (fail) throw new Error('database is locked');
      return t.rows[hash];
    }, 60_000);
    await expect(flaky.findByHash('h')).rejects.toThrow(/locked/);
    fail = false;
    expect(await flaky.findByHash('h')).toMatchObject({ id: 'tok_1' });
  });

  it('stays within its size: expired entries go first, then everything', async () => {
    let now = 0;
    const rows = Object.fromEntries(Array.from({ length: 10 }, (_, i) => [`h${i}`, token({ id: `tok_${i}` })]));
    const t = table(rows);
    const cache = new TokenCache(t.find, 100, 4, () => now);
    for (let i = 0; i < 4; i++) await cache.findByHash(`h${i}`);
    now = 50;
    await cache.findByHash('h0'); // still fresh: no lookup
    expect(t.calls).toHaveLength(4);
    now = 150; // all four expired: a fifth token evicts them rather than growing the map
    await cache.findByHash('h4');
    now = 160;
    await cache.findByHash('h4');
    await cache.findByHash('h1');
    expect(t.calls).toEqual(['h0', 'h1', 'h2', 'h3', 'h4', 'h1']);
  });
});
