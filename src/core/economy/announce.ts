import { escalateToCoordinators } from '../bus/service.js';
import type { Bus } from '../bus/port.js';
import type { Store } from '../store/port.js';
import type { BudgetCrossing } from './budgets.js';
import { budgetAmount } from './format.js';

/** What a budget crossing is announced through: the project's event stream and its coordinators. */
export interface AnnounceContext {
  store: Store;
  bus: Bus;
  now?: () => number;
}

/** The line a coordinator reads: scope, level, spend against the limit, and what now happens. */
export function crossingText(c: BudgetCrossing): string {
  const share = c.limit > 0 ? Math.floor((c.spent * 100) / c.limit) : 100;
  const head = `budget ${c.scope}: ${c.level === 'exhausted' ? 'exhausted' : 'warning'}, ${budgetAmount(c.unit, c.spent)} of ${budgetAmount(c.unit, c.limit)} (${share}%)`;
  if (c.level === 'warning') return `${head}; action at the limit: ${c.action}`;
  const then: Record<BudgetCrossing['action'], string> = {
    warn: 'nothing is stopped (action warn)',
    block: 'claims in this scope are refused until the period rolls over (action block)',
    pause: 'claims in this scope are refused and the daemon parks its agents until the period rolls over (action pause; `sos budgets lift` undoes it)',
    downgrade: 'the scope is marked for a cheaper model tier until the period rolls over (action downgrade)',
  };
  return `${head}; ${then[c.action]}`;
}

/**
 * Announces each crossing once (the ledger reports a crossing only to the one recorder whose
 * transaction set its `warned_at`/`exhausted_at`): a `budget.warning` or `budget.exhausted`
 * event on the project's stream, and an escalation message to every coordinator. Called after
 * the recording transaction commits, so a crash in between loses the announcement, never spend.
 * When one record crosses both thresholds of a budget, both events are emitted but the
 * coordinators get only the exhausted message (a warning reading "110% of the limit" misleads).
 */
export async function announceCrossings(ctx: AnnounceContext, project: string, crossings: BudgetCrossing[]): Promise<void> {
  const exhausted = new Set(crossings.filter((c) => c.level === 'exhausted').map((c) => `${c.scope}@${c.periodStart}`));
  for (const c of crossings) {
    const at = ctx.now?.() ?? Date.now();
    await ctx.bus.emit(
      project,
      `budget.${c.level}`,
      { scope: c.scope, level: c.level, spent: c.spent, limit: c.limit, unit: c.unit, action: c.action, period_start: c.periodStart },
      at,
    );
    if (c.level === 'warning' && exhausted.has(`${c.scope}@${c.periodStart}`)) continue;
    await escalateToCoordinators({ store: ctx.store, bus: ctx.bus }, project, { from: 'sos', text: crossingText(c), at });
  }
}
