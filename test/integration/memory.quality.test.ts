import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { newId } from '../../src/core/ids.js';
import { recall } from '../../src/core/memory/service.js';
import type { EngramKind } from '../../src/core/memory/types.js';
import { seedAgents } from '../helpers/bus.js';
import { ROOT } from '../helpers/cli.js';
import { MEMORY_ADAPTERS } from '../helpers/memory.js';

/**
 * Retrieval quality on a hand-written labelled set (test/fixtures/memory/retrieval.json: engrams
 * written the way agents write them, and paraphrased questions with their relevant engrams).
 * Prints recall@5 and MRR for hybrid, vector-only and text-only; fails if the hybrid default drops
 * below what was measured when it was tuned (minus a small margin).
 */

interface Fixture {
  engrams: { id: string; text: string; kind: EngramKind; author: string; tags?: string[] }[];
  queries: { q: string; relevant: string[] }[];
}

const fixture = JSON.parse(readFileSync(join(ROOT, 'test/fixtures/memory/retrieval.json'), 'utf8')) as Fixture;

/** The lower of SQLite (0.746 / 0.644) and pgvector (0.714 / 0.618), measured when the local embedder was tuned. */
const FLOOR = { recallAt5: 0.71, mrr: 0.61 };
const MARGIN = 0.03;

describe.each(MEMORY_ADAPTERS)('retrieval quality: $name', (adapter) => {
  it.skipIf(!adapter.available)(`${fixture.engrams.length} engrams, ${fixture.queries.length} queries`, async (ctx) => {
    expect(fixture.engrams.length).toBeGreaterThanOrEqual(150);
    expect(fixture.queries.length).toBeGreaterThanOrEqual(40);
    const w = await adapter.open(ctx);
    const authors = [...new Set(fixture.engrams.map((e) => e.author))];
    await seedAgents(w, Object.fromEntries(authors.map((a) => [a, 'worker' as const])));
    const label = new Map<string, string>();
    const vectors = await w.mem.embedder.embed(fixture.engrams.map((e) => e.text));
    const at = Date.now();
    for (const [i, e] of fixture.engrams.entries()) {
      const id = newId('eng', at);
      label.set(id, e.id);
      await w.mem.memory.insert({
        id,
        project: w.project,
        text: e.text,
        kind: e.kind,
        scope: 'project',
        author: e.author,
        tags: e.tags ?? [],
        taskId: null,
        messageId: null,
        embedder: w.mem.embedder.name,
        dim: w.mem.embedder.dim,
        embedding: vectors[i]!,
        createdAt: at,
        updatedAt: at,
      });
    }
    const score = async (mode: 'hybrid' | 'vector' | 'text') => {
      let hits = 0;
      let rr = 0;
      for (const q of fixture.queries) {
        const ranked = (await recall(w.mem, w.as(null), { query: q.q, limit: 10, mode })).map((r) => label.get(r.engram.id));
        const first = ranked.findIndex((id) => id !== undefined && q.relevant.includes(id));
        if (first >= 0 && first < 5) hits++;
        if (first >= 0) rr += 1 / (first + 1);
      }
      return { recallAt5: hits / fixture.queries.length, mrr: rr / fixture.queries.length };
    };
    const hybrid = await score('hybrid');
    const vector = await score('vector');
    const text = await score('text');
    const f = (m: { recallAt5: number; mrr: number }) => `recall@5 ${m.recallAt5.toFixed(3)}  MRR ${m.mrr.toFixed(3)}`;
    console.info(`retrieval quality (${adapter.name}, local embedder):\n  hybrid  ${f(hybrid)}\n  vector  ${f(vector)}\n  text    ${f(text)}`);
    expect(hybrid.recallAt5).toBeGreaterThanOrEqual(FLOOR.recallAt5 - MARGIN);
    expect(hybrid.mrr).toBeGreaterThanOrEqual(FLOOR.mrr - MARGIN);
  });
});
