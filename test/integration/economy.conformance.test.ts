import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { loadPrices } from '../../src/core/economy/prices.js';
import { recompute, recordMany, recordUsage, usageReport } from '../../src/core/economy/service.js';
import { SqlUsageRepo } from '../../src/core/economy/sql-usage.js';
import { REPORT_DIMENSIONS, type ReportDimension, type ReportFilter, type UsageInput, type UsageReport, type UsageRow } from '../../src/core/economy/types.js';
import { NotFound, PermissionDenied, UsageError } from '../../src/core/errors.js';
import { claimTask, completeTask, createTask } from '../../src/core/tasks/service.js';
import { seedAgents } from '../helpers/bus.js';
import { fails } from '../helpers/expect.js';
import { tempDir } from '../helpers/isolation.js';
import { TASK_ADAPTERS, type TaskWorld } from '../helpers/tasks.js';

/** One suite, unchanged, on the Store's SQLite and PostgreSQL adapters. */

const DAY = 86_400_000;
const T0 = Date.UTC(2026, 10, 1, 12, 0, 0);

async function count(w: TaskWorld, project = w.project): Promise<number> {
  const row = await w.store.sql.one<{ n: number }>('SELECT COUNT(*) AS n FROM usage_events WHERE project = $1', [project]);
  return Number(row!.n);
}

async function team(w: TaskWorld) {
  await seedAgents(w, { boss: 'coordinator', kasra: 'worker', codex: 'worker', gemini: 'worker' }, { web: ['kasra', 'codex'], infra: ['codex'] });
}

/** claude-sonnet-4-5: input $3, output $15, cache write $3.75 (1h $6), cache read $0.30 per million. */
const sonnet = (extra: Partial<UsageInput> = {}): UsageInput => ({
  model: 'claude-sonnet-4-5-20250929',
  inputTokens: 1_000,
  outputTokens: 200,
  cacheWriteTokens: 100,
  cacheWrite1hTokens: 10,
  cacheReadTokens: 10_000,
  occurredAt: T0,
  ...extra,
});
// 1000×3 + 200×15 + 100×3.75 + 10×6 + 10000×0.3 = 3000 + 3000 + 375 + 60 + 3000
const SONNET_MICROS = 9_435;

/** A small deterministic PRNG (mulberry32): the same events for the same seed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

/**
 * The report as plain GROUP BYs over usage_events (the statements `sos usage` ran before the
 * rollups), shaped and sorted as usageReport returns it: the reference the rollups must equal.
 */
async function ledgerReport(w: TaskWorld, by: ReportDimension, filter: Omit<ReportFilter, 'by'>): Promise<UsageReport> {
  const params: unknown[] = [w.project];
  const where = ['u.project = $1'];
  if (filter.since !== undefined) where.push(`u.occurred_at >= $${params.push(filter.since)}`);
  if (filter.until !== undefined) where.push(`u.occurred_at < $${params.push(filter.until)}`);
  if (filter.agent !== undefined) where.push(`u.agent = $${params.push(filter.agent)}`);
  const sums = `CAST(COALESCE(SUM(u.input_tokens), 0) AS BIGINT) AS input_tokens, CAST(COALESCE(SUM(u.output_tokens), 0) AS BIGINT) AS output_tokens,
    CAST(COALESCE(SUM(u.cache_write_tokens), 0) AS BIGINT) AS cache_write_tokens, CAST(COALESCE(SUM(u.cache_write_1h_tokens), 0) AS BIGINT) AS cache_write_1h_tokens,
    CAST(COALESCE(SUM(u.cache_read_tokens), 0) AS BIGINT) AS cache_read_tokens, CAST(COALESCE(SUM(u.reasoning_tokens), 0) AS BIGINT) AS reasoning_tokens,
    CAST(COUNT(*) AS BIGINT) AS events, CAST(COALESCE(SUM(u.cost_micros), 0) AS BIGINT) AS cost_micros,
    CAST(COALESCE(SUM(CASE WHEN u.cost_micros IS NULL THEN 1 ELSE 0 END), 0) AS BIGINT) AS unknown_cost_events`;
  const groups: Record<ReportDimension, [string, string]> = {
    agent: ["COALESCE(u.agent, '-')", ''],
    model: ['u.model', ''],
    project: ['u.project', ''],
    task: ["COALESCE(u.task, '-')", ''],
    squad: ["COALESCE(m.squad, '-')", 'LEFT JOIN squad_members m ON m.project = u.project AND m.agent = u.agent'],
    day: [`CAST(u.occurred_at / ${DAY} AS BIGINT)`, ''],
  };
  type Sum = Record<'input_tokens' | 'output_tokens' | 'cache_write_tokens' | 'cache_write_1h_tokens' | 'cache_read_tokens' | 'reasoning_tokens' | 'events' | 'cost_micros' | 'unknown_cost_events', unknown> & { key: unknown };
  const row = (key: string, r: Sum): UsageRow => {
    const events = Number(r.events);
    const unknown = Number(r.unknown_cost_events);
    return {
      key,
      inputTokens: Number(r.input_tokens),
      outputTokens: Number(r.output_tokens),
      cacheWriteTokens: Number(r.cache_write_tokens),
      cacheWrite1hTokens: Number(r.cache_write_1h_tokens),
      cacheReadTokens: Number(r.cache_read_tokens),
      reasoningTokens: Number(r.reasoning_tokens),
      events,
      costMicros: events > 0 && unknown === events ? null : Number(r.cost_micros),
      unknownCostEvents: unknown,
    };
  };
  const [key, join] = groups[by];
  const sql = where.join(' AND ');
  const grouped = await w.store.sql.all<Sum>(`SELECT ${key} AS key, ${sums} FROM usage_events u ${join} WHERE ${sql} GROUP BY ${key}`, params);
  const rows = grouped
    .map((r) => row(by === 'day' ? new Date(Number(r.key) * DAY).toISOString().slice(0, 10) : String(r.key), r))
    .sort((a, b) => (by === 'day' ? (a.key < b.key ? -1 : 1) : (b.costMicros ?? -1) - (a.costMicros ?? -1) || b.events - a.events || (a.key < b.key ? -1 : 1)));
  const total = row('total', (await w.store.sql.one<Sum>(`SELECT NULL AS key, ${sums} FROM usage_events u WHERE ${sql}`, params))!);
  const unknownModels = (
    await w.store.sql.all<{ model: string; events: unknown }>(
      `SELECT u.model AS model, CAST(COUNT(*) AS BIGINT) AS events FROM usage_events u WHERE ${sql} AND u.cost_micros IS NULL GROUP BY u.model`,
      params,
    )
  )
    .map((r) => ({ model: r.model, events: Number(r.events) }))
    .sort((a, b) => b.events - a.events || (a.model < b.model ? -1 : 1));
  const done = await w.store.sql.one<{ tasks: unknown; cost: unknown }>(
    `SELECT CAST(COUNT(DISTINCT u.task) AS BIGINT) AS tasks, CAST(COALESCE(SUM(u.cost_micros), 0) AS BIGINT) AS cost
     FROM usage_events u JOIN tasks t ON t.project = u.project AND t.id = u.task WHERE ${sql} AND t.status = 'done'`,
    params,
  );
  const tasks = Number(done!.tasks);
  const cost = Number(done!.cost);
  return {
    by,
    since: filter.since ?? null,
    until: filter.until ?? null,
    agent: filter.agent ?? null,
    rows,
    total,
    unknownModels,
    completedTasks: tasks,
    completedTaskCostMicros: cost,
    costPerCompletedTaskMicros: tasks === 0 ? null : Math.round(cost / tasks),
  };
}

/** Both rollups of the world's projects, and the same sums computed from usage_events. */
async function rollupsAndLedger(w: TaskWorld) {
  const sums = `events, unknown_cost_events, input_tokens, output_tokens, cache_write_tokens, cache_write_1h_tokens, cache_read_tokens, reasoning_tokens, cost_micros`;
  const fromEvents = `CAST(COUNT(*) AS BIGINT) AS events, CAST(SUM(CASE WHEN cost_micros IS NULL THEN 1 ELSE 0 END) AS BIGINT) AS unknown_cost_events,
    CAST(SUM(input_tokens) AS BIGINT) AS input_tokens, CAST(SUM(output_tokens) AS BIGINT) AS output_tokens, CAST(SUM(cache_write_tokens) AS BIGINT) AS cache_write_tokens,
    CAST(SUM(cache_write_1h_tokens) AS BIGINT) AS cache_write_1h_tokens, CAST(SUM(cache_read_tokens) AS BIGINT) AS cache_read_tokens,
    CAST(SUM(reasoning_tokens) AS BIGINT) AS reasoning_tokens, CAST(COALESCE(SUM(cost_micros), 0) AS BIGINT) AS cost_micros`;
  const day = `CAST(occurred_at / ${DAY} AS BIGINT) * ${DAY}`;
  const numbers = (rows: Record<string, unknown>[]) => rows.map((r) => Object.fromEntries(Object.entries(r).map(([k, v]) => [k, typeof v === 'string' && /^\d+$/.test(v) && k !== 'agent' && k !== 'task' && k !== 'model' ? Number(v) : v])));
  const all = (sql: string) => w.store.sql.all<Record<string, unknown>>(sql).then(numbers);
  return {
    rollup: await all(`SELECT project, day, agent, model, ${sums} FROM usage_rollup ORDER BY project, day, agent, model`),
    ledger: await all(
      `SELECT project, ${day} AS day, COALESCE(agent, '') AS agent, model, ${fromEvents} FROM usage_events GROUP BY project, ${day}, COALESCE(agent, ''), model ORDER BY project, day, agent, model`,
    ),
    taskRollup: await all(`SELECT project, task, day, agent, ${sums} FROM usage_task_rollup ORDER BY project, task, day, agent`),
    taskLedger: await all(
      `SELECT project, COALESCE(task, '') AS task, ${day} AS day, COALESCE(agent, '') AS agent, ${fromEvents} FROM usage_events
       GROUP BY project, COALESCE(task, ''), ${day}, COALESCE(agent, '') ORDER BY project, task, day, agent`,
    ),
  };
}

async function expectRollupsMatchLedger(w: TaskWorld) {
  const r = await rollupsAndLedger(w);
  expect(r.rollup.length).toBeGreaterThan(0);
  expect(r.rollup).toEqual(r.ledger);
  expect(r.taskRollup).toEqual(r.taskLedger);
}

/** The backfill of the rollup migration (its statements after `-- The ledger so far.`). */
function backfillSql(dialect: 'sqlite' | 'postgres'): string {
  const dir = fileURLToPath(new URL(`../../src/core/store/migrations/${dialect}/`, import.meta.url));
  const file = readdirSync(dir).find((f) => f.endsWith('_usage_rollup.sql'))!;
  const text = readFileSync(join(dir, file), 'utf8');
  return text.slice(text.indexOf('-- The ledger so far.'));
}

describe.each(TASK_ADAPTERS)('Economy conformance: $name', (adapter) => {
  describe.skipIf(!adapter.available)(adapter.name, () => {
    it('records an event once per source key, priced in micro-dollars, attributed to the caller', async (ctx) => {
      const w = await adapter.open(ctx);
      await team(w);
      const first = await recordUsage(w.store, w.token('kasra'), sonnet({ sourceKey: 'k-1' }));
      expect(first).toMatchObject({ duplicate: false, costMicros: SONNET_MICROS, agent: 'kasra', task: null });
      expect(first.id).toMatch(/^use_[0-9a-z]{26}$/);
      const again = await recordUsage(w.store, w.token('kasra'), sonnet({ sourceKey: 'k-1', inputTokens: 999_999 }));
      expect(again).toEqual({ ...first, duplicate: true });
      // The same key from another source is another event; no key: a fresh one every time.
      expect((await recordUsage(w.store, w.as(null), sonnet({ source: 'claude', sourceKey: 'k-1', agent: 'kasra' }))).duplicate).toBe(false);
      expect((await recordUsage(w.store, w.token('kasra'), sonnet())).duplicate).toBe(false);
      expect((await recordUsage(w.store, w.token('kasra'), sonnet())).duplicate).toBe(false);
      expect(await count(w)).toBe(4);
      const stored = await new SqlUsageRepo(w.store.sql).get(w.project, first.id);
      expect(stored).toMatchObject({
        project: w.project,
        agent: 'kasra',
        provider: 'anthropic',
        model: 'claude-sonnet-4-5-20250929',
        inputTokens: 1_000,
        cacheWrite1hTokens: 10,
        costMicros: SONNET_MICROS,
        priceVersion: loadPrices().version,
        source: 'report',
        sourceKey: 'k-1',
        occurredAt: T0,
      });
      // A batch: one transaction, duplicates inside it counted once.
      const batch = await recordMany(w.store, w.as(null), [
        sonnet({ source: 'codex', sourceKey: 's:1', agent: 'codex' }),
        sonnet({ source: 'codex', sourceKey: 's:2', agent: 'codex' }),
        sonnet({ source: 'codex', sourceKey: 's:1', agent: 'codex' }),
      ]);
      expect(batch.map((r) => r.duplicate)).toEqual([false, false, true]);
      expect(batch[2]!.id).toBe(batch[0]!.id);
      expect(await count(w)).toBe(6);
    });

    it('keeps an unpriced model unknown (NULL, never 0) and flags it in reports', async (ctx) => {
      const w = await adapter.open(ctx);
      await team(w);
      const r = await recordUsage(w.store, w.token('kasra'), { model: 'mystery-model-9', inputTokens: 500, outputTokens: 50, occurredAt: T0 });
      expect(r.costMicros).toBeNull();
      const stored = await new SqlUsageRepo(w.store.sql).get(w.project, r.id);
      expect(stored).toMatchObject({ costMicros: null, priceVersion: null, provider: 'unknown' });
      await recordUsage(w.store, w.token('kasra'), sonnet());
      const report = await usageReport(w.store, w.as(null), { by: 'model' });
      expect(report.rows).toEqual([
        expect.objectContaining({ key: 'claude-sonnet-4-5-20250929', events: 1, costMicros: SONNET_MICROS, unknownCostEvents: 0 }),
        expect.objectContaining({ key: 'mystery-model-9', events: 1, costMicros: null, unknownCostEvents: 1, inputTokens: 500 }),
      ]);
      expect(report.total).toMatchObject({ events: 2, costMicros: SONNET_MICROS, unknownCostEvents: 1 });
      expect(report.unknownModels).toEqual([{ model: 'mystery-model-9', events: 1 }]);
    });

    it('reports by every dimension with exact sums, within since/until and for one agent', async (ctx) => {
      const w = await adapter.open(ctx);
      await team(w);
      const task = (await createTask(w.tasks, w.as('boss'), { title: 'build it' })).task;
      const gpt = (agent: string, at: number, input: number, output: number): UsageInput => ({ model: 'openai/gpt-5', inputTokens: input, outputTokens: output, agent, occurredAt: at });
      await recordMany(w.store, w.as(null), [
        sonnet({ agent: 'kasra', task: task.id }), // day 0
        sonnet({ agent: 'kasra', occurredAt: T0 + DAY }), // day 1
        gpt('codex', T0 + DAY, 1_000_000, 100_000), // $1.25 + $1.00
        gpt('gemini', T0 + 2 * DAY, 2, 3), // 2×1.25 + 3×10 = 32.5 → 33 micro-dollars (halves up)
        { model: 'claude-haiku-4-5', inputTokens: 7, outputTokens: 1, agent: null, occurredAt: T0 + 2 * DAY }, // 7 + 5 = 12
      ]);
      const by = async (dim: 'agent' | 'model' | 'project' | 'task' | 'squad' | 'day', extra = {}) =>
        (await usageReport(w.store, w.as(null), { by: dim, ...extra })).rows.map((r) => [r.key, r.events, r.inputTokens, r.outputTokens, r.costMicros]);
      expect(await by('agent')).toEqual([
        ['codex', 1, 1_000_000, 100_000, 2_250_000],
        ['kasra', 2, 2_000, 400, 2 * SONNET_MICROS],
        ['gemini', 1, 2, 3, 33],
        ['-', 1, 7, 1, 12],
      ]);
      expect(await by('model')).toEqual([
        ['openai/gpt-5', 2, 1_000_002, 100_003, 2_250_033],
        ['claude-sonnet-4-5-20250929', 2, 2_000, 400, 2 * SONNET_MICROS],
        ['claude-haiku-4-5', 1, 7, 1, 12],
      ]);
      const all = 2_250_000 + 2 * SONNET_MICROS + 33 + 12;
      expect(await by('project')).toEqual([[w.project, 5, 1_002_009, 100_404, all]]);
      expect(await by('task')).toEqual([
        ['-', 4, 1_001_009, 100_204, all - SONNET_MICROS],
        [task.id, 1, 1_000, 200, SONNET_MICROS],
      ]);
      // codex is in web and infra: counted in both; gemini and no-agent under '-'.
      expect(await by('squad')).toEqual([
        ['web', 3, 1_002_000, 100_400, 2_250_000 + 2 * SONNET_MICROS],
        ['infra', 1, 1_000_000, 100_000, 2_250_000],
        ['-', 2, 9, 4, 45],
      ]);
      expect(await by('day')).toEqual([
        ['2026-11-01', 1, 1_000, 200, SONNET_MICROS],
        ['2026-11-02', 2, 1_001_000, 100_200, 2_250_000 + SONNET_MICROS],
        ['2026-11-03', 2, 9, 4, 45],
      ]);
      expect(await by('agent', { since: T0 + DAY, until: T0 + 2 * DAY })).toEqual([
        ['codex', 1, 1_000_000, 100_000, 2_250_000],
        ['kasra', 1, 1_000, 200, SONNET_MICROS],
      ]);
      expect(await by('day', { agent: 'kasra' })).toEqual([
        ['2026-11-01', 1, 1_000, 200, SONNET_MICROS],
        ['2026-11-02', 1, 1_000, 200, SONNET_MICROS],
      ]);
      const totals = await usageReport(w.store, w.as(null), {});
      expect(totals.by).toBe('agent');
      expect(totals.total).toEqual({
        key: 'total',
        events: 5,
        inputTokens: 1_002_009,
        outputTokens: 100_404,
        cacheWriteTokens: 200,
        cacheWrite1hTokens: 20,
        cacheReadTokens: 20_000,
        reasoningTokens: 0,
        costMicros: all,
        unknownCostEvents: 0,
      });
      expect((await usageReport(w.store, w.as(null), { since: T0 + 10 * DAY })).rows).toEqual([]);
      await fails(usageReport(w.store, w.as(null), { by: 'planet' as 'agent' }), UsageError, /invalid --by/);
      await fails(usageReport(w.store, w.as(null), { since: T0, until: T0 }), UsageError, /before --until/);
    });

    it('attributes to the one task the agent holds, and computes the cost per completed task', async (ctx) => {
      const w = await adapter.open(ctx);
      await team(w);
      const boss = w.as('boss');
      const a = (await createTask(w.tasks, boss, { title: 'a', priority: 'high' })).task;
      const b = (await createTask(w.tasks, boss, { title: 'b' })).task;
      const c = (await createTask(w.tasks, boss, { title: 'c', priority: 'low' })).task;
      // Nothing held: no task.
      expect((await recordUsage(w.store, w.token('kasra'), sonnet())).task).toBeNull();
      await claimTask(w.tasks, w.as('kasra'), { id: a.id });
      expect((await recordUsage(w.store, w.token('kasra'), sonnet())).task).toBe(a.id);
      // Explicitly none.
      expect((await recordUsage(w.store, w.token('kasra'), sonnet({ task: null }))).task).toBeNull();
      // Two held: ambiguous, so none.
      await claimTask(w.tasks, w.as('kasra'), { id: b.id });
      expect((await recordUsage(w.store, w.token('kasra'), sonnet())).task).toBeNull();
      expect((await recordUsage(w.store, w.token('kasra'), sonnet({ task: b.id }))).task).toBe(b.id);
      expect((await recordUsage(w.store, w.token('kasra'), sonnet({ task: b.id }))).task).toBe(b.id);
      // Someone else's held task is not kasra's.
      await claimTask(w.tasks, w.as('codex'), { id: c.id });
      expect((await recordUsage(w.store, w.token('gemini'), sonnet())).task).toBeNull();
      expect((await recordUsage(w.store, w.token('codex'), sonnet({ model: 'gpt-5', inputTokens: 1, outputTokens: 1 }))).task).toBe(c.id);

      let report = await usageReport(w.store, w.as(null));
      expect(report.completedTasks).toBe(0);
      expect(report.costPerCompletedTaskMicros).toBeNull();
      await completeTask(w.tasks, w.as('kasra'), { id: a.id, fence: 1 });
      await completeTask(w.tasks, w.as('kasra'), { id: b.id, fence: 1 });
      report = await usageReport(w.store, w.as(null));
      // a: 1 event, b: 2 events; c is not done.
      expect(report.completedTasks).toBe(2);
      expect(report.completedTaskCostMicros).toBe(3 * SONNET_MICROS);
      expect(report.costPerCompletedTaskMicros).toBe(Math.round((3 * SONNET_MICROS) / 2));
      expect((await usageReport(w.store, w.as(null), { agent: 'codex' })).completedTasks).toBe(0);
    });

    it('re-prices every event with an overlay, and counts what changed', async (ctx) => {
      const w = await adapter.open(ctx);
      await team(w);
      await recordUsage(w.store, w.token('kasra'), sonnet());
      await recordUsage(w.store, w.token('kasra'), { model: 'gpt-5-mini', inputTokens: 1_000_000, outputTokens: 0 });
      const unknown = await recordUsage(w.store, w.token('kasra'), { model: 'house-model', inputTokens: 1_000, outputTokens: 2_000 });
      expect(await recompute(w.store, w.as(null))).toEqual({ events: 3, changed: 0, unknown: 1, priceVersion: loadPrices().version });
      const file = join(tempDir(ctx), 'prices.json');
      writeFileSync(file, JSON.stringify({ version: 'ours-1', models: { 'house-model': { provider: 'local', input: 1, output: 2 }, 'gpt-5-mini': { input: 0.2 } } }));
      const prices = loadPrices(file);
      expect(prices.version).toBe(`${loadPrices().version}+ours-1`);
      expect(prices.models['house-model']).toEqual({ provider: 'local', input: 1, output: 2, cache_write: 1, cache_write_1h: 1, cache_read: 1 });
      expect(prices.models['gpt-5-mini']).toMatchObject({ input: 0.2, output: 2, cache_read: 0.025 });
      await fails(recompute(w.store, w.token('kasra'), { prices }), PermissionDenied);
      // Every event changes version; all three are priced now.
      expect(await recompute(w.store, w.as(null), { prices })).toEqual({ events: 3, changed: 3, unknown: 0, priceVersion: prices.version });
      expect(await recompute(w.store, w.token('boss', 'admin'), { prices })).toMatchObject({ changed: 0 });
      const stored = await new SqlUsageRepo(w.store.sql).get(w.project, unknown.id);
      expect(stored).toMatchObject({ costMicros: 1_000 + 4_000, priceVersion: prices.version });
      const report = await usageReport(w.store, w.as(null), { by: 'model' });
      expect(Object.fromEntries(report.rows.map((r) => [r.key, r.costMicros]))).toEqual({
        'claude-sonnet-4-5-20250929': SONNET_MICROS,
        'gpt-5-mini': 200_000,
        'house-model': 5_000,
      });
      // Events recorded with the overlay are priced with it at once.
      expect((await recordUsage(w.store, w.token('kasra'), { model: 'house-model', inputTokens: 10, outputTokens: 10 }, { prices })).costMicros).toBe(30);
    });

    it('reports from the rollups exactly what the ledger sums, for every dimension and window, through duplicates, re-pricing and the migration backfill', async (ctx) => {
      const w = await adapter.open(ctx);
      await team(w);
      const boss = w.as('boss');
      const tasks = [];
      for (const title of ['a', 'b', 'c', 'd']) tasks.push((await createTask(w.tasks, boss, { title })).task);
      // a and c done, b claimed, d queued.
      for (const t of [tasks[0]!, tasks[2]!]) {
        await claimTask(w.tasks, w.as('kasra'), { id: t.id });
        await completeTask(w.tasks, w.as('kasra'), { id: t.id, fence: 1 });
      }
      await claimTask(w.tasks, w.as('codex'), { id: tasks[1]!.id });
      const seed = 20_261_101;
      const rand = prng(seed);
      const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
      const D0 = Date.UTC(2026, 10, 1);
      const agents = ['kasra', 'codex', 'gemini', 'boss', null] as const;
      // Priced (Anthropic, OpenAI) and unpriced models.
      const models = ['claude-sonnet-4-5-20250929', 'claude-haiku-4-5', 'openai/gpt-5', 'gpt-5-mini', 'house-model', 'mystery-model-9'];
      const events: UsageInput[] = [];
      for (let i = 0; i < 400; i++) {
        const day = Math.floor(rand() * 6);
        // Some on the day's first millisecond or its last, the rest anywhere in it.
        const within = rand() < 0.1 ? 0 : rand() < 0.1 ? DAY - 1 : Math.floor(rand() * DAY);
        const big = rand() < 0.1;
        events.push({
          model: pick(models),
          inputTokens: Math.floor(rand() * (big ? 2_000_000 : 5_000)),
          outputTokens: Math.floor(rand() * 3_000),
          cacheWriteTokens: rand() < 0.5 ? Math.floor(rand() * 20_000) : 0,
          cacheWrite1hTokens: rand() < 0.2 ? Math.floor(rand() * 5_000) : 0,
          cacheReadTokens: rand() < 0.7 ? Math.floor(rand() * 150_000) : 0,
          reasoningTokens: rand() < 0.3 ? Math.floor(rand() * 1_000) : 0,
          agent: pick(agents),
          task: rand() < 0.4 ? null : pick(tasks).id,
          source: 'claude',
          sourceKey: `r-${i}`,
          occurredAt: D0 + day * DAY + within,
        });
      }
      for (let i = 0; i < events.length; i += 50) await recordMany(w.store, w.as(null), events.slice(i, i + 50));
      expect(await count(w)).toBe(400);
      await expectRollupsMatchLedger(w);

      const at = (day: number, hours = 0) => D0 + day * DAY + hours * 3_600_000;
      const someMoment = events[17]!.occurredAt!;
      const windows: Omit<ReportFilter, 'by' | 'agent'>[] = [
        {},
        { since: at(1) },
        { until: at(4) },
        { since: at(1), until: at(4) },
        { since: at(1, 5) },
        { until: at(4, 7) },
        { since: at(1, 5), until: at(4, 7) },
        { since: at(1), until: at(4, 7) },
        { since: at(1, 5), until: at(4) },
        // Inside one day; across one midnight with no whole day between; one whole day and a bit.
        { since: at(2, 1), until: at(2, 20) },
        { since: at(2, 20), until: at(3, 3) },
        { since: at(2, 20), until: at(4, 3) },
        // On an event's own millisecond (since inclusive, until exclusive), and around all the data.
        { since: someMoment },
        { until: someMoment },
        { since: someMoment - 1, until: someMoment + 1 },
        { since: at(-3, 11), until: at(9, 13) },
        { since: at(10) },
      ];
      const agentFilters = [undefined, 'kasra', 'codex', 'nobody'];
      const compare = async (label: string, dims: readonly ReportDimension[] = REPORT_DIMENSIONS, ws = windows) => {
        for (const by of dims) {
          for (const win of ws) {
            for (const agent of agentFilters) {
              const filter = { ...win, ...(agent === undefined ? {} : { agent }) };
              const got = await usageReport(w.store, w.as(null), { by, ...filter });
              expect(got, `${label}: seed ${seed}, by ${by}, ${JSON.stringify(filter)}`).toEqual(await ledgerReport(w, by, filter));
            }
          }
        }
      };
      await compare('recorded');
      // Not empty: the windows do cut through the data, and an unpriced model and done tasks count.
      const full = await usageReport(w.store, w.as(null), { by: 'task' });
      expect(full.unknownModels.length).toBe(2);
      expect(full.completedTasks).toBe(2);
      expect(full.rows.map((r) => r.key).sort()).toEqual(['-', ...tasks.map((t) => t.id)].sort());
      expect((await usageReport(w.store, w.as(null), { since: at(2, 20), until: at(3, 3) })).total.events).toBeGreaterThan(0);

      // Duplicates (a whole batch again, and a key twice in one batch) add nothing to the rollups.
      const before = await rollupsAndLedger(w);
      const again = await recordMany(w.store, w.as(null), [...events.slice(0, 60), events[3]!, { ...events[5]!, inputTokens: 999_999 }]);
      expect(again.every((r) => r.duplicate)).toBe(true);
      const mixed = await recordMany(w.store, w.as(null), [
        { ...events[7]!, sourceKey: 'new-1' },
        { ...events[7]!, sourceKey: 'new-1' },
        events[7]!,
      ]);
      expect(mixed.map((r) => r.duplicate)).toEqual([false, true, true]);
      const after = await rollupsAndLedger(w);
      expect(after.rollup).not.toEqual(before.rollup);
      expect(await count(w)).toBe(401);
      await expectRollupsMatchLedger(w);
      await compare('after duplicates', ['agent', 'task'], windows.slice(0, 7));

      // Re-pricing with an overlay: the unpriced house model gets a price, gpt-5-mini another.
      const file = join(tempDir(ctx), 'prices.json');
      writeFileSync(file, JSON.stringify({ version: 'ours-2', models: { 'house-model': { provider: 'local', input: 1, output: 2 }, 'gpt-5-mini': { input: 0.7, output: 3 } } }));
      const prices = loadPrices(file);
      const repriced = await recompute(w.store, w.as(null), { prices });
      // Every event takes the overlay's version, except the still unpriced ones (no version).
      const stillUnpriced = [...events, events[7]!].filter((e) => e.model === 'mystery-model-9').length;
      expect(repriced).toEqual({ events: 401, changed: 401 - stillUnpriced, unknown: stillUnpriced, priceVersion: prices.version });
      await expectRollupsMatchLedger(w);
      await compare('after recompute');
      expect((await usageReport(w.store, w.as(null), { by: 'model' })).unknownModels.map((m) => m.model)).toEqual(['mystery-model-9']);
      // And back to the built-in prices.
      await recompute(w.store, w.as(null));
      await expectRollupsMatchLedger(w);
      await compare('after recompute back', ['model', 'day'], windows.slice(0, 7));

      // The migration's backfill rebuilds the same rollups from the ledger.
      const other = await w.otherProject();
      await recordUsage(w.store, { project: other, agent: null, role: 'operator', via: 'local' }, sonnet({ agent: null, occurredAt: at(3, 9) }));
      const kept = await rollupsAndLedger(w);
      await w.store.sql.transaction(async (tx) => {
        await tx.run('DELETE FROM usage_rollup');
        await tx.run('DELETE FROM usage_task_rollup');
        await tx.script(backfillSql(w.store.sql.dialect));
      });
      expect(await rollupsAndLedger(w)).toEqual(kept);
      await expectRollupsMatchLedger(w);
    });

    it('keeps projects apart: another project sees nothing and cannot attach this one’s tasks', async (ctx) => {
      const w = await adapter.open(ctx);
      await team(w);
      const task = (await createTask(w.tasks, w.as('boss'), { title: 'ours' })).task;
      await recordUsage(w.store, w.token('kasra'), sonnet({ task: task.id, sourceKey: 'shared-key' }));
      const other = await w.otherProject();
      await w.store.agents.add({ project: other, name: 'kasra', kind: 'custom', role: 'worker', capabilities: [], session: null });
      const them = { project: other, agent: 'kasra', role: 'agent' as const, via: 'token' as const, tokenId: 'tok_other' };
      const empty = await usageReport(w.store, them, { by: 'task' });
      expect(empty.rows).toEqual([]);
      expect(empty.total.events).toBe(0);
      await fails(recordUsage(w.store, them, sonnet({ task: task.id })), NotFound, /does not exist in project/);
      // The same source key in another project is that project's own event.
      expect((await recordUsage(w.store, them, sonnet({ sourceKey: 'shared-key' }))).duplicate).toBe(false);
      expect(await recompute(w.store, { ...them, role: 'admin' })).toMatchObject({ events: 1 });
      expect(await count(w)).toBe(1);
      expect(await count(w, other)).toBe(1);
      expect((await usageReport(w.store, w.as(null), { by: 'task' })).rows.map((r) => r.key)).toEqual([task.id]);
    });

    it('keeps one import offset per project, source and file, replaced in place', async (ctx) => {
      const w = await adapter.open(ctx);
      const other = await w.otherProject();
      const repo = new SqlUsageRepo(w.store.sql);
      const at = { source: 'claude' as const, path: '/home/a/.claude/projects/x/s.jsonl', device: 2049, inode: 2 ** 40 + 7, size: 10_000_000_000, offset: 9_999_999_999, updatedAt: T0 };
      expect(await repo.offset(w.project, 'claude', at.path)).toBeUndefined();
      await repo.transaction((tx) => repo.saveOffset(tx, { project: w.project, ...at }));
      await repo.transaction((tx) => repo.saveOffset(tx, { project: other, ...at, offset: 5 }));
      expect(await repo.offset(w.project, 'claude', at.path)).toEqual({ project: w.project, ...at });
      await repo.transaction((tx) => repo.saveOffset(tx, { project: w.project, ...at, inode: 3, size: 10, offset: 10, updatedAt: T0 + 1 }));
      expect(await repo.offset(w.project, 'claude', at.path)).toMatchObject({ inode: 3, size: 10, offset: 10 });
      expect(await repo.offset(w.project, 'codex', at.path)).toBeUndefined();
      expect(await repo.offset(other, 'claude', at.path)).toMatchObject({ offset: 5 });
    });

    it('refuses bad input and writes nothing', async (ctx) => {
      const w = await adapter.open(ctx);
      await team(w);
      const kasra = w.token('kasra');
      await fails(recordUsage(w.store, kasra, sonnet({ inputTokens: -1 })), UsageError, /inputTokens: input tokens must be 0 or more/);
      await fails(recordUsage(w.store, kasra, sonnet({ outputTokens: 1.5 })), UsageError, /whole number/);
      await fails(recordUsage(w.store, kasra, sonnet({ cacheReadTokens: 2e9 })), UsageError, /at most 1,000,000,000/);
      await fails(recordUsage(w.store, kasra, sonnet({ inputTokens: Number.NaN })), UsageError);
      await fails(recordUsage(w.store, kasra, sonnet({ model: '' })), UsageError, /model is empty/);
      await fails(recordUsage(w.store, kasra, sonnet({ model: 'a b' })), UsageError, /without spaces/);
      await fails(recordUsage(w.store, kasra, sonnet({ task: 'tsk_00000000000000000000000000' })), NotFound, /does not exist/);
      await fails(recordUsage(w.store, kasra, sonnet({ task: 'nope' })), UsageError, /task id/);
      await fails(recordUsage(w.store, kasra, sonnet({ source: 'claude' })), UsageError, /needs its source key/);
      await fails(recordUsage(w.store, kasra, { ...sonnet(), extra: 1 } as UsageInput), UsageError);
      await fails(recordUsage(w.store, kasra, sonnet({ agent: 'codex' })), PermissionDenied, /for agent "codex"/);
      await fails(recordUsage(w.store, w.token('kasra', 'observer'), sonnet()), PermissionDenied, /observer/);
      // One bad event refuses the whole batch.
      await fails(recordMany(w.store, w.as(null), [sonnet(), sonnet({ outputTokens: -5 }), sonnet()]), UsageError, /event 2: outputTokens/);
      await fails(recordMany(w.store, w.as(null), [sonnet(), sonnet({ task: 'tsk_00000000000000000000000000' })]), NotFound);
      // A malformed SOS_PRICES file is refused before anything is recorded.
      const dir = tempDir(ctx);
      const bad = join(dir, 'bad.json');
      writeFileSync(bad, JSON.stringify({ models: { 'gpt-5': { input: -2 } } }));
      expect(() => loadPrices(bad)).toThrow(/bad\.json.*models\.gpt-5\.input.*0 or more/);
      writeFileSync(bad, '{ not json');
      expect(() => loadPrices(bad)).toThrow(/is not JSON/);
      writeFileSync(bad, JSON.stringify({ models: { 'new-model': { input: 1 } } }));
      expect(() => loadPrices(bad)).toThrow(/models\.new-model\.provider.*required/);
      expect(() => loadPrices(join(dir, 'missing.json'))).toThrow(UsageError);
      expect(await count(w)).toBe(0);
      expect((await usageReport(w.store, w.as(null))).total.events).toBe(0);
    });
  });
});
