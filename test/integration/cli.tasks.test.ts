import { describe, expect, it, type TestContext } from 'vitest';
import { isolatedEnv, sos } from '../helpers/cli.js';
import { dumpDatabase } from '../helpers/dump.js';
import { ADAPTERS, type AdapterFixture, tempDir } from '../helpers/isolation.js';

/** `sos tasks` as a user runs it, on SQLite and on PostgreSQL. */

async function setup(ctx: TestContext, adapter: AdapterFixture) {
  const target = adapter.target(ctx);
  const env = isolatedEnv(tempDir(ctx), { ...target.env, SOS_DB: target.db });
  const run = (args: string[], extra: Record<string, string> = {}, input?: string) =>
    sos(args, { ...env, ...extra }, input === undefined ? {} : { input });
  expect((await run(['init'])).code).toBe(0);
  await run(['agents', 'add', 'boss', '--role', 'coordinator']);
  await run(['agents', 'add', 'kasra', '--cap', 'code']);
  await run(['agents', 'add', 'codex', '--cap', 'code', '--cap', 'tests']);
  return { run, env, dump: () => dumpDatabase(target.db, target.env) };
}

describe.each(ADAPTERS)('sos tasks on $name', (adapter) => {
  describe.skipIf(!adapter.available)(adapter.name, () => {
    it('creates, claims with a fence, completes, and shows the history', async (ctx) => {
      const { run } = await setup(ctx, adapter);
      const base = (await run(['tasks', 'create', 'write', 'the', 'schema', '--priority', 'high', '--label', 'db', '--as', 'boss'])).stdout.trim();
      expect(base).toMatch(/^tsk_[0-9a-z]{26}$/);
      const top = (
        await run(['tasks', 'create', 'ship it', '--depends-on', base, '--requires', 'tests', '--stdin', '--as', 'boss'], {}, 'details\nhere\n')
      ).stdout.trim();
      expect((await run(['tasks', 'show', top, '--json'])).json()).toMatchObject({ status: 'queued', description: 'details\nhere', dependsOn: [base], requires: ['tests'], unmetDependencies: 1 });
      expect((await run(['tasks', 'list', '--ready', '--json'])).json<{ id: string }[]>().map((t) => t.id)).toEqual([base]);
      expect((await run(['tasks', 'board'])).stdout).toMatch(new RegExp(`${base}\\s+70\\s+1\\s`));

      const claimed = await run(['tasks', 'claim', '--as', 'kasra', '--json']);
      expect(claimed.code).toBe(0);
      expect(claimed.json()).toMatchObject({ id: base, claimant: 'kasra', fence: 1, status: 'claimed' });
      expect((await run(['tasks', 'claim', '--as', 'kasra'])).code).toBe(4); // top needs `tests`
      expect((await run(['tasks', 'start', base, '--as', 'kasra', '--fence', '1'])).code).toBe(0);
      expect((await run(['tasks', 'heartbeat', base, '--as', 'kasra', '--fence', '1', '--lease', '20m'])).code).toBe(0);
      const done = await run(['tasks', 'complete', base, '--as', 'kasra', '--fence', '1', '--result', 'migrated', '--artifact', 'db/0001.sql', '--usage', '1200']);
      expect(done.code, done.stderr).toBe(0);
      expect(done.stdout).toContain(`now ready: ${top}`);
      expect((await run(['tasks', 'claim', '--as', 'codex', '-q'])).stdout.trim()).toBe(`${top} 1`);
      const shown = (await run(['tasks', 'show', base, '--events', '--json'])).json<{ events: { event: string; actor: string }[]; artifacts: string[] }>();
      expect(shown.artifacts).toEqual(['db/0001.sql']);
      expect(shown.events.map((e) => `${e.actor}:${e.event}`)).toEqual(['boss:created', 'kasra:claimed', 'kasra:start', 'kasra:heartbeat', 'kasra:complete']);
    });

    it('maps refusals to exit codes: stale fence 4, unknown id 3, bad input 2 — writing nothing', async (ctx) => {
      const { run, dump } = await setup(ctx, adapter);
      const id = (await run(['tasks', 'create', 'x', '--as', 'boss'])).stdout.trim();
      await run(['tasks', 'claim', '--as', 'kasra']);
      const before = await dump();
      const cases: [string[], number, RegExp][] = [
        [['tasks', 'complete', id, '--as', 'codex'], 4, /held by kasra/],
        [['tasks', 'complete', id, '--as', 'kasra', '--fence', '7'], 4, /fence is stale/],
        [['tasks', 'claim', '--id', id, '--as', 'codex'], 4, /cannot be claimed twice/],
        [['tasks', 'unblock', id], 4, /it is claimed/],
        [['tasks', 'show', 'tsk_00000000000000000000000000'], 3, /does not exist/],
        [['tasks', 'show', 'nope'], 2, /invalid task id/],
        [['tasks', 'create', 'y', '--priority', 'urgent', '--as', 'boss'], 2, /priority/],
        [['tasks', 'create', 'y', '--lease', 'forever', '--as', 'boss'], 2, /invalid --lease/],
        [['tasks', 'create', 'y', '--depends-on', 'tsk_00000000000000000000000000', '--as', 'boss'], 3, /dependency/],
        [['tasks', 'create', 'y', '--squad', 'ghost', '--as', 'boss'], 3, /squad "ghost"/],
        [['tasks', 'fail', id, '--as', 'kasra'], 2, /--error/],
        [['tasks', 'list', '--status', 'sideways'], 2, /invalid status/],
      ];
      for (const [args, code, message] of cases) {
        const r = await run(args);
        expect(r.code, args.join(' ')).toBe(code);
        expect(r.stderr, args.join(' ')).toMatch(message);
      }
      const after = await dump();
      // Only the refusal counters moved.
      expect({ ...after, counters: [] }).toEqual({ ...before, counters: [] });
      expect((await run(['tasks', 'stats', '--json'])).json()).toMatchObject({ stale_fence_refused: 2, duplicate_claims_refused: 1 });
    });

    it('hands off, retries, dead-letters, redrives and cancels with --cascade', async (ctx) => {
      const { run } = await setup(ctx, adapter);
      const id = (await run(['tasks', 'create', 'migrate', '--max-attempts', '1', '--as', 'boss'])).stdout.trim();
      const child = (await run(['tasks', 'create', 'after', '--depends-on', id, '--as', 'boss'])).stdout.trim();
      await run(['tasks', 'claim', '--as', 'kasra']);
      expect((await run(['tasks', 'handoff', id, '--to', 'codex', '--summary', 'half done', '--as', 'kasra'])).code).toBe(0);
      expect((await run(['inbox', '--as', 'codex', '--json'])).json<{ unread: { type: string }[] }>().unread.map((m) => m.type)).toEqual(['task.handoff']);
      expect((await run(['tasks', 'reject', id, '--as', 'codex'])).code).toBe(2);
      expect((await run(['tasks', 'accept', id, '--as', 'codex', '--json'])).json()).toMatchObject({ claimant: 'codex', fence: 2 });
      const failed = await run(['tasks', 'fail', id, '--as', 'codex', '--fence', '2', '--error', 'disk full', '--retryable', '--json']);
      expect(failed.json()).toMatchObject({ status: 'dead' });
      expect((await run(['tasks', 'show', child, '--json'])).json()).toMatchObject({ status: 'blocked' });
      expect((await run(['tasks', 'list', '--status', 'dead', '-q'])).stdout.trim()).toBe(id);
      expect((await run(['tasks', 'redrive', id, '--attempts', '2', '--json'])).json()).toMatchObject({ status: 'queued', maxAttempts: 4 });
      expect((await run(['tasks', 'comment', id, 'retrying', 'after', 'cleanup', '--as', 'boss'])).code).toBe(0);
      const canceled = await run(['tasks', 'cancel', id, '--cascade', '--json']);
      expect(canceled.json()).toMatchObject({ canceled: [id, child] });
    });

    it('is idempotent under --idempotency-key and blocks on claim --wait', async (ctx) => {
      const { run, env } = await setup(ctx, adapter);
      const a = (await run(['tasks', 'create', 'once', '--idempotency-key', 'k1', '--as', 'boss', '--json'])).json<{ id: string; replayed: boolean }>();
      const b = (await run(['tasks', 'create', 'once', '--idempotency-key', 'k1', '--as', 'boss', '--json'])).json<{ id: string; replayed: boolean }>();
      expect(b).toMatchObject({ id: a.id, replayed: true });
      expect((await run(['tasks', 'list', '-q'])).stdout.trim().split('\n')).toEqual([a.id]);
      await run(['tasks', 'claim', '--as', 'kasra']);
      const waiter = sos(['tasks', 'claim', '--as', 'codex', '--wait', '15s', '--json'], env);
      await new Promise((r) => setTimeout(r, 400));
      const late = (await run(['tasks', 'create', 'late arrival', '--as', 'boss'])).stdout.trim();
      const got = await waiter;
      expect(got.code, got.stderr).toBe(0);
      expect(got.json()).toMatchObject({ id: late, claimant: 'codex' });
    });
  });
});
