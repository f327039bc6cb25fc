import type { SqlDriver, SqlExecutor } from '../store/sql/driver.js';
import type { Memory, MemoryCapabilities } from './port.js';
import { embeddersOf, type EngramRow as SharedRow, idsAfter, pairsThenAny, toEngram } from './sql-common.js';
import type { Engram, EngramFilter, NewEngram, Ranked } from './types.js';

/** The shared row, with its tags selected in the same row. */
interface EngramRow extends SharedRow {
  tags: string[];
}

/** Every column an Engram needs, tags included (sorted), in one row: no second round trip. */
const COLUMNS = `e.seq, e.id, e.project, e.text, e.kind, e.scope, e.author, e.task_id, e.message_id, e.embedder, e.dim,
  e.created_at, e.updated_at, e.superseded_by,
  ARRAY(SELECT t.tag FROM engram_tags t WHERE t.engram_seq = e.seq ORDER BY t.tag) AS tags`;

/**
 * The dimension the migration built an HNSW index for (`engrams_embedding_384`). Its queries must
 * repeat the index's expression and predicate word for word, so they are written with the literal.
 */
export const INDEXED_DIM = 384;

/** pgvector's ceiling for `hnsw.ef_search`. */
const MAX_EF_SEARCH = 1000;

/** The text form pgvector parses: `[0.1,0.2,…]` (shortest round-tripping decimals). */
export function vectorLiteral(v: Float32Array): string {
  return `[${Array.from(v, (x) => String(x)).join(',')}]`;
}

function parseVector(text: string): Float32Array {
  return Float32Array.from(JSON.parse(text) as number[]);
}

/**
 * The viewer's visibility and the narrowing filters as one SQL condition over alias `e`; `$n`
 * numbering continues from `params`. Lists go as one array parameter, so the statement text (and
 * its prepared plan) does not change with the number of squads or tags.
 */
export function filterSql(f: EngramFilter, params: unknown[]): string {
  const p = (v: unknown) => {
    params.push(v);
    return `$${params.length}`;
  };
  const where = [`e.project = ${p(f.project)}`];
  if (!f.viewer.all) {
    const visible = [`e.scope = 'project'`];
    if (f.viewer.squads.length > 0) visible.push(`e.scope = ANY(${p(f.viewer.squads.map((s) => `squad:${s}`))}::text[])`);
    if (f.viewer.agent !== null) visible.push(`(e.scope = 'private' AND e.author = ${p(f.viewer.agent)})`);
    where.push(`(${visible.join(' OR ')})`);
  }
  if (f.embedder !== undefined) where.push(`e.embedder = ${p(f.embedder)}`);
  if (f.scope !== undefined) where.push(`e.scope = ${p(f.scope)}`);
  if (f.author !== undefined) where.push(`e.author = ${p(f.author)}`);
  if (f.kind !== undefined) where.push(`e.kind = ${p(f.kind)}`);
  if (f.since !== undefined) where.push(`e.created_at >= ${p(f.since)}`);
  if (!f.includeSuperseded) where.push('e.superseded_by IS NULL');
  const tags = [...new Set(f.tags ?? [])];
  // Every given tag must be present.
  if (tags.length > 0) where.push(`ARRAY(SELECT t.tag FROM engram_tags t WHERE t.engram_seq = e.seq) @> ${p(tags)}::text[]`);
  return where.join(' AND ');
}

/** Filters beyond project, embedder and visibility: the HNSW scan has to look further for them. */
function narrowing(f: EngramFilter): boolean {
  return f.scope !== undefined || f.author !== undefined || f.kind !== undefined || f.since !== undefined || (f.tags?.length ?? 0) > 0;
}

/** Run (in the search's transaction) before the indexed query; `$1` is `hnsw.ef_search`. */
export const SEARCH_SETTINGS =
  "SELECT set_config('hnsw.ef_search', $1, true), set_config('hnsw.iterative_scan', 'relaxed_order', true)";

export interface VectorSearchSql {
  indexed: { sql: string; params: unknown[] } | undefined;
  exact: { sql: string; params: unknown[] };
  efSearch: number;
}

/**
 * The vector search statements (both return `id, distance` nearest first; score = 1 - distance).
 * - `indexed` (only for the default dimension): `ORDER BY (embedding::vector(384)) <=>
 *   $1::vector(384)` with `dim = 384`, the HNSW index's expression and predicate word for word,
 *   so the planner can walk the index (it still prefers the btree and a sort when the filters
 *   leave few rows). It runs with `SEARCH_SETTINGS`: `hnsw.ef_search` = `efSearch`, and
 *   `hnsw.iterative_scan = relaxed_order` so the walk continues until `limit` rows pass the
 *   filters; relaxed order may swap neighbours, so the outer query sorts again.
 * - `exact`: `ORDER BY embedding <=> $1::vector` with `dim = <the vector's length>` (an expression
 *   no index covers): every other dimension, and the fallback.
 * `efSearch` grows with the limit, and more when narrowing filters make matches rarer.
 */
export function vectorSearchSql(filter: EngramFilter & { embedder: string }, vector: Float32Array, limit: number): VectorSearchSql {
  const params: unknown[] = [vectorLiteral(vector)];
  const where = filterSql(filter, params);
  params.push(limit);
  const limitParam = `$${params.length}`;
  const exact = {
    sql: `SELECT e.id, e.embedding <=> $1::vector AS distance FROM engrams e
    WHERE ${where} AND e.dim = $${params.length + 1}
    ORDER BY e.embedding <=> $1::vector, e.seq LIMIT ${limitParam}`,
    params: [...params, vector.length],
  };
  const indexed =
    vector.length === INDEXED_DIM
      ? {
          sql: `WITH hits AS MATERIALIZED (
    SELECT e.id, e.seq, (e.embedding::vector(384)) <=> $1::vector(384) AS distance FROM engrams e
    WHERE ${where} AND e.dim = 384
    ORDER BY (e.embedding::vector(384)) <=> $1::vector(384) LIMIT ${limitParam})
  SELECT id, distance FROM hits ORDER BY distance, seq`,
          params,
        }
      : undefined;
  // Near-duplicate checks ask for 1 or 2 rows; in the crowded space of the local embedder the
  // graph walk needs a wider beam than 40 to find the true nearest (bench: recall@10 0.74 at 40).
  const efSearch = Math.min(MAX_EF_SEARCH, Math.max(limit <= 2 ? 100 : 40, limit * (narrowing(filter) ? 8 : 4)));
  return { indexed, exact, efSearch };
}

/**
 * Memory on PostgreSQL with pgvector: vectors in a `vector` column (any dimension), an HNSW index
 * (cosine) for the default 384 dimensions, full text in a generated `tsvector` with a GIN index.
 * Filters are part of every query's WHERE, so they apply before the LIMIT: the HNSW scan runs with
 * `hnsw.iterative_scan = relaxed_order` (it keeps walking the graph until `limit` rows pass the
 * filters) and an exact scan backs it up when the walk gives up early.
 */
export class PgvectorMemory implements Memory {
  readonly capabilities: MemoryCapabilities = { adapter: 'pgvector', vectorIndex: true, fullText: 'tsvector' };

  constructor(private readonly db: SqlDriver) {}

  private toEngram(row: EngramRow): Engram {
    return toEngram(row, row.tags);
  }

  async insert(e: NewEngram): Promise<void> {
    // One statement: the engram and its tags commit together without a transaction round trip.
    await this.db.run(
      `WITH e AS (
         INSERT INTO engrams (id, project, text, kind, scope, author, task_id, message_id, embedder, dim, embedding, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11::vector, $12, $13) RETURNING seq)
       INSERT INTO engram_tags (engram_seq, tag) SELECT e.seq, t.tag FROM e, (SELECT DISTINCT unnest($14::text[]) AS tag) t`,
      [
        e.id,
        e.project,
        e.text,
        e.kind,
        e.scope,
        e.author,
        e.taskId,
        e.messageId,
        e.embedder,
        e.dim,
        vectorLiteral(e.embedding),
        e.createdAt,
        e.updatedAt,
        e.tags,
      ],
    );
  }

  async update(
    project: string,
    id: string,
    patch: { text?: string; tags?: string[]; kind?: Engram['kind']; embedding?: Float32Array; embedder?: string; dim?: number; updatedAt: number },
  ): Promise<void> {
    await this.db.transaction(async (tx) => {
      const sets = ['updated_at = $3'];
      const params: unknown[] = [project, id, patch.updatedAt];
      const set = (column: string, value: unknown, cast = '') => {
        params.push(value);
        sets.push(`${column} = $${params.length}${cast}`);
      };
      if (patch.text !== undefined) set('text', patch.text);
      if (patch.kind !== undefined) set('kind', patch.kind);
      if (patch.embedding !== undefined) set('embedding', vectorLiteral(patch.embedding), '::vector');
      if (patch.embedder !== undefined) set('embedder', patch.embedder);
      if (patch.dim !== undefined) set('dim', patch.dim);
      const row = await tx.one<{ seq: number }>(
        `UPDATE engrams SET ${sets.join(', ')} WHERE project = $1 AND id = $2 RETURNING seq`,
        params,
      );
      if (!row || patch.tags === undefined) return;
      await tx.run('DELETE FROM engram_tags WHERE engram_seq = $1', [row.seq]);
      await tx.run('INSERT INTO engram_tags (engram_seq, tag) SELECT $1, t.tag FROM (SELECT DISTINCT unnest($2::text[]) AS tag) t', [
        row.seq,
        patch.tags,
      ]);
    });
  }

  async setSupersededBy(project: string, id: string, by: string | null, at: number): Promise<void> {
    await this.db.run('UPDATE engrams SET superseded_by = $1, updated_at = $2 WHERE project = $3 AND id = $4', [by, at, project, id]);
  }

  async get(project: string, id: string): Promise<Engram | undefined> {
    const row = await this.db.one<EngramRow>(`SELECT ${COLUMNS} FROM engrams e WHERE e.project = $1 AND e.id = $2`, [project, id]);
    return row ? this.toEngram(row) : undefined;
  }

  async getMany(project: string, ids: string[]): Promise<Engram[]> {
    if (ids.length === 0) return [];
    const rows = await this.db.all<EngramRow>(`SELECT ${COLUMNS} FROM engrams e WHERE e.project = $1 AND e.id = ANY($2::text[])`, [project, ids]);
    return rows.map((r) => this.toEngram(r));
  }

  async vector(project: string, id: string): Promise<Float32Array | undefined> {
    const row = await this.db.one<{ embedding: string }>('SELECT embedding::text AS embedding FROM engrams WHERE project = $1 AND id = $2', [
      project,
      id,
    ]);
    return row ? parseVector(row.embedding) : undefined;
  }

  async delete(project: string, id: string): Promise<boolean> {
    return (await this.db.run('DELETE FROM engrams WHERE project = $1 AND id = $2', [project, id])) > 0;
  }

  async list(filter: EngramFilter, limit: number): Promise<Engram[]> {
    const params: unknown[] = [];
    const where = filterSql(filter, params);
    params.push(limit);
    const rows = await this.db.all<EngramRow>(`SELECT ${COLUMNS} FROM engrams e WHERE ${where} ORDER BY e.seq DESC LIMIT $${params.length}`, params);
    return rows.map((r) => this.toEngram(r));
  }

  /**
   * See `vectorSearchSql`. If the HNSW walk returns fewer than `limit` rows (the filters leave
   * fewer, or it stopped at `hnsw.max_scan_tuples`), the exact scan answers instead, so a selective
   * filter never loses rows to the approximate index.
   */
  async searchVector(filter: EngramFilter & { embedder: string }, vector: Float32Array, limit: number): Promise<Ranked[]> {
    if (limit <= 0) return [];
    const q = vectorSearchSql(filter, vector, limit);
    const run = async (db: SqlExecutor, statement: { sql: string; params: unknown[] }) =>
      (await db.all<{ id: string; distance: number }>(statement.sql, statement.params)).map((r) => ({ id: r.id, score: 1 - Number(r.distance) }));
    const indexed = q.indexed;
    if (indexed === undefined) return run(this.db, q.exact);
    return this.db.transaction(async (tx) => {
      await tx.one(SEARCH_SETTINGS, [String(q.efSearch)]);
      const hits = await run(tx, indexed);
      return hits.length < limit ? run(tx, q.exact) : hits;
    });
  }

  /**
   * `tsv @@ q` (GIN) with q the OR of the question's lexemes, ranked by `ts_rank`: with an OR
   * query it rewards matching more of the question's words, where `ts_rank_cd` scores one word
   * repeated three times like three different words.
   */
  async searchText(filter: EngramFilter, query: string, limit: number): Promise<Ranked[]> {
    if (limit <= 0 || query.trim() === '') return [];
    // The question's lexemes (English stemming, stop words gone), in order, at most 8.
    const lexemes = (
      await this.db.all<{ lexeme: string }>("SELECT lexeme FROM unnest(to_tsvector('english', $1)) ORDER BY positions[1] LIMIT 8", [query])
    ).map((r) => `'${r.lexeme.replace(/\\/g, '\\\\').replace(/'/g, "''")}'`);
    if (lexemes.length === 0) return [];
    const run = async (tsquery: string, n: number) => {
      const params: unknown[] = [tsquery];
      const where = filterSql(filter, params);
      params.push(n);
      const rows = await this.db.all<{ id: string; score: number }>(
        `SELECT e.id, ts_rank(e.tsv, $1::tsquery) AS score FROM engrams e
         WHERE e.tsv @@ $1::tsquery AND ${where}
         ORDER BY score DESC, e.seq DESC LIMIT $${params.length}`,
        params,
      );
      return rows.map((r) => ({ id: r.id, score: Number(r.score) }));
    };
    const pairs: string[] = [];
    for (let i = 0; i < lexemes.length; i++) for (let j = i + 1; j < lexemes.length; j++) pairs.push(`(${lexemes[i]} & ${lexemes[j]})`);
    return pairsThenAny(run, pairs.length ? pairs.join(' | ') : undefined, lexemes.join(' | '), limit);
  }

  embedders(project: string): Promise<{ embedder: string; dim: number; count: number }[]> {
    return embeddersOf(this.db, project);
  }

  ids(project: string, after: string | null, limit: number): Promise<string[]> {
    return idsAfter(this.db, project, after, limit);
  }

  async close(): Promise<void> {
    // The driver belongs to the Store.
  }
}
