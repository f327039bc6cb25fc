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
  '57P03',
]);

function classify(err: unknown): SqlError {
  if (err instanceof SqlError) return err;
  const code = String((err as { code?: string }).code ?? '');
  const message = (err as Error).message || String(err);
  let kind: SqlErrorKind = 'other';
  if (code === '23505') kind = 'unique';
  else if (code === '23503') kind = 'foreign_key';
  else if (code === '40P01' || code === '55P03' || code === '40001') kind = 'busy';
  else if (code === '42P01') kind = 'missing';
  else if (
    CONNECTION_CODES.has(code) ||
    /timeout exceeded when trying to connect|Connection terminated/i.test(message)
  ) {
    kind = 'connection';
  }
  return new SqlError(kind, message, { cause: err });
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

function executor(q: (config: pg.QueryConfig) => Promise<pg.QueryResult>): SqlExecutor {
  const query = async (sql: string, params: readonly unknown[] = []) => {
    try {
      return await q(statement(sql, params));
    } catch (err) {
      throw classify(err);
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
    this.direct = executor((config) => this.pool.query(config));
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
      throw classify(err);
    }
    const tx = executor((config) => client.query(config));
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
      throw classify(err);
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
