import Database from 'better-sqlite3';
import pg from 'pg';
import { services } from './isolation.js';

/**
 * Every row of every table, in a stable order: used to prove that a refused command changed
 * nothing, and that secrets never reach the database.
 */
export async function dumpDatabase(
  db: string,
  env: Record<string, string>,
): Promise<Record<string, unknown[]>> {
  const out: Record<string, unknown[]> = {};
  if (/^postgres(ql)?:\/\//.test(db)) {
    const schema = env.SOS_PG_SCHEMA ?? 'sos';
    const client = new pg.Client({ connectionString: services.postgresUrl });
    await client.connect();
    try {
      const tables = await client.query<{ table_name: string }>(
        'SELECT table_name FROM information_schema.tables WHERE table_schema = $1 ORDER BY table_name',
        [schema],
      );
      for (const { table_name } of tables.rows) {
        const rows = await client.query(`SELECT * FROM "${schema}"."${table_name}"`);
        out[table_name] = rows.rows.map((r) => JSON.stringify(r)).sort();
      }
    } finally {
      await client.end();
    }
    return out;
  }
  const handle = new Database(db, { readonly: true, fileMustExist: true });
  try {
    const tables = handle
      .prepare(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
      )
      .all() as { name: string }[];
    for (const { name } of tables) {
      out[name] = (handle.prepare(`SELECT * FROM "${name}"`).all() as unknown[])
        .map((r) => JSON.stringify(r))
        .sort();
    }
  } finally {
    handle.close();
  }
  return out;
}
