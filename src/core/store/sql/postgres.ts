import { createHash } from 'node:crypto';
import pg from 'pg';
import { redactUrl, type SqlDriver, SqlError, type SqlErrorKind, type SqlExecutor } from './driver.js';

export interface PostgresOptions {
  url: string;
  /** The schema that holds this installation; every connection's search_path points at it. */
  schema: string;
  poolSize?: number;
}

const CONNECTION_CODES = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ECONNRESET',
  '3D000',
  '28P01',
  '28000',
  '53300', // too_many_connections
  '57P01', // admin_shutdown
  '57P02', // crash_shutdown
  '57P03', // cannot_connect_now
]);

/**
 * The one place PostgreSQL's error codes are read. A lock wait that ran out (55P03
 * lock_not_available, from lock_timeout or NOWAIT), a deadlock or serialization failure, a
 * read-only server or transaction (25006: a standby, default_transaction_read_only) and an
 * unreachable server are the backend's state, `unavailable` (exit 5), naming the server.
 */
function classify(err: unknown, location: string): SqlError {
  if (err instanceof SqlError) return err;
  const code = String((err as { code?: string }).code ?? '');
  const raw = (err as Error).message || String(err);
  let kind: SqlErrorKind = 'other';
  if (code === '23505') kind = 'unique';
  else if (code === '23503') kind = 'foreign_key';
  else if (code === '55P03') {
    return new SqlError('busy', `PostgreSQL at ${location} is locked by another session: ${raw}`, {
      hint: 'retry; the lock wait is bounded by lock_timeout (a PostgreSQL setting of the server, database or role)',
      cause: err,
    });
  } else if (code === '40P01' || code === '40001') {
    return new SqlError('busy', `PostgreSQL at ${location} refused the transaction in a conflict with another one: ${raw}`, { hint: 'retry', cause: err });
  } else if (code === '25006') {
    return new SqlError('readonly', `PostgreSQL at ${location} is read-only: ${raw}`, {
      hint: 'point SOS_DB at the primary server (not a standby), or turn default_transaction_read_only off for this database or role',
      cause: err,
    });
  } else if (code === '42P01') kind = 'missing';
  else if (CONNECTION_CODES.has(code) || /timeout exceeded when trying to connect|Connection terminated/i.test(raw)) {
    return new SqlError('connection', `cannot reach PostgreSQL at ${location}: ${raw}`, {
      hint: 'check that the server is running and that SOS_DB names it, with the right user and password',
      cause: err,
    });
  }
  return new SqlError(kind, raw, { cause: err });
}

const NAMES = new Map<string, string>();

/**
 * Parameterised statements are named, so each connection parses and plans them once (the claim
 * statement spends most of its time in planning when sent unnamed). Scripts and statements
 * without parameters (BEGIN, COMMIT) go as plain queries.
 */
function statement(sql: string, params: readonly unknown[]): pg.QueryConfig {
  if (params.length === 0) return { text: sql };
  let name = NAMES.get(sql);
  if (name === undefined) {
    name = `sos_${createHash('sha1').update(sql).digest('hex').slice(0, 16)}`;
    NAMES.set(sql, name);
  }
  return { name, text: sql, values: [...params] };
}

function executor(q: (config: pg.QueryConfig) => Promise<pg.QueryResult>, location: string): SqlExecutor {
  const query = async (sql: string, params: readonly unknown[] = []) => {
    try {
      return await q(statement(sql, params));
    } catch (err) {
      throw classify(err, location);
    }
  };
  return {
    all: async <T>(sql: string, params?: readonly unknown[]) => (await query(sql, params)).rows as T[],
    one: async <T>(sql: string, params?: readonly unknown[]) =>
      (await query(sql, params)).rows[0] as T | undefined,
    run: async (sql: string, params?: readonly unknown[]) => (await query(sql, params)).rowCount ?? 0,
    script: async (sql: string) => {
      await query(sql);
    },
  };
}

// BIGINT (epoch milliseconds, counters) comes back as a JS number, per pool, not globally.
const types = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === 20
      ? (v: string) => Number(v)
      : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
};

export class PostgresDriver implements SqlDriver {
  readonly dialect = 'postgres' as const;
  readonly location: string;
  private readonly pool: pg.Pool;
  private readonly schema: string;
  private readonly url: string;
  private readonly direct: SqlExecutor;
  private closed = false;

  constructor(options: PostgresOptions) {
    this.schema = options.schema;
    this.url = options.url;
    this.location = `${redactUrl(options.url)} (schema ${options.schema})`;
    this.pool = new pg.Pool({
      connectionString: options.url,
      max: options.poolSize ?? 4,
      connectionTimeoutMillis: 5_000,
      idleTimeoutMillis: 10_000,
      // public holds extensions (the `vector` type) on most installations.
      options: `-c search_path=${options.schema},public`,
      types,
    });
    // An idle client losing its connection must not crash the process; the next query reports it.
    this.pool.on('error', () => undefined);
    this.direct = executor((config) => this.pool.query(config), this.location);
  }

  all<T>(sql: string, params?: readonly unknown[]): Promise<T[]> {
    return this.direct.all<T>(sql, params);
  }
  one<T>(sql: string, params?: readonly unknown[]): Promise<T | undefined> {
    return this.direct.one<T>(sql, params);
  }
  run(sql: string, params?: readonly unknown[]): Promise<number> {
    return this.direct.run(sql, params);
  }
  script(sql: string): Promise<void> {
    return this.direct.script(sql);
  }

  async transaction<T>(fn: (tx: SqlExecutor) => Promise<T>): Promise<T> {
    let client: pg.PoolClient;
    try {
      client = await this.pool.connect();
    } catch (err) {
      throw classify(err, this.location);
    }
    const tx = executor((config) => client.query(config), this.location);
    try {
      await tx.run('BEGIN');
      const result = await fn(tx);
      await tx.run('COMMIT');
      return result;
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      client.release();
    }
  }

  async lockForMigration(tx: SqlExecutor): Promise<void> {
    await tx.one('SELECT pg_advisory_xact_lock(hashtext($1))', [`sos.migrate.${this.schema}`]);
    await tx.script(`CREATE SCHEMA IF NOT EXISTS "${this.schema}"`);
  }

  async namespaceExists(): Promise<boolean> {
    const row = await this.one<{ ok: number }>('SELECT 1 AS ok FROM pg_namespace WHERE nspname = $1', [
      this.schema,
    ]);
    return row !== undefined;
  }

  async listen(channel: string, onNotify: (payload: string) => void): Promise<() => Promise<void>> {
    const client = new pg.Client({ connectionString: this.url, connectionTimeoutMillis: 5_000 });
    client.on('error', () => undefined);
    try {
      await client.connect();
      client.on('notification', (n) => {
        if (n.channel === channel) onNotify(n.payload ?? '');
      });
      await client.query(`LISTEN "${channel}"`);
    } catch (err) {
      await client.end().catch(() => undefined);
      throw classify(err, this.location);
    }
    let stopped = false;
    return async () => {
      if (stopped) return;
      stopped = true;
      await client.end().catch(() => undefined);
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.pool.end();
  }
}
