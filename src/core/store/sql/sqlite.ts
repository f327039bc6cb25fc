import { mkdirSync } from 'node:fs';
import { basename, dirname } from 'node:path';
import Database from 'better-sqlite3';
import { type SqlDriver, SqlError, type SqlExecutor } from './driver.js';

export interface SqliteOptions {
  path: string;
  busyTimeoutMs: number;
  /** Create the file (and its directory) when missing; otherwise a missing file is an error. */
  create: boolean;
}

/** Where a driver error happened, for messages that name the file and the setting to change. */
interface Where {
  path: string;
  busyTimeoutMs: number;
  /**
   * While the constructor opens the file: `openStore` puts "cannot open the SQLite database at
   * <path>:" in front, so the message does not name the file again.
   */
  opening: boolean;
}

/**
 * The one place SQLite's error codes are read. A locked database (another process holds the
 * write lock past the busy timeout), a read-only one (file mode, immutable file, read-only mount)
 * and one that cannot be opened are the backend's state, `unavailable` (exit 5), each with the
 * file and what to do; constraint violations keep SQLite's message for the caller to translate.
 */
function classify(err: unknown, where: Where): SqlError {
  if (err instanceof SqlError) return err;
  const code = String((err as { code?: string }).code ?? '');
  const raw = (err as Error).message ?? String(err);
  const { path, opening } = where;
  const at = opening ? '' : ` at ${path}`;
  const file = basename(path);
  const dir = dirname(path);
  if (code === 'SQLITE_CONSTRAINT_UNIQUE' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY') return new SqlError('unique', raw, { cause: err });
  if (code === 'SQLITE_CONSTRAINT_FOREIGNKEY') return new SqlError('foreign_key', raw, { cause: err });
  if (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED')) {
    return new SqlError('busy', `the SQLite database${at} is locked by another process (${raw} after the busy timeout of ${where.busyTimeoutMs} ms)`, {
      hint: `retry; if another process must hold the write lock longer than ${where.busyTimeoutMs} ms, raise SOS_BUSY_TIMEOUT_MS (busy_timeout_ms in the config file)`,
      cause: err,
    });
  }
  if (code.startsWith('SQLITE_READONLY')) {
    return new SqlError('readonly', `the SQLite database${at} is read-only: ${raw}`, {
      hint: `sos writes to ${path} and creates ${file}-wal and ${file}-shm beside it: check that the file and ${dir} are writable, that the file is not immutable (lsattr) and that the file system is not mounted read-only`,
      cause: err,
    });
  }
  if (code.startsWith('SQLITE_CANTOPEN')) {
    const message = `${raw} (SQLite also creates ${file}-wal and ${file}-shm in ${dir}: it must be writable)`;
    return new SqlError('connection', opening ? message : `cannot open the SQLite database${at}: ${message}`, {
      hint: `check the permissions of ${path} and of ${dir}, and that neither is immutable (lsattr)`,
      cause: err,
    });
  }
  return new SqlError(/no such table/.test(raw) ? 'missing' : 'other', raw, { cause: err });
}

/**
 * SQL is written with `$1, $2…`; SQLite gets plain `?` and the parameters in order of appearance,
 * so a placeholder used twice is bound twice. Prepared statements are cached by SQL text.
 */
function adapt(sql: string, params: readonly unknown[]): { text: string; values: unknown[] } {
  const values: unknown[] = [];
  const text = sql.replace(/\$(\d+)/g, (_, n: string) => {
    const value = params[Number(n) - 1];
    values.push(typeof value === 'boolean' ? (value ? 1 : 0) : value);
    return '?';
  });
  return { text, values };
}

/**
 * better-sqlite3 is synchronous; the driver keeps the async port and serialises transactions
 * with a promise chain so an awaited step inside one never interleaves with another caller.
 */
export class SqliteDriver implements SqlDriver {
  readonly dialect = 'sqlite' as const;
  readonly location: string;
  private readonly db: Database.Database;
  private tail: Promise<unknown> = Promise.resolve();
  private readonly direct: SqlExecutor;
  private readonly where: Where;

  constructor(options: SqliteOptions) {
    this.location = options.path;
    const opening: Where = { path: options.path, busyTimeoutMs: options.busyTimeoutMs, opening: true };
    const where: Where = { ...opening, opening: false };
    this.where = where;
    try {
      if (options.create && options.path !== ':memory:')
        mkdirSync(dirname(options.path), { recursive: true });
      this.db = new Database(options.path, {
        fileMustExist: !options.create,
        timeout: options.busyTimeoutMs,
      });
    } catch (err) {
      throw classify(err, opening);
    }
    try {
      this.db.pragma('journal_mode = WAL');
      // WAL + NORMAL: a commit is in the WAL before COMMIT returns, so a killed process (kill -9)
      // loses nothing committed; only an OS crash or power cut can roll back the last commits
      // (never corrupt the file), because the WAL is fsynced at checkpoints, not at every commit.
      this.db.pragma('synchronous = NORMAL');
      // Checkpoint every 1,000 WAL pages (SQLite's default, stated): larger adds little per commit
      // and makes readers search a longer WAL. After a burst, a checkpoint cuts the WAL file back
      // to 64 MiB instead of leaving it at its high-water size.
      this.db.pragma('wal_autocheckpoint = 1000');
      this.db.pragma('journal_size_limit = 67108864');
      this.db.pragma('foreign_keys = ON');
    } catch (err) {
      this.db.close();
      throw classify(err, opening);
    }
    const db = this.db;
    const cache = new Map<string, Database.Statement>();
    const prepared = (sql: string, params: readonly unknown[]) => {
      const { text, values } = adapt(sql, params);
      let stmt = cache.get(text);
      if (!stmt) {
        stmt = db.prepare(text);
        cache.set(text, stmt);
      }
      return { stmt, values };
    };
    this.direct = {
      all: async <T>(sql: string, params: readonly unknown[] = []) => {
        try {
          const { stmt, values } = prepared(sql, params);
          return stmt.all(...values) as T[];
        } catch (err) {
          throw classify(err, where);
        }
      },
      one: async <T>(sql: string, params: readonly unknown[] = []) => {
        try {
          const { stmt, values } = prepared(sql, params);
          if (stmt.reader) return stmt.get(...values) as T | undefined;
          stmt.run(...values);
          return undefined;
        } catch (err) {
          throw classify(err, where);
        }
      },
      run: async (sql: string, params: readonly unknown[] = []) => {
        try {
          const { stmt, values } = prepared(sql, params);
          return stmt.run(...values).changes;
        } catch (err) {
          throw classify(err, where);
        }
      },
      script: async (sql: string) => {
        try {
          db.exec(sql);
        } catch (err) {
          throw classify(err, where);
        }
      },
    };
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.tail.then(fn, fn);
    this.tail = next.catch(() => undefined);
    return next;
  }

  all<T>(sql: string, params?: readonly unknown[]): Promise<T[]> {
    return this.serial(() => this.direct.all<T>(sql, params));
  }
  one<T>(sql: string, params?: readonly unknown[]): Promise<T | undefined> {
    return this.serial(() => this.direct.one<T>(sql, params));
  }
  run(sql: string, params?: readonly unknown[]): Promise<number> {
    return this.serial(() => this.direct.run(sql, params));
  }
  script(sql: string): Promise<void> {
    return this.serial(() => this.direct.script(sql));
  }

  transaction<T>(fn: (tx: SqlExecutor) => Promise<T>): Promise<T> {
    return this.serial(async () => {
      const control = this.control();
      try {
        control.begin.run();
      } catch (err) {
        throw classify(err, this.where);
      }
      let result: T;
      try {
        result = await fn(this.direct);
      } catch (err) {
        this.rollback(control.rollback);
        throw err;
      }
      try {
        control.commit.run();
      } catch (err) {
        this.rollback(control.rollback);
        throw classify(err, this.where);
      }
      return result;
    });
  }

  /** Rolls back what is still open; a failing rollback never hides the error that caused it. */
  private rollback(statement: Database.Statement): void {
    try {
      if (this.db.inTransaction) statement.run();
    } catch {
      // SQLite rolls back itself when the connection closes; the first error is the one to report.
    }
  }

  private controlStatements: { begin: Database.Statement; commit: Database.Statement; rollback: Database.Statement } | undefined;

  /** BEGIN IMMEDIATE / COMMIT / ROLLBACK prepared once: they run twice per write. */
  private control() {
    this.controlStatements ??= {
      begin: this.db.prepare('BEGIN IMMEDIATE'),
      commit: this.db.prepare('COMMIT'),
      rollback: this.db.prepare('ROLLBACK'),
    };
    return this.controlStatements;
  }

  async lockForMigration(): Promise<void> {
    // BEGIN IMMEDIATE already holds SQLite's single write lock for the whole transaction.
  }

  async namespaceExists(): Promise<boolean> {
    return true;
  }

  async changeCounter(): Promise<number> {
    return this.serial(async () => {
      try {
        return this.db.pragma('data_version', { simple: true }) as number;
      } catch (err) {
        throw classify(err, this.where);
      }
    });
  }

  async close(): Promise<void> {
    await this.tail;
    if (this.db.open) this.db.close();
  }
}
