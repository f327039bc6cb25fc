import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import pg from 'pg';
import { describe, expect, it, type TestContext } from 'vitest';
import { PostgresDriver } from '../../src/core/store/sql/postgres.js';
import { isolatedEnv, ROOT, sos } from '../helpers/cli.js';
import { dumpDatabase } from '../helpers/dump.js';
import { pgSchemaFor, services, tempDir } from '../helpers/isolation.js';

/**
 * Backend states map to the documented exit codes: a database locked by another process past
 * the busy timeout, or one that refuses writes, is `unavailable` (exit 5) with the file and what
 * to do, not `internal error` (exit 1); and the refused command wrote nothing.
 */

/** A SOS_DB in a directory of its own (so the read-only directory case touches nothing else), initialised, with two agents. */
async function setup(ctx: TestContext) {
  const home = tempDir(ctx);
  const dbDir = join(home, 'db');
  mkdirSync(dbDir);
  const db = join(dbDir, 'sos.db');
  const env = isolatedEnv(join(home, 'home'), { SOS_DB: db });
  const run = (args: string[], extra: Record<string, string> = {}) => sos(args, { ...env, ...extra });
  expect((await run(['init'])).code).toBe(0);
  for (const args of [['agents', 'add', 'kasra'], ['agents', 'add', 'boss', '--role', 'coordinator']]) expect((await run(args)).code).toBe(0);
  return { db, dbDir, run, dump: () => dumpDatabase(db, {}) };
}

/**
 * Closes the last read-write connection, as a finished sos process does: SQLite checkpoints and
 * removes sos.db-wal and sos.db-shm (the read-only handle of dumpDatabase leaves them behind).
 */
function settle(db: string): void {
  const handle = new Database(db, { fileMustExist: true });
  handle.prepare('SELECT COUNT(*) FROM sqlite_master').get();
  handle.close();
  expect(existsSync(`${db}-wal`) || existsSync(`${db}-shm`)).toBe(false);
}

/**
 * Another process holding SQLite's write lock: a small node script with better-sqlite3 that runs
 * BEGIN IMMEDIATE, says `held`, and rolls back when its stdin closes (or after `holdMs`).
 */
async function holdWriteLock(ctx: TestContext, db: string, holdMs = 60_000): Promise<{ release: () => Promise<void>; child: ChildProcess }> {
  const script = `
    const Database = require('better-sqlite3');
    const db = new Database(process.argv[1], { fileMustExist: true });
    db.exec('BEGIN IMMEDIATE');
    process.stdout.write('held\\n');
    const done = () => { db.exec('ROLLBACK'); db.close(); process.exit(0); };
    setTimeout(done, Number(process.argv[2]));
    process.stdin.on('end', done);
    process.stdin.resume();
  `;
  const child = spawn(process.execPath, ['-e', script, db, String(holdMs)], { cwd: ROOT, stdio: ['pipe', 'pipe', 'inherit'] });
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  ctx.onTestFinished(() => {
    if (child.exitCode === null) child.kill();
  });
  await new Promise<void>((resolve, reject) => {
    child.on('error', reject);
    child.on('exit', (code) => reject(new Error(`the lock holder exited with ${code} before taking the lock`)));
    child.stdout!.on('data', (d: Buffer) => {
      if (d.toString().includes('held')) resolve();
    });
  });
  return {
    child,
    release: async () => {
      child.stdin!.end();
      await exited;
    },
  };
}

describe('a locked SQLite database', () => {
  it('is unavailable (exit 5) with the busy timeout hint once the wait runs out, and nothing is half-written', async (ctx) => {
    const { db, run, dump } = await setup(ctx);
    const before = await dump();
    const lock = await holdWriteLock(ctx, db);
    const locked = new RegExp(`the SQLite database at ${db.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} is locked by another process \\(database is locked after the busy timeout of 250 ms\\)`);
    for (const args of [
      ['send', 'kasra', 'deploy', 'fixed', '--as', 'boss'],
      ['send', 'all', 'standup in 5', '--as', 'boss', '--ack'],
      ['tasks', 'create', 'port the parser', '--as', 'boss'],
    ]) {
      const started = Date.now();
      const r = await run(args, { SOS_BUSY_TIMEOUT_MS: '250' });
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(5);
      // It waited the busy timeout for the lock before giving up.
      expect(Date.now() - started).toBeGreaterThanOrEqual(250);
      expect(r.stderr).toMatch(locked);
      expect(r.stderr).toMatch(/hint: retry; if another process must hold the write lock longer than 250 ms, raise SOS_BUSY_TIMEOUT_MS \(busy_timeout_ms in the config file\)/);
      expect(r.stderr).not.toMatch(/internal error/);
    }
    const json = await run(['tasks', 'create', 'port the parser', '--as', 'boss', '--json'], { SOS_BUSY_TIMEOUT_MS: '250' });
    expect(json.code).toBe(5);
    expect(json.json()).toMatchObject({ error: { code: 'unavailable', message: expect.stringMatching(locked), hint: expect.stringMatching(/SOS_BUSY_TIMEOUT_MS/) } });

    await lock.release();
    expect(await dump()).toEqual(before);
    // The lock was the only problem: the same command now goes through, once.
    const sent = await run(['send', 'kasra', 'deploy', 'fixed', '--as', 'boss']);
    expect(sent.code, sent.stderr).toBe(0);
    const inbox = (await run(['inbox', '--as', 'kasra', '--json'])).json<{ unread: { text: string }[] }>();
    expect(inbox.unread.map((m) => m.text)).toEqual(['deploy fixed']);
  });

  it('a lock released within the busy timeout only delays the command', async (ctx) => {
    const { db, run } = await setup(ctx);
    await holdWriteLock(ctx, db, 400);
    const started = Date.now();
    const r = await run(['tasks', 'create', 'port the parser', '--as', 'boss', '-q'], { SOS_BUSY_TIMEOUT_MS: '10000' });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim()).toMatch(/^tsk_/);
    expect(Date.now() - started).toBeLessThan(10_000);
  });
});

/**
 * Making the database read-only as a user meets it. Tests run as root, for whom file modes stop
 * nothing, so the file (or its directory) is made immutable with `chattr +i`, which stops root too
 * (ext4, xfs, btrfs, tmpfs ≥ 6.0 with CAP_LINUX_IMMUTABLE); it is what `lsattr` shows a user. Run as
 * another user, mode 0444 is the same case. Where neither works the test is skipped, saying why.
 */
function makeReadOnly(ctx: TestContext, path: string): () => void {
  let undo: () => void;
  try {
    execFileSync('chattr', ['+i', path], { stdio: 'pipe' });
    undo = () => execFileSync('chattr', ['-i', path], { stdio: 'ignore' });
  } catch (err) {
    if (process.getuid?.() === 0) {
      ctx.skip(`cannot make ${path} read-only as root here: chattr +i failed (${(err as Error).message.split('\n')[0]})`);
    }
    const directory = statSync(path).isDirectory();
    chmodSync(path, directory ? 0o555 : 0o444);
    undo = () => chmodSync(path, directory ? 0o755 : 0o644);
  }
  let undone = false;
  const once = () => {
    if (!undone) undo();
    undone = true;
  };
  // Registered after tempDir's cleanup, so it runs first (last in, first out): the files can be removed.
  ctx.onTestFinished(once);
  return once;
}

describe('a read-only SQLite database', () => {
  it('refuses writes with exit 5 naming the file (an immutable or 0444 database file)', async (ctx) => {
    const { db, dbDir, run, dump } = await setup(ctx);
    const before = await dump();
    settle(db);
    const writable = makeReadOnly(ctx, db);
    // Reading still works: SQLite opens the file read-only and creates its -wal and -shm beside it.
    expect((await run(['agents', 'list', '-q'])).code).toBe(0);
    for (const args of [
      ['send', 'kasra', 'deploy', 'fixed', '--as', 'boss'],
      ['tasks', 'create', 'port the parser', '--as', 'boss'],
    ]) {
      const r = await run(args);
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(5);
      expect(r.stderr).toContain(`sos: the SQLite database at ${db} is read-only: attempt to write a readonly database`);
      expect(r.stderr).toContain(`hint: sos writes to ${db} and creates sos.db-wal and sos.db-shm beside it: check that the file and ${dbDir} are writable, that the file is not immutable (lsattr)`);
    }
    const json = await run(['send', 'kasra', 'deploy', 'fixed', '--as', 'boss', '--json']);
    expect(json.json()).toMatchObject({ error: { code: 'unavailable', message: expect.stringContaining(db) } });
    writable();
    expect(await dump()).toEqual(before);
  });

  it('cannot open a database whose directory refuses the -wal and -shm files: exit 5 naming the file and the directory', async (ctx) => {
    const { db, dbDir, run, dump } = await setup(ctx);
    const before = await dump();
    settle(db);
    const writable = makeReadOnly(ctx, dbDir);
    for (const args of [
      ['send', 'kasra', 'deploy', 'fixed', '--as', 'boss'],
      ['agents', 'list'],
    ]) {
      const r = await run(args);
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(5);
      expect(r.stderr).toContain(`sos: cannot open the SQLite database at ${db}: unable to open database file (SQLite also creates sos.db-wal and sos.db-shm in ${dbDir}: it must be writable)`);
    }
    writable();
    expect(await dump()).toEqual(before);
  });
});

describe.skipIf(services.postgres === null)('PostgreSQL lock and read-only errors', () => {
  // The server's own errors through the driver: 55P03 (lock_timeout ran out) and 25006 (a
  // read-only transaction, what a standby or default_transaction_read_only gives every write).
  it('are unavailable, naming the server, with what to do', async (ctx) => {
    const schema = pgSchemaFor(ctx);
    const driver = new PostgresDriver({ url: services.postgresUrl, schema });
    ctx.onTestFinished(() => driver.close());
    await driver.transaction(async (tx) => {
      await driver.lockForMigration(tx);
      await tx.script('CREATE TABLE probe (x int)');
    });
    const holder = new pg.Client({ connectionString: services.postgresUrl });
    await holder.connect();
    ctx.onTestFinished(() => holder.end());
    await holder.query('BEGIN');
    await holder.query(`LOCK TABLE "${schema}".probe IN ACCESS EXCLUSIVE MODE`);

    const locked = driver.transaction(async (tx) => {
      await tx.run("SET LOCAL lock_timeout = '100ms'");
      await tx.run('INSERT INTO probe (x) VALUES (1)');
    });
    await expect(locked).rejects.toMatchObject({
      code: 'unavailable',
      kind: 'busy',
      message: expect.stringMatching(new RegExp(`^PostgreSQL at .*\\(schema ${schema}\\) is locked by another session: canceling statement due to lock timeout`)),
      hint: expect.stringMatching(/lock_timeout/),
    });
    await holder.query('ROLLBACK');

    const readOnly = driver.transaction(async (tx) => {
      await tx.run('SET TRANSACTION READ ONLY');
      await tx.run('INSERT INTO probe (x) VALUES (1)');
    });
    await expect(readOnly).rejects.toMatchObject({
      code: 'unavailable',
      kind: 'readonly',
      message: expect.stringMatching(/^PostgreSQL at .* is read-only: cannot execute INSERT in a read-only transaction/),
      hint: expect.stringMatching(/primary server/),
    });
    expect(await driver.all('SELECT x FROM probe')).toEqual([]);
  });
});
