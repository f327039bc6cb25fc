import { type Caller, requireAdmin } from '../auth/caller.js';
import { NotFound, PermissionDenied, UsageError } from '../errors.js';
import { assertName } from '../names.js';
import { quote } from '../safe-text.js';
import type { Store } from '../store/port.js';
import type { SqlExecutor } from '../store/sql/driver.js';

/**
 * Budgets: a limit on what a scope of a project may spend (micro-dollars or tokens) in a period,
 * and what happens when it is spent. The ledger keeps each budget's spend per period up to date
 * as it records (`addSpend`, in the recording transaction), so checking a budget is reading one
 * row, not summing the ledger: the claim path does it on every claim.
 */

export const BUDGET_PERIODS = ['day', 'week', 'month', 'total'] as const;
export type BudgetPeriod = (typeof BUDGET_PERIODS)[number];
export const BUDGET_ACTIONS = ['warn', 'downgrade', 'pause', 'block'] as const;
export type BudgetAction = (typeof BUDGET_ACTIONS)[number];
export type BudgetUnit = 'usd' | 'tokens';

export interface Budget {
  project: string;
  /** `project`, `squad:<s>`, `agent:<a>` or `task:<id>`. */
  scope: string;
  unit: BudgetUnit;
  /** Micro-dollars (`usd`) or tokens of every kind (`tokens`). */
  limit: number;
  period: BudgetPeriod;
  action: BudgetAction;
  /** Percent of the limit at which the budget warns. */
  warnAt: number;
  createdAt: number;
  updatedAt: number;
}

export interface BudgetState extends Budget {
  spent: number;
  remaining: number;
  periodStart: number;
  /** When the period rolls over; null for `total`. */
  periodEnd: number | null;
  state: 'ok' | 'warning' | 'exhausted';
  warnedAt: number | null;
  exhaustedAt: number | null;
  /** An operator lifted this period's block or pause (`sos budgets lift`). */
  liftedAt: number | null;
  /** When the daemon parked the scope's agents this period (action pause). */
  pausedAt: number | null;
}

/** A threshold crossed by recorded usage: announced once per budget, period and level. */
export interface BudgetCrossing {
  scope: string;
  level: 'warning' | 'exhausted';
  spent: number;
  limit: number;
  unit: BudgetUnit;
  action: BudgetAction;
  periodStart: number;
}

const DAY = 86_400_000;

/** The start of the period that holds `at` (UTC): midnight, Monday, the 1st; 0 for `total`. */
export function periodStart(period: BudgetPeriod, at: number): number {
  const d = new Date(at);
  switch (period) {
    case 'day':
      return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate());
    case 'week':
      return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate()) - ((d.getUTCDay() + 6) % 7) * DAY;
    case 'month':
      return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1);
    case 'total':
      return 0;
  }
}

export function periodEnd(period: BudgetPeriod, start: number): number | null {
  const d = new Date(start);
  switch (period) {
    case 'day':
      return start + DAY;
    case 'week':
      return start + 7 * DAY;
    case 'month':
      return Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1);
    case 'total':
      return null;
  }
}

/** Largest limit: a trillion dollars in micro-dollars, or a quadrillion tokens. */
const MAX_LIMIT = 1e15;

/**
 * `$25`, `25$`, `25usd`, `$0.50` are dollars (kept as micro-dollars); `500000`, `500k`, `2m`,
 * `2m tokens` are tokens.
 */
export function parseLimit(text: string): { unit: BudgetUnit; value: number } {
  const t = text.trim().toLowerCase();
  const dollars = /^\$\s*(\d+(?:\.\d{1,6})?)$|^(\d+(?:\.\d{1,6})?)\s*(?:\$|usd)$/.exec(t);
  if (dollars) {
    const [whole, frac = ''] = (dollars[1] ?? dollars[2])!.split('.');
    const value = Number(whole) * 1_000_000 + Number(frac.padEnd(6, '0'));
    if (value <= 0 || value > MAX_LIMIT) throw new UsageError(`--limit ${quote(text)} must be more than $0 and at most $1,000,000,000`);
    return { unit: 'usd', value };
  }
  const count = /^(\d+(?:\.\d+)?)\s*([km]?)\s*(?:tokens?)?$/.exec(t);
  if (count) {
    const value = Math.round(Number(count[1]) * (count[2] === 'k' ? 1_000 : count[2] === 'm' ? 1_000_000 : 1));
    if (value <= 0 || value > MAX_LIMIT) throw new UsageError(`--limit ${quote(text)} must be at least 1 token and at most 10^15`);
    return { unit: 'tokens', value };
  }
  throw new UsageError(`invalid --limit ${quote(text)}: give dollars ($25, 0.5usd) or tokens (500000, 500k, 2m)`);
}

export function parseWarnAt(text: string): number {
  const m = /^\s*(\d{1,3})\s*%?\s*$/.exec(text);
  const value = m ? Number(m[1]) : NaN;
  if (!Number.isInteger(value) || value < 1 || value > 100) throw new UsageError(`invalid --at ${quote(text)}: a percentage from 1% to 100%`);
  return value;
}

function oneOf<T extends string>(what: string, value: string, allowed: readonly T[]): T {
  if (!(allowed as readonly string[]).includes(value)) throw new UsageError(`invalid ${what} ${quote(value)}: use one of ${allowed.join(', ')}`);
  return value as T;
}

/** Checks a scope's form and that what it names exists in the caller's project. */
async function checkScope(store: Store, caller: Caller, scope: string): Promise<string> {
  if (scope === 'project') return scope;
  const m = /^(squad|agent|task):(.+)$/.exec(scope);
  if (!m) throw new UsageError(`invalid budget scope ${quote(scope)}: use project, squad:<name>, agent:<name> or task:<id>`);
  const [, kind, name] = m as unknown as [string, 'squad' | 'agent' | 'task', string];
  if (kind === 'agent' && !(await store.agents.get(caller.project, assertName('agent', name)))) {
    throw new NotFound(`agent "${name}" does not exist in project "${caller.project}"`);
  }
  if (kind === 'squad' && !(await store.squads.get(caller.project, assertName('squad', name)))) {
    throw new NotFound(`squad "${name}" does not exist in project "${caller.project}"`);
  }
  if (kind === 'task') {
    if (!/^tsk_[0-9a-z]{26}$/.test(name)) throw new UsageError(`invalid task id ${quote(name)} in the budget scope`);
    if (!(await store.sql.one('SELECT 1 AS ok FROM tasks WHERE project = $1 AND id = $2', [caller.project, name]))) {
      throw new NotFound(`task ${name} does not exist in project "${caller.project}"`);
    }
  }
  return scope;
}

interface BudgetRow {
  project: string;
  scope: string;
  unit: BudgetUnit;
  limit_value: number | string;
  period: BudgetPeriod;
  action: BudgetAction;
  warn_at: number | string;
  created_at: number | string;
  updated_at: number | string;
}

const BUDGET_COLUMNS = 'project, scope, unit, limit_value, period, action, warn_at, created_at, updated_at';

const budgetOf = (r: BudgetRow): Budget => ({
  project: r.project,
  scope: r.scope,
  unit: r.unit,
  limit: Number(r.limit_value),
  period: r.period,
  action: r.action,
  warnAt: Number(r.warn_at),
  createdAt: Number(r.created_at),
  updatedAt: Number(r.updated_at),
});

async function budgetsOf(db: SqlExecutor, project: string): Promise<Budget[]> {
  return (await db.all<BudgetRow>(`SELECT ${BUDGET_COLUMNS} FROM budgets WHERE project = $1 ORDER BY scope`, [project])).map(budgetOf);
}

/** What one event adds to a budget of this unit. */
function amount(unit: BudgetUnit, e: UsageAmount): number {
  if (unit === 'usd') return e.costMicros ?? 0;
  return e.inputTokens + e.outputTokens + e.cacheWriteTokens + e.cacheWrite1hTokens + e.cacheReadTokens;
}

export interface UsageAmount {
  agent: string | null;
  task: string | null;
  occurredAt: number;
  costMicros: number | null;
  inputTokens: number;
  outputTokens: number;
  cacheWriteTokens: number;
  cacheWrite1hTokens: number;
  cacheReadTokens: number;
}

/** The budgets of a project as the recorder needs them: each with a test of whether an event is in scope. */
export interface SpendBook {
  budgets: { budget: Budget; covers: (e: UsageAmount) => boolean }[];
}

/** Loads the project's budgets (and the members of budgeted squads) once per recording batch. */
export async function spendBook(db: SqlExecutor, project: string): Promise<SpendBook> {
  const budgets = await budgetsOf(db, project);
  if (budgets.length === 0) return { budgets: [] };
  const squads = budgets.filter((b) => b.scope.startsWith('squad:')).map((b) => b.scope.slice(6));
  const members = new Map<string, Set<string>>();
  if (squads.length > 0) {
    for (const r of await db.all<{ squad: string; agent: string }>('SELECT squad, agent FROM squad_members WHERE project = $1', [project])) {
      if (!members.has(r.squad)) members.set(r.squad, new Set());
      members.get(r.squad)!.add(r.agent);
    }
  }
  return {
    budgets: budgets.map((budget) => {
      const [kind, name] = budget.scope === 'project' ? ['project', ''] : [budget.scope.slice(0, budget.scope.indexOf(':')), budget.scope.slice(budget.scope.indexOf(':') + 1)];
      const covers =
        kind === 'project'
          ? () => true
          : kind === 'agent'
            ? (e: UsageAmount) => e.agent === name
            : kind === 'task'
              ? (e: UsageAmount) => e.task === name
              : (e: UsageAmount) => e.agent !== null && (members.get(name)?.has(e.agent) ?? false);
      return { budget, covers };
    }),
  };
}

/**
 * Adds a newly recorded event to every budget that covers it, in the recording transaction, and
 * returns the thresholds it crossed (each at most once per budget and period: the first
 * recorder to cross one sets its `warned_at`/`exhausted_at`, and only that one reports it).
 */
export async function addSpend(db: SqlExecutor, book: SpendBook, project: string, e: UsageAmount, now: number): Promise<BudgetCrossing[]> {
  const crossings: BudgetCrossing[] = [];
  for (const { budget, covers } of book.budgets) {
    if (!covers(e)) continue;
    const add = amount(budget.unit, e);
    if (add === 0) continue;
    const start = periodStart(budget.period, e.occurredAt);
    const row = await db.one<{ spent: number | string }>(
      `INSERT INTO budget_spend (project, scope, period_start, spent) VALUES ($1, $2, $3, $4)
       ON CONFLICT (project, scope, period_start) DO UPDATE SET spent = budget_spend.spent + excluded.spent
       RETURNING spent`,
      [project, budget.scope, start, add],
    );
    const spent = Number(row!.spent);
    for (const [level, threshold, column] of [
      ['warning', Math.ceil((budget.limit * budget.warnAt) / 100), 'warned_at'],
      ['exhausted', budget.limit, 'exhausted_at'],
    ] as const) {
      if (spent < threshold || spent - add >= threshold) continue;
      const marked = await db.run(`UPDATE budget_spend SET ${column} = $4 WHERE project = $1 AND scope = $2 AND period_start = $3 AND ${column} IS NULL`, [
        project,
        budget.scope,
        start,
        now,
      ]);
      if (marked > 0) crossings.push({ scope: budget.scope, level, spent, limit: budget.limit, unit: budget.unit, action: budget.action, periodStart: start });
    }
  }
  return crossings;
}

const SPENT_SQL = {
  usd: 'COALESCE(SUM(cost_micros), 0)',
  tokens: 'COALESCE(SUM(input_tokens + output_tokens + cache_write_tokens + cache_write_1h_tokens + cache_read_tokens), 0)',
};

/** Sums the ledger for one budget's current period (when a budget is set, or history re-priced). */
async function spentFromLedger(db: SqlExecutor, budget: Budget, start: number): Promise<number> {
  const params: unknown[] = [budget.project, start];
  let where = 'project = $1 AND occurred_at >= $2';
  if (budget.scope !== 'project') {
    const [kind, name] = [budget.scope.slice(0, budget.scope.indexOf(':')), budget.scope.slice(budget.scope.indexOf(':') + 1)];
    params.push(name);
    where +=
      kind === 'agent'
        ? ' AND agent = $3'
        : kind === 'task'
          ? ' AND task = $3'
          : ' AND agent IN (SELECT agent FROM squad_members WHERE project = $1 AND squad = $3)';
  }
  const row = await db.one<{ spent: number | string }>(`SELECT ${SPENT_SQL[budget.unit]} AS spent FROM usage_events WHERE ${where}`, params);
  return Number(row?.spent ?? 0);
}

/** Rewrites a budget's spend for its current period from the ledger; crossings already past are marked, not announced. */
async function resetSpend(db: SqlExecutor, budget: Budget, now: number): Promise<void> {
  const start = periodStart(budget.period, now);
  const spent = await spentFromLedger(db, budget, start);
  await db.run('DELETE FROM budget_spend WHERE project = $1 AND scope = $2', [budget.project, budget.scope]);
  const warned = spent >= Math.ceil((budget.limit * budget.warnAt) / 100) ? now : null;
  const exhausted = spent >= budget.limit ? now : null;
  await db.run('INSERT INTO budget_spend (project, scope, period_start, spent, warned_at, exhausted_at) VALUES ($1, $2, $3, $4, $5, $6)', [
    budget.project,
    budget.scope,
    start,
    spent,
    warned,
    exhausted,
  ]);
}

/** Re-reads every budget's current spend from the ledger (after `sos usage recompute`). */
export async function rebuildSpend(db: SqlExecutor, project: string, now: number): Promise<void> {
  for (const budget of await budgetsOf(db, project)) await resetSpend(db, budget, now);
}

export interface BudgetInput {
  scope: string;
  limit: string;
  period: string;
  action: string;
  at?: string;
}

/** Creates or replaces the budget of a scope (admin). Its spend is read from the ledger at once. */
export async function setBudget(store: Store, caller: Caller, input: BudgetInput, now = Date.now()): Promise<BudgetState> {
  const { unit, value } = parseLimit(input.limit);
  const period = oneOf('--period', input.period, BUDGET_PERIODS);
  const action = oneOf('--action', input.action, BUDGET_ACTIONS);
  const warnAt = input.at === undefined ? 80 : parseWarnAt(input.at);
  await requireAdmin(store, caller, 'setting a budget');
  const scope = await checkScope(store, caller, input.scope);
  await store.sql.transaction(async (tx) => {
    await tx.run(
      `INSERT INTO budgets (${BUDGET_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)
       ON CONFLICT (project, scope) DO UPDATE SET unit = excluded.unit, limit_value = excluded.limit_value, period = excluded.period,
         action = excluded.action, warn_at = excluded.warn_at, updated_at = excluded.updated_at`,
      [caller.project, scope, unit, value, period, action, warnAt, now],
    );
    const budget = (await budgetsOf(tx, caller.project)).find((b) => b.scope === scope)!;
    await resetSpend(tx, budget, now);
  });
  return showBudget(store, caller, scope, now);
}

export async function removeBudget(store: Store, caller: Caller, scope: string): Promise<void> {
  await requireAdmin(store, caller, 'removing a budget');
  const removed = await store.sql.transaction(async (tx) => {
    await tx.run('DELETE FROM budget_spend WHERE project = $1 AND scope = $2', [caller.project, scope]);
    return tx.run('DELETE FROM budgets WHERE project = $1 AND scope = $2', [caller.project, scope]);
  });
  if (removed === 0) throw new NotFound(`no budget on ${quote(scope)} in project "${caller.project}"`, { hint: 'list them with `sos budgets list`' });
}

async function statesOf(db: SqlExecutor, budgets: Budget[], now: number): Promise<BudgetState[]> {
  const states: BudgetState[] = [];
  for (const b of budgets) {
    const start = periodStart(b.period, now);
    const row = await db.one<{ spent: number | string; warned_at: number | string | null; exhausted_at: number | string | null; lifted_at: number | string | null; paused_at: number | string | null }>(
      'SELECT spent, warned_at, exhausted_at, lifted_at, paused_at FROM budget_spend WHERE project = $1 AND scope = $2 AND period_start = $3',
      [b.project, b.scope, start],
    );
    const spent = Number(row?.spent ?? 0);
    states.push({
      ...b,
      spent,
      remaining: Math.max(0, b.limit - spent),
      periodStart: start,
      periodEnd: periodEnd(b.period, start),
      state: spent >= b.limit ? 'exhausted' : spent >= Math.ceil((b.limit * b.warnAt) / 100) ? 'warning' : 'ok',
      warnedAt: row?.warned_at == null ? null : Number(row.warned_at),
      exhaustedAt: row?.exhausted_at == null ? null : Number(row.exhausted_at),
      liftedAt: row?.lifted_at == null ? null : Number(row.lifted_at),
      pausedAt: row?.paused_at == null ? null : Number(row.paused_at),
    });
  }
  return states;
}

export async function listBudgets(store: Store, caller: Caller, now = Date.now()): Promise<BudgetState[]> {
  return statesOf(store.sql, await budgetsOf(store.sql, caller.project), now);
}

export async function showBudget(store: Store, caller: Caller, scope: string, now = Date.now()): Promise<BudgetState> {
  const budget = (await budgetsOf(store.sql, caller.project)).find((b) => b.scope === scope);
  if (!budget) throw new NotFound(`no budget on ${quote(scope)} in project "${caller.project}"`, { hint: 'list them with `sos budgets list`' });
  return (await statesOf(store.sql, [budget], now))[0]!;
}

/** What the exhausted `block` and `pause` budgets of a project forbid a claimant right now. */
export interface ClaimBlocks {
  /** A budget that stops every claim of this agent (its own, or the project's). */
  all: { scope: string; action: BudgetAction } | null;
  squads: Map<string, { scope: string; action: BudgetAction }>;
  tasks: Map<string, { scope: string; action: BudgetAction }>;
}

/** The current period start of each kind of period at `now`, for one query over budgets of every period. */
const PERIOD_CASE = "CASE b.period WHEN 'day' THEN CAST($2 AS BIGINT) WHEN 'week' THEN CAST($3 AS BIGINT) WHEN 'month' THEN CAST($4 AS BIGINT) ELSE 0 END";
const periodParams = (now: number) => [periodStart('day', now), periodStart('week', now), periodStart('month', now)];

/**
 * One indexed read per claim: the spent `block` and `pause` budgets (a pause stops claims as a
 * block does, and also parks the scope's agents) whose current period is spent and not lifted.
 * The period of each budget is its own, so the read takes the four period starts at once.
 */
export async function claimBlocks(db: SqlExecutor, project: string, agent: string, now: number): Promise<ClaimBlocks> {
  const rows = await db.all<{ scope: string; action: BudgetAction }>(
    `SELECT b.scope, b.action FROM budgets b
       JOIN budget_spend s ON s.project = b.project AND s.scope = b.scope AND s.period_start = ${PERIOD_CASE}
      WHERE b.project = $1 AND b.action IN ('block', 'pause') AND s.spent >= b.limit_value AND s.lifted_at IS NULL`,
    [project, ...periodParams(now)],
  );
  const blocks: ClaimBlocks = { all: null, squads: new Map(), tasks: new Map() };
  for (const r of rows) {
    const mark = { scope: r.scope, action: r.action };
    if (r.scope === 'project' || r.scope === `agent:${agent}`) blocks.all ??= mark;
    else if (r.scope.startsWith('squad:')) blocks.squads.set(r.scope.slice(6), mark);
    else if (r.scope.startsWith('task:')) blocks.tasks.set(r.scope.slice(5), mark);
  }
  return blocks;
}

/** A spent, unlifted budget whose action is more than a warning, with its current period. */
export interface SpentBudget {
  scope: string;
  action: Exclude<BudgetAction, 'warn'>;
  period: BudgetPeriod;
  periodStart: number;
  periodEnd: number | null;
  pausedAt: number | null;
}

/** The project's spent `downgrade`, `pause` and `block` budgets this period (not lifted). */
export async function spentBudgets(db: SqlExecutor, project: string, now: number): Promise<SpentBudget[]> {
  const rows = await db.all<{ scope: string; action: SpentBudget['action']; period: BudgetPeriod; period_start: number | string; paused_at: number | string | null }>(
    `SELECT b.scope, b.action, b.period, s.period_start, s.paused_at FROM budgets b
       JOIN budget_spend s ON s.project = b.project AND s.scope = b.scope AND s.period_start = ${PERIOD_CASE}
      WHERE b.project = $1 AND b.action <> 'warn' AND s.spent >= b.limit_value AND s.lifted_at IS NULL
      ORDER BY b.scope`,
    [project, ...periodParams(now)],
  );
  return rows.map((r) => ({
    scope: r.scope,
    action: r.action,
    period: r.period,
    periodStart: Number(r.period_start),
    periodEnd: periodEnd(r.period, Number(r.period_start)),
    pausedAt: r.paused_at === null ? null : Number(r.paused_at),
  }));
}

/** Marks a spent pause budget's period as acted on; false when another pass already did. */
export async function markPaused(db: SqlExecutor, project: string, scope: string, start: number, now: number): Promise<boolean> {
  return (await db.run('UPDATE budget_spend SET paused_at = $4 WHERE project = $1 AND scope = $2 AND period_start = $3 AND paused_at IS NULL', [project, scope, start, now])) > 0;
}

/**
 * `sos budgets lift <scope>` (admin): this period's block, pause or downgrade no longer applies;
 * the next period enforces again. Refused when the budget is not spent.
 */
export async function liftBudget(store: Store, caller: Caller, scope: string, now = Date.now()): Promise<BudgetState> {
  await requireAdmin(store, caller, 'lifting a budget');
  const state = await showBudget(store, caller, scope, now);
  if (state.state !== 'exhausted') throw new UsageError(`the budget on ${scope} is not spent (${state.state}): nothing to lift`);
  if (state.action === 'warn') throw new UsageError(`the budget on ${scope} only warns: nothing to lift`);
  if (state.liftedAt !== null) throw new UsageError(`the budget on ${scope} is already lifted until its period rolls over`);
  await store.sql.run('UPDATE budget_spend SET lifted_at = $4 WHERE project = $1 AND scope = $2 AND period_start = $3 AND lifted_at IS NULL', [
    caller.project,
    scope,
    state.periodStart,
    now,
  ]);
  return showBudget(store, caller, scope, now);
}

/** The refusal a blocked claim gets: permission denied (exit 6), naming the budget. */
export function budgetRefusal(scope: string, project: string, action: BudgetAction = 'block'): PermissionDenied {
  return new PermissionDenied(`the budget on ${scope} in project "${project}" is spent, and its action is ${action}`, {
    hint: `see \`sos budgets show ${scope}\`; raise it with \`sos budgets set ${scope} --limit …\`, lift it for this period with \`sos budgets lift ${scope}\`, or wait for its period to roll over`,
  });
}
