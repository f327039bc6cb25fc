import { newId } from '../ids.js';
import type { SqlExecutor } from '../store/sql/driver.js';

/**
 * The governance gate of the shell executor. A task's command runs only after an operator or
 * admin approved it in the approval queue (`sos approvals approve`), as method `shell` under
 * the cycle id `task:<task id>`: one approval per task, whatever the number of attempts. The
 * worker files the request the first time it meets the task; the motor never executes a
 * `shell` approval (governance.ts leaves it `approved` for the worker), and the worker marks it
 * `executed` once the command ran.
 */

export const SHELL_METHOD = 'shell';
const cycleOf = (taskId: string) => `task:${taskId}`;

export interface ShellGate {
  id: string;
  status: string;
  approved: boolean;
}

export async function shellGate(db: SqlExecutor, project: string, taskId: string): Promise<ShellGate | null> {
  const row = await db.one<{ id: string; status: string }>('SELECT id, status FROM approvals WHERE project = $1 AND cycle_id = $2 AND method = $3', [
    project,
    cycleOf(taskId),
    SHELL_METHOD,
  ]);
  return row ? { id: row.id, status: row.status, approved: row.status === 'approved' || row.status === 'executed' } : null;
}

/** Files the approval request once (idempotent on the task), `human_gate`: one approve runs it. */
export async function requestShellApproval(
  db: SqlExecutor,
  project: string,
  input: { taskId: string; title: string; agent: string; command: readonly string[]; at: number },
): Promise<ShellGate> {
  const proposal = { method: SHELL_METHOD, agent: input.agent, goal_id: null, details: { task: input.taskId, title: input.title, command: input.command } };
  await db.run(
    `INSERT INTO approvals (project, id, cycle_id, method, tier, proposal, status, created_at) VALUES ($1, $2, $3, $4, 'human_gate', $5, 'pending', $6)
     ON CONFLICT (project, cycle_id, method) DO NOTHING`,
    [project, newId('apr', input.at), cycleOf(input.taskId), SHELL_METHOD, JSON.stringify(proposal), input.at],
  );
  return (await shellGate(db, project, input.taskId))!;
}

/** Records that the approved command ran (and how it ended). */
export async function markShellExecuted(db: SqlExecutor, project: string, id: string, outcome: string, reason: string): Promise<void> {
  await db.run("UPDATE approvals SET status = 'executed', outcome = $3, reason = $4 WHERE project = $1 AND id = $2 AND status IN ('approved', 'executed')", [
    project,
    id,
    outcome,
    reason.slice(0, 2_000),
  ]);
}
