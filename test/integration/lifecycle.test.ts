import { describe, expect, it } from 'vitest';
import { runAction } from '../../src/core/lifecycle/actions.js';
import { parkAgent } from '../../src/core/lifecycle/service.js';
import { claimTask, createTask, getTask } from '../../src/core/tasks/service.js';
import { type DriverName, lifecycleWorld, tmuxAvailable } from '../helpers/lifecycle.js';

/**
 * The lifecycle under both session drivers, with the scripted fake agent in real tmux and in a
 * real pseudo-terminal: every state is read from a live screen, and every action is checked by
 * what the agent actually received (its input log).
 */

const DRIVERS: { name: DriverName; available: boolean }[] = [
  { name: 'tmux', available: tmuxAvailable },
  { name: 'pty', available: true },
];

const waitFor = async (what: string, check: () => boolean, timeoutMs = 8_000) => {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) expect.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
};

describe.each(DRIVERS)('lifecycle over $name', ({ name: driver, available }) => {
  it.skipIf(!available)('reads idle, busy, waiting, compacted, quota, login, stuck and dead from the live screen', async (ctx) => {
    const w = await lifecycleWorld(ctx, driver, { stuckAfterMs: 1_500 });
    await w.addAgent('ada');
    const d = await w.start('ada');
    const idle = await w.until('ada', 'idle');
    expect(idle.evidence.map((e) => e.signal)).toContain('screen.idle');

    await d.submit('/busy 3');
    const busy = await w.until('ada', 'busy');
    expect(busy.evidence[0]!.lines!.join(' ')).toMatch(/Working/);
    await w.until('ada', 'idle', 6_000);

    await d.submit('/ask');
    await w.until('ada', 'waiting');
    await d.submit('1');
    await w.until('ada', 'idle');

    await d.submit('/compact');
    await w.until('ada', 'compacted');

    await d.submit('/login');
    const login = await w.until('ada', 'waiting');
    expect(login.evidence.map((e) => e.signal)).toContain('login');

    await d.submit('/quota');
    await w.until('ada', 'quota');
    // Scroll the notice out of the footer, as further work would.
    await d.submit('a');
    await d.submit('b');
    await w.until('ada', 'idle');

    // Silent while holding a claim → stuck; silent without one stays busy (a long tool call).
    await d.submit('/hang');
    await w.until('ada', 'busy');
    await new Promise((r) => setTimeout(r, 1_700));
    expect((await w.probe('ada'))[0]!.state).toBe('busy');
    const task = (await createTask(w.tasks, w.as('ada'), { title: 'port the parser' })).task;
    await claimTask(w.tasks, w.as('ada'), { id: task.id });
    const stuck = await w.until('ada', 'stuck');
    expect(stuck.evidence[0]!.signal).toBe('time.silent');
    expect(stuck.plan.action).toBe('interrupt');
    await d.interrupt();
    await w.until('ada', 'idle');

    await d.submit('/exit 3');
    const dead = await w.until('ada', 'dead');
    expect(dead.plan.action).toBe('restart');

    // Every transition was recorded with its evidence and published as agent.state.
    const history = await w.life.repo.history(w.project, 'ada', 100);
    expect(history.map((h) => h.state).reverse()).toEqual(
      expect.arrayContaining(['idle', 'busy', 'waiting', 'compacted', 'quota', 'stuck', 'dead']),
    );
    const events = await w.ctx.bus.events(w.project, '', 1000);
    const states = events.events.filter((e) => e.type === 'agent.state').map((e) => e.data.state);
    expect(states).toEqual(history.map((h) => h.state).reverse());
  });

  it.skipIf(!available)('restarts a dead agent and types the context pack into its new session', async (ctx) => {
    const w = await lifecycleWorld(ctx, driver);
    await w.addAgent('bo');
    const d = await w.start('bo');
    await w.until('bo', 'idle');
    const task = (await createTask(w.tasks, w.as('bo'), { title: 'write the migration' })).task;
    await claimTask(w.tasks, w.as('bo'), { id: task.id });
    await d.submit('/crash');
    await w.until('bo', 'dead');

    const [acted] = await w.probe('bo', true);
    expect(acted!.action).toMatchObject({ action: 'restart', outcome: 'done', recovery: 'pending' });
    expect(acted!.action!.detail).toMatch(/context pack typed/);
    const packed = () => w.received('bo').find((r) => r.line?.startsWith('[sos] context after restart'));
    await waitFor('the context pack in the input log', () => packed() !== undefined);
    const pack = packed();
    expect(pack?.line).toContain('You are bo');
    expect(pack?.line).toContain(task.id);
    // The next probe sees it at its prompt: the recovery counts as a success.
    await w.until('bo', 'idle');
    const counters = await w.life.repo.counters(w.project);
    expect(counters.recoveries.succeeded).toBe(1);
    expect(counters.actions['restart.done']).toBe(1);
  });

  it.skipIf(!available)('a restart types the pack only as the wake mode allows: off types nothing, notify a fixed line', async (ctx) => {
    const w = await lifecycleWorld(ctx, driver);
    for (const [name, wake] of [['quiet', 'off'], ['told', 'notify']] as const) {
      await w.addAgent(name, { wake });
      const d = await w.start(name);
      await w.until(name, 'idle');
      const task = (await createTask(w.tasks, w.as(name), { title: 'x"; touch /tmp/sos-pwned; echo "' })).task;
      await claimTask(w.tasks, w.as(name), { id: task.id });
      await d.submit('/crash');
      await w.until(name, 'dead');
      const [acted] = await w.probe(name, true);
      expect(acted!.action).toMatchObject({ action: 'restart', outcome: 'done' });
      expect(acted!.action!.detail).toMatch(wake === 'off' ? /context pack not typed \(wake off\)/ : /context pack notice typed \(wake notify\)/);
      await w.until(name, 'idle');
    }
    const typed = (name: string) => w.received(name).filter((r) => r.line !== undefined && r.line.includes('[sos]'));
    await waitFor('the notice', () => typed('told').length === 1);
    expect(typed('told').map((r) => r.line)).toEqual(['# [sos] context after restart: run sos memory context']);
    expect(typed('quiet')).toEqual([]);
  });

  it.skipIf(!available)('interrupts a stuck agent, then gives it its task again', async (ctx) => {
    const w = await lifecycleWorld(ctx, driver, { stuckAfterMs: 1_000 });
    await w.addAgent('cy');
    const d = await w.start('cy');
    await w.until('cy', 'idle');
    const task = (await createTask(w.tasks, w.as('cy'), { title: 'fix the flaky test' })).task;
    await claimTask(w.tasks, w.as('cy'), { id: task.id });
    await d.submit('/hang');
    await w.until('cy', 'stuck', 10_000);

    const [acted] = await w.probe('cy', true);
    expect(acted!.action).toMatchObject({ action: 'interrupt', outcome: 'done' });
    await waitFor('the task line', () => w.received('cy').some((r) => r.line?.includes(task.id) ?? false));
    const log = w.received('cy');
    const interrupted = log.findIndex((r) => r.event === 'interrupt');
    const reinjected = log.findIndex((r) => r.line?.includes(task.id) ?? false);
    expect(interrupted).toBeGreaterThan(-1);
    expect(reinjected).toBeGreaterThan(interrupted);
    expect(log[reinjected]!.line).toContain('fix the flaky test');
  });

  it.skipIf(!available)('the restart limit stops a crash loop and escalates to the coordinator once', async (ctx) => {
    const w = await lifecycleWorld(ctx, driver, { limits: { restartLimit: 2, cooldownMs: 0 } });
    await w.addAgent('boss', { role: 'coordinator' });
    // A start command that dies at once: a crash loop.
    await w.addAgent('loop', { command: 'node -e "process.exit(7)"' });
    await w.start('loop');
    await w.until('loop', 'dead');
    const outcomes: string[] = [];
    for (let i = 0; i < 5; i++) {
      const [r] = await w.probe('loop', true);
      outcomes.push(r!.action ? `${r!.action.action}:${r!.action.outcome}` : `none:${r!.plan.reason.split(':')[0]}`);
      await w.until('loop', 'dead');
    }
    expect(outcomes.slice(0, 3)).toEqual(['restart:done', 'restart:done', 'escalate:escalated']);
    expect(outcomes.slice(3).every((o) => o.startsWith('none'))).toBe(true);
    const inbox = await w.ctx.bus.history(w.project, 'boss', [{ kind: 'agent', name: 'boss' }], 10);
    expect(inbox).toHaveLength(1);
    expect(inbox[0]!.message).toMatchObject({ type: 'escalation', from: 'sos' });
    expect(inbox[0]!.message.text).toMatch(/loop.*restart limit/);
  });

  it.skipIf(!available)('the cascade guard restarts nothing when most agents die at once; parked agents are left alone', async (ctx) => {
    const w = await lifecycleWorld(ctx, driver);
    await w.addAgent('boss', { role: 'coordinator' });
    for (const n of ['a1', 'a2', 'a3', 'a4']) {
      await w.addAgent(n);
      const d = await w.start(n);
      await w.until(n, 'idle');
      if (n !== 'a4') await d.submit('/exit 1');
    }
    for (const n of ['a1', 'a2', 'a3']) await w.until(n, 'dead');
    const results = await w.probe(undefined, true);
    const byAgent = Object.fromEntries(results.map((r) => [r.agent, r]));
    for (const n of ['a1', 'a2', 'a3']) {
      expect(byAgent[n]!.plan.action).not.toBe('restart');
      expect(byAgent[n]!.action?.action ?? 'none').not.toBe('restart');
    }
    expect(results.some((r) => r.action?.action === 'escalate' && /cascade/.test(r.action.detail))).toBe(true);

    // A parked agent whose session dies is not restarted.
    await parkAgent(w.life, w.as(null), 'a4', { reason: 'maintenance' });
    await (await w.driver('a4')).submit('/exit 0');
    await new Promise((r) => setTimeout(r, 500));
    const [parked] = await w.probe('a4', true);
    expect(parked!.state).toBe('parked');
    expect(parked!.action).toBeUndefined();
    expect(parked!.evidence[0]!.detail).toMatch(/maintenance.*reads dead/);
  });

  it.skipIf(!available)('the cascade guard sees agents killed together while a pass is probing', async (ctx) => {
    const w = await lifecycleWorld(ctx, driver);
    const names = ['a1', 'a2', 'a3', 'a4'];
    for (const n of names) {
      await w.addAgent(n);
      await w.start(n);
      await w.until(n, 'idle');
    }
    // a1 and a2 are looked at alive; then, before a3 is looked at, a1, a2 and a3 die together.
    const open = w.life.openDriver;
    let killed = false;
    w.life.openDriver = async (agent) => {
      const d = await open(agent);
      if (agent.name !== 'a3' || killed) return d;
      killed = true;
      for (const n of ['a1', 'a2', 'a3']) await (await open((await w.store.agents.get(w.project, n))!)).submit('/exit 1');
      for (const n of ['a1', 'a2', 'a3']) {
        const victim = await open((await w.store.agents.get(w.project, n))!);
        const deadline = Date.now() + 5_000;
        while (Date.now() < deadline) {
          const s = await victim.snapshot(5);
          if (!s.exists || s.exited) break;
          await new Promise((r) => setTimeout(r, 50));
        }
      }
      return d;
    };
    const results = await w.probe(undefined, true);
    w.life.openDriver = open;
    expect(killed).toBe(true);
    const byAgent = Object.fromEntries(results.map((r) => [r.agent, r]));
    for (const n of ['a1', 'a2', 'a3']) {
      expect(byAgent[n]!.state).toBe('dead');
      expect(byAgent[n]!.action?.action ?? 'none').not.toBe('restart');
    }
    expect(byAgent['a4']!.state).toBe('idle');
    expect(results.some((r) => r.action?.action === 'escalate' && /cascade/.test(r.action.detail))).toBe(true);
  });

  it.skipIf(!available)('parks an agent at its quota and gives its tasks back to the queue', async (ctx) => {
    const w = await lifecycleWorld(ctx, driver);
    await w.addAgent('dee');
    const d = await w.start('dee');
    await w.until('dee', 'idle');
    const task = (await createTask(w.tasks, w.as('dee'), { title: 'summarise the logs' })).task;
    await claimTask(w.tasks, w.as('dee'), { id: task.id });
    await d.submit('/quota');
    await w.until('dee', 'quota');
    const [acted] = await w.probe('dee', true);
    expect(acted!.action).toMatchObject({ action: 'park', outcome: 'done' });
    expect(acted!.action!.detail).toMatch(new RegExp(`released ${task.id}`));
    expect((await getTask(w.tasks, w.as(null), task.id)).status).toBe('queued');
    const [after] = await w.probe('dee', true);
    expect(after!.state).toBe('parked');
    expect(after!.evidence[0]!.detail).toMatch(/until 20\d\d-/);
  });
});

describe.skipIf(!tmuxAvailable)('compaction', () => {
  it('writes a checkpoint engram and re-injects the current task, once per compaction', async (ctx) => {
    const w = await lifecycleWorld(ctx, 'tmux', { memory: true });
    await w.addAgent('eve');
    const d = await w.start('eve');
    await w.until('eve', 'idle');
    const task = (await createTask(w.tasks, w.as('eve'), { title: 'refactor the router' })).task;
    await claimTask(w.tasks, w.as('eve'), { id: task.id });
    await d.submit('/compact');
    await w.until('eve', 'compacted');
    const [acted] = await w.probe('eve', true);
    expect(acted!.action).toMatchObject({ action: 'checkpoint', outcome: 'done' });
    const id = /checkpoint (eng_[0-9a-z]+) written/.exec(acted!.action!.detail)?.[1];
    expect(id).toBeDefined();
    const engram = await w.life.memory!.memory.get(w.project, id!);
    expect(engram).toMatchObject({ kind: 'checkpoint', author: 'eve', taskId: task.id });
    expect(engram!.text).toContain('refactor the router');
    await waitFor('the task line', () => w.received('eve').some((r) => r.line?.includes(task.id) ?? false));
    // The notice is still on screen, but this compaction is handled: nothing is typed twice.
    const [again] = await w.probe('eve', true);
    expect(again!.plan.action).toBe('none');
    expect(w.received('eve').filter((r) => r.line?.includes(task.id) ?? false)).toHaveLength(1);
  });
});

describe.skipIf(!tmuxAvailable)('input checked before anything is written', () => {
  it('a park that no date can hold is refused with no action row; a stored one renders as invalid time', async (ctx) => {
    const w = await lifecycleWorld(ctx, 'tmux');
    await w.addAgent('fay');
    const operator = w.as(null);
    const refused: [Parameters<typeof parkAgent>[3], RegExp][] = [
      [{ until: 1e20 * 3_600_000 }, /invalid --until .*between 1970 and 9999/],
      [{ until: Number.NaN }, /invalid --until NaN/],
      [{ until: Date.now() - 1_000 }, /is in the past/],
      [{ reason: 'a\0b' }, /NUL byte/],
      [{ reason: 'x'.repeat(1_001) }, /park reason is 1001 characters/],
    ];
    for (const [input, message] of refused) {
      await expect(parkAgent(w.life, operator, 'fay', input), JSON.stringify(input)).rejects.toMatchObject({ code: 'usage', message: expect.stringMatching(message) });
    }
    // The last guard, for any caller of runAction: a park plan with such a moment writes nothing either.
    const agent = (await w.store.agents.get(w.project, 'fay'))!;
    const [probed] = await w.probe('fay');
    const record = (await w.life.repo.get(w.project, 'fay'))!;
    await expect(
      runAction(w.life, operator, agent, record, { reading: { state: record.state, confidence: 1, evidence: [] }, snapshot: null, lastChangeAt: null, held: [] }, { action: 'park', reason: 'test', until: 8.64e15 + 1 }),
    ).rejects.toMatchObject({ code: 'usage' });
    expect(await w.life.repo.actions(w.project, 'fay', 0)).toEqual([]);
    expect((await w.life.repo.get(w.project, 'fay'))!.state).toBe(probed!.state);

    // A row written by hand (or an older version) with a moment no date holds: shown, never thrown.
    await parkAgent(w.life, operator, 'fay', { until: Date.now() + 3_600_000, reason: 'maintenance' });
    await w.store.sql.run('UPDATE agent_states SET parked_until = $1, hook_event = $2, hook_at = $3 WHERE project = $4 AND agent = $5', [1e300, 'Stop', -1e300, w.project, 'fay']);
    const [parked] = await w.probe('fay');
    expect(parked!.state).toBe('parked');
    expect(parked!.evidence[0]!.detail).toMatch(/maintenance \(until invalid time\)/);
  });
});
