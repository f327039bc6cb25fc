import { type ChildProcess } from 'node:child_process';
import { describe, expect, it, type TestContext } from 'vitest';
import { isolatedEnv, sos, spawnSos } from '../helpers/cli.js';
import { dumpDatabase } from '../helpers/dump.js';
import { services, tempDir } from '../helpers/isolation.js';
import { redisProject } from '../helpers/redis.js';

/** The bus through the CLI, on the embedded default and on Redis. */

const BACKENDS = [
  { name: 'sqlite bus', available: true, redis: false },
  { name: 'redis bus', available: services.redis !== null, redis: true },
] as const;

async function setup(ctx: TestContext, redis: boolean) {
  const home = tempDir(ctx);
  const project = redis ? redisProject(ctx) : `p${Math.random().toString(36).slice(2, 10)}`;
  const env = isolatedEnv(home, { SOS_PROJECT: project, ...(redis ? { SOS_REDIS_URL: services.redisUrl } : {}) });
  const run = (args: string[], extra: Record<string, string> = {}, input?: string) =>
    sos(args, { ...env, ...extra }, input === undefined ? {} : { input });
  expect((await run(['init'])).code).toBe(0);
  for (const [name, role] of [
    ['kasra', 'coordinator'],
    ['codex', 'worker'],
    ['gemini', 'worker'],
  ]) {
    expect((await run(['agents', 'add', name!, '--role', role!])).code).toBe(0);
  }
  return { env, run, home, db: `${home}/data/sos/sos.db` };
}

function lines(child: ChildProcess): { lines: string[]; waitFor(n: number, ms?: number): Promise<void> } {
  const out: string[] = [];
  let buffer = '';
  child.stdout!.on('data', (d: Buffer) => {
    buffer += d.toString();
    const parts = buffer.split('\n');
    buffer = parts.pop()!;
    out.push(...parts.filter(Boolean));
  });
  return {
    lines: out,
    async waitFor(n, ms = 10_000) {
      const end = Date.now() + ms;
      while (out.length < n && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
      if (out.length < n) throw new Error(`expected ${n} lines, got ${out.length}: ${out.join('\n')}`);
    },
  };
}

describe.each(BACKENDS)('messaging commands on the $name', (backend) => {
  describe.skipIf(!backend.available)(backend.name, () => {
    it('sends, reads unread then history, acks, and shows delivery state', async (ctx) => {
      const { run } = await setup(ctx, backend.redis);
      const sent = await run(['send', 'codex', 'deploy', 'fixed', '--as', 'kasra']);
      expect(sent.code, sent.stderr).toBe(0);
      const id = sent.stdout.trim();
      expect(id).toMatch(/^msg_[0-9a-z]{26}$/);

      const inbox = await run(['inbox', '--as', 'codex', '--json']);
      expect(inbox.json()).toMatchObject({ agent: 'codex', unread: [{ id, from: 'kasra', text: 'deploy fixed', state: 'read' }], history: [] });
      expect((await run(['inbox', '--as', 'codex'])).stdout).toContain('no unread messages for codex');
      expect((await run(['inbox', '--as', 'codex', '--all'])).stdout).toContain('deploy fixed');

      const withAck = (await run(['send', 'codex', 'confirm?', '--ack', '--as', 'kasra', '--json'])).json<{ id: string; ackRequired: boolean }>();
      expect(withAck.ackRequired).toBe(true);
      expect((await run(['messages', 'pending', '--json'])).json()).toEqual([expect.objectContaining({ id: withAck.id, unacked: ['codex'], overdue: false })]);
      expect((await run(['ack', withAck.id, '--as', 'codex', '--note', 'yes'])).code).toBe(0);
      const shown = (await run(['messages', 'show', withAck.id, '--json'])).json<{ deliveries: { recipient: string; state: string }[] }>();
      expect(shown.deliveries).toEqual([{ recipient: 'codex', state: 'acked', at: expect.any(String) }]);
      const kasra = (await run(['inbox', '--as', 'kasra', '--json'])).json<{ unread: { type: string; ackFor: string; ackOk: boolean }[] }>();
      expect(kasra.unread).toEqual([expect.objectContaining({ type: 'ack', ackFor: withAck.id, ackOk: true })]);
      expect((await run(['messages', 'pending', '--json'])).json()).toEqual([]);
    });

    it('blocks on --wait-ack: 0 when acked, 4 when refused, 1 on timeout', async (ctx) => {
      const { run, env } = await setup(ctx, backend.redis);
      const timeout = await run(['send', 'codex', 'anyone?', '--wait-ack', '300ms', '--as', 'kasra']);
      expect(timeout.code).toBe(1);
      expect(timeout.stderr).toMatch(/was not acked within 300ms/);

      for (const [flag, expected] of [
        ['--ok', 0],
        ['--refuse', 4],
      ] as const) {
        const waiter = spawnSos(['send', 'codex', `decide ${flag}`, '--wait-ack', '20s', '--as', 'kasra'], env);
        const out = lines(waiter);
        const exited = new Promise<number>((r) => waiter.on('close', (c) => r(c ?? -1)));
        ctx.onTestFinished(() => {
          waiter.kill('SIGKILL');
        });
        await out.waitFor(1);
        const id = out.lines[0]!;
        // Wait until the message is there for codex, then answer it.
        let acked = await run(['ack', id, flag, '--as', 'codex']);
        for (let i = 0; acked.code === 3 && i < 50; i++) acked = await run(['ack', id, flag, '--as', 'codex']);
        expect(acked.code, acked.stderr).toBe(0);
        expect(await exited).toBe(expected);
      }
    });

    it('streams with inbox --follow and sends one message per line with --each-line', async (ctx) => {
      const { run, env } = await setup(ctx, backend.redis);
      const follower = spawnSos(['inbox', '--follow', '--json', '--as', 'codex'], env);
      const stream = lines(follower);
      const closed = new Promise<number>((r) => follower.on('close', (c) => r(c ?? -1)));
      ctx.onTestFinished(() => {
        follower.kill('SIGKILL');
      });
      await new Promise((r) => setTimeout(r, 300));
      const batch = await run(['send', 'codex', '--each-line', '--as', 'kasra'], {}, 'one\n\ntwo\nthree\n');
      expect(batch.code, batch.stderr).toBe(0);
      expect(batch.stdout.trim().split('\n')).toHaveLength(3);
      await stream.waitFor(3);
      expect(stream.lines.map((l) => JSON.parse(l).text)).toEqual(['one', 'two', 'three']);
      follower.kill('SIGINT');
      expect(await closed).toBe(0);
    });

    it('squads, broadcast, peers and heartbeat', async (ctx) => {
      const { run } = await setup(ctx, backend.redis);
      await run(['squads', 'create', 'core']);
      await run(['squads', 'join', 'core', '--agent', 'kasra']);
      await run(['squads', 'join', 'core', '--agent', 'gemini']);
      expect((await run(['send', 'squad:core', 'standup', '--as', 'kasra', '--json'])).json()).toMatchObject({ recipients: ['gemini'] });
      expect((await run(['send', 'all', 'freeze', '--as', 'kasra', '--json'])).json()).toMatchObject({ recipients: ['codex', 'gemini'] });
      expect((await run(['inbox', '--as', 'gemini', '--json'])).json<{ unread: { text: string }[] }>().unread.map((m) => m.text)).toEqual(['standup', 'freeze']);
      expect((await run(['inbox', '--as', 'codex', '--json'])).json<{ unread: { text: string }[] }>().unread.map((m) => m.text)).toEqual(['freeze']);
      expect((await run(['heartbeat', '--as', 'codex'])).code).toBe(0);
      const peers = (await run(['peers', '--json'])).json<{ name: string; online: boolean }[]>();
      expect(peers.map((p) => [p.name, p.online])).toEqual([
        ['codex', true],
        ['gemini', false],
        ['kasra', false],
      ]);
    });

    it('refuses bad input with the right exit code and writes nothing', async (ctx) => {
      const { run, db } = await setup(ctx, backend.redis);
      const before = backend.redis ? undefined : await dumpDatabase(db, {});
      const cases: [string[], number, RegExp][] = [
        [['send', 'nobody', 'hi', '--as', 'kasra'], 3, /agent "nobody" does not exist/],
        [['send', 'squad:ghost', 'hi', '--as', 'kasra'], 3, /squad "ghost" does not exist/],
        [['send', 'codex', '', '--as', 'kasra'], 2, /empty/],
        [['send', 'codex', '--as', 'kasra'], 2, /nothing to send/],
        [['send', 'codex', 'hi'], 2, /needs an agent/],
        [['send', 'codex', 'hi', '--as', 'kasra', '--priority', 'urgent'], 2, /invalid/],
        [['send', 'codex', 'hi', '--as', 'kasra', '--expires', 'soon'], 2, /invalid --expires/],
        [['send', 'codex', 'hi', '--as', 'kasra', '--bogus'], 2, /unknown option/],
        [['ack', 'msg_nope', '--as', 'codex'], 2, /invalid message id/],
        [['ack', 'msg_00000000000000000000000000', '--as', 'codex'], 3, /was not sent to codex/],
        [['messages', 'show', 'msg_00000000000000000000000000'], 3, /does not exist/],
        [['inbox', '--as', 'codex', '--limit', '0'], 2, /--limit/],
      ];
      for (const [args, code, message] of cases) {
        const result = await run(args);
        expect(result.code, args.join(' ')).toBe(code);
        expect(result.stderr, args.join(' ')).toMatch(message);
      }
      const big = await run(['send', 'codex', '--stdin', '--as', 'kasra'], {}, 'x'.repeat(70_000));
      expect(big.code).toBe(2);
      expect(big.stderr).toMatch(/70000 bytes; the limit is 65536/);
      if (before) expect(await dumpDatabase(db, {})).toEqual(before);
      expect((await run(['inbox', '--as', 'codex', '--all', '--json'])).json()).toMatchObject({ unread: [], history: [] });
    });

    it('scopes by token: sends only as itself, reads only its inbox, never another project', async (ctx) => {
      const { run } = await setup(ctx, backend.redis);
      const token = (await run(['tokens', 'create', '--agent', 'codex', '--quiet'])).stdout.trim();
      expect((await run(['send', 'kasra', 'from codex'], { SOS_TOKEN: token })).code).toBe(0);
      expect((await run(['send', 'kasra', 'as kasra', '--as', 'kasra'], { SOS_TOKEN: token })).code).toBe(6);
      expect((await run(['inbox', '--agent', 'kasra'], { SOS_TOKEN: token })).code).toBe(6);
      expect((await run(['inbox', '--project', 'other'], { SOS_TOKEN: token })).code).toBe(6);
      const mine = (await run(['inbox', '--json'], { SOS_TOKEN: token })).json<{ agent: string }>();
      expect(mine.agent).toBe('codex');
    });
  });
});

describe.skipIf(services.redis === null)('per-project Redis credentials', () => {
  it('projects create --redis-acl prints a URL that runs the bus for that project and nothing else', async (ctx) => {
    const { Redis } = await import('ioredis');
    const home = tempDir(ctx);
    const mine = redisProject(ctx);
    const theirs = redisProject(ctx);
    const env = isolatedEnv(home, { SOS_REDIS_URL: services.redisUrl });
    expect((await sos(['init'], env)).code).toBe(0);
    const created = await sos(['projects', 'create', mine, '--redis-acl', '--json'], env);
    expect(created.code, created.stderr).toBe(0);
    const { redis } = created.json<{ redis: { url: string; user: string } }>();
    expect(redis.user).toBe(`sos-${mine}`);
    expect((await sos(['projects', 'create', theirs], env)).code).toBe(0);
    for (const p of [mine, theirs]) for (const a of ['kasra', 'codex']) await sos(['agents', 'add', a, '--project', p], env);
    expect((await sos(['send', 'codex', 'theirs', '--as', 'kasra', '--project', theirs], env)).code).toBe(0);

    // The project's own bus works through the confined user.
    const confined = { ...env, SOS_REDIS_URL: redis.url, SOS_PROJECT: mine };
    expect((await sos(['send', 'codex', 'mine', '--as', 'kasra'], confined)).code).toBe(0);
    expect((await sos(['inbox', '--as', 'codex', '--json'], confined)).json<{ unread: { text: string }[] }>().unread.map((m) => m.text)).toEqual(['mine']);
    // Pointed at the other project, the same credentials are refused by Redis itself.
    const across = await sos(['inbox', '--as', 'codex', '--project', theirs], { ...confined });
    expect(across.code).toBe(6);
    // And raw commands with those credentials cannot touch the other project's keys.
    const raw = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
    await raw.connect();
    try {
      await expect(raw.xrange(`sos:stream:project:${theirs}:agent:codex`, '-', '+')).rejects.toThrow(/NOPERM/);
      await expect(raw.xadd(`sos:stream:project:${theirs}:agent:codex`, '*', 'type', 'message')).rejects.toThrow(/NOPERM/);
      await expect(raw.keys('*')).rejects.toThrow(/NOPERM/);
      expect(await raw.xlen(`sos:stream:project:${mine}:agent:codex`)).toBe(1);
    } finally {
      raw.disconnect();
    }
    expect((await sos(['projects', 'acl', mine, '--revoke'], env)).stdout).toContain('deleted');
  });
});
