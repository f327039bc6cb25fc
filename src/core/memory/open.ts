import type { Bus } from '../bus/port.js';
import type { ConfigValues } from '../config/variables.js';
import { openStore, parseStoreTarget } from '../store/open.js';
import type { Store } from '../store/port.js';
import { type Embedder, LocalEmbedder } from './embedder.js';
import type { Memory } from './port.js';
import type { MemoryContext } from './service.js';

/** The configured embedder; HTTP embedders load only when configured. */
export async function openEmbedder(values: ConfigValues): Promise<Embedder> {
  if (values.embedder === undefined || values.embedder === 'local') return new LocalEmbedder();
  const { createEmbedder } = await import('./http-embedders.js');
  return createEmbedder(values.embedder, {
    ...(values.embedderUrl !== undefined ? { baseUrl: values.embedderUrl } : {}),
    ...(values.embedderKey !== undefined ? { apiKey: values.embedderKey } : {}),
  });
}

/** Memory over a Store's database: SQLite (exact scan + FTS5) or PostgreSQL (pgvector + tsvector). */
export async function memoryOn(store: Store): Promise<Memory> {
  if (store.capabilities.dialect === 'sqlite') {
    const { SqliteMemory } = await import('./sqlite.js');
    return new SqliteMemory(store.sql);
  }
  const { PgvectorMemory } = await import('./pgvector.js');
  return new PgvectorMemory(store.sql);
}

/**
 * The memory context for a session: on the Store's own database, or on SOS_MEMORY_DB when that
 * names another one (which must be initialised with `sos init --db <it>`). `close` releases what
 * this opened, in reverse order.
 */
export async function openMemoryContext(
  values: ConfigValues,
  store: Store,
  cwd: string,
  bus?: Bus,
): Promise<{ ctx: MemoryContext; close: () => Promise<void> }> {
  let memoryStore = store;
  let own: Store | undefined;
  if (values.memoryDb !== undefined && values.memoryDb !== values.db) {
    own = await openStore({ target: parseStoreTarget(values.memoryDb, cwd), pgSchema: values.pgSchema, busyTimeoutMs: values.busyTimeoutMs });
    try {
      await own.assertReady();
    } catch (err) {
      await own.close();
      throw err;
    }
    memoryStore = own;
  }
  const memory = await memoryOn(memoryStore);
  const embedder = await openEmbedder(values);
  return {
    ctx: { store, memory, embedder, maxEngramBytes: values.maxEngramBytes, ...(bus ? { bus } : {}) },
    close: async () => {
      await memory.close();
      await own?.close();
    },
  };
}
