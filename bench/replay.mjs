#!/usr/bin/env node
// The paper's case study replayed end to end, then `sos metrics` printed: a SQLite installation
// seeded with 5,370 open fixture tasks carrying the retired markers (one of them already a
// cleanup task), 50 brain cycles whose scripted model proposes their cleanup or the cleanup of
// the cleanup, and 10 more proposing invented methods. The model is an in-process provider that
// answers at once (no network), so the figures are the substrate's, not a model's.
// Usage: npm run build && node bench/replay.mjs
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as sos from '../dist/index.js';

const MARKERS = ['TEST QUEST', 'GLOBAL QUEST', 'TEST QV QUEST', 'MOCKED EXTRACT QUEST', 'TC-G53', 'FK TEST QUEST'];
const dir = mkdtempSync(join(tmpdir(), 'sos-replay-'));
const db = join(dir, 'sos.db');
const bin = fileURLToPath(new URL('../bin/sos', import.meta.url));
const env = { ...process.env, SOS_DB: db, SOS_DATA_DIR: dir, HOME: dir };
try {
  execFileSync(process.execPath, [bin, 'init'], { env, stdio: 'ignore' });
  execFileSync(process.execPath, [bin, 'agents', 'add', 'boss', '--role', 'coordinator'], { env, stdio: 'ignore' });
  execFileSync(process.execPath, [bin, 'agents', 'add', 'kasra', '--cap', 'code'], { env, stdio: 'ignore' });
  const store = await sos.openStore({ target: { dialect: 'sqlite', path: db }, pgSchema: 'sos', busyTimeoutMs: 10_000 });
  const at = Date.now() - 30 * 86_400_000;
  await store.sql.transaction(async (tx) => {
    for (let i = 0; i < 5_370; i++) {
      await tx.run(
        `INSERT INTO tasks (id, project, title, status, priority, attempt, max_attempts, lease_ms, available_at, unmet_deps, created_by, created_at, updated_at)
         VALUES ($1, 'default', $2, 'queued', 50, 0, 3, 600000, 0, 0, 'fixture', $3, $3)`,
        [sos.newId('tsk', at), i === 0 ? 'Clean up the stale fixture tasks' : `${MARKERS[i % MARKERS.length]} #${i}: extract the fixture`, at],
      );
    }
  });
  const bus = await sos.openBus({}, store);
  const memory = await sos.memoryOn(store);
  const mem = { store, memory, embedder: new sos.LocalEmbedder(), maxEngramBytes: 32_768, bus };
  const d = (method, title) => ({ action: title ?? `run ${method}`, goal_id: null, agent: null, method, details: title ? { title } : { text: 'rm -rf /' }, expected_progress: 'fewer stale tasks', risk: 'low' });
  const script = [
    d('create_task', 'Clean up the Test Quest fixture tasks'),
    d('create_task', 'Delete all GLOBAL QUEST tasks older than a week'),
    d('fix_code', 'Remove the mocked extract quest fixtures from the queue'),
    d('create_task', 'Run delete_tasks_by_pattern on "fk test quest"'),
    d('create_task', 'Clean up the cleanup tasks'),
  ];
  let next = script[0];
  const provider = {
    name: 'scripted',
    kind: 'anthropic',
    decide: async () => ({ raw: next, text: null, model: 'claude-sonnet-4-5', usage: { inputTokens: 2_000, outputTokens: 150, cacheWriteTokens: 0, cacheWrite1hTokens: 0, cacheReadTokens: 0 } }),
  };
  const brain = { tasks: { store, bus, maxTextBytes: 65_536 }, memory: mem, providers: [{ provider, model: 'claude-sonnet-4-5' }], breakers: new Map(), prices: sos.builtinPrices() };
  const operator = { project: 'default', agent: null, role: 'operator', via: 'local' };
  const outcomes = {};
  const t0 = Date.now();
  for (let i = 0; i < 60; i++) {
    next = i < 50 ? script[i % script.length] : d(i % 2 ? 'run_shell' : 'delete_all_tasks');
    const c = await sos.runCycle(brain, operator, { trigger: { kind: 'timer' } });
    outcomes[c.outcome] = (outcomes[c.outcome] ?? 0) + 1;
  }
  const ms = Date.now() - t0;
  const tasks = Number((await store.sql.one("SELECT COUNT(*) AS n FROM tasks WHERE project = 'default'")).n);
  await memory.close();
  await bus.close();
  await store.close();
  console.log(`60 cycles in ${ms} ms over 5,370 open fixture tasks; outcomes ${JSON.stringify(outcomes)}; tasks now ${tasks}`);
  const metrics = JSON.parse(execFileSync(process.execPath, [bin, 'metrics', '--json'], { env, encoding: 'utf8' }));
  const keys = ['recovery_success_rate', 'duplicate_claims', 'blocked_methods', 'stale_enqueue_attempts', 'cost_per_completed_task_usd', 'priced_spend_usd', 'tasks_done', 'unclaimed_routed_tasks', 'motor_executed', 'motor_skipped_stale', 'motor_rejected_unsupported', 'brain_cycles'];
  for (const k of keys) console.log(`${k.padEnd(28)} ${JSON.stringify(metrics[k])}`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
