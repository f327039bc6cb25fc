import { z } from 'zod';
import type { Caller } from '../auth/caller.js';
import { escalateToCoordinators, systemMessage } from '../bus/service.js';
import type { CheckResult } from '../doctor/checks.js';
import { spentBudgets } from '../economy/budgets.js';
import type { PlanLimits } from '../economy/quota.js';
import { SosError } from '../errors.js';
import type { SqlLifecycleRepo } from '../lifecycle/sql-lifecycle.js';
import { CAPABILITY_PATTERN, NAME_PATTERN } from '../names.js';
import { agentRoutability } from '../tasks/route.js';
import { createTask, type TaskContext } from '../tasks/service.js';
import { enqueueApproval, tierFor } from './governance.js';
import { isTaskCleanup, retiredMarkers, staleVerdict } from './stale.js';

/**
 * The motor (issue 14): the only way a brain decision changes anything. A proposal passes the
 * checks in this order, and the first that refuses decides the outcome, recorded and counted:
 *
 *   schema (the method's arguments) → allow-list → stale directive → duplicate work →
 *   target liveness and routability → budget → governance tier → execute
 *
 * Only the allow-listed methods exist, each a small function over core; anything else is
 * `rejected_unsupported`, never approximated. Every mutation's idempotency key is derived from
 * the cycle, so a retried cycle never creates twice. Nothing from the model reaches a shell.
 */

export const MOTOR_METHODS = ['create_task', 'send_message', 'research', 'fix_code', 'health_check', 'post_content', 'send_outreach'] as const;
export type MotorMethod = (typeof MOTOR_METHODS)[number];

export const GOVERNANCE_TIERS = ['act_freely', 'batch_approve', 'human_gate', 'dual_approval'] as const;
export type GovernanceTier = (typeof GOVERNANCE_TIERS)[number];
/** The tier of each method unless the project sets its own (`sos governance set`, governance.ts). */
export const DEFAULT_TIERS: Record<MotorMethod, GovernanceTier> = {
  create_task: 'act_freely',
  send_message: 'act_freely',
  research: 'act_freely',
  fix_code: 'act_freely',
  health_check: 'act_freely',
  post_content: 'human_gate',
  send_outreach: 'human_gate',
};

export const MOTOR_OUTCOMES = [
  'executed',
  'dry_run',
  'rejected_schema',
  'rejected_unsupported',
  'skipped_stale',
  'skipped_duplicate',
  'skipped_unroutable',
  'blocked_budget',
  'gated',
  'failed',
] as const;
export type MotorOutcome = (typeof MOTOR_OUTCOMES)[number];

/** What the motor is handed: the validated decision's method, target and arguments. */
export interface Proposal {
  method: string;
  agent: string | null;
  goal_id: string | null;
  details: Record<string, unknown>;
}

export interface MotorVerdict {
  outcome: MotorOutcome;
  /** The check that decided: schema, allow_list, stale, duplicate, target, budget, governance, execute. */
  check: string;
  reason: string;
  /** What an executed proposal made: the task or message ids; a gated one, its approval. */
  made?: { tasks?: string[]; messages?: string[]; approvals?: string[] };
}

export interface MotorContext {
  tasks: TaskContext;
  /** Lifecycle states (dead, parked, quota agents are not targets); absent: states are not consulted. */
  lifecycle?: Pick<SqlLifecycleRepo, 'get'>;
  /** The doctor checks for `health_check`; absent: it reports that it cannot run them. */
  health?: () => Promise<CheckResult[]>;
  planLimits?: PlanLimits;
  quotaMarginMs?: number;
  now?: () => number;
  /** How far back a created cleanup task counts as recent for the cleanup-of-cleanup rule. Default 24 h. */
  cleanupWindowMs?: number;
}

const name = z.string().regex(NAME_PATTERN);
const taskArgs = z.object({
  title: z.string().trim().min(1).max(200),
  text: z.string().max(8_000).optional(),
  squad: name.optional(),
  requires: z.array(z.string().regex(CAPABILITY_PATTERN)).max(10).optional(),
  labels: z.array(z.string().regex(CAPABILITY_PATTERN)).max(10).optional(),
  priority: z.enum(['critical', 'high', 'normal', 'low']).optional(),
});
const ARGS: Record<MotorMethod, z.ZodType<Record<string, unknown>>> = {
  create_task: taskArgs,
  research: taskArgs,
  fix_code: taskArgs,
  post_content: taskArgs,
  send_outreach: taskArgs,
  send_message: z.object({ to: name.optional(), text: z.string().trim().min(1).max(4_000) }),
  health_check: z.object({}),
};

const OPEN = ['backlog', 'queued', 'claimed', 'in_progress', 'review', 'blocked'];
const normaliseTitle = (t: string) => t.toLowerCase().replace(/[^a-z0-9]+/g, ' ').trim();
/** Lower-case stems that every cleanup verb of `isTaskCleanup` contains (for the SQL narrowing). */
const CLEANUP_STEMS = ['delet', 'clean', 'purg', 'prun', 'remov', 'wipe', 'archiv', 'dedup', 'cancel', 'close'];

/** Counted per outcome; stale skips and unsupported methods are also the paper's observables. */
async function count(ctx: MotorContext, project: string, outcome: MotorOutcome): Promise<void> {
  await ctx.tasks.store.counters.add(project, `motor_${outcome}`);
  if (outcome === 'skipped_stale') await ctx.tasks.store.counters.add(project, 'stale_enqueue_attempts');
  if (outcome === 'rejected_unsupported') await ctx.tasks.store.counters.add(project, 'blocked_methods');
}

export interface MotorOptions {
  /** Judge only: nothing is executed or enqueued. */
  dryRun?: boolean;
  /**
   * The proposal was approved in the approval queue (governance.ts): every check runs again,
   * the governance step is skipped, and the idempotency key stays `brain:<cycle>:<method>`.
   */
  approved?: boolean;
}

/**
 * Judges one proposal and, unless `dryRun` or a check refuses, executes it. `caller` is who the
 * brain acts as (the operator in the daemon); `cycle` names the cycle, for idempotency keys.
 */
export async function runMotor(ctx: MotorContext, caller: Caller, cycle: string, proposal: Proposal, options: MotorOptions = {}): Promise<MotorVerdict> {
  const verdict = await judge(ctx, caller, cycle, proposal, options.dryRun === true, options.approved === true);
  await count(ctx, caller.project, verdict.outcome);
  return verdict;
}

async function judge(ctx: MotorContext, caller: Caller, cycle: string, p: Proposal, dryRun: boolean, approved: boolean): Promise<MotorVerdict> {
  const now = ctx.now?.() ?? Date.now();
  const project = caller.project;
  const db = ctx.tasks.store.sql;
  // 1. allow-list before arguments: an invented method is refused as such, whatever it carries.
  if (!(MOTOR_METHODS as readonly string[]).includes(p.method)) {
    return { outcome: 'rejected_unsupported', check: 'allow_list', reason: `"${String(p.method).slice(0, 80)}" is not a motor method (${MOTOR_METHODS.join(', ')})` };
  }
  const method = p.method as MotorMethod;
  const parsed = ARGS[method].safeParse(p.details ?? {});
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    return { outcome: 'rejected_schema', check: 'schema', reason: `${method}: details.${issue.path.join('.') || '(root)'}: ${issue.message}` };
  }
  const args = parsed.data as z.infer<typeof taskArgs> & { to?: string; text?: string };
  const target = method === 'send_message' ? (args.to ?? p.agent) : p.agent;
  if (method === 'send_message' && !target) return { outcome: 'rejected_schema', check: 'schema', reason: 'send_message: no recipient (agent or details.to)' };

  // 2. stale directive: retired markers and a closed goal first (no task scan), then, for a
  // cleanup of tasks, whether a cleanup is recent or still open.
  const text = [args.title, args.text].filter(Boolean).join('\n');
  const markers = (await retiredMarkers(ctx.tasks.store, caller)).map((m) => m.marker);
  let goalStatus: 'open' | 'done' | 'dropped' | 'missing' | undefined;
  if (p.goal_id) {
    const g = await db.one<{ status: 'open' | 'done' | 'dropped' }>('SELECT status FROM goals WHERE project = $1 AND id = $2', [project, p.goal_id]);
    goalStatus = g?.status ?? 'missing';
  }
  const quick = staleVerdict(text, { markers, cleanupPending: false, ...(goalStatus ? { goalStatus } : {}) });
  if (quick.stale) return { outcome: 'skipped_stale', check: 'stale', reason: `${quick.rule}: ${quick.reason}` };
  // The open (or recent) tasks these checks compare with are narrowed in SQL first, so that a
  // project with thousands of open tasks does not ship every title to this process: cleanup
  // verbs' stems for the cleanup rule, the title's longest word for the duplicate rule. Each
  // narrowing is a superset of what the JS test after it accepts (a title whose JS lower-casing turns a
  // non-ASCII letter into an ASCII one, such as the Kelvin sign, is the one blind spot).
  const openList = OPEN.map((_, i) => `$${i + 3}`).join(', ');
  const candidates = (likes: string[], join: 'OR' | 'AND') =>
    db.all<{ id: string; title: string; status: string }>(
      `SELECT id, title, status FROM tasks WHERE project = $1 AND (status IN (${openList}) OR created_at >= $2)
         AND (${likes.map((_, i) => `LOWER(title) LIKE $${i + 3 + OPEN.length}`).join(` ${join} `)})`,
      [project, now - (ctx.cleanupWindowMs ?? 86_400_000), ...OPEN, ...likes],
    );
  if (isTaskCleanup(text)) {
    const recent = await candidates(CLEANUP_STEMS.map((stem) => `%${stem}%`), 'OR');
    if (recent.some((t) => isTaskCleanup(t.title))) {
      return { outcome: 'skipped_stale', check: 'stale', reason: 'cleanup_of_cleanup: it cleans up tasks while a cleanup task is recent or still open' };
    }
  }

  // 3. duplicate work: an open task with the same normalised title.
  if (args.title !== undefined) {
    const title = normaliseTitle(args.title);
    // Every word of the normalised title is in the original (ASCII, any case): the longest few, ANDed.
    const words = [...new Set(title.split(' ').filter(Boolean))].sort((a, b) => b.length - a.length).slice(0, 8);
    const same = words.length ? (await candidates(words.map((w) => `%${w}%`), 'AND')).find((t) => OPEN.includes(t.status) && normaliseTitle(t.title) === title) : undefined;
    if (same) return { outcome: 'skipped_duplicate', check: 'duplicate', reason: `task ${same.id} is already open with this title` };
  }

  // 4. the target must be able to take work now, by the one routing rule (tasks/route.ts): it
  // exists, is not dead, parked or out of quota, and no spent block or pause budget stops it
  // (the project's, its own, or the proposed squad's); a budget refusal is the budget check's.
  if (target) {
    const r = await agentRoutability(ctx, project, target, {
      now,
      ...(ctx.planLimits ? { planLimits: ctx.planLimits } : {}),
      ...(ctx.quotaMarginMs ? { quotaMarginMs: ctx.quotaMarginMs } : {}),
      ...(args.squad ? { squad: args.squad } : {}),
    });
    if (!r.routable) return r.rule === 'budget' ? { outcome: 'blocked_budget', check: 'budget', reason: r.reason } : { outcome: 'skipped_unroutable', check: 'target', reason: r.reason };
  }

  // 5. budget: a spent block or pause budget on the project stops every mutation, targeted or not.
  const spent = (await spentBudgets(db, project, now)).find((b) => b.scope === 'project' && (b.action === 'block' || b.action === 'pause'));
  if (spent) return { outcome: 'blocked_budget', check: 'budget', reason: `the budget on project is spent (action ${spent.action})` };

  // 6. governance: the project's tier for the method (else its default). Only act_freely
  // executes here; any other tier waits in the approval queue, once per (cycle, method). An
  // approved proposal (governance.ts) has passed this step already.
  if (!approved) {
    const tier = await tierFor(db, project, method);
    if (tier !== 'act_freely') {
      if (dryRun) return { outcome: 'gated', check: 'governance', reason: `${method} is ${tier}: it would wait for approval (dry run: nothing enqueued)` };
      const a = await enqueueApproval(db, project, { cycleId: cycle, method, tier, proposal: p, at: now });
      const reason =
        a.status === 'pending'
          ? `${method} is ${tier}: waiting for approval ${a.id} (sos approvals approve ${a.id})`
          : `${method} is ${tier}: approval ${a.id} of this cycle is ${a.status} already`;
      return { outcome: 'gated', check: 'governance', reason, made: { approvals: [a.id] } };
    }
  }
  if (dryRun) return { outcome: 'dry_run', check: 'execute', reason: `would ${method}` };

  try {
    return await execute(ctx, caller, cycle, method, args, target ?? null, now);
  } catch (err) {
    return { outcome: 'failed', check: 'execute', reason: err instanceof SosError ? err.message : String(err) };
  }
}

async function execute(ctx: MotorContext, caller: Caller, cycle: string, method: MotorMethod, args: z.infer<typeof taskArgs> & { to?: string; text?: string }, target: string | null, now: number): Promise<MotorVerdict> {
  const key = `brain:${cycle}:${method}`;
  const project = caller.project;
  if (method === 'send_message') {
    const id = await systemMessage(ctx.tasks, project, { from: 'brain', to: target!, type: 'text', text: args.text!, priority: 'normal', at: now, idempotencyKey: key });
    return { outcome: 'executed', check: 'execute', reason: `message ${id} sent to ${target}`, made: { messages: [id] } };
  }
  if (method === 'health_check') {
    const checks = ctx.health ? await ctx.health() : null;
    const text = checks
      ? `health check: ${checks.filter((c) => c.status === 'fail').length} failed, ${checks.filter((c) => c.status === 'warn').length} warnings: ${checks.map((c) => `${c.name} ${c.status}`).join(', ')}`
      : 'health check: the doctor checks are not available to this motor';
    const sent = await escalateToCoordinators(ctx.tasks, project, { from: 'brain', text, at: now });
    return { outcome: 'executed', check: 'execute', reason: text, made: { messages: sent.messageIds } };
  }
  const labels = [...(args.labels ?? []), ...(method === 'research' ? ['research'] : [])];
  const requires = [...new Set([...(args.requires ?? []), ...(method === 'fix_code' ? ['code'] : [])])];
  const { task, replayed } = await createTask(ctx.tasks, caller, {
    title: args.title,
    ...(args.text !== undefined ? { description: args.text } : {}),
    ...(args.squad !== undefined ? { squad: args.squad } : {}),
    ...(args.priority !== undefined ? { priority: args.priority } : {}),
    ...(labels.length ? { labels: [...new Set(labels)] } : {}),
    ...(requires.length ? { requires } : {}),
    ...(target ? { assignee: target } : {}),
    idempotencyKey: key,
  });
  return { outcome: 'executed', check: 'execute', reason: `${replayed ? 'already created' : 'created'} task ${task.id}`, made: { tasks: [task.id] } };
}
