import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadPrices } from '../../src/core/economy/prices.js';
import { recompute, recordMany, recordUsage, usageReport } from '../../src/core/economy/service.js';
import { SqlUsageRepo } from '../../src/core/economy/sql-usage.js';
import type { UsageInput } from '../../src/core/economy/types.js';
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
