import { cpSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Caller } from '../../src/core/auth/caller.js';
import { listBudgets, setBudget, showBudget } from '../../src/core/economy/budgets.js';
import { enforcePauses, enforceQuota, liftAndUnpark } from '../../src/core/economy/enforce.js';
import { importTranscripts } from '../../src/core/economy/import.js';
import { DEFAULT_PLAN_LIMITS, quotaReadings, saveQuotaReading, usageWindows } from '../../src/core/economy/quota.js';
import { recordUsage } from '../../src/core/economy/service.js';
import type { UsageInput } from '../../src/core/economy/types.js';
import { PermissionDenied, UsageError } from '../../src/core/errors.js';
import { lifecycleContext, type LifecycleContext } from '../../src/core/lifecycle/context.js';
import { DEFAULT_LIMITS } from '../../src/core/lifecycle/policy.js';
import { unparkAgent } from '../../src/core/lifecycle/service.js';
import { claimTask, completeTask, createTask, getTask } from '../../src/core/tasks/service.js';
import { seedAgents } from '../helpers/bus.js';
import { fails } from '../helpers/expect.js';
import { tempDir } from '../helpers/isolation.js';
import { TASK_ADAPTERS, type TaskWorld } from '../helpers/tasks.js';

/**
 * What the economy makes the supervisor do, on both Store adapters: a spent pause budget parks
 * its scope's agents (claims released) once per period and refuses their claims; a lift undoes
 * it; a used-up or nearly used-up quota window parks an agent until it resets; Codex's own
 * rate limits are stored from its transcripts and a `--transcripts` glob attributes a file.
 */

const T0 = Date.UTC(2026, 10, 4, 12, 0, 0);
const MIN = 60_000;
const CODEX = join(import.meta.dirname, '..', 'fixtures', 'transcripts', 'codex');

/** 1,000 input and 200 output tokens of claude-sonnet-4-5: $0.006. */
const call = (extra: Partial<UsageInput> = {}): UsageInput => ({ model: 'claude-sonnet-4-5', inputTokens: 1_000, outputTokens: 200, occurredAt: T0, ...extra });

async function world(w: TaskWorld, now: () => number, dir: string): Promise<{ life: LifecycleContext; operator: Caller }> {
  await seedAgents(w, { boss: 'coordinator', kasra: 'worker', codex: 'worker', idle: 'worker' }, { web: ['kasra', 'idle'] });
  // Supervised agents have a session; `idle` has none and is never parked.
  for (const name of ['kasra', 'codex']) await w.store.agents.update(w.project, name, { session: `tmux:${name}` });
  const life = lifecycleContext({
    store: w.store,
    bus: w.ctx.bus,
    memory: null,
    maxTextBytes: 65_536,
    runDir: join(dir, 'run'),
    defaultWorkdir: dir,
    sessionEnv: {},
    limits: DEFAULT_LIMITS,
    stuckAfterMs: 30 * MIN,
    recoveryTimeoutMs: 30_000,
    readyTimeoutMs: 1_000,
    now,
  });
  return { life, operator: w.as(null) };
}

describe.each(TASK_ADAPTERS)('Economy enforcement: $name', (adapter) => {
  describe.skipIf(!adapter.available)(adapter.name, () => {
    it('a spent pause budget refuses claims, parks the scope’s agents once per period with their claims released, and a lift undoes both', async (ctx) => {
      let clock = T0;
      const w = await adapter.open(ctx, { now: () => clock });
      const { life, operator } = await world(w, () => clock, tempDir(ctx));
      const held = (await createTask(w.tasks, w.as('boss'), { title: 'web work', squad: 'web' })).task;
      const other = (await createTask(w.tasks, w.as('boss'), { title: 'more web', squad: 'web' })).task;
      const loose = (await createTask(w.tasks, w.as('boss'), { title: 'anyone' })).task;
      expect((await claimTask(w.tasks, w.token('kasra'), { id: held.id })).task.claimant).toBe('kasra');
      await setBudget(w.store, operator, { scope: 'squad:web', limit: '$0.005', period: 'day', action: 'pause' }, clock);

      // Nothing spent: nothing to do.
      expect(await enforcePauses(life, operator, clock)).toEqual([]);
      await recordUsage(w.store, w.token('kasra'), call(), { now: () => clock });
      // Claims in the scope are refused as for block, naming the action.
      await fails(claimTask(w.tasks, w.token('kasra'), { id: other.id }), PermissionDenied, /squad:web .* is spent, and its action is pause/);

      const end = Date.UTC(2026, 10, 5);
      const done = await enforcePauses(life, operator, clock);
      // kasra (in the squad, with a session) is parked until the period ends; idle has no session; codex is not in the squad.
      expect(done).toEqual([{ agent: 'kasra', action: 'park', why: 'budget squad:web is spent (action pause)', outcome: 'done', until: end }]);
      const record = await life.repo.get(w.project, 'kasra');
      expect(record).toMatchObject({ state: 'parked', parkedUntil: end, parkReason: 'parked by the economy: budget squad:web is spent (action pause)' });
      // Its claim went back to the queue.
      expect(await getTask(w.tasks, operator, held.id)).toMatchObject({ status: 'queued', claimant: null });
      expect((await showBudget(w.store, operator, 'squad:web', clock)).pausedAt).toBe(clock);
      // Once per period: an operator who unparks it is not overruled.
      await unparkAgent(life, operator, 'kasra');
      clock += MIN;
      expect(await enforcePauses(life, operator, clock)).toEqual([]);
      expect((await life.repo.get(w.project, 'kasra'))?.state).toBe('unknown');
      // Codex works on elsewhere.
      expect((await claimTask(w.tasks, w.token('codex'))).task.id).toBe(loose.id);

      // Parked again by hand with the budget's reason, then lifted: unparked, claims resume.
      await w.store.sql.run('UPDATE budget_spend SET paused_at = NULL WHERE project = $1', [w.project]);
      expect(await enforcePauses(life, operator, clock)).toHaveLength(1);
      const lifted = await liftAndUnpark(life, operator, 'squad:web', clock);
      expect(lifted.unparked).toEqual(['kasra']);
      expect(lifted.budget).toMatchObject({ state: 'exhausted', liftedAt: clock });
      expect((await life.repo.get(w.project, 'kasra'))?.state).toBe('unknown');
      expect((await claimTask(w.tasks, w.token('kasra'), { squad: 'web' })).task.squad).toBe('web');
      // A lifted period is not paused again, and a second lift has nothing to lift.
      await recordUsage(w.store, w.token('kasra'), call(), { now: () => clock });
      expect(await enforcePauses(life, operator, clock)).toEqual([]);
      await fails(liftAndUnpark(life, operator, 'squad:web', clock), UsageError, /already lifted/);
      // Only spent budgets lift; warn budgets never.
      await setBudget(w.store, operator, { scope: 'agent:codex', limit: '$5', period: 'day', action: 'pause' }, clock);
      await fails(liftAndUnpark(life, operator, 'agent:codex', clock), UsageError, /not spent \(ok\)/);
      // The next period enforces again from nothing.
      clock = end + MIN;
      expect((await listBudgets(w.store, operator, clock)).map((b) => [b.scope, b.state, b.liftedAt, b.pausedAt])).toEqual([
        ['agent:codex', 'ok', null, null],
        ['squad:web', 'ok', null, null],
      ]);
      // Lifting is for admins: an agent's token cannot.
      await fails(liftAndUnpark(life, w.token('kasra'), 'squad:web', clock), PermissionDenied);
    });

    it('parks an agent whose quota window is used up (reported) or projected to run out (estimate), until it resets, and not against an operator', async (ctx) => {
      const clock = T0;
      const w = await adapter.open(ctx, { now: () => clock });
      const { life, operator } = await world(w, () => clock, tempDir(ctx));
      await w.store.agents.update(w.project, 'kasra', { plan: 'max' });
      await w.store.agents.update(w.project, 'codex', { plan: 'pro' });
      const task = (await createTask(w.tasks, w.as('boss'), { title: 'long job' })).task;
      await claimTask(w.tasks, w.token('kasra'), { id: task.id });

      // kasra: its source reports the 5-hour window at 100%, resetting in 2 hours.
      const resets = clock + 120 * MIN;
      await saveQuotaReading(w.store.sql, { project: w.project, agent: 'kasra', window: 'five_hour', source: 'codex', usedPercent: 100, windowMinutes: 300, resetsAt: resets, observedAt: clock - MIN });
      // An older reading never replaces a newer one.
      await saveQuotaReading(w.store.sql, { project: w.project, agent: 'kasra', window: 'five_hour', source: 'codex', usedPercent: 3, windowMinutes: 300, resetsAt: resets, observedAt: clock - 10 * MIN });
      expect((await quotaReadings(w.store.sql, w.project)).map((r) => r.usedPercent)).toEqual([100]);

      // codex: 9,000 counted tokens in the last 10 minutes of a 10,000-token window: 18,000/h, 1,000 left: 200 s.
      const limits = { ...DEFAULT_PLAN_LIMITS, pro: { fiveHourTokens: 10_000, weeklyTokens: null } };
      await recordUsage(w.store, w.token('codex'), call({ inputTokens: 8_000, outputTokens: 1_000, cacheReadTokens: 50_000, occurredAt: clock - 10 * MIN }), { now: () => clock });
      const windows = await usageWindows(w.store, operator, { now: clock, limits, marginMs: 15 * MIN });
      expect(windows.map((x) => x.agent)).toEqual(['codex', 'kasra']);
      expect(windows[0]).toMatchObject({
        agent: 'codex',
        plan: 'pro',
        burnTokensPerHour: 18_000,
        projectedLimitAt: clock + 200_000,
        routable: false,
        reason: "the 5-hour window's limit is projected within 3 min (estimate)",
      });
      expect(windows[0]!.fiveHour).toMatchObject({ start: clock - 10 * MIN, end: clock - 10 * MIN + 300 * MIN, tokens: 9_000, cacheReadTokens: 50_000, limitTokens: 10_000, usedPercent: 90, basis: 'estimate' });
      expect(windows[1]).toMatchObject({ agent: 'kasra', routable: false, reason: 'the 5-hour window is used up (codex)', projectedLimitAt: clock });
      expect(windows[1]!.fiveHour).toMatchObject({ end: resets, usedPercent: 100, basis: 'reported' });

      const done = await enforceQuota(life, operator, clock, limits, 15 * MIN);
      expect(done.map((d) => [d.agent, d.until])).toEqual([
        ['codex', clock - 10 * MIN + 300 * MIN],
        ['kasra', resets],
      ]);
      expect(await getTask(w.tasks, operator, task.id)).toMatchObject({ status: 'queued', claimant: null });
      expect(await life.repo.get(w.project, 'kasra')).toMatchObject({ state: 'parked', parkedUntil: resets, parkReason: 'parked by the economy: quota: the 5-hour window is used up (codex)' });
      // Already parked: nothing again. Unparked by the operator inside the window: left alone.
      expect(await enforceQuota(life, operator, clock, limits, 15 * MIN)).toEqual([]);
      await unparkAgent(life, operator, 'kasra');
      expect(await enforceQuota(life, operator, clock + MIN, limits, 15 * MIN)).toEqual([]);
      // With a generous limit codex is routable again.
      const roomy = { ...limits, pro: { fiveHourTokens: 1_000_000, weeklyTokens: null } };
      expect((await usageWindows(w.store, operator, { now: clock, limits: roomy, agent: 'codex' }))[0]).toMatchObject({ routable: true, reason: null, projectedLimitAt: null });
    });

    it('an agent holding a claim needs room for a task as long as its recent ones: a projected limit inside that makes it unroutable', async (ctx) => {
      let clock = T0 - 70 * MIN;
      const w = await adapter.open(ctx, { now: () => clock });
      const { operator } = await world(w, () => clock, tempDir(ctx));
      await w.store.agents.update(w.project, 'codex', { plan: 'pro' });
      // Its last task took an hour from claim to completion.
      const first = (await createTask(w.tasks, w.as('boss'), { title: 'an hour of work' })).task;
      const claimed = await claimTask(w.tasks, w.token('codex'), { id: first.id });
      clock = T0 - 10 * MIN;
      await completeTask(w.tasks, w.token('codex'), { id: first.id, fence: claimed.task.attempt, result: 'done' });
      await recordUsage(w.store, w.token('codex'), call({ inputTokens: 8_000, outputTokens: 1_000, task: null, occurredAt: clock }), { now: () => clock });
      clock = T0;
      // 9,000 of 20,000 tokens at 18,000/h: the limit is 36.7 minutes away, past the 15-minute margin.
      const limits = { ...DEFAULT_PLAN_LIMITS, pro: { fiveHourTokens: 20_000, weeklyTokens: null } };
      const idle = (await usageWindows(w.store, operator, { now: clock, limits, marginMs: 15 * MIN }))[0]!;
      expect(idle).toMatchObject({ agent: 'codex', routable: true, marginMs: 15 * MIN, projectedLimitAt: clock + 2_200_000 });
      // Holding a claim, it needs an hour: not routable.
      const second = (await createTask(w.tasks, w.as('boss'), { title: 'another hour' })).task;
      await claimTask(w.tasks, w.token('codex'), { id: second.id });
      const busy = (await usageWindows(w.store, operator, { now: clock, limits, marginMs: 15 * MIN }))[0]!;
      expect(busy).toMatchObject({ routable: false, marginMs: 60 * MIN, reason: "the 5-hour window's limit is projected within 37 min (estimate)" });
    });

    it('stores Codex rate limits from its rollouts for the agent a --transcripts glob names', async (ctx) => {
      const clock = T0;
      const w = await adapter.open(ctx, { now: () => clock });
      const { operator } = await world(w, () => clock, tempDir(ctx));
      const root = join(tempDir(ctx), 'codex');
      mkdirSync(root, { recursive: true });
      cpSync(CODEX, root, { recursive: true });
      await w.store.agents.update(w.project, 'codex', { transcripts: `${root}/sessions/**/rollout-*.jsonl` });
      const report = await importTranscripts(w.store, operator, { source: 'codex', path: root, now: () => clock });
      expect(report.eventsNew).toBeGreaterThan(0);
      const agents = await w.store.sql.all<{ agent: string | null; n: number | string }>('SELECT agent, COUNT(*) AS n FROM usage_events WHERE project = $1 GROUP BY agent', [w.project]);
      expect(agents.map((r) => [r.agent, Number(r.n)])).toEqual([['codex', report.eventsNew]]);
      const readings = await quotaReadings(w.store.sql, w.project);
      expect(readings.map((r) => [r.agent, r.window, r.source, r.usedPercent, r.windowMinutes, r.resetsAt])).toEqual([
        ['codex', 'five_hour', 'codex', 12.5, 300, 1_893_456_000_000],
        ['codex', 'seven_day', 'codex', 40, 10_080, 1_893_888_000_000],
      ]);
      // A project that does not keep unattributed usage records nothing of files no agent claims.
      await w.store.agents.update(w.project, 'codex', { transcripts: null });
      await w.store.sql.run('DELETE FROM import_offsets WHERE project = $1', [w.project]);
      await w.store.sql.run('DELETE FROM usage_events WHERE project = $1', [w.project]);
      const skipped = await importTranscripts(w.store, operator, { source: 'codex', path: root, now: () => clock, keepUnattributed: false });
      expect(skipped.eventsNew).toBe(0);
      expect(skipped.unattributed).toBe(report.eventsNew);
    });
  });
});
