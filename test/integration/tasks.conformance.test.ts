import { describe, expect, it } from 'vitest';
import { Conflict, NotFound, PermissionDenied, UsageError } from '../../src/core/errors.js';
import {
  acceptHandoff,
  blockTask,
  board,
  cancelTask,
  claimTask,
  commentTask,
  completeTask,
  createTask,
  failTask,
  getTask,
  handoffTask,
  heartbeatTask,
  listTasks,
  redriveTask,
  rejectHandoff,
  releaseTask,
  startTask,
  sweepTasks,
  taskCounters,
  taskEvents,
  unblockTask,
} from '../../src/core/tasks/service.js';
import { seedAgents } from '../helpers/bus.js';
import { fails } from '../helpers/expect.js';
import { TASK_ADAPTERS, type TaskWorld } from '../helpers/tasks.js';

/** One suite, unchanged, on the Store's SQLite and PostgreSQL adapters. */


async function team(w: TaskWorld) {
  await seedAgents(
    w,
    { boss: 'coordinator', kasra: 'worker', codex: 'worker', gemini: 'worker' },
    { web: ['kasra', 'codex'] },
  );
  await w.store.agents.remove(w.project, 'codex');
  await w.store.agents.add({ project: w.project, name: 'codex', kind: 'codex', role: 'worker', capabilities: ['code', 'tests'], session: null });
  await w.store.squads.join(w.project, 'web', 'codex');
}

describe.each(TASK_ADAPTERS)('Task conformance: $name', (adapter) => {
  describe.skipIf(!adapter.available)(adapter.name, () => {
    it('claims atomically in priority then age order, with a lease and a fence', async (ctx) => {
      const w = await adapter.open(ctx);
      await team(w);
      const boss = w.as('boss');
      const low = (await createTask(w.tasks, boss, { title: 'low', priority: 'low' })).task;
      const a = (await createTask(w.tasks, boss, { title: 'first high', priority: 'high' })).task;
      const b = (await createTask(w.tasks, boss, { title: 'second high', priority: 70 })).task;
      const crit = (await createTask(w.tasks, boss, { title: 'critical', priority: 'critical', leaseMs: 60_000 })).task;
      const order: string[] = [];
      for (let i = 0; i < 4; i++) {
        const { task } = await claimTask(w.tasks, w.as('kasra'));
        order.push(task.id);
        expect(task.status).toBe('claimed');
        expect(task.claimant).toBe('kasra');
        expect(task.attempt).toBe(1);
        expect(task.leaseUntil).toBeGreaterThan(Date.now());
      }
      expect(order).toEqual([crit.id, a.id, b.id, low.id]);
      await fails(claimTask(w.tasks, w.as('kasra')), Conflict, /nothing to claim/);
      await fails(claimTask(w.tasks, w.as('gemini'), { id: a.id }), Conflict, /claimed by kasra; it cannot be claimed twice/);
      expect(await taskCounters(w.tasks, boss)).toMatchObject({ duplicate_claims_refused: 1 });
      const events = await taskEvents(w.tasks, boss, crit.id);
      expect(events.map((e) => [e.event, e.from, e.to, e.actor])).toEqual([
        ['created', null, 'queued', 'boss'],
        ['claimed', 'queued', 'claimed', 'kasra'],
      ]);
    });

    it('matches required capabilities, assignee preference and squad membership', async (ctx) => {
      const w = await adapter.open(ctx);
      await team(w);
      const boss = w.as('boss');
      const needsCode = (await createTask(w.tasks, boss, { title: 'code it', requires: ['code', 'tests'], priority: 'critical' })).task;
      const forGemini = (await createTask(w.tasks, boss, { title: 'for gemini', assignee: 'gemini', priority: 'high' })).task;
      const webOnly = (await createTask(w.tasks, boss, { title: 'web', squad: 'web' })).task;
      // gemini: no capabilities, not in web: only its assigned task.
      expect((await claimTask(w.tasks, w.as('gemini'))).task.id).toBe(forGemini.id);
      await fails(claimTask(w.tasks, w.as('gemini')), Conflict);
      await fails(claimTask(w.tasks, w.as('gemini'), { id: needsCode.id }), Conflict, /lacks the capabilities .*code, tests/);
      await fails(claimTask(w.tasks, w.token('gemini'), { id: webOnly.id }), NotFound); // cannot even see it
      await fails(claimTask(w.tasks, w.as('gemini'), { id: webOnly.id }), Conflict, /squad web, which gemini is not in/);
      // kasra is in web but lacks code: gets the web task, never the code task.
      expect((await claimTask(w.tasks, w.as('kasra'))).task.id).toBe(webOnly.id);
      expect((await claimTask(w.tasks, w.as('codex'))).task.id).toBe(needsCode.id);
      // --squad narrows the claim.
      const web2 = (await createTask(w.tasks, boss, { title: 'web 2', squad: 'web' })).task;
      await createTask(w.tasks, boss, { title: 'general', priority: 'critical' });
      expect((await claimTask(w.tasks, w.as('kasra'), { squad: 'web' })).task.id).toBe(web2.id);
    });

    it('keeps a DAG: dependents become ready when their dependencies are done', async (ctx) => {
      const w = await adapter.open(ctx);
      await team(w);
      const boss = w.as('boss');
      const base = (await createTask(w.tasks, boss, { title: 'base' })).task;
      const other = (await createTask(w.tasks, boss, { title: 'other' })).task;
      const top = (await createTask(w.tasks, boss, { title: 'top', dependsOn: [base.id, other.id], priority: 'critical' })).task;
      expect(top.unmetDeps).toBe(2);
      expect(top.dependsOn).toEqual([base.id, other.id]);
      await fails(createTask(w.tasks, boss, { title: 'x', dependsOn: ['tsk_00000000000000000000000000'] }), NotFound, /dependency tsk_0+ does not exist/);
      await fails(createTask(w.tasks, boss, { title: 'x', dependsOn: ['nope'] }), UsageError);
      expect((await listTasks(w.tasks, boss, { ready: true })).map((t) => t.id)).toEqual([base.id, other.id]);
      expect((await board(w.tasks, boss)).map((t) => [t.id, t.unblocks])).toEqual([
        [base.id, 1],
        [other.id, 1],
      ]);
      const first = await claimTask(w.tasks, w.as('kasra'));
      expect(first.task.id).toBe(base.id); // top is critical but not ready
      expect((await completeTask(w.tasks, w.as('kasra'), { id: base.id, fence: 1, result: 'ok' })).unblocked).toEqual([]);
      await claimTask(w.tasks, w.as('kasra'));
      const done = await completeTask(w.tasks, w.as('kasra'), { id: other.id, fence: 1 });
      expect(done.unblocked).toEqual([top.id]);
      expect((await claimTask(w.tasks, w.as('codex'))).task.id).toBe(top.id);
      const events = await w.ctx.bus.events(w.project, '', 100);
      expect(events.events.map((e) => e.type)).toContain('task.ready');
    });

    it('fences every write: a stale worker cannot complete what someone else now owns', async (ctx) => {
      let clock = Date.now();
      const w = await adapter.open(ctx, { now: () => clock });
      await team(w);
      const t = (await createTask(w.tasks, w.as('boss'), { title: 'flaky', leaseMs: 5_000 })).task;
      const first = (await claimTask(w.tasks, w.as('kasra'))).task;
      expect(first.attempt).toBe(1);
      await startTask(w.tasks, w.as('kasra'), { id: t.id, fence: 1 });
      await fails(completeTask(w.tasks, w.as('codex'), { id: t.id }), Conflict, /held by kasra/);
      clock += 6_000;
      expect(await sweepTasks(w.tasks, w.as('boss'))).toMatchObject({ requeued: [{ id: t.id, attempt: 1 }], dead: [] });
      const second = (await claimTask(w.tasks, w.as('codex'))).task;
      expect(second.attempt).toBe(2);
      await fails(completeTask(w.tasks, w.as('kasra'), { id: t.id, fence: 1 }), Conflict, /held by codex/);
      await fails(heartbeatTask(w.tasks, w.as('kasra'), { id: t.id, fence: 1 }), Conflict);
      // The same agent with a stale fence (it claimed again since) is refused too.
      await fails(completeTask(w.tasks, w.as('codex'), { id: t.id, fence: 1 }), Conflict, /your fence is stale/);
      expect((await completeTask(w.tasks, w.as('codex'), { id: t.id, fence: 2, result: 'fixed', artifacts: ['https://ci/run/1'], usageTokens: 1200 })).task).toMatchObject({
        status: 'done',
        result: 'fixed',
        artifacts: ['https://ci/run/1'],
        usageTokens: 1200,
      });
      expect(await taskCounters(w.tasks, w.as('boss'))).toMatchObject({ stale_fence_refused: 4, leases_expired: 1 });
    });

    it('renews leases (the claimant, or an admin on its behalf) so the sweep leaves live work alone', async (ctx) => {
      let clock = Date.now();
      const w = await adapter.open(ctx, { now: () => clock });
      await team(w);
      const t = (await createTask(w.tasks, w.as('boss'), { title: 'long', leaseMs: 10_000 })).task;
      await claimTask(w.tasks, w.as('kasra'));
      clock += 8_000;
      expect((await heartbeatTask(w.tasks, w.as('kasra'), { id: t.id, fence: 1 })).task.leaseUntil).toBe(clock + 10_000);
      clock += 8_000;
      expect(await sweepTasks(w.tasks, w.as('boss'))).toEqual({ requeued: [], dead: [] });
      // A supervisor renews for the claimant.
      const renewed = await heartbeatTask(w.tasks, w.as(null), { id: t.id, fence: 1 });
      expect(renewed.task.claimant).toBe('kasra');
      await fails(heartbeatTask(w.tasks, w.token('codex'), { id: t.id }), Conflict, /held by kasra/);
      // A lease chosen at claim time is the one a heartbeat renews by.
      const custom = (await createTask(w.tasks, w.as('boss'), { title: 'custom lease' })).task;
      const claimed = await claimTask(w.tasks, w.as('codex'), { id: custom.id, leaseMs: 300_000 });
      expect(claimed.task?.leaseUntil).toBe(clock + 300_000);
      clock += 1_000;
      expect((await heartbeatTask(w.tasks, w.as('codex'), { id: custom.id, fence: 1 })).task.leaseUntil).toBe(clock + 300_000);
    });

    it('retries with backoff, dead-letters after max attempts, blocks dependents, and redrives', async (ctx) => {
      let clock = Date.now();
      const w = await adapter.open(ctx, { now: () => clock, backoff: (n) => n * 1_000 });
      await team(w);
      const boss = w.as('boss');
      const t = (await createTask(w.tasks, boss, { title: 'brittle', maxAttempts: 2 })).task;
      const child = (await createTask(w.tasks, boss, { title: 'child', dependsOn: [t.id] })).task;
      await claimTask(w.tasks, w.as('kasra'));
      const retry = await failTask(w.tasks, w.as('kasra'), { id: t.id, fence: 1, error: 'flaky network', retryable: true });
      expect(retry.task).toMatchObject({ status: 'queued', error: 'flaky network', claimant: null, availableAt: clock + 1_000 });
      await fails(claimTask(w.tasks, w.as('kasra'), { id: t.id }), Conflict, /backing off/);
      clock += 1_001;
      expect((await claimTask(w.tasks, w.as('kasra'))).task.attempt).toBe(2);
      const dead = await failTask(w.tasks, w.as('kasra'), { id: t.id, fence: 2, error: 'still broken', retryable: true });
      expect(dead.task.status).toBe('dead');
      expect(dead.blocked).toEqual([child.id]);
      expect(await getTask(w.tasks, boss, child.id)).toMatchObject({ status: 'blocked', blockedReason: `dependency ${t.id} is dead` });
      expect((await listTasks(w.tasks, boss, { statuses: ['dead'] })).map((x) => x.id)).toEqual([t.id]);
      const redriven = await redriveTask(w.tasks, boss, { id: t.id, attempts: 1 });
      expect(redriven.task).toMatchObject({ status: 'queued', maxAttempts: 3, error: null });
      const third = (await claimTask(w.tasks, w.as('kasra'))).task;
      expect(third.attempt).toBe(3); // fences never go back
      await failTask(w.tasks, w.as('kasra'), { id: t.id, fence: 3, error: 'give up' });
      expect((await getTask(w.tasks, boss, t.id)).status).toBe('failed');
      await fails(redriveTask(w.tasks, w.token('kasra'), { id: t.id }), PermissionDenied);
      await unblockTask(w.tasks, boss, { id: child.id });
      expect((await getTask(w.tasks, boss, child.id)).status).toBe('queued');
    });

    it('dead-letters on lease expiry once attempts are spent', async (ctx) => {
      let clock = Date.now();
      const w = await adapter.open(ctx, { now: () => clock });
      await team(w);
      const t = (await createTask(w.tasks, w.as('boss'), { title: 'abandoned', maxAttempts: 1, leaseMs: 1_000 })).task;
      await claimTask(w.tasks, w.as('kasra'));
      clock += 1_500;
      expect(await sweepTasks(w.tasks, w.as('boss'))).toMatchObject({ requeued: [], dead: [{ id: t.id, attempt: 1 }] });
      expect((await getTask(w.tasks, w.as('boss'), t.id)).status).toBe('dead');
      await fails(sweepTasks(w.tasks, w.token('kasra')), PermissionDenied);
    });

    it('refuses transitions outside the table, naming the current status', async (ctx) => {
      const w = await adapter.open(ctx);
      await team(w);
      const boss = w.as('boss');
      const t = (await createTask(w.tasks, boss, { title: 'x' })).task;
      await fails(completeTask(w.tasks, w.as('kasra'), { id: t.id }), Conflict, /it is queued/);
      await fails(unblockTask(w.tasks, boss, { id: t.id }), Conflict, /it is queued/);
      await fails(redriveTask(w.tasks, boss, { id: t.id }), Conflict, /it is queued/);
      await blockTask(w.tasks, boss, { id: t.id, reason: 'waiting on legal' });
      await fails(claimTask(w.tasks, w.as('kasra'), { id: t.id }), Conflict, /blocked/);
      await cancelTask(w.tasks, boss, { id: t.id });
      await fails(unblockTask(w.tasks, boss, { id: t.id }), Conflict, /it is canceled/);
      await fails(cancelTask(w.tasks, boss, { id: t.id }), Conflict, /it is canceled/);
      const backlog = (await createTask(w.tasks, boss, { title: 'later', status: 'backlog' })).task;
      await fails(claimTask(w.tasks, w.as('kasra'), { id: backlog.id }), Conflict, /backlog/);
    });

    it('cancels with --cascade, or blocks dependents without it', async (ctx) => {
      const w = await adapter.open(ctx);
      await team(w);
      const boss = w.as('boss');
      const root = (await createTask(w.tasks, boss, { title: 'root' })).task;
      const mid = (await createTask(w.tasks, boss, { title: 'mid', dependsOn: [root.id] })).task;
      const leaf = (await createTask(w.tasks, boss, { title: 'leaf', dependsOn: [mid.id] })).task;
      const cascade = await cancelTask(w.tasks, boss, { id: root.id, cascade: true });
      expect(cascade.canceled).toEqual([root.id, mid.id, leaf.id]);
      const r2 = (await createTask(w.tasks, boss, { title: 'root 2' })).task;
      const d2 = (await createTask(w.tasks, boss, { title: 'dep 2', dependsOn: [r2.id] })).task;
      expect((await cancelTask(w.tasks, boss, { id: r2.id })).blocked).toEqual([d2.id]);
      // A new task depending on a canceled one is born blocked.
      expect((await createTask(w.tasks, boss, { title: 'late', dependsOn: [r2.id] })).task).toMatchObject({ status: 'blocked' });
    });

    it('repeats nothing under an idempotency key, even when racing', async (ctx) => {
      const w = await adapter.open(ctx);
      await team(w);
      const boss = w.as('boss');
      const a = await createTask(w.tasks, boss, { title: 'deploy', idempotencyKey: 'deploy-42' });
      const b = await createTask(w.tasks, boss, { title: 'deploy', idempotencyKey: 'deploy-42' });
      expect(b).toMatchObject({ replayed: true, task: { id: a.task.id } });
      const racing = await Promise.all(Array.from({ length: 6 }, () => createTask(w.tasks, boss, { title: 'race', idempotencyKey: 'race' })));
      expect(new Set(racing.map((r) => r.task.id)).size).toBe(1);
      expect((await listTasks(w.tasks, boss)).map((t) => t.title).sort()).toEqual(['deploy', 'race']);
      const c1 = await claimTask(w.tasks, w.as('kasra'), { idempotencyKey: 'claim-1' });
      const c2 = await claimTask(w.tasks, w.as('kasra'), { idempotencyKey: 'claim-1' });
      expect(c2).toMatchObject({ replayed: true, task: { id: c1.task.id } });
      const done1 = await completeTask(w.tasks, w.as('kasra'), { id: c1.task.id, fence: 1, idempotencyKey: 'done-1' });
      const done2 = await completeTask(w.tasks, w.as('kasra'), { id: c1.task.id, fence: 1, idempotencyKey: 'done-1' });
      expect(done2.replayed).toBe(true);
      expect(done2.task.status).toBe(done1.task.status);
      await fails(startTask(w.tasks, w.as('kasra'), { id: c1.task.id, idempotencyKey: 'done-1' }), Conflict, /already used/);
    });

    it('hands off with a context package: accept makes the receiver the claimant, reject returns it', async (ctx) => {
      const w = await adapter.open(ctx);
      await team(w);
      const t = (await createTask(w.tasks, w.as('boss'), { title: 'migrate db' })).task;
      await claimTask(w.tasks, w.as('kasra'));
      const memory = 'eng_01hx0000000000000000000000';
      const handed = await handoffTask(w.tasks, w.as('kasra'), { id: t.id, fence: 1, to: 'codex', summary: 'schema done, data next', memories: [memory] });
      expect(handed.task).toMatchObject({ status: 'review', claimant: 'kasra', handoff: { from: 'kasra', to: 'codex', summary: 'schema done, data next', memories: [memory] } });
      const inbox = await w.ctx.bus.takeUnread(w.project, 'codex', [{ kind: 'agent', name: 'codex' }], 10, Date.now());
      expect(inbox.map((i) => [i.message.type, i.message.from])).toEqual([['task.handoff', 'kasra']]);
      await fails(acceptHandoff(w.tasks, w.as('gemini'), { id: t.id }), Conflict, /addressed to codex/);
      const rejected = await rejectHandoff(w.tasks, w.as('codex'), { id: t.id, reason: 'no access' });
      expect(rejected.task).toMatchObject({ status: 'claimed', claimant: 'kasra', attempt: 1, handoff: null });
      await handoffTask(w.tasks, w.as('kasra'), { id: t.id, fence: 1, to: 'codex', summary: 'try again' });
      const accepted = await acceptHandoff(w.tasks, w.as('codex'), { id: t.id });
      expect(accepted.task).toMatchObject({ status: 'claimed', claimant: 'codex', attempt: 2 });
      await fails(completeTask(w.tasks, w.as('kasra'), { id: t.id, fence: 1 }), Conflict);
      await completeTask(w.tasks, w.as('codex'), { id: t.id, fence: 2 });
      const history = (await taskEvents(w.tasks, w.as('boss'), t.id)).map((e) => e.event);
      expect(history).toEqual(['created', 'claimed', 'handoff', 'handoff_rejected', 'handoff', 'handoff_accepted', 'complete']);
      const acceptedEvent = (await taskEvents(w.tasks, w.as('boss'), t.id)).find((e) => e.event === 'handoff_accepted');
      expect(acceptedEvent?.detail).toMatchObject({ package: { summary: 'try again', from: 'kasra' } });
    });

    it('releases, comments, and records every transition with who, when, from, to', async (ctx) => {
      const w = await adapter.open(ctx);
      await team(w);
      const t = (await createTask(w.tasks, w.as('boss'), { title: 'x' })).task;
      await claimTask(w.tasks, w.as('kasra'));
      await commentTask(w.tasks, w.as('kasra'), { id: t.id, text: 'looking' });
      expect((await releaseTask(w.tasks, w.as('kasra'), { id: t.id, fence: 1 })).task).toMatchObject({ status: 'queued', claimant: null });
      const events = await taskEvents(w.tasks, w.as('boss'), t.id);
      expect(events.map((e) => [e.actor, e.event, e.from, e.to])).toEqual([
        ['boss', 'created', null, 'queued'],
        ['kasra', 'claimed', 'queued', 'claimed'],
        ['kasra', 'commented', 'claimed', 'claimed'],
        ['kasra', 'release', 'claimed', 'queued'],
      ]);
      expect(events.every((e) => e.at > 0)).toBe(true);
      const types = (await w.ctx.bus.events(w.project, '', 100)).events.map((e) => e.type);
      expect(types).toEqual(['task.created', 'task.claimed', 'task.commented', 'task.released']);
    });

    it('keeps projects and squads apart', async (ctx) => {
      const w = await adapter.open(ctx);
      await team(w);
      const secret = (await createTask(w.tasks, w.as('boss'), { title: 'web only', squad: 'web' })).task;
      const other = await w.otherProject();
      await w.store.agents.add({ project: other, name: 'kasra', kind: 'custom', role: 'worker', capabilities: [], session: null });
      const elsewhere = { project: other, agent: 'kasra', role: 'agent' as const, via: 'token' as const };
      await fails(getTask(w.tasks, elsewhere, secret.id), NotFound);
      await fails(claimTask(w.tasks, elsewhere), Conflict);
      expect(await listTasks(w.tasks, elsewhere)).toEqual([]);
      expect((await listTasks(w.tasks, w.token('gemini'))).map((t) => t.id)).toEqual([]);
      expect((await listTasks(w.tasks, w.token('kasra'))).map((t) => t.id)).toEqual([secret.id]);
      await fails(createTask(w.tasks, w.token('gemini'), { title: 'sneak', squad: 'web' }), PermissionDenied);
      await fails(createTask(w.tasks, w.token('kasra', 'observer'), { title: 'x' }), PermissionDenied);
    });

    it('validates input before writing anything', async (ctx) => {
      const w = await adapter.open(ctx);
      await team(w);
      const boss = w.as('boss');
      await fails(createTask(w.tasks, boss, { title: '  ' }), UsageError, /empty/);
      await fails(createTask(w.tasks, boss, { title: 'x', priority: 'urgent' }), UsageError, /priority/);
      await fails(createTask(w.tasks, boss, { title: 'x', priority: 101 }), UsageError);
      await fails(createTask(w.tasks, boss, { title: 'x', budget: 'lots' }), UsageError, /budget/);
      await fails(createTask(w.tasks, boss, { title: 'x', squad: 'ghost' }), NotFound);
      await fails(createTask(w.tasks, boss, { title: 'x', assignee: 'ghost' }), NotFound);
      await fails(createTask(w.tasks, boss, { title: 'x', maxAttempts: 0 }), UsageError);
      await fails(createTask(w.tasks, boss, { title: 'x', description: 'd'.repeat(70_000) }), UsageError, /70000 bytes/);
      await fails(getTask(w.tasks, boss, 'tsk_00000000000000000000000000'), NotFound);
      await fails(getTask(w.tasks, boss, 'bad'), UsageError);
      await fails(claimTask(w.tasks, w.as(null)), UsageError, /needs an agent/);
      expect(await listTasks(w.tasks, boss)).toEqual([]);
      const budgeted = (await createTask(w.tasks, boss, { title: 'x', budget: '$2.50' })).task;
      expect(budgeted).toMatchObject({ budgetMicros: 2_500_000, budgetTokens: null });
    });

    it('claim --wait of a named task waits out its retry backoff; one outlasting the wait is refused at once', async (ctx) => {
      const w = await adapter.open(ctx, { backoff: () => 600 });
      await team(w);
      const t = (await createTask(w.tasks, w.as('boss'), { title: 'flaky' })).task;
      await claimTask(w.tasks, w.as('kasra'), { id: t.id });
      await failTask(w.tasks, w.as('kasra'), { id: t.id, fence: 1, error: 'flaky network', retryable: true });
      await fails(claimTask(w.tasks, w.as('kasra'), { id: t.id }), Conflict, /backing off/);
      const t0 = Date.now();
      await fails(claimTask(w.tasks, w.as('kasra'), { id: t.id, waitMs: 200 }), Conflict, /backing off/);
      expect(Date.now() - t0).toBeLessThan(150); // the backoff ends after the wait: no point waiting
      const again = await claimTask(w.tasks, w.as('kasra'), { id: t.id, waitMs: 5_000 });
      expect(again.task).toMatchObject({ id: t.id, attempt: 2, claimant: 'kasra' });
      expect(Date.now() - t0).toBeGreaterThanOrEqual(400);
      expect(Date.now() - t0).toBeLessThan(3_000);
      // Held by another: waited for while the wait lasts, then refused and counted once.
      const before = (await w.store.counters.all(w.project)).duplicate_claims_refused ?? 0;
      const t1 = Date.now();
      await fails(claimTask(w.tasks, w.as('codex'), { id: t.id, waitMs: 300 }), Conflict, /cannot be claimed twice/);
      expect(Date.now() - t1).toBeGreaterThanOrEqual(290);
      expect((await w.store.counters.all(w.project)).duplicate_claims_refused).toBe(before + 1);
    });

    it('wakes a waiting claimer when work arrives', async (ctx) => {
      const w = await adapter.open(ctx);
      await team(w);
      const started = Date.now();
      const waiting = claimTask(w.tasks, w.as('kasra'), { waitMs: 10_000 });
      await new Promise((r) => setTimeout(r, 100));
      const t = (await createTask(w.tasks, w.as('boss'), { title: 'arrives' })).task;
      expect((await waiting).task.id).toBe(t.id);
      expect(Date.now() - started).toBeLessThan(3_000);
      const t0 = Date.now();
      await fails(claimTask(w.tasks, w.as('kasra'), { waitMs: 300 }), Conflict);
      expect(Date.now() - t0).toBeGreaterThanOrEqual(290);
    });
  });
});
