import { type Caller, requireAdmin } from '../auth/caller.js';
import { claimBlocks } from '../economy/budgets.js';
import { type PlanLimits, usageWindows } from '../economy/quota.js';
import { Conflict } from '../errors.js';
import { getSquad } from '../identity/squads.js';
import { SqlLifecycleRepo } from '../lifecycle/sql-lifecycle.js';
import { assertName } from '../names.js';
import type { Agent } from '../store/types.js';
import { assignTask, type TaskContext } from './service.js';
import type { Task } from './types.js';

/**
 * Task routing (issue 14, "Task routing"). Two functions:
 *
 * - `agentRoutability`: the one rule for whether an agent may be given work now. Excluded: an
 *   agent that does not exist; one whose lifecycle state is dead, parked or quota; one whose
 *   5-hour or 7-day window says not routable (`usageWindows`); one a spent `block` or `pause`
 *   budget stops (`claimBlocks`: the project's, the agent's, or, when asked for a squad, that
 *   squad's). The brain's motor uses the same rule for its target (steps 4 and 5).
 * - `routeTasks`: assigns each queued, unassigned, unclaimed task whose dependencies are done to
 *   the cheapest routable agent that may claim it (the claim statement's rule: it holds every
 *   required capability, and is a member of the task's squad when it has one). Cheapest: a
 *   subscription plan (marginal cost 0) first; then agents with priced usage in the last 7 UTC
 *   days, lowest average cost per million tokens first; then agents with none. Ties go to the
 *   agent holding fewer open tasks (each assignment of the run counts), then by name. A task no
 *   agent can take is counted once per run in `unclaimed_routed_tasks` and reported with why.
 */

export interface RouteContext {
  tasks: TaskContext;
  /** Lifecycle states; absent: read from the Store's database (where the lifecycle keeps them). */
  lifecycle?: Pick<SqlLifecycleRepo, 'get'>;
}

export interface RoutabilityOptions {
  now: number;
  planLimits?: PlanLimits;
  quotaMarginMs?: number;
  /** Also exclude the agent when this squad's budget is spent (work of that squad). */
  squad?: string;
}

export interface Routability {
  routable: boolean;
  /** Why not, in one line; `routable` when it is. */
  reason: string;
  /** The rule that excluded it: `exists`, `lifecycle`, `quota`, `budget`; null when routable. */
  rule: 'exists' | 'lifecycle' | 'quota' | 'budget' | null;
}

const EXCLUDED_STATES = ['dead', 'parked', 'quota'];
const SUBSCRIPTIONS = ['pro', 'max', 'team'];
const DAY = 86_400_000;
/** Assignment, open work, and how many tasks one run looks at. */
const OPEN_STATUSES = ['queued', 'claimed', 'in_progress', 'review'];
const ROUTE_LIMIT = 1000;

const operator = (project: string): Caller => ({ project, agent: null, role: 'operator', via: 'local' });
const lifecycleOf = (ctx: RouteContext) => ctx.lifecycle ?? new SqlLifecycleRepo(ctx.tasks.store.sql);

async function judge(ctx: RouteContext, project: string, name: string, agent: Agent | undefined, options: RoutabilityOptions): Promise<Routability> {
  if (!agent) return { routable: false, reason: `agent "${name}" does not exist in project "${project}"`, rule: 'exists' };
  const state = (await lifecycleOf(ctx).get(project, name))?.state;
  if (state !== undefined && EXCLUDED_STATES.includes(state)) return { routable: false, reason: `agent "${name}" is ${state}`, rule: 'lifecycle' };
  const windows = await usageWindows(ctx.tasks.store, operator(project), {
    agent: name,
    now: options.now,
    ...(options.planLimits ? { limits: options.planLimits } : {}),
    ...(options.quotaMarginMs !== undefined ? { marginMs: options.quotaMarginMs } : {}),
  });
  if (windows[0] && !windows[0].routable) return { routable: false, reason: `agent "${name}": ${windows[0].reason}`, rule: 'quota' };
  const blocks = await claimBlocks(ctx.tasks.store.sql, project, name, options.now);
  const mark = blocks.all ?? (options.squad !== undefined ? blocks.squads.get(options.squad) : undefined);
  if (mark) return { routable: false, reason: `the budget on ${mark.scope} is spent (action ${mark.action})`, rule: 'budget' };
  return { routable: true, reason: 'routable', rule: null };
}

/** Whether `agent` may be given work now, and if not, why (see the module comment). */
export async function agentRoutability(ctx: RouteContext, project: string, agent: string, options: RoutabilityOptions): Promise<Routability> {
  return judge(ctx, project, agent, await ctx.tasks.store.agents.get(project, agent), options);
}

export interface RouteOptions {
  /** Only the tasks of this squad. */
  squad?: string;
  /** Decide and report, assign and count nothing. */
  dryRun?: boolean;
  now?: number;
  planLimits?: PlanLimits;
  quotaMarginMs?: number;
}

export type RouteOutcome = 'assigned' | 'would_assign' | 'unroutable' | 'taken';

export interface RoutedTask {
  task: string;
  title: string;
  priority: number;
  squad: string | null;
  requires: string[];
  outcome: RouteOutcome;
  /** The agent it went (or would go) to; null when unroutable or taken meanwhile. */
  agent: string | null;
  /** Why this agent, or why nobody. */
  reason: string;
  /** The capable agents that were excluded, with their reasons. */
  excluded: { agent: string; reason: string }[];
}

export interface RouteReport {
  dryRun: boolean;
  considered: number;
  assigned: number;
  unrouted: number;
  /** Claimed or assigned by someone else between the read and the write. */
  taken: number;
  tasks: RoutedTask[];
}

/** Average USD per million tokens of each agent's priced usage over the last 7 UTC days (today and the 6 before). */
async function pricesPerMillion(ctx: RouteContext, project: string, now: number): Promise<Map<string, number>> {
  const since = Math.floor(now / DAY) * DAY - 6 * DAY;
  // Rollup rows with an unpriced event are left out: their tokens would dilute the average.
  const rows = await ctx.tasks.store.sql.all<{ agent: string; cost: number | string | null; tokens: number | string | null }>(
    `SELECT agent, SUM(cost_micros) AS cost,
            SUM(input_tokens + output_tokens + cache_write_tokens + cache_write_1h_tokens + cache_read_tokens) AS tokens
       FROM usage_rollup WHERE project = $1 AND day >= $2 AND agent <> '' AND unknown_cost_events = 0
      GROUP BY agent`,
    [project, since],
  );
  const out = new Map<string, number>();
  // micro-dollars per token = dollars per million tokens.
  for (const r of rows) if (Number(r.tokens ?? 0) > 0) out.set(r.agent, Number(r.cost ?? 0) / Number(r.tokens));
  return out;
}

/** Open tasks each agent holds or is assigned. */
async function loads(ctx: RouteContext, project: string): Promise<Map<string, number>> {
  const rows = await ctx.tasks.store.sql.all<{ agent: string; n: number | string }>(
    `SELECT COALESCE(claimant, assignee) AS agent, COUNT(*) AS n FROM tasks
      WHERE project = $1 AND status IN (${OPEN_STATUSES.map((_, i) => `$${i + 2}`).join(', ')}) AND COALESCE(claimant, assignee) IS NOT NULL
      GROUP BY COALESCE(claimant, assignee)`,
    [project, ...OPEN_STATUSES],
  );
  return new Map(rows.map((r) => [r.agent, Number(r.n)]));
}

interface Rank {
  tier: 0 | 1 | 2;
  cost: number;
  why: string;
}

function rankOf(agent: Agent, prices: Map<string, number>): Rank {
  if (agent.plan !== null && SUBSCRIPTIONS.includes(agent.plan)) return { tier: 0, cost: 0, why: `subscription (${agent.plan}): marginal cost 0` };
  const price = prices.get(agent.name);
  if (price !== undefined) return { tier: 1, cost: price, why: `$${price.toFixed(2)} per million tokens over 7 days` };
  return { tier: 2, cost: 0, why: 'no priced usage in 7 days' };
}

const byName = (a: Agent, b: Agent) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);

function row(task: Task, outcome: RouteOutcome, agent: string | null, reason: string, excluded: RoutedTask['excluded'] = []): RoutedTask {
  return { task: task.id, title: task.title, priority: task.priority, squad: task.squad, requires: task.requires, outcome, agent, reason, excluded };
}

/**
 * Routes the caller's project's open, unassigned work (see the module comment). Operator or
 * admin only. Each assignment is `assignTask`'s guarded write, so a task claimed or assigned
 * meanwhile (another router, a worker's claim) is reported as `taken` and never assigned twice.
 */
export async function routeTasks(ctx: RouteContext, caller: Caller, options: RouteOptions = {}): Promise<RouteReport> {
  const store = ctx.tasks.store;
  await requireAdmin(store, caller, 'routing tasks');
  const project = caller.project;
  if (options.squad !== undefined) {
    assertName('squad', options.squad);
    await getSquad(store, caller, options.squad);
  }
  const now = options.now ?? ctx.tasks.now?.() ?? Date.now();
  const dryRun = options.dryRun === true;
  const queued = await store.tasks.list(project, { statuses: ['queued'], ...(options.squad !== undefined ? { squad: options.squad } : {}), limit: 100_000 }, now);
  // Waiting on dependencies is not work yet: such a task is neither routed nor counted.
  const open = queued.filter((t) => t.assignee === null && t.claimant === null && t.unmetDeps === 0).slice(0, ROUTE_LIMIT);
  const report: RouteReport = { dryRun, considered: open.length, assigned: 0, unrouted: 0, taken: 0, tasks: [] };
  if (open.length === 0) return report;

  const agents = (await store.agents.list(project)).sort(byName);
  const members = new Map((await store.squads.list(project)).map((s) => [s.name, new Set(s.members)]));
  const prices = await pricesPerMillion(ctx, project, now);
  const load = await loads(ctx, project);
  // An empty agent name matches no `agent:` scope: this reads only the project, squad and task marks.
  const marks = await claimBlocks(store.sql, project, '', now);
  const judged = new Map<string, Promise<Routability>>();
  const routability = (a: Agent) => {
    let r = judged.get(a.name);
    if (!r) {
      r = judge(ctx, project, a.name, a, { now, ...(options.planLimits ? { planLimits: options.planLimits } : {}), ...(options.quotaMarginMs !== undefined ? { quotaMarginMs: options.quotaMarginMs } : {}) });
      judged.set(a.name, r);
    }
    return r;
  };

  const decide = async (t: Task): Promise<RoutedTask> => {
    const spent = marks.tasks.get(t.id) ?? (t.squad !== null ? marks.squads.get(t.squad) : undefined);
    if (spent) return row(t, 'unroutable', null, `the budget on ${spent.scope} is spent (action ${spent.action})`);
    const inSquad = t.squad === null ? agents : agents.filter((a) => members.get(t.squad!)?.has(a.name));
    const capable = inSquad.filter((a) => t.requires.every((c) => a.capabilities.includes(c)));
    if (capable.length === 0) {
      if (t.squad !== null && inSquad.length === 0) return row(t, 'unroutable', null, `squad ${t.squad} has no members`);
      if (inSquad.length === 0) return row(t, 'unroutable', null, `project "${project}" has no agents`);
      return row(t, 'unroutable', null, `no ${t.squad !== null ? `member of squad ${t.squad}` : 'agent'} has the capabilities ${t.requires.join(', ')}`);
    }
    const excluded: RoutedTask['excluded'] = [];
    const routable: Agent[] = [];
    for (const a of capable) {
      const r = await routability(a);
      if (r.routable) routable.push(a);
      else excluded.push({ agent: a.name, reason: r.reason });
    }
    if (routable.length === 0) {
      return row(t, 'unroutable', null, `every capable agent is excluded: ${excluded.map((e) => `${e.agent}: ${e.reason}`).join('; ')}`, excluded);
    }
    const best = routable
      .map((a) => ({ a, rank: rankOf(a, prices), load: load.get(a.name) ?? 0 }))
      .sort((x, y) => x.rank.tier - y.rank.tier || x.rank.cost - y.rank.cost || x.load - y.load || byName(x.a, y.a))[0]!;
    return row(t, dryRun ? 'would_assign' : 'assigned', best.a.name, `${best.rank.why}; ${best.load} open task${best.load === 1 ? '' : 's'}`, excluded);
  };

  for (const task of open) {
    const decided = await decide(task);
    if (decided.outcome === 'unroutable') {
      report.unrouted++;
      if (!dryRun) await store.counters.add(project, 'unclaimed_routed_tasks');
      report.tasks.push(decided);
      continue;
    }
    const agent = decided.agent!;
    if (!dryRun) {
      try {
        await assignTask(ctx.tasks, caller, { id: task.id, agent });
      } catch (err) {
        if (!(err instanceof Conflict)) throw err;
        report.taken++;
        report.tasks.push(row(task, 'taken', null, err.message));
        continue;
      }
    }
    // Counted at once, so equal agents share the queue instead of the first taking all of it.
    load.set(agent, (load.get(agent) ?? 0) + 1);
    report.assigned++;
    report.tasks.push(decided);
  }
  return report;
}
