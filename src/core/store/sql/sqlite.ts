import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { type SqlDriver, SqlError, type SqlErrorKind, type SqlExecutor } from './driver.js';

export interface SqliteOptions {
  path: string;
  busyTimeoutMs: number;
  /** Create the file (and its directory) when missing; otherwise a missing file is an error. */
  create: boolean;
}

function classify(err: unknown): SqlError {
  const code = (err as { code?: string }).code ?? '';
  const message = (err as Error).message ?? String(err);
  let kind: SqlErrorKind = 'other';
  if (code === 'SQLITE_CONSTRAINT_UNIQUE' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY') kind = 'unique';
  else if (code === 'SQLITE_CONSTRAINT_FOREIGNKEY') kind = 'foreign_key';
  else if (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED')) kind = 'busy';
  else if (code === 'SQLITE_CANTOPEN') kind = 'connection';
  else if (/no such table/.test(message)) kind = 'missing';
  return new SqlError(kind, message, { cause: err });
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

  constructor(options: SqliteOptions) {
    this.location = options.path;
    try {
      if (options.create && options.path !== ':memory:')
        mkdirSync(dirname(options.path), { recursive: true });
      this.db = new Database(options.path, {
        fileMustExist: !options.create,
        timeout: options.busyTimeoutMs,
      });
    } catch (err) {
      throw classify(err);
    }
    try {
      this.db.pragma('journal_mode = WAL');
      this.db.pragma('synchronous = NORMAL');
      this.db.pragma('foreign_keys = ON');
    } catch (err) {
      this.db.close();
      throw classify(err);
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
          throw classify(err);
        }
      },
      one: async <T>(sql: string, params: readonly unknown[] = []) => {
        try {
          const { stmt, values } = prepared(sql, params);
          if (stmt.reader) return stmt.get(...values) as T | undefined;
          stmt.run(...values);
          return undefined;
        } catch (err) {
          throw classify(err);
        }
      },
      run: async (sql: string, params: readonly unknown[] = []) => {
        try {
          const { stmt, values } = prepared(sql, params);
          return stmt.run(...values).changes;
        } catch (err) {
          throw classify(err);
        }
      },
      script: async (sql: string) => {
        try {
          db.exec(sql);
        } catch (err) {
          throw classify(err);
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
        throw classify(err);
      }
      try {
        const result = await fn(this.direct);
        control.commit.run();
        return result;
      } catch (err) {
        if (this.db.inTransaction) control.rollback.run();
        throw err;
      }
    });
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
    return this.serial(async () => this.db.pragma('data_version', { simple: true }) as number);
  }

  async close(): Promise<void> {
    await this.tail;
    if (this.db.open) this.db.close();
  }
}
