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

const DAY_MS = 86_400_000;

/** The sums a rollup row holds (and one event adds to it), in column order. */
const SUM_COLUMNS = [
  'events',
  'unknown_cost_events',
  'input_tokens',
  'output_tokens',
  'cache_write_tokens',
  'cache_write_1h_tokens',
  'cache_read_tokens',
  'reasoning_tokens',
  'cost_micros',
] as const;
type Sums = Record<(typeof SUM_COLUMNS)[number], number>;

const zero = (): Sums => ({
  events: 0,
  unknown_cost_events: 0,
  input_tokens: 0,
  output_tokens: 0,
  cache_write_tokens: 0,
  cache_write_1h_tokens: 0,
  cache_read_tokens: 0,
  reasoning_tokens: 0,
  cost_micros: 0,
});

/** Adds `from`'s sums (numbers, or PostgreSQL's BIGINT strings) to `to`, times `sign`. */
function addInto(to: Sums, from: { readonly [K in keyof Sums]: unknown }, sign = 1): Sums {
  for (const c of SUM_COLUMNS) to[c] += sign * n(from[c]);
  return to;
}

function toRow(key: string, s: Sums): UsageRow {
  return {
    key,
    inputTokens: s.input_tokens,
    outputTokens: s.output_tokens,
    cacheWriteTokens: s.cache_write_tokens,
    cacheWrite1hTokens: s.cache_write_1h_tokens,
    cacheReadTokens: s.cache_read_tokens,
    reasoningTokens: s.reasoning_tokens,
    events: s.events,
    costMicros: s.events > 0 && s.unknown_cost_events === s.events ? null : s.cost_micros,
    unknownCostEvents: s.unknown_cost_events,
  };
}

/** What the rollups need of an event. */
export type RollupEvent = Pick<
  UsageEvent,
  'agent' | 'task' | 'model' | 'occurredAt' | 'costMicros' | 'inputTokens' | 'outputTokens' | 'cacheWriteTokens' | 'cacheWrite1hTokens' | 'cacheReadTokens' | 'reasoningTokens'
>;

/** One event as rollup sums: an unpriced one counts in unknown_cost_events and adds 0 to the cost. */
function sumsOf(e: RollupEvent): Sums {
  return {
    events: 1,
    unknown_cost_events: e.costMicros === null ? 1 : 0,
    input_tokens: e.inputTokens,
    output_tokens: e.outputTokens,
    cache_write_tokens: e.cacheWriteTokens,
    cache_write_1h_tokens: e.cacheWrite1hTokens,
    cache_read_tokens: e.cacheReadTokens,
    reasoning_tokens: e.reasoningTokens,
    cost_micros: e.costMicros ?? 0,
  };
}

/** The start of the UTC day that holds `at` (epoch ms). */
const dayOf = (at: number): number => at - (((at % DAY_MS) + DAY_MS) % DAY_MS);

interface MainCell {
  day: number;
  agent: string;
  model: string;
  sums: Sums;
}
interface TaskCell {
  task: string;
  day: number;
  agent: string;
  sums: Sums;
}

/**
 * What a set of events adds to usage_rollup and usage_task_rollup (agent and task '' for none),
 * summed per row in memory: a batch writes each row once, and in key order, so that concurrent
 * batches lock the rows they share in the same order.
 */
export class RollupDelta {
  private readonly main = new Map<string, MainCell>();
  private readonly tasks = new Map<string, TaskCell>();

  /** Adds an event (sign 1) or takes it away (sign -1). */
  add(e: RollupEvent, sign = 1): this {
    const day = dayOf(e.occurredAt);
    const agent = e.agent ?? '';
    const task = e.task ?? '';
    const sums = sumsOf(e);
    const mainKey = JSON.stringify([day, agent, e.model]);
    let m = this.main.get(mainKey);
    if (!m) this.main.set(mainKey, (m = { day, agent, model: e.model, sums: zero() }));
    addInto(m.sums, sums, sign);
    const taskKey = JSON.stringify([task, day, agent]);
    let t = this.tasks.get(taskKey);
    if (!t) this.tasks.set(taskKey, (t = { task, day, agent, sums: zero() }));
    addInto(t.sums, sums, sign);
    return this;
  }

  /** The rows to write, in key order, without those the delta leaves as they are. */
  rows(): { main: MainCell[]; tasks: TaskCell[] } {
    const moves = (x: { sums: Sums }) => SUM_COLUMNS.some((c) => x.sums[c] !== 0);
    const ordered = <T>(m: Map<string, T>) => [...m.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, v]) => v);
    return { main: ordered(this.main).filter(moves), tasks: ordered(this.tasks).filter(moves) };
  }
}

/** Rows per upsert statement (13 parameters each: far below either dialect's limit). */
const ROLLUP_CHUNK = 50;

function upsertSql(table: 'usage_rollup' | 'usage_task_rollup', keys: readonly string[], rows: number): string {
  const width = keys.length + SUM_COLUMNS.length;
  const values = Array.from({ length: rows }, (_, r) => `(${Array.from({ length: width }, (_, c) => `$${r * width + c + 1}`).join(', ')})`);
  return `INSERT INTO ${table} (${[...keys, ...SUM_COLUMNS].join(', ')}) VALUES ${values.join(', ')}
    ON CONFLICT (${keys.join(', ')}) DO UPDATE SET ${SUM_COLUMNS.map((c) => `${c} = ${table}.${c} + excluded.${c}`).join(', ')}`;
}

/**
 * How a report window splits: whole UTC days from the rollups (`lo` inclusive, `hi` exclusive,
 * undefined: open; null: the window holds no whole day) and the partial days at its edges from
 * usage_events (each a range of occurred_at, read through the (project, occurred_at) index).
 */
interface Split {
  rollup: { lo: number | undefined; hi: number | undefined } | null;
  raw: { since: number; until: number }[];
}

function splitWindow({ since, until }: ReportFilter): Split {
  const lo = since === undefined ? undefined : since === dayOf(since) ? since : dayOf(since) + DAY_MS;
  const hi = until === undefined ? undefined : dayOf(until);
  if (since !== undefined && until !== undefined && lo! >= hi!) return { rollup: null, raw: [{ since, until }] };
  const raw: Split['raw'] = [];
  if (since !== undefined && since < lo!) raw.push({ since, until: lo! });
  if (until !== undefined && hi! < until) raw.push({ since: hi!, until });
  return { rollup: { lo, hi }, raw };
}

/** One event of usage_events u as a rollup row (the day, agent, model and task columns, then the sums). */
const EVENT_SUMS = `1 AS events, CASE WHEN u.cost_micros IS NULL THEN 1 ELSE 0 END AS unknown_cost_events,
  u.input_tokens AS input_tokens, u.output_tokens AS output_tokens, u.cache_write_tokens AS cache_write_tokens,
  u.cache_write_1h_tokens AS cache_write_1h_tokens, u.cache_read_tokens AS cache_read_tokens,
  u.reasoning_tokens AS reasoning_tokens, COALESCE(u.cost_micros, 0) AS cost_micros`;
const EVENT_DAY = `CAST(u.occurred_at / ${DAY_MS} AS BIGINT) * ${DAY_MS}`;
const SOURCES = {
  main: {
    table: 'usage_rollup',
    rollupColumns: `r.day AS day, r.agent AS agent, r.model AS model, ${SUM_COLUMNS.map((c) => `r.${c} AS ${c}`).join(', ')}`,
    eventColumns: `${EVENT_DAY} AS day, COALESCE(u.agent, '') AS agent, u.model AS model, ${EVENT_SUMS}`,
  },
  task: {
    table: 'usage_task_rollup',
    rollupColumns: `r.day AS day, r.agent AS agent, r.task AS task, ${SUM_COLUMNS.map((c) => `r.${c} AS ${c}`).join(', ')}`,
    eventColumns: `${EVENT_DAY} AS day, COALESCE(u.agent, '') AS agent, COALESCE(u.task, '') AS task, ${EVENT_SUMS}`,
  },
} as const;

/** Sums of a source's rows, as numbers on both dialects (PostgreSQL's SUM of BIGINT is NUMERIC). */
const SOURCE_SUMS = SUM_COLUMNS.map((c) => `CAST(COALESCE(SUM(s.${c}), 0) AS BIGINT) AS ${c}`).join(', ');

type Summed = { readonly [K in keyof Sums]: number | string };

/** A usage report's parts as `usageReport` shows them (rows sorted). */
export interface ReportParts {
  rows: UsageRow[];
  total: UsageRow;
  unknownModels: { model: string; events: number }[];
  completedTasks: { tasks: number; costMicros: number };
}

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

  /**
   * Adds a delta to the rollups, in the caller's transaction (the one that wrote the events it
   * sums): recordMany adds its new events, recompute moves re-priced costs.
   */
  async addToRollups(db: SqlExecutor, project: string, delta: RollupDelta): Promise<void> {
    const { main, tasks } = delta.rows();
    const write = async <T extends { sums: Sums }>(table: 'usage_rollup' | 'usage_task_rollup', keys: readonly string[], cells: T[], keyValues: (c: T) => unknown[]) => {
      for (let i = 0; i < cells.length; i += ROLLUP_CHUNK) {
        const chunk = cells.slice(i, i + ROLLUP_CHUNK);
        await db.run(
          upsertSql(table, keys, chunk.length),
          chunk.flatMap((c) => [...keyValues(c), ...SUM_COLUMNS.map((k) => c.sums[k])]),
        );
      }
    };
    await write('usage_rollup', ['project', 'day', 'agent', 'model'], main, (c) => [project, c.day, c.agent, c.model]);
    await write('usage_task_rollup', ['project', 'task', 'day', 'agent'], tasks, (c) => [project, c.task, c.day, c.agent]);
  }

  /**
   * Re-prices events in the caller's transaction and moves the rollups by each cost change. An
   * event whose cost is no longer the one read (another re-pricing got there first) is left
   * alone. Returns how many events it changed.
   */
  async reprice(db: SqlExecutor, project: string, updates: readonly { event: UsageEvent; costMicros: number | null; priceVersion: string | null }[]): Promise<number> {
    const delta = new RollupDelta();
    let changed = 0;
    for (const { event, costMicros, priceVersion } of updates) {
      // Costs are 0 or more, so -1 stands for NULL (unpriced) on both dialects.
      const updated = await db.run(
        'UPDATE usage_events SET cost_micros = $3, price_version = $4 WHERE project = $1 AND id = $2 AND COALESCE(cost_micros, -1) = $5',
        [project, event.id, costMicros, priceVersion, event.costMicros ?? -1],
      );
      if (updated === 0) continue;
      changed++;
      if (costMicros !== event.costMicros) delta.add(event, -1).add({ ...event, costMicros });
    }
    await this.addToRollups(db, project, delta);
    return changed;
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

  /**
   * The rows of one rollup within the filter, as a subquery: its whole days from the rollup, the
   * partial days at the window's edges from usage_events (same columns). Pushes its parameters
   * onto `params` (`$1` is the project).
   */
  private source(kind: keyof typeof SOURCES, filter: ReportFilter, params: unknown[]): string {
    const src = SOURCES[kind];
    const split = splitWindow(filter);
    const param = (v: unknown) => `$${params.push(v)}`;
    const agent = filter.agent === undefined ? undefined : param(filter.agent);
    const arms: string[] = [];
    if (split.rollup) {
      const where = ['r.project = $1'];
      if (split.rollup.lo !== undefined) where.push(`r.day >= ${param(split.rollup.lo)}`);
      if (split.rollup.hi !== undefined) where.push(`r.day < ${param(split.rollup.hi)}`);
      if (agent) where.push(`r.agent = ${agent}`);
      arms.push(`SELECT ${src.rollupColumns} FROM ${src.table} r WHERE ${where.join(' AND ')}`);
    }
    for (const edge of split.raw) {
      const where = ['u.project = $1', `u.occurred_at >= ${param(edge.since)}`, `u.occurred_at < ${param(edge.until)}`];
      if (agent) where.push(`u.agent = ${agent}`);
      arms.push(`SELECT ${src.eventColumns} FROM usage_events u WHERE ${where.join(' AND ')}`);
    }
    return `(${arms.join(' UNION ALL ')})`;
  }

  /**
   * Everything `sos usage` shows, in two statements over the rollups (three by squad): the sums
   * by agent (by day) and model, from which the rows, the total and the unpriced models follow,
   * and the sums per task joined with the tasks now `done`. By squad an agent's sums count in
   * every squad it is in now (squad_members), and under `-` when it is in none or there is no
   * agent; by task the events without one are `-`.
   */
  async report(project: string, by: ReportDimension, filter: ReportFilter): Promise<ReportParts> {
    const params: unknown[] = [project];
    const grp = by === 'day' ? 'day' : 'agent';
    const cells = await this.db.all<Summed & { grp: string | number; model: string }>(
      `SELECT s.${grp} AS grp, s.model AS model, ${SOURCE_SUMS} FROM ${this.source('main', filter, params)} s GROUP BY s.${grp}, s.model`,
      params,
    );
    let squads: Map<string, string[]> | undefined;
    if (by === 'squad') {
      squads = new Map();
      for (const m of await this.db.all<{ agent: string; squad: string }>('SELECT agent, squad FROM squad_members WHERE project = $1', [project])) {
        squads.set(m.agent, [...(squads.get(m.agent) ?? []), m.squad]);
      }
    }
    const groups = new Map<string, Sums>();
    const into = (key: string, from: Summed) => {
      let g = groups.get(key);
      if (!g) groups.set(key, (g = zero()));
      addInto(g, from);
    };
    const total = zero();
    const unknown = new Map<string, number>();
    for (const c of cells) {
      addInto(total, c);
      const unpriced = n(c.unknown_cost_events);
      if (unpriced > 0) unknown.set(c.model, (unknown.get(c.model) ?? 0) + unpriced);
      const agent = String(c.grp);
      if (by === 'agent') into(agent === '' ? '-' : agent, c);
      else if (by === 'model') into(c.model, c);
      else if (by === 'project') into(project, c);
      else if (by === 'day') into(new Date(n(c.grp)).toISOString().slice(0, 10), c);
      else if (by === 'squad') for (const squad of (agent === '' ? undefined : squads!.get(agent)) ?? ['-']) into(squad, c);
    }

    const taskParams: unknown[] = [project];
    const perTask = `SELECT s.task AS task, ${by === 'task' ? SOURCE_SUMS : 'SUM(s.cost_micros) AS cost_micros'} FROM ${this.source('task', filter, taskParams)} s GROUP BY s.task`;
    let completed: ReportParts['completedTasks'];
    if (by === 'task') {
      const tasks = await this.db.all<Summed & { task: string; status: string | null }>(
        `SELECT g.*, t.status AS status FROM (${perTask}) g LEFT JOIN tasks t ON t.project = $1 AND t.id = g.task`,
        taskParams,
      );
      completed = { tasks: 0, costMicros: 0 };
      for (const t of tasks) {
        into(t.task === '' ? '-' : t.task, t);
        if (t.status === 'done') {
          completed.tasks++;
          completed.costMicros += n(t.cost_micros);
        }
      }
    } else {
      const row = await this.db.one<{ tasks: number | string; cost: number | string }>(
        `SELECT CAST(COUNT(*) AS BIGINT) AS tasks, CAST(COALESCE(SUM(g.cost_micros), 0) AS BIGINT) AS cost
         FROM (${perTask}) g JOIN tasks t ON t.project = $1 AND t.id = g.task WHERE t.status = 'done'`,
        taskParams,
      );
      completed = { tasks: n(row?.tasks), costMicros: n(row?.cost) };
    }

    const rows = [...groups.entries()].filter(([, g]) => g.events > 0).map(([key, g]) => toRow(key, g));
    // Days in calendar order; every other dimension most expensive first, then by name.
    rows.sort((a, b) =>
      by === 'day' ? (a.key < b.key ? -1 : a.key > b.key ? 1 : 0) : (b.costMicros ?? -1) - (a.costMicros ?? -1) || b.events - a.events || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0),
    );
    return {
      rows,
      total: toRow('total', total),
      unknownModels: [...unknown.entries()].map(([model, events]) => ({ model, events })).sort((a, b) => b.events - a.events || (a.model < b.model ? -1 : 1)),
      completedTasks: completed,
    };
  }

  async grouped(project: string, by: ReportDimension, filter: ReportFilter): Promise<UsageRow[]> {
    return (await this.report(project, by, filter)).rows;
  }

  async total(project: string, filter: ReportFilter): Promise<UsageRow> {
    return (await this.report(project, 'project', filter)).total;
  }

  async unknownModels(project: string, filter: ReportFilter): Promise<{ model: string; events: number }[]> {
    return (await this.report(project, 'project', filter)).unknownModels;
  }

  /** Tasks of the project now `done` that have events matching the filter, and those events' priced cost. */
  async completedTasks(project: string, filter: ReportFilter): Promise<{ tasks: number; costMicros: number }> {
    return (await this.report(project, 'project', filter)).completedTasks;
  }
}
