import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { inject, type TestContext } from 'vitest';
import { openStore } from '../../src/core/store/open.js';
import type { Store } from '../../src/core/store/port.js';

/**
 * Isolation per test: a temp directory, a SQLite file in it, a PostgreSQL schema
 * named from the test; all removed when the test passes and kept (and printed) when it fails.
 */

export const services = inject('services');

function failed(ctx: TestContext): boolean {
  return ctx.task.result?.state === 'fail' || (ctx.task.result?.errors?.length ?? 0) > 0;
}

function slugOf(ctx: TestContext): string {
  return ctx.task.name
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '_')
    .replace(/^_+|_+$/g, '')
    .slice(0, 32);
}

export function tempDir(ctx: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'sos-test-'));
  ctx.onTestFinished(() => {
    if (failed(ctx)) console.warn(`kept ${dir} for the failed test "${ctx.task.name}"`);
    else rmSync(dir, { recursive: true, force: true });
  });
  return dir;
}

/** A schema name unique to this test: `t_<test name>_<random>`. */
export function pgSchemaFor(ctx: TestContext): string {
  const schema = `t_${slugOf(ctx)}_${Math.random().toString(36).slice(2, 8)}`.slice(0, 63);
  ctx.onTestFinished(async () => {
    if (failed(ctx)) {
      console.warn(`kept PostgreSQL schema ${schema} for the failed test "${ctx.task.name}"`);
      return;
    }
    const client = new pg.Client({ connectionString: services.postgresUrl });
    await client.connect();
    try {
      await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    } finally {
      await client.end();
    }
  });
  return schema;
}

export type AdapterName = 'sqlite' | 'postgres';

export interface AdapterFixture {
  name: AdapterName;
  /** True when the backend is reachable; false skips (outside CI; CI fails in global setup). */
  available: boolean;
  /** A fresh, migrated Store private to this test, closed when the test ends. */
  open(ctx: TestContext, options?: { migrate?: boolean }): Promise<Store>;
  /**
   * Whether several handles in ONE process may write at once. better-sqlite3 is synchronous, so a
   * second handle waiting on the lock blocks the thread the first needs to finish: SQLite gets one
   * handle per process, and its concurrency is tested across processes instead.
   */
  inProcessConcurrency: boolean;
  /** `n` separate handles (connections) on one fresh, unmigrated database private to this test. */
  handles(ctx: TestContext, n: number): Promise<Store[]>;
  /** The SOS_DB value and extra env for running the CLI against a private database. */
  target(ctx: TestContext): { db: string; env: Record<string, string> };
}

export const ADAPTERS: AdapterFixture[] = [
  {
    name: 'sqlite',
    available: true,
    inProcessConcurrency: false,
    target: (ctx) => ({ db: join(tempDir(ctx), 'sos.db'), env: {} }),
    async open(ctx, options = {}) {
      const [store] = await this.handles(ctx, 1);
      if (options.migrate !== false) await store!.migrate();
      return store!;
    },
    async handles(ctx, n) {
      const path = join(tempDir(ctx), 'sos.db');
      const stores: Store[] = [];
      for (let i = 0; i < n; i++) {
        const store = await openStore({
          target: { dialect: 'sqlite', path },
          pgSchema: 'sos',
          busyTimeoutMs: 5_000,
          create: true,
        });
        ctx.onTestFinished(() => store.close());
        stores.push(store);
      }
      return stores;
    },
  },
  {
    name: 'postgres',
    available: services.postgres !== null,
    inProcessConcurrency: true,
    target: (ctx) => ({ db: services.postgresUrl, env: { SOS_PG_SCHEMA: pgSchemaFor(ctx) } }),
    async open(ctx, options = {}) {
      const [store] = await this.handles(ctx, 1);
      if (options.migrate !== false) await store!.migrate();
      return store!;
    },
    async handles(ctx, n) {
      const schema = pgSchemaFor(ctx);
      const stores: Store[] = [];
      for (let i = 0; i < n; i++) {
        const store = await openStore({
          target: { dialect: 'postgres', url: services.postgresUrl },
          pgSchema: schema,
          busyTimeoutMs: 5_000,
        });
        ctx.onTestFinished(() => store.close());
        stores.push(store);
      }
      return stores;
    },
  },
];
