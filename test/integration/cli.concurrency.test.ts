import { describe, expect, it, type TestContext } from 'vitest';
import { isolatedEnv, type SosResult, sos, spawnSos } from '../helpers/cli.js';
import { dumpDatabase } from '../helpers/dump.js';
import { ADAPTERS, type AdapterFixture, tempDir } from '../helpers/isolation.js';

/** Several `sos` processes at once against one database: nothing applied twice, nothing lost. */

function setup(ctx: TestContext, adapter: AdapterFixture) {
  const target = adapter.target(ctx);
  const env = isolatedEnv(tempDir(ctx), { ...target.env, SOS_DB: target.db });
  return { target, env, dump: () => dumpDatabase(target.db, target.env) };
}

const codes = (results: SosResult[]) => results.map((r) => r.code);

describe.each(ADAPTERS)('concurrent sos processes on $name', (adapter) => {
  describe.skipIf(!adapter.available)(adapter.name, () => {
    it('applies each migration once when six `sos init` race on a fresh database', async (ctx) => {
      const { env, dump } = setup(ctx, adapter);
      const results = await Promise.all(Array.from({ length: 6 }, () => sos(['init', '--json'], env)));
      expect(codes(results), results.map((r) => r.stderr).join('\n')).toEqual([0, 0, 0, 0, 0, 0]);
      const applied = results.flatMap((r) => r.json<{ appliedMigrations: number[] }>().appliedMigrations);
      const created = results.filter((r) => r.json<{ projectCreated: boolean }>().projectCreated);
      const tables = await dump();
      expect(tables.sos_migrations?.length).toBeGreaterThan(0);
      // Each version applied by exactly one process, and recorded exactly once.
      expect(applied.sort()).toEqual(
        tables.sos_migrations!.map((row) => JSON.parse(row as string).version).sort(),
      );
      expect(created).toHaveLength(1);
      expect(tables.projects).toHaveLength(1);

      const rerun = await Promise.all(Array.from({ length: 3 }, () => sos(['migrate', '--json'], env)));
      expect(rerun.map((r) => r.json<{ applied: number[] }>().applied)).toEqual([[], [], []]);
    });

    it('loses no write and admits one winner when processes add agents at once', async (ctx) => {
      const { env } = setup(ctx, adapter);
      expect((await sos(['init'], env)).code).toBe(0);
      const distinct = Array.from({ length: 8 }, (_, i) =>
        sos(['agents', 'add', `worker-${i}`, '--cap', 'code'], env),
      );
      const same = Array.from({ length: 4 }, () => sos(['agents', 'add', 'kasra', '--kind', 'claude'], env));
      const [mine, theirs] = await Promise.all([Promise.all(distinct), Promise.all(same)]);
      expect(codes(mine), mine.map((r) => r.stderr).join('\n')).toEqual(Array(8).fill(0));
      expect(codes(theirs).sort()).toEqual([0, 4, 4, 4]);
      const agents = (await sos(['agents', 'list', '--json'], env)).json<
        { name: string; capabilities: string[] }[]
      >();
      expect(agents.map((a) => a.name).sort()).toEqual(
        ['kasra', ...Array.from({ length: 8 }, (_, i) => `worker-${i}`)].sort(),
      );
      expect(
        agents.filter((a) => a.name.startsWith('worker-')).every((a) => a.capabilities.join() === 'code'),
      ).toBe(true);
    });

    it('recovers cleanly when `sos init` is killed with SIGKILL mid-flight', async (ctx) => {
      const { env, dump } = setup(ctx, adapter);
      for (const delay of [5, 20, 40, 70, 110, 160]) {
        const child = spawnSos(['init'], env);
        const closed = new Promise((r) => child.on('close', r));
        await new Promise((r) => setTimeout(r, delay));
        child.kill('SIGKILL');
        await closed;
      }
      // Whatever the kills interrupted, the next run finishes the job and the state is whole.
      const after = await sos(['init', '--json'], env);
      expect(after.code, after.stderr).toBe(0);
      const status = (await sos(['migrate', '--status', '--json'], env)).json<{
        pending: unknown[];
        drifted: unknown[];
        applied: unknown[];
      }>();
      expect(status.pending).toEqual([]);
      expect(status.drifted).toEqual([]);
      const tables = await dump();
      expect(tables.projects).toHaveLength(1);
      expect(tables.sos_migrations).toHaveLength(status.applied.length);
    });
  });
});
