import { addGoal, closeGoal, type Goal, getGoal, listGoals } from '../core/brain/goals.js';
import { str } from './args.js';
import type { Invocation, Output } from './define.js';
import { fields, iso, table } from './format.js';
import { withSession } from './session.js';

/** The `--json` shape of a goal (stable). */
const view = (g: Goal) => ({ id: g.id, text: g.text, priority: g.priority, status: g.status, createdBy: g.createdBy, createdAt: iso(g.createdAt), updatedAt: iso(g.updatedAt) });

const describe = (g: Goal) =>
  fields([
    ['id', g.id],
    ['goal', g.text],
    ['priority', String(g.priority)],
    ['status', g.status],
    ['created', `${iso(g.createdAt)} by ${g.createdBy}`],
    ['updated', iso(g.updatedAt)],
  ]);

export function add(inv: Invocation): Promise<Output> {
  return withSession(inv, async ({ store, caller }) => {
    const priority = str(inv.options.priority);
    const g = await addGoal(store, caller, { text: inv.args.text as string, ...(priority !== undefined ? { priority } : {}) });
    return { data: view(g), human: `goal ${g.id} added`, quiet: g.id };
  });
}

export function list(inv: Invocation): Promise<Output> {
  return withSession(inv, async ({ store, caller }) => {
    const goals = await listGoals(store, caller, { all: inv.options.all === true });
    return {
      data: goals.map(view),
      human: goals.length
        ? table(['id', 'priority', 'status', 'goal'], goals.map((g) => [g.id, String(g.priority), g.status, g.text.length > 80 ? `${g.text.slice(0, 79)}…` : g.text]))
        : `no ${inv.options.all === true ? '' : 'open '}goals in project "${caller.project}": sos goals add "<goal>"`,
      quiet: goals.map((g) => g.id).join('\n'),
    };
  });
}

export function show(inv: Invocation): Promise<Output> {
  return withSession(inv, async ({ store, caller }) => {
    const g = await getGoal(store, caller, inv.args.id as string);
    return { data: view(g), human: describe(g), quiet: g.id };
  });
}

const closer = (status: 'done' | 'dropped') => (inv: Invocation) =>
  withSession(inv, async ({ store, caller }) => {
    const g = await closeGoal(store, caller, inv.args.id as string, status);
    return { data: view(g), human: `goal ${g.id} ${status}`, quiet: g.id };
  });

export const done = closer('done');
export const drop = closer('dropped');
