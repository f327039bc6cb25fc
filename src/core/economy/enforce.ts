import type { Caller } from '../auth/caller.js';
import { listAgents } from '../identity/agents.js';
import type { LifecycleContext } from '../lifecycle/context.js';
import { parkAgent, unparkAgent } from '../lifecycle/service.js';
import type { Agent } from '../store/types.js';
import { type BudgetState, liftBudget, markPaused, spentBudgets } from './budgets.js';
import { type PlanLimits, usageWindows } from './quota.js';

/**
 * What the economy makes the supervisor do (the daemon runs it every pass, as the operator):
 *
 * - a spent `pause` budget parks the scope's supervised agents (their claims released to the
 *   queue, as quota parking does) until the period rolls over, once per period: an agent the
 *   operator unparks is not parked again that period; `sos budgets lift` unparks them;
 * - an agent whose quota window is used up, or projected to be within the margin, is parked
 *   until the window resets, its claims released, so no work waits on an agent that cannot run.
 *
 * Park reasons start with `budget <scope>` or `quota`, which is how a lift finds its agents.
 */

export interface Enforced {
  agent: string;
  action: 'park' | 'unpark';
  why: string;
  outcome: string;
  until: number | null;
}

const budgetTag = (scope: string) => `budget ${scope}`;

/** The supervised agents (with a session) a budget scope covers now. */
async function agentsOf(ctx: LifecycleContext, caller: Caller, scope: string, agents: Agent[]): Promise<Agent[]> {
  const supervised = agents.filter((a) => a.session !== null);
  if (scope === 'project') return supervised;
  const name = scope.slice(scope.indexOf(':') + 1);
  if (scope.startsWith('agent:')) return supervised.filter((a) => a.name === name);
  if (scope.startsWith('squad:')) {
    const squad = await ctx.store.squads.get(caller.project, name);
    return supervised.filter((a) => squad?.members.includes(a.name));
  }
  const row = await ctx.store.sql.one<{ claimant: string | null }>("SELECT claimant FROM tasks WHERE project = $1 AND id = $2 AND status IN ('claimed', 'in_progress')", [caller.project, name]);
  return supervised.filter((a) => a.name === row?.claimant);
}

async function parked(ctx: LifecycleContext, agent: Agent): Promise<boolean> {
  return (await ctx.repo.get(agent.project, agent.name))?.state === 'parked';
}

/** Parks the agents of every spent pause budget not yet acted on this period. */
export async function enforcePauses(ctx: LifecycleContext, caller: Caller, now: number): Promise<Enforced[]> {
  const done: Enforced[] = [];
  const pauses = (await spentBudgets(ctx.store.sql, caller.project, now)).filter((b) => b.action === 'pause' && b.pausedAt === null);
  if (pauses.length === 0) return done;
  const agents = await listAgents(ctx.store, caller);
  for (const b of pauses) {
    if (!(await markPaused(ctx.store.sql, caller.project, b.scope, b.periodStart, now))) continue;
    for (const agent of await agentsOf(ctx, caller, b.scope, agents)) {
      if (await parked(ctx, agent)) continue;
      const until = b.periodEnd ?? undefined;
      const why = `${budgetTag(b.scope)} is spent (action pause)`;
      const r = await parkAgent(ctx, caller, agent.name, { ...(until !== undefined ? { until } : {}), reason: why, release: true }, 'the economy');
      done.push({ agent: agent.name, action: 'park', why, outcome: r.outcome, until: until ?? null });
    }
  }
  return done;
}

/** Parks the agents whose quota window is used up or about to be, until it resets. */
export async function enforceQuota(ctx: LifecycleContext, caller: Caller, now: number, limits: PlanLimits, marginMs: number): Promise<Enforced[]> {
  const done: Enforced[] = [];
  const windows = (await usageWindows(ctx.store, caller, { now, limits, marginMs })).filter((w) => !w.routable);
  if (windows.length === 0) return done;
  const agents = new Map((await listAgents(ctx.store, caller)).map((a) => [a.name, a]));
  for (const w of windows) {
    const agent = agents.get(w.agent);
    if (!agent || agent.session === null || (await parked(ctx, agent))) continue;
    const weekly = w.reason?.includes('7-day') ?? false;
    const until = (weekly ? w.sevenDay.end : w.fiveHour.end) ?? null;
    // An operator who unparked it inside this window meant it: not parked again until the next.
    const since = w.fiveHour.start ?? now - 5 * 3_600_000;
    const unparked = (await ctx.repo.actions(agent.project, agent.name, since, 20)).some((a) => a.action === 'unpark' && a.detail === 'unparked by the operator');
    if (unparked) continue;
    const why = `quota: ${w.reason}`;
    const r = await parkAgent(ctx, caller, agent.name, { ...(until !== null && until > now ? { until } : {}), reason: why, release: true }, 'the economy');
    done.push({ agent: agent.name, action: 'park', why, outcome: r.outcome, until: until !== null && until > now ? until : null });
  }
  return done;
}

/** `sos budgets lift`: lifts the period's block or pause and unparks the agents that budget parked. */
export async function liftAndUnpark(ctx: LifecycleContext, caller: Caller, scope: string, now = Date.now()): Promise<{ budget: BudgetState; unparked: string[] }> {
  const budget = await liftBudget(ctx.store, caller, scope, now);
  const unparked: string[] = [];
  const tag = `parked by the economy: ${budgetTag(scope)} `;
  for (const record of await ctx.repo.list(caller.project)) {
    if (record.state !== 'parked' || !record.parkReason?.startsWith(tag)) continue;
    await unparkAgent(ctx, caller, record.agent, `the operator lifting ${budgetTag(scope)}`);
    unparked.push(record.agent);
  }
  return { budget, unparked };
}
