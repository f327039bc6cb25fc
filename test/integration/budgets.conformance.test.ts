import { describe, expect, it } from 'vitest';
import { listBudgets, parseLimit, periodStart, removeBudget, setBudget, showBudget } from '../../src/core/economy/budgets.js';
import { recordMany, recordUsage } from '../../src/core/economy/service.js';
import type { UsageInput } from '../../src/core/economy/types.js';
import { NotFound, PermissionDenied, UsageError } from '../../src/core/errors.js';
import { claimTask, createTask, taskCounters } from '../../src/core/tasks/service.js';
import { seedAgents } from '../helpers/bus.js';
import { fails } from '../helpers/expect.js';
import { TASK_ADAPTERS, type TaskWorld } from '../helpers/tasks.js';

/** Budgets on both Store adapters: spend kept as usage is recorded, crossings once, block on the claim path. */

const T0 = Date.UTC(2026, 10, 4, 12, 0, 0); // a Wednesday
const DAY = 86_400_000;

async function team(w: TaskWorld) {
  await seedAgents(w, { boss: 'coordinator', kasra: 'worker', codex: 'worker' }, { web: ['kasra'], infra: ['codex'] });
}

/** 1,000 input and 200 output tokens of claude-sonnet-4-5: $0.006. */
const call = (extra: Partial<UsageInput> = {}): UsageInput => ({ model: 'claude-sonnet-4-5', inputTokens: 1_000, outputTokens: 200, occurredAt: T0, ...extra });

describe('budget arithmetic', () => {
  it('reads limits as dollars or tokens, and periods in UTC', () => {
    expect(parseLimit('$25')).toEqual({ unit: 'usd', value: 25_000_000 });
    expect(parseLimit('0.5usd')).toEqual({ unit: 'usd', value: 500_000 });
    expect(parseLimit('12.345678$')).toEqual({ unit: 'usd', value: 12_345_678 });
    expect(parseLimit('500k')).toEqual({ unit: 'tokens', value: 500_000 });
    expect(parseLimit('2m tokens')).toEqual({ unit: 'tokens', value: 2_000_000 });
    for (const bad of ['-5', '$0', '0', '$1.1234567', 'lots', '', '5 euros']) expect(() => parseLimit(bad), bad).toThrow(UsageError);
    expect(periodStart('day', T0)).toBe(Date.UTC(2026, 10, 4));
    expect(periodStart('week', T0)).toBe(Date.UTC(2026, 10, 2)); // Monday
    expect(periodStart('week', Date.UTC(2026, 10, 8, 23))).toBe(Date.UTC(2026, 10, 2)); // Sunday
    expect(periodStart('month', T0)).toBe(Date.UTC(2026, 10, 1));
    expect(periodStart('total', T0)).toBe(0);
  });
});

describe.each(TASK_ADAPTERS)('Budgets: $name', (adapter) => {
  describe.skipIf(!adapter.available)(adapter.name, () => {
    it('keeps spend per period as usage is recorded, reports each crossing once, and reads history when set', async (ctx) => {
      let clock = T0;
      const w = await adapter.open(ctx, { now: () => clock });
      await team(w);
      const boss = w.as(null);
      // History before the budget exists is counted when it is set (today's part only).
      await recordUsage(w.store, w.token('kasra'), call({ occurredAt: T0 - DAY }));
      await recordUsage(w.store, w.token('kasra'), call());
      const set = await setBudget(w.store, boss, { scope: 'agent:kasra', limit: '$0.03', period: 'day', action: 'warn', at: '50%' }, clock);
      expect(set).toMatchObject({ unit: 'usd', limit: 30_000, spent: 6_000, remaining: 24_000, state: 'ok', periodStart: Date.UTC(2026, 10, 4) });

      const crossings: unknown[] = [];
      const crossed = (c: unknown[]) => void crossings.push(...c);
      await recordUsage(w.store, w.token('kasra'), call(), { crossed, now: () => clock });
      await recordUsage(w.store, w.token('kasra'), call({ model: 'unpriced-model' }), { crossed, now: () => clock });
      await recordUsage(w.store, w.token('codex'), call(), { crossed, now: () => clock }); // not kasra's
      // An unpriced model adds nothing to a dollar budget; codex's usage is not kasra's.
      expect(crossings).toEqual([]);
      expect((await showBudget(w.store, boss, 'agent:kasra', clock)).spent).toBe(12_000);
      // A batch that crosses both thresholds reports each once; more spend reports nothing again.
      await recordMany(w.store, w.token('kasra'), [call(), call(), call()], { crossed, now: () => clock });
      expect(crossings).toEqual([
        expect.objectContaining({ scope: 'agent:kasra', level: 'warning', spent: 18_000, limit: 30_000, unit: 'usd' }),
        expect.objectContaining({ scope: 'agent:kasra', level: 'exhausted', spent: 30_000, action: 'warn' }),
      ]);
      await recordUsage(w.store, w.token('kasra'), call(), { crossed, now: () => clock });
      expect(crossings).toHaveLength(2);
      expect((await showBudget(w.store, boss, 'agent:kasra', clock)).state).toBe('exhausted');
      // A duplicate adds nothing.
      await recordUsage(w.store, w.token('kasra'), call({ sourceKey: 'once' }));
      const before = (await showBudget(w.store, boss, 'agent:kasra', clock)).spent;
      await recordUsage(w.store, w.token('kasra'), call({ sourceKey: 'once' }));
      expect((await showBudget(w.store, boss, 'agent:kasra', clock)).spent).toBe(before);

      // The next day is a new period: nothing spent, crossings possible again.
      clock += DAY;
      expect(before).toBe(42_000);
      expect(await showBudget(w.store, boss, 'agent:kasra', clock)).toMatchObject({ spent: 0, state: 'ok', warnedAt: null });

      // Token budgets on a squad count its members' usage of every kind.
      await setBudget(w.store, boss, { scope: 'squad:web', limit: '1k', period: 'total', action: 'warn' }, clock);
      // kasra's nine events (yesterday's too: the period is total), 1,200 tokens each.
      expect((await showBudget(w.store, boss, 'squad:web', clock)).spent).toBe(10_800);
      expect((await listBudgets(w.store, boss, clock)).map((b) => b.scope)).toEqual(['agent:kasra', 'squad:web']);
      await removeBudget(w.store, boss, 'squad:web');
      await fails(showBudget(w.store, boss, 'squad:web'), NotFound);
    });

    it('a spent block budget stops claims in its scope and nowhere else, counted, exit 6', async (ctx) => {
      let clock = T0;
      const w = await adapter.open(ctx, { now: () => clock });
      await team(w);
      const boss = w.as(null);
      const web = (await createTask(w.tasks, w.as('boss'), { title: 'web work', squad: 'web' })).task;
      const loose = (await createTask(w.tasks, w.as('boss'), { title: 'anyone', priority: 'low' })).task;
      const infra = (await createTask(w.tasks, w.as('boss'), { title: 'infra work', squad: 'infra' })).task;
      await setBudget(w.store, boss, { scope: 'squad:web', limit: '$0.005', period: 'day', action: 'block' }, clock);
      await setBudget(w.store, boss, { scope: 'agent:codex', limit: '$1', period: 'day', action: 'block' }, clock);

      // Spent mid-drain: kasra's web usage crosses the squad's budget.
      await recordUsage(w.store, w.token('kasra'), call());
      // The web task is skipped, not refused: kasra gets the other work it may take.
      expect((await claimTask(w.tasks, w.token('kasra'))).task.id).toBe(loose.id);
      await fails(claimTask(w.tasks, w.token('kasra'), { id: web.id }), PermissionDenied, /budget on squad:web .* is spent/);
      await fails(claimTask(w.tasks, w.token('kasra'), { squad: 'web' }), PermissionDenied, /squad:web/);
      // Elsewhere nothing changed: codex claims infra work.
      expect((await claimTask(w.tasks, w.token('codex'))).task.id).toBe(infra.id);
      expect((await taskCounters(w.tasks, boss)).budget_claims_refused).toBe(2);

      // An agent's own budget stops all of its claims.
      const more = (await createTask(w.tasks, w.as('boss'), { title: 'more infra', squad: 'infra' })).task;
      await recordUsage(w.store, w.token('codex'), call({ inputTokens: 400_000 }));
      await fails(claimTask(w.tasks, w.token('codex')), PermissionDenied, /agent:codex/);
      // The next period lifts it.
      clock += DAY;
      expect((await claimTask(w.tasks, w.token('codex'))).task.id).toBe(more.id);
    });

    it('refuses bad budgets clearly and writes nothing; only admins set or remove', async (ctx) => {
      const w = await adapter.open(ctx);
      await team(w);
      const boss = w.as(null);
      const ok = { scope: 'project', limit: '$5', period: 'day', action: 'warn' };
      await fails(setBudget(w.store, boss, { ...ok, scope: 'planet' }), UsageError, /project, squad:<name>/);
      await fails(setBudget(w.store, boss, { ...ok, scope: 'squad:ghosts' }), NotFound);
      await fails(setBudget(w.store, boss, { ...ok, scope: 'agent:nobody' }), NotFound);
      await fails(setBudget(w.store, boss, { ...ok, scope: 'task:tsk_00000000000000000000000000' }), NotFound);
      await fails(setBudget(w.store, boss, { ...ok, limit: '-1' }), UsageError);
      await fails(setBudget(w.store, boss, { ...ok, period: 'year' }), UsageError, /day, week, month, total/);
      await fails(setBudget(w.store, boss, { ...ok, action: 'explode' }), UsageError);
      await fails(setBudget(w.store, boss, { ...ok, at: '150%' }), UsageError);
      await fails(setBudget(w.store, w.token('kasra'), ok), PermissionDenied);
      expect(await listBudgets(w.store, boss)).toEqual([]);
      await setBudget(w.store, boss, ok);
      await fails(removeBudget(w.store, w.token('kasra'), 'project'), PermissionDenied);
      await fails(removeBudget(w.store, boss, 'agent:kasra'), NotFound);
      expect(await listBudgets(w.store, boss)).toHaveLength(1);
    });
  });
});
