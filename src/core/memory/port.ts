import type { Engram, EngramFilter, NewEngram, Ranked } from './types.js';

/** What each Memory adapter can do. */
export interface MemoryCapabilities {
  adapter: 'sqlite' | 'pgvector';
  /** An approximate nearest-neighbour index (HNSW) rather than an exact scan. */
  vectorIndex: boolean;
  fullText: 'fts5' | 'tsvector';
}

/**
 * The Memory port. Adapters store engrams and answer two ranked searches; the rules (scopes,
 * dedup, fusion, recency, context packs) live in `service.ts` and are the same on every adapter.
 * Every method is scoped by `project`; the filter's viewer decides which scopes are visible.
 */
export interface Memory {
  readonly capabilities: MemoryCapabilities;

  insert(engram: NewEngram): Promise<void>;
  /** Replaces text, tags, kind and embedding of an existing engram (dedup merge, reindex). */
  update(project: string, id: string, patch: { text?: string; tags?: string[]; kind?: Engram['kind']; embedding?: Float32Array; embedder?: string; dim?: number; updatedAt: number }): Promise<void>;
  setSupersededBy(project: string, id: string, by: string | null, at: number): Promise<void>;
  get(project: string, id: string): Promise<Engram | undefined>;
  /** Several engrams in one query (unknown ids are left out; order not guaranteed). */
  getMany(project: string, ids: string[]): Promise<Engram[]>;
  /** The engram's stored vector (for tests and reindex checks). */
  vector(project: string, id: string): Promise<Float32Array | undefined>;
  delete(project: string, id: string): Promise<boolean>;
  /** Newest first. */
  list(filter: EngramFilter, limit: number): Promise<Engram[]>;

  /** Top `limit` by cosine similarity among engrams passing the filter (filter.embedder required). */
  searchVector(filter: EngramFilter & { embedder: string }, vector: Float32Array, limit: number): Promise<Ranked[]>;
  /** Top `limit` by full-text rank among engrams passing the filter. */
  searchText(filter: EngramFilter, query: string, limit: number): Promise<Ranked[]>;

  /** Embedders (name, dimension, count) present in the project: for `sos doctor` and reindex. */
  embedders(project: string): Promise<{ embedder: string; dim: number; count: number }[]>;
  /** All ids of the project, oldest first, for reindexing in batches. */
  ids(project: string, after: string | null, limit: number): Promise<string[]>;

  close(): Promise<void>;
}
