import { Conflict, NotFound } from '../errors.js';
import { SqlError, type SqlDriver, type SqlExecutor } from '../store/sql/driver.js';
import type {
  ChangeRefusal,
  Handoff,
  Idempotency,
  NewTask,
  Task,
  TaskChange,
  TaskEvent,
  TaskFilter,
  TaskStatus,
} from './types.js';

interface TaskRow {
  seq: number;
  id: string;
  project: string;
  title: string;
  description: string | null;
  status: TaskStatus;
  priority: number;
  squad: string | null;
  assignee: string | null;
  claimant: string | null;
  attempt: number;
  max_attempts: number;
  lease_ms: number;
  lease_until: number | null;
  available_at: number;
  unmet_deps: number;
  budget_tokens: number | null;
  budget_micros: number | null;
  usage_tokens: number | null;
  result: string | null;
  error: string | null;
  blocked_reason: string | null;
  handoff: string | null;
  handoff_to: string | null;
  created_by: string;
  created_at: number;
  updated_at: number;
}

const COLUMNS =
  'seq, id, project, title, description, status, priority, squad, assignee, claimant, attempt, max_attempts, lease_ms, lease_until, available_at, unmet_deps, budget_tokens, budget_micros, usage_tokens, result, error, blocked_reason, handoff, handoff_to, created_by, created_at, updated_at';

const SETTABLE: Record<string, string> = {
  claimant: 'claimant',
  leaseUntil: 'lease_until',
  availableAt: 'available_at',
  result: 'result',
  error: 'error',
  usageTokens: 'usage_tokens',
  blockedReason: 'blocked_reason',
  attempt: 'attempt',
  maxAttempts: 'max_attempts',
};

export interface ClaimOptions {
  id?: string;
  squad?: string;
  leaseMs?: number;
  now: number;
  /** Squads and tasks whose spent `block` budget stops their claims. */
  excludeSquads?: readonly string[];
  excludeTasks?: readonly string[];
}

/** Runs inside the change's transaction, after it (the SQL bus writes the task.* event here). */
export type Within = (tx: SqlExecutor, task: Task, info: { unblocked: string[]; blocked: string[] }) => Promise<void>;

export type ChangeResult =
  | { ok: true; task: Task; replayed: boolean; unblocked: string[]; blocked: string[] }
  | { ok: false; refusal: ChangeRefusal };

/**
 * Tasks on the Store's SQL database. The claim is one statement: SQLite
 * `UPDATE … WHERE seq = (SELECT … LIMIT 1) RETURNING`, PostgreSQL a `FOR UPDATE SKIP LOCKED` pick
 * feeding the UPDATE. Every other change is a guarded UPDATE whose WHERE re-checks status and
 * fence, so two writers can never both win; each change and its event commit together.
 */
export class SqlTaskRepo {
  constructor(private readonly db: SqlDriver) {}

  private async arrays(db: SqlExecutor, rows: TaskRow[]): Promise<Task[]> {
    if (rows.length === 0) return [];
    const seqs = rows.map((r) => r.seq);
    const list = seqs.map((_, i) => `$${i + 1}`).join(', ');
    // One round trip for all four lists (and one query at a time on a transaction's client).
    const items = await db.all<{ task_seq: number; k: string; v: string; o: number }>(
      `SELECT task_seq, 'l' AS k, label AS v, 0 AS o FROM task_labels WHERE task_seq IN (${list})
       UNION ALL SELECT task_seq, 'r' AS k, capability AS v, 0 AS o FROM task_requires WHERE task_seq IN (${list})
       UNION ALL SELECT d.task_seq, 'd' AS k, t.id AS v, t.seq AS o FROM task_deps d JOIN tasks t ON t.seq = d.depends_on_seq WHERE d.task_seq IN (${list})
       UNION ALL SELECT task_seq, 'a' AS k, ref AS v, 0 AS o FROM task_artifacts WHERE task_seq IN (${list})
       ORDER BY k, o, v`,
      seqs,
    );
    const groups: Record<string, Map<number, string[]>> = { l: new Map(), r: new Map(), d: new Map(), a: new Map() };
    for (const item of items) {
      const map = groups[item.k]!;
      map.set(item.task_seq, [...(map.get(item.task_seq) ?? []), item.v]);
    }
    const [l, r, d, a] = [groups.l!, groups.r!, groups.d!, groups.a!];
    return rows.map((row) => this.toTask(row, l, r, d, a));
  }

  private toTask(row: TaskRow, l: Map<number, string[]>, r: Map<number, string[]>, d: Map<number, string[]>, a: Map<number, string[]>): Task {
    return {
      id: row.id,
      project: row.project,
      title: row.title,
      description: row.description,
      status: row.status,
      priority: row.priority,
      squad: row.squad,
      labels: l.get(row.seq) ?? [],
      requires: r.get(row.seq) ?? [],
      dependsOn: d.get(row.seq) ?? [],
      assignee: row.assignee,
      claimant: row.claimant,
      attempt: row.attempt,
      maxAttempts: row.max_attempts,
      leaseMs: row.lease_ms,
      leaseUntil: row.lease_until,
      availableAt: row.available_at,
      unmetDeps: row.unmet_deps,
      budgetTokens: row.budget_tokens,
      budgetMicros: row.budget_micros,
      usageTokens: row.usage_tokens,
      result: row.result,
      error: row.error,
      artifacts: a.get(row.seq) ?? [],
      blockedReason: row.blocked_reason,
      handoff: row.handoff ? (JSON.parse(row.handoff) as Handoff) : null,
      createdBy: row.created_by,
      createdAt: row.created_at,
      updatedAt: row.updated_at,
    };
  }

  private async one(db: SqlExecutor, project: string, id: string): Promise<TaskRow | undefined> {
    return db.one<TaskRow>(`SELECT ${COLUMNS} FROM tasks WHERE project = $1 AND id = $2`, [project, id]);
  }

  private async event(db: SqlExecutor, seq: number, at: number, e: TaskChange['event'], from: TaskStatus | null, to: TaskStatus | null) {
    await db.run('INSERT INTO task_events (task_seq, at, actor, event, from_status, to_status, detail) VALUES ($1, $2, $3, $4, $5, $6, $7)', [
      seq,
      at,
      e.actor,
      e.name,
      from,
      to,
      e.detail === undefined ? null : JSON.stringify(e.detail),
    ]);
  }

  /**
   * Runs `fn` in one transaction with the idempotency record: a repeat of (project, actor, key)
   * returns the stored result and runs nothing; two racing repeats leave one winner.
   */
  private async once<T>(
    project: string,
    idem: Idempotency | undefined,
    fn: (tx: SqlExecutor) => Promise<T>,
    keep: (value: T) => boolean = () => true,
  ): Promise<{ value: T; replayed: boolean }> {
    const stored = async (db: SqlExecutor) =>
      idem === undefined
        ? undefined
        : db.one<{ operation: string; result: string }>('SELECT operation, result FROM idempotency WHERE project = $1 AND actor = $2 AND key = $3', [
            project,
            idem.actor,
            idem.key,
          ]);
    const replay = (row: { operation: string; result: string }) => {
      if (row.operation !== idem!.operation) {
        throw new Conflict(`idempotency key "${idem!.key}" was already used for \`${row.operation}\``, { hint: 'use a new key for a new operation' });
      }
      return { value: JSON.parse(row.result) as T, replayed: true };
    };
    try {
      return await this.db.transaction(async (tx) => {
        const before = await stored(tx);
        if (before) return replay(before);
        const value = await fn(tx);
        // A refused change is not recorded: the same key may be retried once the refusal is fixed.
        if (idem !== undefined && keep(value)) {
          await tx.run('INSERT INTO idempotency (project, actor, key, operation, result, created_at) VALUES ($1, $2, $3, $4, $5, $6)', [
            project,
            idem.actor,
            idem.key,
            idem.operation,
            JSON.stringify(value),
            Date.now(),
          ]);
        }
        return { value, replayed: false };
      });
    } catch (err) {
      if (err instanceof SqlError && err.kind === 'unique' && idem !== undefined) {
        const after = await stored(this.db);
        if (after) return replay(after);
      }
      throw err;
    }
  }

  async create(t: NewTask, idem?: Idempotency): Promise<{ task: Task; replayed: boolean }> {
    const { value, replayed } = await this.once(t.project, idem, async (tx) => {
      const deps: { seq: number; id: string; status: TaskStatus }[] = [];
      for (const id of new Set(t.dependsOn)) {
        const dep = await tx.one<{ seq: number; id: string; status: TaskStatus }>('SELECT seq, id, status FROM tasks WHERE project = $1 AND id = $2', [
          t.project,
          id,
        ]);
        if (!dep) throw new NotFound(`dependency ${id} does not exist in project "${t.project}"`);
        deps.push(dep);
      }
      const unmet = deps.filter((d) => d.status !== 'done').length;
      const doomed = deps.find((d) => d.status === 'dead' || d.status === 'canceled' || d.status === 'failed');
      const status: TaskStatus = doomed ? 'blocked' : t.status;
      const row = await tx.one<{ seq: number }>(
        `INSERT INTO tasks (id, project, title, description, status, priority, squad, assignee, attempt, max_attempts, lease_ms, available_at, unmet_deps,
           budget_tokens, budget_micros, blocked_reason, created_by, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, $9, $10, $11, $12, $13, $14, $15, $16, $11, $11) RETURNING seq`,
        [
          t.id,
          t.project,
          t.title,
          t.description,
          status,
          t.priority,
          t.squad,
          t.assignee,
          t.maxAttempts,
          t.leaseMs,
          t.createdAt,
          unmet,
          t.budgetTokens,
          t.budgetMicros,
          doomed ? `dependency ${doomed.id} is ${doomed.status}` : null,
          t.createdBy,
        ],
      );
      const seq = row!.seq;
      for (const label of new Set(t.labels)) await tx.run('INSERT INTO task_labels (task_seq, label) VALUES ($1, $2)', [seq, label]);
      for (const cap of new Set(t.requires)) await tx.run('INSERT INTO task_requires (task_seq, capability) VALUES ($1, $2)', [seq, cap]);
      for (const dep of deps) await tx.run('INSERT INTO task_deps (task_seq, depends_on_seq) VALUES ($1, $2)', [seq, dep.seq]);
      await this.event(tx, seq, t.createdAt, { actor: t.createdBy, name: 'created' }, null, status);
      const [task] = await this.arrays(tx, [(await this.one(tx, t.project, t.id))!]);
      return task!;
    });
    return { task: value, replayed };
  }

  /** The task without its lists (labels, requires, deps, artifacts are empty): one query. */
  async peek(project: string, id: string): Promise<Task | undefined> {
    const row = await this.one(this.db, project, id);
    return row ? this.toTask(row, new Map(), new Map(), new Map(), new Map()) : undefined;
  }

  async get(project: string, id: string): Promise<Task | undefined> {
    const row = await this.one(this.db, project, id);
    return row ? (await this.arrays(this.db, [row]))[0] : undefined;
  }

  async list(project: string, filter: TaskFilter, now: number): Promise<Task[]> {
    const where = ['project = $1'];
    const params: unknown[] = [project];
    const add = (sql: (n: number) => string, value: unknown) => {
      params.push(value);
      where.push(sql(params.length));
    };
    if (filter.statuses?.length) {
      const marks = filter.statuses.map((s) => {
        params.push(s);
        return `$${params.length}`;
      });
      where.push(`status IN (${marks.join(', ')})`);
    }
    if (filter.squad !== undefined) add((n) => `squad = $${n}`, filter.squad);
    if (filter.assignee !== undefined) add((n) => `(assignee = $${n} OR claimant = $${n})`, filter.assignee);
    if (filter.ready) {
      where.push("status = 'queued' AND unmet_deps = 0");
      add((n) => `available_at <= $${n}`, now);
    }
    params.push(filter.limit ?? 1000);
    const rows = await this.db.all<TaskRow>(
      `SELECT ${COLUMNS} FROM tasks WHERE ${where.join(' AND ')} ORDER BY priority DESC, seq LIMIT $${params.length}`,
      params,
    );
    return this.arrays(this.db, rows);
  }

  /** The one-statement claim, and its event, in one short transaction. */
  async claim(
    project: string,
    agent: string,
    opts: ClaimOptions,
    idem?: Idempotency,
    within?: Within,
  ): Promise<{ task: Task | undefined; replayed: boolean }> {
    const params: unknown[] = [project, agent, opts.now, opts.leaseMs ?? 0];
    const extra: string[] = [];
    if (opts.squad !== undefined) {
      params.push(opts.squad);
      extra.push(`AND t.squad = $${params.length}`);
    }
    if (opts.id !== undefined) {
      params.push(opts.id);
      extra.push(`AND t.id = $${params.length}`);
    }
    const list = (values: readonly string[]) => values.map((v) => (params.push(v), `$${params.length}`)).join(', ');
    if (opts.excludeSquads?.length) extra.push(`AND (t.squad IS NULL OR t.squad NOT IN (${list(opts.excludeSquads)}))`);
    if (opts.excludeTasks?.length) extra.push(`AND t.id NOT IN (${list(opts.excludeTasks)})`);
    const pick = `SELECT t.seq FROM tasks t
      WHERE t.project = $1 AND t.status = 'queued' AND t.unmet_deps = 0 AND t.available_at <= $3
        AND EXISTS (SELECT 1 FROM agents g WHERE g.project = $1 AND g.name = $2)
        AND (t.assignee IS NULL OR t.assignee = $2)
        AND (t.squad IS NULL OR t.squad IN (SELECT m.squad FROM squad_members m WHERE m.project = $1 AND m.agent = $2))
        AND NOT EXISTS (SELECT 1 FROM task_requires r WHERE r.task_seq = t.seq AND NOT EXISTS (
          SELECT 1 FROM agent_capabilities c WHERE c.project = $1 AND c.agent = $2 AND c.capability = r.capability))
        ${extra.join(' ')}
      ORDER BY t.priority DESC, t.seq LIMIT 1`;
    // A claim's own lease (--lease) becomes the task's, so heartbeats renew by it, not the default.
    const set = `status = 'claimed', claimant = $2, attempt = attempt + 1, updated_at = $3,
      lease_until = $3 + CASE WHEN $4 > 0 THEN $4 ELSE lease_ms END, lease_ms = CASE WHEN $4 > 0 THEN $4 ELSE lease_ms END`;
    const sql =
      this.db.dialect === 'postgres'
        ? `WITH picked AS MATERIALIZED (${pick} FOR UPDATE SKIP LOCKED)
           UPDATE tasks SET ${set} FROM picked WHERE tasks.seq = picked.seq RETURNING ${COLUMNS.split(', ').map((c) => `tasks.${c}`).join(', ')}`
        : `UPDATE tasks SET ${set} WHERE seq = (${pick}) AND status = 'queued' RETURNING ${COLUMNS}`;
    const { value, replayed } = await this.once(project, idem, async (tx) => {
      const row = await tx.one<TaskRow>(sql, params);
      if (!row) return null;
      await this.event(tx, row.seq, opts.now, { actor: agent, name: 'claimed', detail: { fence: row.attempt, leaseUntil: row.lease_until } }, 'queued', 'claimed');
      const task = (await this.arrays(tx, [row]))[0]!;
      await within?.(tx, task, { unblocked: [], blocked: [] });
      return task;
    });
    return { task: value ?? undefined, replayed };
  }

  /** Applies a guarded change; on refusal says why (not found, status, holder, handoff). */
  async change(project: string, id: string, change: TaskChange, now: number, idem?: Idempotency, within?: Within): Promise<ChangeResult> {
    const attempt = await this.once(
      project,
      idem,
      async (tx): Promise<ChangeResult> => {
        let expect = change.expect;
        let updated: TaskRow | undefined;
        let before: TaskRow | undefined;
        for (let round = 0; round < 2 && !updated; round++) {
          if (expect === undefined) {
            before = await this.one(tx, project, id);
            if (!before) return { ok: false, refusal: { reason: 'not_found' } };
            if (!change.from.includes(before.status)) return { ok: false, refusal: this.refusal(before, change) };
            expect = before.status;
          }
          updated = await this.tryChange(tx, project, id, change, expect, now);
          if (!updated && before === undefined) {
            // The status moved since the caller looked: read it once, and retry if still allowed.
            before = await this.one(tx, project, id);
            if (!before) return { ok: false, refusal: { reason: 'not_found' } };
            if (before.status === expect || !change.from.includes(before.status)) return { ok: false, refusal: this.refusal(before, change) };
            expect = before.status;
          } else if (!updated) {
            return { ok: false, refusal: this.refusal(before!, change) };
          }
        }
        if (!updated) return { ok: false, refusal: this.refusal(before!, change) };
        for (const ref of new Set(change.artifacts ?? [])) {
          await tx.run('INSERT INTO task_artifacts (task_seq, ref) VALUES ($1, $2) ON CONFLICT DO NOTHING', [updated.seq, ref]);
        }
        await this.event(tx, updated.seq, now, change.event, expect!, change.to);
        let unblocked: string[] = [];
        let blocked: string[] = [];
        if (change.to === 'done' && expect !== 'done') {
          const rows = await tx.all<{ id: string; status: TaskStatus; unmet_deps: number }>(
            `UPDATE tasks SET unmet_deps = unmet_deps - 1, updated_at = $2
             WHERE seq IN (SELECT task_seq FROM task_deps WHERE depends_on_seq = $1) RETURNING id, status, unmet_deps`,
            [updated.seq, now],
          );
          unblocked = rows.filter((r) => r.unmet_deps === 0 && r.status === 'queued').map((r) => r.id);
        }
        if ((change.to === 'dead' || change.to === 'canceled') && expect !== change.to) {
          const reason = `dependency ${id} is ${change.to}`;
          const rows = await tx.all<{ seq: number; id: string; status: TaskStatus }>(
            `UPDATE tasks SET status = 'blocked', blocked_reason = $2, updated_at = $3
             WHERE seq IN (SELECT task_seq FROM task_deps WHERE depends_on_seq = $1) AND status IN ('backlog', 'queued')
             RETURNING seq, id, status`,
            [updated.seq, reason, now],
          );
          for (const r of rows) await this.event(tx, r.seq, now, { actor: change.event.actor, name: 'blocked', detail: { reason } }, 'queued', 'blocked');
          blocked = rows.map((r) => r.id);
        }
        const [task] = await this.arrays(tx, [updated]);
        await within?.(tx, task!, { unblocked, blocked });
        return { ok: true, task: task!, replayed: false, unblocked, blocked };
      },
      (result) => result.ok,
    );
    if (attempt.value.ok && attempt.replayed) return { ...attempt.value, replayed: true };
    return attempt.value;
  }

  /** The guarded UPDATE itself: status exactly `expect`, plus holder, handoff and lease guards. */
  private async tryChange(tx: SqlExecutor, project: string, id: string, change: TaskChange, expect: TaskStatus, now: number): Promise<TaskRow | undefined> {
    const sets = ['status = $3', 'updated_at = $4'];
    const params: unknown[] = [project, id, change.to, now];
    for (const [key, value] of Object.entries(change.set ?? {})) {
      if (key === 'handoff') {
        params.push(value === null ? null : JSON.stringify(value));
        sets.push(`handoff = $${params.length}`);
        params.push(value === null ? null : (value as Handoff).to);
        sets.push(`handoff_to = $${params.length}`);
        continue;
      }
      params.push(value);
      sets.push(`${SETTABLE[key]} = $${params.length}`);
    }
    if (change.bumpAttempt) sets.push('attempt = attempt + 1');
    params.push(expect);
    const where = ['project = $1', 'id = $2', `status = $${params.length}`];
    if (change.holder) {
      params.push(change.holder.agent);
      where.push(`claimant = $${params.length}`);
      if (change.holder.fence !== undefined) {
        params.push(change.holder.fence);
        where.push(`attempt = $${params.length}`);
      }
    }
    if (change.handoffTo !== undefined) {
      params.push(change.handoffTo);
      where.push(`handoff_to = $${params.length}`);
    }
    if (change.leaseExpiredBy !== undefined) {
      params.push(change.leaseExpiredBy);
      where.push(`lease_until < $${params.length}`);
    }
    return tx.one<TaskRow>(`UPDATE tasks SET ${sets.join(', ')} WHERE ${where.join(' AND ')} RETURNING ${COLUMNS}`, params);
  }

  private refusal(row: TaskRow, change: TaskChange): ChangeRefusal {
    if (!change.from.includes(row.status)) return { reason: 'status', status: row.status };
    if (change.holder && (row.claimant !== change.holder.agent || (change.holder.fence !== undefined && row.attempt !== change.holder.fence))) {
      return { reason: 'holder', claimant: row.claimant, attempt: row.attempt, status: row.status };
    }
    return { reason: 'handoff', to: row.handoff_to, status: row.status };
  }

  /** A comment: an event with no change of status. */
  async comment(project: string, id: string, actor: string, text: string, now: number, idem?: Idempotency): Promise<boolean> {
    const { value } = await this.once(project, idem, async (tx) => {
      const row = await this.one(tx, project, id);
      if (!row) return false;
      await this.event(tx, row.seq, now, { actor, name: 'commented', detail: { text } }, row.status, row.status);
      return true;
    });
    return value;
  }

  async events(project: string, id: string): Promise<TaskEvent[]> {
    const rows = await this.db.all<{ at: number; actor: string; event: string; from_status: TaskStatus | null; to_status: TaskStatus | null; detail: string | null }>(
      `SELECT e.at, e.actor, e.event, e.from_status, e.to_status, e.detail FROM task_events e JOIN tasks t ON t.seq = e.task_seq
       WHERE t.project = $1 AND t.id = $2 ORDER BY e.id`,
      [project, id],
    );
    return rows.map((r) => ({
      at: r.at,
      actor: r.actor,
      event: r.event,
      from: r.from_status,
      to: r.to_status,
      detail: r.detail ? (JSON.parse(r.detail) as Record<string, unknown>) : null,
    }));
  }

  /** Tasks whose lease ran out (the sweep's work list). */
  async expired(project: string, now: number, limit = 500): Promise<Task[]> {
    const rows = await this.db.all<TaskRow>(
      `SELECT ${COLUMNS} FROM tasks WHERE project = $1 AND status IN ('claimed', 'in_progress') AND lease_until < $2 ORDER BY lease_until LIMIT $3`,
      [project, now, limit],
    );
    return this.arrays(this.db, rows);
  }

  /** Ids of the tasks that depend on this one. */
  async dependents(project: string, id: string): Promise<Task[]> {
    const rows = await this.db.all<TaskRow>(
      `SELECT ${COLUMNS.split(', ').map((c) => `t.${c}`).join(', ')} FROM tasks t JOIN task_deps d ON d.task_seq = t.seq
       JOIN tasks p ON p.seq = d.depends_on_seq WHERE p.project = $1 AND p.id = $2 ORDER BY t.seq`,
      [project, id],
    );
    return this.arrays(this.db, rows);
  }

  /** Ready work with how many open tasks each one unblocks (for `sos tasks board`). */
  /**
   * The first ready tasks by priority then age, read along the `tasks_ready` index: the board's
   * order without its `unblocks` tie-break, which costs a count per ready task (the brain's view).
   */
  async readyTop(project: string, now: number, limit: number): Promise<Task[]> {
    const rows = await this.db.all<TaskRow>(
      `SELECT ${COLUMNS} FROM tasks WHERE project = $1 AND status = 'queued' AND unmet_deps = 0 AND available_at <= $2 ORDER BY priority DESC, seq LIMIT $3`,
      [project, now, limit],
    );
    return this.arrays(this.db, rows);
  }

  async board(project: string, squad: string | undefined, now: number, limit: number): Promise<(Task & { unblocks: number })[]> {
    const params: unknown[] = [project, now, limit];
    let squadClause = '';
    if (squad !== undefined) {
      params.push(squad);
      squadClause = `AND t.squad = $${params.length}`;
    }
    const rows = await this.db.all<TaskRow & { unblocks: number }>(
      `SELECT ${COLUMNS.split(', ').map((c) => `t.${c}`).join(', ')},
         (SELECT COUNT(*) FROM task_deps d JOIN tasks x ON x.seq = d.task_seq WHERE d.depends_on_seq = t.seq AND x.status NOT IN ('done', 'canceled')) AS unblocks
       FROM tasks t WHERE t.project = $1 AND t.status = 'queued' AND t.unmet_deps = 0 AND t.available_at <= $2 ${squadClause}
       ORDER BY t.priority DESC, unblocks DESC, t.seq LIMIT $3`,
      params,
    );
    const tasks = await this.arrays(this.db, rows);
    return tasks.map((t, i) => ({ ...t, unblocks: Number(rows[i]!.unblocks) }));
  }
}
