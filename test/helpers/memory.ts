import type { TestContext } from 'vitest';
import { LocalEmbedder } from '../../src/core/memory/embedder.js';
import { memoryOn } from '../../src/core/memory/open.js';
import type { MemoryContext } from '../../src/core/memory/service.js';
import { BUS_ADAPTERS, type BusWorld } from './bus.js';

/** Memory fixtures: SQLite (exact scan + FTS5) and PostgreSQL (pgvector + tsvector), with their SQL bus. */
export interface MemoryWorld extends BusWorld {
  mem: MemoryContext;
}

export const MEMORY_ADAPTERS = BUS_ADAPTERS.filter((a) => a.name.startsWith('sql on')).map((a) => ({
  name: a.name === 'sql on sqlite' ? 'sqlite' : 'pgvector',
  available: a.available,
  async open(ctx: TestContext, options: { now?: () => number } = {}): Promise<MemoryWorld> {
    const world = await a.open(ctx, options.now ? { now: options.now } : {});
    const memory = await memoryOn(world.store);
    ctx.onTestFinished(() => memory.close());
    const mem: MemoryContext = {
      store: world.store,
      memory,
      embedder: new LocalEmbedder(),
      maxEngramBytes: 32_768,
      bus: world.ctx.bus,
      ...(options.now ? { now: options.now } : {}),
    };
    return { ...world, mem };
  },
}));
