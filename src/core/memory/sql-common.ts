import type { SqlDriver } from '../store/sql/driver.js';
import type { Engram, Ranked } from './types.js';

/** Statements both SQL memory adapters share word for word (the schema's columns are the same). */

/** An `engrams` row as both adapters read it. */
export interface EngramRow {
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

export function toEngram(row: EngramRow, tags: string[]): Engram {
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

export async function embeddersOf(db: SqlDriver, project: string): Promise<{ embedder: string; dim: number; count: number }[]> {
  const rows = await db.all<{ embedder: string; dim: number; n: number }>(
    'SELECT embedder, dim, COUNT(*) AS n FROM engrams WHERE project = $1 GROUP BY embedder, dim ORDER BY embedder, dim',
    [project],
  );
  return rows.map((r) => ({ embedder: r.embedder, dim: r.dim, count: Number(r.n) }));
}

export async function idsAfter(db: SqlDriver, project: string, after: string | null, limit: number): Promise<string[]> {
  const rows = await db.all<{ id: string }>(
    'SELECT id FROM engrams WHERE project = $1 AND seq > COALESCE((SELECT seq FROM engrams WHERE id = $2), 0) ORDER BY seq LIMIT $3',
    [project, after, limit],
  );
  return rows.map((r) => r.id);
}

/**
 * Full-text candidates: first rows sharing at least two of the question's words (few, so ranking
 * them is cheap), then rows sharing any word to fill up to `limit`.
 */
export async function pairsThenAny(
  run: (query: string, limit: number) => Promise<Ranked[]>,
  pairs: string | undefined,
  any: string | undefined,
  limit: number,
): Promise<Ranked[]> {
  const found = pairs ? await run(pairs, limit) : [];
  if (found.length >= limit || any === undefined) return found;
  const seen = new Set(found.map((r) => r.id));
  for (const r of await run(any, limit)) {
    if (found.length >= limit) break;
    if (!seen.has(r.id)) found.push(r);
  }
  return found;
}
