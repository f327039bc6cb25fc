import type { SqlDriver } from '../store/sql/driver.js';
import { fromBlob, STOP, toBlob } from './embedder.js';
import type { Memory, MemoryCapabilities } from './port.js';
import { embeddersOf, type EngramRow, idsAfter, pairsThenAny, toEngram } from './sql-common.js';
import type { Engram, EngramFilter, NewEngram, Ranked } from './types.js';

const COLUMNS = 'seq, id, project, text, kind, scope, author, task_id, message_id, embedder, dim, created_at, updated_at, superseded_by';

/** Vectors of one (project, embedder), kept in memory between searches and refreshed on change. */
interface Cache {
  /** Highest engram seq (any project) and the update/delete counter when last synced. */
  maxSeq: number;
  version: number;
  dim: number;
  count: number;
  /** Row-major, `capacity × dim`; grows by doubling so appends do not copy every time. */
  matrix: Float32Array;
  seqs: number[];
  ids: string[];
  rows: Pick<EngramRow, 'scope' | 'author' | 'kind' | 'created_at' | 'superseded_by'>[];
  tags: Map<number, Set<string>>;
}

/** The SQL clause for what the viewer may see, plus the narrowing filters; `$n` numbering continues from `params`. */
export function filterSql(f: EngramFilter, params: unknown[], alias = ''): string {
  const a = alias ? `${alias}.` : '';
  const p = (v: unknown) => {
    params.push(v);
    return `$${params.length}`;
  };
  const where = [`${a}project = ${p(f.project)}`];
  if (!f.viewer.all) {
    const visible = [`${a}scope = 'project'`];
    if (f.viewer.squads.length) visible.push(`${a}scope IN (${f.viewer.squads.map((s) => p(`squad:${s}`)).join(', ')})`);
    if (f.viewer.agent !== null) visible.push(`(${a}scope = 'private' AND ${a}author = ${p(f.viewer.agent)})`);
    where.push(`(${visible.join(' OR ')})`);
  }
  if (f.embedder !== undefined) where.push(`${a}embedder = ${p(f.embedder)}`);
  if (f.scope !== undefined) where.push(`${a}scope = ${p(f.scope)}`);
  if (f.author !== undefined) where.push(`${a}author = ${p(f.author)}`);
  if (f.kind !== undefined) where.push(`${a}kind = ${p(f.kind)}`);
  if (f.since !== undefined) where.push(`${a}created_at >= ${p(f.since)}`);
  if (!f.includeSuperseded) where.push(`${a}superseded_by IS NULL`);
  for (const tag of f.tags ?? []) where.push(`EXISTS (SELECT 1 FROM engram_tags t WHERE t.engram_seq = ${a}seq AND t.tag = ${p(tag)})`);
  return where.join(' AND ');
}

/** The same visibility and filters, in JS, for the in-memory vector scan. */
function passes(f: EngramFilter, row: Cache['rows'][number], tags: Map<number, Set<string>>, seq: number): boolean {
  if (!f.includeSuperseded && row.superseded_by !== null) return false;
  if (!f.viewer.all && row.scope !== 'project') {
    const visible =
      (row.scope.startsWith('squad:') && f.viewer.squads.includes(row.scope.slice(6))) ||
      (row.scope === 'private' && row.author === f.viewer.agent);
    if (!visible) return false;
  }
  if (f.scope !== undefined && row.scope !== f.scope) return false;
  if (f.author !== undefined && row.author !== f.author) return false;
  if (f.kind !== undefined && row.kind !== f.kind) return false;
  if (f.since !== undefined && row.created_at < f.since) return false;
  if (f.tags?.length) {
    const have = tags.get(seq);
    for (const tag of f.tags) if (!have?.has(tag)) return false;
  }
  return true;
}

/** The question's distinct content words (no stop words), at most `max`. */
export function queryTerms(text: string, max = 8): string[] {
  return [...new Set(text.toLowerCase().match(/[\p{L}\p{N}]{2,}/gu) ?? [])].filter((t) => !STOP.has(t)).slice(0, max);
}

/**
 * FTS5 queries for a question, quoted (no operator injection): first "at least two of its words"
 * (pairs OR-ed: few rows match, so ranking is cheap), then any word, for when pairs find too few.
 */
export function ftsQueries(text: string): { pairs: string | undefined; any: string | undefined } {
  const terms = queryTerms(text).map((t) => `"${t}"`);
  if (terms.length === 0) return { pairs: undefined, any: undefined };
  const pairs: string[] = [];
  for (let i = 0; i < terms.length; i++) for (let j = i + 1; j < terms.length; j++) pairs.push(`(${terms[i]} AND ${terms[j]})`);
  return { pairs: pairs.length ? pairs.join(' OR ') : undefined, any: terms.join(' OR ') };
}

/**
 * Memory on SQLite: vectors as float32 blobs searched by an exact cosine scan over an in-memory
 * matrix (filters applied to each row before scoring), full text by FTS5 with BM25.
 */
export class SqliteMemory implements Memory {
  readonly capabilities: MemoryCapabilities = { adapter: 'sqlite', vectorIndex: false, fullText: 'fts5' };
  private readonly caches = new Map<string, Cache>();

  constructor(private readonly db: SqlDriver) {}

  private async withTags(rows: EngramRow[]): Promise<Engram[]> {
    if (rows.length === 0) return [];
    const seqs = rows.map((r) => r.seq);
    const tags = await this.db.all<{ engram_seq: number; tag: string }>(
      `SELECT engram_seq, tag FROM engram_tags WHERE engram_seq IN (${seqs.map((_, i) => `$${i + 1}`).join(', ')}) ORDER BY tag`,
      seqs,
    );
    const by = new Map<number, string[]>();
    for (const t of tags) by.set(t.engram_seq, [...(by.get(t.engram_seq) ?? []), t.tag]);
    return rows.map((r) => toEngram(r, by.get(r.seq) ?? []));
  }

  async insert(e: NewEngram): Promise<void> {
    await this.db.transaction(async (tx) => {
      const row = await tx.one<{ seq: number }>(
        `INSERT INTO engrams (id, project, text, kind, scope, author, task_id, message_id, embedder, dim, embedding, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING seq`,
        [e.id, e.project, e.text, e.kind, e.scope, e.author, e.taskId, e.messageId, e.embedder, e.dim, toBlob(e.embedding), e.createdAt, e.updatedAt],
      );
      for (const tag of new Set(e.tags)) await tx.run('INSERT INTO engram_tags (engram_seq, tag) VALUES ($1, $2)', [row!.seq, tag]);
    });
  }

  async update(
    project: string,
    id: string,
    patch: { text?: string; tags?: string[]; kind?: Engram['kind']; embedding?: Float32Array; embedder?: string; dim?: number; updatedAt: number },
  ): Promise<void> {
    await this.db.transaction(async (tx) => {
      const row = await tx.one<{ seq: number }>('SELECT seq FROM engrams WHERE project = $1 AND id = $2', [project, id]);
      if (!row) return;
      const sets = ['updated_at = $1'];
      const params: unknown[] = [patch.updatedAt];
      const set = (column: string, value: unknown) => {
        params.push(value);
        sets.push(`${column} = $${params.length}`);
      };
      if (patch.text !== undefined) set('text', patch.text);
      if (patch.kind !== undefined) set('kind', patch.kind);
      if (patch.embedding !== undefined) set('embedding', toBlob(patch.embedding));
      if (patch.embedder !== undefined) set('embedder', patch.embedder);
      if (patch.dim !== undefined) set('dim', patch.dim);
      params.push(row.seq);
      await tx.run(`UPDATE engrams SET ${sets.join(', ')} WHERE seq = $${params.length}`, params);
      if (patch.tags !== undefined) {
        await tx.run('DELETE FROM engram_tags WHERE engram_seq = $1', [row.seq]);
        for (const tag of new Set(patch.tags)) await tx.run('INSERT INTO engram_tags (engram_seq, tag) VALUES ($1, $2)', [row.seq, tag]);
      }
    });
  }

  async setSupersededBy(project: string, id: string, by: string | null, at: number): Promise<void> {
    await this.db.run('UPDATE engrams SET superseded_by = $1, updated_at = $2 WHERE project = $3 AND id = $4', [by, at, project, id]);
  }

  async get(project: string, id: string): Promise<Engram | undefined> {
    const row = await this.db.one<EngramRow>(`SELECT ${COLUMNS} FROM engrams WHERE project = $1 AND id = $2`, [project, id]);
    return row ? (await this.withTags([row]))[0] : undefined;
  }

  async getMany(project: string, ids: string[]): Promise<Engram[]> {
    if (ids.length === 0) return [];
    const rows = await this.db.all<EngramRow>(
      // `+project` keeps the planner on the unique id index; otherwise it may walk the project's
      // rows through (project, embedder, seq), reading every vector (40 ms at 50k engrams).
      `SELECT ${COLUMNS} FROM engrams WHERE +project = $1 AND id IN (${ids.map((_, i) => `$${i + 2}`).join(', ')})`,
      [project, ...ids],
    );
    return this.withTags(rows);
  }

  async vector(project: string, id: string): Promise<Float32Array | undefined> {
    const row = await this.db.one<{ embedding: Buffer }>('SELECT embedding FROM engrams WHERE project = $1 AND id = $2', [project, id]);
    return row ? fromBlob(row.embedding) : undefined;
  }

  async delete(project: string, id: string): Promise<boolean> {
    return (await this.db.run('DELETE FROM engrams WHERE project = $1 AND id = $2', [project, id])) > 0;
  }

  async list(filter: EngramFilter, limit: number): Promise<Engram[]> {
    const params: unknown[] = [];
    const where = filterSql(filter, params);
    params.push(limit);
    const rows = await this.db.all<EngramRow>(`SELECT ${COLUMNS} FROM engrams WHERE ${where} ORDER BY seq DESC LIMIT $${params.length}`, params);
    return this.withTags(rows);
  }

  /**
   * The in-memory matrix of one project's vectors of one embedder. Two O(1) reads tell what
   * changed since the last search: new rows (MAX(seq)) are appended; an update or delete anywhere
   * (the trigger-kept counter) reloads the project's matrix.
   */
  private async cache(project: string, embedder: string): Promise<Cache> {
    const key = `${project}\n${embedder}`;
    const state = await this.db.one<{ max_seq: number | null; version: number }>(
      'SELECT (SELECT MAX(seq) FROM engrams) AS max_seq, (SELECT version FROM memory_changes WHERE id = 1) AS version',
    );
    const maxSeq = Number(state?.max_seq ?? 0);
    const version = Number(state?.version ?? 0);
    let cache = this.caches.get(key);
    if (cache && cache.version === version && cache.maxSeq === maxSeq) return cache;
    if (!cache || cache.version !== version) {
      cache = { maxSeq: 0, version, dim: 0, count: 0, matrix: new Float32Array(0), seqs: [], ids: [], rows: [], tags: new Map() };
      this.caches.set(key, cache);
    }
    const after = cache.maxSeq;
    // Only what the scan needs (not the text): building 10^5 row objects is most of a cold load.
    const rows = await this.db.all<Pick<EngramRow, 'seq' | 'id' | 'dim' | 'scope' | 'author' | 'kind' | 'created_at' | 'superseded_by'> & { embedding: Buffer }>(
      `SELECT seq, id, dim, scope, author, kind, created_at, superseded_by, embedding FROM engrams WHERE project = $1 AND embedder = $2 AND seq > $3 ORDER BY seq`,
      [project, embedder, after],
    );
    if (rows.length) {
      const tagRows = await this.db.all<{ engram_seq: number; tag: string }>(
        'SELECT t.engram_seq, t.tag FROM engram_tags t JOIN engrams e ON e.seq = t.engram_seq WHERE e.project = $1 AND e.embedder = $2 AND e.seq > $3',
        [project, embedder, after],
      );
      const dim = cache.dim || rows[0]!.dim;
      cache.dim = dim;
      const needed = (cache.count + rows.length) * dim;
      if (needed > cache.matrix.length) {
        const grown = new Float32Array(Math.max(needed, cache.matrix.length * 2, 1024 * dim));
        grown.set(cache.matrix.subarray(0, cache.count * dim));
        cache.matrix = grown;
      }
      for (const r of rows) {
        const v = fromBlob(r.embedding);
        cache.matrix.set(v.length === dim ? v : new Float32Array(dim), cache.count * dim);
        cache.count++;
        cache.seqs.push(r.seq);
        cache.ids.push(r.id);
        cache.rows.push({ scope: r.scope, author: r.author, kind: r.kind, created_at: r.created_at, superseded_by: r.superseded_by });
      }
      for (const t of tagRows) {
        let set = cache.tags.get(t.engram_seq);
        if (!set) cache.tags.set(t.engram_seq, (set = new Set()));
        set.add(t.tag);
      }
    }
    cache.maxSeq = maxSeq;
    cache.version = version;
    return cache;
  }

  async searchVector(filter: EngramFilter & { embedder: string }, vector: Float32Array, limit: number): Promise<Ranked[]> {
    const c = await this.cache(filter.project, filter.embedder);
    if (c.dim !== vector.length || c.count === 0) return [];
    // The common case (no narrowing filter) checks two fields inline; the full check runs only for
    // rows outside the project scope, or when a narrowing filter is given.
    const simple = !filter.scope && !filter.author && !filter.kind && filter.since === undefined && !filter.tags?.length;
    const keepSuperseded = filter.includeSuperseded === true;
    const top: Ranked[] = [];
    const dim = c.dim;
    const m = c.matrix;
    let floor = -Infinity;
    for (let i = 0; i < c.count; i++) {
      const row = c.rows[i]!;
      if (simple) {
        if (!keepSuperseded && row.superseded_by !== null) continue;
        if (row.scope !== 'project' && !filter.viewer.all && !passes(filter, row, c.tags, c.seqs[i]!)) continue;
      } else if (!passes(filter, row, c.tags, c.seqs[i]!)) continue;
      const off = i * dim;
      let d0 = 0;
      let d1 = 0;
      let d2 = 0;
      let d3 = 0;
      let j = 0;
      for (; j + 3 < dim; j += 4) {
        d0 += m[off + j]! * vector[j]!;
        d1 += m[off + j + 1]! * vector[j + 1]!;
        d2 += m[off + j + 2]! * vector[j + 2]!;
        d3 += m[off + j + 3]! * vector[j + 3]!;
      }
      for (; j < dim; j++) d0 += m[off + j]! * vector[j]!;
      const dot = d0 + d1 + d2 + d3;
      if (top.length === limit && dot <= floor) continue;
      // Keep the best `limit` sorted: insertion into a small array, no full sort.
      let k = top.length < limit ? top.length : limit - 1;
      while (k > 0 && top[k - 1]!.score < dot) {
        top[k] = top[k - 1]!;
        k--;
      }
      top[k] = { id: c.ids[i]!, score: dot };
      if (top.length > limit) top.length = limit;
      if (top.length === limit) floor = top[limit - 1]!.score;
    }
    return top;
  }

  async searchText(filter: EngramFilter, query: string, limit: number): Promise<Ranked[]> {
    const { pairs, any } = ftsQueries(query);
    const run = async (match: string, n: number) => {
      const params: unknown[] = [match];
      const where = filterSql(filter, params, 'e');
      params.push(n);
      const rows = await this.db.all<{ id: string; rank: number }>(
        `SELECT e.id, bm25(engrams_fts) AS rank FROM engrams_fts JOIN engrams e ON e.seq = engrams_fts.rowid
         WHERE engrams_fts MATCH $1 AND ${where} ORDER BY rank LIMIT $${params.length}`,
        params,
      );
      return rows.map((r) => ({ id: r.id, score: -r.rank }));
    };
    return pairsThenAny(run, pairs, any, limit);
  }

  embedders(project: string): Promise<{ embedder: string; dim: number; count: number }[]> {
    return embeddersOf(this.db, project);
  }

  ids(project: string, after: string | null, limit: number): Promise<string[]> {
    return idsAfter(this.db, project, after, limit);
  }

  async close(): Promise<void> {
    this.caches.clear();
  }
}
