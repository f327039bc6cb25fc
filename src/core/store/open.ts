import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Unavailable, UsageError } from '../errors.js';
import type { Store } from './port.js';
import { type SqlDriver, SqlError } from './sql/driver.js';
import { SqlStore } from './sql-store.js';

export type StoreTarget = { dialect: 'sqlite'; path: string } | { dialect: 'postgres'; url: string };

/** `SOS_DB` forms: a file path, `sqlite:<path>`, `file:<path>`, `sqlite::memory:`, `postgres://…`. */
export function parseStoreTarget(value: string, cwd: string = process.cwd()): StoreTarget {
  if (/^postgres(ql)?:\/\//.test(value)) return { dialect: 'postgres', url: value };
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(value) && !value.startsWith('file:') && !value.startsWith('sqlite:')) {
    throw new UsageError(`unsupported database URL ${JSON.stringify(value)}`, {
      hint: 'use a SQLite file path, sqlite:<path>, or postgres://user@host:port/db',
    });
  }
  let path = value;
  if (value.startsWith('file:'))
    path = fileURLToPath(value.startsWith('file://') ? value : `file://${resolve(cwd, value.slice(5))}`);
  else if (value.startsWith('sqlite://')) path = value.slice('sqlite://'.length);
  else if (value.startsWith('sqlite:')) path = value.slice('sqlite:'.length);
  if (path === '') throw new UsageError('empty SQLite path in SOS_DB');
  return { dialect: 'sqlite', path: path === ':memory:' ? path : resolve(cwd, path) };
}

export interface OpenStoreOptions {
  target: StoreTarget;
  pgSchema: string;
  busyTimeoutMs: number;
  /** `sos init` creates a missing SQLite file; every other command refuses to. */
  create?: boolean;
}

/** Opens the Store, loading only the driver the target needs (`pg` stays unloaded for SQLite). */
export async function openStore(options: OpenStoreOptions): Promise<Store> {
  const { target } = options;
  let driver: SqlDriver;
  if (target.dialect === 'sqlite') {
    if (!options.create && target.path !== ':memory:' && !existsSync(target.path)) {
      throw new Unavailable(`no sos database at ${target.path}`, {
        hint: 'run `sos init` (or point SOS_DB / --db at an existing database)',
      });
    }
    const { SqliteDriver } = await import('./sql/sqlite.js');
    try {
      driver = new SqliteDriver({
        path: target.path,
        busyTimeoutMs: options.busyTimeoutMs,
        create: options.create ?? false,
      });
    } catch (err) {
      const reason = err instanceof SqlError ? err.message : String(err);
      // The driver's hint (the busy timeout, a read-only file) is kept.
      const hint = err instanceof SqlError ? err.hint : undefined;
      throw new Unavailable(`cannot open the SQLite database at ${target.path}: ${reason}`, { cause: err, ...(hint ? { hint } : {}) });
    }
  } else {
    const { PostgresDriver } = await import('./sql/postgres.js');
    driver = new PostgresDriver({ url: target.url, schema: options.pgSchema });
  }
  return new SqlStore(driver);
}
