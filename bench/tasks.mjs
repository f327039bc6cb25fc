#!/usr/bin/env node
// Task-engine benchmarks, each against the raw primitive measured in the same run, interleaved:
//   (a) drain: 1, 2 and 4 worker PROCESSES (bench/task-claimer.mjs) claim and complete N queued
//       tasks. sos = claimTask + completeTask through the public API; raw = the very claim
//       statement sos runs (captured from sos at start-up) plus one guarded complete UPDATE, on a
//       copy of the tasks table and its indexes, autocommit, no sos around it. Order per worker
//       count: raw, sos (, pg-boss). Every id must be claimed exactly once: duplicates and the
//       claimed count are checked from the workers' output and the table is checked drained.
//   (b) PostgreSQL only: pg-boss (fetch + complete) with the same process counts and job count.
//       pg-boss 10's fetch sorts the whole backlog (its index does not serve ORDER BY priority
//       DESC, created_on), so its rate falls as the backlog grows; sos's claim is index-ordered.
//   Seeding: sos tasks are inserted as rows in one transaction (queued, unmet_deps 0,
//   available_at 0, no event rows); PostgreSQL tables get VACUUM ANALYZE before each drain.
//   (c) where the time of one sos claim+complete goes: the same loop in this process with every
//       SQL statement timed and grouped (exclusive wall-clock time, µs per task).
//       SQLite also counts WAL frames (pages) written per task, sos vs the raw loop (same claim
//       statement + guarded complete, in this process), with autocheckpoint off while counting.
//   (d) ready-work listing: the `board` service call over 10,000 open tasks (priorities, labels,
//       requirements, dependencies) vs its ranking SELECT run raw, p50/p95; and `sos tasks board`
//       end to end through bin/sos vs `node -e 0`.
// Usage: npm run build && node bench/tasks.mjs [sqliteTasks [pgTasks]]
//   defaults 20000 / 10000 (pgTasks defaults to half of sqliteTasks when only that is given).
//   PostgreSQL at SOS_BENCH_DATABASE_URL (default postgres://sos_test:sos_test@127.0.0.1:5432/sos_test),
//   in fresh schemas dropped at the end; SQLite in a temp dir. SOS_BENCH_ONLY=sqlite|postgres runs one.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import pg from 'pg';
import * as sos from '../dist/index.js';

const SQLITE_N = Number(process.argv[2] ?? 20_000);
const PG_N = Number(process.argv[3] ?? (process.argv[2] ? Math.round(SQLITE_N / 2) : 10_000));
const WORKERS = [1, 2, 4];
const BOARD_TASKS = 10_000;
const BOARD_CALLS = 50;
const CLI_RUNS = 5;
const PROFILE = { sqlite: 2_000, postgres: 1_000 };
const BUSY_MS = 10_000; // sos's default busy_timeout_ms, for sos and raw workers alike
const pgUrl = process.env.SOS_BENCH_DATABASE_URL ?? 'postgres://sos_test:sos_test@127.0.0.1:5432/sos_test';
const only = process.env.SOS_BENCH_ONLY;
const root = fileURLToPath(new URL('..', import.meta.url));
const CLAIMER = join(root, 'bench', 'task-claimer.mjs');
const BIN = join(root, 'bin', 'sos');
const dir = mkdtempSync(join(tmpdir(), 'sos-bench-tasks-'));
const tag = `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;
const began = Date.now();

const clock = () => performance.timeOrigin + performance.now();
const pct = (xs, p) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))];
const int = (x) => Math.round(x).toLocaleString('en-US');
const ms = (x) => `${x.toFixed(x < 10 ? 2 : 1)} ms`;
const PRIORITIES = [90, 70, 70, 50, 50, 50, 50, 30, 30, 10];
const log = (s) => process.stderr.write(`[${((Date.now() - began) / 1000).toFixed(0).padStart(3)}s] ${s}\n`);

/** Small deterministic PRNG so both adapters get the same board. */
function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// ---------------------------------------------------------------- SQL instrumentation
let pgHook = null;

/**
 * Wraps a sos SqlDriver instance so every statement is reported: onQuery(sql, start, end, txId)
 * and onTx(txId, start, end). Used to capture sos's exact claim / board statements and to
 * profile. Returns the undo.
 */
function instrument(driver, onQuery, onTx = () => undefined) {
  let txSeq = 0;
  let current = null;
  const wrap = (exec, txId) => {
    const out = {};
    for (const m of ['all', 'one', 'run', 'script']) {
      out[m] = async (sql, params) => {
        const s = clock();
        try {
          return await exec[m](sql, params);
        } finally {
          onQuery(sql, s, clock(), txId);
        }
      };
    }
    return out;
  };
  const orig = { all: driver.all, one: driver.one, run: driver.run, transaction: driver.transaction };
  const top = wrap({ all: orig.all.bind(driver), one: orig.one.bind(driver), run: orig.run.bind(driver), script: driver.script.bind(driver) }, null);
  driver.all = top.all;
  driver.one = top.one;
  driver.run = top.run;
  driver.transaction = (fn) => {
    const id = ++txSeq;
    const s = clock();
    current = id;
    return orig.transaction.call(driver, (tx) => fn(wrap(tx, id))).finally(() => {
      current = null;
      onTx(id, s, clock());
    });
  };
  // BEGIN / COMMIT bypass the executor: SQLite runs them with db.exec, PostgreSQL on the pooled
  // client. Peek at the driver's (TypeScript-private) handles to time them too.
  const undo = [];
  // SQLite's BEGIN IMMEDIATE / COMMIT / ROLLBACK are statements the driver prepares once and runs
  // with .run() (not through the executor): time them too, or commit time reads as "JS between
  // statements".
  if (typeof driver.control === 'function') {
    const control = driver.control;
    const timedStatement = (stmt, sql) => ({
      run(...args) {
        const s = clock();
        try {
          return stmt.run(...args);
        } finally {
          onQuery(sql, s, clock(), current);
        }
      },
    });
    driver.control = function () {
      const c = control.call(this);
      return { begin: timedStatement(c.begin, 'BEGIN IMMEDIATE'), commit: timedStatement(c.commit, 'COMMIT'), rollback: timedStatement(c.rollback, 'ROLLBACK') };
    };
    undo.push(() => delete driver.control);
  }
  const sqlite = driver.db;
  if (sqlite && typeof sqlite.exec === 'function') {
    const exec = sqlite.exec;
    sqlite.exec = function (sql) {
      const s = clock();
      try {
        return exec.call(this, sql);
      } finally {
        onQuery(sql, s, clock(), current);
      }
    };
    undo.push(() => delete sqlite.exec);
  }
  const pool = driver.pool;
  if (pool && typeof pool.connect === 'function') {
    const connect = pool.connect;
    pgHook = (sql, s, e) => onQuery(sql, s, e, current);
    pool.connect = async function (...args) {
      if (typeof args[0] === 'function') return connect.apply(this, args);
      const client = await connect.apply(this, args);
      if (!client.benchWrapped) {
        client.benchWrapped = true;
        const query = client.query;
        client.query = function (text, ...rest) {
          const hook = pgHook;
          if (!hook || typeof text !== 'string' || !/^(BEGIN|COMMIT|ROLLBACK)\b/.test(text)) return query.call(this, text, ...rest);
          const s = clock();
          return query.call(this, text, ...rest).finally(() => hook(text, s, clock()));
        };
      }
      return client;
    };
    undo.push(() => {
      pgHook = null;
      delete pool.connect;
    });
  }
  return () => {
    delete driver.all;
    delete driver.one;
    delete driver.run;
    delete driver.transaction;
    for (const u of undo) u();
  };
}

async function capture(store, pick, action) {
  const seen = [];
  const undo = instrument(store.sql, (sql) => seen.push(sql));
  try {
    await action();
  } finally {
    undo();
  }
  const sql = seen.find(pick);
  if (!sql) throw new Error(`could not capture the statement from sos; saw:\n${seen.join('\n---\n')}`);
  return sql;
}

/** sos's statement, pointed at the raw copy of the tables. */
const toRaw = (sql) => sql.replace(/\btasks\b/g, 'raw_tasks').replace(/\btask_requires\b/g, 'raw_task_requires');

// ---------------------------------------------------------------- adapters
async function openSqlite() {
  const path = join(dir, 'sos.db');
  const store = await sos.openStore({ target: { dialect: 'sqlite', path }, pgSchema: 'sos', busyTimeoutMs: BUSY_MS, create: true });
  await store.migrate();
  const db = new Database(path, { timeout: BUSY_MS });
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.pragma('foreign_keys = ON');
  const bind = (sql, params = []) => {
    const order = [];
    const text = sql.replace(/\$(\d+)/g, (_, n) => (order.push(Number(n) - 1), '?'));
    return { stmt: db.prepare(text), values: order.map((i) => params[i]) };
  };
  return {
    name: 'sqlite',
    n: SQLITE_N,
    store,
    target: path,
    schema: 'sos',
    cliEnv: {},
    async copyTables() {
      const defs = db
        .prepare("SELECT type, name, sql FROM sqlite_master WHERE tbl_name IN ('tasks', 'task_requires') AND sql IS NOT NULL ORDER BY type DESC, tbl_name DESC")
        .all();
      // tables first (type DESC: 'table' > 'index'), tasks before task_requires (tbl_name DESC)
      for (const d of defs) db.exec(toRaw(d.sql).replace(/^CREATE (UNIQUE )?INDEX (\w+)/i, 'CREATE $1INDEX raw_$2'));
    },
    async seed(table, project, n) {
      const at = Date.now();
      const ins = db.prepare(
        `INSERT INTO ${table} (id, project, title, status, priority, attempt, max_attempts, lease_ms, available_at, unmet_deps, created_by, created_at, updated_at)
         VALUES (?, ?, ?, 'queued', ?, 0, 3, 600000, 0, 0, 'bench', ?, ?)`,
      );
      db.transaction(() => {
        for (let i = 0; i < n; i++) ins.run(sos.newId('tsk', at), project, `bench task ${i}`, PRIORITIES[i % PRIORITIES.length], at, at);
      })();
    },
    async settle() {
      db.pragma('wal_checkpoint(TRUNCATE)');
    },
    /** WAL frames written per claim+complete: sos through the API, raw as the claimer does it. */
    async walFrames(project, claimSql) {
      const N = 1_000;
      const sosDb = store.sql.db; // the driver's connection (TypeScript-private)
      const wal = () => {
        try {
          return (statSync(`${path}-wal`).size - 32) / (db.pragma('page_size', { simple: true }) + 24);
        } catch {
          return 0;
        }
      };
      const count = async (seed, loop) => {
        await seed();
        db.pragma('wal_checkpoint(TRUNCATE)');
        sosDb.pragma('wal_autocheckpoint = 0');
        db.pragma('wal_autocheckpoint = 0');
        const before = Math.max(0, wal());
        const s = clock();
        const done = await loop();
        const t = clock() - s;
        const frames = wal() - before;
        sosDb.pragma('wal_autocheckpoint = 1000');
        db.pragma('wal_autocheckpoint = 1000');
        db.pragma('wal_checkpoint(TRUNCATE)');
        if (done !== N) throw new Error(`wal frames: ${done} of ${N} tasks done`);
        return { frames: frames / N, us: (t * 1000) / N };
      };
      const claim = bind(toRaw(claimSql), [project, 'w0', 0, 0]).stmt;
      const order = [];
      toRaw(claimSql).replace(/\$(\d+)/g, (_, n) => (order.push(Number(n) - 1), '?'));
      const complete = db.prepare(
        `UPDATE raw_tasks SET status = 'done', updated_at = ?, result = NULL, lease_until = NULL
         WHERE project = ? AND id = ? AND status IN ('claimed', 'in_progress') AND claimant = ? AND attempt = ?`,
      );
      const raw = await count(
        () => this.seed('raw_tasks', project, N),
        async () => {
          let n = 0;
          for (;;) {
            const params = [project, 'w0', Date.now(), 0];
            const row = claim.get(...order.map((i) => params[i]));
            if (!row) return n;
            complete.run(Date.now(), project, row.id, 'w0', row.attempt);
            n++;
          }
        },
      );
      const ctx = { store, bus: await sos.openBus({ redisUrl: undefined, maxLen: 100_000 }, store), maxTextBytes: 65_536 };
      const caller = { project, agent: 'w0', role: 'agent', via: 'token' };
      const mine = await count(
        () => this.seed('tasks', project, N),
        async () => {
          let n = 0;
          for (;;) {
            let task;
            try {
              ({ task } = await sos.claimTask(ctx, caller, {}));
            } catch (err) {
              if (err.code === 'conflict') return n;
              throw err;
            }
            await sos.completeTask(ctx, caller, { id: task.id, fence: task.attempt });
            n++;
          }
        },
      );
      await ctx.bus.close();
      walRows.push({ n: N, raw, sos: mine });
    },
    async left(table, project) {
      return db.prepare(`SELECT COUNT(*) AS n FROM ${table} WHERE project = ? AND status <> 'done'`).get(project).n;
    },
    async seedBoard(project, plan) {
      const at = Date.now();
      const ins = db.prepare(
        `INSERT INTO tasks (id, project, title, status, priority, attempt, max_attempts, lease_ms, available_at, unmet_deps, created_by, created_at, updated_at)
         VALUES (?, ?, ?, 'queued', ?, 0, 3, 600000, 0, ?, 'bench', ?, ?)`,
      );
      const dep = db.prepare('INSERT INTO task_deps (task_seq, depends_on_seq) VALUES (?, ?)');
      const label = db.prepare('INSERT INTO task_labels (task_seq, label) VALUES (?, ?)');
      const req = db.prepare('INSERT INTO task_requires (task_seq, capability) VALUES (?, ?)');
      db.transaction(() => {
        const seqs = [];
        for (const t of plan) {
          const seq = Number(ins.run(sos.newId('tsk', at), project, t.title, t.priority, t.deps.length, at - t.age, at - t.age).lastInsertRowid);
          seqs.push(seq);
          for (const d of t.deps) dep.run(seq, seqs[d]);
          for (const l of t.labels) label.run(seq, l);
          for (const r of t.requires) req.run(seq, r);
        }
      })();
    },
    async raw(sql, params) {
      const { stmt, values } = bind(sql, params);
      return stmt.all(...values);
    },
    async close() {
      await store.close();
      db.close();
    },
  };
}

async function openPostgres() {
  const schema = `bench_tasks_${tag}`;
  const store = await sos.openStore({ target: { dialect: 'postgres', url: pgUrl }, pgSchema: schema, busyTimeoutMs: BUSY_MS });
  await store.migrate();
  const client = new pg.Client({ connectionString: pgUrl, options: `-c search_path=${schema}` });
  await client.connect();
  const q = async (sql, params) => (await client.query(sql, params)).rows;
  return {
    name: 'postgres',
    n: PG_N,
    store,
    target: pgUrl,
    schema,
    cliEnv: { SOS_PG_SCHEMA: schema },
    client,
    async copyTables() {
      await client.query(`CREATE TABLE raw_tasks (LIKE tasks INCLUDING ALL);
        ALTER TABLE raw_tasks ADD FOREIGN KEY (project) REFERENCES projects (slug) ON DELETE CASCADE;
        CREATE TABLE raw_task_requires (LIKE task_requires INCLUDING ALL);
        ALTER TABLE raw_task_requires ADD FOREIGN KEY (task_seq) REFERENCES raw_tasks (seq) ON DELETE CASCADE;`);
    },
    async seed(table, project, n) {
      const at = Date.now();
      const ids = Array.from({ length: n }, () => sos.newId('tsk', at));
      const pris = ids.map((_, i) => PRIORITIES[i % PRIORITIES.length]);
      await q(
        `INSERT INTO ${table} (id, project, title, status, priority, attempt, max_attempts, lease_ms, available_at, unmet_deps, created_by, created_at, updated_at)
         SELECT u.id, $1, 'bench task ' || u.ord, 'queued', u.pri, 0, 3, 600000, 0, 0, 'bench', $2, $2
         FROM unnest($3::text[], $4::int[]) WITH ORDINALITY AS u(id, pri, ord) ORDER BY u.ord`,
        [project, at, ids, pris],
      );
    },
    async settle(table) {
      await client.query(`VACUUM ANALYZE ${table}`);
    },
    async left(table, project) {
      return Number((await q(`SELECT COUNT(*) AS n FROM ${table} WHERE project = $1 AND status <> 'done'`, [project]))[0].n);
    },
    async seedBoard(project, plan) {
      const at = Date.now();
      await client.query('BEGIN');
      const ids = plan.map(() => sos.newId('tsk', at));
      const rows = await q(
        `INSERT INTO tasks (id, project, title, status, priority, attempt, max_attempts, lease_ms, available_at, unmet_deps, created_by, created_at, updated_at)
         SELECT u.id, $1, u.title, 'queued', u.pri, 0, 3, 600000, 0, u.unmet, 'bench', u.at, u.at
         FROM unnest($2::text[], $3::text[], $4::int[], $5::int[], $6::bigint[]) WITH ORDINALITY AS u(id, title, pri, unmet, at, ord) ORDER BY u.ord
         RETURNING seq, id`,
        [project, ids, plan.map((t) => t.title), plan.map((t) => t.priority), plan.map((t) => t.deps.length), plan.map((t) => at - t.age)],
      );
      const seqOf = new Map(rows.map((r) => [r.id, Number(r.seq)]));
      const seqs = ids.map((id) => seqOf.get(id));
      const pairs = (f) => {
        const a = [];
        const b = [];
        plan.forEach((t, i) => f(t).forEach((v) => (a.push(seqs[i]), b.push(v))));
        return [a, b];
      };
      const [ds, dd] = pairs((t) => t.deps.map((d) => seqs[d]));
      await q('INSERT INTO task_deps (task_seq, depends_on_seq) SELECT * FROM unnest($1::bigint[], $2::bigint[])', [ds, dd]);
      await q('INSERT INTO task_labels (task_seq, label) SELECT * FROM unnest($1::bigint[], $2::text[])', pairs((t) => t.labels));
      await q('INSERT INTO task_requires (task_seq, capability) SELECT * FROM unnest($1::bigint[], $2::text[])', pairs((t) => t.requires));
      await client.query('COMMIT');
      await client.query('VACUUM ANALYZE tasks, task_deps, task_labels, task_requires');
    },
    raw: q,
    async close() {
      await store.close();
      await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`).catch((e) => log(`dropping ${schema}: ${e.message}`));
      await client.end();
    },
  };
}

// ---------------------------------------------------------------- worker processes
function startWorker(env) {
  const child = spawn(process.execPath, [CLAIMER], { env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  let onReady;
  const ready = new Promise((r) => (onReady = r));
  child.stdout.on('data', (d) => {
    out += d;
    if (out.startsWith('ready\n')) onReady();
  });
  child.stderr.on('data', (d) => (err += d));
  const exited = new Promise((r) => child.on('close', (code) => (onReady(), r(code))));
  return { child, ready, exited, out: () => out, err: () => err };
}

/** Starts `w` workers, lets them all finish setting up, releases them at once, collects ids. */
async function drain(label, w, env) {
  const workers = Array.from({ length: w }, (_, i) => startWorker({ ...env, CLAIMER_AGENT: `w${i}`, CLAIMER_BUSY_MS: String(BUSY_MS) }));
  await Promise.all(workers.map((x) => x.ready));
  for (const x of workers) x.child.stdin.write('go\n');
  const codes = await Promise.all(workers.map((x) => x.exited));
  if (codes.some((c) => c !== 0)) throw new Error(`${label}: worker exited ${codes.join(',')}\n${workers.map((x) => x.err()).join('\n')}`);
  const results = workers.map((x, i) => {
    const last = x.out().split('\n').filter(Boolean).at(-1) ?? '';
    try {
      return JSON.parse(last);
    } catch {
      throw new Error(`${label}: worker ${i} printed no report (${x.out().length} bytes): ${last.slice(0, 200)}…`);
    }
  });
  const ids = results.flatMap((r) => r.ids);
  const wall = Math.max(...results.map((r) => r.end)) - Math.min(...results.map((r) => r.start));
  const counts = results.map((r) => r.ids.length);
  return {
    rate: ids.length / (wall / 1000),
    claimed: ids.length,
    duplicates: ids.length - new Set(ids).size,
    counts,
    p99: Math.max(...results.map((r) => r.p99Ms)),
    max: Math.max(...results.map((r) => r.maxMs)),
    retries: results.reduce((a, r) => a + r.retries, 0),
  };
}

// ---------------------------------------------------------------- (a) + (b) drains
const claimRows = [];

async function claims(a, boss) {
  const project = 'claims';
  await a.store.projects.create(project);
  for (let i = 0; i < Math.max(...WORKERS); i++) {
    await a.store.agents.add({ project, name: `w${i}`, kind: 'custom', role: 'worker', capabilities: [], session: null });
  }
  // The exact claim statement sos runs (captured on an empty queue), then the raw copy it runs on.
  const claimSql = await capture(a.store, (s) => /status = 'claimed'/.test(s) && /RETURNING/.test(s), () =>
    a.store.tasks.claim(project, 'w0', { now: Date.now() }),
  );
  await a.copyTables();
  const base = { CLAIMER_DIALECT: a.name, CLAIMER_DB: a.target, CLAIMER_SCHEMA: a.schema, CLAIMER_PROJECT: project };
  const systems = [
    {
      system: 'raw',
      table: 'raw_tasks',
      env: { ...base, CLAIMER_MODE: 'raw', CLAIMER_SQL: toRaw(claimSql) },
      seed: () => a.seed('raw_tasks', project, a.n),
      settle: () => a.settle('raw_tasks'),
      left: () => a.left('raw_tasks', project),
    },
    {
      system: 'sos',
      table: 'tasks',
      env: { ...base, CLAIMER_MODE: 'sos' },
      seed: () => a.seed('tasks', project, a.n),
      settle: () => a.settle('tasks'),
      left: () => a.left('tasks', project),
    },
  ];
  if (boss) systems.push(boss.system(a.n));
  for (const w of WORKERS) {
    const byName = {};
    for (const s of systems) {
      const queue = await s.seed(w);
      await s.settle();
      log(`${a.name}: ${s.system} × ${w} process${w > 1 ? 'es' : ''} draining ${int(a.n)}`);
      const r = await drain(`${a.name} ${s.system} ${w}`, w, { ...s.env, ...(queue ? { CLAIMER_QUEUE: queue } : {}) });
      r.left = await s.left(queue);
      byName[s.system] = r;
      claimRows.push({ adapter: a.name, w, system: s.system, n: a.n, ...r });
    }
    for (const s of systems) {
      const row = claimRows.find((x) => x.adapter === a.name && x.w === w && x.system === s.system);
      row.vsRaw = row.rate / byName.raw.rate;
      if (byName['pg-boss']) row.vsBoss = row.rate / byName['pg-boss'].rate;
    }
  }
  return { project, claimSql };
}

async function openBoss() {
  const { default: PgBoss } = await import('pg-boss');
  const schema = `bench_boss_${tag}`;
  const boss = new PgBoss({ connectionString: pgUrl, schema, supervise: false, schedule: false, max: 2 });
  boss.on('error', (err) => log(`pg-boss: ${err.message}`));
  await boss.start();
  const version = JSON.parse(readFileSync(join(root, 'node_modules', 'pg-boss', 'package.json'), 'utf8')).version;
  const admin = new pg.Client({ connectionString: pgUrl });
  await admin.connect();
  return {
    version,
    system(n) {
      return {
        system: 'pg-boss',
        env: { CLAIMER_MODE: 'boss', CLAIMER_DIALECT: 'postgres', CLAIMER_DB: pgUrl, CLAIMER_SCHEMA: schema },
        async seed(w) {
          const queue = `claims_${w}`;
          await boss.createQueue(queue);
          await boss.insert(Array.from({ length: n }, (_, i) => ({ name: queue, data: { i }, priority: PRIORITIES[i % PRIORITIES.length] })));
          return queue;
        },
        settle: () => admin.query(`VACUUM ANALYZE "${schema}".job`),
        left: (queue) => boss.getQueueSize(queue),
      };
    },
    async close() {
      await boss.stop({ graceful: false, wait: true }).catch(() => undefined);
      await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`).catch((e) => log(`dropping ${schema}: ${e.message}`));
      await admin.end();
    },
  };
}

// ---------------------------------------------------------------- (c) where the time goes
const CATEGORIES = [
  [/^BEGIN|^COMMIT|^ROLLBACK/, 'BEGIN / COMMIT'],
  [/status = 'claimed'.*RETURNING/s, 'claim statement'],
  [/^UPDATE tasks SET status = \$3/, 'complete UPDATE (guarded)'],
  [/INSERT INTO task_events/, 'task_events INSERT'],
  [/FROM task_labels|FROM task_requires WHERE task_seq IN|FROM task_deps d JOIN|FROM task_artifacts/, 'labels/requires/deps/artifacts SELECTs'],
  [/FROM tasks WHERE project = \$1 AND id = \$2/, 'task row SELECT (by id)'],
  [/unmet_deps = unmet_deps - 1/, 'dependents UPDATE (unblock)'],
  [/INSERT INTO bus_events/, 'bus_events INSERT (task.* event)'],
  [/pg_notify/, 'pg_notify'],
  [/FROM agents|agent_capabilities/, 'agent lookup'],
  [/FROM projects|squad/, 'visibility (project, squads)'],
];
const categorise = (sql) => CATEGORIES.find(([re]) => re.test(sql.trim()))?.[1] ?? `other: ${sql.trim().slice(0, 50)}`;
const profiles = [];
const walRows = [];

async function profile(a, project) {
  const n = PROFILE[a.name];
  await a.seed('tasks', project, n);
  await a.settle('tasks');
  const ctx = { store: a.store, bus: await sos.openBus({ redisUrl: undefined, maxLen: 100_000 }, a.store), maxTextBytes: 65_536 };
  const caller = { project, agent: 'w0', role: 'agent', via: 'token' };
  const stats = new Map();
  const txInner = new Map();
  let cursor = 0;
  let txOverhead = 0;
  let txCount = 0;
  const add = (cat, t) => {
    const s = stats.get(cat) ?? { calls: 0, ms: 0 };
    s.calls++;
    s.ms += t;
    stats.set(cat, s);
  };
  // Exclusive wall-clock attribution: overlapping statements (a Promise.all over one connection
  // or a pool) count only the time not already covered, so the parts add up to the wall time.
  const onQuery = (sql, s, e, txId) => {
    const excl = Math.max(0, e - Math.max(s, cursor));
    cursor = Math.max(cursor, e);
    add(categorise(sql), excl);
    if (txId !== null) txInner.set(txId, (txInner.get(txId) ?? 0) + excl);
  };
  const onTx = (id, s, e) => {
    txCount++;
    txOverhead += e - s - (txInner.get(id) ?? 0);
    txInner.delete(id);
  };
  for (let i = 0; i < 50; i++) await ctx.store.tasks.get(project, 'tsk_00000000000000000000000000'); // warm caches
  const undo = instrument(a.store.sql, onQuery, onTx);
  let done = 0;
  const start = clock();
  try {
    for (;;) {
      let task;
      try {
        ({ task } = await sos.claimTask(ctx, caller, {}));
      } catch (err) {
        if (err.code === 'conflict') break;
        throw err;
      }
      await sos.completeTask(ctx, caller, { id: task.id, fence: task.attempt });
      done++;
    }
  } finally {
    undo();
  }
  const wall = clock() - start;
  await ctx.bus.close();
  const sql = [...stats.values()].reduce((x, s) => x + s.ms, 0);
  const rows = [...stats.entries()].sort((x, y) => y[1].ms - x[1].ms).map(([cat, s]) => [cat, s.calls / done, (s.ms * 1000) / done]);
  rows.push(['JS between statements inside transactions', txCount / done, (txOverhead * 1000) / done]);
  rows.push(['outside SQL: service JS, awaits, validation', 0, ((wall - sql - txOverhead) * 1000) / done]);
  profiles.push({ adapter: a.name, done, perTask: (wall * 1000) / done, rows });
}

// ---------------------------------------------------------------- (d) board
const boardRows = [];

function boardPlan() {
  const rand = rng(42);
  const labels = ['backend', 'frontend', 'infra', 'docs', 'tests', 'security'];
  const caps = ['code', 'review', 'deploy', 'write'];
  return Array.from({ length: BOARD_TASKS }, (_, i) => {
    const deps = [];
    if (i >= 100 && rand() < 0.3) {
      const k = rand() < 0.7 ? 1 : 2;
      while (deps.length < k) {
        const d = Math.floor(rand() * i);
        if (!deps.includes(d)) deps.push(d);
      }
    }
    return {
      title: `board task ${i}: refactor the module and update the tests`,
      priority: PRIORITIES[Math.floor(rand() * PRIORITIES.length)],
      deps,
      labels: rand() < 0.6 ? [labels[Math.floor(rand() * labels.length)]] : [],
      requires: rand() < 0.3 ? [caps[Math.floor(rand() * caps.length)]] : [],
      age: Math.floor(rand() * 86_400_000),
    };
  });
}

function cliEnv(a, home) {
  const env = { ...process.env, HOME: home, XDG_DATA_HOME: join(home, 'data'), XDG_CONFIG_HOME: join(home, 'config') };
  for (const key of Object.keys(env)) if (key.startsWith('SOS_')) delete env[key];
  return { ...env, ...a.cliEnv };
}

function timed(args, env) {
  const s = clock();
  const r = spawnSync(process.execPath, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const t = clock() - s;
  if (r.status !== 0) throw new Error(`${args.join(' ')} exited ${r.status}: ${r.stderr}`);
  return { t, out: String(r.stdout) };
}

async function boardBench(a) {
  const project = 'board';
  await a.store.projects.create(project);
  const plan = boardPlan();
  await a.seedBoard(project, plan);
  const ready = plan.filter((t) => t.deps.length === 0).length;
  const ctx = { store: a.store, bus: await sos.openBus({ redisUrl: undefined, maxLen: 100_000 }, a.store), maxTextBytes: 65_536 };
  const caller = { project, agent: null, role: 'operator', via: 'local' };
  const boardSql = await capture(a.store, (s) => /unblocks/.test(s), () => sos.board(ctx, caller, {}));
  const first = await sos.board(ctx, caller, {});
  const svc = [];
  const raw = [];
  for (let i = 0; i < 3; i++) {
    await sos.board(ctx, caller, {});
    await a.raw(boardSql, [project, Date.now(), 50]);
  }
  for (let i = 0; i < BOARD_CALLS; i++) {
    let s = clock();
    const rows = await a.raw(boardSql, [project, Date.now(), 50]);
    raw.push(clock() - s);
    if (rows.length !== 50) throw new Error(`raw board returned ${rows.length} rows`);
    s = clock();
    await sos.board(ctx, caller, {});
    svc.push(clock() - s);
  }
  await ctx.bus.close();
  const home = mkdtempSync(join(dir, 'home-'));
  const env = cliEnv(a, home);
  const cli = [];
  const node = [];
  const args = [BIN, 'tasks', 'board', '--db', a.target, '--project', project];
  const check = timed(args, env);
  if (!check.out.includes(first[0].id)) throw new Error(`sos tasks board did not list ${first[0].id}:\n${check.out.slice(0, 500)}`);
  timed(['-e', '0'], env);
  for (let i = 0; i < CLI_RUNS; i++) {
    node.push(timed(['-e', '0'], env).t);
    cli.push(timed(args, env).t);
  }
  const unblocks = Math.max(...first.map((t) => t.unblocks));
  const note = `${int(BOARD_TASKS)} open, ${int(ready)} ready; top 50 shown, max unblocks ${unblocks}`;
  boardRows.push([a.name, 'board() p50', ms(pct(svc, 50)), ms(pct(raw, 50)), (pct(svc, 50) / pct(raw, 50)).toFixed(2), note]);
  boardRows.push([a.name, 'board() p95', ms(pct(svc, 95)), ms(pct(raw, 95)), (pct(svc, 95) / pct(raw, 95)).toFixed(2), `${BOARD_CALLS} calls, interleaved with the raw SELECT`]);
  boardRows.push([
    a.name,
    '`sos tasks board` CLI p50',
    ms(pct(cli, 50)),
    `${ms(pct(node, 50))} (node -e 0)`,
    (pct(cli, 50) / pct(node, 50)).toFixed(2),
    `${CLI_RUNS} runs, min ${ms(Math.min(...cli))} max ${ms(Math.max(...cli))}`,
  ]);
  if (unblocks === 0) throw new Error('board: no task unblocks anything; the dependency seeding is wrong');
}

// ---------------------------------------------------------------- run
const adapters = [];
let boss;
let bossVersion;
try {
  if (only !== 'postgres') adapters.push(['sqlite', openSqlite]);
  if (only !== 'sqlite') adapters.push(['postgres', openPostgres]);
  for (const [name, open] of adapters) {
    const a = await open();
    try {
      if (name === 'postgres') {
        boss = await openBoss();
        bossVersion = boss.version;
      }
      const { project, claimSql } = await claims(a, name === 'postgres' ? boss : null);
      log(`${name}: profiling one in-process worker`);
      await profile(a, project);
      if (a.walFrames) await a.walFrames(project, claimSql);
      log(`${name}: board`);
      await boardBench(a);
    } finally {
      await a.close();
      if (boss) await boss.close();
      boss = undefined;
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}

// ---------------------------------------------------------------- report
function print(headers, rows) {
  const widths = headers.map((_, c) => Math.max(...[headers, ...rows].map((x) => String(x[c]).length)));
  const line = (x) => x.map((v, c) => (c > 0 && /^[\d.,]+( ms| µs|\/s)?$/.test(String(v)) ? String(v).padStart(widths[c]) : String(v).padEnd(widths[c]))).join('  ').trimEnd();
  console.log(line(headers));
  for (const x of rows) console.log(line(x));
}

console.log(
  `tasks benchmark: Node ${process.version}, ${cpus().length} CPUs; drain ${int(SQLITE_N)} tasks (sqlite) / ${int(PG_N)} (postgres) per run${
    bossVersion ? `; pg-boss ${bossVersion}` : ''
  }`,
);
console.log('rate = claims+completes per second, first worker start to last worker done; ×raw = this rate / raw rate at the same process count\n');
print(
  ['adapter', 'procs', 'system', 'rate', '×raw', 'sos/pg-boss', 'claimed', 'duplicates', 'left', 'per-proc min/max', 'op p99 / max', 'busy retries'],
  claimRows.map((r) => [
    r.adapter,
    r.w,
    r.system,
    `${int(r.rate)}/s`,
    r.vsRaw.toFixed(2),
    r.system === 'sos' && r.vsBoss !== undefined ? r.vsBoss.toFixed(2) : '',
    `${r.claimed}/${r.n}`,
    `duplicates: ${r.duplicates}`,
    r.left,
    r.w > 1 ? `${Math.min(...r.counts)}/${Math.max(...r.counts)}` : '',
    `${ms(r.p99)} / ${ms(r.max)}`,
    r.retries,
  ]),
);
for (const r of claimRows.filter((x) => x.w === 4)) console.log(`  split, ${r.adapter} ${r.system} × 4: ${r.counts.join(' / ')}`);

for (const p of profiles) {
  console.log(`\nwhere one sos claim+complete goes, ${p.adapter}: one in-process worker, ${int(p.done)} tasks, ${int(p.perTask)} µs per task`);
  print(
    ['part', 'calls/task', 'µs/task', 'share'],
    p.rows.map(([cat, calls, us]) => [cat, calls ? calls.toFixed(1) : '', `${int(us)} µs`, `${((us / p.perTask) * 100).toFixed(0)}%`]),
  );
}

for (const w of walRows) {
  console.log(`\nWAL frames (pages) written per claim+complete, sqlite, ${int(w.n)} tasks each, one in-process worker, autocheckpoint off`);
  print(
    ['system', 'frames/task', 'µs/task', '×raw frames'],
    [
      ['raw', w.raw.frames.toFixed(1), `${int(w.raw.us)} µs`, '1.00'],
      ['sos', w.sos.frames.toFixed(1), `${int(w.sos.us)} µs`, (w.sos.frames / w.raw.frames).toFixed(2)],
    ],
  );
}

console.log('\nready-work listing (board: ranking SELECT + labels/requires/deps/artifacts of the top 50)');
print(['adapter', 'measure', 'sos', 'raw primitive', 'ratio', 'notes'], boardRows);
console.log(`\ntotal ${((Date.now() - began) / 1000).toFixed(0)} s`);
