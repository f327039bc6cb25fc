import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { UsageError } from '../errors.js';

/**
 * A simulation scenario, as data: how big the run is and which failures it injects. `sos sim`
 * reads one from `--scenario <file>` (JSON, or YAML when named .yaml/.yml) or uses `DEFAULT_SCENARIO`; `sos demo` uses
 * `DEMO_SCENARIO`. The schedule of injected failures is a pure function of the scenario, the seed
 * and the agents' names (`planSchedule`), so a seed replays the same run plan.
 *
 * Words: an *event* is one thing the simulator does at a moment (kill an agent's process, send a
 * burst of messages, kill the daemon); a *disruptive* event is one that takes an agent away from
 * its work (a kill, crash, hang, quota hit, compaction or question), and those are spaced so a
 * seeded run never trips the supervisor's cascade guard or restart limit by accident.
 */

const count = (max: number) => z.number().int().min(0).max(max);

export const SCENARIO_SCHEMA = z
  .object({
    name: z.string().min(1).max(80).default('custom'),
    agents: z.number().int().min(2).max(64).default(12),
    /** Squads the agents are dealt into, round robin; the tasks are spread over them and no squad. */
    squads: z.array(z.string().regex(/^[a-z][a-z0-9-]{0,39}$/)).max(8).default(['code', 'ops']),
    tasks: z.number().int().min(1).max(20_000).default(500),
    minutes: z.number().positive().max(120).default(5),
    seed: z.number().int().min(0).default(1),
    /** How long one task's work lasts on screen, in seconds: [min, max]. */
    taskSeconds: z.tuple([z.number().min(0.1).max(60), z.number().min(0.1).max(60)]).default([1, 3]),
    /** Share of tasks an agent fails (retryable) instead of completing. */
    failRate: z.number().min(0).max(0.5).default(0.03),
    /** Old fixture tasks nobody can claim, titled like the case study's (the brain proposes their cleanup). */
    staleFixtures: count(1_000).default(20),
    events: z
      .object({
        killProcess: count(200).default(6),
        killPane: count(200).default(4),
        hang: count(100).default(3),
        compact: count(100).default(3),
        quota: count(50).default(2),
        ask: count(100).default(2),
        /** Agents that crash at once on this many starts in a row (the first crash included). */
        crashLoop: z.object({ agents: count(10).default(1), crashes: z.number().int().min(1).max(10).default(3) }).strict().default({ agents: 1, crashes: 3 }),
        daemonKill: count(10).default(1),
        /** Moments when most agents are killed at once (kill -9 of max(3, half) of them): the supervisor's cascade guard must refuse to restart them and escalate; the simulator, as the operator told, then restarts them by hand. */
        cascade: count(5).default(1),
        /** Restarts of the Redis server (kill -9, then the same server again on its port); only with \`--redis local\`, where the simulator owns that server, else skipped and logged. */
        redisRestart: count(10).default(1),
        /** Single messages to random agents, spread over the run; a share asks for an ack. */
        messages: count(10_000).default(60),
        ackShare: z.number().min(0).max(1).default(0.5),
        /** Bursts of messages sent at once to one agent while it is busy. */
        bursts: z.object({ count: count(100).default(4), size: z.number().int().min(1).max(100).default(8) }).strict().default({ count: 4, size: 8 }),
      })
      .strict()
      .prefault({}),
    /**
     * Scale the event counts to the run: they are meant for 12 agents over 5 minutes, and a shorter
     * or smaller run gets proportionally fewer (each kind at least once). The default scenario
     * scales; a scenario file does not unless it says so.
     */
    scaleEvents: z.boolean().default(false),
    /** A block budget on one agent, set at this fraction of the run, that its own usage crosses. */
    budget: z
      .object({ agentUsd: z.number().positive().max(1_000).default(0.04), at: z.number().min(0).max(1).default(0.3) })
      .strict()
      .nullable()
      .default({ agentUsd: 0.04, at: 0.3 }),
    /** The brain's scripted answers, cycled in order. */
    brain: z
      .array(z.enum(['stale_cleanup', 'invented_method', 'create_task', 'health_check', 'message_coordinator']))
      .max(50)
      .default(['stale_cleanup', 'invented_method', 'health_check', 'create_task', 'stale_cleanup', 'message_coordinator']),
  })
  .strict();

export type Scenario = z.infer<typeof SCENARIO_SCHEMA>;
export type BrainAnswer = Scenario['brain'][number];

/** Field paths of zod issues, joined the way a user writes them (`events.killPane`). */
function fieldOf(issue: z.ZodIssue): string {
  const path = issue.path.join('.');
  if (issue.code === 'unrecognized_keys') return [path, issue.keys.join(', ')].filter(Boolean).join('.');
  return path || '(the scenario)';
}

/** Validates a scenario object; a bad field is a UsageError that names it (exit 2). */
export function parseScenario(value: unknown, source = 'the scenario'): Scenario {
  const parsed = SCENARIO_SCHEMA.safeParse(value);
  if (parsed.success) {
    const s = parsed.data;
    if (s.taskSeconds[0] > s.taskSeconds[1]) throw new UsageError(`${source}: taskSeconds: the first value (min) is above the second (max)`);
    return s;
  }
  const issue = parsed.error.issues[0]!;
  const field = fieldOf(issue);
  throw new UsageError(`${source}: ${field}: ${issue.message}`, { hint: 'see `sos sim --help`; every field is optional and unknown fields are refused' });
}

/** Whether a scenario file is YAML by its name (`.yaml`, `.yml`); anything else is JSON. */
export const isYamlName = (source: string) => /\.ya?ml$/i.test(source);

/**
 * Reads a scenario from JSON text, or YAML when the source is named `.yaml`/`.yml` (YAML 1.2, a
 * duplicated key refused); text that does not parse is a UsageError too.
 */
export function parseScenarioText(text: string, source: string): Scenario {
  let value: unknown;
  if (isYamlName(source)) {
    try {
      value = parseYaml(text, { uniqueKeys: true, prettyErrors: true });
    } catch (err) {
      throw new UsageError(`${source} is not YAML: ${(err as Error).message.split('\n')[0]}`);
    }
  } else {
    try {
      value = JSON.parse(text);
    } catch (err) {
      throw new UsageError(`${source} is not JSON: ${(err as Error).message}`);
    }
  }
  return parseScenario(value, source);
}

export const DEFAULT_SCENARIO: Scenario = parseScenario({ name: 'default', scaleEvents: true });

/** `sos demo`: six agents in two squads, a few minutes, one of each failure so a newcomer sees them. */
export const DEMO_SCENARIO: Scenario = parseScenario({
  name: 'demo',
  agents: 6,
  squads: ['code', 'ops'],
  tasks: 80,
  minutes: 3,
  taskSeconds: [2, 5],
  staleFixtures: 8,
  events: { killProcess: 1, killPane: 1, hang: 1, compact: 1, quota: 1, ask: 1, crashLoop: { agents: 0, crashes: 1 }, daemonKill: 0, cascade: 0, redisRestart: 0, messages: 12, bursts: { count: 1, size: 4 } },
  budget: { agentUsd: 0.03, at: 0.3 },
});

// ---------------------------------------------------------------------------------------------
// The schedule

export type SimEventKind = 'kill_process' | 'kill_pane' | 'hang' | 'compact' | 'quota' | 'ask' | 'crash_loop' | 'daemon_kill' | 'cascade' | 'redis_restart' | 'message' | 'burst' | 'budget';

export interface SimEvent {
  /** Milliseconds after the run's start. */
  at: number;
  kind: SimEventKind;
  agent?: string;
  /** cascade: the agents killed at once. */
  agents?: string[];
  /** crash_loop: starts that crash; burst: messages; message: 1 when it asks for an ack. */
  n?: number;
}

/** mulberry32: a small seeded PRNG, so a seed replays the same plan on every machine. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

/** Spacing rules of disruptive events: the same agent is left alone this long between two (at most; see `agentGapMs`). */
export const AGENT_GAP_MS = 60_000;
/** ...but never less than this, whatever the run's length. */
export const MIN_AGENT_GAP_MS = 20_000;
/** ...and no two disruptive events (any agents) are closer than this. */
export const GLOBAL_GAP_MS = 3_000;
/** A quota hit keeps the agent away for its reset (1 min) and more: nothing else for it this long. */
export const QUOTA_HOLD_MS = 75_000;
/** A cascade, a daemon kill or a Redis restart is left alone by every other disruptive event this long. */
export const WIDE_GAP_MS = 8_000;

/** The per-agent gap of a run: a third of the disruptive window, within [MIN_AGENT_GAP_MS, AGENT_GAP_MS]. */
export function agentGapMs(durationMs: number): number {
  return Math.min(AGENT_GAP_MS, Math.max(MIN_AGENT_GAP_MS, Math.round((durationMs * 0.67) / 3)));
}

/** Agents killed at once by a cascade: at least the guard's minimum (3), at least half. */
export const cascadeSize = (agents: number) => Math.max(3, Math.ceil(agents / 2));

/** The event counts of a run: as given, or scaled to agents × minutes against 12 × 5 (each kind at least once). */
export function scaledEvents(s: Scenario): Scenario['events'] {
  if (!s.scaleEvents) return s.events;
  const f = Math.min(1, (s.agents / 12) * (s.minutes / 5));
  const k = (n: number) => (n === 0 ? 0 : Math.max(1, Math.round(n * f)));
  const e = s.events;
  return {
    ...e,
    killProcess: k(e.killProcess),
    killPane: k(e.killPane),
    hang: k(e.hang),
    compact: k(e.compact),
    quota: k(e.quota),
    ask: k(e.ask),
    messages: k(e.messages),
    bursts: { ...e.bursts, count: k(e.bursts.count) },
  };
}

/**
 * The run's plan. Disruptive events fall in the first 75 % of the run (from 8 %), so the rest is
 * left for recovery; messages and bursts are spread over the first 85 %. An agent gets at most one
 * disruptive event per `agentGapMs` (a quota hit holds it `QUOTA_HOLD_MS`), crash-looping agents
 * get nothing else, and a cascade, a daemon kill or a Redis restart is kept `WIDE_GAP_MS` clear of
 * every other disruptive event. When the plan does not fit (too many events for the agents and
 * minutes), it is a UsageError naming the field to lower.
 */
export function planSchedule(s: Scenario, agents: readonly string[], durationMs: number, seed = s.seed): SimEvent[] {
  const rand = seededRandom(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
  const ev = scaledEvents(s);
  const gap = agentGapMs(durationMs);
  const from = durationMs * 0.08;
  const to = durationMs * 0.75;
  const events: SimEvent[] = [];
  /** Per agent: the [start, end] each of its events keeps it busy. */
  const busy = new Map<string, [number, number][]>();
  /** Every disruptive event: its moment and how wide a berth it wants from the others. */
  const taken: { at: number; berth: number }[] = [];
  const crashLoopers = agents.slice(0, Math.min(ev.crashLoop.agents, agents.length - 1));
  const free = agents.filter((a) => !crashLoopers.includes(a));
  const holdOf = (kind: SimEventKind) => (kind === 'quota' ? QUOTA_HOLD_MS : 0);

  const globalFits = (at: number, berth: number) => taken.every((t) => Math.abs(t.at - at) >= Math.max(berth, t.berth));
  const agentFits = (agent: string, at: number, hold: number) =>
    (busy.get(agent) ?? []).every(([a, b]) => at >= b + gap || at + hold + gap <= a);
  const mark = (agent: string, at: number, hold: number) => busy.set(agent, [...(busy.get(agent) ?? []), [at, at + hold]]);
  const tooMany = (field: string) =>
    new UsageError(`the scenario does not fit: too many events (${field}) for ${agents.length} agents in ${Math.round(durationMs / 60_000)} minute(s)`, {
      hint: `lower ${field}, or raise --agents or --minutes (an agent gets one failure per ${Math.round(gap / 1000)} s)`,
    });
  const place = (kind: SimEventKind, field: string, agent: string | null, extra: Partial<SimEvent> = {}) => {
    const global = kind === 'daemon_kill' || kind === 'redis_restart';
    const berth = global ? WIDE_GAP_MS : GLOBAL_GAP_MS;
    for (let attempt = 0; attempt < 4_000; attempt++) {
      const who = agent ?? (global ? null : pick(free));
      const at = Math.round(from + rand() * (to - from));
      if (!globalFits(at, berth) || (who !== null && !agentFits(who, at, holdOf(kind)))) continue;
      taken.push({ at, berth });
      if (who !== null) mark(who, at, holdOf(kind));
      events.push({ at, kind, ...(who !== null ? { agent: who } : {}), ...extra });
      return;
    }
    throw tooMany(field);
  };
  const placeCascade = () => {
    const size = cascadeSize(agents.length);
    if (free.length < size) throw tooMany('events.cascade');
    // Not in the first fifth: every agent must have started (and be alive) to die at once.
    const earliest = Math.max(from, durationMs * 0.2);
    for (let attempt = 0; attempt < 4_000; attempt++) {
      const at = Math.round(earliest + rand() * (to - earliest));
      if (!globalFits(at, WIDE_GAP_MS)) continue;
      const candidates = free.filter((a) => agentFits(a, at, 0));
      if (candidates.length < size) continue;
      const chosen: string[] = [];
      while (chosen.length < size) {
        const a = pick(candidates.filter((c) => !chosen.includes(c)));
        chosen.push(a);
      }
      chosen.sort();
      taken.push({ at, berth: WIDE_GAP_MS });
      for (const a of chosen) mark(a, at, 0);
      events.push({ at, kind: 'cascade', agents: chosen });
      return;
    }
    throw tooMany('events.cascade');
  };

  for (const agent of crashLoopers) place('crash_loop', 'events.crashLoop.agents', agent, { n: ev.crashLoop.crashes });
  for (let i = 0; i < ev.cascade; i++) placeCascade();
  for (let i = 0; i < ev.daemonKill; i++) place('daemon_kill', 'events.daemonKill', null);
  for (let i = 0; i < ev.redisRestart; i++) place('redis_restart', 'events.redisRestart', null);
  const perAgent: [SimEventKind, number, string][] = [
    ['quota', ev.quota, 'events.quota'],
    ['kill_process', ev.killProcess, 'events.killProcess'],
    ['kill_pane', ev.killPane, 'events.killPane'],
    ['hang', ev.hang, 'events.hang'],
    ['compact', ev.compact, 'events.compact'],
    ['ask', ev.ask, 'events.ask'],
  ];
  for (const [kind, n, field] of perAgent) for (let i = 0; i < n; i++) place(kind, field, null);

  const spread = durationMs * 0.85;
  for (let i = 0; i < ev.messages; i++) {
    events.push({ at: Math.round(durationMs * 0.03 + rand() * spread), kind: 'message', agent: pick(agents), n: rand() < ev.ackShare ? 1 : 0 });
  }
  for (let i = 0; i < ev.bursts.count; i++) {
    events.push({ at: Math.round(durationMs * 0.05 + rand() * spread), kind: 'burst', agent: pick(free), n: ev.bursts.size });
  }
  if (s.budget) events.push({ at: Math.round(durationMs * s.budget.at), kind: 'budget', agent: pick(free) });
  return events.sort((a, b) => a.at - b.at || a.kind.localeCompare(b.kind));
}

/** Agent names of a run: `sim-01`, `sim-02`, …, sorted as they print. */
export function agentNames(n: number): string[] {
  return Array.from({ length: n }, (_, i) => `sim-${String(i + 1).padStart(2, '0')}`);
}
