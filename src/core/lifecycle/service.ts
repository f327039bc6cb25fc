import { actingAgent, type Caller, requireAdmin } from '../auth/caller.js';
import type { Agent } from '../store/types.js';
import { streamsFrom } from '../bus/service.js';
import { UsageError } from '../errors.js';
import { getAgent, listAgents } from '../identity/agents.js';
import { listSquads } from '../identity/squads.js';
import { assertName } from '../names.js';
import { refuseNul } from '../safe-text.js';
import { isMoment, momentText, parseMoment } from '../time.js';
import { runAction } from './actions.js';
import { hookState, type LifecycleState } from './classifier.js';
import { type LifecycleContext, nowOf } from './context.js';
import { HELD_STATUSES, heldTasks, recordState } from './probe.js';
import type { ActionRecord, AgentStateRecord, StateChange } from './sql-lifecycle.js';

/** Operator and agent commands around the probe: hook reports, parking, status and history. */

/** Reads an event name, or Codex's notify JSON (`{"type":"agent-turn-complete",…}`) passed as the argument. */
export function hookEventName(raw: string): string {
  const text = raw.trim();
  if (text.startsWith('{')) {
    try {
      const parsed = JSON.parse(text) as { type?: unknown; hook_event_name?: unknown };
      const name = parsed.type ?? parsed.hook_event_name;
      if (typeof name === 'string') return name;
    } catch {
      // fall through to the usage error below
    }
    throw new UsageError('hook payload is JSON without a "type" or "hook_event_name"');
  }
  return text;
}

export interface HookReport {
  agent: string;
  event: string;
  state: LifecycleState;
  at: number;
  changed: boolean;
}

/**
 * `sos hook <event>`: the agent's own report, the strongest evidence. It is stored for the probe
 * and moves the state at once (unless the agent is parked).
 */
/**
 * Claude Code's Notification hook fires both for a permission prompt (waiting on a human) and
 * for "waiting for your input" after a finished turn (idle); its payload tells them apart.
 */
function notificationState(payload: Record<string, unknown> | undefined): LifecycleState | undefined {
  if (!payload) return undefined;
  const kind = typeof payload.notification_type === 'string' ? payload.notification_type : '';
  const message = typeof payload.message === 'string' ? payload.message : '';
  if (kind === 'idle_prompt' || /waiting for your input/i.test(message)) return 'idle';
  return undefined;
}

export async function reportHook(
  ctx: LifecycleContext,
  caller: Caller,
  input: { event: string; agent?: string; payload?: Record<string, unknown> },
): Promise<HookReport> {
  const event = hookEventName(input.event);
  const state = (hookState(event) === 'waiting' ? notificationState(input.payload) : undefined) ?? hookState(event);
  if (!state) {
    throw new UsageError(`unknown hook event ${JSON.stringify(event)}`, {
      hint: 'use a Claude Code hook name (SessionStart, Stop, PreCompact, Notification, UserPromptSubmit, PreToolUse, PostToolUse, SessionEnd) or Codex notify',
    });
  }
  if (input.agent !== undefined) assertName('agent', input.agent);
  const name = await actingAgent(ctx.store, caller, input.agent, 'reporting a hook');
  const agent = await getAgent(ctx.store, caller, name);
  const at = nowOf(ctx);
  await ctx.repo.recordHook(agent.project, agent.name, event, at);
  const stored = await ctx.repo.get(agent.project, agent.name);
  if (stored?.state === 'parked') return { agent: agent.name, event, state: 'parked', at, changed: false };
  const { change } = await recordState(ctx, agent, stored, {
    state,
    confidence: 0.9,
    evidence: [{ signal: 'hook', detail: `hook ${event} at ${momentText(at)} → ${state}` }],
  });
  return { agent: agent.name, event, state, at, changed: change !== null };
}

/** `--until`: a duration from now (`2h`) or a date-time (`2026-11-21T17:00`). */
export function parseUntil(text: string, now: number): number {
  const at = parseMoment(text, '--until', now, 'ahead');
  if (at <= now) throw new UsageError(`--until ${text} is in the past`);
  return at;
}

/** The longest park reason: one line for status and history, not a document. */
export const MAX_PARK_REASON_CHARS = 1_000;

/** Refuses a park the CLI or MCP could pass unchecked: a moment no date holds, one in the past, a bad reason. */
function checkParkInput(input: { until?: number; reason?: string; release?: boolean }, now: number): void {
  if (input.until !== undefined) {
    if (!isMoment(input.until) || !Number.isInteger(input.until)) {
      throw new UsageError(`invalid --until ${String(input.until)}: a moment between 1970 and 9999`);
    }
    if (input.until <= now) throw new UsageError(`--until ${momentText(input.until)} is in the past`);
  }
  if (input.reason !== undefined) {
    if (typeof input.reason !== 'string') throw new UsageError('--reason must be text');
    refuseNul(input.reason, 'the park reason');
    if (input.reason.length > MAX_PARK_REASON_CHARS) {
      throw new UsageError(`the park reason is ${input.reason.length} characters; the limit is ${MAX_PARK_REASON_CHARS}`);
    }
  }
  if (input.release !== undefined && typeof input.release !== 'boolean') throw new UsageError('--release takes no value');
}

export async function parkAgent(
  ctx: LifecycleContext,
  caller: Caller,
  name: string,
  input: { until?: number; reason?: string; release?: boolean } = {},
  /** Who parks, for the record: default the operator (the economy parks for budgets and quota). */
  by = 'the operator',
): Promise<ActionRecord> {
  await requireAdmin(ctx.store, caller, 'parking an agent');
  const now = nowOf(ctx);
  // Everything is checked before the action's row is written: a refused park records nothing.
  checkParkInput(input, now);
  const agent = await getAgent(ctx.store, caller, name);
  const stored = await ctx.repo.get(agent.project, agent.name);
  const held = input.release ? await heldTasks(ctx, agent, now) : [];
  const record: AgentStateRecord = stored ?? unprobedRecord(agent, now);
  return runAction(
    ctx,
    caller,
    agent,
    record,
    { reading: { state: record.state, confidence: record.confidence, evidence: record.evidence }, snapshot: null, lastChangeAt: null, held },
    { action: 'park', reason: `parked by ${by}${input.reason ? `: ${input.reason}` : ''}`, until: input.until ?? null },
  );
}

/** The record of an agent the supervisor never read: state unknown since `now`, nothing observed. */
export function unprobedRecord(agent: Pick<Agent, 'project' | 'name'>, now: number): AgentStateRecord {
  return {
    project: agent.project,
    agent: agent.name,
    state: 'unknown',
    since: now,
    confidence: 0,
    evidence: [],
    probedAt: now,
    screenHash: null,
    lastChangeAt: null,
    parkedUntil: null,
    parkReason: null,
    pendingInject: null,
    sessionToken: null,
    hookEvent: null,
    hookAt: null,
  };
}

export async function unparkAgent(ctx: LifecycleContext, caller: Caller, name: string, by = 'the operator'): Promise<ActionRecord> {
  await requireAdmin(ctx.store, caller, 'unparking an agent');
  const agent = await getAgent(ctx.store, caller, name);
  const stored = await ctx.repo.get(agent.project, agent.name);
  if (stored?.state !== 'parked') throw new UsageError(`agent "${name}" is not parked (${stored?.state ?? 'never probed'})`);
  const at = nowOf(ctx);
  // Unknown until the next probe looks: parking hid what the session is doing.
  await recordState(ctx, agent, stored, { state: 'unknown', confidence: 0, evidence: [{ signal: 'unparked', detail: `unparked by ${by}; the next probe reads the session` }] });
  return ctx.repo.addAction({ project: agent.project, agent: agent.name, action: 'unpark', fromState: 'parked', outcome: 'done', detail: `unparked by ${by}`, at, recovery: null });
}

export interface AgentStatus {
  agent: string;
  kind: string;
  role: string;
  session: string | null;
  policy: string;
  state: LifecycleState | 'unprobed';
  since: number | null;
  confidence: number | null;
  /** The strongest evidence, in one line. */
  evidence: string | null;
  parkedUntil: number | null;
  holds: string[];
  unread: number;
  probedAt: number | null;
}

export async function agentStatus(ctx: LifecycleContext, caller: Caller): Promise<AgentStatus[]> {
  const agents = await listAgents(ctx.store, caller);
  const states = new Map((await ctx.repo.list(caller.project)).map((s) => [s.agent, s]));
  const squads = await listSquads(ctx.store, caller);
  const now = nowOf(ctx);
  // One query for every held task of the project, not one per agent.
  const held = new Map<string, string[]>();
  for (const t of await ctx.store.tasks.list(caller.project, { statuses: [...HELD_STATUSES], limit: 10_000 }, now)) {
    if (t.claimant !== null) held.set(t.claimant, [...(held.get(t.claimant) ?? []), t.id]);
  }
  const out: AgentStatus[] = [];
  for (const agent of agents) {
    const s = states.get(agent.name);
    const first = s?.evidence[0];
    out.push({
      agent: agent.name,
      kind: agent.kind,
      role: agent.role,
      session: agent.session,
      policy: agent.policy,
      state: s?.state ?? 'unprobed',
      since: s?.since ?? null,
      confidence: s?.confidence ?? null,
      evidence: first ? `${first.signal}: ${first.detail}` : null,
      parkedUntil: s?.parkedUntil ?? null,
      holds: held.get(agent.name) ?? [],
      unread: await ctx.bus.countUnread(caller.project, agent.name, streamsFrom(squads, agent.name), now),
      probedAt: s?.probedAt ?? null,
    });
  }
  return out;
}

export async function agentHistory(
  ctx: LifecycleContext,
  caller: Caller,
  name: string,
  limit = 50,
): Promise<{ states: StateChange[]; actions: ActionRecord[] }> {
  if (!Number.isInteger(limit) || limit < 1 || limit > 10_000) throw new UsageError('--limit must be from 1 to 10000');
  const agent = await getAgent(ctx.store, caller, name);
  return {
    states: await ctx.repo.history(agent.project, agent.name, limit),
    actions: await ctx.repo.actions(agent.project, agent.name, 0, limit),
  };
}

export async function lifecycleCounters(ctx: LifecycleContext, caller: Caller) {
  return ctx.repo.counters(caller.project);
}
