import type { SqlExecutor } from '../store/sql/driver.js';

/**
 * What the ledger says things cost so far: one task (`sos tasks show`), each agent today and in
 * all (`sos agents status`), and the events no price covers in any project (`sos doctor`).
 *
 * Costs are the stored per-event micro-dollars (priced when recorded, or by `sos usage
 * recompute`); an unpriced event adds nothing to a cost and is counted apart, never as 0. Every
 * statement runs unchanged on SQLite and PostgreSQL. The callers check visibility: these
 * functions take a project and trust it.
 */

const n = (v: unknown): number => Number(v ?? 0);

/** Sums that come back as numbers on both dialects (PostgreSQL's SUM of BIGINT is NUMERIC). */
const sum = (column: string, where?: string) =>
  `CAST(COALESCE(SUM(${where === undefined ? column : `CASE WHEN ${where} THEN ${column} ELSE 0 END`}), 0) AS BIGINT)`;
const count = (where?: string) => (where === undefined ? 'CAST(COUNT(*) AS BIGINT)' : `CAST(COALESCE(SUM(CASE WHEN ${where} THEN 1 ELSE 0 END), 0) AS BIGINT)`);

export interface CostSums {
  events: number;
  inputTokens: number;
  outputTokens: number;
  cacheWriteTokens: number;
  cacheWrite1hTokens: number;
  cacheReadTokens: number;
  reasoningTokens: number;
  /** Sum over the priced events; null when there are events and none of them is priced. */
  costMicros: number | null;
  /** Events whose model was unpriced (not in costMicros). */
  unknownCostEvents: number;
}

export interface TaskCost extends CostSums {
  /** Unpriced events per model, most first. */
  unknownModels: { model: string; events: number }[];
}

/** A priced sum, or null when every one of `events` (at least one) is unpriced. */
const priced = (micros: unknown, events: number, unknown: number): number | null => (events > 0 && unknown === events ? null : n(micros));

/** The usage events attributed to one task: tokens of each kind, priced cost, and the unpriced events by model. */
export async function taskCost(db: SqlExecutor, project: string, taskId: string): Promise<TaskCost> {
  const row = await db.one<Record<string, unknown>>(
    `SELECT ${count()} AS events,
       ${sum('input_tokens')} AS input_tokens, ${sum('output_tokens')} AS output_tokens,
       ${sum('cache_write_tokens')} AS cache_write_tokens, ${sum('cache_write_1h_tokens')} AS cache_write_1h_tokens,
       ${sum('cache_read_tokens')} AS cache_read_tokens, ${sum('reasoning_tokens')} AS reasoning_tokens,
       ${sum('cost_micros', 'cost_micros IS NOT NULL')} AS cost_micros, ${count('cost_micros IS NULL')} AS unknown_cost_events
     FROM usage_events WHERE project = $1 AND task = $2`,
    [project, taskId],
  );
  const events = n(row?.events);
  const unknown = n(row?.unknown_cost_events);
  const models =
    unknown === 0
      ? []
      : await db.all<{ model: string; events: unknown }>(
          'SELECT model, CAST(COUNT(*) AS BIGINT) AS events FROM usage_events WHERE project = $1 AND task = $2 AND cost_micros IS NULL GROUP BY model',
          [project, taskId],
        );
  return {
    events,
    inputTokens: n(row?.input_tokens),
    outputTokens: n(row?.output_tokens),
    cacheWriteTokens: n(row?.cache_write_tokens),
    cacheWrite1hTokens: n(row?.cache_write_1h_tokens),
    cacheReadTokens: n(row?.cache_read_tokens),
    reasoningTokens: n(row?.reasoning_tokens),
    costMicros: priced(row?.cost_micros, events, unknown),
    unknownCostEvents: unknown,
    unknownModels: byMostEvents(models.map((m) => ({ model: m.model, events: n(m.events) }))),
  };
}

/** One agent's priced spend over a window. */
export interface Spend {
  events: number;
  /** Null when there are events and none of them is priced. */
  costMicros: number | null;
  unknownCostEvents: number;
}

export interface AgentCost {
  /** Events that occurred at or after `since`. */
  since: Spend;
  /** Every event of the agent. */
  total: Spend;
}

const NO_SPEND: Spend = { events: 0, costMicros: 0, unknownCostEvents: 0 };
export const NO_AGENT_COST: AgentCost = { since: NO_SPEND, total: NO_SPEND };

/**
 * Per agent of the project (events of no agent left out): spend of the events that occurred at
 * or after `since` (epoch ms, e.g. the start of the UTC day) and in all. One indexed query.
 */
export async function agentCosts(db: SqlExecutor, project: string, since: number): Promise<Map<string, AgentCost>> {
  const recent = 'occurred_at >= $2';
  const rows = await db.all<Record<string, unknown> & { agent: string }>(
    `SELECT agent,
       ${count(recent)} AS since_events, ${sum('cost_micros', `${recent} AND cost_micros IS NOT NULL`)} AS since_cost,
       ${count(`${recent} AND cost_micros IS NULL`)} AS since_unknown,
       ${count()} AS total_events, ${sum('cost_micros', 'cost_micros IS NOT NULL')} AS total_cost, ${count('cost_micros IS NULL')} AS total_unknown
     FROM usage_events WHERE project = $1 AND agent IS NOT NULL GROUP BY agent`,
    [project, since],
  );
  const spend = (events: unknown, cost: unknown, unknown: unknown): Spend => ({
    events: n(events),
    costMicros: priced(cost, n(events), n(unknown)),
    unknownCostEvents: n(unknown),
  });
  return new Map(
    rows.map((r) => [r.agent, { since: spend(r.since_events, r.since_cost, r.since_unknown), total: spend(r.total_events, r.total_cost, r.total_unknown) }]),
  );
}

/** Every project's unpriced events per model (cost NULL in the ledger), most first; and how many events the ledger holds. */
export async function unpricedEvents(db: SqlExecutor): Promise<{ events: number; unpriced: { project: string; model: string; events: number }[] }> {
  const total = await db.one<{ events: unknown }>('SELECT CAST(COUNT(*) AS BIGINT) AS events FROM usage_events');
  const rows = await db.all<{ project: string; model: string; events: unknown }>(
    'SELECT project, model, CAST(COUNT(*) AS BIGINT) AS events FROM usage_events WHERE cost_micros IS NULL GROUP BY project, model',
  );
  const unpriced = rows
    .map((r) => ({ project: r.project, model: r.model, events: n(r.events) }))
    .sort((a, b) => b.events - a.events || (a.project < b.project ? -1 : a.project > b.project ? 1 : 0) || (a.model < b.model ? -1 : a.model > b.model ? 1 : 0));
  return { events: n(total?.events), unpriced };
}

function byMostEvents<T extends { model: string; events: number }>(rows: T[]): T[] {
  return rows.sort((a, b) => b.events - a.events || (a.model < b.model ? -1 : a.model > b.model ? 1 : 0));
}

const DAY_MS = 86_400_000;

/** The start of the UTC day that holds `now` (epoch ms). */
export function utcDayStart(now: number): number {
  return Math.floor(now / DAY_MS) * DAY_MS;
}

/** `cost unknown for 3 events of model x` (the wording `sos usage` uses too). */
export function unknownCostLine(events: number, model: string): string {
  return `cost unknown for ${events.toLocaleString('en-US')} event${events === 1 ? '' : 's'} of model ${model}`;
}
