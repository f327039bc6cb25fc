import { type BudgetState, listBudgets, removeBudget, setBudget, showBudget } from '../core/economy/budgets.js';
import { UsageError } from '../core/errors.js';
import type { Invocation, Output } from './define.js';
import { fields, iso, table } from './format.js';
import { withLifecycle, withSession } from './session.js';
import { budgetAmount } from '../core/economy/format.js';

const amount = (b: BudgetState, value: number) => budgetAmount(b.unit, value);

/** The `--json` shape of a budget (stable); amounts in micro-dollars or tokens, as `unit` says. */
const view = (b: BudgetState) => ({
  scope: b.scope,
  unit: b.unit,
  limit: b.limit,
  period: b.period,
  action: b.action,
  warnAt: b.warnAt,
  spent: b.spent,
  remaining: b.remaining,
  state: b.state,
  periodStart: iso(b.periodStart),
  periodEnd: iso(b.periodEnd),
  warnedAt: iso(b.warnedAt),
  exhaustedAt: iso(b.exhaustedAt),
  liftedAt: iso(b.liftedAt),
  pausedAt: iso(b.pausedAt),
});

/** The state as a word: a spent budget an operator lifted this period says so. */
const stateWord = (b: BudgetState) => (b.state === 'exhausted' && b.liftedAt !== null ? 'lifted' : b.state);

const share = (b: BudgetState) => `${Math.floor((b.spent * 100) / b.limit)}%`;

function describe(b: BudgetState): string {
  return fields([
    ['scope', b.scope],
    ['limit', `${amount(b, b.limit)} per ${b.period === 'total' ? 'all time' : b.period}`],
    ['action', b.action],
    ['warns at', `${b.warnAt}%`],
    ['spent', `${amount(b, b.spent)} (${share(b)})`],
    ['remaining', amount(b, b.remaining)],
    ['state', stateWord(b)],
    ['lifted', b.liftedAt === null ? null : `${iso(b.liftedAt)} (until the period rolls over)`],
    ['agents parked', b.pausedAt === null ? null : iso(b.pausedAt)],
    ['period', b.periodEnd === null ? 'all time' : `${iso(b.periodStart)} to ${iso(b.periodEnd)}`],
  ]);
}

export function set(inv: Invocation): Promise<Output> {
  return withSession(inv, async ({ store, caller }) => {
    const o = inv.options;
    for (const name of ['limit', 'period', 'action']) {
      if (typeof o[name] !== 'string') throw new UsageError(`sos budgets set needs --${name}`, { hint: 'e.g. sos budgets set project --limit $50 --period day --action block' });
    }
    const b = await setBudget(store, caller, {
      scope: inv.args.scope as string,
      limit: o.limit as string,
      period: o.period as string,
      action: o.action as string,
      ...(typeof o.at === 'string' ? { at: o.at } : {}),
    });
    return { data: view(b), human: describe(b), quiet: b.scope };
  });
}

export function list(inv: Invocation): Promise<Output> {
  return withSession(inv, async ({ store, caller }) => {
    const budgets = await listBudgets(store, caller);
    return {
      data: budgets.map(view),
      human: budgets.length
        ? table(
            ['scope', 'limit', 'period', 'action', 'spent', 'left', 'state'],
            budgets.map((b) => [b.scope, amount(b, b.limit), b.period, b.action, `${amount(b, b.spent)} (${share(b)})`, amount(b, b.remaining), stateWord(b)]),
          )
        : `no budgets in project "${caller.project}": sos budgets set project --limit $50 --period day --action warn`,
      quiet: budgets.map((b) => b.scope).join('\n'),
    };
  });
}

export function show(inv: Invocation): Promise<Output> {
  return withSession(inv, async ({ store, caller }) => {
    const b = await showBudget(store, caller, inv.args.scope as string);
    return { data: view(b), human: describe(b) };
  });
}

export function remove(inv: Invocation): Promise<Output> {
  return withSession(inv, async ({ store, caller }) => {
    const scope = inv.args.scope as string;
    await removeBudget(store, caller, scope);
    return { data: { scope, removed: true }, human: `budget on ${scope} removed` };
  });
}

export function lift(inv: Invocation): Promise<Output> {
  return withLifecycle(inv, async ({ life, caller }) => {
    const { liftAndUnpark } = await import('../core/economy/enforce.js');
    const { budget, unparked } = await liftAndUnpark(life, caller, inv.args.scope as string);
    return {
      data: { ...view(budget), unparked },
      human: `budget on ${budget.scope} lifted until ${budget.periodEnd === null ? 'it is set again' : iso(budget.periodEnd)}${unparked.length ? `; unparked ${unparked.join(', ')}` : ''}`,
      quiet: budget.scope,
    };
  });
}
