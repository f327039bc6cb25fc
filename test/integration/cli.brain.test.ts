import { describe, expect, it, type TestContext } from 'vitest';
import { isolatedEnv, sos } from '../helpers/cli.js';
import { dumpDatabase } from '../helpers/dump.js';
import { ADAPTERS, type AdapterFixture, tempDir } from '../helpers/isolation.js';

/** `sos goals` and `sos brain retire|retired|unretire` through the built CLI, on SQLite and PostgreSQL. */

async function setup(ctx: TestContext, adapter: AdapterFixture) {
  const target = adapter.target(ctx);
  const env = isolatedEnv(tempDir(ctx), { ...target.env, SOS_DB: target.db });
  const run = (args: string[], extra: Record<string, string> = {}) => sos(args, { ...env, ...extra });
  expect((await run(['init'])).code).toBe(0);
  expect((await run(['agents', 'add', 'kasra'])).code).toBe(0);
  const token = (await run(['tokens', 'create', '--agent', 'kasra', '-q'])).stdout.trim();
  expect(token).toMatch(/^sos_/);
  return { run, target, token };
}

describe.each(ADAPTERS)('sos goals and sos brain on $name', (adapter) => {
  describe.skipIf(!adapter.available)(adapter.name, () => {
    it('adds, lists by priority, closes goals once, and refuses bad input with nothing written', async (ctx) => {
      const { run, target, token } = await setup(ctx, adapter);
      const a = (await run(['goals', 'add', 'ship the billing page', '--priority', 'high', '-q'])).stdout.trim();
      const b = (await run(['goals', 'add', 'keep the docs true', '-q'])).stdout.trim();
      expect(a).toMatch(/^gol_[0-9a-z]{26}$/);
      const listed = (await run(['goals', 'list', '--json'])).json<{ id: string; priority: number; status: string }[]>();
      expect(listed.map((g) => [g.id, g.priority, g.status])).toEqual([
        [a, 70, 'open'],
        [b, 50, 'open'],
      ]);
      expect((await run(['goals', 'done', a])).stdout).toBe(`goal ${a} done\n`);
      const again = await run(['goals', 'drop', a]);
      expect(again.code).toBe(2);
      expect(again.stderr).toMatch(/already done/);
      expect((await run(['goals', 'list', '-q'])).stdout.trim()).toBe(b);
      expect((await run(['goals', 'list', '--all', '--json'])).json<{ status: string }[]>().map((g) => g.status)).toEqual(['open', 'done']);
      expect((await run(['goals', 'show', 'gol_nope'])).code).toBe(2);
      expect((await run(['goals', 'show', 'gol_00000000000000000000000000'])).code).toBe(3);
      for (const bad of [['goals', 'add', '   '], ['goals', 'add', 'x', '--priority', 'urgent-ish'], ['goals', 'add', 'y'.repeat(2_001)]]) expect((await run(bad)).code, bad.join(' ').slice(0, 60)).toBe(2);
      // An agent's token reads goals but cannot add or close them.
      expect((await run(['goals', 'list', '-q'], { SOS_TOKEN: token })).stdout.trim()).toBe(b);
      expect((await run(['goals', 'add', 'mine'], { SOS_TOKEN: token })).code).toBe(6);
      expect((await run(['goals', 'drop', b], { SOS_TOKEN: token })).code).toBe(6);
      expect(((await dumpDatabase(target.db, target.env)).goals ?? []).length).toBe(2);
    });

    it('retires markers on top of the built-in ones, lists them, and removes only the project’s own', async (ctx) => {
      const { run, token } = await setup(ctx, adapter);
      const builtIn = (await run(['brain', 'retired', '--json'])).json<{ marker: string; source: string }[]>();
      expect(builtIn.map((m) => m.marker)).toEqual(['test quest', 'global quest', 'test qv quest', 'mocked extract quest', 'tc-g53', 'fk test quest', 'delete_tasks_by_pattern']);
      expect((await run(['brain', 'retire', '  Migration   QUEST '])).stdout).toBe('"migration quest" retired\n');
      expect((await run(['brain', 'retire', 'migration quest'])).code).toBe(0); // twice: still one
      expect((await run(['brain', 'retire', 'TEST QUEST'])).stdout).toBe('"test quest" is retired already (built in)\n');
      const all = (await run(['brain', 'retired', '--json'])).json<{ marker: string; source: string; createdBy: string | null }[]>();
      expect(all.filter((m) => m.source === 'project')).toEqual([expect.objectContaining({ marker: 'migration quest', createdBy: 'operator' })]);
      expect((await run(['brain', 'retire', 'ab'])).code).toBe(2);
      expect((await run(['brain', 'unretire', 'test quest'])).code).toBe(2);
      expect((await run(['brain', 'retire', 'other quest'], { SOS_TOKEN: token })).code).toBe(6);
      expect((await run(['brain', 'unretire', 'migration quest'])).code).toBe(0);
      expect((await run(['brain', 'unretire', 'migration quest'])).code).toBe(3);
      expect((await run(['brain', 'retired', '-q'])).stdout.trim().split('\n')).toHaveLength(7);
    });
  });
});
