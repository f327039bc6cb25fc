import type { Caller } from './auth/caller.js';
import { MOTOR_OUTCOMES } from './brain/motor.js';
import { savedBreakers } from './brain/cycle.js';
import { type BusContext, pendingAcks } from './bus/service.js';
import { type BudgetState, listBudgets } from './economy/budgets.js';
import { listAgents } from './identity/agents.js';
import { requireProject } from './identity/projects.js';
import type { LifecycleState } from './lifecycle/classifier.js';
import type { SqlLifecycleRepo } from './lifecycle/sql-lifecycle.js';
import type { Store } from './store/port.js';
import { TASK_STATUSES, type TaskStatus } from './tasks/types.js';

/**
 * A project's operational figures, computed once and shown two ways: `sos metrics` (a flat table,
 * or `--json`) and the Prometheus exposition (`/metrics`, `sos metrics --prometheus`). Both read
 * the same `ProjectMetrics`, so a scraper and an operator at the terminal never see two numbers
 * for one thing.
 */

/** What the figures are read from: the Store, the bus context (overdue acks) and the lifecycle records. */
export interface MetricsParts {
  store: Store;
  bus: BusContext;
  repo: SqlLifecycleRepo;
}

type Kind = 'counter' | 'gauge';
interface Described {
  kind: Kind;
  help: string;
}
const counter = (help: string): Described => ({ kind: 'counter', help });
const gauge = (help: string): Described => ({ kind: 'gauge', help });

/**
 * Every fixed key of `sos metrics`, in its printed order, with its Prometheus type and help. A
 * counter only ever grows (it is a row in `counters`, or a count of rows nothing deletes); anything
 * that can go down is a gauge. `FixedKey` is derived from this table, so a figure cannot be added
 * to `sos metrics` without saying what it is here.
 */
const FIXED = {
  messages_delivered: counter('Messages whose wake line was typed into the recipient agent session.'),
  messages_held_now: gauge('Wake deliveries held right now (the agent was busy or not at its prompt).'),
  messages_held_total: counter('Wake deliveries ever held, each message and recipient once.'),
  messages_failed: counter('Wake lines that could not be typed into the session.'),
  messages_expired: counter('Held wake deliveries whose message expired before it was read.'),
  messages_not_typed: counter('Messages recorded as not typed because the agent has wake delivery off.'),
  bus_rows_skipped: counter('Stored bus rows that could not be read and were skipped.'),
  ack_overdue: gauge('Messages asking for an ack whose deadline has passed without one.'),
  restarts: counter('Agent restarts done by the lifecycle supervisor.'),
  recoveries_succeeded: counter('Lifecycle recoveries that brought the agent back.'),
  recoveries_failed: counter('Lifecycle recoveries that did not bring the agent back.'),
  recoveries_pending: gauge('Lifecycle recoveries not yet settled.'),
  leases_renewed: counter('Task leases renewed by the daemon for agents showing activity.'),
  leases_expired: counter('Task leases that expired and were swept.'),
  duplicate_claims_refused: counter('Claims refused because the task was already taken.'),
  stale_fence_refused: counter('Writes refused because they presented a stale fence.'),
  task_events_unpublished: counter('Task changes committed whose event could not be published on the bus (Redis down); the change stands.'),
  budget_claims_refused: counter('Claims refused because a block or pause budget is spent.'),
  recovery_success_rate: gauge('Recoveries succeeded over recoveries settled; absent until one has settled.'),
  duplicate_claims: gauge('Task attempts claimed more than once (should always be 0).'),
  blocked_methods: counter('Brain decisions refused for naming a method the motor does not have.'),
  stale_enqueue_attempts: counter('Brain directives skipped because they revive retired work.'),
  cost_per_completed_task_usd: gauge('Priced spend in US dollars over tasks now done; absent while none is done.'),
  priced_spend_usd: gauge('Priced spend in the usage ledger, in US dollars (re-pricing history can lower it).'),
  tasks_done: gauge('Tasks now in status done.'),
  unclaimed_routed_tasks: counter('Tasks a routing run could give to no agent, once per run.'),
  brain_cycles: counter('Brain cycles run (dry runs excluded).'),
  brain_dry_runs: counter('Brain cycles run as dry runs.'),
  brain_decisions_invalid: counter('Brain answers that were not a valid decision.'),
  brain_breakers_open: gauge('Brain provider circuit breakers now open (installation-wide).'),
  approvals_pending: gauge('Brain proposals waiting for approval.'),
} as const satisfies Record<string, Described>;

export type FixedKey = keyof typeof FIXED;

/** A provider's circuit breaker as the last cycle saved it. */
export interface BreakerFigures {
  name: string;
  /** 0 closed, 1 half-open, 2 open. */
  state: 0 | 1 | 2;
  opens: number;
  failures: number;
  timeouts: number;
  rejections: number;
}

const BREAKER_COUNTERS = ['opens', 'failures', 'timeouts', 'rejections'] as const;

export interface ProjectMetrics {
  project: string;
  fixed: Record<FixedKey, number | null>;
  /** One per motor outcome, zero until the motor first decides so. */
  motor: Record<(typeof MOTOR_OUTCOMES)[number], number>;
  /** Installation-wide (the brain's providers serve every project), by name. */
  breakers: BreakerFigures[];
  /** Every agent of the project by its latest lifecycle state; `unprobed` when never read. */
  agentsByState: Record<LifecycleState | 'unprobed', number>;
  /** Every task of the project by status (all squads: a project-level count, not a listing). */
  tasksByStatus: Record<TaskStatus, number>;
  /** Each budget's spend in its current period. */
  budgets: BudgetState[];
}

const num = (v: unknown): number => Number(v ?? 0);

/**
 * Reads every figure of the caller's project. Any caller of the project may (an observer too):
 * these are counts, not contents. Breakers are not per project; they are shown to every project
 * because every project's brain cycles go through them.
 */
export async function projectMetrics(parts: MetricsParts, caller: Caller): Promise<ProjectMetrics> {
  const { store, repo } = parts;
  const project = caller.project;
  const db = store.sql;
  await requireProject(store, project);
  const counters = await store.counters.all(project);
  const lifecycle = await repo.counters(project);
  const overdue = (await pendingAcks(parts.bus, caller, { overdue: true })).length;
  const held = await db.one<{ n: number | string }>("SELECT COUNT(*) AS n FROM wake_deliveries WHERE project = $1 AND state = 'held'", [project]);
  const approvals = await db.one<{ n: number | string }>("SELECT COUNT(*) AS n FROM approvals WHERE project = $1 AND status = 'pending'", [project]);
  const breakers = await breakerFigures(store);
  const c = (key: string) => counters[key] ?? 0;
  const fixed: Record<FixedKey, number | null> = {
    messages_delivered: c('messages_delivered'),
    messages_held_now: num(held?.n),
    messages_held_total: c('messages_held'),
    messages_failed: c('messages_failed'),
    messages_expired: c('messages_expired'),
    messages_not_typed: c('messages_not_typed'),
    bus_rows_skipped: c('bus_rows_skipped'),
    ack_overdue: overdue,
    restarts: lifecycle.actions['restart.done'] ?? 0,
    recoveries_succeeded: lifecycle.recoveries.succeeded,
    recoveries_failed: lifecycle.recoveries.failed,
    recoveries_pending: lifecycle.recoveries.pending,
    leases_renewed: c('leases_renewed'),
    leases_expired: c('leases_expired'),
    duplicate_claims_refused: c('duplicate_claims_refused'),
    stale_fence_refused: c('stale_fence_refused'),
    task_events_unpublished: c('task_events_unpublished'),
    budget_claims_refused: c('budget_claims_refused'),
    ...(await observables(store, project, counters, lifecycle.recoveries)),
    brain_cycles: c('brain_cycles'),
    brain_dry_runs: c('brain_dry_runs'),
    brain_decisions_invalid: c('brain_decisions_invalid'),
    brain_breakers_open: breakers.filter((b) => b.state === 2).length,
    approvals_pending: num(approvals?.n),
  };
  const motor = Object.fromEntries(MOTOR_OUTCOMES.map((o) => [o, c(`motor_${o}`)])) as ProjectMetrics['motor'];
  return {
    project,
    fixed,
    motor,
    breakers,
    agentsByState: await agentsByState(parts, caller),
    tasksByStatus: await tasksByStatus(store, project),
    budgets: await listBudgets(store, caller),
  };
}

type ObservableKey =
  | 'recovery_success_rate'
  | 'duplicate_claims'
  | 'blocked_methods'
  | 'stale_enqueue_attempts'
  | 'cost_per_completed_task_usd'
  | 'priced_spend_usd'
  | 'tasks_done'
  | 'unclaimed_routed_tasks';

/**
 * The paper's six observables (issue 14), each from where it is kept:
 * - `recovery_success_rate`: lifecycle recoveries that succeeded / (succeeded + failed); null when
 *   none has settled.
 * - `duplicate_claims`: (task, attempt) pairs with more than one `claimed` event. The claim
 *   statement bumps the attempt (the fence) in the same UPDATE that takes the task, and writes one
 *   `claimed` event with that fence in its transaction, so two claims of one attempt would show as
 *   two such events: this should always be 0 (`duplicate_claims_refused` counts the refused
 *   attempts). A handoff acceptance also takes ownership with a new fence, but it is a separate
 *   event (`handoff_accepted`) and not counted here.
 * - `blocked_methods`, `stale_enqueue_attempts`: the motor's counters (invented methods refused,
 *   stale directives skipped).
 * - `cost_per_completed_task_usd`: all priced spend in the project's ledger (the `usage_rollup`
 *   sums, unpriced events excluded) / the tasks now `done`; null when none is done. Numerator and
 *   denominator are their own keys.
 * - `unclaimed_routed_tasks`: tasks a `sos tasks route` run could give to no agent, once per run.
 */
async function observables(
  store: Store,
  project: string,
  counters: Record<string, number>,
  recoveries: { succeeded: number; failed: number },
): Promise<Record<ObservableKey, number | null>> {
  const db = store.sql;
  const settled = recoveries.succeeded + recoveries.failed;
  const fence = db.dialect === 'postgres' ? "(e.detail::json ->> 'fence')" : "json_extract(e.detail, '$.fence')";
  const duplicates = await db.one<{ n: number | string }>(
    `SELECT COUNT(*) AS n FROM (
       SELECT e.task_seq FROM task_events e JOIN tasks t ON t.seq = e.task_seq
        WHERE t.project = $1 AND e.event = 'claimed'
        GROUP BY e.task_seq, ${fence} HAVING COUNT(*) > 1) d`,
    [project],
  );
  const spend = await db.one<{ micros: number | string | null }>('SELECT SUM(cost_micros) AS micros FROM usage_rollup WHERE project = $1', [project]);
  const done = await db.one<{ n: number | string }>("SELECT COUNT(*) AS n FROM tasks WHERE project = $1 AND status = 'done'", [project]);
  const micros = num(spend?.micros);
  const tasksDone = num(done?.n);
  return {
    recovery_success_rate: settled === 0 ? null : Math.round((recoveries.succeeded / settled) * 10_000) / 10_000,
    duplicate_claims: num(duplicates?.n),
    blocked_methods: counters.blocked_methods ?? 0,
    stale_enqueue_attempts: counters.stale_enqueue_attempts ?? 0,
    cost_per_completed_task_usd: tasksDone === 0 ? null : Math.round(micros / tasksDone) / 1_000_000,
    priced_spend_usd: micros / 1_000_000,
    tasks_done: tasksDone,
    unclaimed_routed_tasks: counters.unclaimed_routed_tasks ?? 0,
  };
}

/** Each saved breaker; an open one past its cool-down reads half-open (`savedBreakers`). */
async function breakerFigures(store: Store): Promise<BreakerFigures[]> {
  return (await savedBreakers(store.sql)).map((b) => ({
    name: b.name,
    state: b.state === 'closed' ? 0 : b.state === 'half-open' ? 1 : 2,
    opens: b.counters.opens,
    failures: b.counters.failures,
    timeouts: b.counters.timeouts,
    rejections: b.counters.rejections,
  }));
}

/** Every state, zero included: a gauge that drops to nothing must read 0, not vanish and go stale. */
async function agentsByState(parts: MetricsParts, caller: Caller): Promise<ProjectMetrics['agentsByState']> {
  const out: ProjectMetrics['agentsByState'] = { warm: 0, busy: 0, idle: 0, waiting: 0, compacted: 0, stuck: 0, quota: 0, parked: 0, dead: 0, unknown: 0, unprobed: 0 };
  const states = new Map((await parts.repo.list(caller.project)).map((s) => [s.agent, s.state]));
  for (const agent of await listAgents(parts.store, caller)) out[states.get(agent.name) ?? 'unprobed'] += 1;
  return out;
}

async function tasksByStatus(store: Store, project: string): Promise<Record<TaskStatus, number>> {
  const out = Object.fromEntries(TASK_STATUSES.map((s) => [s, 0])) as Record<TaskStatus, number>;
  const rows = await store.sql.all<{ status: string; n: number | string }>('SELECT status, COUNT(*) AS n FROM tasks WHERE project = $1 GROUP BY status', [project]);
  for (const r of rows) if (r.status in out) out[r.status as TaskStatus] = num(r.n);
  return out;
}

// ---------------------------------------------------------------------------------------------
// `sos metrics`: the flat table

/** A breaker name as a key part: `openai-compat` → `openai_compat`. */
const breakerKey = (name: string) => `brain_breaker_${name.replace(/[^a-z0-9]+/gi, '_')}`;

/**
 * `sos metrics`'s object, in its printed order: the fixed keys, the motor's outcomes after
 * `unclaimed_routed_tasks`, each breaker's `brain_breaker_<name>_state|opens|failures|timeouts|rejections`
 * after `brain_breakers_open` (state 0 closed, 1 half-open, 2 open).
 */
export function flatMetrics(m: ProjectMetrics): Record<string, number | null> {
  const out: Record<string, number | null> = {};
  for (const key of Object.keys(FIXED) as FixedKey[]) {
    if (key === 'brain_cycles') for (const o of MOTOR_OUTCOMES) out[`motor_${o}`] = m.motor[o];
    out[key] = m.fixed[key];
    if (key === 'brain_breakers_open') {
      for (const b of m.breakers) {
        const k = breakerKey(b.name);
        out[`${k}_state`] = b.state;
        for (const field of BREAKER_COUNTERS) out[`${k}_${field}`] = b[field];
      }
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Prometheus: metric families

/** One sample: its labels (the family adds none of its own) and its value; null is left out. */
export interface Sample {
  labels: Record<string, string>;
  value: number | null;
  /** The `sos metrics` key this sample shows, when it shows one (tests compare the two). */
  key?: string;
}

/**
 * One metric family in the text exposition format 0.0.4: `name` is the sample name (a counter's
 * ends in `_total`), printed in `# HELP` and `# TYPE`.
 */
export interface MetricFamily {
  name: string;
  type: Kind;
  help: string;
  samples: Sample[];
}

/** `sos_<key>_total` for a counter (a key ending `_total` keeps one), `sos_<key>` for a gauge. */
export function familyName(key: string, kind: Kind): string {
  return kind === 'counter' && !key.endsWith('_total') ? `sos_${key}_total` : `sos_${key}`;
}

/**
 * The families of one project, every sample labelled `project`. Each `sos metrics` key is one
 * sample (`key` names it); the motor's outcomes and the breakers become labelled families
 * (`outcome`, `provider`) rather than a name per value; agents by state, tasks by status and
 * budgets are gauges `/metrics` adds. Budget spend is in US dollars or tokens, one family per
 * unit, labelled `scope` and `period`.
 */
export function metricFamilies(m: ProjectMetrics): MetricFamily[] {
  const project = m.project;
  const at = (labels: Record<string, string> = {}) => ({ project, ...labels });
  const families: MetricFamily[] = [];
  const family = (name: string, type: Kind, help: string, samples: Sample[]) => {
    families.push({ name, type, help, samples });
  };
  for (const key of Object.keys(FIXED) as FixedKey[]) {
    const d: Described = FIXED[key];
    family(familyName(key, d.kind), d.kind, d.help, [{ labels: at(), value: m.fixed[key], key }]);
  }
  family(
    'sos_motor_decisions_total',
    'counter',
    'Brain decisions the motor handled, by outcome.',
    MOTOR_OUTCOMES.map((o) => ({ labels: at({ outcome: o }), value: m.motor[o], key: `motor_${o}` })),
  );
  family(
    'sos_brain_breaker_state',
    'gauge',
    'Brain provider circuit breaker state as last saved: 0 closed, 1 half-open, 2 open (installation-wide).',
    m.breakers.map((b) => ({ labels: at({ provider: b.name }), value: b.state, key: `${breakerKey(b.name)}_state` })),
  );
  for (const field of BREAKER_COUNTERS) {
    family(
      `sos_brain_breaker_${field}_total`,
      'counter',
      `Brain provider circuit breaker ${field} since the breaker was created (installation-wide).`,
      m.breakers.map((b) => ({ labels: at({ provider: b.name }), value: b[field], key: `${breakerKey(b.name)}_${field}` })),
    );
  }
  family(
    'sos_agents',
    'gauge',
    'Agents of the project by latest lifecycle state (unprobed: never read by the supervisor).',
    Object.entries(m.agentsByState).map(([state, n]) => ({ labels: at({ state }), value: n })),
  );
  family(
    'sos_tasks',
    'gauge',
    'Tasks of the project by status.',
    Object.entries(m.tasksByStatus).map(([status, n]) => ({ labels: at({ status }), value: n })),
  );
  for (const [unit, scale, what] of [
    ['usd', 1_000_000, 'US dollars'],
    ['tokens', 1, 'tokens'],
  ] as const) {
    const budgets = m.budgets.filter((b) => b.unit === unit);
    const labels = (b: BudgetState) => at({ scope: b.scope, period: b.period });
    family(`sos_budget_spent_${unit}`, 'gauge', `Spend against each ${what} budget in its current period.`, budgets.map((b) => ({ labels: labels(b), value: b.spent / scale })));
    family(`sos_budget_limit_${unit}`, 'gauge', `Limit of each ${what} budget per period.`, budgets.map((b) => ({ labels: labels(b), value: b.limit / scale })));
  }
  return families;
}
