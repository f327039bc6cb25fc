import { type Caller, requireAdmin } from '../auth/caller.js';
import { NotFound, UsageError } from '../errors.js';
import { requireProject } from '../identity/projects.js';
import { newId } from '../ids.js';
import { refuseNul } from '../safe-text.js';
import type { Store } from '../store/port.js';
import { parsePriority } from '../tasks/service.js';

/**
 * Goals (issue 14): what the brain works toward, a small list per project. Admins and the
 * operator add and close them; anyone in the project reads them. A goal that is done or dropped
 * makes a proposal that names it stale.
 */

export const GOAL_STATUSES = ['open', 'done', 'dropped'] as const;
export type GoalStatus = (typeof GOAL_STATUSES)[number];

export interface Goal {
  project: string;
  id: string;
  text: string;
  priority: number;
  status: GoalStatus;
  createdBy: string;
  createdAt: number;
  updatedAt: number;
}

export const MAX_GOAL_CHARS = 2_000;
const GOAL_ID = /^gol_[0-9a-z]{26}$/;

interface GoalRow {
  project: string;
  id: string;
  text: string;
  priority: number | string;
  status: GoalStatus;
  created_by: string;
  created_at: number | string;
  updated_at: number | string;
}

const goalOf = (r: GoalRow): Goal => ({
  project: r.project,
  id: r.id,
  text: r.text,
  priority: Number(r.priority),
  status: r.status,
  createdBy: r.created_by,
  createdAt: Number(r.created_at),
  updatedAt: Number(r.updated_at),
});

export async function addGoal(store: Store, caller: Caller, input: { text: string; priority?: string | number }, now = Date.now()): Promise<Goal> {
  const text = typeof input.text === 'string' ? input.text.trim() : '';
  if (text === '') throw new UsageError('a goal needs its text');
  refuseNul(text, 'the goal');
  if (text.length > MAX_GOAL_CHARS) throw new UsageError(`the goal is ${text.length} characters; the limit is ${MAX_GOAL_CHARS}`);
  const priority = parsePriority(input.priority);
  await requireAdmin(store, caller, 'adding a goal');
  await requireProject(store, caller.project);
  const id = newId('gol', now);
  const by = caller.agent ?? 'operator';
  await store.sql.run(
    'INSERT INTO goals (project, id, text, priority, status, created_by, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7)',
    [caller.project, id, text, priority, 'open', by, now],
  );
  return { project: caller.project, id, text, priority, status: 'open', createdBy: by, createdAt: now, updatedAt: now };
}

export async function listGoals(store: Store, caller: Caller, options: { all?: boolean } = {}): Promise<Goal[]> {
  const rows = await store.sql.all<GoalRow>(
    `SELECT * FROM goals WHERE project = $1 ${options.all ? '' : "AND status = 'open'"} ORDER BY CASE status WHEN 'open' THEN 0 ELSE 1 END, priority DESC, id`,
    [caller.project],
  );
  return rows.map(goalOf);
}

export async function getGoal(store: Store, caller: Caller, id: string): Promise<Goal> {
  if (!GOAL_ID.test(id)) throw new UsageError(`invalid goal id ${JSON.stringify(id.slice(0, 80))}: expected gol_ followed by 26 characters`);
  const row = await store.sql.one<GoalRow>('SELECT * FROM goals WHERE project = $1 AND id = $2', [caller.project, id]);
  if (!row) throw new NotFound(`goal ${id} does not exist in project "${caller.project}"`, { hint: 'list them with `sos goals list --all`' });
  return goalOf(row);
}

/** Marks an open goal done or dropped; closing a closed goal is refused (exit 2), naming its status. */
export async function closeGoal(store: Store, caller: Caller, id: string, status: Exclude<GoalStatus, 'open'>, now = Date.now()): Promise<Goal> {
  const goal = await getGoal(store, caller, id);
  await requireAdmin(store, caller, `marking a goal ${status}`);
  const changed = await store.sql.run("UPDATE goals SET status = $3, updated_at = $4 WHERE project = $1 AND id = $2 AND status = 'open'", [caller.project, id, status, now]);
  if (changed === 0) throw new UsageError(`goal ${id} is already ${(await getGoal(store, caller, id)).status}`);
  return { ...goal, status, updatedAt: now };
}
