import { execFile } from 'node:child_process';
import type { ConfigValues } from '../config/variables.js';
import { SosError } from '../errors.js';
import { openStore, parseStoreTarget } from '../store/open.js';
import { redactUrl } from '../store/sql/driver.js';
import { redisPing } from './redis-ping.js';

/**
 * `sos doctor`: one line per check. `fail` means something required is broken (exit 1); `warn`
 * means an optional part is missing or will be needed later; `skip` means not configured.
 */
export interface CheckResult {
  name: string;
  status: 'ok' | 'warn' | 'fail' | 'skip';
  detail: string;
  hint?: string;
}

const INSTALL_SERVICES =
  'run `bash scripts/install-services.sh` from the sos checkout (as root or with sudo)';

function reason(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

export function checkNode(version: string = process.versions.node): CheckResult {
  const major = Number(version.split('.')[0]);
  return major >= 20
    ? { name: 'node', status: 'ok', detail: `Node.js ${version}` }
    : {
        name: 'node',
        status: 'fail',
        detail: `Node.js ${version} is too old`,
        hint: 'install Node.js 20 or newer',
      };
}

export async function checkDatabase(values: ConfigValues, cwd: string): Promise<CheckResult> {
  let store: Awaited<ReturnType<typeof openStore>> | undefined;
  try {
    store = await openStore({
      target: parseStoreTarget(values.db, cwd),
      pgSchema: values.pgSchema,
      busyTimeoutMs: values.busyTimeoutMs,
    });
    const status = await store.migrationStatus();
    const where = `${store.capabilities.dialect} at ${store.location}`;
    if (status.applied.length === 0) {
      return {
        name: 'database',
        status: 'fail',
        detail: `${where} is not initialised`,
        hint: 'run `sos init`',
      };
    }
    if (status.pending.length > 0) {
      return {
        name: 'database',
        status: 'fail',
        detail: `${where}: migrations ${status.pending.map((p) => p.version).join(', ')} pending`,
        hint: 'run `sos migrate`',
      };
    }
    if (status.drifted.length > 0) {
      return {
        name: 'database',
        status: 'warn',
        detail: `${where}: applied migrations ${status.drifted.join(', ')} differ from this build's files`,
        hint: 'migration files must never change once released; reinstall the matching sos version',
      };
    }
    const last = status.applied.at(-1)!;
    return { name: 'database', status: 'ok', detail: `${where}, schema version ${last.version}` };
  } catch (err) {
    const hint = err instanceof SosError ? err.hint : undefined;
    return { name: 'database', status: 'fail', detail: reason(err), ...(hint ? { hint } : {}) };
  } finally {
    await store?.close().catch(() => undefined);
  }
}

/** Stored vectors of another embedder than the configured one are invisible to recall until reindexed. */
export async function checkMemoryEmbedder(values: ConfigValues, cwd: string): Promise<CheckResult> {
  let store: Awaited<ReturnType<typeof openStore>> | undefined;
  try {
    store = await openStore({ target: parseStoreTarget(values.memoryDb ?? values.db, cwd), pgSchema: values.pgSchema, busyTimeoutMs: values.busyTimeoutMs });
    await store.assertReady();
    const { memoryOn, openEmbedder } = await import('../memory/open.js');
    const memory = await memoryOn(store);
    const embedder = await openEmbedder(values);
    const stored = await memory.embedders(values.project);
    await memory.close();
    const other = stored.filter((e) => e.embedder !== embedder.name);
    const total = stored.reduce((n, e) => n + e.count, 0);
    if (other.length === 0) return { name: 'memory', status: 'ok', detail: `${total} engrams in "${values.project}", embedder ${embedder.name}` };
    return {
      name: 'memory',
      status: 'warn',
      detail: `${other.map((e) => `${e.count} engrams embedded with ${e.embedder}`).join(', ')}; configured: ${embedder.name} (recall will not see them)`,
      hint: 'run `sos memory reindex`',
    };
  } catch (err) {
    return { name: 'memory', status: 'skip', detail: `not checked: ${reason(err)}` };
  } finally {
    await store?.close().catch(() => undefined);
  }
}

/**
 * Events whose cost is unknown (their model was unpriced when recorded), in every project: a
 * warning naming the models, since reports and budgets leave them out. A model the table in
 * force (with SOS_PRICES) now prices needs only `sos usage recompute`.
 */
export async function checkPrices(values: ConfigValues, cwd: string): Promise<CheckResult> {
  const { loadPrices, findPrice } = await import('../economy/prices.js');
  let table: ReturnType<typeof loadPrices>;
  try {
    table = loadPrices(values.prices);
  } catch (err) {
    const hint = err instanceof SosError ? err.hint : undefined;
    return { name: 'prices', status: 'fail', detail: reason(err), ...(hint ? { hint } : {}) };
  }
  let store: Awaited<ReturnType<typeof openStore>> | undefined;
  try {
    store = await openStore({ target: parseStoreTarget(values.db, cwd), pgSchema: values.pgSchema, busyTimeoutMs: values.busyTimeoutMs });
    await store.assertReady();
    const { unpricedEvents, unknownCostLine } = await import('../economy/cost.js');
    const { events, unpriced } = await unpricedEvents(store.sql);
    if (unpriced.length === 0) {
      const what = events === 0 ? 'no usage recorded yet' : `all ${events.toLocaleString('en-US')} usage event${events === 1 ? '' : 's'} priced`;
      return { name: 'prices', status: 'ok', detail: `prices ${table.version}: ${what}` };
    }
    const missing = unpriced.filter((u) => findPrice(table, u.model) === undefined);
    const stale = unpriced.filter((u) => findPrice(table, u.model) !== undefined);
    const projects = (rows: typeof unpriced) => [...new Set(rows.map((u) => u.project))];
    const recompute = (rows: typeof unpriced) => projects(rows).map((p) => `\`sos usage recompute --project ${p}\``).join(', ');
    const list = (rows: typeof unpriced) => rows.map((u) => `${unknownCostLine(u.events, u.model)} (project ${u.project})`).join('; ');
    const parts = [
      ...(missing.length ? [`${list(missing)}: not in the price table`] : []),
      ...(stale.length ? [`${list(stale)}: priced now, not yet re-priced`] : []),
    ];
    return {
      name: 'prices',
      status: 'warn',
      detail: parts.join('; '),
      hint: missing.length
        ? `add ${[...new Set(missing.map((u) => u.model))].join(', ')} to a price file named by SOS_PRICES (see \`sos usage prices\`), then run ${recompute(unpriced)}`
        : `run ${recompute(stale)}`,
    };
  } catch (err) {
    return { name: 'prices', status: 'skip', detail: `not checked: ${reason(err)}` };
  } finally {
    await store?.close().catch(() => undefined);
  }
}

export async function checkRedis(url: string | undefined): Promise<CheckResult> {
  if (!url)
    return { name: 'redis', status: 'skip', detail: 'not configured: the bus uses the Store database' };
  try {
    const reply = await redisPing(url);
    return { name: 'redis', status: 'ok', detail: `${redactUrl(url)} answered ${reply}` };
  } catch (err) {
    return {
      name: 'redis',
      status: 'fail',
      detail: `${redactUrl(url)}: ${reason(err)}`,
      hint: INSTALL_SERVICES,
    };
  }
}

/** Reachability of every configured PostgreSQL URL, and whether pgvector can be used there. */
export async function checkPostgres(urls: string[]): Promise<CheckResult[]> {
  if (urls.length === 0) return [{ name: 'postgres', status: 'skip', detail: 'not configured' }];
  const { default: pg } = await import('pg');
  const results: CheckResult[] = [];
  for (const url of [...new Set(urls)]) {
    const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3_000 });
    try {
      await client.connect();
      const version = await client.query<{ v: string }>("SELECT current_setting('server_version') AS v");
      results.push({
        name: 'postgres',
        status: 'ok',
        detail: `${redactUrl(url)}: PostgreSQL ${version.rows[0]?.v}`,
      });
      const vector = await client.query<{ default_version: string; installed_version: string | null }>(
        "SELECT default_version, installed_version FROM pg_available_extensions WHERE name = 'vector'",
      );
      const row = vector.rows[0];
      results.push(
        row
          ? {
              name: 'pgvector',
              status: 'ok',
              detail: `vector ${row.default_version} available${row.installed_version ? `, ${row.installed_version} installed` : ''}`,
            }
          : {
              name: 'pgvector',
              status: 'warn',
              detail:
                'the vector extension is not installed on this server (memory on PostgreSQL will need it)',
              hint: INSTALL_SERVICES,
            },
      );
    } catch (err) {
      results.push({
        name: 'postgres',
        status: 'fail',
        detail: `${redactUrl(url)}: ${reason(err)}`,
        hint: INSTALL_SERVICES,
      });
    } finally {
      await client.end().catch(() => undefined);
    }
  }
  return results;
}

export function checkTmux(): Promise<CheckResult> {
  return new Promise((resolve) => {
    execFile('tmux', ['-V'], { timeout: 3_000 }, (err, stdout) => {
      if (err) {
        resolve({
          name: 'tmux',
          status: 'warn',
          detail: 'tmux not found: agents in tmux sessions cannot be supervised',
          hint: 'apt-get install tmux',
        });
      } else resolve({ name: 'tmux', status: 'ok', detail: stdout.trim() });
    });
  });
}

export async function runChecks(values: ConfigValues, cwd: string): Promise<CheckResult[]> {
  const postgresUrls = [values.db, values.memoryDb].filter(
    (v): v is string => typeof v === 'string' && /^postgres(ql)?:\/\//.test(v),
  );
  const [database, redis, postgres, tmux] = await Promise.all([
    checkDatabase(values, cwd),
    checkRedis(values.redisUrl),
    checkPostgres(postgresUrls),
    checkTmux(),
  ]);
  const after = database.status === 'fail' ? [] : [await checkMemoryEmbedder(values, cwd), await checkPrices(values, cwd)];
  return [checkNode(), database, ...after, redis, ...postgres, tmux];
}
