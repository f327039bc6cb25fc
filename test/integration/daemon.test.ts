import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { type DaemonEvent, type DaemonProcess, type DaemonWorld, daemonWorld, FAST, type Received, until } from '../helpers/daemon.js';
import { PtyDriver } from '../../src/core/sessions/pty.js';
import { ADAPTERS, type AdapterFixture, services, tempDir } from '../helpers/isolation.js';
import { redisProject } from '../helpers/redis.js';
import { FAKE_AGENT, tmuxAvailable } from '../helpers/lifecycle.js';

/**
 * `sos daemon` as a user runs it: a real separate process (`bin/sos daemon`) delivering into the
 * fake agent running in real tmux, which the daemon starts itself (a never-started warm agent reads
 * dead and is restarted, then gets its context pack). See docs/ARCHITECTURE.md, "Flow of a message" and "Lifecycle".
 */

interface Shown {
  id: string;
  createdAt: string;
  deliveries: { recipient: string; state: string; at: string }[];
}

async function send(w: DaemonWorld, to: string, text: string, as = 'boss'): Promise<{ id: string; returned: number }> {
  const r = await w.run(['send', to, '--stdin', '--as', as, '-q'], { input: text });
  const returned = Date.now();
  expect(r.code, r.stderr).toBe(0);
  return { id: r.stdout.trim(), returned };
}

async function show(w: DaemonWorld, id: string): Promise<Shown> {
  const r = await w.run(['messages', 'show', id, '--json']);
  expect(r.code, r.stderr).toBe(0);
  return r.json<Shown>();
}

const stateOf = async (w: DaemonWorld, id: string, agent: string) => (await show(w, id)).deliveries.find((d) => d.recipient === agent)?.state;

/** Wake lines only (context packs left out). */
const wakeLines = (w: DaemonWorld, name: string): Received[] => w.sosLines(name).filter((r) => !r.line!.startsWith('[sos] context after restart'));

/** Messages a line announces: 1 per `[sos] from x:`, N per `[sos] N new messages` (a line may hold two if typing was cut). */
function announced(line: string): number {
  let n = 0;
  for (const m of line.matchAll(/\[sos\] (?:from [a-z0-9-]+:|(\d+) new messages from )/g)) n += m[1] === undefined ? 1 : Number(m[1]);
  return n;
}

async function metrics(w: DaemonWorld): Promise<Record<string, number>> {
  const r = await w.run(['metrics', '--json']);
  expect(r.code, r.stderr).toBe(0);
  return r.json();
}

/** The real tmux, for a wrapper that stands in for it. */
const TMUX = tmuxAvailable ? execFileSync('sh', ['-c', 'command -v tmux'], { encoding: 'utf8' }).trim() : 'tmux';

const settle = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * SQLite Store with the Redis bus, in a Redis project of its own: the daemon must be woken by
 * Redis's push (a send there changes no SQLite page, so the SQLite change counter never moves).
 */
const SQLITE_WITH_REDIS: AdapterFixture = {
  ...ADAPTERS[0]!,
  available: services.redis !== null,
  target: (ctx) => ({ db: join(tempDir(ctx), 'sos.db'), env: { SOS_REDIS_URL: services.redisUrl, SOS_PROJECT: redisProject(ctx) } }),
};
const WAKE_BACKENDS = [...ADAPTERS.map((adapter) => ({ label: adapter.name, adapter })), { label: 'sqlite with the redis bus', adapter: SQLITE_WITH_REDIS }];

describe.skipIf(!tmuxAvailable)('sos daemon', () => {
  describe.each(WAKE_BACKENDS)('wake delivery on $label', ({ adapter }) => {
    it.skipIf(!adapter.available)('wakes an idle agent within 1 s, once, clips long messages, and never wakes a sender with its own squad message', async (ctx) => {
      const w = await daemonWorld(ctx, adapter);
      await w.addAgent('ada');
      const d = await w.daemon();
      await w.ready('ada');
      await d.waitFor((e) => e.event === 'lifecycle_action' && e.agent === 'ada' && e.action === 'restart' && e.outcome === 'done');

      const latencies: number[] = [];
      for (const text of ['deploy fixed', 'tests are green again']) {
        const { id, returned } = await send(w, 'ada', text);
        const line = await until(`ada woken by ${text}`, () => w.received('ada').find((r) => r.line === `[sos] from boss: ${text}`), 3_000);
        const createdAt = Date.parse((await show(w, id)).createdAt);
        expect(createdAt).toBeLessThanOrEqual(returned);
        // From the moment the send became durable (just before the command returned) to the line typed.
        latencies.push(line.at - createdAt);
        expect(line.at - createdAt).toBeLessThan(1_000);
        await until(`${id} delivered`, async () => (await stateOf(w, id, 'ada')) === 'delivered', 3_000);
        expect((await d.waitFor((e) => e.event === 'wake_delivered' && (e.messages as string[]).includes(id))).agent).toBe('ada');
      }
      ctx.annotate(`wake latencies on ${adapter.name} (ms, send durable → line received): ${latencies.join(', ')}`);

      // Multi-line: the first line, and a pointer to the inbox.
      await send(w, 'ada', 'release at 5pm\nchecklist:\n- tag\n- notes');
      await until('multi-line wake', () => w.received('ada').some((r) => r.line === '[sos] from boss: release at 5pm (sos inbox for the rest)'), 3_000);
      // Longer than 200 characters: clipped to 199 and an ellipsis.
      const long = `${'x'.repeat(150)} ${'y'.repeat(100)}`;
      await send(w, 'ada', long);
      await until('clipped wake', () => w.received('ada').some((r) => r.line === `[sos] from boss: ${long.slice(0, 199)}… (sos inbox for the rest)`), 3_000);

      // Its own message to a squad it is in never wakes it; the next direct message goes out alone.
      expect((await w.run(['squads', 'create', 'core'])).code).toBe(0);
      for (const agent of ['ada', 'boss']) expect((await w.run(['squads', 'join', 'core', '--agent', agent])).code).toBe(0);
      await send(w, 'squad:core', 'ada here: on it', 'ada');
      await settle(600); // two wake passes and a probe
      const { id: after } = await send(w, 'ada', 'after the squad note');
      await until('direct wake after squad note', async () => (await stateOf(w, after, 'ada')) === 'delivered', 3_000);
      await settle(600); // anything typed twice would show up by now

      const lines = wakeLines(w, 'ada').map((r) => r.line);
      expect(lines).toEqual([
        '[sos] from boss: deploy fixed',
        '[sos] from boss: tests are green again',
        '[sos] from boss: release at 5pm (sos inbox for the rest)',
        `[sos] from boss: ${long.slice(0, 199)}… (sos inbox for the rest)`,
        '[sos] from boss: after the squad note',
      ]);
      expect(w.received('ada').some((r) => r.line?.includes('ada here: on it'))).toBe(false);
      expect(d.events.filter((e) => e.event === 'wake_failed')).toEqual([]);
    });
  });

  it('holds messages while the agent is busy and delivers them as one digest once it is idle; one that lapses meanwhile is counted expired', async (ctx) => {
    const w = await daemonWorld(ctx);
    await w.addAgent('ada');
    await w.daemon();
    await w.ready('ada');

    w.type('ada', '/busy 4');
    const busy = await until('ada busy', () => w.received('ada').find((r) => r.line === '/busy 4'));
    await until('spinner on screen', () => w.screen('ada').includes('Working…'));
    const ids: string[] = [];
    for (const text of ['first', 'second', 'third']) ids.push((await send(w, 'ada', text)).id);
    // One more that lapses while held: it never wakes ada, and counts as expired.
    const brief = await w.run(['send', 'ada', 'fire drill in 1 s', '--expires', '1s', '--as', 'boss', '-q']);
    expect(brief.code, brief.stderr).toBe(0);
    // Still busy: nothing typed, all four held.
    expect(Date.now()).toBeLessThan(busy.at + 4_000);
    for (const id of ids) expect(await stateOf(w, id, 'ada')).toBe('queued');

    const digest = await until('digest', () => wakeLines(w, 'ada')[0], busy.at + 8_000 - Date.now());
    await settle(800);
    expect(wakeLines(w, 'ada')).toEqual([digest]);
    expect(digest.line).toBe('[sos] 3 new messages from boss; latest from boss: third (sos inbox to read them)');
    expect(digest.at).toBeGreaterThanOrEqual(busy.at + 4_000);
    // Nothing at all reached the agent between /busy and the end of its work.
    expect(w.received('ada').filter((r) => r.at > busy.at && r.at < busy.at + 4_000)).toEqual([]);
    for (const id of ids) expect(await stateOf(w, id, 'ada')).toBe('delivered');
    const m = await metrics(w);
    expect(m.messages_held_total).toBeGreaterThanOrEqual(4);
    expect(m.messages_delivered).toBe(3);
    expect(m.messages_expired).toBe(1);
    expect(m.messages_held_now).toBe(0);
  });

  it('delivers a message sent while the daemon was down once it starts (tmux sessions outlive it)', async (ctx) => {
    const w = await daemonWorld(ctx);
    await w.addAgent('ada');
    const first = await w.daemon();
    await w.ready('ada');
    expect((await first.stop()).code).toBe(0);

    const { id } = await send(w, 'ada', 'while you were out');
    await settle(500);
    expect(await stateOf(w, id, 'ada')).toBe('queued');
    expect(wakeLines(w, 'ada')).toEqual([]);

    const second = await w.daemon();
    await second.waitFor((e) => e.event === 'wake_delivered' && (e.messages as string[]).includes(id), 5_000);
    expect(await stateOf(w, id, 'ada')).toBe('delivered');
    expect(wakeLines(w, 'ada').map((r) => r.line)).toEqual(['[sos] from boss: while you were out']);
    // The session kept running: the second daemon found it idle and did not restart it.
    expect(w.sosLines('ada').filter((r) => r.line!.startsWith('[sos] context after restart'))).toHaveLength(1);
    expect(second.events.filter((e) => e.event === 'lifecycle_action')).toEqual([]);
  });

  it('after kill -9 mid-burst, a new daemon takes over at once and nothing is typed twice or lost', async (ctx) => {
    const w = await daemonWorld(ctx);
    const agents = ['ada', 'bob', 'cy'];
    for (const a of agents) await w.addAgent(a);
    const first = await w.daemon();
    for (const a of agents) await w.ready(a);

    const sent: { id: string; to: string; text: string }[] = [];
    const batch = async (from: number) => {
      const texts = [0, 1, 2, 3].map((i) => ({ to: agents[(from + i) % agents.length]!, text: `burst m${String(from + i).padStart(2, '0')}` }));
      const results = await Promise.all(texts.map((t) => send(w, t.to, t.text)));
      results.forEach((r, i) => sent.push({ id: r.id, ...texts[i]! }));
    };
    const deliveredBy = (...daemons: DaemonProcess[]) =>
      new Set(daemons.flatMap((d) => d.events.filter((e) => e.event === 'wake_delivered').flatMap((e) => e.messages as string[])));

    await batch(0);
    // Kill it mid-delivery if we can: as soon as a line reached an agent that the daemon has not
    // yet recorded as delivered (it is verifying the screen), else when the second batch is in.
    const second4 = batch(4);
    let inFlight: { id: string; to: string; text: string } | undefined;
    await until(
      'a line typed but not yet recorded',
      () => {
        const recorded = deliveredBy(first);
        inFlight = sent.find((s) => !recorded.has(s.id) && w.received(s.to).some((r) => r.line === `[sos] from boss: ${s.text}`));
        return inFlight !== undefined;
      },
      3_000,
      5,
    ).catch(() => undefined);
    first.child.kill('SIGKILL');
    expect((await first.exited).signal).toBe('SIGKILL');
    const killedAt = Date.now();
    // Its events are logged after each pass, so the database tells whether the line was recorded.
    const cutShort = inFlight !== undefined && (await stateOf(w, inFlight.id, inFlight.to)) !== 'delivered';
    await second4;
    // Its lease is fresh (heartbeat < 6 s old) but its pid is dead: taken over at once.
    const second = await w.daemon();
    expect(Date.now() - killedAt).toBeLessThan(4_000);
    for (const from of [8, 12, 16]) await batch(from);
    expect(sent).toHaveLength(20);

    // Until every message is delivered, or nothing more happens for 1.5 s (a line the crash cut
    // short of its record is `unverified` and never typed again).
    let last = { n: -1, at: Date.now() };
    await until(
      'deliveries to settle',
      () => {
        const n = deliveredBy(first, second).size;
        if (n !== last.n) last = { n, at: Date.now() };
        return n === sent.length || Date.now() - last.at > 1_500;
      },
      10_000,
    );
    await settle(400);

    const states = new Map(await Promise.all(sent.map(async (s) => [s.id, await stateOf(w, s.id, s.to)] as const)));
    let total = 0;
    for (const a of agents) {
      const lines = wakeLines(w, a).map((r) => r.line!);
      const mine = sent.filter((s) => s.to === a);
      const count = lines.reduce((n, l) => n + announced(l), 0);
      // No message announced twice: at most as many announcements as messages sent to it.
      expect(count, `${a}: ${JSON.stringify(lines, null, 1)}`).toBeLessThanOrEqual(mine.length);
      for (const s of mine) expect(lines.filter((l) => l.includes(`from boss: ${s.text}`)).length, s.text).toBeLessThanOrEqual(1);
      // Every delivered message was typed, and every other one is still unread in the inbox.
      const delivered = mine.filter((s) => states.get(s.id) === 'delivered');
      expect(count).toBeGreaterThanOrEqual(delivered.length);
      const inbox = (await w.run(['inbox', '--agent', a, '--json'])).json<{ unread: { id: string }[] }>();
      const unread = new Set(inbox.unread.map((m) => m.id));
      for (const s of mine) expect(states.get(s.id) === 'delivered' || unread.has(s.id), `${s.id} (${s.text}) lost: ${states.get(s.id)}`).toBe(true);
      total += count;
    }
    const recovered = second.events.find((e) => e.event === 'wake_recovered');
    if (cutShort) {
      // Caught mid-delivery: the new daemon found its row `injecting` and did not type it again.
      expect(recovered?.unverified).toBeGreaterThanOrEqual(1);
      expect(states.get(inFlight!.id)).toBe('queued');
    }
    // Everything else went out: what was sent after the kill included.
    const undelivered = sent.filter((s) => states.get(s.id) !== 'delivered');
    const screens = Object.fromEntries(agents.map((a) => [a, w.screen(a).trimEnd().split('\n').slice(-2)]));
    expect(undelivered.length, JSON.stringify({ undelivered, recovered, screens }, null, 1)).toBeLessThanOrEqual(Number(recovered?.unverified ?? 0));
    const status = await w.run(['daemon', 'status', '--json']);
    expect(status.code, status.stderr).toBe(0);
    expect(status.json()).toMatchObject({ running: true, pid: second.pid });
    ctx.annotate(`kill -9: ${total} of 20 announced; ${cutShort ? `killed with ${inFlight!.text} typed, not recorded` : 'killed between records'}; ${Number(recovered?.unverified ?? 0)} unverified after recovery`);
  });

  it('a line a killed daemon typed but never submitted does not stop later deliveries to that agent', async (ctx) => {
    const w = await daemonWorld(ctx);
    await w.addAgent('ada');
    // tmux types a wake line in two commands (the text, then Enter), whether each is a tmux process
    // or a line to the daemon's control-mode client (`tmux -C`). This tmux, on PATH for the first
    // daemon only, kills that daemon (kill -9 of its parent) instead of pressing Enter once armed,
    // on either path: the crash lands exactly between the two commands, leaving the line in the
    // agent's input box.
    const bin = join(w.dir, 'bin');
    const arm = join(w.dir, 'armed');
    mkdirSync(bin);
    writeFileSync(
      join(bin, 'tmux'),
      [
        '#!/bin/sh',
        'daemon=$PPID',
        `strike() { if [ -e '${arm}' ]; then rm -f '${arm}'; kill -9 $daemon; exit 1; fi; }`,
        'control=no; for a; do last=$a; [ "$a" = -C ] && control=yes; done',
        'if [ $control = yes ]; then',
        `  while IFS= read -r line; do case "$line" in *"'Enter'") strike ;; esac; printf '%s\\n' "$line"; done | ${TMUX} "$@"`,
        '  exit $?',
        'fi',
        '[ "$last" = Enter ] && strike',
        `exec ${TMUX} "$@"`,
        '',
      ].join('\n'),
      { mode: 0o755 },
    );
    const first = await w.daemon(undefined, { env: { PATH: `${bin}:${process.env.PATH ?? ''}` } });
    await w.ready('ada');
    writeFileSync(arm, '');
    const cut = await send(w, 'ada', 'cut short');
    expect((await first.exited).signal).toBe('SIGKILL');
    expect(w.screen('ada')).toMatch(/^fake> \[sos\] from boss: cut short\s*$/m);

    const second = await w.daemon();
    expect((await second.waitFor((e) => e.event === 'wake_recovered')).unverified).toBe(1);
    const next = await send(w, 'ada', 'are you there?');
    // The daemon must get the agent back to its prompt (submit or clear the stranded line) and
    // deliver what comes next; the stranded message is never announced twice.
    await until('the next message delivered', async () => (await stateOf(w, next.id, 'ada')) === 'delivered', 5_000);
    expect(w.received('ada').some((r) => r.line?.includes('from boss: are you there?'))).toBe(true);
    const announcedCut = wakeLines(w, 'ada').filter((r) => r.line!.includes('from boss: cut short')).length;
    expect(announcedCut).toBeLessThanOrEqual(1);
    expect(await stateOf(w, cut.id, 'ada')).not.toBe('read');
  });

  it('refuses a second daemon with exit 4 naming the running pid, and starts one after the first stops', async (ctx) => {
    const w = await daemonWorld(ctx);
    const first = await w.daemon();
    const second = await w.daemon(undefined, { ready: false });
    const refused = await second.exited;
    expect(refused.code, second.stderr()).toBe(4);
    expect(second.stderr()).toContain(`pid ${first.pid}`);
    expect(second.events.some((e) => e.event === 'started')).toBe(false);

    expect(await first.stop()).toEqual({ code: 0, signal: null });
    expect(first.events.map((e) => e.event)).toContain('stopped');
    expect((await w.run(['daemon', 'status', '--json'])).code).toBe(1); // lease released: not running

    const third = await w.daemon();
    const status = await w.run(['daemon', 'status', '--json']);
    expect(status.json()).toMatchObject({ running: true, pid: third.pid });
    expect(await third.stop()).toEqual({ code: 0, signal: null });
  });

  it('requeues the task of an agent that died holding it, and restarts the agent with its context pack', async (ctx) => {
    const w = await daemonWorld(ctx);
    await w.addAgent('ada');
    expect((await w.run(['agents', 'add', 'other'])).code).toBe(0);
    // The daemon's first start of ada counts as a restart, so the restart cooldown (13 s) keeps the
    // dead ada down for a while: long enough for its 2 s lease to lapse (the daemon renews leases
    // only for agents that read alive and active), for the 300 ms sweep to requeue the task, for
    // the requeue's retry backoff (4–6 s) to run out and for `other` to claim it. With no cooldown ada would come back within a probe, read idle and
    // have its lease renewed, and the task would never return to the queue. After the cooldown
    // the supervisor restarts ada and types its context pack.
    const d = await w.daemon(undefined, { env: { SOS_RESTART_COOLDOWN_MS: '13000' } });
    await w.ready('ada');

    const created = await w.run(['tasks', 'create', 'rotate the keys', '--as', 'boss', '-q']);
    expect(created.code, created.stderr).toBe(0);
    const task = created.stdout.trim();
    const claimed = await w.run(['tasks', 'claim', '--id', task, '--as', 'ada', '--lease', '2s', '--json']);
    expect(claimed.code, claimed.stderr).toBe(0);
    expect(claimed.json()).toMatchObject({ id: task, claimant: 'ada' });

    w.type('ada', '/exit 1');
    await d.waitFor((e) => e.event === 'sweep' && (e.requeued as string[]).includes(task), 6_000);
    // A requeued task backs off (4–6 s after a first attempt) before it can be claimed again.
    const taken = await w.run(['tasks', 'claim', '--as', 'other', '--wait', '10s', '--json']);
    expect(taken.code, taken.stderr).toBe(0);
    expect(taken.json()).toMatchObject({ id: task, claimant: 'other' });
    const takenAt = Date.now();
    expect(w.sosLines('ada').filter((r) => r.line!.startsWith('[sos] context after restart'))).toHaveLength(1);

    // Then ada comes back, with its context pack.
    await w.ready('ada', 2, 12_000);
    // The daemon logs a probe pass's actions once the pass is over: the pack can reach ada's log first.
    const isRestart = (e: DaemonEvent) => e.event === 'lifecycle_action' && e.agent === 'ada' && e.action === 'restart' && e.outcome === 'done';
    await until('the second restart logged', () => d.events.filter(isRestart).length >= 2, 5_000);
    const restarts = d.events.filter(isRestart);
    expect(restarts).toHaveLength(2);
    expect(Date.parse(restarts[1]!.at)).toBeGreaterThan(takenAt);
    const m = await metrics(w);
    expect(m.restarts).toBe(2);
  });

  it('imports a transcript written while it runs (woken by the file-system watch) and parks the agents of the pause budget it spends, releasing their claims', async (ctx) => {
    const w = await daemonWorld(ctx);
    await w.addAgent('ada');
    // The watched root must exist when the daemon starts; the interval is long, so only the watch can wake the import in time.
    const projects = join(w.dir, 'home', '.claude', 'projects', '-work-ada');
    mkdirSync(projects, { recursive: true });
    const d = await w.daemon(undefined, { env: { SOS_IMPORT_INTERVAL_MS: '600000' } });
    await w.ready('ada');
    const task = (await w.run(['tasks', 'create', 'expensive work', '--as', 'boss', '-q'])).stdout.trim();
    expect((await w.run(['tasks', 'claim', '--id', task, '--as', 'ada'])).code).toBe(0);
    expect((await w.run(['budgets', 'set', 'agent:ada', '--limit', '$0.005', '--period', 'day', '--action', 'pause'])).code).toBe(0);

    // One assistant message of Claude Code in ada's workdir: 1,000 in + 200 out of claude-sonnet-4-5, $0.006.
    const line = {
      type: 'assistant',
      sessionId: 'sess-1',
      cwd: w.dir,
      timestamp: new Date().toISOString(),
      requestId: 'req_1',
      message: { id: 'msg_1', model: 'claude-sonnet-4-5', role: 'assistant', usage: { input_tokens: 1_000, output_tokens: 200, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 } },
    };
    writeFileSync(join(projects, 'sess-1.jsonl'), `${JSON.stringify(line)}\n`);
    const imported = await d.waitFor((e) => e.event === 'usage_imported', 10_000);
    expect(imported).toMatchObject({ project: 'default', events: 1, corrupt: 0 });
    const parked = await d.waitFor((e) => e.event === 'economy_action' && e.agent === 'ada', 10_000);
    expect(parked).toMatchObject({ action: 'park', why: 'budget agent:ada is spent (action pause)', outcome: 'done' });

    const usage = (await w.run(['usage', '--json'])).json<{ rows: { key: string; events: number; costMicros: number }[] }>();
    expect(usage.rows).toEqual([expect.objectContaining({ key: 'ada', events: 1, costMicros: 6_000 })]);
    expect((await w.run(['tasks', 'show', task, '--json'])).json()).toMatchObject({ status: 'queued', claimant: null });
    const status = (await w.run(['agents', 'status', '--json'])).json<{ agent: string; state: string }[]>();
    expect(status.find((a) => a.agent === 'ada')?.state).toBe('parked');
    // The coordinator was told when the budget ran out.
    const inbox = (await w.run(['inbox', '--as', 'boss', '--json'])).json<{ unread: { text: string }[] }>();
    expect(inbox.unread.map((m) => m.text)).toContainEqual(expect.stringMatching(/^budget agent:ada: exhausted, \$0\.01 of \$0\.01 \(120%\); claims in this scope are refused and the daemon parks its agents/));
    // One call crossed both thresholds: one message, the exhausted one (a warning at 120% would mislead).
    expect(inbox.unread.filter((m) => m.text.startsWith('budget agent:ada'))).toHaveLength(1);
    // A second pass over the unchanged file imports nothing more.
    expect((await w.run(['usage', 'import', '--source', 'claude', '--json'])).json()).toMatchObject({ eventsNew: 0 });
  });

  it('stops cleanly on SIGTERM: exit 0 within seconds, and the tmux sessions keep running', async (ctx) => {
    const w = await daemonWorld(ctx);
    await w.addAgent('ada');
    const d = await w.daemon();
    await w.ready('ada');

    const t0 = Date.now();
    d.child.kill('SIGTERM');
    expect(await d.exited).toEqual({ code: 0, signal: null });
    expect(Date.now() - t0).toBeLessThan(3_000);
    const names = d.events.map((e) => e.event);
    expect(names.slice(names.indexOf('signal'))).toEqual(['signal', 'stopping', 'stopped']);
    expect(d.events.filter((e) => e.event === 'release_failed' || e.event === 'loop_error')).toEqual([]);
    // The agent is not the daemon's child: it keeps running at its prompt.
    execFileSync('tmux', ['-S', w.socket, 'has-session', '-t', 'ada']);
    expect(w.screen('ada')).toMatch(/fake> *$/m);
    expect((await w.run(['daemon', 'status'])).code).toBe(1);
  });
});

describe('sos daemon with pty agents', () => {
  const ptyOf = (w: DaemonWorld, name: string) =>
    new PtyDriver(`node ${FAKE_AGENT} --log ${join(w.dir, `${name}.log`)}`, { runDir: join(w.env.XDG_DATA_HOME!, 'sos', 'sessions'), owner: { project: 'default', agent: name } });

  it('starts a pty agent, wakes it within 1 s, and stops it on shutdown unless --detached-ptys', async (ctx) => {
    const w = await daemonWorld(ctx);
    await w.addAgent('pia', { driver: 'pty' });
    const pty = ptyOf(w, 'pia');
    ctx.onTestFinished(() => pty.stop());
    const d = await w.daemon();
    await w.ready('pia');
    const { id } = await send(w, 'pia', 'hello over a pty');
    const line = await until('pia woken', () => w.received('pia').find((r) => r.line === '[sos] from boss: hello over a pty'), 3_000);
    expect(line.at - Date.parse((await show(w, id)).createdAt)).toBeLessThan(1_000);
    await until(`${id} delivered`, async () => (await stateOf(w, id, 'pia')) === 'delivered', 3_000);
    // The daemon started this pty agent, so a clean stop ends it too.
    expect(await d.stop()).toEqual({ code: 0, signal: null });
    expect(d.events.some((e) => e.event === 'pty_stopped')).toBe(true);
    expect(await pty.exists()).toBe(false);

    // With --detached-ptys the agent outlives the daemon, and the next daemon delivers into it.
    // (The first start counts as a restart: a short cooldown lets this daemon start it again.)
    const detached = await w.daemon([...FAST, '--detached-ptys'], { env: { SOS_RESTART_COOLDOWN_MS: '100' } });
    await w.ready('pia', 2);
    expect(await detached.stop()).toEqual({ code: 0, signal: null });
    expect(await pty.exists()).toBe(true);
    const later = await send(w, 'pia', 'still there?');
    const next = await w.daemon();
    await until(`${later.id} delivered`, async () => (await stateOf(w, later.id, 'pia')) === 'delivered', 5_000);
    expect(w.received('pia').filter((r) => r.line === '[sos] from boss: still there?')).toHaveLength(1);
    await next.stop();
  });
});
