import { type Caller, describeCaller, requireAdmin } from '../auth/caller.js';
import { UsageError } from '../errors.js';
import { newId } from '../ids.js';
import type { Store } from '../store/port.js';
import type { SqlDriver, SqlExecutor } from '../store/sql/driver.js';

/**
 * The audit log of the daemon's HTTP surface (`http_audit`, migrations `sqlite/0016`,
 * `postgres/0015`): who changed what through it, when, and how it ended. The CLI needs no such
 * log (its operator is on the machine, with the database); a token used from elsewhere does.
 */

/**
 * The MCP tools that change nothing, so a call of theirs is not audited. Every other tool is:
 * `inbox` too, since reading marks the messages read (each is taken by exactly one reader).
 */
export const READ_ONLY_TOOLS: ReadonlySet<string> = new Set(['peers', 'whoami', 'task_list', 'recall', 'memory_context']);

export const isMutatingTool = (tool: string) => !READ_ONLY_TOOLS.has(tool);

export interface AuditEntry {
  project: string;
  at: number;
  actor: string | null;
  tokenId: string | null;
  role: string;
  method: string;
  path: string;
  action: string;
  target: string | null;
  status: number;
  /** `ok`, or the error code of the refusal or failure. */
  outcome: string;
  requestId: string;
  remote: string | null;
}

export interface AuditRecord extends AuditEntry {
  id: string;
}

/** Longest text kept in a column that may quote input (a target, a path). */
const MAX_FIELD = 500;

const clipped = (s: string | null) => (s === null ? null : s.length > MAX_FIELD ? `${s.slice(0, MAX_FIELD - 1)}…` : s);

/** The fields of an entry that come from the caller. */
export function auditCaller(caller: Caller): Pick<AuditEntry, 'project' | 'actor' | 'tokenId' | 'role'> {
  return { project: caller.project, actor: caller.agent, tokenId: caller.tokenId ?? null, role: caller.role };
}

export async function writeAudit(db: SqlExecutor, entry: AuditEntry): Promise<string> {
  const id = newId('aud', entry.at);
  await insertAudit(db, id, entry);
  return id;
}

async function insertAudit(db: SqlExecutor, id: string, entry: AuditEntry): Promise<void> {
  await db.run(
    `INSERT INTO http_audit (project, id, at, actor, token_id, role, method, path, action, target, status, outcome, request_id, remote)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)`,
    [
      entry.project,
      id,
      entry.at,
      entry.actor,
      entry.tokenId,
      entry.role,
      entry.method,
      clipped(entry.path),
      clipped(entry.action),
      clipped(entry.target),
      entry.status,
      entry.outcome,
      entry.requestId,
      entry.remote,
    ],
  );
}

interface Waiting {
  id: string;
  entry: AuditEntry;
  resolve: (id: string) => void;
  reject: (err: unknown) => void;
}

/**
 * Writes audit rows with group commit. Each row on its own was a transaction of its own, and on
 * SQLite a commit costs as much as the send it audits. Here the rows that wait while the database
 * is busy go in together: a batch starts when the one before it ends (on SQLite, when the write
 * queue reaches it), takes every row queued by then, and inserts them in one transaction. `write`
 * resolves once its row is committed, so a caller that answers after it still answers only with
 * its row stored. A failed batch is retried row by row, so one bad row loses only itself.
 */
export class AuditLog {
  private queue: Waiting[] = [];
  private flushing: Promise<void> | null = null;

  constructor(private readonly db: SqlDriver) {}

  write(entry: AuditEntry): Promise<string> {
    return new Promise<string>((resolve, reject) => {
      this.queue.push({ id: newId('aud', entry.at), entry, resolve, reject });
      this.flushing ??= this.flush();
    });
  }

  /** Resolves when every row written so far is committed or has failed. */
  async settled(): Promise<void> {
    while (this.flushing) await this.flushing;
  }

  private async flush(): Promise<void> {
    while (this.queue.length > 0) {
      let batch: Waiting[] = [];
      try {
        await this.db.transaction(async (tx) => {
          // Taken when the transaction starts, not when it was asked for: every row that queued
          // meanwhile rides along.
          batch = this.queue;
          this.queue = [];
          for (const w of batch) await insertAudit(tx, w.id, w.entry);
        });
        for (const w of batch) w.resolve(w.id);
      } catch {
        // The batch's transaction failed (or never began: then its rows are still queued).
        if (batch.length === 0) {
          batch = this.queue;
          this.queue = [];
        }
        for (const w of batch) await insertAudit(this.db, w.id, w.entry).then(() => w.resolve(w.id), w.reject);
      }
    }
    this.flushing = null;
  }
}

interface AuditRow {
  project: string;
  id: string;
  at: number | string;
  actor: string | null;
  token_id: string | null;
  role: string;
  method: string;
  path: string;
  action: string;
  target: string | null;
  status: number | string;
  outcome: string;
  request_id: string;
  remote: string | null;
}

const fromRow = (r: AuditRow): AuditRecord => ({
  id: r.id,
  project: r.project,
  at: Number(r.at),
  actor: r.actor,
  tokenId: r.token_id,
  role: r.role,
  method: r.method,
  path: r.path,
  action: r.action,
  target: r.target,
  status: Number(r.status),
  outcome: r.outcome,
  requestId: r.request_id,
  remote: r.remote,
});

export interface AuditQuery {
  since?: number;
  action?: string;
  limit?: number;
}

export const MAX_AUDIT_LIMIT = 10_000;

/**
 * The caller's project's audit rows, newest first. Only the operator or an admin token reads
 * them: the log names every token's actions, and an agent may not watch the others'.
 */
export async function readAudit(store: Store, caller: Caller, query: AuditQuery = {}): Promise<AuditRecord[]> {
  await requireAdmin(store, caller, `reading the audit log (${describeCaller(caller)})`);
  const limit = query.limit ?? 100;
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_AUDIT_LIMIT) throw new UsageError(`--limit must be a whole number from 1 to ${MAX_AUDIT_LIMIT}`);
  const params: unknown[] = [caller.project];
  let where = 'project = $1';
  if (query.since !== undefined) {
    params.push(query.since);
    where += ` AND at >= $${params.length}`;
  }
  if (query.action !== undefined) {
    params.push(query.action);
    where += ` AND action = $${params.length}`;
  }
  params.push(limit);
  const rows = await store.sql.all<AuditRow>(`SELECT * FROM http_audit WHERE ${where} ORDER BY id DESC LIMIT $${params.length}`, params);
  return rows.map(fromRow);
}
