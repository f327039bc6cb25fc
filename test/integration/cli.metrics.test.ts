import { describe, expect, it, type TestContext } from 'vitest';
import type { Caller } from '../../src/core/auth/caller.js';
import { runMotor } from '../../src/core/brain/motor.js';
import { retireMarker } from '../../src/core/brain/stale.js';
import { openBus } from '../../src/core/bus/open.js';
import { recordUsage } from '../../src/core/economy/service.js';
import { SqlLifecycleRepo } from '../../src/core/lifecycle/sql-lifecycle.js';
import { openStore } from '../../src/core/store/open.js';
import { isolatedEnv, sos } from '../helpers/cli.js';
import { ADAPTERS, type AdapterFixture, tempDir } from '../helpers/isolation.js';

/**
 * `sos metrics --json` as a user runs it, on SQLite and PostgreSQL: the paper's six observables
 * (recovery success rate, duplicate claims, blocked methods, stale enqueue attempts, cost per
 * completed task with its numerator and denominator, unclaimed routed tasks) and the motor's
 * per-outcome counters, with state driven through core functions and the CLI.
 */

type Metrics = Record<string, number | null>;

async function setup(ctx: TestContext, adapter: AdapterFixture) {
  const target = adapter.target(ctx);
  const env = isolatedEnv(tempDir(ctx), { ...target.env, SOS_DB: target.db });
  const run = (args: string[]) => sos(args, env);
  expect((await run(['init'])).code).toBe(0);
  const store = await openStore({
    target: adapter.name === 'sqlite' ? { dialect: 'sqlite', path: target.db } : { dialect: 'postgres', url: target.db },
    pgSchema: target.env.SOS_PG_SCHEMA ?? 'sos',
    busyTimeoutMs: 5_000,
  });
  ctx.onTestFinished(() => store.close());
  const metrics = async () => {
    const r = await run(['metrics', '--json']);
    expect(r.code, r.stderr).toBe(0);
    return r.json<Metrics>();
  };
  return { run, store, metrics };
}

const PROJECT = 'default';
const operator: Caller = { project: PROJECT, agent: null, role: 'operator', via: 'local' };

describe.each(ADAPTERS)('sos metrics on $name', (adapter) => {
  describe.skipIf(!adapter.available)(adapter.name, () => {
    it('reports the six observables and the motor outcomes, keeping the existing counters', async (ctx) => {
      const { run, store, metrics } = await setup(ctx, adapter);
      await run(['agents', 'add', 'boss', '--role', 'coordinator']);
      await run(['agents', 'add', 'kasra', '--cap', 'code']);

      const empty = await metrics();
      expect(empty).toMatchObject({
        messages_delivered: 0,
        recoveries_succeeded: 0,
        duplicate_claims_refused: 0,
        budget_claims_refused: 0,
        recovery_success_rate: null,
        duplicate_claims: 0,
        blocked_methods: 0,
        stale_enqueue_attempts: 0,
        cost_per_completed_task_usd: null,
        priced_spend_usd: 0,
        tasks_done: 0,
        unclaimed_routed_tasks: 0,
        motor_executed: 0,
        motor_rejected_unsupported: 0,
        motor_skipped_stale: 0,
        brain_cycles: 0,
        brain_breakers_open: 0,
        approvals_pending: 0,
      });

      // Recoveries: 3 succeeded, 1 failed, 1 still pending (not counted).
      const repo = new SqlLifecycleRepo(store.sql);
      const at = Date.now();
      for (const recovery of ['succeeded', 'succeeded', 'succeeded', 'failed', 'pending'] as const) {
        await repo.addAction({ project: PROJECT, agent: 'kasra', action: 'restart', fromState: 'dead', outcome: 'done', detail: 'test', at, recovery });
      }

      // The motor: an invented method (blocked) and a stale directive (a retired marker).
      const bus = await openBus({ redisUrl: undefined, maxLen: 100_000 }, store);
      ctx.onTestFinished(() => bus.close());
      const motor = { tasks: { store, bus, maxTextBytes: 65_536 } };
      await runMotor(motor, operator, 'cyc_1', { method: 'delete_all_tasks', agent: null, goal_id: null, details: {} });
      await retireMarker(store, operator, 'billing v0');
      await runMotor(motor, operator, 'cyc_2', { method: 'create_task', agent: null, goal_id: null, details: { title: 'Finish the Billing V0 migration' } });

      // Two tasks done by kasra, priced and unpriced usage in the ledger.
      for (const title of ['one', 'two']) {
        const id = (await run(['tasks', 'create', title, '--as', 'boss'])).stdout.trim();
        expect((await run(['tasks', 'claim', '--id', id, '--as', 'kasra'])).code).toBe(0);
        expect((await run(['tasks', 'complete', id, '--as', 'kasra', '--fence', '1'])).code).toBe(0);
      }
      const kasra: Caller = { project: PROJECT, agent: 'kasra', role: 'agent', via: 'token', tokenId: 'tok_test' };
      const priced = await recordUsage(store, kasra, { model: 'claude-sonnet-4-5', inputTokens: 12_345, outputTokens: 678, occurredAt: at - 1_000 });
      const more = await recordUsage(store, kasra, { model: 'claude-haiku-4-5', inputTokens: 50_000, outputTokens: 5_000, occurredAt: at - 2_000 });
      await recordUsage(store, kasra, { model: 'some-unpriced-model', inputTokens: 1_000_000, outputTokens: 1_000, occurredAt: at - 3_000 });
      const micros = priced.costMicros! + more.costMicros!;
      expect(micros).toBeGreaterThan(0);

      // One task no agent can take, routed twice: counted once per run.
      await run(['tasks', 'create', 'train the model', '--requires', 'gpu', '--as', 'boss']);
      expect((await run(['tasks', 'route'])).code).toBe(0);
      expect((await run(['tasks', 'route'])).code).toBe(0);

      const m = await metrics();
      expect(m).toMatchObject({
        recoveries_succeeded: 3,
        recoveries_failed: 1,
        recoveries_pending: 1,
        recovery_success_rate: 0.75,
        duplicate_claims: 0,
        blocked_methods: 1,
        stale_enqueue_attempts: 1,
        priced_spend_usd: micros / 1_000_000,
        tasks_done: 2,
        cost_per_completed_task_usd: Math.round(micros / 2) / 1_000_000,
        unclaimed_routed_tasks: 2,
        motor_rejected_unsupported: 1,
        motor_skipped_stale: 1,
        motor_executed: 0,
      });

      // A second `claimed` event for the same task and fence is a true duplicate claim.
      const row = await store.sql.one<{ seq: number }>("SELECT seq FROM tasks WHERE project = $1 AND title = 'one'", [PROJECT]);
      await store.sql.run("INSERT INTO task_events (task_seq, at, actor, event, from_status, to_status, detail) VALUES ($1, $2, 'codex', 'claimed', 'queued', 'claimed', $3)", [
        row!.seq,
        at,
        JSON.stringify({ fence: 1, leaseUntil: at + 60_000 }),
      ]);
      expect((await metrics()).duplicate_claims).toBe(1);

      // The brain's breakers as saved by the last cycle, and approvals waiting.
      const snapshot = { name: 'openai', state: 'open', consecutiveFailures: 3, failureThreshold: 3, coolDownMs: 3_600_000, openedAt: at, probeAt: at + 3_600_000, probeInFlight: false, lastError: 'HTTP 503', counters: { calls: 5, successes: 2, failures: 3, timeouts: 1, opens: 1, rejections: 4 } };
      await store.sql.run('INSERT INTO brain_breakers (name, snapshot, updated_at) VALUES ($1, $2, $3)', ['openai', JSON.stringify(snapshot), at]);
      await store.sql.run(
        "INSERT INTO approvals (project, id, cycle_id, method, tier, proposal, status, created_at) VALUES ($1, 'apr_1', 'cyc_9', 'post_content', 'human_gate', '{}', 'pending', $2)",
        [PROJECT, at],
      );
      expect(await metrics()).toMatchObject({ brain_breakers_open: 1, brain_breaker_openai_state: 2, brain_breaker_openai_opens: 1, brain_breaker_openai_failures: 3, brain_breaker_openai_timeouts: 1, brain_breaker_openai_rejections: 4, approvals_pending: 1 });

      const human = await run(['metrics']);
      expect(human.stdout).toMatch(/recovery_success_rate\s+0\.75/);
      expect(human.stdout).toMatch(/unclaimed_routed_tasks\s+2/);
    });

    it('prints the Prometheus exposition with --prometheus: the same figures, null ones left out; not with --json', async (ctx) => {
      const { run, metrics } = await setup(ctx, adapter);
      await run(['agents', 'add', 'kasra']);
      const id = (await run(['tasks', 'create', 'one'])).stdout.trim();
      expect((await run(['tasks', 'claim', '--id', id, '--as', 'kasra'])).code).toBe(0);
      expect((await run(['tasks', 'claim', '--id', id, '--as', 'kasra'])).code).toBe(4);
      const json = await metrics();
      const r = await run(['metrics', '--prometheus']);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toContain('# TYPE sos_duplicate_claims_refused_total counter\n');
      expect(r.stdout).toContain(`sos_duplicate_claims_refused_total{project="default"} ${json.duplicate_claims_refused}\n`);
      expect(json.duplicate_claims_refused).toBe(1);
      expect(r.stdout).toContain('sos_tasks{project="default",status="claimed"} 1\n');
      expect(r.stdout).toContain('sos_agents{project="default",state="unprobed"} 1\n');
      expect(json.recovery_success_rate).toBeNull();
      expect(r.stdout).not.toContain('recovery_success_rate');
      const both = await run(['metrics', '--prometheus', '--json']);
      expect(both.code).toBe(2);
      expect(both.json<{ error: { code: string } }>().error.code).toBe('usage');
    });
  });
});
