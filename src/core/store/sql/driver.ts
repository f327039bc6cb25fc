/**
 * The SQL port under the Store. SQL is written once with `$1, $2…` placeholders; each driver
 * adapts it. Drivers classify database errors into a few kinds so the Store can turn them into the
 * error taxonomy without knowing driver codes.
 */
import { type ErrorCode, SosError } from '../../errors.js';
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

/**
 * `busy`: the database is locked by another writer past the wait (SQLite busy timeout, PostgreSQL
 * lock_timeout) or a transaction lost a conflict; `readonly`: the database refuses writes (a
 * read-only file, mount or server); `connection`: it cannot be opened or reached.
 */
export type SqlErrorKind = 'unique' | 'foreign_key' | 'busy' | 'readonly' | 'connection' | 'missing' | 'other';

/** Kinds that are the backend's state, not a bug: Unavailable (exit 5) wherever they surface. */
const UNAVAILABLE_KINDS: ReadonlySet<SqlErrorKind> = new Set(['busy', 'readonly', 'connection']);

/**
 * A database error, classified by the driver (the one place driver codes are read). It is a
 * SosError itself, so one that reaches the CLI from any repository (Store, bus, tasks,
 * lifecycle) keeps its meaning: a locked, read-only or unreachable database is `unavailable`
 * (exit 5) with the driver's hint; anything else stays `internal` unless the caller translates
 * it (a `unique` clash into a Conflict, say).
 */
export class SqlError extends SosError {
  constructor(
    readonly kind: SqlErrorKind,
    message: string,
    options: { cause?: unknown; hint?: string } = {},
  ) {
    const code: ErrorCode = UNAVAILABLE_KINDS.has(kind) ? 'unavailable' : 'internal';
    super(code, message, options);
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
