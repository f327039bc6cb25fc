import { describe, expect, it } from 'vitest';
import { type Proposal, runMotor } from '../../src/core/brain/motor.js';
import { addGoal, closeGoal } from '../../src/core/brain/goals.js';
import { retireMarker } from '../../src/core/brain/stale.js';
import { setBudget } from '../../src/core/economy/budgets.js';
import { recordUsage } from '../../src/core/economy/service.js';
import { newId } from '../../src/core/ids.js';
import { SqlLifecycleRepo } from '../../src/core/lifecycle/sql-lifecycle.js';
import { readInbox } from '../../src/core/bus/service.js';
import { taskCounters } from '../../src/core/tasks/service.js';
import { seedAgents } from '../helpers/bus.js';
import { TASK_ADAPTERS, type TaskWorld } from '../helpers/tasks.js';

/**
 * The motor on both Store adapters: the case study replayed (5,370 open fixture tasks carrying
 * the retired markers, a model proposing their cleanup and cleanup of the cleanup every cycle),
 * invented methods, and each guard in its order.
 */

const MARKERS = ['test quest', 'global quest', 'test qv quest', 'mocked extract quest', 'tc-g53', 'fk test quest'];

async function seedFixtures(w: TaskWorld, n: number): Promise<void> {
  await w.store.sql.transaction(async (tx) => {
    for (let i = 0; i < n; i++) {
      const marker = MARKERS[i % MARKERS.length]!.toUpperCase();
      await tx.run(
        `INSERT INTO tasks (id, project, title, status, priority, attempt, max_attempts, lease_ms, available_at, unmet_deps, created_by, created_at, updated_at)
         VALUES ($1, $2, $3, 'queued', 50, 0, 3, 600000, 0, 0, 'fixture', $4, $4)`,
        [newId('tsk'), w.project, `${marker} #${i}: extract the fixture`, Date.now() - 30 * 86_400_000],
      );
    }
  });
}

const task = (method: string, title: string, extra: Partial<Proposal> = {}): Proposal => ({ method, agent: null, goal_id: null, details: { title }, ...extra });
const tasksIn = async (w: TaskWorld) => Number((await w.store.sql.one<{ n: number | string }>('SELECT COUNT(*) AS n FROM tasks WHERE project = $1', [w.project]))!.n);

describe.each(TASK_ADAPTERS)('The motor: $name', (adapter) => {
  describe.skipIf(!adapter.available)(adapter.name, () => {
    it('replays the case study: 50 cycles of cleanup proposals over 5,370 stale fixture tasks create nothing, each counted stale', async (ctx) => {
      const w = await adapter.open(ctx);
      await seedAgents(w, { boss: 'coordinator', kasra: 'worker' });
      await seedFixtures(w, 5_369);
      // One cleanup task is already open: proposing another is cleanup of the cleanup.
      await w.tasks.store.sql.run(
        `INSERT INTO tasks (id, project, title, status, priority, attempt, max_attempts, lease_ms, available_at, unmet_deps, created_by, created_at, updated_at)
         VALUES ($1, $2, 'Clean up the stale fixture tasks', 'queued', 50, 0, 3, 600000, 0, 0, 'brain', $3, $3)`,
        [newId('tsk'), w.project, Date.now() - 86_400_000 * 2],
      );
      const before = await tasksIn(w);
      expect(before).toBe(5_370);
      const operator = w.as(null);
      const proposals: Proposal[] = [
        task('create_task', 'Clean up the Test Quest fixture tasks'),
        task('create_task', 'Delete all GLOBAL QUEST tasks older than a week'),
        task('fix_code', 'Remove the mocked extract quest fixtures from the queue'),
        task('create_task', 'Purge TC-G53 leftovers'),
        task('create_task', 'Run delete_tasks_by_pattern on "fk test quest"'),
        task('create_task', 'Clean up the cleanup tasks'),
        task('research', 'Prune stale tasks from the backlog'),
      ];
      const outcomes: string[] = [];
      for (let cycle = 0; cycle < 50; cycle++) {
        const v = await runMotor({ tasks: w.tasks }, operator, `cyc_${cycle}`, proposals[cycle % proposals.length]!);
        outcomes.push(v.outcome);
      }
      expect(outcomes).toEqual(Array(50).fill('skipped_stale'));
      expect(await tasksIn(w)).toBe(before);
      const counters = await taskCounters(w.tasks, operator);
      expect(counters.stale_enqueue_attempts).toBe(50);
      expect(counters.motor_skipped_stale).toBe(50);
    });

    it('rejects invented methods every time with no mutation, and checks arguments', async (ctx) => {
      const w = await adapter.open(ctx);
      await seedAgents(w, { boss: 'coordinator', kasra: 'worker' });
      const operator = w.as(null);
      for (const method of ['delete_all_tasks', 'run_shell', 'exec', 'create_tasks']) {
        const v = await runMotor({ tasks: w.tasks }, operator, 'cyc_x', { method, agent: null, goal_id: null, details: { title: 'anything', command: 'rm -rf /' } });
        expect(v).toMatchObject({ outcome: 'rejected_unsupported', check: 'allow_list' });
      }
      expect(await runMotor({ tasks: w.tasks }, operator, 'cyc_y', { method: 'create_task', agent: null, goal_id: null, details: { title: 7 } })).toMatchObject({
        outcome: 'rejected_schema',
        reason: expect.stringMatching(/^create_task: details\.title: /),
      });
      expect(await runMotor({ tasks: w.tasks }, operator, 'cyc_z', { method: 'send_message', agent: null, goal_id: null, details: { text: 'hi' } })).toMatchObject({ outcome: 'rejected_schema', reason: 'send_message: no recipient (agent or details.to)' });
      expect(await tasksIn(w)).toBe(0);
      const counters = await taskCounters(w.tasks, operator);
      expect(counters.blocked_methods).toBe(4);
      expect(counters.motor_rejected_schema).toBe(2);
    });

    it('executes allowed work once per cycle, and refuses duplicates, dead or parked targets, spent budgets, closed goals and gated methods', async (ctx) => {
      let clock = Date.now();
      const w = await adapter.open(ctx, { now: () => clock });
      await seedAgents(w, { boss: 'coordinator', kasra: 'worker', codex: 'worker' });
      const operator = w.as(null);
      const lifecycle = new SqlLifecycleRepo(w.store.sql);
      const motor = { tasks: w.tasks, lifecycle, now: () => clock };

      // Executed (counted each time), and a retried cycle creates nothing twice.
      const made = await runMotor(motor, operator, 'cyc_1', task('fix_code', 'Fix the login redirect', { agent: 'kasra' }));
      expect(made).toMatchObject({ outcome: 'executed', made: { tasks: [expect.stringMatching(/^tsk_/)] } });
      const id = made.made!.tasks![0]!;
      const row = await w.store.sql.one<{ assignee: string }>('SELECT assignee FROM tasks WHERE id = $1', [id]);
      expect(row?.assignee).toBe('kasra');
      expect((await w.store.sql.all<{ capability: string }>('SELECT capability FROM task_requires r JOIN tasks t ON t.seq = r.task_seq WHERE t.id = $1', [id])).map((r) => r.capability)).toEqual(['code']);
      expect(await runMotor(motor, operator, 'cyc_1', task('fix_code', 'Fix the login redirect, again', { agent: 'kasra' }))).toMatchObject({ outcome: 'executed', reason: `already created task ${id}` });
      // The same work proposed in another cycle is a duplicate of the open task.
      expect(await runMotor(motor, operator, 'cyc_2', task('create_task', 'fix the LOGIN redirect!'))).toMatchObject({ outcome: 'skipped_duplicate', reason: `task ${id} is already open with this title` });
      // A dry run judges and changes nothing.
      expect(await runMotor(motor, operator, 'cyc_3', task('research', 'Compare vector indexes'), { dryRun: true })).toMatchObject({ outcome: 'dry_run' });

      // Messages come from the brain into the target's inbox, once per cycle.
      const sent = await runMotor(motor, operator, 'cyc_4', { method: 'send_message', agent: 'codex', goal_id: null, details: { text: 'review tsk please' } });
      expect(sent.outcome).toBe('executed');
      await runMotor(motor, operator, 'cyc_4', { method: 'send_message', agent: 'codex', goal_id: null, details: { text: 'review tsk please' } });
      const inbox = await readInbox(w.ctx, w.token('codex'), {});
      expect(inbox.unread.filter((m) => m.message.from === 'brain').map((m) => m.message.text)).toEqual(['review tsk please']);

      // Targets that cannot work.
      expect(await runMotor(motor, operator, 'cyc_5', task('create_task', 'Write the changelog', { agent: 'ghost' }))).toMatchObject({ outcome: 'skipped_unroutable', reason: 'agent "ghost" does not exist in project "' + w.project + '"' });
      await lifecycle.save(
        { project: w.project, agent: 'codex', state: 'parked', since: clock, confidence: 1, evidence: [], probedAt: clock, screenHash: null, lastChangeAt: null, parkedUntil: null, parkReason: 'test', pendingInject: null, sessionToken: null, hookEvent: null, hookAt: null },
        null,
      );
      expect(await runMotor(motor, operator, 'cyc_6', task('create_task', 'Write the changelog', { agent: 'codex' }))).toMatchObject({ outcome: 'skipped_unroutable', reason: 'agent "codex" is parked' });

      // A closed goal makes its proposals stale.
      const goal = await addGoal(w.store, operator, { text: 'launch v1' });
      await closeGoal(w.store, operator, goal.id, 'dropped');
      expect(await runMotor(motor, operator, 'cyc_7', task('create_task', 'Prepare the launch post', { goal_id: goal.id }))).toMatchObject({ outcome: 'skipped_stale', reason: 'closed_goal: its goal is dropped' });
      // A marker the project retired.
      await retireMarker(w.store, operator, 'billing v0');
      expect(await runMotor(motor, operator, 'cyc_8', task('create_task', 'Finish Billing V0 migration'))).toMatchObject({ outcome: 'skipped_stale', reason: 'retired_marker: it mentions the retired marker "billing v0"' });

      // Gated by governance: not executed.
      expect(await runMotor(motor, operator, 'cyc_9', task('post_content', 'Announce the release'))).toMatchObject({ outcome: 'gated', check: 'governance' });

      // A spent block budget on the project stops every executed mutation.
      await setBudget(w.store, operator, { scope: 'project', limit: '$0.001', period: 'day', action: 'block' }, clock);
      await recordUsage(w.store, w.token('kasra'), { model: 'claude-sonnet-4-5', inputTokens: 1_000, outputTokens: 100, occurredAt: clock });
      clock += 1;
      expect(await runMotor(motor, operator, 'cyc_10', task('research', 'Compare vector indexes'))).toMatchObject({ outcome: 'blocked_budget', reason: 'the budget on project is spent (action block)' });
      const counters = await taskCounters(w.tasks, operator);
      expect(counters).toMatchObject({ motor_executed: 4, motor_skipped_duplicate: 1, motor_dry_run: 1, motor_skipped_unroutable: 2, motor_skipped_stale: 2, motor_gated: 1, motor_blocked_budget: 1 });
      expect(await tasksIn(w)).toBe(1);
    });
  });
});
