import { z } from 'zod';
import type { Caller } from '../auth/caller.js';
import { UsageError } from '../errors.js';
import { getAgent, listAgents } from '../identity/agents.js';
import type { Store } from '../store/port.js';
import type { SqlExecutor } from '../store/sql/driver.js';
import type { Agent, AgentPlan } from '../store/types.js';

/**
 * Quota windows of subscription plans (issue 13). A flat-rate plan (`pro`, `max`, `team`) is
 * limited by a 5-hour window and a rolling 7-day total, not by money. Two kinds of figure:
 *
 * - reported: what the source itself says, kept as the latest reading per agent, window and
 *   source in `quota_readings` (Codex's `rate_limits` in its token_count events, Claude Code's
 *   `rate_limits` handed to `sos statusline`, an API's rate-limit headers);
 * - estimate: from the ledger. A 5-hour window opens at the first call after the previous window
 *   ended and lasts 5 hours; the tokens it counts are input + output + cache writes (cache reads
 *   are shown but not counted: they dwarf the rest and no plan is known to weigh them equally);
 *   the limit is the plan's from `SOS_PLAN_LIMITS` (defaults are estimates, documented in the
 *   README).
 *
 * The projection of when a window's limit is reached uses the burn rate over the last 30 minutes,
 * and the reported percentage where there is one (the limit it implies), else the plan's limit.
 */

export const QUOTA_WINDOWS = ['five_hour', 'seven_day'] as const;
export type QuotaWindow = (typeof QUOTA_WINDOWS)[number];
export const QUOTA_SOURCES = ['codex', 'statusline', 'api'] as const;
export type QuotaSource = (typeof QUOTA_SOURCES)[number];

export const FIVE_HOURS = 5 * 3_600_000;
export const SEVEN_DAYS = 7 * 86_400_000;
const BURN_SPAN = 30 * 60_000;

export interface QuotaReading {
  project: string;
  /** `-` when no agent could be found for it. */
  agent: string;
  window: QuotaWindow;
  source: QuotaSource;
  usedPercent: number;
  windowMinutes: number | null;
  /** Epoch ms; null when the source gave none. */
  resetsAt: number | null;
  observedAt: number;
}

/** Keeps the reading unless a newer one of the same agent, window and source is stored. */
export async function saveQuotaReading(db: SqlExecutor, r: QuotaReading): Promise<void> {
  if (!Number.isFinite(r.usedPercent) || r.usedPercent < 0) return;
  await db.run(
    `INSERT INTO quota_readings (project, agent, quota_window, source, used_percent, window_minutes, resets_at, observed_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
     ON CONFLICT (project, agent, quota_window, source) DO UPDATE SET
       used_percent = excluded.used_percent, window_minutes = excluded.window_minutes,
       resets_at = excluded.resets_at, observed_at = excluded.observed_at
     WHERE quota_readings.observed_at <= excluded.observed_at`,
    [r.project, r.agent, r.window, r.source, r.usedPercent, r.windowMinutes, r.resetsAt, r.observedAt],
  );
}

export async function quotaReadings(db: SqlExecutor, project: string): Promise<QuotaReading[]> {
  const rows = await db.all<{ agent: string; quota_window: QuotaWindow; source: QuotaSource; used_percent: number; window_minutes: number | null; resets_at: number | null; observed_at: number }>(
    'SELECT agent, quota_window, source, used_percent, window_minutes, resets_at, observed_at FROM quota_readings WHERE project = $1 ORDER BY agent, quota_window, observed_at DESC',
    [project],
  );
  return rows.map((r) => ({
    project,
    agent: r.agent,
    window: r.quota_window,
    source: r.source,
    usedPercent: Number(r.used_percent),
    windowMinutes: r.window_minutes === null ? null : Number(r.window_minutes),
    resetsAt: r.resets_at === null ? null : Number(r.resets_at),
    observedAt: Number(r.observed_at),
  }));
}

/** Seconds (what Codex, Claude Code and the API headers give) or milliseconds, to epoch ms. */
export function epochMs(v: number | null | undefined): number | null {
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) return null;
  return v < 1e11 ? Math.round(v * 1000) : Math.round(v);
}

// ---------------------------------------------------------------- plan limits

export interface PlanLimit {
  /** Tokens (input + output + cache writes) per 5-hour window; null: unknown. */
  fiveHourTokens: number | null;
  /** Tokens per rolling 7 days; null: unknown. */
  weeklyTokens: number | null;
}
export type PlanLimits = Record<Exclude<AgentPlan, 'api'>, PlanLimit>;

/**
 * Estimates, not published figures: Anthropic and OpenAI do not publish token limits for their
 * plans, and they change. Operators set their own with SOS_PLAN_LIMITS.
 */
export const DEFAULT_PLAN_LIMITS: PlanLimits = {
  pro: { fiveHourTokens: 44_000, weeklyTokens: null },
  max: { fiveHourTokens: 220_000, weeklyTokens: null },
  team: { fiveHourTokens: 88_000, weeklyTokens: null },
};

const limitSchema = z
  .object({ five_hour_tokens: z.number().int().positive().nullable().optional(), weekly_tokens: z.number().int().positive().nullable().optional() })
  .strict();
const limitsSchema = z.object({ pro: limitSchema.optional(), max: limitSchema.optional(), team: limitSchema.optional() }).strict();

/** SOS_PLAN_LIMITS: JSON `{"max": {"five_hour_tokens": n, "weekly_tokens": n}, …}` overlaid on the defaults. */
export function parsePlanLimits(text: string | undefined): PlanLimits {
  const out: PlanLimits = structuredClone(DEFAULT_PLAN_LIMITS);
  if (text === undefined || text.trim() === '') return out;
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw new UsageError(`SOS_PLAN_LIMITS is not JSON: ${(err as Error).message}`, { hint: 'e.g. {"max":{"five_hour_tokens":220000,"weekly_tokens":5000000}}' });
  }
  const parsed = limitsSchema.safeParse(data);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new UsageError(`SOS_PLAN_LIMITS: ${issue.path.join('.') || '(root)'}: ${issue.message}`, { hint: 'plans pro, max, team; keys five_hour_tokens, weekly_tokens (positive integers or null)' });
  }
  for (const [plan, l] of Object.entries(parsed.data) as [keyof PlanLimits, z.infer<typeof limitSchema>][]) {
    if (l.five_hour_tokens !== undefined) out[plan].fiveHourTokens = l.five_hour_tokens;
    if (l.weekly_tokens !== undefined) out[plan].weeklyTokens = l.weekly_tokens;
  }
  return out;
}

// ---------------------------------------------------------------- windows

export interface Reported {
  usedPercent: number;
  resetsAt: number | null;
  source: QuotaSource;
  observedAt: number;
}

export interface WindowFigures {
  /** Window start (estimate) and end: the reported reset when there is one, else start + 5 h. */
  start: number | null;
  end: number | null;
  /** Counted tokens (input + output + cache writes) in the window; cache reads apart. */
  tokens: number;
  cacheReadTokens: number;
  /** API-equivalent cost of the window's priced events. */
  costMicros: number;
  events: number;
  limitTokens: number | null;
  /** The percentage in force and where it came from: the source's report, the ledger's estimate, or none. */
  usedPercent: number | null;
  basis: 'reported' | 'estimate' | null;
  reported: Reported | null;
}

export interface AgentWindows {
  agent: string;
  plan: AgentPlan | null;
  fiveHour: WindowFigures;
  sevenDay: WindowFigures;
  /** Over the last 30 minutes. */
  burnTokensPerHour: number;
  burnCostMicrosPerHour: number;
  /** When the 5-hour limit is reached at this burn rate, if before the window ends; null: not projected to. */
  projectedLimitAt: number | null;
  /**
   * How far ahead a projected limit makes the agent unroutable: SOS_QUOTA_MARGIN_MS, or, when the
   * agent holds a claim, how long its recent tasks took (median, claim to completion) if longer.
   */
  marginMs: number;
  /** False when the agent should be given no work: a window is used up, or projected to be within the margin. */
  routable: boolean;
  reason: string | null;
}

export interface WindowsOptions {
  agent?: string;
  now?: number;
  limits?: PlanLimits;
  /** An agent whose limit is projected within this is not routable. Default 15 minutes. */
  marginMs?: number;
}

interface Call {
  at: number;
  tokens: number;
  cacheRead: number;
  cost: number;
}

/** The ledger's 5-hour windows of a sorted call list: the one that holds `now`, or null. */
export function currentWindow(calls: readonly Call[], now: number): { start: number; end: number } | null {
  let start: number | null = null;
  for (const c of calls) {
    if (c.at > now) break;
    if (start === null || c.at >= start + FIVE_HOURS) start = c.at;
  }
  return start !== null && start + FIVE_HOURS > now ? { start, end: start + FIVE_HOURS } : null;
}

function sum(calls: readonly Call[], from: number, to: number) {
  let tokens = 0;
  let cacheRead = 0;
  let cost = 0;
  let events = 0;
  for (const c of calls) {
    if (c.at < from || c.at >= to) continue;
    tokens += c.tokens;
    cacheRead += c.cacheRead;
    cost += c.cost;
    events++;
  }
  return { tokens, cacheRead, cost, events };
}

function freshReport(readings: readonly QuotaReading[], window: QuotaWindow, now: number): Reported | null {
  const span = window === 'five_hour' ? FIVE_HOURS : SEVEN_DAYS;
  const fresh = readings
    .filter((r) => r.window === window && (r.resetsAt === null ? now - r.observedAt < span : r.resetsAt > now))
    .sort((a, b) => b.observedAt - a.observedAt)[0];
  return fresh ? { usedPercent: fresh.usedPercent, resetsAt: fresh.resetsAt, source: fresh.source, observedAt: fresh.observedAt } : null;
}

/** The windows of one agent from its calls (sorted by time) and its readings. */
export function agentWindows(agent: Pick<Agent, 'name' | 'plan'>, calls: readonly Call[], readings: readonly QuotaReading[], options: Required<Pick<WindowsOptions, 'limits' | 'marginMs'>> & { now: number }): AgentWindows {
  const { now, limits, marginMs } = options;
  const limit = agent.plan && agent.plan !== 'api' ? limits[agent.plan] : null;
  const five = currentWindow(calls, now);
  const fiveReport = freshReport(readings, 'five_hour', now);
  const weekReport = freshReport(readings, 'seven_day', now);
  const fiveSum = five ? sum(calls, five.start, now + 1) : { tokens: 0, cacheRead: 0, cost: 0, events: 0 };
  const weekSum = sum(calls, now - SEVEN_DAYS, now + 1);
  const figures = (s: typeof fiveSum, start: number | null, end: number | null, limitTokens: number | null, reported: Reported | null): WindowFigures => {
    const estimate = limitTokens ? Math.round((s.tokens / limitTokens) * 1000) / 10 : null;
    return {
      start,
      end,
      tokens: s.tokens,
      cacheReadTokens: s.cacheRead,
      costMicros: s.cost,
      events: s.events,
      limitTokens,
      usedPercent: reported ? reported.usedPercent : estimate,
      basis: reported ? 'reported' : estimate !== null ? 'estimate' : null,
      reported,
    };
  };
  const fiveEnd = fiveReport?.resetsAt ?? five?.end ?? null;
  const fiveHour = figures(fiveSum, five?.start ?? null, fiveEnd, limit?.fiveHourTokens ?? null, fiveReport);
  const sevenDay = figures(weekSum, now - SEVEN_DAYS, weekReport?.resetsAt ?? null, limit?.weeklyTokens ?? null, weekReport);

  const burn = sum(calls, now - BURN_SPAN, now + 1);
  const burnTokensPerHour = Math.round((burn.tokens * 3_600_000) / BURN_SPAN);
  const burnCostMicrosPerHour = Math.round((burn.cost * 3_600_000) / BURN_SPAN);

  // Tokens left in the 5-hour window: from the limit the reported percentage implies, else the plan's.
  let left: number | null = null;
  if (fiveReport) {
    if (fiveReport.usedPercent >= 100) left = 0;
    else if (fiveReport.usedPercent > 0 && fiveSum.tokens > 0) left = (fiveSum.tokens * (100 - fiveReport.usedPercent)) / fiveReport.usedPercent;
  } else if (fiveHour.limitTokens !== null) {
    left = Math.max(0, fiveHour.limitTokens - fiveSum.tokens);
  }
  let projectedLimitAt: number | null = null;
  if (left === 0) projectedLimitAt = now;
  else if (left !== null && burnTokensPerHour > 0) {
    const at = now + Math.round((left / burnTokensPerHour) * 3_600_000);
    if (fiveEnd === null || at < fiveEnd) projectedLimitAt = at;
  }

  let reason: string | null = null;
  if (weekReport && weekReport.usedPercent >= 100) reason = `the 7-day window is used up (${weekReport.source})`;
  else if (fiveReport && fiveReport.usedPercent >= 100) reason = `the 5-hour window is used up (${fiveReport.source})`;
  else if (sevenDay.limitTokens !== null && weekSum.tokens >= sevenDay.limitTokens) reason = 'the 7-day window is used up (estimate)';
  else if (projectedLimitAt !== null && projectedLimitAt - now <= marginMs) {
    reason = `the 5-hour window's limit is projected within ${Math.max(0, Math.round((projectedLimitAt - now) / 60_000))} min (${fiveReport ? 'reported' : 'estimate'})`;
  }
  return { agent: agent.name, plan: agent.plan, fiveHour, sevenDay, burnTokensPerHour, burnCostMicrosPerHour, projectedLimitAt, marginMs, routable: reason === null, reason };
}

/** One query for the calls of the last 7 days of the agents asked for. */
async function callsOf(db: SqlExecutor, project: string, agents: readonly string[], since: number): Promise<Map<string, Call[]>> {
  const out = new Map<string, Call[]>(agents.map((a) => [a, []]));
  if (agents.length === 0) return out;
  const rows = await db.all<{ agent: string; occurred_at: number; tokens: number; cache_read: number; cost: number | null }>(
    `SELECT agent, occurred_at, input_tokens + output_tokens + cache_write_tokens + cache_write_1h_tokens AS tokens,
            cache_read_tokens AS cache_read, cost_micros AS cost
       FROM usage_events
      WHERE project = $1 AND occurred_at >= $2 AND agent IN (${agents.map((_, i) => `$${i + 3}`).join(', ')})
      ORDER BY agent, occurred_at`,
    [project, since, ...agents],
  );
  for (const r of rows) out.get(r.agent)?.push({ at: Number(r.occurred_at), tokens: Number(r.tokens), cacheRead: Number(r.cache_read), cost: Number(r.cost ?? 0) });
  return out;
}

/**
 * `sos usage windows`: every agent on a subscription plan, or with a quota reading, or the one
 * asked for. Readable by any member of the project (like `sos usage`).
 */
export async function usageWindows(store: Store, caller: Caller, options: WindowsOptions = {}): Promise<AgentWindows[]> {
  const now = options.now ?? Date.now();
  const readings = await quotaReadings(store.sql, caller.project);
  let agents: Agent[];
  if (options.agent !== undefined) agents = [await getAgent(store, caller, options.agent)];
  else {
    const withReadings = new Set(readings.map((r) => r.agent));
    agents = (await listAgents(store, caller)).filter((a) => (a.plan !== null && a.plan !== 'api') || withReadings.has(a.name));
  }
  const calls = await callsOf(store.sql, caller.project, agents.map((a) => a.name), now - SEVEN_DAYS);
  const limits = options.limits ?? DEFAULT_PLAN_LIMITS;
  const base = options.marginMs ?? 15 * 60_000;
  const holding = await holders(store.sql, caller.project);
  const out: AgentWindows[] = [];
  for (const a of agents) {
    // An agent at work needs room for the task it holds: as long as its recent tasks took.
    const typical = holding.has(a.name) ? await typicalTaskMs(store.sql, caller.project, a.name) : null;
    const marginMs = Math.max(base, typical ?? 0);
    out.push(agentWindows(a, calls.get(a.name) ?? [], readings.filter((r) => r.agent === a.name), { now, limits, marginMs }));
  }
  return out;
}

async function holders(db: SqlExecutor, project: string): Promise<Set<string>> {
  const rows = await db.all<{ claimant: string }>("SELECT DISTINCT claimant FROM tasks WHERE project = $1 AND status IN ('claimed', 'in_progress') AND claimant IS NOT NULL", [project]);
  return new Set(rows.map((r) => r.claimant));
}

/** The median time from claim to completion of the agent's last 20 completed tasks; null with none. */
export async function typicalTaskMs(db: SqlExecutor, project: string, agent: string): Promise<number | null> {
  const rows = await db.all<{ done_at: number | string; claimed_at: number | string | null }>(
    `SELECT c.at AS done_at,
            (SELECT MAX(e.at) FROM task_events e WHERE e.task_seq = c.task_seq AND e.event = 'claimed' AND e.at <= c.at) AS claimed_at
       FROM task_events c JOIN tasks t ON t.seq = c.task_seq
      WHERE t.project = $1 AND c.event = 'complete' AND c.actor = $2
      ORDER BY c.id DESC LIMIT 20`,
    [project, agent],
  );
  const spans = rows.filter((r) => r.claimed_at !== null).map((r) => Number(r.done_at) - Number(r.claimed_at!)).sort((x, y) => x - y);
  if (spans.length === 0) return null;
  const mid = Math.floor(spans.length / 2);
  return spans.length % 2 ? spans[mid]! : Math.round((spans[mid - 1]! + spans[mid]!) / 2);
}
