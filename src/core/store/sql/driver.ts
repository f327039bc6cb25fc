/**
 * The SQL port under the Store. SQL is written once with `$1, $2…` placeholders; each driver
 * adapts it. Drivers classify database errors into a few kinds so the Store can turn them into the
 * error taxonomy without knowing driver codes.
 */
import { abortableSleep } from '../../time.js';

export type Dialect = 'sqlite' | 'postgres';

export interface SqlExecutor {
  all<T>(sql: string, params?: readonly unknown[]): Promise<T[]>;
  one<T>(sql: string, params?: readonly unknown[]): Promise<T | undefined>;
  /** Returns the number of rows changed. */
  run(sql: string, params?: readonly unknown[]): Promise<number>;
  /** Runs a script of several statements without parameters (migrations). */
  script(sql: string): Promise<void>;
}

export interface SqlDriver extends SqlExecutor {
  readonly dialect: Dialect;
  /** Where the data lives, with any password removed. */
  readonly location: string;
  /** One write transaction: SQLite `BEGIN IMMEDIATE`, PostgreSQL `BEGIN`. Rolls back on throw. */
  transaction<T>(fn: (tx: SqlExecutor) => Promise<T>): Promise<T>;
  /**
   * Inside a transaction, serialises migration runs across processes and makes sure the
   * namespace exists (PostgreSQL: advisory lock, then `CREATE SCHEMA IF NOT EXISTS`).
   */
  lockForMigration(tx: SqlExecutor): Promise<void>;
  /** True when the namespace that holds the tables exists (PostgreSQL schema; SQLite: always). */
  namespaceExists(): Promise<boolean>;
  /**
   * A number that changes when another connection commits (SQLite `PRAGMA data_version`):
   * the cheap poll behind wake-ups where there is no push. Undefined where `listen` exists.
   */
  changeCounter?(): Promise<number>;
  /** PostgreSQL LISTEN on a dedicated connection; resolves to the function that stops it. */
  listen?(channel: string, onNotify: (payload: string) => void): Promise<() => Promise<void>>;
  close(): Promise<void>;
}

export type SqlErrorKind = 'unique' | 'foreign_key' | 'busy' | 'connection' | 'missing' | 'other';

export class SqlError extends Error {
  constructor(
    readonly kind: SqlErrorKind,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'SqlError';
  }
}

/** Removes the password from a connection URL before it is shown anywhere. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return url;
  }
}

/**
 * Waits until the driver's change counter moves away from `from` (another connection committed),
 * reading it every `pollMs`; resolves to the new value, or null at `deadline` or on abort.
 */
export async function nextChange(
  changeCounter: () => Promise<number>,
  from: number,
  deadline: number,
  signal: AbortSignal,
  pollMs: number,
): Promise<number | null> {
  while (!signal.aborted && Date.now() < deadline) {
    await abortableSleep(Math.min(pollMs, deadline - Date.now()), signal);
    if (signal.aborted) break;
    const now = await changeCounter();
    if (now !== from) return now;
  }
  return null;
}
