import Database from 'better-sqlite3';
import { Redis } from 'ioredis';
import pg from 'pg';
import { describe, expect, it, type TestContext } from 'vitest';
import { isolatedEnv, sos, type SosResult } from '../helpers/cli.js';
import { ADAPTERS, services, tempDir } from '../helpers/isolation.js';
import { redisProject } from '../helpers/redis.js';
import { HOSTILE, UNSAFE_OUTPUT } from '../fixtures/hostile.js';

/**
 * A hostile agent's text through every input path of the CLI and out of every human output path,
 * on both Store adapters and on the Redis bus: no control, C1 or bidi character reaches the
 * terminal, `--json` gives back exactly what was stored, NUL and out-of-range values are refused
 * with nothing written, and one unreadable stored row never costs the rest of an inbox.
 */

const BACKENDS = [
  { name: 'sqlite', adapter: ADAPTERS[0]!, redis: false, available: true },
  { name: 'postgres', adapter: ADAPTERS[1]!, redis: false, available: ADAPTERS[1]!.available },
  { name: 'sqlite + redis bus', adapter: ADAPTERS[0]!, redis: true, available: services.redis !== null },
] as const;

type Backend = (typeof BACKENDS)[number];

async function world(ctx: TestContext, backend: Backend) {
  const target = backend.adapter.target(ctx);
  const project = backend.redis ? redisProject(ctx) : 'default';
  const env = isolatedEnv(tempDir(ctx), {
    ...target.env,
    SOS_DB: target.db,
    SOS_PROJECT: project,
    ...(backend.redis ? { SOS_REDIS_URL: services.redisUrl } : {}),
  });
  const run = (args: string[], input?: string) => sos(args, env, input === undefined ? {} : { input });
  const ok = async (args: string[], input?: string) => {
    const r = await run(args, input);
    expect(r.code, `sos ${args.join(' ').slice(0, 200)}: ${r.stderr}`).toBe(0);
    return r;
  };
  await ok(['init', ...(backend.redis ? ['--project', project] : [])]);
  await ok(['agents', 'add', 'kasra', '--role', 'coordinator']);
  await ok(['agents', 'add', 'codex', '--cap', 'code']);
  return { run, ok, target, project, env };
}

/** Neither stream carries a byte a terminal would obey. */
function clean(r: SosResult, what: string): void {
  expect(r.stdout, `${what}: stdout`).not.toMatch(UNSAFE_OUTPUT);
  expect(r.stderr, `${what}: stderr`).not.toMatch(UNSAFE_OUTPUT);
}

/** What a string becomes once written to a pipe as UTF-8 (a lone surrogate becomes U+FFFD). */
const asSent = (text: string) => Buffer.from(text, 'utf8').toString('utf8');

const ENTRIES = Object.entries(HOSTILE);

describe.each(BACKENDS)('hostile input on $name', (backend) => {
  describe.skipIf(!backend.available)(backend.name, () => {
    it('messages: every human view is neutralised, --json round-trips exactly', async (ctx) => {
      const w = await world(ctx, backend);
      const ids: string[] = [];
      for (const [, text] of ENTRIES) ids.push((await w.ok(['send', 'codex', '--stdin', '--as', 'kasra', '-q'], text)).stdout.trim());
      // From the command line too (argv cannot hold NUL; everything else goes).
      ids.push((await w.ok(['send', 'codex', HOSTILE['OSC 52 clipboard']!, '--as', 'kasra', '-q'])).stdout.trim());

      const human = await w.ok(['inbox', '--as', 'codex', '--limit', '100']);
      clean(human, 'inbox');
      expect(human.stdout).toContain('\\x1b]0;pwned\\x07');
      expect(human.stdout).toContain('\\u202etxt.exe');
      clean(await w.ok(['inbox', '--as', 'codex', '--all']), 'inbox --all');
      for (const id of ids.slice(0, 5)) clean(await w.ok(['messages', 'show', id]), 'messages show');

      const json = (await w.ok(['inbox', '--as', 'codex', '--all', '--json', '--limit', '100'])).json<{ history: { id: string; text: string }[] }>();
      const byId = new Map(json.history.map((m) => [m.id, m.text]));
      ENTRIES.forEach(([name, text], i) => expect(byId.get(ids[i]!), name).toBe(asSent(text)));
    });

    it('tasks, memory and agents: titles, texts and start commands are neutralised in every view', async (ctx) => {
      const w = await world(ctx, backend);
      const title = HOSTILE['CSI clear + home']!;
      const id = (await w.ok(['tasks', 'create', title, '--stdin', '--as', 'kasra', '-q'], HOSTILE['OSC 8 link']!)).stdout.trim();
      for (const args of [['tasks', 'list'], ['tasks', 'board'], ['tasks', 'show', id, '--events']]) clean(await w.ok(args), args.join(' '));
      expect((await w.ok(['tasks', 'show', id, '--json'])).json<{ title: string; description: string }>()).toMatchObject({ title, description: HOSTILE['OSC 8 link'] });

      const text = `the deploy key is in ${HOSTILE['RLO override']} ${HOSTILE['OSC 0 title']}`;
      await w.ok(['memory', 'remember', '--stdin', '--as', 'kasra'], text);
      const recall = await w.ok(['memory', 'recall', 'deploy', 'key', '--as', 'codex']);
      clean(recall, 'memory recall');
      expect(recall.stdout).toContain('\\u202e');
      clean(await w.ok(['memory', 'context', 'codex']), 'memory context');
      clean(await w.ok(['memory', 'list']), 'memory list');
      const recalled = (await w.ok(['memory', 'recall', 'deploy', 'key', '--as', 'codex', '--json'])).json<{ text: string }[] | { results: { text: string }[] }>();
      const texts = (Array.isArray(recalled) ? recalled : recalled.results).map((r) => r.text);
      expect(texts).toContain(text);

      await w.ok(['agents', 'add', 'evil', '--start-cmd', `claude ${HOSTILE['OSC 52 clipboard']}`, '--session', 'tmux:evil']);
      for (const args of [['agents', 'show', 'evil'], ['agents', 'list']]) clean(await w.ok(args), args.join(' '));
    });

    it('errors that quote hostile or huge input are neutralised and cut short', async (ctx) => {
      const w = await world(ctx, backend);
      const bad = await w.run(['send', `x${HOSTILE['OSC 0 title']}`, 'hi', '--as', 'kasra']);
      expect(bad.code).toBe(2);
      clean(bad, 'bad agent name');
      expect(bad.stderr).toMatch(/invalid agent name/);
      const huge = await w.run(['send', 'codex', 'hi', '--expires', `${'9'.repeat(100_000)}d`, '--as', 'kasra']);
      expect(huge.code).toBe(2);
      expect(huge.stderr.length).toBeLessThan(600);
      const json = await w.run(['send', `x${'\x1b'.repeat(10_000)}`, 'hi', '--as', 'kasra', '--json']);
      expect(json.code).toBe(2);
      expect(json.stdout.length).toBeLessThan(3_000);
      expect(JSON.parse(json.stdout)).toMatchObject({ error: { code: 'usage' } });
    });

    it('refuses NUL in message, memory and task text with exit 2, and writes nothing', async (ctx) => {
      const w = await world(ctx, backend);
      for (const [args, what] of [
        [['send', 'codex', '--stdin', '--as', 'kasra'], 'the message'],
        [['memory', 'remember', '--stdin', '--as', 'kasra'], 'the memory'],
        [['tasks', 'create', 'a title', '--stdin', '--as', 'kasra'], 'the description'],
      ] as const) {
        const r = await w.run([...args], 'before\0after');
        expect(r.code, args.join(' ')).toBe(2);
        expect(r.stderr).toContain(`${what} contains a NUL byte`);
      }
      expect((await w.ok(['inbox', '--as', 'codex', '--json'])).json<{ unread: unknown[] }>().unread).toEqual([]);
      expect((await w.ok(['tasks', 'list', '--json'])).json<unknown[]>()).toEqual([]);
      expect((await w.ok(['memory', 'list', '--json'])).json<unknown[]>()).toEqual([]);
    });

    it('bounds every duration and time: past the maximum is exit 2 with nothing written, the maximum itself is taken', async (ctx) => {
      const w = await world(ctx, backend);
      const refused: [string[], RegExp][] = [
        [['send', 'codex', 'poison', '--expires', '99999999999999d', '--as', 'kasra'], /--expires .*at most 366d/],
        [['send', 'codex', 'x', '--expires', '367d', '--as', 'kasra'], /at most 366d/],
        [['send', 'codex', 'x', '--wait-ack', '99999999999999d', '--as', 'kasra'], /--wait-ack .*at most 1d/],
        [['agents', 'park', 'codex', '--until', '100000000000000000000h'], /--until .*at most 366d/],
        [['agents', 'park', 'codex', '--until', '+275760-01-01T00:00:00Z'], /between 1970 and 9999/],
        [['tasks', 'create', 'x', '--lease', '8d', '--as', 'kasra'], /--lease/],
        [['tasks', 'claim', '--wait', '2d', '--as', 'codex'], /--wait .*at most 1d/],
        [['memory', 'recall', 'x', '--since', '99999999d', '--as', 'codex'], /--since .*at most 366d/],
      ];
      for (const [args, message] of refused) {
        const r = await w.run(args);
        expect(r.code, args.join(' ')).toBe(2);
        expect(r.stderr, args.join(' ')).toMatch(message);
      }
      expect((await w.ok(['inbox', '--as', 'codex', '--json'])).json<{ unread: unknown[] }>().unread).toEqual([]);
      expect((await w.ok(['tasks', 'list', '--json'])).json<unknown[]>()).toEqual([]);
      expect((await w.ok(['agents', 'history', 'codex', '--json'])).stdout).not.toContain('park');

      // At the bound: accepted, stored, shown.
      await w.ok(['send', 'codex', 'important', '--as', 'kasra']);
      await w.ok(['send', 'codex', 'a year from now', '--expires', '366d', '--as', 'kasra']);
      const inbox = (await w.ok(['inbox', '--as', 'codex', '--json'])).json<{ unread: { text: string; expiresAt: string | null }[] }>();
      expect(inbox.unread.map((m) => m.text)).toEqual(['important', 'a year from now']);
      expect(Date.parse(inbox.unread[1]!.expiresAt!)).toBeGreaterThan(Date.now() + 365 * 86_400_000);
    });

    it('one unreadable stored row in an inbox of 100: the other 99 are shown, it stays unread, and it is counted', async (ctx) => {
      const w = await world(ctx, backend);
      const lines = Array.from({ length: 100 }, (_, i) => `message ${i}`).join('\n');
      const ids = (await w.ok(['send', 'codex', '--each-line', '--as', 'kasra'], lines)).stdout.trim().split('\n');
      expect(ids).toHaveLength(100);
      const victim = ids[42]!;
      // A poison row written before sends were bounded: an expiry no date can hold.
      const poison = ids[7]!;
      if (backend.redis) {
        // A foreign writer's entry whose payload is not JSON and whose timestamp is not a date.
        const redis = new Redis(services.redisUrl!);
        await redis.xadd(`sos:stream:project:${w.project}:agent:codex`, '*', 'type', 'send', 'source', 'agent:kasra', 'payload', '{broken', 'timestamp', 'garbage');
        await redis.quit();
      } else if (backend.adapter.name === 'sqlite') {
        const db = new Database(w.target.db);
        db.prepare("UPDATE bus_messages SET envelope = '{\"id\": broken' WHERE id = ?").run(victim);
        db.prepare("UPDATE bus_messages SET envelope = json_set(envelope, '$.expiresAt', 8.64e18) WHERE id = ?").run(poison);
        db.close();
      } else {
        const client = new pg.Client({ connectionString: services.postgresUrl! });
        await client.connect();
        const schema = w.env.SOS_PG_SCHEMA!;
        await client.query(`UPDATE "${schema}".bus_messages SET envelope = '{"id": broken' WHERE id = $1`, [victim]);
        await client.query(`UPDATE "${schema}".bus_messages SET envelope = jsonb_set(envelope::jsonb, '{expiresAt}', '8640000000000000000')::text WHERE id = $1`, [poison]);
        await client.end();
      }

      const first = await w.run(['inbox', '--as', 'codex', '--json', '--limit', '200']);
      expect(first.code, first.stderr).toBe(0);
      const shown = first.json<{ unread: { id: string; text: string; expiresAt: string | null }[]; skipped: { id: string; reason: string }[] }>();
      if (backend.redis) {
        // Redis entries are read field by field with a fallback each: the foreign one shows, raw.
        expect(shown.unread).toHaveLength(101);
        expect(shown.unread.map((m) => m.text)).toContain('{broken');
        expect(shown.skipped).toEqual([]);
        return;
      }
      expect(shown.unread).toHaveLength(99);
      expect(shown.unread.map((m) => m.id)).not.toContain(victim);
      expect(shown.unread.find((m) => m.id === poison)).toMatchObject({ text: 'message 7', expiresAt: null });
      expect(shown.skipped).toEqual([{ id: victim, reason: 'the stored envelope is not JSON' }]);

      // Human output says so on stderr, and the row was not marked read: it is skipped again.
      const again = await w.run(['inbox', '--as', 'codex']);
      expect(again.code).toBe(0);
      expect(again.stdout).toMatch(/no unread messages/);
      expect(again.stderr).toContain(`skipped a stored message that cannot be read (${victim}`);
      const metrics = (await w.ok(['metrics', '--json'])).json<Record<string, number>>();
      expect(metrics.bus_rows_skipped).toBe(2);
      const show = await w.run(['messages', 'show', victim]);
      expect(show.code).toBe(1);
      expect(show.stderr).toMatch(/stored but cannot be read/);
      expect((await w.ok(['inbox', '--as', 'codex', '--all', '--json', '--limit', '200'])).json<{ history: unknown[] }>().history).toHaveLength(99);
    });
  });
});
