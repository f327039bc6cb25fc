#!/usr/bin/env node
// The motor's overhead per cycle, excluding the model call (issue 14's aim: under 20 ms with
// 10,000 open tasks on SQLite). One cycle's motor work is judging one proposal: the checks
// (allow-list, arguments, stale directive over the open tasks, duplicate, target, budget,
// governance) and, for an executed proposal, the mutation. Measured in this process on a
// SQLite Store seeded with N open tasks (titles like the case study's fixtures), for:
//   stale    a cleanup of fixture tasks (skipped at the stale check: the common case in the replay)
//   dry      a fresh task proposal judged to the end (dry run: every check, no write)
//   execute  a fresh task proposal executed (every check plus createTask)
//   cycle    a whole brain cycle with the model call taken out (an in-process provider that
//            answers at once): perceive (goals, counts, board, agents, budgets, last cycles,
//            memory recall), parse, the ledger record, the motor (stale skip), the cycle row, the
//            cycle engram, the coordinator report and the brain.cycle event
// against the raw primitive measured in the same run: the one SELECT of open task titles the
// stale and duplicate checks read, run raw through better-sqlite3 (prepared once).
// The raw SELECT reads every open title, which the motor no longer does (it narrows in SQL first),
// so the motor runs below 1.0 of it.
// Usage: npm run build && node bench/brain.mjs [openTasks=10000] [rounds=200]
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import Database from 'better-sqlite3';
import * as sos from '../dist/index.js';

const N = Number(process.argv[2] ?? 10_000);
const ROUNDS = Number(process.argv[3] ?? 200);
const MARKERS = ['TEST QUEST', 'GLOBAL QUEST', 'TEST QV QUEST', 'MOCKED EXTRACT QUEST', 'TC-G53', 'FK TEST QUEST'];

const dir = mkdtempSync(join(tmpdir(), 'sos-bench-brain-'));
const path = join(dir, 'sos.db');
try {
  const store = await sos.openStore({ target: { dialect: 'sqlite', path }, pgSchema: 'sos', busyTimeoutMs: 10_000, create: true });
  await store.migrate();
  await store.projects.create('bench');
  await store.agents.add({ project: 'bench', name: 'kasra', kind: 'custom', role: 'worker', capabilities: ['code'], session: null });
  const db = new Database(path, { timeout: 10_000 });
  db.pragma('journal_mode = WAL');
  const at = Date.now() - 30 * 86_400_000;
  const ins = db.prepare(
    `INSERT INTO tasks (id, project, title, status, priority, attempt, max_attempts, lease_ms, available_at, unmet_deps, created_by, created_at, updated_at)
     VALUES (?, 'bench', ?, 'queued', 50, 0, 3, 600000, 0, 0, 'fixture', ?, ?)`,
  );
  db.transaction(() => {
    for (let i = 0; i < N; i++) ins.run(sos.newId('tsk', at), `${MARKERS[i % MARKERS.length]} #${i}: extract the fixture`, at, at);
  })();

  const bus = await sos.openBus({}, store);
  const tasks = { store, bus, maxTextBytes: 65_536 };
  const operator = { project: 'bench', agent: null, role: 'operator', via: 'local' };
  const raw = db.prepare(
    "SELECT id, title, status FROM tasks WHERE project = ? AND (status IN ('backlog', 'queued', 'claimed', 'in_progress', 'review', 'blocked') OR created_at >= ?)",
  );

  const pct = (xs, p) => {
    const s = [...xs].sort((a, b) => a - b);
    return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
  };
  const time = async (fn) => {
    const t = performance.now();
    await fn();
    return performance.now() - t;
  };
  const cases = {
    stale: (i) => sos.runMotor({ tasks }, operator, `cyc_s${i}`, { method: 'create_task', agent: null, goal_id: null, details: { title: 'Clean up the test quest fixture tasks' } }),
    dry: (i) => sos.runMotor({ tasks }, operator, `cyc_d${i}`, { method: 'fix_code', agent: 'kasra', goal_id: null, details: { title: `fix bug ${i}` } }, { dryRun: true }),
    execute: (i) => sos.runMotor({ tasks }, operator, `cyc_e${i}`, { method: 'fix_code', agent: 'kasra', goal_id: null, details: { title: `fix bug ${i}` } }),
  };
  await store.agents.add({ project: 'bench', name: 'boss', kind: 'custom', role: 'coordinator', capabilities: [], session: null });
  const memory = await sos.memoryOn(store);
  const mem = { store, memory, embedder: new sos.LocalEmbedder(), maxEngramBytes: 32_768, bus };
  const cleanup = { action: 'Clean up the fixtures.', goal_id: null, agent: null, method: 'create_task', details: { title: 'Clean up the test quest fixture tasks' }, expected_progress: 'fewer fixtures', risk: 'low' };
  const instant = {
    name: 'instant',
    kind: 'anthropic',
    decide: async () => ({ raw: cleanup, text: null, model: 'claude-sonnet-4-5', usage: { inputTokens: 1_500, outputTokens: 120, cacheWriteTokens: 0, cacheWrite1hTokens: 0, cacheReadTokens: 0 } }),
  };
  const brain = { tasks, memory: mem, providers: [{ provider: instant, model: 'claude-sonnet-4-5' }], breakers: new Map(), prices: sos.builtinPrices() };
  cases.cycle = async () => {
    const c = await sos.runCycle(brain, operator, { trigger: { kind: 'timer' } });
    return { outcome: c.outcome, reason: c.reason };
  };
  const samples = { raw: [], stale: [], dry: [], execute: [], cycle: [] };
  for (let i = 0; i < 10; i++) {
    raw.all('bench', Date.now() - 86_400_000);
    await cases.dry(-i - 1);
  }
  // Interleaved: one of each per round.
  for (let i = 0; i < ROUNDS; i++) {
    samples.raw.push(await time(async () => raw.all('bench', Date.now() - 86_400_000)));
    for (const [name, fn] of Object.entries(cases)) {
      let v;
      samples[name].push(await time(async () => (v = await fn(i))));
      const want = name === 'stale' || name === 'cycle' ? 'skipped_stale' : name === 'dry' ? 'dry_run' : 'executed';
      if (v.outcome !== want) throw new Error(`${name}: expected ${want}, got ${v.outcome}: ${v.reason}`);
    }
  }
  const r50 = pct(samples.raw, 50);
  console.log(`motor overhead per proposal, SQLite, ${N.toLocaleString('en-US')} open tasks, ${ROUNDS} rounds (aim: p50 < 20 ms)`);
  console.log('case      p50 ms   p95 ms   ratio p50 vs raw');
  for (const name of ['raw', 'stale', 'dry', 'execute', 'cycle']) {
    const p50 = pct(samples[name], 50);
    console.log(`${name.padEnd(8)} ${p50.toFixed(2).padStart(7)}  ${pct(samples[name], 95).toFixed(2).padStart(7)}   ${name === 'raw' ? '1.00 (open-task SELECT, raw)' : (p50 / r50).toFixed(2)}`);
  }
  const counters = await store.counters.all('bench');
  console.log(`counters after the run: stale_enqueue_attempts ${counters.stale_enqueue_attempts}, brain_cycles ${counters.brain_cycles}, motor_executed ${counters.motor_executed}`);
  await memory.close();
  db.close();
  await bus.close();
  await store.close();
} finally {
  rmSync(dir, { recursive: true, force: true });
}
