import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Unavailable } from '../errors.js';
import type { MigrationStatus } from './port.js';
import type { Dialect, SqlDriver, SqlExecutor } from './sql/driver.js';

export interface MigrationFile {
  version: number;
  name: string;
  sql: string;
  checksum: string;
}

const FILE_PATTERN = /^(\d{4})_([a-z0-9_]+)\.sql$/;

/** Beside this module in the source tree; the build copies the folder beside the bundled chunk. */
function migrationsDir(dialect: Dialect): string {
  for (const rel of [`./migrations/${dialect}/`, `./chunks/migrations/${dialect}/`]) {
    const dir = fileURLToPath(new URL(rel, import.meta.url));
    if (existsSync(dir)) return dir;
  }
  throw new Unavailable(`the ${dialect} migration files are missing from this installation`, {
    hint: 'rebuild sos (`npm run build`)',
  });
}

/** Versions of the migration files this build ships (names only: no file is read). */
export function migrationVersions(dialect: Dialect): { version: number; name: string }[] {
  return readdirSync(migrationsDir(dialect))
    .sort()
    .flatMap((entry) => {
      const match = FILE_PATTERN.exec(entry);
      return match ? [{ version: Number(match[1]), name: match[2]! }] : [];
    });
}

export function loadMigrations(dialect: Dialect): MigrationFile[] {
  const dir = migrationsDir(dialect);
  const files: MigrationFile[] = [];
  for (const entry of readdirSync(dir).sort()) {
    const match = FILE_PATTERN.exec(entry);
    if (!match) continue;
    const sql = readFileSync(dir + entry, 'utf8');
    files.push({
      version: Number(match[1]),
      name: match[2]!,
      sql,
      checksum: createHash('sha256').update(sql).digest('hex').slice(0, 16),
    });
  }
  return files;
}

const CREATE_TABLE = `CREATE TABLE IF NOT EXISTS sos_migrations (
  version     INTEGER PRIMARY KEY,
  name        TEXT NOT NULL,
  checksum    TEXT NOT NULL,
  applied_at  BIGINT NOT NULL
)`;

interface AppliedRow {
  version: number;
  name: string;
  checksum: string;
  applied_at: number;
}

async function appliedRows(db: SqlExecutor): Promise<AppliedRow[]> {
  return db.all<AppliedRow>(
    'SELECT version, name, checksum, applied_at FROM sos_migrations ORDER BY version',
  );
}

/**
 * Applies every pending migration in one transaction that holds the installation's migration lock,
 * so two processes migrating at once apply each file exactly once and a failure leaves nothing half
 * done.
 */
export async function applyMigrations(driver: SqlDriver): Promise<{ applied: number[] }> {
  const files = loadMigrations(driver.dialect);
  return driver.transaction(async (tx) => {
    await driver.lockForMigration(tx);
    await tx.script(CREATE_TABLE);
    const done = new Set((await appliedRows(tx)).map((row) => row.version));
    const applied: number[] = [];
    for (const file of files) {
      if (done.has(file.version)) continue;
      await tx.script(file.sql);
      await tx.run(
        'INSERT INTO sos_migrations (version, name, checksum, applied_at) VALUES ($1, $2, $3, $4)',
        [file.version, file.name, file.checksum, Date.now()],
      );
      applied.push(file.version);
    }
    return { applied };
  });
}

export async function readMigrationStatus(driver: SqlDriver): Promise<MigrationStatus> {
  const files = loadMigrations(driver.dialect);
  let rows: AppliedRow[] = [];
  if (await driver.namespaceExists()) {
    try {
      rows = await appliedRows(driver);
    } catch (err) {
      if ((err as { kind?: string }).kind !== 'missing') throw err;
    }
  }
  const byVersion = new Map(files.map((f) => [f.version, f]));
  const appliedVersions = new Set(rows.map((r) => r.version));
  return {
    applied: rows.map((r) => ({
      version: r.version,
      name: r.name,
      checksum: r.checksum,
      appliedAt: r.applied_at,
    })),
    pending: files
      .filter((f) => !appliedVersions.has(f.version))
      .map((f) => ({ version: f.version, name: f.name })),
    drifted: rows
      .filter((r) => {
        const file = byVersion.get(r.version);
        return file !== undefined && file.checksum !== r.checksum;
      })
      .map((r) => r.version),
  };
}

/**
 * What every command checks before it runs: which versions are applied and which files are not.
 * Cheap on purpose (file names and one query; no file contents, no checksums).
 */
export async function readPendingVersions(driver: SqlDriver): Promise<{ applied: number; pending: number[] }> {
  let applied: number[] = [];
  if (await driver.namespaceExists()) {
    try {
      applied = (await driver.all<{ version: number }>('SELECT version FROM sos_migrations')).map((r) => Number(r.version));
    } catch (err) {
      if ((err as { kind?: string }).kind !== 'missing') throw err;
    }
  }
  const done = new Set(applied);
  return { applied: applied.length, pending: migrationVersions(driver.dialect).filter((m) => !done.has(m.version)).map((m) => m.version) };
}
