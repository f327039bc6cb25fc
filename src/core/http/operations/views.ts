import { z } from 'zod';
import { APPROVAL_STATUSES, type Approval } from '../../brain/governance.js';
import { GOVERNANCE_TIERS, MOTOR_OUTCOMES, type MotorVerdict } from '../../brain/motor.js';
import { DELIVERY_STATES, PRIORITIES } from '../../bus/types.js';
import { BUDGET_ACTIONS, BUDGET_PERIODS, type BudgetState } from '../../economy/budgets.js';
import { REPORT_DIMENSIONS, type UsageReport, type UsageRow } from '../../economy/types.js';
import type { AgentStatus } from '../../lifecycle/service.js';
import { TOKEN_ROLES } from '../../store/types.js';
import { TASK_STATUSES } from '../../tasks/types.js';
import { momentText } from '../../time.js';

/**
 * What each `/v1` operation answers, as zod schemas: the OpenAPI document's response schemas are
 * generated from these, and the tests hold every 2xx body to them. The shapes of the operations
 * that are MCP tools are the tools' own results (snake_case, empty fields left out); the others
 * follow the same habits, with `null` where a value is known to be absent.
 */

/** A moment as ISO text, or null for none (the views below say null, never leave it out). */
export const isoOrNull = (ms: number | null): string | null => (ms === null ? null : momentText(ms));

const names = z.array(z.string());
const count = z.int().min(0);
const moment = z.string().describe('ISO 8601, UTC');

// --- messages (the tools' results) -------------------------------------------------------------

export const sendOut = z.object({
  id: z.string(),
  to: z.string(),
  recipients: names,
  ack_required: z.literal(true).optional(),
  acked: names.optional().describe('when the text was an ack: the messages it acknowledged'),
  ok: z.boolean().optional(),
  duplicate: z.literal(true).optional().describe('a repeated idempotency key: nothing was sent'),
});

const messageOut = z.object({
  id: z.string(),
  from: z.string(),
  to: z.string(),
  type: z.string(),
  text: z.string(),
  priority: z.enum(PRIORITIES),
  reply_to: z.string().optional(),
  ack_required: z.literal(true).optional(),
  ack_for: z.string().optional(),
  ok: z.boolean().nullable().optional(),
  created: moment,
  state: z.enum(DELIVERY_STATES),
});

export const inboxOut = z.object({ agent: z.string(), unread: z.array(messageOut), history: z.array(messageOut).optional() });

export const ackOut = z.object({ id: z.string(), ok: z.boolean(), ack_message_id: z.string().optional() });

export const peersOut = z.array(
  z.object({ name: z.string(), kind: z.string(), role: z.string(), online: z.boolean(), last_seen: moment.optional(), unread: count }),
);

export const whoamiOut = z.object({
  project: z.string(),
  agent: z.string().nullable(),
  role: z.enum([...TOKEN_ROLES, 'operator']),
  via: z.enum(['token', 'local']),
});

export const joinOut = z.object({ workspace_id: z.string(), agent: z.string(), joined: z.boolean().describe('false: already a member'), created: z.literal(true).optional() });
export const leaveOut = z.object({ workspace_id: z.string(), agent: z.string(), left: z.boolean().describe('false: not a member') });

// --- tasks --------------------------------------------------------------------------------------

/** `taskView` in src/core/mcp/tools.ts. */
export const taskOut = z.object({
  id: z.string(),
  title: z.string(),
  status: z.enum(TASK_STATUSES),
  priority: z.int(),
  squad: z.string().optional(),
  labels: names.optional(),
  requires: names.optional(),
  depends_on: names.optional(),
  assignee: z.string().optional(),
  claimant: z.string().optional(),
  fence: z.int().optional().describe('present while someone holds the task; every later write presents it'),
  lease_until: moment.optional(),
  handoff: z.object({ from: z.string(), to: z.string(), summary: z.string(), memories: names.optional() }).optional(),
  description: z.string().optional(),
  result: z.string().optional(),
  error: z.string().optional(),
  artifacts: names.optional(),
});

export const taskResultOut = taskOut.extend({ replayed: z.literal(true).optional().describe('a repeated idempotency key: the first result') });
export const completeOut = taskResultOut.extend({ unblocked: names.describe('tasks this completion made ready') });
export const taskListOut = z.array(taskOut);
export const boardOut = z.array(taskOut.extend({ unblocks: count.describe('open tasks waiting on this one') }));

// --- memory -------------------------------------------------------------------------------------

export const rememberOut = z.object({ id: z.string(), merged: z.boolean().describe('true: a near-duplicate was updated instead') });
export const recallOut = z.array(
  z.object({ id: z.string(), score: z.number(), kind: z.string(), author: z.string(), updated: moment, tags: names.optional(), text: z.string() }),
);
export const contextOut = z.object({ text: z.string() });

// --- agents -------------------------------------------------------------------------------------

export const agentsOut = z.array(
  z.object({
    agent: z.string(),
    kind: z.string(),
    role: z.string(),
    session: z.string().nullable(),
    policy: z.string(),
    state: z.string().describe('a lifecycle state (warm, busy, idle, waiting, compacted, stuck, quota, parked, dead, unknown) or unprobed'),
    since: moment.nullable(),
    confidence: z.number().nullable(),
    evidence: z.string().nullable(),
    parked_until: moment.nullable(),
    holds: names.describe('ids of the tasks it holds'),
    unread: count,
    probed_at: moment.nullable(),
  }),
);

export const agentsView = (rows: AgentStatus[]): z.infer<typeof agentsOut> =>
  rows.map((r) => ({
    agent: r.agent,
    kind: r.kind,
    role: r.role,
    session: r.session,
    policy: r.policy,
    state: r.state,
    since: isoOrNull(r.since),
    confidence: r.confidence,
    evidence: r.evidence,
    parked_until: isoOrNull(r.parkedUntil),
    holds: r.holds,
    unread: r.unread,
    probed_at: isoOrNull(r.probedAt),
  }));

// --- usage and budgets --------------------------------------------------------------------------

const micros = z.int().describe('micro-dollars');

const usageRowOut = z.object({
  key: z.string(),
  events: count,
  input_tokens: count,
  output_tokens: count,
  cache_write_tokens: count,
  cache_write_1h_tokens: count,
  cache_read_tokens: count,
  reasoning_tokens: count,
  cost_micros: micros.nullable().describe('priced events only; null when every event is unpriced'),
  unknown_cost_events: count,
});

export const usageRecordOut = z.object({ id: z.string(), duplicate: z.boolean(), cost_micros: micros.nullable(), task: z.string().optional() });

export const usageOut = z.object({
  by: z.enum(REPORT_DIMENSIONS),
  since: moment.nullable(),
  until: moment.nullable(),
  agent: z.string().nullable(),
  rows: z.array(usageRowOut),
  total: usageRowOut,
  unknown_models: z.array(z.object({ model: z.string(), events: count })),
  completed_tasks: count,
  completed_task_cost_micros: micros,
  cost_per_completed_task_micros: micros.nullable(),
});

const rowView = (r: UsageRow): z.infer<typeof usageRowOut> => ({
  key: r.key,
  events: r.events,
  input_tokens: r.inputTokens,
  output_tokens: r.outputTokens,
  cache_write_tokens: r.cacheWriteTokens,
  cache_write_1h_tokens: r.cacheWrite1hTokens,
  cache_read_tokens: r.cacheReadTokens,
  reasoning_tokens: r.reasoningTokens,
  cost_micros: r.costMicros,
  unknown_cost_events: r.unknownCostEvents,
});

export const usageView = (r: UsageReport): z.infer<typeof usageOut> => ({
  by: r.by,
  since: isoOrNull(r.since),
  until: isoOrNull(r.until),
  agent: r.agent,
  rows: r.rows.map(rowView),
  total: rowView(r.total),
  unknown_models: r.unknownModels.map((u) => ({ model: u.model, events: u.events })),
  completed_tasks: r.completedTasks,
  completed_task_cost_micros: r.completedTaskCostMicros,
  cost_per_completed_task_micros: r.costPerCompletedTaskMicros,
});

export const budgetsOut = z.array(
  z.object({
    scope: z.string().describe('project, squad:<s>, agent:<a> or task:<id>'),
    unit: z.enum(['usd', 'tokens']),
    limit: z.int().describe('micro-dollars or tokens, as unit says'),
    period: z.enum(BUDGET_PERIODS),
    action: z.enum(BUDGET_ACTIONS),
    warn_at: z.int().describe('percent of the limit'),
    spent: z.int(),
    remaining: z.int(),
    state: z.enum(['ok', 'warning', 'exhausted']),
    period_start: moment,
    period_end: moment.nullable(),
    warned_at: moment.nullable(),
    exhausted_at: moment.nullable(),
    lifted_at: moment.nullable(),
    paused_at: moment.nullable(),
  }),
);

export const budgetsView = (list: BudgetState[]): z.infer<typeof budgetsOut> =>
  list.map((b) => ({
    scope: b.scope,
    unit: b.unit,
    limit: b.limit,
    period: b.period,
    action: b.action,
    warn_at: b.warnAt,
    spent: b.spent,
    remaining: b.remaining,
    state: b.state,
    period_start: momentText(b.periodStart),
    period_end: isoOrNull(b.periodEnd),
    warned_at: isoOrNull(b.warnedAt),
    exhausted_at: isoOrNull(b.exhaustedAt),
    lifted_at: isoOrNull(b.liftedAt),
    paused_at: isoOrNull(b.pausedAt),
  }));

// --- approvals ----------------------------------------------------------------------------------

const madeOut = z.object({ tasks: names.optional(), messages: names.optional(), approvals: names.optional() });

export const approvalOut = z.object({
  id: z.string(),
  cycle_id: z.string(),
  method: z.string(),
  tier: z.enum(GOVERNANCE_TIERS),
  status: z.enum(APPROVAL_STATUSES),
  needs: count.describe('approves the tier needs'),
  approves: count,
  proposal: z.object({ method: z.string(), agent: z.string().nullable(), goal_id: z.string().nullable(), details: z.record(z.string(), z.unknown()) }),
  created_at: moment,
  decided_at: moment.nullable(),
  outcome: z.string().nullable(),
  reason: z.string().nullable(),
  made: madeOut.nullable(),
  votes: z.array(z.object({ approver: z.string(), vote: z.enum(['approve', 'deny']), note: z.string().nullable(), at: moment })),
});

export const approvalsOut = z.array(approvalOut);

export const approveOut = approvalOut.extend({
  verdict: z
    .object({ outcome: z.enum(MOTOR_OUTCOMES), check: z.string(), reason: z.string(), made: madeOut.nullable() })
    .nullable()
    .describe("the motor's verdict when this approve was the deciding one; null while more are needed"),
});

const madeView = (m: MotorVerdict['made'] | null | undefined): z.infer<typeof madeOut> | null =>
  m ? { ...(m.tasks ? { tasks: m.tasks } : {}), ...(m.messages ? { messages: m.messages } : {}), ...(m.approvals ? { approvals: m.approvals } : {}) } : null;

export const approvalView = (a: Approval): z.infer<typeof approvalOut> => ({
  id: a.id,
  cycle_id: a.cycleId,
  method: a.method,
  tier: a.tier,
  status: a.status,
  needs: a.needs,
  approves: a.votes.filter((v) => v.vote === 'approve').length,
  proposal: { method: a.proposal.method, agent: a.proposal.agent, goal_id: a.proposal.goal_id, details: a.proposal.details },
  created_at: momentText(a.createdAt),
  decided_at: isoOrNull(a.decidedAt),
  outcome: a.outcome,
  reason: a.reason,
  made: madeView(a.made),
  votes: a.votes.map((v) => ({ approver: v.approver, vote: v.vote, note: v.note, at: momentText(v.at) })),
});

export const verdictView = (v: MotorVerdict | null): z.infer<typeof approveOut>['verdict'] =>
  v ? { outcome: v.outcome, check: v.check, reason: v.reason, made: madeView(v.made) } : null;

// --- errors -------------------------------------------------------------------------------------

/** The CLI's `--json` error object (src/core/http/status.ts `errorBody`). */
export const errorOut = z.object({
  error: z.object({
    code: z.enum(['failed', 'usage', 'not_found', 'conflict', 'unavailable', 'permission_denied', 'internal']),
    message: z.string(),
    hint: z.string().optional(),
  }),
});
