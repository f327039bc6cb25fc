import { describe, expect, it } from 'vitest';
import type { Reading } from '../../src/core/lifecycle/classifier.js';
import { DEFAULT_LIMITS, isRoutable, type PlanInput, planAction, quotaUntil } from '../../src/core/lifecycle/policy.js';
import { cascadeTripped } from '../../src/core/lifecycle/probe.js';
import type { ActionRecord } from '../../src/core/lifecycle/sql-lifecycle.js';

const NOW = Date.parse('2026-11-21T12:00:00Z');
const MIN = 60_000;

const reading = (state: Reading['state'], evidence: Reading['evidence'] = []): Reading => ({ state, confidence: 0.9, evidence });

function action(kind: ActionRecord['action'], minutesAgo: number, detail = '', outcome: ActionRecord['outcome'] = 'done'): ActionRecord {
  return { id: `act_${kind}_${minutesAgo}`, project: 'p', agent: 'a', action: kind, fromState: 'dead', outcome, detail, at: NOW - minutesAgo * MIN, recovery: null, recoveredAt: null };
}

function plan(state: Reading['state'], over: Partial<PlanInput> = {}) {
  return planAction({
    agent: { name: 'a', policy: 'warm', hasStartCommand: true },
    reading: reading(state),
    since: NOW - 5 * MIN,
    holds: 1,
    recent: [],
    cascade: false,
    now: NOW,
    limits: DEFAULT_LIMITS,
    ...over,
  });
}

describe('lifecycle policy', () => {
  it('leaves idle, busy, waiting, warm, unknown and parked agents alone', () => {
    for (const state of ['idle', 'busy', 'waiting', 'warm', 'unknown', 'parked'] as const) expect(plan(state).action, state).toBe('none');
  });

  it('restarts a dead warm agent, and a dead cold agent only while it holds work', () => {
    expect(plan('dead').action).toBe('restart');
    expect(plan('dead', { agent: { name: 'a', policy: 'cold', hasStartCommand: true }, holds: 1 }).action).toBe('restart');
    expect(plan('dead', { agent: { name: 'a', policy: 'cold', hasStartCommand: true }, holds: 0 })).toMatchObject({ action: 'park' });
  });

  it('waits out the cooldown after a restart', () => {
    const p = plan('dead', { recent: [action('restart', 0.5)] });
    expect(p.action).toBe('none');
    expect(p.reason).toMatch(/cooling down/);
    expect(plan('dead', { recent: [action('restart', 2)] }).action).toBe('restart');
  });

  it('escalates once when the restart limit is reached, then stays quiet', () => {
    const restarts = [action('restart', 5), action('restart', 15), action('restart', 25)];
    const first = plan('dead', { recent: restarts });
    expect(first).toMatchObject({ action: 'escalate' });
    expect(first.reason).toMatch(/^restart limit/);
    const again = plan('dead', { recent: [action('escalate', 1, first.reason, 'escalated'), ...restarts] });
    expect(again.action).toBe('none');
  });

  it('counts failed restart attempts against the limit and the cooldown, like successful ones', () => {
    const failed = (minutesAgo: number) => action('restart', minutesAgo, 'session dead: restart … → failed: the workdir /srv/gone is not a directory', 'failed');
    // A failed attempt half a minute ago: cooling down, not retried on the next probe.
    const cooling = plan('dead', { recent: [failed(0.5)] });
    expect(cooling).toMatchObject({ action: 'none', reason: expect.stringMatching(/^cooling down: a restart failed 30s ago/) });
    expect(plan('dead', { recent: [failed(2)] }).action).toBe('restart');
    // Three attempts in the window, failed or not: the limit is reached, escalated once, with the failure.
    const attempts = [failed(5), action('restart', 15), failed(25)];
    const first = plan('dead', { recent: attempts });
    expect(first.action).toBe('escalate');
    expect(first.reason).toBe('restart limit reached: 3 restart attempts within 60 min (2 failed; last failure: the workdir /srv/gone is not a directory)');
    expect(plan('dead', { recent: [action('escalate', 1, first.reason, 'escalated'), ...attempts] }).action).toBe('none');
    // Only attempts inside the window count (the probe passes the window's actions).
    expect(plan('dead', { recent: [failed(5), failed(15)] }).action).toBe('restart');
  });

  it('the cascade guard escalates instead of restarting', () => {
    expect(plan('dead', { cascade: true })).toMatchObject({ action: 'escalate' });
    expect(plan('dead', { cascade: true, recent: [action('escalate', 1, 'cascade guard: …', 'escalated')] }).action).toBe('none');
  });

  it('keeps an agent escalated for a cascade down for a human once the guard no longer trips, until it is back', () => {
    const escalated = action('escalate', 1, 'cascade guard: most supervised agents are dead at once; not restarting', 'escalated');
    // The operator restarted some of the cascade: too few are dead to trip the guard now.
    expect(plan('dead', { cascade: false, recent: [escalated] })).toMatchObject({ action: 'none', reason: expect.stringMatching(/^cascade guard/) });
    // A later death (the agent came back in between: its dead state is newer than the escalation) is restarted.
    expect(plan('dead', { cascade: false, since: NOW - 0.5 * MIN, recent: [escalated] }).action).toBe('restart');
    // An escalation for something else does not hold it.
    expect(plan('dead', { recent: [action('escalate', 1, 'no start command: …', 'escalated')] }).action).toBe('restart');
  });

  it('escalates a dead agent without a start command instead of guessing one', () => {
    expect(plan('dead', { agent: { name: 'a', policy: 'warm', hasStartCommand: false } })).toMatchObject({ action: 'escalate' });
  });

  it('interrupts a stuck agent up to three times, then escalates', () => {
    expect(plan('stuck').action).toBe('interrupt');
    expect(plan('stuck', { recent: [action('interrupt', 1), action('interrupt', 2)] }).action).toBe('interrupt');
    expect(plan('stuck', { recent: [action('interrupt', 1), action('interrupt', 2), action('interrupt', 3)] }).action).toBe('escalate');
  });

  it('checkpoints a compaction once', () => {
    expect(plan('compacted').action).toBe('checkpoint');
    expect(plan('compacted', { recent: [action('checkpoint', 1)] }).action).toBe('none');
    // A checkpoint from an earlier compaction does not count for this one.
    expect(plan('compacted', { recent: [action('checkpoint', 10)] }).action).toBe('checkpoint');
  });

  it('parks on quota with the reset time when the screen says, and on a login prompt', () => {
    const q = plan('quota', { reading: reading('quota', [{ signal: 'screen.quota', detail: 'x', lines: ['Usage limit reached · resets at 5pm'] }]) });
    expect(q.action).toBe('park');
    const until = new Date((q as { until: number }).until);
    expect([until.getHours(), until.getMinutes()]).toEqual([17, 0]);
    expect(plan('waiting', { reading: reading('waiting', [{ signal: 'login', detail: 'login required' }]) })).toMatchObject({ action: 'park', until: null });
  });

  it('reads quota reset times', () => {
    expect(quotaUntil(['try again in 2 hours'], NOW)).toBe(NOW + 2 * 3_600_000);
    expect(quotaUntil(['resets in 30 min'], NOW)).toBe(NOW + 30 * MIN);
    expect(quotaUntil(['rate limited'], NOW)).toBeNull();
    // The screen is the agent's output: a wait no quota has (or no date holds) is no reset time.
    expect(quotaUntil(['try again in 100000000000000000000 hours'], NOW)).toBeNull();
    expect(quotaUntil(['resets in 9000 hours'], NOW)).toBeNull();
    expect(quotaUntil(['resets in 24 hours'], NOW)).toBe(NOW + 24 * 3_600_000);
    const t = new Date(quotaUntil(['limit resets at 9:30am'], NOW)!);
    expect([t.getHours(), t.getMinutes()]).toEqual([9, 30]);
    expect(t.getTime()).toBeGreaterThan(NOW);
  });

  it('trips the cascade guard only when most warm agents died at once', () => {
    const agents = (dead: number, alive: number, diedRecently = true) => [
      ...Array.from({ length: dead }, () => ({ state: 'dead' as const, policy: 'warm', diedRecently })),
      ...Array.from({ length: alive }, () => ({ state: 'idle' as const, policy: 'warm', diedRecently: false })),
    ];
    expect(cascadeTripped(agents(3, 1), DEFAULT_LIMITS)).toBe(true);
    expect(cascadeTripped(agents(2, 0), DEFAULT_LIMITS)).toBe(false);
    expect(cascadeTripped(agents(3, 4), DEFAULT_LIMITS)).toBe(false);
    expect(cascadeTripped([...agents(3, 0), { state: 'dead', policy: 'cold', diedRecently: true }], DEFAULT_LIMITS)).toBe(true);
    // Never seen alive (a fresh install, a new daemon): starting them is not a cascade.
    expect(cascadeTripped(agents(5, 0, false), DEFAULT_LIMITS)).toBe(false);
  });

  it('routing skips dead, parked and quota agents', () => {
    expect(['idle', 'busy', 'dead', 'parked', 'quota'].map((s) => isRoutable(s as Reading['state']))).toEqual([true, true, false, false, false]);
  });
});
