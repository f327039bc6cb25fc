import type { BusEvent } from '../bus/types.js';
import { MAX_TRIGGER_EVENTS, type Trigger } from './cycle.js';

/**
 * When the daemon's brain runs a cycle (issue 14): on the events that mean the plan may have to
 * change, debounced so that a burst gives one cycle; at once for `sos brain wake`; and on a slow
 * timer when nothing happened. Pure: the daemon feeds it events and asks it what is due.
 *
 * The debounce window opens with the first triggering event and closes `debounceMs` later,
 * however many follow (a steady stream cannot postpone the cycle for ever); the events of the
 * window, counted by type, are the cycle's trigger. Events that arrive while a cycle runs open
 * the next window.
 */

export const TRIGGER_EVENTS = ['task.completed', 'task.failed', 'task.dead', 'task.blocked', 'budget.exhausted'] as const;
/** `agent.state` triggers only for these states. */
export const TRIGGER_AGENT_STATES = ['dead', 'quota'] as const;
export const WAKE_EVENT = 'brain.wake';

export function isTrigger(e: BusEvent): boolean {
  if ((TRIGGER_EVENTS as readonly string[]).includes(e.type) || e.type === WAKE_EVENT) return true;
  return e.type === 'agent.state' && (TRIGGER_AGENT_STATES as readonly string[]).includes(String(e.data['state']));
}

export interface SchedulerOptions {
  debounceMs: number;
  intervalMs: number;
}

export class BrainScheduler {
  private window: { openedAt: number; events: BusEvent[]; counts: Record<string, number>; wake: string[] | null } | null = null;
  private lastCycleAt: number;

  constructor(
    private readonly options: SchedulerOptions,
    startedAt: number,
  ) {
    this.lastCycleAt = startedAt;
  }

  /** Takes in events read from the project's stream; returns how many of them trigger. */
  observe(events: readonly BusEvent[], now: number): number {
    let n = 0;
    for (const e of events) {
      if (!isTrigger(e)) continue;
      n++;
      this.window ??= { openedAt: now, events: [], counts: {}, wake: null };
      const w = this.window;
      w.counts[e.type] = (w.counts[e.type] ?? 0) + 1;
      w.events.push(e);
      if (w.events.length > MAX_TRIGGER_EVENTS) w.events.shift();
      if (e.type === WAKE_EVENT) {
        w.wake ??= [];
        const reason = e.data['reason'];
        if (typeof reason === 'string' && reason) w.wake.push(reason);
      }
    }
    return n;
  }

  /** The trigger of the cycle due now, or null; taking it closes the window. */
  take(now: number): Trigger | null {
    const w = this.window;
    if (w && (w.wake !== null || now - w.openedAt >= this.options.debounceMs)) {
      this.window = null;
      this.lastCycleAt = now;
      const trigger: Trigger = { kind: w.wake !== null && Object.keys(w.counts).length === 1 ? 'wake' : 'events', events: w.events.map((e) => ({ type: e.type, at: e.at, data: e.data })), counts: w.counts };
      if (w.wake?.length) trigger.text = w.wake.join('; ');
      return trigger;
    }
    if (!w && now - this.lastCycleAt >= this.options.intervalMs) {
      this.lastCycleAt = now;
      return { kind: 'timer' };
    }
    return null;
  }

  /** How long until something may be due (for the loop's sleep), in ms. */
  nextDueIn(now: number): number {
    if (this.window) return this.window.wake !== null ? 0 : Math.max(0, this.window.openedAt + this.options.debounceMs - now);
    return Math.max(0, this.lastCycleAt + this.options.intervalMs - now);
  }
}
