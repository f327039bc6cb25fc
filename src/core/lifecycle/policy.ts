import type { LifecycleState, Reading } from './classifier.js';
import { MAX_DURATION_MS } from '../time.js';
import type { ActionKind, ActionRecord } from './sql-lifecycle.js';

/**
 * What the supervisor does about a reading, as a pure function of the reading,
 * the agent's recent actions and the guardrails — so `sos agents probe` can print the plan
 * without doing anything, and the guardrails are tested without sessions.
 */

export interface LifecycleLimits {
  /** Restarts allowed per agent per window before escalating instead (default 3 per hour). */
  restartLimit: number;
  restartWindowMs: number;
  /** No restart sooner than this after the last one. */
  cooldownMs: number;
  /** Interrupts of a stuck agent before escalating instead. */
  stuckTries: number;
  /** Cascade guard: when at least `cascadeMin` supervised agents and this fraction are dead at once, nothing is restarted. */
  cascadeFraction: number;
  cascadeMin: number;
}

export const DEFAULT_LIMITS: LifecycleLimits = {
  restartLimit: 3,
  restartWindowMs: 60 * 60_000,
  cooldownMs: 60_000,
  stuckTries: 3,
  cascadeFraction: 0.5,
  cascadeMin: 3,
};

export type PlannedAction =
  | { action: 'none'; reason: string }
  | { action: Exclude<ActionKind, 'unpark' | 'inject'>; reason: string; until?: number | null };

export interface PlanInput {
  agent: { name: string; policy: 'warm' | 'cold'; hasStartCommand: boolean };
  reading: Reading;
  /** When the agent entered its current state. */
  since: number;
  /** Tasks the agent holds (claimed, in progress). */
  holds: number;
  /** The agent's actions within the restart window, newest first. */
  recent: ActionRecord[];
  /** True when the cascade guard is tripped for this pass. */
  cascade: boolean;
  now: number;
  limits: LifecycleLimits;
}

const LEFT_ALONE: Partial<Record<LifecycleState, string>> = {
  idle: 'at its prompt: leave alone',
  busy: 'working: leave alone',
  warm: 'starting: leave alone',
  waiting: 'waiting on a human: leave alone',
  unknown: 'state unknown: no action on weak evidence',
  parked: 'parked: left alone',
};

/** "resets at 5pm", "try again at 14:30", "resets in 2h": the time a quota window ends, if the screen says. */
export function quotaUntil(lines: string[], now: number): number | null {
  const text = lines.join(' ');
  const rel = /(?:in|after)\s+(\d+)\s*(h|hours?|m|min(?:ute)?s?)\b/i.exec(text);
  if (rel) {
    // The screen is the agent's output: a wait past any real quota window is not a reset time.
    const ms = Number(rel[1]) * (rel[2]!.toLowerCase().startsWith('h') ? 3_600_000 : 60_000);
    return Number.isFinite(ms) && ms <= MAX_DURATION_MS ? now + ms : null;
  }
  const abs = /(?:resets?|again|until)\s+(?:at\s+)?(\d{1,2})(?::(\d{2}))?\s*(am|pm)?\b/i.exec(text);
  if (!abs) return null;
  let hour = Number(abs[1]);
  const minute = Number(abs[2] ?? 0);
  const half = abs[3]?.toLowerCase();
  if (half === 'pm' && hour < 12) hour += 12;
  if (half === 'am' && hour === 12) hour = 0;
  if (hour > 23 || minute > 59 || (!half && abs[2] === undefined)) return null;
  const at = new Date(now);
  at.setHours(hour, minute, 0, 0);
  if (at.getTime() <= now) at.setDate(at.getDate() + 1);
  return at.getTime();
}

/** What went wrong in a failed action's row (`<reason> → failed: <error>`), cut short. */
function failureOf(action: ActionRecord): string {
  const text = action.detail.slice(action.detail.indexOf('→') + 1).trim().replace(/^failed: /, '');
  return text.length <= 200 ? text : `${text.slice(0, 199)}…`;
}

/** `60 min`, or `90 s` for a window shorter than a minute (tests, tight settings). */
function windowText(ms: number): string {
  return ms >= 60_000 ? `${Math.round(ms / 60_000)} min` : `${Math.round(ms / 1000)} s`;
}

function escalatedSince(recent: ActionRecord[], since: number, reason: string): boolean {
  return recent.some((a) => a.action === 'escalate' && a.at >= since && a.detail.startsWith(reason));
}

export function planAction(input: PlanInput): PlannedAction {
  const { reading, recent, limits, now } = input;
  const state = reading.state;
  const login = reading.evidence.some((e) => e.signal === 'login');

  if (state === 'quota' || (state === 'waiting' && login)) {
    const lines = reading.evidence.flatMap((e) => e.lines ?? []);
    const until = state === 'quota' ? quotaUntil(lines, now) : null;
    const why = state === 'quota' ? 'quota or rate limit reached' : 'login required';
    return { action: 'park', reason: `${why}${input.holds ? `; releasing ${input.holds} held task(s)` : ''}`, until };
  }
  if (state === 'dead') {
    if (input.agent.policy === 'cold' && input.holds === 0) return { action: 'park', reason: 'cold agent with no claimed work: parked, not restarted', until: null };
    // Every attempt counts, failed or not: a start command that cannot run (a missing workdir)
    // must not be retried on every probe; it reaches the limit and is escalated like a crash loop.
    const restarts = recent.filter((a) => a.action === 'restart');
    // An agent escalated for a cascade in this death stays down for a human (within the restart
    // window), even once the guard no longer trips: the operator's first restarts bring the dead
    // below its fraction, and the supervisor must not then restart the rest behind the operator's
    // back, racing them for the same sessions.
    const heldForCascade = escalatedSince(recent, input.since, 'cascade');
    if (input.cascade || heldForCascade) {
      return heldForCascade
        ? { action: 'none', reason: 'cascade guard: escalated already; not restarting' }
        : { action: 'escalate', reason: 'cascade guard: most supervised agents are dead at once; not restarting' };
    }
    if (restarts.length >= limits.restartLimit) {
      const since = restarts[0]!.at;
      if (escalatedSince(recent, since, 'restart limit')) {
        return { action: 'none', reason: `restart limit reached (${restarts.length} attempts within the window); escalated already` };
      }
      const failed = restarts.filter((a) => a.outcome === 'failed');
      const lastFailure = failed[0] ? `; last failure: ${failureOf(failed[0])}` : '';
      return {
        action: 'escalate',
        reason: `restart limit reached: ${restarts.length} restart attempts within ${windowText(limits.restartWindowMs)}${failed.length ? ` (${failed.length} failed${lastFailure})` : ''}`,
      };
    }
    const last = restarts[0];
    if (last && now - last.at < limits.cooldownMs) {
      const how = last.outcome === 'failed' ? 'a restart failed' : 'restarted';
      return { action: 'none', reason: `cooling down: ${how} ${Math.round((now - last.at) / 1000)}s ago (cooldown ${Math.round(limits.cooldownMs / 1000)}s)` };
    }
    if (!input.agent.hasStartCommand) {
      return escalatedSince(recent, input.since, 'no start command')
        ? { action: 'none', reason: 'no start command; escalated already' }
        : { action: 'escalate', reason: 'no start command: set one with `sos agents set <name> --start-cmd …`' };
    }
    return { action: 'restart', reason: 'session dead: restart with the start command, then inject the context pack' };
  }
  if (state === 'stuck') {
    const tries = recent.filter((a) => a.action === 'interrupt' && a.outcome === 'done').length;
    if (tries >= limits.stuckTries) {
      return escalatedSince(recent, input.since, 'stuck')
        ? { action: 'none', reason: `stuck after ${tries} interrupts; escalated already` }
        : { action: 'escalate', reason: `stuck after ${tries} interrupts within the window` };
    }
    return { action: 'interrupt', reason: `stuck: interrupt, then re-inject the current task (try ${tries + 1} of ${limits.stuckTries})` };
  }
  if (state === 'compacted') {
    const handled = recent.some((a) => a.action === 'checkpoint' && a.at >= input.since);
    return handled
      ? { action: 'none', reason: 'compaction handled: checkpoint written and task re-injected' }
      : { action: 'checkpoint', reason: 'context compacted: write a checkpoint engram, re-inject the current task' };
  }
  return { action: 'none', reason: LEFT_ALONE[state] ?? 'no action' };
}

/** Agents in these states must not be given work (for routing, which is not built yet). */
export function isRoutable(state: LifecycleState | undefined): boolean {
  return state !== 'dead' && state !== 'parked' && state !== 'quota';
}
