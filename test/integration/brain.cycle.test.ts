import { describe, expect, it, onTestFinished } from 'vitest';
import { type BrainContext, listCycles, runCycle, savedBreakers } from '../../src/core/brain/cycle.js';
import { addGoal } from '../../src/core/brain/goals.js';
import { AnthropicProvider } from '../../src/core/brain/providers/anthropic.js';
import { OpenAIProvider } from '../../src/core/brain/providers/openai.js';
import type { ConfiguredProvider } from '../../src/core/brain/tiers.js';
import { readInbox } from '../../src/core/bus/service.js';
import { setBudget } from '../../src/core/economy/budgets.js';
import { builtinPrices } from '../../src/core/economy/prices.js';
import { newId } from '../../src/core/ids.js';
import { LocalEmbedder } from '../../src/core/memory/embedder.js';
import { memoryOn } from '../../src/core/memory/open.js';
import type { MemoryContext } from '../../src/core/memory/service.js';
import { seedAgents } from '../helpers/bus.js';
import { TASK_ADAPTERS, type TaskWorld } from '../helpers/tasks.js';

/**
 * One brain cycle at a time on both Store adapters, the providers played by local servers that
 * speak the Anthropic and OpenAI wire formats (test/helpers/fake-chat.mjs): structured-output
 * retries, breakers failing over and recovering, budgets, what a cycle records, and the paper's
 * case study driven through the model rather than handed to the motor.
 */

type Answer = { status?: number; headers?: Record<string, string>; json?: unknown; body?: string; delayMs?: number; hang?: true };
interface FakeRequest {
  path: string;
  body: Record<string, unknown>;
}
interface FakeChat {
  url: string;
  requests: FakeRequest[];
  close(): Promise<void>;
}
const fake = (await import(new URL('../helpers/fake-chat.mjs', import.meta.url).href)) as {
  SAMPLE_DECISION: Record<string, unknown>;
  anthropicMessage(o: { input?: unknown; text?: string; model?: string; usage?: Record<string, unknown> }): unknown;
  openaiCompletion(o: { content: string | null; model?: string; usage?: Record<string, unknown> }): unknown;
  startFakeChat(o: { path: string; answers: Answer[] | ((req: FakeRequest, index: number) => Answer | Promise<Answer>) }): Promise<FakeChat>;
};

async function serve(path: string, answers: Answer[] | ((req: FakeRequest, index: number) => Answer | Promise<Answer>)): Promise<FakeChat> {
  const server = await fake.startFakeChat({ path, answers });
  onTestFinished(() => server.close());
  return server;
}

const decision = (over: Record<string, unknown> = {}) => ({
  action: 'Give the deploy fix to kasra.',
  goal_id: null,
  agent: 'kasra',
  method: 'create_task',
  details: { title: 'Fix the deploy', priority: 'high' },
  expected_progress: 'A queued deploy fix.',
  risk: 'low',
  ...over,
});
const openaiText = (content: string, usage = { prompt_tokens: 800, completion_tokens: 100 }): Answer => ({ json: fake.openaiCompletion({ content, model: 'gpt-4.1-mini', usage }) });
const anthropicTool = (input: unknown, usage = { input_tokens: 700, output_tokens: 90 }): Answer => ({ json: fake.anthropicMessage({ input, usage, model: 'claude-sonnet-4-5-20250929' }) });

function openai(url: string, name = 'openai', timeoutMs = 2_000): ConfiguredProvider {
  return { provider: new OpenAIProvider({ name, baseUrl: `${url}/v1`, timeoutMs }), model: 'gpt-4.1-mini' };
}
function anthropic(url: string, name = 'anthropic'): ConfiguredProvider {
  return { provider: new AnthropicProvider({ name, baseUrl: url, apiKey: 'sk-test', timeoutMs: 2_000 }), model: 'claude-sonnet-4-5' };
}

async function brainOn(ctx: Parameters<(typeof TASK_ADAPTERS)[number]['open']>[0], w: TaskWorld, providers: ConfiguredProvider[], extra: Partial<BrainContext> = {}): Promise<BrainContext & { memory: MemoryContext }> {
  const memory = await memoryOn(w.store);
  ctx.onTestFinished(() => memory.close());
  const mem: MemoryContext = { store: w.store, memory, embedder: new LocalEmbedder(), maxEngramBytes: 32_768, bus: w.ctx.bus };
  return { tasks: w.tasks, providers, breakers: new Map(), prices: builtinPrices(), ...extra, memory: mem };
}

const count = async (w: TaskWorld, sql: string, params: unknown[] = []) => Number((await w.store.sql.one<{ n: number | string }>(sql, [w.project, ...params]))!.n);
const tasksIn = (w: TaskWorld) => count(w, 'SELECT COUNT(*) AS n FROM tasks WHERE project = $1');
const brainEvents = (w: TaskWorld) => count(w, "SELECT COUNT(*) AS n FROM usage_events WHERE project = $1 AND source = 'brain'");

describe.each(TASK_ADAPTERS)('The brain cycle: $name', (adapter) => {
  describe.skipIf(!adapter.available)(adapter.name, () => {
    it('executes a valid decision and records it: the cycle row, the ledger, a cycle engram, a report to each coordinator, a brain.cycle event', async (ctx) => {
      const w = await adapter.open(ctx);
      await seedAgents(w, { boss: 'coordinator', kasra: 'worker' });
      await addGoal(w.store, w.as(null), { text: 'Ship the deploy fix today', priority: 90 });
      const server = await serve('/v1/chat/completions', [openaiText(JSON.stringify(decision()))]);
      const brain = await brainOn(ctx, w, [openai(server.url)]);
      const c = await runCycle(brain, w.as(null), { trigger: { kind: 'wake', text: 'the deploy failed' } });
      expect(c.outcome).toBe('executed');
      expect(c.made?.tasks).toHaveLength(1);
      expect(c.calls).toBe(1);
      expect(c.costMicros).toBeGreaterThan(0); // gpt-4.1-mini is in the price table
      // What the model was told: why it woke, the goal, the agents.
      const prompt = JSON.stringify(server.requests[0]!.body);
      expect(prompt).toContain('the deploy failed');
      expect(prompt).toContain('Ship the deploy fix today');
      expect(prompt).toContain('kasra (worker');
      const task = await w.store.tasks.get(w.project, c.made!.tasks![0]!);
      expect(task?.assignee).toBe('kasra');
      expect(await brainEvents(w)).toBe(1);
      const [stored] = await listCycles(w.tasks, w.as(null));
      expect(stored).toMatchObject({ id: c.id, outcome: 'executed', provider: 'openai', calls: 1, inputTokens: 800, outputTokens: 100, decision: { method: 'create_task' } });
      expect(c.engram).toMatch(/^eng_/);
      const engram = await brain.memory.memory.get(w.project, c.engram!);
      expect(engram).toMatchObject({ kind: 'cycle', author: 'brain' });
      const inbox = (await readInbox(w.ctx, w.as('boss'), {})).unread;
      expect(inbox.map((m) => m.message.text).join('\n')).toContain(`brain cycle ${c.id}`);
      const events = await w.ctx.bus.events(w.project, '', 1_000);
      expect(events.events.filter((e) => e.type === 'brain.cycle').map((e) => e.data['outcome'])).toEqual(['executed']);
      // Replaying the cycle's motor key never creates twice.
      expect(await tasksIn(w)).toBe(1);
    });

    it('retries a malformed answer once with the validation error, then fails the cycle and executes nothing', async (ctx) => {
      const w = await adapter.open(ctx);
      await seedAgents(w, { kasra: 'worker' });
      const cases: [string, string][] = [
        ['malformed JSON', '{"action": "create a task", "method": "create_task", '],
        ['a wrong field type', JSON.stringify(decision({ risk: 7 }))],
        ['prose around the JSON', `Sure! Here is my decision:\n${JSON.stringify(decision())}\nHope that helps.`],
      ];
      for (const [what, content] of cases) {
        const server = await serve('/v1/chat/completions', [openaiText(content)]);
        const brain = await brainOn(ctx, w, [openai(server.url)]);
        const before = await brainEvents(w);
        const c = await runCycle(brain, w.as(null), { trigger: { kind: 'manual' } });
        expect(c.outcome, what).toBe('failed');
        expect(c.check, what).toBe('schema');
        expect(server.requests, what).toHaveLength(2);
        // The retry tells the model what was wrong.
        expect(JSON.stringify(server.requests[1]!.body), what).toContain('Your previous answer was refused');
        expect(await tasksIn(w), what).toBe(0);
        expect(await brainEvents(w), what).toBe(before + 2); // both calls are paid for
      }
      // A valid answer on the retry is executed.
      const server = await serve('/v1/chat/completions', [openaiText('not json'), openaiText(JSON.stringify(decision()))]);
      const c = await runCycle(await brainOn(ctx, w, [openai(server.url)]), w.as(null), { trigger: { kind: 'manual' } });
      expect(c.outcome).toBe('executed');
      expect(c.calls).toBe(2);
      expect(await w.store.counters.all(w.project)).toMatchObject({ brain_decisions_invalid: 7, motor_failed: 3, motor_executed: 1 });
    });

    it('fails over from a failing provider to the next, opens its breaker, probes it after the cool-down and closes it when it recovers', async (ctx) => {
      const w = await adapter.open(ctx);
      await seedAgents(w, { kasra: 'worker' });
      let aHealthy = false;
      let aCalls = 0;
      const a = await serve('/v1/chat/completions', () => {
        aCalls++;
        if (aHealthy) return openaiText(JSON.stringify(decision({ method: 'health_check', agent: null, details: {} })));
        return aCalls % 2 === 0 ? { hang: true } : { status: 500, json: { error: { message: 'upstream exploded', type: 'server_error' } } };
      });
      const b = await serve('/v1/messages', [anthropicTool(decision({ method: 'send_message', details: { text: 'status?' } }))]);
      const brain = await brainOn(ctx, w, [openai(a.url, 'A', 300), anthropic(b.url, 'B')], { breakerOptions: { failureThreshold: 2, coolDownMs: 400 } });
      const cycle = () => runCycle(brain, w.as(null), { trigger: { kind: 'manual' } });

      const first = await cycle(); // A: 500, then B answers
      expect(first).toMatchObject({ outcome: 'executed', provider: 'B' });
      expect(first.attempts.map((x) => `${x.provider}:${x.outcome}`)).toEqual(['A:failed', 'B:answered']);
      const second = await cycle(); // A: times out (second failure: opens), B answers
      expect(second.attempts.map((x) => `${x.provider}:${x.outcome}:${x.status ?? ''}`)).toEqual(['A:failed:timeout', 'B:answered:']);
      expect(brain.breakers.get('A')!.state).toBe('open');
      const third = await cycle(); // A skipped without a call
      expect(third.attempts.map((x) => `${x.provider}:${x.outcome}`)).toEqual(['A:skipped', 'B:answered']);
      expect(aCalls).toBe(2);
      // The breaker is saved for other processes (sos brain status, sos metrics).
      expect((await savedBreakers(w.store.sql)).find((s) => s.name === 'A')).toMatchObject({ state: 'open', counters: { opens: 1, timeouts: 1, failures: 2 } });

      await new Promise((r) => setTimeout(r, 450));
      expect(brain.breakers.get('A')!.state).toBe('half-open');
      aHealthy = true;
      const probe = await cycle(); // the probe call succeeds: closed, A answers
      expect(probe).toMatchObject({ outcome: 'executed', provider: 'A' });
      expect(brain.breakers.get('A')!.state).toBe('closed');
      expect((await cycle()).provider).toBe('A');
      expect(aCalls).toBe(4);

      // A second process sees the same breaker: it takes on the saved state.
      const other = await brainOn(ctx, w, [openai(a.url, 'A', 300), anthropic(b.url, 'B')], { breakerOptions: { failureThreshold: 2, coolDownMs: 400 } });
      aHealthy = false;
      await runCycle(other, w.as(null), { trigger: { kind: 'manual' } });
      await runCycle(other, w.as(null), { trigger: { kind: 'manual' } });
      expect((await savedBreakers(w.store.sql)).find((s) => s.name === 'A')?.state).toBe('open');
      expect((await runCycle(brain, w.as(null), { trigger: { kind: 'manual' } })).attempts[0]).toMatchObject({ provider: 'A', outcome: 'skipped' });
    });

    it('a provider outage everywhere fails the cycle without throwing', async (ctx) => {
      const w = await adapter.open(ctx);
      const a = await serve('/v1/chat/completions', [{ status: 503, json: { error: { message: 'down' } } }]);
      const c = await runCycle(await brainOn(ctx, w, [openai(a.url)]), w.as(null), { trigger: { kind: 'timer' } });
      expect(c).toMatchObject({ outcome: 'failed', check: 'provider', calls: 0 });
      expect(c.reason).toContain('no brain provider answered');
      expect((await listCycles(w.tasks, w.as(null)))[0]?.outcome).toBe('failed');
    });

    it('a block budget on the project stops mutations: the crossing cycle is blocked in the motor, the next is not even sent to the model', async (ctx) => {
      const w = await adapter.open(ctx);
      await seedAgents(w, { kasra: 'worker' });
      // 700 in + 90 out on claude-sonnet-4-5 costs 0.0021 + 0.00135 = $0.00345: over a $0.001 limit.
      await setBudget(w.store, w.as(null), { scope: 'project', limit: '$0.001', period: 'day', action: 'block' });
      const b = await serve('/v1/messages', [anthropicTool(decision())]);
      const brain = await brainOn(ctx, w, [anthropic(b.url)]);
      const first = await runCycle(brain, w.as(null), { trigger: { kind: 'manual' } });
      expect(first).toMatchObject({ outcome: 'blocked_budget', check: 'budget', calls: 1 });
      expect(first.costMicros).toBe(3_450);
      const second = await runCycle(brain, w.as(null), { trigger: { kind: 'manual' } });
      expect(second).toMatchObject({ outcome: 'blocked_budget', calls: 0 });
      expect(b.requests).toHaveLength(1);
      expect(await tasksIn(w)).toBe(0);
      // The brain's own spend is in the ledger, unattributed to any agent.
      const spend = await w.store.sql.one<{ n: number | string; cost: number | string }>("SELECT COUNT(*) AS n, SUM(cost_micros) AS cost FROM usage_events WHERE project = $1 AND source = 'brain' AND agent IS NULL", [w.project]);
      expect([Number(spend!.n), Number(spend!.cost)]).toEqual([1, 3_450]);
    });

    it('a dry run asks the model and judges, and executes, reports and remembers nothing', async (ctx) => {
      const w = await adapter.open(ctx);
      await seedAgents(w, { boss: 'coordinator', kasra: 'worker' });
      const server = await serve('/v1/chat/completions', [openaiText(JSON.stringify(decision()))]);
      const c = await runCycle(await brainOn(ctx, w, [openai(server.url)]), w.as(null), { trigger: { kind: 'manual' }, dryRun: true });
      expect(c).toMatchObject({ outcome: 'dry_run', dryRun: true });
      expect(c.engram).toBeUndefined();
      expect(await tasksIn(w)).toBe(0);
      expect((await readInbox(w.ctx, w.as('boss'), {})).unread).toHaveLength(0);
      expect(await listCycles(w.tasks, w.as(null))).toHaveLength(0);
      expect(await listCycles(w.tasks, w.as(null), { dryRuns: true })).toHaveLength(1);
    });

    it('the case study through the model: 50 cycles proposing cleanup of 5,370 stale fixture tasks create nothing; invented methods are refused', async (ctx) => {
      const w = await adapter.open(ctx);
      await seedAgents(w, { boss: 'coordinator', kasra: 'worker' });
      const markers = ['test quest', 'global quest', 'test qv quest', 'mocked extract quest', 'tc-g53', 'fk test quest'];
      await w.store.sql.transaction(async (tx) => {
        for (let i = 0; i < 5_370; i++) {
          await tx.run(
            `INSERT INTO tasks (id, project, title, status, priority, attempt, max_attempts, lease_ms, available_at, unmet_deps, created_by, created_at, updated_at)
             VALUES ($1, $2, $3, 'queued', 50, 0, 3, 600000, 0, 0, 'fixture', $4, $4)`,
            [newId('tsk'), w.project, i === 0 ? 'Clean up the stale fixture tasks' : `${markers[i % markers.length]!.toUpperCase()} #${i}`, Date.now() - 30 * 86_400_000],
          );
        }
      });
      const proposals = [
        decision({ agent: null, details: { title: 'Clean up the TEST QUEST fixture tasks' } }),
        decision({ agent: null, details: { title: 'Delete all tasks matching global quest' } }),
        decision({ agent: null, method: 'fix_code', details: { title: 'Run delete_tasks_by_pattern over the queue' } }),
        decision({ agent: null, details: { title: 'Clean up the cleanup tasks' } }),
        decision({ agent: null, method: 'research', details: { title: 'Prune stale tasks from the backlog' } }),
      ];
      const server = await serve('/v1/chat/completions', (_req, i) => openaiText(JSON.stringify(proposals[i % proposals.length])));
      const brain = await brainOn(ctx, w, [openai(server.url)]);
      const outcomes: string[] = [];
      for (let i = 0; i < 50; i++) outcomes.push((await runCycle(brain, w.as(null), { trigger: { kind: 'timer' } })).outcome);
      expect(outcomes.filter((o) => o === 'skipped_stale')).toHaveLength(50);
      expect(await tasksIn(w)).toBe(5_370);
      // The prompt stayed bounded with 5,370 open tasks.
      expect(JSON.stringify(server.requests.at(-1)!.body).length).toBeLessThan(20_000);

      const invented = await serve('/v1/chat/completions', (_req, i) => openaiText(JSON.stringify(decision({ method: i % 2 ? 'run_shell' : 'delete_all_tasks', details: { text: 'rm -rf /' } }))));
      const rogue = await brainOn(ctx, w, [openai(invented.url)]);
      for (let i = 0; i < 10; i++) expect((await runCycle(rogue, w.as(null), { trigger: { kind: 'timer' } })).outcome).toBe('rejected_unsupported');
      expect(await tasksIn(w)).toBe(5_370);
      const counters = await w.store.counters.all(w.project);
      expect(counters).toMatchObject({ stale_enqueue_attempts: 50, motor_skipped_stale: 50, blocked_methods: 10, motor_rejected_unsupported: 10, brain_cycles: 60 });
      expect(counters['motor_executed'] ?? 0).toBe(0);
    });

    it('refuses a caller who is not an admin', async (ctx) => {
      const w = await adapter.open(ctx);
      await seedAgents(w, { kasra: 'worker' });
      const server = await serve('/v1/chat/completions', [openaiText(JSON.stringify(decision()))]);
      await expect(runCycle(await brainOn(ctx, w, [openai(server.url)]), w.token('kasra'), { trigger: { kind: 'manual' } })).rejects.toThrow(/admin|operator/);
      expect(server.requests).toHaveLength(0);
    });
  });
});
