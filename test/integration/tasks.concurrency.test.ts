import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createTask } from '../../src/core/tasks/service.js';
import { isolatedEnv, ROOT, sos } from '../helpers/cli.js';
import { seedAgents } from '../helpers/bus.js';
import { TASK_ADAPTERS } from '../helpers/tasks.js';
import { tempDir } from '../helpers/isolation.js';

/** Real processes racing on one database: no task claimed twice, none lost; a killed worker's task comes back. */

const WORKERS = 8;
const TASKS = 5_000;
const WORKER = join(ROOT, 'test/fixtures/task-worker.mjs');

function runWorker(env: NodeJS.ProcessEnv, mode: 'work' | 'hold') {
  const child = spawn(process.execPath, [WORKER], { env: { ...env, WORKER_MODE: mode }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => {
    stdout += d.toString();
  });
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const exited = new Promise<number>((r) => child.on('close', (code) => r(code ?? -1)));
  return { child, exited, out: () => stdout, err: () => stderr };
}

describe.each(TASK_ADAPTERS)('task claims across processes: $name', (adapter) => {
  describe.skipIf(!adapter.available)(adapter.name, () => {
    it(`${WORKERS} workers drain ${TASKS} tasks: each claimed once and done once`, { timeout: 300_000 }, async (ctx) => {
      const w = await adapter.open(ctx);
      const agents = Object.fromEntries(Array.from({ length: WORKERS }, (_, i) => [`worker-${i}`, 'worker' as const]));
      await seedAgents(w, { boss: 'coordinator', ...agents });
      for (let i = 0; i < TASKS; i++) await createTask(w.tasks, w.as('boss'), { title: `t${i}`, priority: i % 100 });
      const target = w.store.capabilities.dialect === 'postgres' ? process.env.SOS_TEST_DATABASE_URL ?? 'postgres://sos_test:sos_test@127.0.0.1:5432/sos_test' : w.store.location;
      const schema = w.store.location.match(/\(schema (\w+)\)/)?.[1] ?? 'sos';
      const base = { ...process.env, SOS_DB: target, SOS_PG_SCHEMA: schema, SOS_PROJECT: w.project };
      const workers = Array.from({ length: WORKERS }, (_, i) => runWorker({ ...base, SOS_AGENT: `worker-${i}` }, 'work'));
      const codes = await Promise.all(workers.map((x) => x.exited));
      expect(codes, workers.map((x) => x.err()).join('\n')).toEqual(Array(WORKERS).fill(0));
      const done = workers.flatMap((x) => JSON.parse(x.out()) as string[]);
      expect(done.length).toBe(TASKS);
      expect(new Set(done).size).toBe(TASKS);
      const remaining = await w.store.tasks.list(w.project, { statuses: ['queued', 'claimed', 'in_progress'] }, Date.now());
      expect(remaining).toEqual([]);
      expect((await w.store.tasks.list(w.project, { statuses: ['done'], limit: 10_000 }, Date.now())).length).toBe(TASKS);
      expect(await w.store.counters.all(w.project)).not.toHaveProperty('duplicate_claims_refused');
      // Each task has exactly one claim in its history.
      const sample = done.slice(0, 50);
      for (const id of sample) expect((await w.store.tasks.events(w.project, id)).filter((e) => e.event === 'claimed')).toHaveLength(1);
      console.log(`${adapter.name}: per-worker completions ${workers.map((x) => (JSON.parse(x.out()) as string[]).length).join(' / ')}`);
    });

    it('a SIGKILLed worker’s task returns after its lease; its old fence is refused', { timeout: 60_000 }, async (ctx) => {
      const home = tempDir(ctx);
      const target = adapter.name === 'postgres' ? w_url() : join(home, 'sos.db');
      const schema = `t_crash_${Math.random().toString(36).slice(2, 8)}`;
      const env = isolatedEnv(home, { SOS_DB: target, SOS_PG_SCHEMA: schema, SOS_PROJECT: 'default' });
      if (adapter.name === 'postgres') ctx.onTestFinished(() => dropSchema(schema));
      expect((await sos(['init'], env)).code).toBe(0);
      for (const a of ['doomed', 'rescuer']) await sos(['agents', 'add', a], env);
      const id = (await sos(['tasks', 'create', 'survive a crash', '--lease', '1s'], env)).stdout.trim();

      const holder = runWorker({ ...env, SOS_AGENT: 'doomed' }, 'hold');
      for (let i = 0; i < 100 && !holder.out().includes(' '); i++) await new Promise((r) => setTimeout(r, 50));
      const [claimedId, fence] = holder.out().trim().split(' ');
      expect(claimedId).toBe(id);
      holder.child.kill('SIGKILL');
      await holder.exited;

      expect((await sos(['tasks', 'claim', '--as', 'rescuer'], env)).code).toBe(4); // still leased
      await new Promise((r) => setTimeout(r, 1_100));
      const swept = await sos(['tasks', 'sweep', '--json'], env);
      expect(swept.json()).toMatchObject({ requeued: [{ id, attempt: 1 }] });
      // The requeue has a jittered backoff (about 5 s for a first retry): wait for it.
      const claimed = await sos(['tasks', 'claim', '--as', 'rescuer', '--wait', '20s', '--json'], env);
      expect(claimed.code, claimed.stderr).toBe(0);
      expect(claimed.json()).toMatchObject({ id, claimant: 'rescuer', fence: 2 });
      const late = await sos(['tasks', 'complete', id, '--as', 'doomed', '--fence', fence!], env);
      expect(late.code).toBe(4);
      expect(late.stderr).toMatch(/held by rescuer/);
      expect((await sos(['tasks', 'complete', id, '--as', 'rescuer', '--fence', '2', '--result', 'recovered'], env)).code).toBe(0);
      expect((await sos(['tasks', 'show', id, '--json'], env)).json()).toMatchObject({ status: 'done', result: 'recovered' });
      expect((await sos(['tasks', 'stats', '--json'], env)).json()).toMatchObject({ leases_expired: 1, stale_fence_refused: 1 });
    });
  });
});

function w_url(): string {
  return process.env.SOS_TEST_DATABASE_URL || 'postgres://sos_test:sos_test@127.0.0.1:5432/sos_test';
}

async function dropSchema(schema: string): Promise<void> {
  const { default: pg } = await import('pg');
  const client = new pg.Client({ connectionString: w_url() });
  await client.connect();
  await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await client.end();
}
