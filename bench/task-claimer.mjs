#!/usr/bin/env node
// A claiming worker process for bench/tasks.mjs (not meant to be run by hand). It sets up, prints
// `ready`, waits for a line on stdin, then claims and completes until nothing is left, and prints
// one JSON line: { ids, start, end, maxMs, p99Ms, retries } (times in epoch ms, sub-ms resolution).
// Modes (CLAIMER_MODE):
//   sos   claimTask + completeTask through the public API (dist/index.js)
//   raw   the same claim statement sos runs, captured from sos (CLAIMER_SQL), plus one guarded
//         complete UPDATE, on the raw_tasks copy; better-sqlite3 or pg directly, autocommit
//   boss  pg-boss fetch + complete (CLAIMER_QUEUE in schema CLAIMER_SCHEMA)
// Environment: CLAIMER_MODE, CLAIMER_DIALECT (sqlite|postgres), CLAIMER_DB (path or URL),
// CLAIMER_SCHEMA, CLAIMER_PROJECT, CLAIMER_AGENT, CLAIMER_BUSY_MS.
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';

const env = process.env;
const mode = env.CLAIMER_MODE;
const dialect = env.CLAIMER_DIALECT;
const project = env.CLAIMER_PROJECT;
const agent = env.CLAIMER_AGENT;
const busyMs = Number(env.CLAIMER_BUSY_MS ?? 10_000);
const clock = () => performance.timeOrigin + performance.now();

/** One claim+complete, or false when nothing is left. Filled in per mode below. */
let step;
let close;
let retries = 0;

if (mode === 'sos') {
  const sos = await import('../dist/index.js');
  const store = await sos.openStore({ target: sos.parseStoreTarget(env.CLAIMER_DB), pgSchema: env.CLAIMER_SCHEMA ?? 'sos', busyTimeoutMs: busyMs });
  const bus = await sos.openBus({ redisUrl: undefined, maxLen: 100_000 }, store);
  const ctx = { store, bus, maxTextBytes: 65_536 };
  // An agent holding an agent token: the ordinary worker, no admin shortcuts.
  const caller = { project, agent, role: 'agent', via: 'token' };
  step = async () => {
    let task;
    try {
      ({ task } = await sos.claimTask(ctx, caller, {}));
    } catch (err) {
      if (err.code === 'conflict' && /nothing to claim/.test(err.message)) return false;
      throw err;
    }
    await sos.completeTask(ctx, caller, { id: task.id, fence: task.attempt });
    return task.id;
  };
  close = async () => {
    await bus.close();
    await store.close();
  };
} else if (mode === 'raw' && dialect === 'sqlite') {
  const { default: Database } = await import('better-sqlite3');
  const db = new Database(env.CLAIMER_DB, { fileMustExist: true, timeout: busyMs });
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.pragma('foreign_keys = ON');
  // The same $n → ? rewrite the sos SQLite driver does (a placeholder used twice is bound twice).
  const prepare = (sql) => {
    const order = [];
    const stmt = db.prepare(sql.replace(/\$(\d+)/g, (_, n) => (order.push(Number(n) - 1), '?')));
    return (params) => stmt.get(...order.map((i) => params[i]));
  };
  const claim = prepare(env.CLAIMER_SQL);
  const complete = db.prepare(
    `UPDATE raw_tasks SET status = 'done', updated_at = ?, result = NULL, lease_until = NULL
     WHERE project = ? AND id = ? AND status IN ('claimed', 'in_progress') AND claimant = ? AND attempt = ?`,
  );
  step = async () => {
    const now = Date.now();
    const row = claim([project, agent, now, 0]);
    if (!row) return false;
    if (complete.run(Date.now(), project, row.id, agent, row.attempt).changes !== 1) throw new Error(`raw complete of ${row.id} refused`);
    return row.id;
  };
  close = async () => db.close();
} else if (mode === 'raw') {
  const { default: pg } = await import('pg');
  const client = new pg.Client({ connectionString: env.CLAIMER_DB, options: `-c search_path=${env.CLAIMER_SCHEMA}` });
  await client.connect();
  const completeSql = `UPDATE raw_tasks SET status = 'done', updated_at = $3, result = NULL, lease_until = NULL
     WHERE project = $1 AND id = $2 AND status IN ('claimed', 'in_progress') AND claimant = $4 AND attempt = $5`;
  step = async () => {
    const { rows } = await client.query(env.CLAIMER_SQL, [project, agent, Date.now(), 0]);
    if (rows.length === 0) return false;
    const done = await client.query(completeSql, [project, rows[0].id, Date.now(), agent, rows[0].attempt]);
    if (done.rowCount !== 1) throw new Error(`raw complete of ${rows[0].id} refused`);
    return rows[0].id;
  };
  close = () => client.end();
} else if (mode === 'boss') {
  const { default: PgBoss } = await import('pg-boss');
  const boss = new PgBoss({ connectionString: env.CLAIMER_DB, schema: env.CLAIMER_SCHEMA, supervise: false, schedule: false, migrate: false, max: 4 });
  boss.on('error', (err) => process.stderr.write(`pg-boss: ${err.message}\n`));
  await boss.start();
  const queue = env.CLAIMER_QUEUE;
  step = async () => {
    const [job] = await boss.fetch(queue);
    if (!job) return false;
    await boss.complete(queue, job.id);
    return job.id;
  };
  close = () => boss.stop({ graceful: false, wait: true });
} else {
  throw new Error(`unknown CLAIMER_MODE ${mode} / CLAIMER_DIALECT ${dialect}`);
}

process.stdout.write('ready\n');
await new Promise((resolve) => createInterface({ input: process.stdin }).once('line', resolve));

const ids = [];
const lat = [];
const start = clock();
for (;;) {
  const t = clock();
  let id;
  try {
    id = await step();
  } catch (err) {
    // A lock timeout (SQLITE_BUSY past the busy timeout, a PostgreSQL deadlock) is counted and
    // retried so the run still drains; any other error ends the worker.
    if (/busy|locked|deadlock/i.test(`${err.code} ${err.kind} ${err.message}`)) {
      retries++;
      continue;
    }
    throw err;
  }
  if (id === false) break;
  lat.push(clock() - t);
  ids.push(id);
}
const end = clock();
lat.sort((a, b) => a - b);
const report = `${JSON.stringify({ ids, start, end, maxMs: lat.at(-1) ?? 0, p99Ms: lat[Math.floor(lat.length * 0.99)] ?? 0, retries })}\n`;
await new Promise((resolve) => process.stdout.write(report, resolve)); // a pipe: flush before exiting
await close();
process.exit(0);
