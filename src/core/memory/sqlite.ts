import type { SqlDriver } from '../store/sql/driver.js';
import { fromBlob, toBlob } from './embedder.js';
import type { Memory, MemoryCapabilities } from './port.js';
import type { Engram, EngramFilter, NewEngram, Ranked } from './types.js';

interface EngramRow {
  seq: number;
  id: string;
  project: string;
  text: string;
  kind: Engram['kind'];
  scope: string;
  author: string;
  task_id: string | null;
  message_id: string | null;
  embedder: string;
  dim: number;
  created_at: number;
  updated_at: number;
  superseded_by: string | null;
}

const COLUMNS = 'seq, id, project, text, kind, scope, author, task_id, message_id, embedder, dim, created_at, updated_at, superseded_by';

/** Vectors of one (project, embedder), kept in memory between searches and refreshed on change. */
interface Cache {
  fingerprint: string;
  maxSeq: number;
  dim: number;
  seqs: number[];
  ids: string[];
  rows: Pick<EngramRow, 'scope' | 'author' | 'kind' | 'created_at' | 'superseded_by'>[];
  tags: Map<number, Set<string>>;
  matrix: Float32Array;
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
function passes(f: EngramFilter, row: Cache['rows'][number], tags: Set<string> | undefined): boolean {
  if (!f.viewer.all) {
    const visible =
      row.scope === 'project' ||
      (row.scope.startsWith('squad:') && f.viewer.squads.includes(row.scope.slice(6))) ||
      (row.scope === 'private' && row.author === f.viewer.agent);
    if (!visible) return false;
  }
  if (f.scope !== undefined && row.scope !== f.scope) return false;
  if (f.author !== undefined && row.author !== f.author) return false;
  if (f.kind !== undefined && row.kind !== f.kind) return false;
  if (f.since !== undefined && row.created_at < f.since) return false;
  if (!f.includeSuperseded && row.superseded_by !== null) return false;
  for (const tag of f.tags ?? []) if (!tags?.has(tag)) return false;
  return true;
}

/** FTS5 query: every word of the question, OR-ed and quoted (no operator injection). */
export function ftsQuery(text: string): string | undefined {
  const terms = [...new Set(text.toLowerCase().match(/[\p{L}\p{N}]{2,}/gu) ?? [])].slice(0, 64);
  return terms.length ? terms.map((t) => `"${t}"`).join(' OR ') : undefined;
}

/**
 * Memory on SQLite: vectors as float32 blobs searched by an exact cosine scan over an in-memory
 * matrix (filters applied to each row before scoring), full text by FTS5 with BM25.
 */
export class SqliteMemory implements Memory {
  readonly capabilities: MemoryCapabilities = { adapter: 'sqlite', vectorIndex: false, fullText: 'fts5' };
  private readonly caches = new Map<string, Cache>();

  constructor(private readonly db: SqlDriver) {}

  private toEngram(row: EngramRow, tags: string[]): Engram {
    return {
      id: row.id,
      project: row.project,
      text: row.text,
      kind: row.kind,
      scope: row.scope,
      author: row.author,
      tags,
      taskId: row.task_id,
      messageId: row.message_id,
      embedder: row.embedder,
      dim: row.dim,
      createdAt: row.created_at,
      updatedAt: row.updated_at,
      supersededBy: row.superseded_by,
    };
  }

  private async withTags(rows: EngramRow[]): Promise<Engram[]> {
    if (rows.length === 0) return [];
    const seqs = rows.map((r) => r.seq);
    const tags = await this.db.all<{ engram_seq: number; tag: string }>(
      `SELECT engram_seq, tag FROM engram_tags WHERE engram_seq IN (${seqs.map((_, i) => `$${i + 1}`).join(', ')}) ORDER BY tag`,
      seqs,
    );
    const by = new Map<number, string[]>();
    for (const t of tags) by.set(t.engram_seq, [...(by.get(t.engram_seq) ?? []), t.tag]);
    return rows.map((r) => this.toEngram(r, by.get(r.seq) ?? []));
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

  /** Loads (or extends) the in-memory matrix of one project's vectors of one embedder. */
  private async cache(project: string, embedder: string): Promise<Cache> {
    const key = `${project}\n${embedder}`;
    const stats = await this.db.one<{ n: number; max_seq: number | null; max_updated: number | null }>(
      'SELECT COUNT(*) AS n, MAX(seq) AS max_seq, MAX(updated_at) AS max_updated FROM engrams WHERE project = $1 AND embedder = $2',
      [project, embedder],
    );
    const fingerprint = `${stats?.n}/${stats?.max_seq}/${stats?.max_updated}`;
    let cache = this.caches.get(key);
    if (cache && cache.fingerprint === fingerprint) return cache;
    const appendOnly =
      cache !== undefined &&
      Number(stats?.n) > cache.ids.length &&
      Number(
        (await this.db.one<{ n: number }>('SELECT COUNT(*) AS n FROM engrams WHERE project = $1 AND embedder = $2 AND seq > $3', [project, embedder, cache.maxSeq]))?.n,
      ) ===
        Number(stats?.n) - cache.ids.length &&
      Number(
        (
          await this.db.one<{ m: number | null }>('SELECT MAX(updated_at) AS m FROM engrams WHERE project = $1 AND embedder = $2 AND seq <= $3', [
            project,
            embedder,
            cache.maxSeq,
          ])
        )?.m ?? 0,
      ) <= Number(cache.fingerprint.split('/')[2] || 0);
    const after = appendOnly ? cache!.maxSeq : 0;
    const rows = await this.db.all<EngramRow & { embedding: Buffer }>(
      `SELECT ${COLUMNS}, embedding FROM engrams WHERE project = $1 AND embedder = $2 AND seq > $3 ORDER BY seq`,
      [project, embedder, after],
    );
    const tagRows = await this.db.all<{ engram_seq: number; tag: string }>(
      'SELECT t.engram_seq, t.tag FROM engram_tags t JOIN engrams e ON e.seq = t.engram_seq WHERE e.project = $1 AND e.embedder = $2 AND e.seq > $3',
      [project, embedder, after],
    );
    const dim = rows[0]?.dim ?? cache?.dim ?? 0;
    const base = appendOnly ? cache! : { seqs: [], ids: [], rows: [], tags: new Map<number, Set<string>>(), matrix: new Float32Array(0) };
    const matrix = new Float32Array((base.ids.length + rows.length) * dim);
    matrix.set(base.matrix);
    rows.forEach((r, i) => matrix.set(fromBlob(r.embedding), (base.ids.length + i) * dim));
    const tags = base.tags;
    for (const t of tagRows) {
      let set = tags.get(t.engram_seq);
      if (!set) tags.set(t.engram_seq, (set = new Set()));
      set.add(t.tag);
    }
    cache = {
      fingerprint,
      maxSeq: Number(stats?.max_seq ?? 0),
      dim,
      seqs: [...base.seqs, ...rows.map((r) => r.seq)],
      ids: [...base.ids, ...rows.map((r) => r.id)],
      rows: [...base.rows, ...rows.map((r) => ({ scope: r.scope, author: r.author, kind: r.kind, created_at: r.created_at, superseded_by: r.superseded_by }))],
      tags,
      matrix,
    };
    this.caches.set(key, cache);
    return cache;
  }

  async searchVector(filter: EngramFilter & { embedder: string }, vector: Float32Array, limit: number): Promise<Ranked[]> {
    const c = await this.cache(filter.project, filter.embedder);
    if (c.dim !== vector.length) return [];
    // Keep the best `limit` in a small sorted array: n × dim multiply-adds, no full sort.
    const top: Ranked[] = [];
    const dim = c.dim;
    const m = c.matrix;
    for (let i = 0; i < c.ids.length; i++) {
      if (!passes(filter, c.rows[i]!, c.tags.get(c.seqs[i]!))) continue;
      let dot = 0;
      const off = i * dim;
      for (let j = 0; j < dim; j++) dot += m[off + j]! * vector[j]!;
      if (top.length < limit || dot > top[top.length - 1]!.score) {
        let k = top.length < limit ? top.length : top.length - 1;
        while (k > 0 && top[k - 1]!.score < dot) {
          top[k] = top[k - 1]!;
          k--;
        }
        top[k] = { id: c.ids[i]!, score: dot };
        if (top.length > limit) top.length = limit;
      }
    }
    return top;
  }

  async searchText(filter: EngramFilter, query: string, limit: number): Promise<Ranked[]> {
    const match = ftsQuery(query);
    if (match === undefined) return [];
    const params: unknown[] = [match];
    const where = filterSql(filter, params, 'e');
    params.push(limit);
    const rows = await this.db.all<{ id: string; rank: number }>(
      `SELECT e.id, bm25(engrams_fts) AS rank FROM engrams_fts JOIN engrams e ON e.seq = engrams_fts.rowid
       WHERE engrams_fts MATCH $1 AND ${where} ORDER BY rank LIMIT $${params.length}`,
      params,
    );
    return rows.map((r) => ({ id: r.id, score: -r.rank }));
  }

  async embedders(project: string): Promise<{ embedder: string; dim: number; count: number }[]> {
    const rows = await this.db.all<{ embedder: string; dim: number; n: number }>(
      'SELECT embedder, dim, COUNT(*) AS n FROM engrams WHERE project = $1 GROUP BY embedder, dim ORDER BY embedder',
      [project],
    );
    return rows.map((r) => ({ embedder: r.embedder, dim: r.dim, count: Number(r.n) }));
  }

  async ids(project: string, after: string | null, limit: number): Promise<string[]> {
    const rows = await this.db.all<{ id: string }>(
      'SELECT id FROM engrams WHERE project = $1 AND seq > COALESCE((SELECT seq FROM engrams WHERE id = $2), 0) ORDER BY seq LIMIT $3',
      [project, after, limit],
    );
    return rows.map((r) => r.id);
  }

  async close(): Promise<void> {
    this.caches.clear();
  }
}
