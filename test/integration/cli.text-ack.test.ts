import { randomUUID } from 'node:crypto';
import { describe, expect, it, type TestContext } from 'vitest';
import { isolatedEnv, sos } from '../helpers/cli.js';
import { services, tempDir } from '../helpers/isolation.js';
import { redisProject } from '../helpers/redis.js';

/**
 * The ack protocol written in the text, between four `sos` processes at once: 200 requests
 * tagged `[request_id:<uuid>]`, answered in ten loose forms, each recorded as one ack; the
 * unanswered ones re-sent once by the sweep, then escalated once to the coordinator.
 */

const BACKENDS = [
  { name: 'sqlite bus', available: true, redis: false },
  { name: 'redis bus', available: services.redis !== null, redis: true },
] as const;

const AGENTS = ['a0', 'a1', 'a2', 'a3'];
const PER_SENDER = 50;
/** Requests nobody answers (3 per sender): a look-alike is sent in their place. */
const unanswered = (j: number) => j % 20 === 3;

/** Ten ways a model writes `{ack_for: X, ok: …} summary`; the last two refuse. */
const FORMS: ((x: string) => string)[] = [
  (x) => `{ack_for: ${x}, ok: true} done`,
  (x) => `{"ack_for": "${x}", "ok": true} done, quoted`,
  (x) => `{'ack_for': '${x}', 'ok': true}`,
  (x) => `  {  ack_for :  ${x} ,  ok :  true  }  - spaced out`,
  (x) => `{ok: true, ack_for: ${x}} reversed`,
  (x) => `{ack_for: ${x}, ok: True}: the Python spelling`,
  (x) => `\`{ack_for: ${x}, ok: yes}\` in backticks`,
  (x) => `{ack_for: [request_id:${x}], ok: true} the tag copied whole`,
  (x) => `{ackFor: ${x}, ok: false, note: "cannot, sorry"}`,
  (x) => `{"ack-for":"${x}","ok":false} refused`,
];

interface Item {
  id: string;
  from: string;
  type: string;
  text: string;
  requestId: string | null;
  ackFor: string | null;
  ackOk: boolean | null;
  resendOf: string | null;
}

async function setup(ctx: TestContext, redis: boolean) {
  const project = redis ? redisProject(ctx) : `p${Math.random().toString(36).slice(2, 10)}`;
  const env = isolatedEnv(tempDir(ctx), { SOS_PROJECT: project, ...(redis ? { SOS_REDIS_URL: services.redisUrl } : {}) });
  const run = async (args: string[], input?: string) => {
    const r = await sos(args, env, input === undefined ? {} : { input });
    expect(r.code, `sos ${args.join(' ')}: ${r.stderr}`).toBe(0);
    return r;
  };
  await run(['init']);
  await run(['agents', 'add', 'boss', '--role', 'coordinator']);
  for (const a of AGENTS) await run(['agents', 'add', a]);
  const inbox = async (agent: string) => (await run(['inbox', '--as', agent, '--json', '--limit', '1000'])).json<{ unread: Item[] }>().unread;
  const pending = async () => (await run(['messages', 'pending', '--json'])).json<(Item & { unacked: string[]; resentAt: string | null })[]>();
  const sweep = async () => (await run(['messages', 'sweep', '--json'])).json<{ resent: { id: string }[]; escalated: { id: string; coordinators: string[] }[] }>();
  return { run, inbox, pending, sweep };
}

async function until<T>(what: string, ms: number, probe: () => Promise<T | undefined>): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

describe('the ack protocol in the text, between four processes', () => {
  it.concurrent.for(BACKENDS.filter((b) => b.available))(
    'on the $name: 200 requests acked once each in ten loose forms; the unanswered re-sent once, then escalated once',
    { timeout: 150_000 },
    async (backend, ctx) => {
      const { run, inbox, pending, sweep } = await setup(ctx, backend.redis);
      // Each ai asks a(i+1) 50 critical questions (30 s ack timeout), all four at once.
      const asked = new Map<string, string>(); // request id → sender
      const sends = AGENTS.map((from, i) => {
        const lines = Array.from({ length: PER_SENDER }, (_, j) => {
          const request = randomUUID();
          asked.set(request, from);
          return `[request_id:${request}] question ${j} from ${from}: please check shard ${j}`;
        });
        return run(['send', AGENTS[(i + 1) % 4]!, '--each-line', '--priority', 'critical', '--as', from, '--json'], `${lines.join('\n')}\n`);
      });
      const sentBy = new Map((await Promise.all(sends)).flatMap((r, i) => r.json<{ ids: string[] }>().ids.map((id) => [id, AGENTS[i]!] as const)));
      expect(sentBy.size).toBe(200);
      const waiting = await pending();
      expect(waiting).toHaveLength(200);
      expect(new Set(waiting.map((w) => w.requestId))).toEqual(new Set(asked.keys()));

      // Each agent reads its questions and answers them, four processes at once, one form after another.
      const replies = AGENTS.map(async (me) => {
        const mine = await inbox(me);
        expect(mine).toHaveLength(PER_SENDER);
        expect(mine.every((q) => asked.get(q.requestId!) === q.from)).toBe(true);
        const lines = mine.map((q, j) => {
          return unanswered(j) ? `about ${q.requestId}: {ack_for: ${q.requestId}, ok: true} is what I will send later` : FORMS[j % FORMS.length]!(q.requestId!);
        });
        await run(['send', mine[0]!.from, '--each-line', '--as', me], `${lines.join('\n')}\n`);
        return mine.filter((_, j) => unanswered(j)).map((q) => q.id);
      });
      const silent = new Set((await Promise.all(replies)).flat());
      expect(silent.size).toBe(12);

      // Every answered question is acked exactly once, with the form's ok and its summary as the note.
      for (const me of AGENTS) {
        const got = await inbox(me);
        const acks = got.filter((m) => m.type === 'ack');
        const lookalikes = got.filter((m) => m.type === 'message');
        expect(acks).toHaveLength(PER_SENDER - 3);
        expect(lookalikes).toHaveLength(3);
        expect(new Set(acks.map((a) => a.ackFor)).size).toBe(acks.length);
        expect(acks.every((a) => sentBy.get(a.ackFor!) === me && !silent.has(a.ackFor!))).toBe(true);
        expect(acks.filter((a) => a.ackOk === false).length).toBeGreaterThanOrEqual(8);
        expect(acks.map((a) => a.text)).toContain('cannot, sorry');
        expect(acks.map((a) => a.text)).toContain('the tag copied whole');
      }
      const left = await pending();
      expect(new Set(left.map((w) => w.id))).toEqual(silent);
      expect(left.every((w) => w.unacked.length === 1 && w.resentAt === null)).toBe(true);

      // Overdue after 30 s: re-sent once; the sweep run again sends nothing more.
      await until('the requests to be overdue', 45_000, async () => {
        const overdue = (await run(['messages', 'pending', '--overdue', '--json'])).json<unknown[]>();
        return overdue.length === 12 ? true : undefined;
      });
      const first = await sweep();
      expect(new Set(first.resent.map((r) => r.id))).toEqual(silent);
      expect(first.escalated).toEqual([]);
      expect((await sweep()).resent).toEqual([]);

      // Half the re-sends are answered in text (it acks the original); the rest escalate once.
      const answeredLate = new Set<string>();
      await Promise.all(
        AGENTS.map(async (me) => {
          const resends = (await inbox(me)).filter((m) => m.resendOf !== null);
          expect(resends).toHaveLength(3);
          expect(resends.every((m) => m.text.startsWith('(re-sent: no ack yet) [request_id:'))).toBe(true);
          const pick = resends.slice(0, me === 'a0' || me === 'a1' ? 2 : 1);
          for (const m of pick) answeredLate.add(m.resendOf!);
          await run(['send', pick[0]!.from, '--each-line', '--as', me], `${pick.map((m) => `{ack_for: ${m.requestId}, ok: true} late but done`).join('\n')}\n`);
        }),
      );
      expect(answeredLate.size).toBe(6);
      const stillWaiting = new Set([...silent].filter((id) => !answeredLate.has(id)));
      expect(new Set((await pending()).map((w) => w.id))).toEqual(stillWaiting);

      const escalated = await until('the re-sends to be overdue', 45_000, async () => {
        const report = await sweep();
        expect(report.resent).toEqual([]);
        return report.escalated.length > 0 ? report.escalated : undefined;
      });
      expect(new Set(escalated.map((e) => e.id))).toEqual(stillWaiting);
      expect(escalated.every((e) => e.coordinators.join() === 'boss')).toBe(true);
      expect(await sweep()).toEqual({ resent: [], escalated: [] });
      const bossMail = await inbox('boss');
      expect(bossMail.filter((m) => m.type === 'escalation')).toHaveLength(6);
    },
  );
});
