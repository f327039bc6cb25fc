import { type Caller, isAdmin, requireAdmin } from '../auth/caller.js';
import { SosError } from '../errors.js';
import { getAgent, listAgents } from '../identity/agents.js';
import { newId } from '../ids.js';
import type { SessionSnapshot } from '../sessions/port.js';
import type { SqlExecutor } from '../store/sql/driver.js';
import type { Agent } from '../store/types.js';
import type { Task } from '../tasks/types.js';
import { isMoment, momentText } from '../time.js';
import { runAction } from './actions.js';
import { type Evidence, hookState, type LifecycleState, type Reading } from './classifier.js';
import { type LifecycleContext, nowOf } from './context.js';
import { type PlannedAction, planAction } from './policy.js';
import { readSession } from './read.js';
import type { ActionRecord, AgentStateRecord, StateChange } from './sql-lifecycle.js';

/**
 * The probe: ask the driver what it sees, classify, overlay what the operator
 * decided (parking), record the state and every transition with its evidence (and publish
 * `agent.state` on the bus), settle pending recoveries, and plan — or, with `act`, take — the
 * one action the reading calls for.
 */

export interface ProbeResult {
  agent: string;
  session: string | null;
  state: LifecycleState;
  previous: LifecycleState | null;
  since: number;
  changed: boolean;
  confidence: number;
  evidence: Evidence[];
  /** Ids of the tasks the agent holds. */
  holds: string[];
  plan: PlannedAction;
  /** Set when the probe acted. */
  action?: ActionRecord;
}

export interface Observation {
  reading: Reading;
  snapshot: SessionSnapshot | null;
  lastChangeAt: number | null;
  held: Task[];
}

export const HELD_STATUSES = ['claimed', 'in_progress'] as const;


export async function heldTasks(ctx: LifecycleContext, agent: Agent, now: number): Promise<Task[]> {
  const tasks = await ctx.store.tasks.list(agent.project, { statuses: [...HELD_STATUSES], assignee: agent.name, limit: 100 }, now);
  return tasks.filter((t) => t.claimant === agent.name);
}

/** Reads the session and classifies it; nothing is written. */
export async function observe(ctx: LifecycleContext, agent: Agent, stored: AgentStateRecord | undefined): Promise<Observation> {
  const now = nowOf(ctx);
  const held = await heldTasks(ctx, agent, now);
  // A stored hook time no date can hold is no evidence (and the classifier renders it as a date).
  const hook = stored?.hookEvent && isMoment(stored.hookAt) ? { event: stored.hookEvent, at: stored.hookAt } : undefined;
  if (agent.session === null) {
    const state = hook ? hookState(hook.event) : undefined;
    const reading: Reading = state
      ? { state, confidence: 0.6, evidence: [{ signal: 'hook', detail: `hook ${hook!.event} at ${momentText(hook!.at)} (no session to look at)` }] }
      : { state: 'unknown', confidence: 0.1, evidence: [{ signal: 'no-session', detail: 'agent has no session (MCP-only or remote); only its hooks tell its state' }] };
    return { reading, snapshot: null, lastChangeAt: null, held };
  }
  let snapshot: SessionSnapshot;
  try {
    snapshot = await (await ctx.openDriver(agent)).snapshot(50);
  } catch (err) {
    // A driver that cannot look is not evidence of any state: keep the last one.
    const detail = err instanceof SosError ? err.message : String(err);
    return {
      reading: { state: stored?.state ?? 'unknown', confidence: 0.1, evidence: [{ signal: 'driver.error', detail }] },
      snapshot: null,
      lastChangeAt: stored?.lastChangeAt ?? null,
      held,
    };
  }
  // The screen changed since the last probe → it changed at the driver's last output time (or now).
  const changed = stored?.screenHash !== snapshot.hash;
  const lastChangeAt = changed || stored?.lastChangeAt == null ? Math.min(now, snapshot.lastOutputAt ?? now) : stored.lastChangeAt;
  const reading = readSession(agent, snapshot, {
    idleMs: now - lastChangeAt,
    holdsClaim: held.length > 0,
    stuckAfterMs: ctx.stuckAfterMs,
    now,
    ...(hook ? { hook } : {}),
  });
  return { reading, snapshot, lastChangeAt, held };
}

function parkedOverlay(stored: AgentStateRecord | undefined, reading: Reading, now: number): Reading | null {
  if (stored?.state !== 'parked' || (stored.parkedUntil !== null && stored.parkedUntil <= now)) return null;
  const until = stored.parkedUntil === null ? 'until unparked' : `until ${momentText(stored.parkedUntil)}`;
  return {
    state: 'parked',
    confidence: 1,
    evidence: [
      { signal: 'parked', detail: `${stored.parkReason ?? 'parked'} (${until}); the session reads ${reading.state}` },
      ...reading.evidence,
    ],
  };
}

/** Writes the state (and the transition, with its `agent.state` event) and returns the record. */
export async function recordState(
  ctx: LifecycleContext,
  agent: Agent,
  stored: AgentStateRecord | undefined,
  reading: Reading,
  extra: Partial<Pick<AgentStateRecord, 'screenHash' | 'lastChangeAt' | 'parkedUntil' | 'parkReason' | 'pendingInject' | 'sessionToken'>> = {},
  /** More writes in the same transaction (the action that led to this state). */
  within?: (tx: SqlExecutor) => Promise<void>,
): Promise<{ record: AgentStateRecord; change: StateChange | null }> {
  const now = nowOf(ctx);
  const previous = stored?.state ?? null;
  const change: StateChange | null =
    previous === reading.state
      ? null
      : { id: newId('lst', now), agent: agent.name, state: reading.state, previous, confidence: reading.confidence, evidence: reading.evidence, at: now };
  const record: AgentStateRecord = {
    project: agent.project,
    agent: agent.name,
    state: reading.state,
    since: change ? now : (stored?.since ?? now),
    confidence: reading.confidence,
    evidence: reading.evidence,
    probedAt: now,
    screenHash: stored?.screenHash ?? null,
    lastChangeAt: stored?.lastChangeAt ?? null,
    parkedUntil: reading.state === 'parked' ? (stored?.parkedUntil ?? null) : null,
    parkReason: reading.state === 'parked' ? (stored?.parkReason ?? null) : null,
    pendingInject: stored?.pendingInject ?? null,
    sessionToken: stored?.sessionToken ?? null,
    hookEvent: stored?.hookEvent ?? null,
    hookAt: stored?.hookAt ?? null,
    ...extra,
  };
  const event = change && {
    agent: agent.name,
    state: change.state,
    previous: change.previous,
    confidence: change.confidence,
    signals: change.evidence.map((e) => e.signal),
  };
  const emitWithin = ctx.bus.emitWithin?.bind(ctx.bus);
  let wake: (() => void) | undefined;
  const emitting = event && emitWithin ? { event, emitWithin } : null;
  await ctx.repo.save(
    record,
    change,
    emitting || within
      ? async (tx) => {
          if (within) await within(tx);
          if (emitting) wake = await emitting.emitWithin(tx, agent.project, 'agent.state', emitting.event, now);
        }
      : undefined,
  );
  if (event && !emitWithin) await ctx.bus.emit(agent.project, 'agent.state', event, now);
  wake?.();
  return { record, change };
}

async function settleRecoveries(ctx: LifecycleContext, agent: Agent, state: LifecycleState): Promise<void> {
  const now = nowOf(ctx);
  for (const pending of await ctx.repo.pendingRecoveries(agent.project, agent.name)) {
    if (state === 'idle' || state === 'busy') await ctx.repo.settleRecovery(agent.project, pending.id, 'succeeded', now);
    else if (now - pending.at > ctx.recoveryTimeoutMs) await ctx.repo.settleRecovery(agent.project, pending.id, 'failed', now);
  }
}

interface Probed {
  agent: Agent;
  record: AgentStateRecord;
  previous: LifecycleState | null;
  changed: boolean;
  observation: Observation;
}

async function probeOne(ctx: LifecycleContext, agent: Agent): Promise<Probed> {
  const now = nowOf(ctx);
  let stored = await ctx.repo.get(agent.project, agent.name);
  if (stored?.state === 'parked' && stored.parkedUntil !== null && stored.parkedUntil <= now) {
    await ctx.repo.addAction({ project: agent.project, agent: agent.name, action: 'unpark', fromState: 'parked', outcome: 'done', detail: 'park expired', at: now, recovery: null });
    stored = { ...stored, parkedUntil: null, parkReason: null };
  }
  const observation = await observe(ctx, agent, stored);
  const reading = parkedOverlay(stored, observation.reading, now) ?? observation.reading;
  const { record, change } = await recordState(ctx, agent, stored, reading, {
    ...(observation.snapshot ? { screenHash: observation.snapshot.hash } : {}),
    ...(observation.lastChangeAt !== null ? { lastChangeAt: observation.lastChangeAt } : {}),
  });
  await settleRecoveries(ctx, agent, record.state);
  return { agent, record, previous: stored?.state ?? null, changed: change !== null, observation };
}

async function plan(ctx: LifecycleContext, p: Probed, cascade: boolean): Promise<PlannedAction> {
  const now = nowOf(ctx);
  const recent = await ctx.repo.actions(p.agent.project, p.agent.name, now - ctx.limits.restartWindowMs);
  return planAction({
    agent: {
      name: p.agent.name,
      policy: p.agent.policy,
      hasStartCommand: p.agent.startCmd !== null || (p.agent.session?.startsWith('pty:') ?? false),
    },
    reading: { state: p.record.state, confidence: p.record.confidence, evidence: p.record.evidence },
    since: p.record.since,
    holds: p.observation.held.length,
    recent,
    cascade,
    now,
    limits: ctx.limits,
  });
}

/**
 * The cascade guard: most warm supervised agents dying at once means something bigger is wrong
 * (the machine, the network, the vendor). Only agents that were alive and died within the window
 * count, so agents never started yet (a fresh daemon) do not trip it.
 */
export function cascadeTripped(
  states: { state: LifecycleState; policy: string; diedRecently: boolean }[],
  limits: { cascadeFraction: number; cascadeMin: number },
): boolean {
  const watched = states.filter((s) => s.policy === 'warm' && s.state !== 'parked');
  const dead = watched.filter((s) => s.state === 'dead' && s.diedRecently).length;
  return dead >= limits.cascadeMin && dead / watched.length >= limits.cascadeFraction;
}

export const CASCADE_WINDOW_MS = 5 * 60_000;

/**
 * A pass probes one agent after another, so agents killed together while it runs read alive
 * before the kill and dead after it, and the pass would see only part of the cascade (and the
 * next pass, after this one's restarts, the rest: each part below the guard's fraction). When an
 * agent newly reads dead, the agents read alive before it are probed again: the kill has happened
 * by then, so every agent it took reads dead in this pass. Costs a second look only on a pass
 * that sees a death.
 */
async function reprobeBeforeFirstDeath(ctx: LifecycleContext, probed: Probed[]): Promise<void> {
  const first = probed.findIndex((p) => p.record.state === 'dead' && p.previous !== 'dead');
  for (let i = 0; i < first; i++) {
    const p = probed[i]!;
    if (p.record.state === 'dead' || p.agent.session === null) continue;
    const again = await probeOne(ctx, p.agent);
    probed[i] = { ...again, previous: p.previous, changed: p.changed || again.changed };
  }
}

function result(p: Probed, planned: PlannedAction, action?: ActionRecord): ProbeResult {
  return {
    agent: p.agent.name,
    session: p.agent.session,
    state: p.record.state,
    previous: p.previous,
    since: p.record.since,
    changed: p.changed,
    confidence: p.record.confidence,
    evidence: p.record.evidence,
    holds: p.observation.held.map((t) => t.id),
    plan: planned,
    ...(action ? { action } : {}),
  };
}

/**
 * Probes the named agents (default: every agent with a session), records what it saw, and plans
 * the action for each; with `act`, takes them (admin only). The cascade guard looks at the whole
 * pass: the fresh readings of the agents probed, the stored states of the others.
 */
export interface SuperviseOptions {
  /** Only these agents (default: every agent with a session). */
  agents?: string[];
  /** Take the planned actions (admin callers only); without it, only plan them. */
  act?: boolean;
  /** Called as each agent's action is done, before the next one starts. */
  onAction?: (result: ProbeResult) => void;
}

export async function superviseOnce(ctx: LifecycleContext, caller: Caller, options: SuperviseOptions = {}): Promise<ProbeResult[]> {
  if (options.act) await requireAdmin(ctx.store, caller, 'acting on agents');
  const all = await listAgents(ctx.store, caller);
  const byName = new Map(all.map((a) => [a.name, a]));
  // An unknown name goes through getAgent for its NotFound (and its name check).
  const chosen = options.agents
    ? await Promise.all(options.agents.map(async (n) => byName.get(n) ?? getAgent(ctx.store, caller, n)))
    : all.filter((a) => a.session !== null);
  const probed: Probed[] = [];
  for (const agent of chosen) probed.push(await probeOne(ctx, agent));
  await reprobeBeforeFirstDeath(ctx, probed);
  const fresh = new Map(probed.map((p) => [p.agent.name, p.record.state]));
  const storedStates = new Map((await ctx.repo.list(caller.project)).map((s) => [s.agent, s.state]));
  const died = new Set(await ctx.repo.diedSince(caller.project, nowOf(ctx) - CASCADE_WINDOW_MS));
  const cascade = cascadeTripped(
    all
      .filter((a) => a.session !== null)
      .map((a) => ({ state: fresh.get(a.name) ?? storedStates.get(a.name) ?? 'unknown', policy: a.policy, diedRecently: died.has(a.name) })),
    ctx.limits,
  );
  const results: ProbeResult[] = [];
  for (const p of probed) {
    const planned = await plan(ctx, p, cascade);
    const wantsInject = p.record.pendingInject !== null && p.record.state === 'idle';
    if (options.act && isAdmin(caller) && (planned.action !== 'none' || wantsInject)) {
      const action = await runAction(ctx, caller, p.agent, p.record, p.observation, planned);
      const done = result(p, planned, action);
      results.push(done);
      options.onAction?.(done);
    } else {
      results.push(result(p, planned));
    }
  }
  return results;
}
