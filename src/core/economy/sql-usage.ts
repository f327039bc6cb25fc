import type { SqlDriver, SqlExecutor } from '../store/sql/driver.js';
import type { ReportDimension, ReportFilter, UsageEvent, UsageRow, UsageSource } from './types.js';

/**
 * The ledger on the Store's SQL database (SQLite and PostgreSQL run the same statements). Every
 * statement names the project: nothing here reads or writes another project's rows.
 */

interface EventRow {
  id: string;
  project: string;
  agent: string | null;
  task: string | null;
  provider: string;
  model: string;
  input_tokens: number;
  output_tokens: number;
  cache_write_tokens: number;
  cache_write_1h_tokens: number;
  cache_read_tokens: number;
  reasoning_tokens: number;
  cost_micros: number | null;
  price_version: string | null;
  source: UsageSource;
  source_file: string | null;
  session_id: string | null;
  source_key: string;
  occurred_at: number;
  recorded_at: number;
}

const COLUMNS =
  'id, project, agent, task, provider, model, input_tokens, output_tokens, cache_write_tokens, cache_write_1h_tokens, cache_read_tokens, reasoning_tokens, cost_micros, price_version, source, source_file, session_id, source_key, occurred_at, recorded_at';

const n = (v: unknown): number => Number(v ?? 0);
const nOrNull = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v));

function toEvent(row: EventRow): UsageEvent {
  return {
    id: row.id,
    project: row.project,
    agent: row.agent,
    task: row.task,
    provider: row.provider,
    model: row.model,
    inputTokens: n(row.input_tokens),
    outputTokens: n(row.output_tokens),
    cacheWriteTokens: n(row.cache_write_tokens),
    cacheWrite1hTokens: n(row.cache_write_1h_tokens),
    cacheReadTokens: n(row.cache_read_tokens),
    reasoningTokens: n(row.reasoning_tokens),
    costMicros: nOrNull(row.cost_micros),
    priceVersion: row.price_version,
    source: row.source,
    sourceFile: row.source_file,
    sessionId: row.session_id,
    sourceKey: row.source_key,
    occurredAt: n(row.occurred_at),
    recordedAt: n(row.recorded_at),
  };
}

/** Sums that come back as numbers on both dialects (PostgreSQL's SUM of BIGINT is NUMERIC). */
const SUMS = `CAST(COALESCE(SUM(u.input_tokens), 0) AS BIGINT) AS input_tokens,
  CAST(COALESCE(SUM(u.output_tokens), 0) AS BIGINT) AS output_tokens,
  CAST(COALESCE(SUM(u.cache_write_tokens), 0) AS BIGINT) AS cache_write_tokens,
  CAST(COALESCE(SUM(u.cache_write_1h_tokens), 0) AS BIGINT) AS cache_write_1h_tokens,
  CAST(COALESCE(SUM(u.cache_read_tokens), 0) AS BIGINT) AS cache_read_tokens,
  CAST(COALESCE(SUM(u.reasoning_tokens), 0) AS BIGINT) AS reasoning_tokens,
  CAST(COUNT(*) AS BIGINT) AS events,
  CAST(COALESCE(SUM(u.cost_micros), 0) AS BIGINT) AS cost_micros,
  CAST(COALESCE(SUM(CASE WHEN u.cost_micros IS NULL THEN 1 ELSE 0 END), 0) AS BIGINT) AS unknown_cost_events`;

interface SumRow {
  key: string | number | null;
  input_tokens: number;
  output_tokens: number;
  cache_write_tokens: number;
  cache_write_1h_tokens: number;
  cache_read_tokens: number;
  reasoning_tokens: number;
  events: number;
  cost_micros: number;
  unknown_cost_events: number;
}

const DAY_MS = 86_400_000;

function keyText(by: ReportDimension | 'total', key: SumRow['key']): string {
  if (key === null || key === undefined) return '-';
  if (by === 'day') return new Date(Number(key) * DAY_MS).toISOString().slice(0, 10);
  return String(key);
}

function toRow(by: ReportDimension | 'total', row: SumRow): UsageRow {
  const events = n(row.events);
  const unknown = n(row.unknown_cost_events);
  return {
    key: by === 'total' ? 'total' : keyText(by, row.key),
    inputTokens: n(row.input_tokens),
    outputTokens: n(row.output_tokens),
    cacheWriteTokens: n(row.cache_write_tokens),
    cacheWrite1hTokens: n(row.cache_write_1h_tokens),
    cacheReadTokens: n(row.cache_read_tokens),
    reasoningTokens: n(row.reasoning_tokens),
    events,
    costMicros: events > 0 && unknown === events ? null : n(row.cost_micros),
    unknownCostEvents: unknown,
  };
}

/** The group expression and any join it needs, per dimension. */
const GROUPS: Record<ReportDimension, { key: string; join: string }> = {
  agent: { key: "COALESCE(u.agent, '-')", join: '' },
  model: { key: 'u.model', join: '' },
  project: { key: 'u.project', join: '' },
  task: { key: "COALESCE(u.task, '-')", join: '' },
  squad: { key: "COALESCE(m.squad, '-')", join: 'LEFT JOIN squad_members m ON m.project = u.project AND m.agent = u.agent' },
  // Integer division on both dialects: the UTC day number.
  day: { key: `CAST(u.occurred_at / ${DAY_MS} AS BIGINT)`, join: '' },
};

/** Where an incremental importer stopped in one file (see the import_offsets table). */
export interface ImportOffset {
  project: string;
  source: UsageSource;
  path: string;
  device: number;
  inode: number;
  size: number;
  offset: number;
  updatedAt: number;
}

export type NewUsageEvent = Omit<UsageEvent, 'recordedAt'> & { recordedAt: number };

export class SqlUsageRepo {
  constructor(private readonly db: SqlDriver) {}

  transaction<T>(fn: (tx: SqlExecutor) => Promise<T>): Promise<T> {
    return this.db.transaction(fn);
  }

  /**
   * Inserts unless (project, source, source key) is already there. Returns the stored row's id
   * and cost, and whether it was a duplicate. Concurrent inserts of one key: one wins, the others
   * wait for it (PostgreSQL) or the write lock (SQLite) and then read its row.
   */
  async insert(db: SqlExecutor, e: NewUsageEvent): Promise<{ id: string; costMicros: number | null; agent: string | null; task: string | null; duplicate: boolean }> {
    const changed = await db.run(
      `INSERT INTO usage_events (${COLUMNS})
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)
       ON CONFLICT (project, source, source_key) DO NOTHING`,
      [
        e.id,
        e.project,
        e.agent,
        e.task,
        e.provider,
        e.model,
        e.inputTokens,
        e.outputTokens,
        e.cacheWriteTokens,
        e.cacheWrite1hTokens,
        e.cacheReadTokens,
        e.reasoningTokens,
        e.costMicros,
        e.priceVersion,
        e.source,
        e.sourceFile,
        e.sessionId,
        e.sourceKey,
        e.occurredAt,
        e.recordedAt,
      ],
    );
    if (changed > 0) return { id: e.id, costMicros: e.costMicros, agent: e.agent, task: e.task, duplicate: false };
    const existing = await db.one<{ id: string; cost_micros: number | null; agent: string | null; task: string | null }>(
      'SELECT id, cost_micros, agent, task FROM usage_events WHERE project = $1 AND source = $2 AND source_key = $3',
      [e.project, e.source, e.sourceKey],
    );
    if (!existing) throw new Error(`usage event ${e.source}:${e.sourceKey} neither inserted nor found`);
    return { id: existing.id, costMicros: nOrNull(existing.cost_micros), agent: existing.agent, task: existing.task, duplicate: true };
  }

  async taskExists(db: SqlExecutor, project: string, id: string): Promise<boolean> {
    return (await db.one('SELECT 1 AS ok FROM tasks WHERE project = $1 AND id = $2', [project, id])) !== undefined;
  }

  /** Ids of the tasks the agent holds a live claim on (at most two: the caller only asks "exactly one?"). */
  async heldTasks(db: SqlExecutor, project: string, agent: string): Promise<string[]> {
    const rows = await db.all<{ id: string }>(
      "SELECT id FROM tasks WHERE project = $1 AND claimant = $2 AND status IN ('claimed', 'in_progress') ORDER BY seq LIMIT 2",
      [project, agent],
    );
    return rows.map((r) => r.id);
  }

  async get(project: string, id: string): Promise<UsageEvent | undefined> {
    const row = await this.db.one<EventRow>(`SELECT ${COLUMNS} FROM usage_events WHERE project = $1 AND id = $2`, [project, id]);
    return row && toEvent(row);
  }

  /** Events of the project in id order after `afterId` (paging for recompute). */
  async page(project: string, afterId: string, limit: number): Promise<UsageEvent[]> {
    const rows = await this.db.all<EventRow>(`SELECT ${COLUMNS} FROM usage_events WHERE project = $1 AND id > $2 ORDER BY id LIMIT $3`, [project, afterId, limit]);
    return rows.map(toEvent);
  }

  async setCost(db: SqlExecutor, project: string, id: string, costMicros: number | null, priceVersion: string | null): Promise<void> {
    await db.run('UPDATE usage_events SET cost_micros = $3, price_version = $4 WHERE project = $1 AND id = $2', [project, id, costMicros, priceVersion]);
  }

  async offset(project: string, source: UsageSource, path: string): Promise<ImportOffset | undefined> {
    const row = await this.db.one<{ device: number; inode: number; size: number; offset: number; updated_at: number }>(
      'SELECT device, inode, size, "offset", updated_at FROM import_offsets WHERE project = $1 AND source = $2 AND path = $3',
      [project, source, path],
    );
    return row && { project, source, path, device: n(row.device), inode: n(row.inode), size: n(row.size), offset: n(row.offset), updatedAt: n(row.updated_at) };
  }

  /** Saves an importer's position; pass the batch's transaction so events and offset commit together. */
  async saveOffset(db: SqlExecutor, o: ImportOffset): Promise<void> {
    await db.run(
      `INSERT INTO import_offsets (project, source, path, device, inode, size, "offset", updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
       ON CONFLICT (project, source, path) DO UPDATE SET device = excluded.device, inode = excluded.inode, size = excluded.size, "offset" = excluded."offset", updated_at = excluded.updated_at`,
      [o.project, o.source, o.path, o.device, o.inode, o.size, o.offset, o.updatedAt],
    );
  }

  private where(project: string, filter: ReportFilter): { sql: string; params: unknown[] } {
    const params: unknown[] = [project];
    const parts = ['u.project = $1'];
    if (filter.since !== undefined) {
      params.push(filter.since);
      parts.push(`u.occurred_at >= $${params.length}`);
    }
    if (filter.until !== undefined) {
      params.push(filter.until);
      parts.push(`u.occurred_at < $${params.length}`);
    }
    if (filter.agent !== undefined) {
      params.push(filter.agent);
      parts.push(`u.agent = $${params.length}`);
    }
    return { sql: parts.join(' AND '), params };
  }

  async grouped(project: string, by: ReportDimension, filter: ReportFilter): Promise<UsageRow[]> {
    const { sql, params } = this.where(project, filter);
    const group = GROUPS[by];
    const rows = await this.db.all<SumRow>(
      `SELECT ${group.key} AS key, ${SUMS} FROM usage_events u ${group.join} WHERE ${sql} GROUP BY ${group.key}`,
      params,
    );
    const out = rows.map((r) => toRow(by, r));
    // Days in calendar order; every other dimension most expensive first, then by name.
    return out.sort((a, b) =>
      by === 'day' ? (a.key < b.key ? -1 : a.key > b.key ? 1 : 0) : (b.costMicros ?? -1) - (a.costMicros ?? -1) || b.events - a.events || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0),
    );
  }

  async total(project: string, filter: ReportFilter): Promise<UsageRow> {
    const { sql, params } = this.where(project, filter);
    const row = await this.db.one<SumRow>(`SELECT NULL AS key, ${SUMS} FROM usage_events u WHERE ${sql}`, params);
    return toRow('total', row!);
  }

  async unknownModels(project: string, filter: ReportFilter): Promise<{ model: string; events: number }[]> {
    const { sql, params } = this.where(project, filter);
    const rows = await this.db.all<{ model: string; events: number }>(
      `SELECT u.model AS model, CAST(COUNT(*) AS BIGINT) AS events FROM usage_events u WHERE ${sql} AND u.cost_micros IS NULL GROUP BY u.model`,
      params,
    );
    return rows.map((r) => ({ model: r.model, events: n(r.events) })).sort((a, b) => b.events - a.events || (a.model < b.model ? -1 : 1));
  }

  /** Tasks of the project now `done` that have events matching the filter, and those events' priced cost. */
  async completedTasks(project: string, filter: ReportFilter): Promise<{ tasks: number; costMicros: number }> {
    const { sql, params } = this.where(project, filter);
    const row = await this.db.one<{ tasks: number; cost: number }>(
      `SELECT CAST(COUNT(DISTINCT u.task) AS BIGINT) AS tasks, CAST(COALESCE(SUM(u.cost_micros), 0) AS BIGINT) AS cost
       FROM usage_events u JOIN tasks t ON t.project = u.project AND t.id = u.task
       WHERE ${sql} AND t.status = 'done'`,
      params,
    );
    return { tasks: n(row?.tasks), costMicros: n(row?.cost) };
  }
}
