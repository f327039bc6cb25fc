import { describe, expect, it, type TestContext } from 'vitest';
import { setBudget } from '../../src/core/economy/budgets.js';
import { saveQuotaReading } from '../../src/core/economy/quota.js';
import { recordUsage } from '../../src/core/economy/service.js';
import { Conflict, PermissionDenied } from '../../src/core/errors.js';
import type { LifecycleState } from '../../src/core/lifecycle/classifier.js';
import { SqlLifecycleRepo } from '../../src/core/lifecycle/sql-lifecycle.js';
import type { AgentPlan } from '../../src/core/store/types.js';
import { agentRoutability, routeTasks } from '../../src/core/tasks/route.js';
import { assignTask, claimTask, createTask, taskCounters, taskEvents } from '../../src/core/tasks/service.js';
import type { Store } from '../../src/core/store/port.js';
import { isolatedEnv, sos } from '../helpers/cli.js';
import { ADAPTERS, tempDir } from '../helpers/isolation.js';
import { seedAgents } from '../helpers/bus.js';
import { TASK_ADAPTERS, type TaskWorld } from '../helpers/tasks.js';

/**
 * `routeTasks` and `agentRoutability` on both Store adapters: capabilities and squads, the
 * exclusions (dead, parked, quota state, a used-up window, a spent budget), the cost order
 * (subscription, then cheaper priced api, then no usage, load spread on ties), the unroutable
 * counter, dry runs, races with claims and with a second router; and `sos tasks route` as a user
 * runs it.
 */

async function agent(w: TaskWorld, name: string, capabilities: string[], plan: AgentPlan | null = null) {
  await w.store.agents.add({ project: w.project, name, kind: 'custom', role: 'worker', capabilities, session: null, ...(plan ? { plan } : {}) });
}

async function squad(w: TaskWorld, name: string, members: string[]) {
  await w.store.squads.create(w.project, name, null);
  for (const m of members) await w.store.squads.join(w.project, name, m);
}

const make = async (w: TaskWorld, title: string, extra: { requires?: string[]; squad?: string; priority?: string } = {}) =>
  (await createTask(w.tasks, w.as(null), { title, ...extra })).task.id;

const assignee = async (w: TaskWorld, id: string) => (await w.store.tasks.get(w.project, id))!.assignee;

async function setState(w: TaskWorld, name: string, state: LifecycleState, at: number) {
  await new SqlLifecycleRepo(w.store.sql).save(
    { project: w.project, agent: name, state, since: at, confidence: 1, evidence: [], probedAt: at, screenHash: null, lastChangeAt: null, parkedUntil: null, parkReason: null, pendingInject: null, sessionToken: null, hookEvent: null, hookAt: null },
    null,
  );
}

/** A Store whose `tasks.list` runs `meanwhile` right after reading, as if a worker acted between the router's read and its write. */
function interleaved(store: Store, meanwhile: () => Promise<void>): Store {
  const tasks = new Proxy(store.tasks, {
    get(target, prop) {
      if (prop === 'list') {
        return async (...args: Parameters<typeof target.list>) => {
          const read = await target.list(...args);
          await meanwhile();
          return read;
        };
      }
      const v = Reflect.get(target, prop, target) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
  return new Proxy(store, {
    get(target, prop) {
      if (prop === 'tasks') return tasks;
      const v = Reflect.get(target, prop, target) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}

describe.each(TASK_ADAPTERS)('Task routing: $name', (adapter) => {
  describe.skipIf(!adapter.available)(adapter.name, () => {
    it('matches capabilities and squads, counts what no one can take once per run, and a dry run changes nothing', async (ctx) => {
      const w = await adapter.open(ctx);
      await agent(w, 'kasra', ['code']);
      await agent(w, 'codex', ['code', 'tests']);
      await agent(w, 'boss', []);
      await squad(w, 'web', ['codex']);
      await squad(w, 'empty', []);
      const tests = await make(w, 'write the tests', { requires: ['tests'] });
      const gpu = await make(w, 'train the model', { requires: ['gpu'] });
      const web = await make(w, 'fix the web login', { requires: ['code'], squad: 'web' });
      const design = await make(w, 'design the web page', { requires: ['design'], squad: 'web' });
      const nobody = await make(w, 'anything at all', { squad: 'empty' });
      const operator = w.as(null);

      const dry = await routeTasks({ tasks: w.tasks }, operator, { dryRun: true });
      expect(dry).toMatchObject({ dryRun: true, considered: 5, assigned: 2, unrouted: 3, taken: 0 });
      expect(Object.fromEntries(dry.tasks.map((t) => [t.task, [t.outcome, t.agent]]))).toEqual({
        [tests]: ['would_assign', 'codex'],
        [gpu]: ['unroutable', null],
        [web]: ['would_assign', 'codex'],
        [design]: ['unroutable', null],
        [nobody]: ['unroutable', null],
      });
      for (const id of [tests, web]) expect(await assignee(w, id)).toBeNull();
      expect((await taskCounters(w.tasks, operator)).unclaimed_routed_tasks).toBeUndefined();
      expect((await taskEvents(w.tasks, operator, tests)).map((e) => e.event)).toEqual(['created']);

      const run = await routeTasks({ tasks: w.tasks }, operator);
      expect(run).toMatchObject({ dryRun: false, assigned: 2, unrouted: 3 });
      const why = Object.fromEntries(run.tasks.map((t) => [t.task, t.reason]));
      expect(why[gpu]).toBe('no agent has the capabilities gpu');
      expect(why[design]).toBe('no member of squad web has the capabilities design');
      expect(why[nobody]).toBe('squad empty has no members');
      expect(await assignee(w, tests)).toBe('codex');
      expect(await assignee(w, web)).toBe('codex'); // kasra has `code` but is not in web
      const events = await taskEvents(w.tasks, operator, tests);
      expect(events.at(-1)).toMatchObject({ event: 'assigned', actor: 'operator', from: 'queued', to: 'queued', detail: { assignee: 'codex' } });
      expect((await w.ctx.bus.events(w.project, '', 100)).events.filter((e) => e.type === 'task.assigned').map((e) => e.data.task)).toEqual(
        expect.arrayContaining([tests, web]),
      );
      // Assigned work is claimable by its assignee only.
      await expect(claimTask(w.tasks, w.as('kasra'), { id: tests })).rejects.toThrow(/assigned to codex/);
      expect((await taskCounters(w.tasks, operator)).unclaimed_routed_tasks).toBe(3);

      // A second run leaves assigned tasks alone and counts the unroutable ones again.
      const again = await routeTasks({ tasks: w.tasks }, operator);
      expect(again).toMatchObject({ considered: 3, assigned: 0, unrouted: 3 });
      expect((await taskCounters(w.tasks, operator)).unclaimed_routed_tasks).toBe(6);

      // Only operators and admins route.
      await expect(routeTasks({ tasks: w.tasks }, w.token('kasra'))).rejects.toBeInstanceOf(PermissionDenied);
      await expect(routeTasks({ tasks: w.tasks }, w.token('boss', 'admin'), { dryRun: true })).resolves.toMatchObject({ considered: 3 });
      await expect(assignTask(w.tasks, w.token('kasra'), { id: gpu, agent: 'kasra' })).rejects.toBeInstanceOf(PermissionDenied);
    });

    it('excludes dead, parked and quota agents, a used-up window and a spent budget, saying why', async (ctx) => {
      const clock = Date.now();
      const w = await adapter.open(ctx, { now: () => clock });
      const operator = w.as(null);
      for (const name of ['a-dead', 'b-parked', 'c-quota', 'd-window', 'e-budget', 'f-project']) await agent(w, name, ['ops'], name === 'd-window' ? 'max' : null);
      await setState(w, 'a-dead', 'dead', clock);
      await setState(w, 'b-parked', 'parked', clock);
      await setState(w, 'c-quota', 'quota', clock);
      await setState(w, 'f-project', 'idle', clock);
      await saveQuotaReading(w.store.sql, { project: w.project, agent: 'd-window', window: 'five_hour', source: 'statusline', usedPercent: 100, windowMinutes: 300, resetsAt: clock + 3_600_000, observedAt: clock - 1_000 });
      await setBudget(w.store, operator, { scope: 'agent:e-budget', limit: '$0.001', period: 'day', action: 'block' }, clock);
      await recordUsage(w.store, w.token('e-budget'), { model: 'claude-sonnet-4-5', inputTokens: 1_000, outputTokens: 100, occurredAt: clock - 1 });
      await setBudget(w.store, operator, { scope: 'agent:f-project', limit: '$0.001', period: 'day', action: 'pause' }, clock);
      await recordUsage(w.store, w.token('f-project'), { model: 'claude-sonnet-4-5', inputTokens: 1_000, outputTokens: 100, occurredAt: clock - 1 });

      const ctxRoute = { tasks: w.tasks };
      expect(await agentRoutability(ctxRoute, w.project, 'ghost', { now: clock })).toEqual({ routable: false, reason: `agent "ghost" does not exist in project "${w.project}"`, rule: 'exists' });
      expect(await agentRoutability(ctxRoute, w.project, 'a-dead', { now: clock })).toEqual({ routable: false, reason: 'agent "a-dead" is dead', rule: 'lifecycle' });
      expect(await agentRoutability(ctxRoute, w.project, 'd-window', { now: clock })).toMatchObject({ routable: false, rule: 'quota', reason: 'agent "d-window": the 5-hour window is used up (statusline)' });
      expect(await agentRoutability(ctxRoute, w.project, 'e-budget', { now: clock })).toEqual({ routable: false, reason: 'the budget on agent:e-budget is spent (action block)', rule: 'budget' });
      expect(await agentRoutability(ctxRoute, w.project, 'f-project', { now: clock })).toEqual({ routable: false, reason: 'the budget on agent:f-project is spent (action pause)', rule: 'budget' });

      const id = await make(w, 'restart the web server', { requires: ['ops'] });
      const run = await routeTasks(ctxRoute, operator);
      expect(run).toMatchObject({ assigned: 0, unrouted: 1 });
      const t = run.tasks[0]!;
      expect(t.outcome).toBe('unroutable');
      expect(t.excluded.map((e) => e.agent)).toEqual(['a-dead', 'b-parked', 'c-quota', 'd-window', 'e-budget', 'f-project']);
      expect(t.reason).toMatch(/^every capable agent is excluded: a-dead: agent "a-dead" is dead; b-parked: agent "b-parked" is parked; c-quota: agent "c-quota" is quota; d-window: .*used up.*; e-budget: the budget on agent:e-budget is spent \(action block\); f-project: .*pause\)$/);
      expect(await assignee(w, id)).toBeNull();
      expect((await taskCounters(w.tasks, operator)).unclaimed_routed_tasks).toBe(1);

      // A healthy capable agent takes it; a spent squad budget stops its squad's work.
      await agent(w, 'g-ok', ['ops']);
      await squad(w, 'infra', ['g-ok']);
      const infra = await make(w, 'rotate the keys', { requires: ['ops'], squad: 'infra' });
      await setBudget(w.store, operator, { scope: 'squad:infra', limit: '100', period: 'day', action: 'block' }, clock);
      await w.store.sql.run('UPDATE budget_spend SET spent = 1000 WHERE project = $1 AND scope = $2', [w.project, 'squad:infra']);
      const next = await routeTasks(ctxRoute, operator);
      expect(Object.fromEntries(next.tasks.map((r) => [r.task, r.agent ?? r.reason]))).toEqual({ [id]: 'g-ok', [infra]: 'the budget on squad:infra is spent (action block)' });
      expect(await agentRoutability(ctxRoute, w.project, 'g-ok', { now: clock, squad: 'infra' })).toMatchObject({ routable: false, rule: 'budget' });
      expect(await agentRoutability(ctxRoute, w.project, 'g-ok', { now: clock })).toEqual({ routable: true, reason: 'routable', rule: null });
    });

    it('prefers a subscription, then the cheaper priced api agent, then agents with no usage; spreads ties by load', async (ctx) => {
      const clock = Date.now();
      const w = await adapter.open(ctx, { now: () => clock });
      const operator = w.as(null);
      await agent(w, 'sub', ['chat'], 'max');
      await agent(w, 'cheap', ['chat', 'code'], 'api');
      await agent(w, 'dear', ['chat', 'code', 'ml'], 'api');
      await agent(w, 'fresh-a', ['code', 'ml', 'docs'], 'api');
      await agent(w, 'fresh-b', ['docs']);
      await recordUsage(w.store, w.token('cheap'), { model: 'claude-haiku-4-5', inputTokens: 100_000, outputTokens: 10_000, occurredAt: clock - 3_600_000 });
      await recordUsage(w.store, w.token('dear'), { model: 'claude-opus-4-1', inputTokens: 100_000, outputTokens: 10_000, occurredAt: clock - 3_600_000 });
      // Usage older than 7 days does not price an agent.
      await recordUsage(w.store, w.token('fresh-a'), { model: 'claude-haiku-4-5', inputTokens: 100_000, outputTokens: 10_000, occurredAt: clock - 9 * 86_400_000 });

      const chat = [await make(w, 'chat 1', { requires: ['chat'] }), await make(w, 'chat 2', { requires: ['chat'] })];
      const code = [await make(w, 'code 1', { requires: ['code'] }), await make(w, 'code 2', { requires: ['code'] })];
      const ml = await make(w, 'ml 1', { requires: ['ml'] });
      const docs = [];
      for (let i = 0; i < 4; i++) docs.push(await make(w, `docs ${i}`, { requires: ['docs'] }));

      const run = await routeTasks({ tasks: w.tasks }, operator);
      const to = Object.fromEntries(run.tasks.map((t) => [t.task, t.agent]));
      expect(chat.map((id) => to[id])).toEqual(['sub', 'sub']); // marginal cost 0 wins whatever the load
      expect(code.map((id) => to[id])).toEqual(['cheap', 'cheap']); // cheaper per million tokens
      expect(to[ml]).toBe('dear'); // priced before no usage
      expect(docs.map((id) => to[id])).toEqual(['fresh-a', 'fresh-b', 'fresh-a', 'fresh-b']); // equal: fewer open tasks, then name
      const reasons = Object.fromEntries(run.tasks.map((t) => [t.task, t.reason]));
      expect(reasons[chat[0]!]).toBe('subscription (max): marginal cost 0; 0 open tasks');
      expect(reasons[code[0]!]).toMatch(/^\$\d+\.\d\d per million tokens over 7 days; 0 open tasks$/);
      expect(reasons[docs[2]!]).toBe('no priced usage in 7 days; 1 open task');
    });

    it('never assigns a task claimed meanwhile, and two routers at once assign each task once', async (ctx) => {
      const w = await adapter.open(ctx);
      const operator = w.as(null);
      await seedAgents(w, { boss: 'coordinator' });
      for (const name of ['w1', 'w2', 'w3']) await agent(w, name, ['code']);
      const first = await make(w, 'claimed meanwhile', { requires: ['code'], priority: 'high' });
      const racing = interleaved(w.store, async () => {
        if ((await w.store.tasks.get(w.project, first))!.claimant === null) await claimTask(w.tasks, w.as('w3'), { id: first });
      });
      const report = await routeTasks({ tasks: { ...w.tasks, store: racing } }, operator);
      expect(report).toMatchObject({ assigned: 0, taken: 1, unrouted: 0 });
      expect(report.tasks[0]).toMatchObject({ task: first, outcome: 'taken', agent: null, reason: `cannot assign task ${first}: it is claimed by w3` });
      expect(await w.store.tasks.get(w.project, first)).toMatchObject({ assignee: null, claimant: 'w3', status: 'claimed' });
      await expect(assignTask(w.tasks, operator, { id: first, agent: 'w1' })).rejects.toBeInstanceOf(Conflict);

      const ids: string[] = [];
      for (let i = 0; i < 24; i++) ids.push(await make(w, `job ${i}`, { requires: ['code'] }));
      const other = { ...w.tasks, bus: (await w.second()).bus };
      const [a, b] = await Promise.all([routeTasks({ tasks: w.tasks }, operator), routeTasks({ tasks: other }, operator)]);
      const won = [...a.tasks, ...b.tasks].filter((t) => t.outcome === 'assigned').map((t) => t.task);
      expect(won.sort()).toEqual([...ids].sort());
      expect(a.assigned + b.assigned).toBe(24);
      for (const id of ids) {
        const assigned = (await taskEvents(w.tasks, operator, id)).filter((e) => e.event === 'assigned');
        expect(assigned).toHaveLength(1);
        expect(await assignee(w, id)).toBe(assigned[0]!.detail!.assignee);
      }
      // Spread over the three workers, each run counting its own assignments.
      const per = (name: string) => [...a.tasks, ...b.tasks].filter((t) => t.outcome === 'assigned' && t.agent === name).length;
      expect(per('w1') + per('w2') + per('w3')).toBe(24);
      for (const name of ['w1', 'w2', 'w3']) expect(per(name)).toBeGreaterThan(0);
    });
  });
});

async function cliSetup(ctx: TestContext, adapter: (typeof ADAPTERS)[number]) {
  const target = adapter.target(ctx);
  const env = isolatedEnv(tempDir(ctx), { ...target.env, SOS_DB: target.db });
  const run = (args: string[]) => sos(args, env);
  expect((await run(['init'])).code).toBe(0);
  return run;
}

describe.each(ADAPTERS)('sos tasks route on $name', (adapter) => {
  describe.skipIf(!adapter.available)(adapter.name, () => {
    it('routes with --json and a table, refuses agent tokens, and exits 0 with unroutable work', async (ctx) => {
      const run = await cliSetup(ctx, adapter);
      await run(['agents', 'add', 'kasra', '--cap', 'code']);
      await run(['agents', 'add', 'codex', '--cap', 'code', '--plan', 'max']);
      const fix = (await run(['tasks', 'create', 'fix the login', '--requires', 'code'])).stdout.trim();
      const gpu = (await run(['tasks', 'create', 'train', '--requires', 'gpu'])).stdout.trim();

      const dry = await run(['tasks', 'route', '--dry-run', '--json']);
      expect(dry.code, dry.stderr).toBe(0);
      expect(dry.json()).toMatchObject({ dryRun: true, assigned: 1, unrouted: 1, tasks: [{ task: fix, outcome: 'would_assign', agent: 'codex' }, { task: gpu, outcome: 'unroutable', agent: null }] });
      expect((await run(['tasks', 'show', fix, '--json'])).json()).toMatchObject({ assignee: null });

      const human = await run(['tasks', 'route']);
      expect(human.code, human.stderr).toBe(0);
      expect(human.stdout).toMatch(new RegExp(`${fix}\\s+50\\s+codex\\s+subscription \\(max\\)`));
      expect(human.stdout).toMatch(new RegExp(`${gpu}\\s+50\\s+-\\s+no agent has the capabilities gpu`));
      expect(human.stdout).toContain('assigned 1, 1 unroutable (counted in unclaimed_routed_tasks)');
      expect((await run(['tasks', 'show', fix, '--json'])).json()).toMatchObject({ assignee: 'codex' });

      const again = await run(['tasks', 'route', '--json']);
      expect(again.code).toBe(0);
      expect(again.json()).toMatchObject({ dryRun: false, considered: 1, assigned: 0, unrouted: 1 });
      expect((await run(['tasks', 'stats', '--json'])).json()).toMatchObject({ unclaimed_routed_tasks: 2 });

      const token = (await run(['tokens', 'create', '--agent', 'kasra', '-q'])).stdout.trim();
      const refused = await run(['tasks', 'route', '--token', token, '--json']);
      expect(refused.code).toBe(6);
      expect(refused.json()).toMatchObject({ error: { code: 'permission_denied' } });
    });
  });
});
