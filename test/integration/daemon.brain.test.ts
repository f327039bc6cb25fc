import { describe, expect, it, onTestFinished } from 'vitest';
import { openBusContext } from '../../src/core/bus/context.js';
import { resolveConfig } from '../../src/core/config/resolve.js';
import { openStore, parseStoreTarget } from '../../src/core/store/open.js';
import { claimTask, completeTask, createTask, type TaskContext } from '../../src/core/tasks/service.js';
import { daemonWorld, FAST, until } from '../helpers/daemon.js';
import { ADAPTERS } from '../helpers/isolation.js';

/**
 * The daemon's brain loop as a user runs it: a real `sos daemon` process with SOS_BRAIN_PROVIDER
 * pointing at a local server that speaks OpenAI's chat completions wire format. A burst of task
 * completions gives one debounced cycle that knows why it woke; `sos brain wake` gives one at once;
 * a provider that is down fails cycles and the daemon goes on.
 */

type Answer = { status?: number; json?: unknown };
interface FakeChat {
  url: string;
  requests: { body: unknown }[];
  close(): Promise<void>;
}
const fake = (await import(new URL('../helpers/fake-chat.mjs', import.meta.url).href)) as {
  openaiCompletion(o: { content: string | null; model?: string; usage?: Record<string, unknown> }): unknown;
  startFakeChat(o: { path: string; answers: Answer[] | ((req: unknown, index: number) => Answer) }): Promise<FakeChat>;
};

const healthCheck = JSON.stringify({ action: 'Check the installation.', goal_id: null, agent: null, method: 'health_check', details: {}, expected_progress: 'A health report.', risk: 'low' });

interface CycleJson {
  id: string;
  trigger: string;
  triggerDetail: { kind: string; counts?: Record<string, number>; text?: string };
  outcome: string;
}

describe.each(ADAPTERS)('The daemon brain loop: $name', (adapter) => {
  describe.skipIf(!adapter.available)(adapter.name, () => {
    it('twenty completions in two seconds give one cycle with the trigger in its context; brain wake gives one at once', async (ctx) => {
      const server = await fake.startFakeChat({ path: '/v1/chat/completions', answers: [{ json: fake.openaiCompletion({ content: healthCheck, model: 'gpt-4.1-mini', usage: { prompt_tokens: 500, completion_tokens: 50 } }) }] });
      onTestFinished(() => server.close());
      const w = await daemonWorld(ctx, adapter);
      expect((await w.run(['agents', 'add', 'kasra', '--cap', 'code'])).code).toBe(0);
      const brainEnv = { SOS_BRAIN_PROVIDER: 'openai', SOS_BRAIN_URL: `${server.url}/v1`, SOS_BRAIN_MODEL: 'gpt-4.1-mini', SOS_BRAIN_DEBOUNCE_MS: '3000', SOS_BRAIN_INTERVAL_MS: '3600000' };

      // The test's own handle on the same Store and bus, to complete tasks fast.
      const config = await resolveConfig({ env: w.env, flags: {} });
      const store = await openStore({ target: parseStoreTarget(config.values.db, w.dir), pgSchema: config.values.pgSchema, busyTimeoutMs: config.values.busyTimeoutMs });
      onTestFinished(() => store.close());
      const busCtx = await openBusContext(config.values, store);
      onTestFinished(() => busCtx.bus.close());
      const tasks: TaskContext = { store, bus: busCtx.bus, maxTextBytes: 65_536 };
      const project = config.values.project;
      const operator = { project, agent: null, role: 'operator' as const, via: 'local' as const };
      const kasra = { project, agent: 'kasra', role: 'operator' as const, via: 'local' as const };
      for (let i = 0; i < 20; i++) await createTask(tasks, operator, { title: `step ${i}` });

      const d = await w.daemon(FAST, { env: brainEnv });
      const started = Date.now();
      for (let i = 0; i < 20; i++) {
        const { task } = await claimTask(tasks, kasra, {});
        await completeTask(tasks, kasra, { id: task.id, fence: task.attempt, result: `done ${i}` });
      }
      expect(Date.now() - started).toBeLessThan(2_500);
      const first = await d.waitFor((e) => e.event === 'brain_cycle', 12_000);
      expect(first).toMatchObject({ trigger: 'task.completed×20', outcome: 'executed', method: 'health_check' });
      // The model was told why it woke.
      expect(JSON.stringify(server.requests[0]!.body)).toContain('task.completed×20');
      // The debounce window gave one cycle, not twenty: wait past another window to be sure.
      await new Promise((r) => setTimeout(r, 3_500));
      expect(d.events.filter((e) => e.event === 'brain_cycle')).toHaveLength(1);
      expect(server.requests).toHaveLength(1);

      const woke = Date.now();
      expect((await w.run(['brain', 'wake', '--reason', 'a new goal'], { env: brainEnv })).code).toBe(0);
      const second = await d.waitFor((e) => e.event === 'brain_cycle' && e['trigger'] !== 'task.completed×20', 8_000);
      expect(second['trigger']).toBe('wake: a new goal');
      expect(Date.now() - woke).toBeLessThan(2_900); // not held for the 3 s debounce

      const listed = await w.run(['brain', 'cycles', '--json'], { env: brainEnv });
      const cycles = JSON.parse(listed.stdout) as CycleJson[];
      expect(cycles.map((c) => c.trigger)).toEqual(['wake: a new goal', 'task.completed×20']);
      expect(cycles[1]!.triggerDetail.counts).toEqual({ 'task.completed': 20 });
      const status = JSON.parse((await w.run(['brain', 'status', '--json'], { env: brainEnv })).stdout) as { daemonLoop: { runs: number } | null; cycles: number; breakers: { name: string; state: string }[] };
      expect(status.daemonLoop?.runs).toBeGreaterThan(0);
      expect(status.cycles).toBe(2);
      expect(status.breakers).toMatchObject([{ name: 'openai', state: 'closed' }]);
      // The coordinator was told of each cycle.
      const inbox = JSON.parse((await w.run(['inbox', '--as', 'boss', '--json'])).stdout) as { unread: { text: string }[] };
      expect(inbox.unread.filter((m) => m.text.startsWith('brain cycle')).length).toBeGreaterThanOrEqual(2);
      await d.stop();
    });

    it('a provider that is down fails the cycle and the daemon goes on; events from while it was stopped still trigger', async (ctx) => {
      let up = false;
      const server = await fake.startFakeChat({
        path: '/v1/chat/completions',
        answers: () => (up ? { json: fake.openaiCompletion({ content: healthCheck, model: 'gpt-4.1-mini' }) } : { status: 503, json: { error: { message: 'overloaded' } } }),
      });
      onTestFinished(() => server.close());
      const w = await daemonWorld(ctx, adapter);
      const brainEnv = { SOS_BRAIN_PROVIDER: 'openai', SOS_BRAIN_URL: `${server.url}/v1`, SOS_BRAIN_MODEL: 'gpt-4.1-mini', SOS_BRAIN_DEBOUNCE_MS: '200' };
      const d = await w.daemon(FAST, { env: brainEnv });
      expect((await w.run(['brain', 'wake'], { env: brainEnv })).code).toBe(0);
      const failed = await d.waitFor((e) => e.event === 'brain_cycle', 8_000);
      expect(failed['outcome']).toBe('failed');
      await d.stop();

      // Woken while no daemon runs: the next daemon reads it from its saved cursor.
      expect((await w.run(['brain', 'wake', '--reason', 'while down'], { env: brainEnv })).code).toBe(0);
      up = true;
      const again = await w.daemon(FAST, { env: brainEnv });
      const ok = await again.waitFor((e) => e.event === 'brain_cycle', 8_000);
      expect(ok).toMatchObject({ trigger: 'wake: while down', outcome: 'executed' });
      await until('two cycles recorded', async () => (JSON.parse((await w.run(['brain', 'cycles', '--json'])).stdout) as CycleJson[]).length === 2);
    });
  });
});
