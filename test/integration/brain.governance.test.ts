import { describe, expect, it } from 'vitest';
import { addGoal, closeGoal } from '../../src/core/brain/goals.js';
import { approve, approveBatch, deny, enqueueApproval, getApproval, listApprovals, listTiers, setTier, tierFor } from '../../src/core/brain/governance.js';
import { type MotorContext, type Proposal, runMotor } from '../../src/core/brain/motor.js';
import { retireMarker } from '../../src/core/brain/stale.js';
import { setBudget } from '../../src/core/economy/budgets.js';
import { recordUsage } from '../../src/core/economy/service.js';
import { SqlLifecycleRepo } from '../../src/core/lifecycle/sql-lifecycle.js';
import { taskCounters } from '../../src/core/tasks/service.js';
import { seedAgents } from '../helpers/bus.js';
import { TASK_ADAPTERS, type TaskWorld } from '../helpers/tasks.js';

/**
 * Governance tiers as data and the approval queue on both Store adapters: a gated proposal waits,
 * executes once when approved (re-checked at that moment), never when denied; dual approval needs
 * two different approvers; concurrent approvers execute it once.
 */

const task = (method: string, title: string, extra: Partial<Proposal> = {}): Proposal => ({ method, agent: null, goal_id: null, details: { title }, ...extra });
const tasksIn = async (w: TaskWorld) => Number((await w.store.sql.one<{ n: number | string }>('SELECT COUNT(*) AS n FROM tasks WHERE project = $1', [w.project]))!.n);
const approvalsIn = async (w: TaskWorld) => Number((await w.store.sql.one<{ n: number | string }>('SELECT COUNT(*) AS n FROM approvals WHERE project = $1', [w.project]))!.n);

async function world(adapter: (typeof TASK_ADAPTERS)[number], ctx: Parameters<(typeof TASK_ADAPTERS)[number]['open']>[0]) {
  let clock = Date.now();
  const w = await adapter.open(ctx, { now: () => clock });
  await seedAgents(w, { boss: 'coordinator', kasra: 'worker' });
  const motor: MotorContext = { tasks: w.tasks, lifecycle: new SqlLifecycleRepo(w.store.sql), now: () => clock };
  return { w, motor, operator: w.as(null), admin: w.token('boss', 'admin'), tick: (ms = 1) => (clock += ms), now: () => clock };
}

/** Gates one proposal through the motor and returns its approval id. */
async function gate(motor: MotorContext, caller: ReturnType<TaskWorld['as']>, cycle: string, p: Proposal): Promise<string> {
  const v = await runMotor(motor, caller, cycle, p);
  expect(v).toMatchObject({ outcome: 'gated', check: 'governance', made: { approvals: [expect.stringMatching(/^apr_[0-9a-z]{26}$/)] } });
  return v.made!.approvals![0]!;
}

describe.each(TASK_ADAPTERS)('Governance and approvals: $name', (adapter) => {
  describe.skipIf(!adapter.available)(adapter.name, () => {
    it('human_gate waits with nothing created, once per cycle; approve executes once; approving again is refused', async (ctx) => {
      const { w, motor, operator, admin } = await world(adapter, ctx);
      // A dry run says it would wait and enqueues nothing.
      expect(await runMotor(motor, operator, 'cyc_0', task('post_content', 'Announce the release'), { dryRun: true })).toMatchObject({
        outcome: 'gated',
        reason: 'post_content is human_gate: it would wait for approval (dry run: nothing enqueued)',
      });
      expect(await approvalsIn(w)).toBe(0);

      const id = await gate(motor, operator, 'cyc_1', task('post_content', 'Announce the release'));
      const v = await runMotor(motor, operator, 'cyc_1', task('post_content', 'Announce the release'));
      expect(v).toMatchObject({ outcome: 'gated', reason: `post_content is human_gate: waiting for approval ${id} (sos approvals approve ${id})`, made: { approvals: [id] } });
      expect(await approvalsIn(w)).toBe(1);
      expect(await tasksIn(w)).toBe(0);
      const pending = await listApprovals(w.store, operator);
      expect(pending).toEqual([expect.objectContaining({ id, status: 'pending', method: 'post_content', tier: 'human_gate', cycleId: 'cyc_1', needs: 1, votes: [] })]);
      expect(pending[0]!.proposal).toEqual(task('post_content', 'Announce the release'));

      // An agent token cannot approve; the refusal changes nothing.
      await expect(approve(motor, w.token('kasra'), id)).rejects.toMatchObject({ code: 'permission_denied' });
      expect((await getApproval(w.store, operator, id)).status).toBe('pending');

      const r = await approve(motor, operator, id, { note: 'ship it' });
      expect(r.verdict).toMatchObject({ outcome: 'executed', made: { tasks: [expect.stringMatching(/^tsk_/)] } });
      expect(r.approval).toMatchObject({ status: 'executed', outcome: 'executed', made: { tasks: r.verdict!.made!.tasks }, votes: [expect.objectContaining({ approver: 'operator', vote: 'approve', note: 'ship it' })] });
      expect(r.approval.decidedAt).toEqual(expect.any(Number));
      expect(await tasksIn(w)).toBe(1);

      // Approving again, by anyone, is refused; still one task. A retried cycle does not re-enqueue.
      await expect(approve(motor, operator, id)).rejects.toMatchObject({ code: 'usage', message: `approval ${id} is executed already: it was decided and cannot be voted on again` });
      await expect(approve(motor, admin, id)).rejects.toMatchObject({ code: 'usage' });
      await expect(deny(w.store, admin, id)).rejects.toMatchObject({ code: 'usage' });
      // The retried cycle: the task it made is open now, so the duplicate check refuses first.
      expect(await runMotor(motor, operator, 'cyc_1', task('post_content', 'Announce the release'))).toMatchObject({ outcome: 'skipped_duplicate', reason: `task ${r.verdict!.made!.tasks![0]} is already open with this title` });
      // With no open task in the way, a retried cycle gets its decided approval back, never a new one.
      expect(await runMotor(motor, operator, 'cyc_1', { method: 'post_content', agent: null, goal_id: null, details: { title: 'Announce it differently' } })).toMatchObject({
        outcome: 'gated',
        reason: `post_content is human_gate: approval ${id} of this cycle is executed already`,
        made: { approvals: [id] },
      });
      expect(await tasksIn(w)).toBe(1);
      expect(await approvalsIn(w)).toBe(1);
      expect(await listApprovals(w.store, operator)).toEqual([]);
      expect((await listApprovals(w.store, operator, { status: 'executed' })).map((a) => a.id)).toEqual([id]);
      const counters = await taskCounters(w.tasks, operator);
      expect(counters).toMatchObject({ motor_gated: 4, motor_executed: 1, motor_skipped_duplicate: 1 });
      await expect(getApproval(w.store, operator, 'apr_nope')).rejects.toMatchObject({ code: 'usage' });
      await expect(getApproval(w.store, operator, 'apr_00000000000000000000000000')).rejects.toMatchObject({ code: 'not_found' });
    });

    it('deny never executes; one deny denies', async (ctx) => {
      const { w, motor, operator, admin } = await world(adapter, ctx);
      const id = await gate(motor, operator, 'cyc_1', task('send_outreach', 'Email the beta list'));
      await expect(deny(w.store, w.token('kasra'), id)).rejects.toMatchObject({ code: 'permission_denied' });
      const d = await deny(w.store, admin, id, { note: 'not yet' });
      expect(d).toMatchObject({ status: 'denied', reason: 'denied by boss: not yet', outcome: null, votes: [expect.objectContaining({ approver: 'boss', vote: 'deny', note: 'not yet' })] });
      await expect(approve(motor, operator, id)).rejects.toMatchObject({ code: 'usage', message: expect.stringMatching(/is denied already/) });
      await expect(deny(w.store, operator, id)).rejects.toMatchObject({ code: 'usage' });
      expect(await tasksIn(w)).toBe(0);
      expect((await getApproval(w.store, operator, id)).status).toBe('denied');
    });

    it('dual approval refuses the same approver twice and executes on the second distinct approver', async (ctx) => {
      const { w, motor, operator, admin } = await world(adapter, ctx);
      await setTier(w.store, operator, 'fix_code', 'dual_approval');
      const id = await gate(motor, operator, 'cyc_1', task('fix_code', 'Patch the auth bypass', { agent: 'kasra' }));
      const first = await approve(motor, admin, id, { note: 'looks right' });
      expect(first.verdict).toBeNull();
      expect(first.approval).toMatchObject({ status: 'pending', needs: 2, votes: [expect.objectContaining({ approver: 'boss', vote: 'approve' })] });
      // The same approver again (the same agent with another admin token counts as the same approver).
      await expect(approve(motor, w.token('boss', 'admin'), id)).rejects.toMatchObject({ code: 'conflict', message: expect.stringMatching(/^boss has already approved apr_/) });
      expect(await tasksIn(w)).toBe(0);
      const second = await approve(motor, operator, id);
      expect(second.verdict).toMatchObject({ outcome: 'executed' });
      expect(second.approval).toMatchObject({ status: 'executed', votes: [expect.objectContaining({ approver: 'boss' }), expect.objectContaining({ approver: 'operator' })] });
      expect(await tasksIn(w)).toBe(1);
      const made = second.verdict!.made!.tasks![0]!;
      const row = await w.store.sql.one<{ assignee: string; created_by: string }>('SELECT assignee, created_by FROM tasks WHERE id = $1', [made]);
      expect(row).toEqual({ assignee: 'kasra', created_by: 'operator' });
      await expect(approve(motor, w.token('other', 'admin'), id)).rejects.toMatchObject({ code: 'usage' });
      expect(await tasksIn(w)).toBe(1);

      // A deny after one approve denies, even by the one who approved.
      const id2 = await gate(motor, operator, 'cyc_2', task('fix_code', 'Patch the session fixation'));
      await approve(motor, operator, id2);
      expect(await deny(w.store, operator, id2)).toMatchObject({ status: 'denied', votes: [expect.objectContaining({ approver: 'operator', vote: 'deny' })] });
      expect(await tasksIn(w)).toBe(1);
    });

    it('re-checks at approval time: a proposal gone stale ends skipped, a spent budget ends failed (blocked)', async (ctx) => {
      const { w, motor, operator, tick, now } = await world(adapter, ctx);
      const goal = await addGoal(w.store, operator, { text: 'launch v1' });
      const byGoal = await gate(motor, operator, 'cyc_1', task('post_content', 'Post the launch thread', { goal_id: goal.id }));
      const byMarker = await gate(motor, operator, 'cyc_2', task('post_content', 'Blog about the billing v0 migration'));
      const byBudget = await gate(motor, operator, 'cyc_3', task('post_content', 'Post the changelog'));
      await closeGoal(w.store, operator, goal.id, 'dropped');
      await retireMarker(w.store, operator, 'billing v0');

      expect((await approve(motor, operator, byGoal)).approval).toMatchObject({ status: 'skipped', outcome: 'skipped_stale', reason: 'closed_goal: its goal is dropped', made: null });
      expect((await approve(motor, operator, byMarker)).approval).toMatchObject({ status: 'skipped', outcome: 'skipped_stale', reason: 'retired_marker: it mentions the retired marker "billing v0"' });

      await setBudget(w.store, operator, { scope: 'project', limit: '$0.001', period: 'day', action: 'block' }, now());
      await recordUsage(w.store, w.token('kasra'), { model: 'claude-sonnet-4-5', inputTokens: 1_000, outputTokens: 100, occurredAt: now() });
      tick();
      expect((await approve(motor, operator, byBudget)).approval).toMatchObject({ status: 'failed', outcome: 'blocked_budget', reason: 'the budget on project is spent (action block)' });
      expect(await tasksIn(w)).toBe(0);
      // Decided: none of them can be approved again.
      for (const id of [byGoal, byMarker, byBudget]) await expect(approve(motor, operator, id)).rejects.toMatchObject({ code: 'usage' });
      expect(await taskCounters(w.tasks, operator)).toMatchObject({ motor_gated: 3, motor_skipped_stale: 2, motor_blocked_budget: 1 });
    });

    it('concurrent approvals of one human_gate item by two approvers execute it once', async (ctx) => {
      const { w, motor, operator, admin } = await world(adapter, ctx);
      for (let round = 0; round < 5; round++) {
        const id = await gate(motor, operator, `cyc_${round}`, task('post_content', `Post number ${round}`));
        const settled = await Promise.allSettled([approve(motor, operator, id), approve(motor, admin, id)]);
        const won = settled.filter((s) => s.status === 'fulfilled');
        expect(won).toHaveLength(1);
        expect((won[0] as PromiseFulfilledResult<Awaited<ReturnType<typeof approve>>>).value.verdict).toMatchObject({ outcome: 'executed' });
        const lost = settled.find((s) => s.status === 'rejected') as PromiseRejectedResult;
        expect(lost.reason).toMatchObject({ code: 'usage' });
        const a = await getApproval(w.store, operator, id);
        expect(a.status).toBe('executed');
        expect(a.votes).toHaveLength(1);
        expect(await tasksIn(w)).toBe(round + 1);
      }
      // Two distinct approvers at once on dual_approval: both votes count, it executes once.
      await setTier(w.store, operator, 'post_content', 'dual_approval');
      const id = await gate(motor, operator, 'cyc_dual', task('post_content', 'Post the dual one'));
      const both = await Promise.all([approve(motor, operator, id), approve(motor, admin, id)]);
      expect(both.filter((r) => r.verdict !== null)).toHaveLength(1);
      expect((await getApproval(w.store, operator, id)).status).toBe('executed');
      expect(await tasksIn(w)).toBe(6);
      expect((await taskCounters(w.tasks, operator)).motor_executed).toBe(6);
    });

    it('governance set changes a method’s tier: create_task at human_gate is gated; batch_approve items are approved together', async (ctx) => {
      const { w, motor, operator, admin } = await world(adapter, ctx);
      const before = await listTiers(w.store, operator);
      expect(before.map((t) => [t.method, t.tier, t.source])).toEqual([
        ['create_task', 'act_freely', 'default'],
        ['send_message', 'act_freely', 'default'],
        ['research', 'act_freely', 'default'],
        ['fix_code', 'act_freely', 'default'],
        ['health_check', 'act_freely', 'default'],
        ['post_content', 'human_gate', 'default'],
        ['send_outreach', 'human_gate', 'default'],
      ]);
      expect(await runMotor(motor, operator, 'cyc_0', task('create_task', 'Free to create'))).toMatchObject({ outcome: 'executed' });

      expect(await setTier(w.store, admin, 'create_task', 'human_gate')).toMatchObject({ method: 'create_task', tier: 'human_gate', source: 'project', defaultTier: 'act_freely', updatedBy: 'boss' });
      expect(await tierFor(w.store.sql, w.project, 'create_task')).toBe('human_gate');
      const tiers = await listTiers(w.store, w.token('kasra'));
      expect(tiers.find((t) => t.method === 'create_task')).toMatchObject({ tier: 'human_gate', source: 'project', updatedBy: 'boss' });
      const gated = await runMotor(motor, operator, 'cyc_1', task('create_task', 'Now it waits'));
      expect(gated).toMatchObject({ outcome: 'gated', reason: expect.stringMatching(/^create_task is human_gate: waiting for approval apr_/) });
      expect(await tasksIn(w)).toBe(1);

      // Refusals: not an admin, not a method, not a tier.
      await expect(setTier(w.store, w.token('kasra'), 'create_task', 'act_freely')).rejects.toMatchObject({ code: 'permission_denied' });
      await expect(setTier(w.store, operator, 'delete_all_tasks', 'act_freely')).rejects.toMatchObject({ code: 'usage', message: '"delete_all_tasks" is not a motor method' });
      await expect(setTier(w.store, operator, 'create_task', 'whenever')).rejects.toMatchObject({ code: 'usage', message: '"whenever" is not a governance tier' });

      // batch_approve: approveBatch approves every pending batch item and leaves the others.
      await setTier(w.store, operator, 'research', 'batch_approve');
      const b1 = await gate(motor, operator, 'cyc_2', task('research', 'Compare vector indexes'));
      const b2 = await gate(motor, operator, 'cyc_3', task('research', 'Survey queue designs'));
      const results = await approveBatch(motor, admin, { note: 'batch' });
      expect(results.map((r) => [r.id, r.approval?.status, r.verdict?.outcome])).toEqual([
        [b1, 'executed', 'executed'],
        [b2, 'executed', 'executed'],
      ]);
      expect((await listApprovals(w.store, operator)).map((a) => [a.method, a.tier])).toEqual([['create_task', 'human_gate']]);
      expect(await approveBatch(motor, admin)).toEqual([]);
      await expect(approveBatch(motor, w.token('kasra'))).rejects.toMatchObject({ code: 'permission_denied' });
      expect(await tasksIn(w)).toBe(3);

      // Back to act_freely: it executes directly again.
      await setTier(w.store, operator, 'create_task', 'act_freely');
      expect(await runMotor(motor, operator, 'cyc_4', task('create_task', 'Free again'))).toMatchObject({ outcome: 'executed' });
    });

    it('enqueueApproval is idempotent on (cycle, method)', async (ctx) => {
      const { w, operator, now } = await world(adapter, ctx);
      const p = task('post_content', 'Once');
      const a = await enqueueApproval(w.store.sql, w.project, { cycleId: 'cyc_1', method: 'post_content', tier: 'human_gate', proposal: p, at: now() });
      const b = await enqueueApproval(w.store.sql, w.project, { cycleId: 'cyc_1', method: 'post_content', tier: 'human_gate', proposal: task('post_content', 'Twice'), at: now() + 5 });
      expect(b.id).toBe(a.id);
      expect(b.proposal).toEqual(p);
      const c = await enqueueApproval(w.store.sql, w.project, { cycleId: 'cyc_1', method: 'send_outreach', tier: 'human_gate', proposal: task('send_outreach', 'Other'), at: now() });
      expect(c.id).not.toBe(a.id);
      expect((await listApprovals(w.store, operator, { all: true })).length).toBe(2);
      await expect(listApprovals(w.store, operator, { status: 'waiting' })).rejects.toMatchObject({ code: 'usage' });
    });
  });
});
