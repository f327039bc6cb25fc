import { describe, expect, it, type TestContext } from 'vitest';
import { cosine, LocalEmbedder } from '../../src/core/memory/embedder.js';
import { PgvectorMemory, SEARCH_SETTINGS, vectorSearchSql } from '../../src/core/memory/pgvector.js';
import type { Engram, EngramFilter, NewEngram } from '../../src/core/memory/types.js';
import type { Store } from '../../src/core/store/port.js';
import { ADAPTERS } from '../helpers/isolation.js';

/** The pgvector Memory adapter against the real PostgreSQL, each test in a fresh schema. */

const postgres = ADAPTERS.find((a) => a.name === 'postgres')!;
const embedder = new LocalEmbedder();
const E384 = embedder.name;

interface World {
  store: Store;
  mem: PgvectorMemory;
  add(text: string, over?: Partial<NewEngram>): Promise<NewEngram>;
}

let counter = 0;

async function world(ctx: TestContext, projects: string[] = ['acme']): Promise<World> {
  const store = await postgres.open(ctx);
  for (const p of projects) await store.projects.create(p);
  const mem = new PgvectorMemory(store.sql);
  ctx.onTestFinished(() => mem.close());
  const add = async (text: string, over: Partial<NewEngram> = {}) => {
    counter++;
    const engram: NewEngram = {
      id: `m_${counter.toString().padStart(6, '0')}`,
      project: 'acme',
      text,
      kind: 'observation',
      scope: 'project',
      author: 'ann',
      tags: [],
      taskId: null,
      messageId: null,
      embedder: E384,
      dim: 384,
      createdAt: 1_000 + counter,
      updatedAt: 1_000 + counter,
      embedding: embedder.embedOne(text),
      ...over,
    };
    await mem.insert(engram);
    return engram;
  };
  return { store, mem, add };
}

const everyone = { agent: null, squads: [], all: true };
const all = (over: Partial<EngramFilter> = {}): EngramFilter => ({ project: 'acme', viewer: everyone, ...over });

describe.skipIf(!postgres.available)('Memory on pgvector', () => {
  it('inserts, reads, updates, supersedes, lists and deletes engrams', async (ctx) => {
    const w = await world(ctx, ['acme', 'other']);
    expect(w.mem.capabilities).toEqual({ adapter: 'pgvector', vectorIndex: true, fullText: 'tsvector' });
    const a = await w.add('the deploy pipeline needs the staging key', {
      tags: ['ops', 'deploy', 'ops'],
      taskId: 't_1',
      messageId: 'msg_1',
      kind: 'finding',
    });
    const b = await w.add('billing runs on the first of the month');

    const got = await w.mem.get('acme', a.id);
    expect(got).toEqual({
      id: a.id,
      project: 'acme',
      text: a.text,
      kind: 'finding',
      scope: 'project',
      author: 'ann',
      tags: ['deploy', 'ops'],
      taskId: 't_1',
      messageId: 'msg_1',
      embedder: E384,
      dim: 384,
      createdAt: a.createdAt,
      updatedAt: a.updatedAt,
      supersededBy: null,
    } satisfies Engram);
    // The vector round-trips exactly (float32 in, float32 out).
    expect(Array.from((await w.mem.vector('acme', a.id))!)).toEqual(Array.from(a.embedding));
    // Nothing crosses projects.
    expect(await w.mem.get('other', a.id)).toBeUndefined();
    expect(await w.mem.vector('other', a.id)).toBeUndefined();
    expect(await w.mem.delete('other', a.id)).toBe(false);

    const text = 'the release pipeline needs the production key';
    const v = embedder.embedOne(text);
    await w.mem.update('acme', a.id, { text, tags: ['release'], kind: 'decision', embedding: v, updatedAt: 9_999 });
    const updated = (await w.mem.get('acme', a.id))!;
    expect(updated).toMatchObject({ text, tags: ['release'], kind: 'decision', updatedAt: 9_999, createdAt: a.createdAt });
    expect(Array.from((await w.mem.vector('acme', a.id))!)).toEqual(Array.from(v));
    // The generated tsvector follows the new text.
    expect((await w.mem.searchText(all(), 'production release', 5)).map((r) => r.id)).toEqual([a.id]);
    expect(await w.mem.searchText(all(), 'staging', 5)).toEqual([]);
    // Only updatedAt: tags untouched. An unknown id or another project: nothing happens.
    await w.mem.update('acme', a.id, { updatedAt: 10_000 });
    expect(await w.mem.get('acme', a.id)).toMatchObject({ tags: ['release'], updatedAt: 10_000 });
    await w.mem.update('other', a.id, { text: 'hijacked', updatedAt: 1 });
    await w.mem.update('acme', 'm_missing', { text: 'nobody', updatedAt: 1 });
    expect((await w.mem.get('acme', a.id))!.text).toBe(text);

    await w.mem.setSupersededBy('acme', b.id, a.id, 11_000);
    expect(await w.mem.get('acme', b.id)).toMatchObject({ supersededBy: a.id, updatedAt: 11_000 });
    expect((await w.mem.list(all(), 10)).map((e) => e.id)).toEqual([a.id]);
    expect((await w.mem.list(all({ includeSuperseded: true }), 10)).map((e) => e.id)).toEqual([b.id, a.id]);
    expect((await w.mem.list(all({ includeSuperseded: true }), 1)).map((e) => e.id)).toEqual([b.id]);
    await w.mem.setSupersededBy('acme', b.id, null, 12_000);
    expect((await w.mem.list(all(), 10)).map((e) => e.id)).toEqual([b.id, a.id]);

    expect(await w.mem.delete('acme', a.id)).toBe(true);
    expect(await w.mem.delete('acme', a.id)).toBe(false);
    expect(await w.mem.get('acme', a.id)).toBeUndefined();
    const tags = await w.store.sql.one<{ n: number }>('SELECT COUNT(*) AS n FROM engram_tags');
    expect(Number(tags!.n)).toBe(0);
    // A vector whose length disagrees with `dim` is refused by the table.
    await expect(w.add('wrong', { dim: 16 })).rejects.toThrow(/check constraint/);
  });

  it('ranks by cosine similarity with scores equal to 1 - cosine distance', async (ctx) => {
    const w = await world(ctx);
    const texts = [
      'the deploy to production failed because the staging key expired',
      'production deploy failed: expired key',
      'we renewed the staging key and redeployed',
      'the billing report for march is ready',
      'lunch is at noon on friday',
    ];
    const added = [];
    for (const t of texts) added.push(await w.add(t));
    const q = embedder.embedOne('why did the production deploy fail');
    const hits = await w.mem.searchVector({ ...all(), embedder: E384 }, q, 5);
    const expected = added
      .map((e) => ({ id: e.id, score: cosine(e.embedding, q) }))
      .sort((x, y) => y.score - x.score);
    expect(hits.map((h) => h.id)).toEqual(expected.map((e) => e.id));
    hits.forEach((h, i) => expect(h.score).toBeCloseTo(expected[i]!.score, 5));
    expect(hits[0]!.score).toBeGreaterThan(hits[4]!.score);
    // An identical text scores 1.
    const same = await w.mem.searchVector({ ...all(), embedder: E384 }, added[3]!.embedding, 1);
    expect(same).toEqual([{ id: added[3]!.id, score: expect.closeTo(1, 5) as number }]);
    expect(await w.mem.searchVector({ ...all(), embedder: 'someone-else' }, q, 5)).toEqual([]);
    expect(await w.mem.searchVector({ ...all(), embedder: E384 }, q, 0)).toEqual([]);
  });

  it('searches full text with the OR of the question words, stemmed, ranking more matched words higher', async (ctx) => {
    const w = await world(ctx);
    const three = await w.add('Deployments to production need the release checklist');
    const one = await w.add('production database maintenance window');
    const repeated = await w.add('production production production');
    await w.add('lunch is at noon');
    const hits = await w.mem.searchText(all(), 'How do we deploy a release to production?', 10);
    expect(hits.map((h) => h.id)).toContain(one.id);
    expect(hits.map((h) => h.id)).toContain(repeated.id);
    expect(hits).toHaveLength(3);
    expect(hits[0]!.id).toBe(three.id);
    expect(hits[0]!.score).toBeGreaterThan(hits[1]!.score);
    for (const h of hits) expect(h.score).toBeGreaterThan(0);
    expect((await w.mem.searchText(all(), 'deploy', 1)).map((h) => h.id)).toEqual([three.id]);
    // Stop words only, empty, and operator characters: no match, no error.
    expect(await w.mem.searchText(all(), 'the and of', 10)).toEqual([]);
    expect(await w.mem.searchText(all(), '   ', 10)).toEqual([]);
    const odd = await w.add(`O'Reilly's C:\\path\\file & | ! <-> :* "quoted"`);
    expect((await w.mem.searchText(all(), `O'Reilly's C:\\path\\file & | ! <-> :* "quoted"`, 10))[0]!.id).toBe(odd.id);
    expect(await w.mem.searchText(all(), '& | ! ( ) <-> :*', 10)).toEqual([]);
  });

  it('applies every filter and the viewer inside the queries, before the limit', async (ctx) => {
    const w = await world(ctx, ['acme', 'other']);
    const query = 'the deploy pipeline for the web service failed on friday';
    const near = 'the deploy pipeline for the web service broke on friday evening';
    // Decoys match the query exactly (similarity 1, best text rank) and fail every narrowing filter.
    const decoys: NewEngram[] = [];
    for (let i = 0; i < 12; i++) decoys.push(await w.add(query, { tags: ['ops'] }));
    const t = {
      bob: await w.add(near, { author: 'bob', tags: ['ops'] }),
      squadWeb: await w.add(near, { scope: 'squad:web', tags: ['ops'] }),
      squadDb: await w.add(near, { scope: 'squad:db', tags: ['ops'] }),
      privateBob: await w.add(near, { scope: 'private', author: 'bob', tags: ['ops'] }),
      privateCat: await w.add(near, { scope: 'private', author: 'cat', tags: ['ops'] }),
      decision: await w.add(near, { kind: 'decision', tags: ['ops'] }),
      urgentOps: await w.add(near, { tags: ['ops', 'urgent'] }),
      urgentOnly: await w.add(near, { tags: ['urgent'] }),
      recent: await w.add(near, { createdAt: 50_000, tags: ['ops'] }),
      superseded: await w.add(near, { tags: ['ops'] }),
      otherEmbedder: await w.add(near, { embedder: 'other-384', tags: ['ops'] }),
    };
    await w.mem.setSupersededBy('acme', t.superseded.id, decoys[0]!.id, 2_000);
    await w.add(query, { project: 'other', tags: ['ops', 'urgent'], author: 'bob', kind: 'decision', scope: 'squad:web', createdAt: 60_000 });
    const fixture = [...decoys, ...Object.values(t)];
    const superseded = new Set([t.superseded.id]);

    const cases: { name: string; filter: Partial<EngramFilter>; expect: (e: NewEngram) => boolean }[] = [
      { name: 'all', filter: {}, expect: () => true },
      { name: 'author', filter: { author: 'bob' }, expect: (e) => e.author === 'bob' },
      { name: 'scope', filter: { scope: 'squad:web' }, expect: (e) => e.scope === 'squad:web' },
      { name: 'kind', filter: { kind: 'decision' }, expect: (e) => e.kind === 'decision' },
      { name: 'one tag', filter: { tags: ['urgent'] }, expect: (e) => e.tags.includes('urgent') },
      { name: 'all tags', filter: { tags: ['urgent', 'ops'] }, expect: (e) => e.tags.includes('urgent') && e.tags.includes('ops') },
      { name: 'since', filter: { since: 50_000 }, expect: (e) => e.createdAt >= 50_000 },
      { name: 'superseded', filter: { includeSuperseded: true }, expect: () => true },
      {
        name: 'viewer bob in web',
        filter: { viewer: { agent: 'bob', squads: ['web'], all: false } },
        expect: (e) => e.scope === 'project' || e.scope === 'squad:web' || (e.scope === 'private' && e.author === 'bob'),
      },
      {
        name: 'viewer cat, two squads',
        filter: { viewer: { agent: 'cat', squads: ['web', 'db'], all: false } },
        expect: (e) => e.scope === 'project' || e.scope.startsWith('squad:') || (e.scope === 'private' && e.author === 'cat'),
      },
      { name: 'viewer nobody', filter: { viewer: { agent: null, squads: [], all: false } }, expect: (e) => e.scope === 'project' },
      {
        name: 'viewer dan, private scope asked',
        filter: { viewer: { agent: 'dan', squads: [], all: false }, scope: 'private' },
        expect: () => false,
      },
      {
        name: 'combined',
        filter: { viewer: { agent: 'bob', squads: [], all: false }, author: 'bob', scope: 'private' },
        expect: (e) => e.id === t.privateBob.id,
      },
    ];
    const q = embedder.embedOne(query);
    for (const c of cases) {
      const filter = all(c.filter);
      const want = (embedderName: string | undefined) =>
        fixture
          .filter((e) => c.expect(e) && (filter.includeSuperseded || !superseded.has(e.id)))
          .filter((e) => embedderName === undefined || e.embedder === embedderName)
          .map((e) => e.id)
          .sort();
      const expected = want(E384);
      const n = expected.length;
      const label = `${c.name}: expected ${n}`;
      // A limit of exactly the matching count: any post-filtering after a top-k cut would come
      // back short, since the decoys are the nearest and best-ranked rows.
      const vector = await w.mem.searchVector({ ...filter, embedder: E384 }, q, Math.max(n, 1));
      expect(vector.map((h) => h.id).sort(), label).toEqual(expected);
      const text = await w.mem.searchText({ ...filter, embedder: E384 }, query, Math.max(n, 1));
      expect(text.map((h) => h.id).sort(), label).toEqual(expected);
      const listed = await w.mem.list({ ...filter, embedder: E384 }, 100);
      expect(listed.map((e) => e.id).sort(), label).toEqual(expected);
      // Without an embedder filter, list and full text include every embedder.
      const everyEmbedder = want(undefined);
      expect((await w.mem.list(filter, 100)).map((e) => e.id).sort(), label).toEqual(everyEmbedder);
      expect((await w.mem.searchText(filter, query, 100)).map((h) => h.id).sort(), label).toEqual(everyEmbedder);
    }
  });

  it('returns the filtered rows even when 200 others are nearer (author filter, limit 3)', async (ctx) => {
    const w = await world(ctx);
    const query = 'rotate the api keys for the payment gateway before friday';
    for (let i = 0; i < 200; i++) await w.add(`${query} ${i % 2 === 0 ? 'today' : 'please'}`, { author: 'ann' });
    const b = [
      await w.add('the payment gateway keys were rotated last month', { author: 'bob' }),
      await w.add('friday is the deadline for gateway work', { author: 'bob' }),
      await w.add('api keys live in the vault', { author: 'bob' }),
    ];
    await w.store.sql.script('ANALYZE engrams');
    const hits = await w.mem.searchVector({ ...all({ author: 'bob' }), embedder: E384 }, embedder.embedOne(query), 3);
    expect(hits.map((h) => h.id).sort()).toEqual(b.map((e) => e.id).sort());
    const unfiltered = await w.mem.searchVector({ ...all(), embedder: E384 }, embedder.embedOne(query), 3);
    for (const h of unfiltered) expect(b.map((e) => e.id)).not.toContain(h.id);
    const text = await w.mem.searchText(all({ author: 'bob' }), query, 3);
    expect(text.map((h) => h.id).sort()).toEqual(b.map((e) => e.id).sort());
  });

  it('searches another dimension by exact scan, never mixing embedders, and counts embedders', async (ctx) => {
    const w = await world(ctx);
    const small = new LocalEmbedder(16);
    const texts = ['deploy failed on friday', 'the deploy succeeded', 'billing report', 'lunch menu', 'friday deploy freeze'];
    const added: NewEngram[] = [];
    for (const text of texts) added.push(await w.add(text, { embedder: 'test-16', dim: 16, embedding: small.embedOne(text) }));
    const big = await w.add('deploy failed on friday');
    const q = small.embedOne('did the friday deploy fail');
    const hits = await w.mem.searchVector({ ...all(), embedder: 'test-16' }, q, 3);
    const expected = added.map((e) => ({ id: e.id, score: cosine(e.embedding, q) })).sort((x, y) => y.score - x.score);
    expect(hits.map((h) => h.id)).toEqual(expected.slice(0, 3).map((e) => e.id));
    hits.forEach((h, i) => expect(h.score).toBeCloseTo(expected[i]!.score, 5));
    expect(Array.from((await w.mem.vector('acme', added[0]!.id))!)).toEqual(Array.from(added[0]!.embedding));
    // The 384-dim engram never shows up in a 16-dim query, and the other way round.
    expect(hits.map((h) => h.id)).not.toContain(big.id);
    const bigHits = await w.mem.searchVector({ ...all(), embedder: E384 }, embedder.embedOne('friday deploy'), 10);
    expect(bigHits.map((h) => h.id)).toEqual([big.id]);
    // A vector of the wrong length for the embedder finds nothing rather than failing.
    expect(await w.mem.searchVector({ ...all(), embedder: 'test-16' }, embedder.embedOne('friday deploy'), 3)).toEqual([]);
    // The 16-dim query is an exact scan: no HNSW index covers it.
    const plan = await explain(w.store, vectorSearchSql({ ...all(), embedder: 'test-16' }, q, 3).exact);
    expect(plan).not.toMatch(/engrams_embedding/);

    expect(await w.mem.embedders('acme')).toEqual([
      { embedder: E384, dim: 384, count: 1 },
      { embedder: 'test-16', dim: 16, count: 5 },
    ]);
    expect(await w.mem.embedders('nowhere')).toEqual([]);
  });

  it('pages ids oldest first, per project', async (ctx) => {
    const w = await world(ctx, ['acme', 'other']);
    const ids: string[] = [];
    for (let i = 0; i < 7; i++) {
      ids.push((await w.add(`note ${i}`)).id);
      await w.add(`elsewhere ${i}`, { project: 'other' });
    }
    const pages: string[][] = [];
    let after: string | null = null;
    for (;;) {
      const page: string[] = await w.mem.ids('acme', after, 3);
      if (page.length === 0) break;
      pages.push(page);
      after = page[page.length - 1]!;
    }
    expect(pages.map((p) => p.length)).toEqual([3, 3, 1]);
    expect(pages.flat()).toEqual(ids);
  });

  it('walks the HNSW index for 384-dim queries once there are enough rows, filtered or not', async (ctx) => {
    const w = await world(ctx);
    const topics = ['deploy', 'billing', 'auth', 'search', 'cache', 'queue', 'frontend', 'metrics', 'backup', 'email'];
    const actions = ['failed', 'succeeded', 'was slow', 'needs review', 'was rolled back', 'is flaky', 'got faster', 'was renamed'];
    const things = ['in staging', 'in production', 'for the eu region', 'after the upgrade', 'during the night', 'on friday', 'for customer acme', 'behind the flag'];
    const rows: { text: string; author: string }[] = [];
    for (let i = 0; i < 2_000; i++) {
      const text = `${topics[i % 10]} ${actions[Math.floor(i / 10) % 8]} ${things[Math.floor(i / 80) % 8]} ticket ${i}`;
      // Bob's 2% are all about metrics, far from the deploy question: a plain walk never meets them.
      rows.push({ text, author: i % 50 === 7 ? 'bob' : 'ann' });
    }
    for (let i = 0; i < rows.length; i += 50) {
      await Promise.all(rows.slice(i, i + 50).map((r) => w.add(r.text, { author: r.author })));
    }
    await w.store.sql.script('ANALYZE engrams');

    const question = 'the deploy failed in production';
    const q = embedder.embedOne(question);
    const plain = vectorSearchSql({ ...all(), embedder: E384 }, q, 10);
    const plan = await explain(w.store, plain.indexed!, plain.efSearch);
    expect(plan).toMatch(/Index Scan using engrams_embedding_384/);

    // Results agree with an exact brute force over the same rows (structured text, not random).
    const hits = await w.mem.searchVector({ ...all(), embedder: E384 }, q, 10);
    const scored = rows.map((r) => ({ text: r.text, score: cosine(embedder.embedOne(r.text), q) })).sort((x, y) => y.score - x.score);
    const top = new Set(scored.slice(0, 10).map((s) => s.score.toFixed(5)));
    const recalled = hits.filter((h) => top.has(h.score.toFixed(5))).length;
    expect(recalled).toBeGreaterThanOrEqual(9);
    for (let i = 1; i < hits.length; i++) expect(hits[i]!.score).toBeLessThanOrEqual(hits[i - 1]!.score);

    // A filter that keeps 2% of the rows: the query still gets its full limit, all of them bob's.
    const bob = await w.mem.searchVector({ ...all({ author: 'bob' }), embedder: E384 }, q, 10);
    expect(bob).toHaveLength(10);
    const bobTexts = new Set(rows.filter((r) => r.author === 'bob').map((r) => r.text));
    const byId = new Map((await w.mem.list(all({ author: 'bob' }), 100)).map((e) => [e.id, e.text]));
    for (const h of bob) expect(bobTexts.has(byId.get(h.id)!)).toBe(true);
    const bobExact = rows
      .filter((r) => r.author === 'bob')
      .map((r) => cosine(embedder.embedOne(r.text), q))
      .sort((x, y) => y - x)
      .slice(0, 10);
    bob.forEach((h, i) => expect(h.score).toBeCloseTo(bobExact[i]!, 4));
    const filtered = vectorSearchSql({ ...all({ author: 'bob' }), embedder: E384 }, q, 10);
    const bobPlan = await explain(w.store, filtered.indexed!, filtered.efSearch, true);
    // The planner took the exact path for that filter here. Forced onto the HNSW walk (no sort
    // allowed), the iterative scan still brings back the full limit; a plain walk does not.
    const walk = async (iterative: boolean) =>
      w.store.sql.transaction(async (tx) => {
        await tx.one(SEARCH_SETTINGS, [String(filtered.efSearch)]);
        await tx.run('SET LOCAL enable_sort = off');
        await tx.run('SET LOCAL jit = off');
        if (!iterative) await tx.run('SET LOCAL hnsw.iterative_scan = off');
        const analyzed = await tx.all<{ 'QUERY PLAN': string }>(`EXPLAIN (ANALYZE, COSTS OFF) ${filtered.indexed!.sql}`, filtered.indexed!.params);
        const hits = await tx.all<{ id: string; distance: number }>(filtered.indexed!.sql, filtered.indexed!.params);
        return { plan: analyzed.map((r) => r['QUERY PLAN']).join('\n'), hits };
      });
    const iterative = await walk(true);
    expect(iterative.plan).toMatch(/Index Scan using engrams_embedding_384/);
    expect(iterative.hits).toHaveLength(10);
    const exactScores = new Set(bobExact.map((s) => s.toFixed(4)));
    expect(iterative.hits.filter((h) => exactScores.has((1 - h.distance).toFixed(4))).length).toBeGreaterThanOrEqual(9);
    const plainWalk = await walk(false);
    expect(plainWalk.hits.length).toBeLessThan(10);
    ctx.annotate(
      `plan, no filter:\n${plan}\n\nplan, author filter (EXPLAIN ANALYZE):\n${bobPlan}\n\n` +
        `forced HNSW, author filter, iterative scan:\n${iterative.plan}\n\nwithout iterative scan: ${plainWalk.hits.length} rows`,
    );
  });
});

/** EXPLAIN of one statement under the search settings, in a transaction like the adapter's. */
async function explain(store: Store, statement: { sql: string; params: unknown[] }, efSearch?: number, analyze = false): Promise<string> {
  return store.sql.transaction(async (tx) => {
    if (efSearch !== undefined) await tx.one(SEARCH_SETTINGS, [String(efSearch)]);
    const rows = await tx.all<{ 'QUERY PLAN': string }>(`EXPLAIN ${analyze ? '(ANALYZE, COSTS OFF) ' : ''}${statement.sql}`, statement.params);
    return rows.map((r) => r['QUERY PLAN']).join('\n');
  });
}
