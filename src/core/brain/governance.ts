import { type Caller, requireAdmin } from '../auth/caller.js';
import { Conflict, NotFound, UsageError } from '../errors.js';
import { requireProject } from '../identity/projects.js';
import { newId } from '../ids.js';
import { refuseNul } from '../safe-text.js';
import type { SqlExecutor } from '../store/sql/driver.js';
import type { Store } from '../store/port.js';
import { DEFAULT_TIERS, GOVERNANCE_TIERS, type GovernanceTier, MOTOR_METHODS, type MotorContext, type MotorMethod, type MotorVerdict, type Proposal, runMotor } from './motor.js';

/**
 * Governance as data and the approval queue (issue 14).
 *
 * Each motor method has a tier per project (`governance`; a method with no row keeps its
 * built-in tier, `DEFAULT_TIERS`). The motor executes `act_freely` methods itself; any other
 * tier puts the proposal in the approval queue (`approvals`), once per (cycle, method), and it
 * waits there until the operator or admins decide:
 *
 * - `human_gate` and `batch_approve`: one approve executes it (`approveBatch` approves every
 *   pending `batch_approve` item at once);
 * - `dual_approval`: two approves from two different approvers; the same approver twice is
 *   refused (Conflict, exit 4);
 * - one deny denies, and a denied proposal never executes.
 *
 * An approver is the caller's agent name, or `operator` for the local operator. Reaching
 * approval is one atomic transition (pending → approved, `UPDATE … WHERE status = 'pending'`
 * after the row is locked), so concurrent approvers execute it once. The motor then judges the
 * proposal again at that moment (stale directive, duplicate, target, budget; governance
 * skipped) and executes it as the brain does (the project's operator, the idempotency key
 * `brain:<cycle>:<method>`); the approval ends `executed`, `skipped` (stale, duplicate,
 * unroutable) or `failed` (budget, invalid, execution error) with the motor's outcome, reason
 * and what it made.
 */

export const APPROVAL_STATUSES = ['pending', 'approved', 'denied', 'executed', 'failed', 'skipped'] as const;
export type ApprovalStatus = (typeof APPROVAL_STATUSES)[number];

export const MAX_NOTE_CHARS = 2_000;
const APPROVAL_ID = /^apr_[0-9a-z]{26}$/;

export interface TierEntry {
  method: MotorMethod;
  tier: GovernanceTier;
  /** `default`: the built-in tier; `project`: set with `sos governance set`. */
  source: 'default' | 'project';
  defaultTier: GovernanceTier;
  updatedBy: string | null;
  updatedAt: number | null;
}

export interface ApprovalVote {
  approver: string;
  vote: 'approve' | 'deny';
  note: string | null;
  at: number;
}

export interface Approval {
  project: string;
  id: string;
  cycleId: string;
  method: string;
  tier: GovernanceTier;
  proposal: Proposal;
  status: ApprovalStatus;
  createdAt: number;
  decidedAt: number | null;
  /** The motor's outcome when it was acted on (executed, skipped_stale, blocked_budget…). */
  outcome: string | null;
  reason: string | null;
  made: MotorVerdict['made'] | null;
  votes: ApprovalVote[];
  /** How many approves the tier needs. */
  needs: number;
}

export interface ApproveResult {
  approval: Approval;
  /** The motor's verdict when this approve was the deciding one; null while more are needed. */
  verdict: MotorVerdict | null;
}

/** Approves a tier needs: two for dual_approval, else one. */
export const approvesNeeded = (tier: GovernanceTier): number => (tier === 'dual_approval' ? 2 : 1);

/** Who a vote or a tier change is recorded as. */
export const approverOf = (caller: Caller): string => caller.agent ?? 'operator';

function assertMethod(method: string): MotorMethod {
  if (!(MOTOR_METHODS as readonly string[]).includes(method)) {
    throw new UsageError(`"${String(method).slice(0, 80)}" is not a motor method`, { hint: `one of ${MOTOR_METHODS.join(', ')}` });
  }
  return method as MotorMethod;
}

function assertTier(tier: string): GovernanceTier {
  if (!(GOVERNANCE_TIERS as readonly string[]).includes(tier)) {
    throw new UsageError(`"${String(tier).slice(0, 80)}" is not a governance tier`, { hint: `one of ${GOVERNANCE_TIERS.join(', ')}` });
  }
  return tier as GovernanceTier;
}

/** The tier in force for a method in a project: the project's own, else the built-in one. */
export async function tierFor(db: SqlExecutor, project: string, method: MotorMethod): Promise<GovernanceTier> {
  const row = await db.one<{ tier: GovernanceTier }>('SELECT tier FROM governance WHERE project = $1 AND method = $2', [project, method]);
  return row?.tier ?? DEFAULT_TIERS[method];
}

/** Sets a method's tier in the caller's project (operator or admin). Setting its default tier keeps a row: the project's choice is explicit. */
export async function setTier(store: Store, caller: Caller, method: string, tier: string, now = Date.now()): Promise<TierEntry> {
  const m = assertMethod(method);
  const t = assertTier(tier);
  await requireAdmin(store, caller, 'setting a governance tier');
  await requireProject(store, caller.project);
  const by = approverOf(caller);
  await store.sql.run(
    `INSERT INTO governance (project, method, tier, updated_by, updated_at) VALUES ($1, $2, $3, $4, $5)
     ON CONFLICT (project, method) DO UPDATE SET tier = excluded.tier, updated_by = excluded.updated_by, updated_at = excluded.updated_at`,
    [caller.project, m, t, by, now],
  );
  return { method: m, tier: t, source: 'project', defaultTier: DEFAULT_TIERS[m], updatedBy: by, updatedAt: now };
}

/** Every motor method with the tier in force, in MOTOR_METHODS order. */
export async function listTiers(store: Store, caller: Caller): Promise<TierEntry[]> {
  const rows = await store.sql.all<{ method: string; tier: GovernanceTier; updated_by: string; updated_at: number | string }>(
    'SELECT method, tier, updated_by, updated_at FROM governance WHERE project = $1',
    [caller.project],
  );
  const own = new Map(rows.map((r) => [r.method, r]));
  return MOTOR_METHODS.map((method): TierEntry => {
    const r = own.get(method);
    return r
      ? { method, tier: r.tier, source: 'project', defaultTier: DEFAULT_TIERS[method], updatedBy: r.updated_by, updatedAt: Number(r.updated_at) }
      : { method, tier: DEFAULT_TIERS[method], source: 'default', defaultTier: DEFAULT_TIERS[method], updatedBy: null, updatedAt: null };
  });
}

interface ApprovalRow {
  project: string;
  id: string;
  cycle_id: string;
  method: string;
  tier: GovernanceTier;
  proposal: string;
  status: ApprovalStatus;
  created_at: number | string;
  decided_at: number | string | null;
  outcome: string | null;
  reason: string | null;
  made: string | null;
}

interface VoteRow {
  approval_id: string;
  approver: string;
  vote: 'approve' | 'deny';
  note: string | null;
  at: number | string;
}

const voteOf = (v: VoteRow): ApprovalVote => ({ approver: v.approver, vote: v.vote, note: v.note, at: Number(v.at) });

const approvalOf = (r: ApprovalRow, votes: VoteRow[]): Approval => ({
  project: r.project,
  id: r.id,
  cycleId: r.cycle_id,
  method: r.method,
  tier: r.tier,
  proposal: JSON.parse(r.proposal) as Proposal,
  status: r.status,
  createdAt: Number(r.created_at),
  decidedAt: r.decided_at === null ? null : Number(r.decided_at),
  outcome: r.outcome,
  reason: r.reason,
  made: r.made === null ? null : (JSON.parse(r.made) as MotorVerdict['made']),
  votes: votes.map(voteOf),
  needs: approvesNeeded(r.tier),
});

async function load(db: SqlExecutor, project: string, id: string): Promise<Approval | undefined> {
  const row = await db.one<ApprovalRow>('SELECT * FROM approvals WHERE project = $1 AND id = $2', [project, id]);
  if (!row) return undefined;
  const votes = await db.all<VoteRow>('SELECT approval_id, approver, vote, note, at FROM approval_votes WHERE project = $1 AND approval_id = $2 ORDER BY at, approver', [project, id]);
  return approvalOf(row, votes);
}

/**
 * Puts a gated proposal in the queue. Idempotent on (cycle, method): a retried cycle gets the
 * approval it already made, whatever its status, and enqueues nothing.
 */
export async function enqueueApproval(
  db: SqlExecutor,
  project: string,
  input: { cycleId: string; method: MotorMethod; tier: GovernanceTier; proposal: Proposal; at: number },
): Promise<Approval> {
  const proposal: Proposal = { method: input.proposal.method, agent: input.proposal.agent ?? null, goal_id: input.proposal.goal_id ?? null, details: input.proposal.details ?? {} };
  await db.run(
    `INSERT INTO approvals (project, id, cycle_id, method, tier, proposal, status, created_at) VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7)
     ON CONFLICT (project, cycle_id, method) DO NOTHING`,
    [project, newId('apr', input.at), input.cycleId, input.method, input.tier, JSON.stringify(proposal), input.at],
  );
  const row = await db.one<ApprovalRow>('SELECT * FROM approvals WHERE project = $1 AND cycle_id = $2 AND method = $3', [project, input.cycleId, input.method]);
  return (await load(db, project, row!.id))!;
}

function assertId(id: string): string {
  if (typeof id !== 'string' || !APPROVAL_ID.test(id)) throw new UsageError(`invalid approval id ${JSON.stringify(String(id).slice(0, 80))}: expected apr_ followed by 26 characters`);
  return id;
}

function assertNote(note: string | undefined): string | null {
  if (note === undefined) return null;
  const n = note.trim();
  if (n === '') return null;
  refuseNul(n, 'the note');
  if (n.length > MAX_NOTE_CHARS) throw new UsageError(`the note is ${n.length} characters; the limit is ${MAX_NOTE_CHARS}`);
  return n;
}

export async function getApproval(store: Store, caller: Caller, id: string): Promise<Approval> {
  assertId(id);
  const a = await load(store.sql, caller.project, id);
  if (!a) throw new NotFound(`approval ${id} does not exist in project "${caller.project}"`, { hint: 'list them with `sos approvals list --all`' });
  return a;
}

/** Pending approvals by default (oldest first); `status` picks one status, `all` every one. */
export async function listApprovals(store: Store, caller: Caller, options: { status?: string; all?: boolean } = {}): Promise<Approval[]> {
  if (options.status !== undefined && !(APPROVAL_STATUSES as readonly string[]).includes(options.status)) {
    throw new UsageError(`"${options.status.slice(0, 80)}" is not an approval status`, { hint: `one of ${APPROVAL_STATUSES.join(', ')}` });
  }
  const status = options.status ?? (options.all ? undefined : 'pending');
  const rows = await store.sql.all<ApprovalRow>(
    `SELECT * FROM approvals WHERE project = $1 ${status ? 'AND status = $2' : ''} ORDER BY created_at, id`,
    status ? [caller.project, status] : [caller.project],
  );
  if (rows.length === 0) return [];
  const votes = await store.sql.all<VoteRow>(
    `SELECT v.approval_id, v.approver, v.vote, v.note, v.at FROM approval_votes v JOIN approvals a ON a.project = v.project AND a.id = v.approval_id
     WHERE v.project = $1 ${status ? 'AND a.status = $2' : ''} ORDER BY v.at, v.approver`,
    status ? [caller.project, status] : [caller.project],
  );
  const by = new Map<string, VoteRow[]>();
  for (const v of votes) by.set(v.approval_id, [...(by.get(v.approval_id) ?? []), v]);
  return rows.map((r) => approvalOf(r, by.get(r.id) ?? []));
}

/**
 * Locks the approval row for the rest of the transaction (a no-op update: both dialects take
 * the row's write lock), refusing unless it is still pending. A concurrent decider waits here,
 * then sees the other's committed votes and status.
 */
async function lockPending(tx: SqlExecutor, project: string, id: string): Promise<void> {
  const locked = await tx.run("UPDATE approvals SET status = status WHERE project = $1 AND id = $2 AND status = 'pending'", [project, id]);
  if (locked === 1) return;
  const row = await tx.one<{ status: ApprovalStatus }>('SELECT status FROM approvals WHERE project = $1 AND id = $2', [project, id]);
  if (!row) throw new NotFound(`approval ${id} does not exist in project "${project}"`, { hint: 'list them with `sos approvals list --all`' });
  throw new UsageError(`approval ${id} is ${row.status} already: it was decided and cannot be voted on again`);
}

const statusOf = (v: MotorVerdict): ApprovalStatus => {
  if (v.outcome === 'executed') return 'executed';
  if (v.outcome === 'skipped_stale' || v.outcome === 'skipped_duplicate' || v.outcome === 'skipped_unroutable') return 'skipped';
  return 'failed';
};

/** What the approved execution acts as: the brain, i.e. the project's operator, as in the daemon. */
const brainCaller = (project: string): Caller => ({ project, agent: null, role: 'operator', via: 'local' });

/**
 * One approve vote by the caller (operator or admin). The deciding vote moves the approval to
 * `approved` atomically, then the motor re-judges and executes the proposal once.
 */
export async function approve(ctx: MotorContext, caller: Caller, id: string, options: { note?: string } = {}): Promise<ApproveResult> {
  assertId(id);
  const note = assertNote(options.note);
  const store = ctx.tasks.store;
  await requireAdmin(store, caller, 'approving a gated proposal');
  const project = caller.project;
  const approver = approverOf(caller);
  const now = ctx.now?.() ?? Date.now();
  const decided = await store.sql.transaction(async (tx) => {
    await lockPending(tx, project, id);
    const row = (await tx.one<{ tier: GovernanceTier }>('SELECT tier FROM approvals WHERE project = $1 AND id = $2', [project, id]))!;
    const mine = await tx.one<{ vote: string }>('SELECT vote FROM approval_votes WHERE project = $1 AND approval_id = $2 AND approver = $3', [project, id, approver]);
    if (mine) {
      throw new Conflict(`${approver} has already approved ${id}: ${row.tier} needs ${approvesNeeded(row.tier)} approves from different approvers`, {
        hint: 'another admin token or the operator must approve it',
      });
    }
    await tx.run("INSERT INTO approval_votes (project, approval_id, approver, vote, note, at) VALUES ($1, $2, $3, 'approve', $4, $5)", [project, id, approver, note, now]);
    const n = Number((await tx.one<{ n: number | string }>("SELECT COUNT(*) AS n FROM approval_votes WHERE project = $1 AND approval_id = $2 AND vote = 'approve'", [project, id]))!.n);
    if (n < approvesNeeded(row.tier)) return false;
    const moved = await tx.run("UPDATE approvals SET status = 'approved', decided_at = $3 WHERE project = $1 AND id = $2 AND status = 'pending'", [project, id, now]);
    if (moved !== 1) throw new UsageError(`approval ${id} was decided by someone else meanwhile`);
    return true;
  });
  if (!decided) return { approval: (await load(store.sql, project, id))!, verdict: null };
  // A method the motor does not run (a worker's `shell` gate, workers/gate.ts) stays approved:
  // the worker that asked runs it when it next claims the task.
  const decidedApproval = (await load(store.sql, project, id))!;
  if (!(MOTOR_METHODS as readonly string[]).includes(decidedApproval.method)) return { approval: decidedApproval, verdict: null };
  const verdict = await executeApproved(ctx, project, id);
  return { approval: (await load(store.sql, project, id))!, verdict };
}

/** Runs an approved proposal through the motor (governance skipped) and records how it ended. */
async function executeApproved(ctx: MotorContext, project: string, id: string): Promise<MotorVerdict> {
  const store = ctx.tasks.store;
  const a = (await load(store.sql, project, id))!;
  let verdict: MotorVerdict;
  try {
    verdict = await runMotor(ctx, brainCaller(project), a.cycleId, a.proposal, { approved: true });
  } catch (err) {
    verdict = { outcome: 'failed', check: 'execute', reason: err instanceof Error ? err.message : String(err) };
  }
  await store.sql.run("UPDATE approvals SET status = $3, outcome = $4, reason = $5, made = $6 WHERE project = $1 AND id = $2 AND status = 'approved'", [
    project,
    id,
    statusOf(verdict),
    verdict.outcome,
    verdict.reason,
    verdict.made ? JSON.stringify(verdict.made) : null,
  ]);
  return verdict;
}

/** One deny by the caller (operator or admin) denies the approval; it never executes. */
export async function deny(store: Store, caller: Caller, id: string, options: { note?: string; now?: number } = {}): Promise<Approval> {
  assertId(id);
  const note = assertNote(options.note);
  await requireAdmin(store, caller, 'denying a gated proposal');
  const project = caller.project;
  const approver = approverOf(caller);
  const now = options.now ?? Date.now();
  await store.sql.transaction(async (tx) => {
    await lockPending(tx, project, id);
    // An approver who approved a dual_approval item may change their mind: the vote becomes deny.
    await tx.run(
      `INSERT INTO approval_votes (project, approval_id, approver, vote, note, at) VALUES ($1, $2, $3, 'deny', $4, $5)
       ON CONFLICT (project, approval_id, approver) DO UPDATE SET vote = 'deny', note = excluded.note, at = excluded.at`,
      [project, id, approver, note, now],
    );
    await tx.run("UPDATE approvals SET status = 'denied', decided_at = $3, reason = $4 WHERE project = $1 AND id = $2 AND status = 'pending'", [
      project,
      id,
      now,
      `denied by ${approver}${note ? `: ${note}` : ''}`,
    ]);
  });
  return (await load(store.sql, project, id))!;
}

export interface BatchResult {
  id: string;
  /** The approval after this approve, or null when it could not be approved (decided meanwhile). */
  approval: Approval | null;
  verdict: MotorVerdict | null;
  error: string | null;
}

/** Approves every pending `batch_approve` item, oldest first; one refused item does not stop the rest. */
export async function approveBatch(ctx: MotorContext, caller: Caller, options: { note?: string } = {}): Promise<BatchResult[]> {
  assertNote(options.note);
  await requireAdmin(ctx.tasks.store, caller, 'approving gated proposals');
  const pending = (await listApprovals(ctx.tasks.store, caller, { status: 'pending' })).filter((a) => a.tier === 'batch_approve');
  const out: BatchResult[] = [];
  for (const a of pending) {
    try {
      const r = await approve(ctx, caller, a.id, options);
      out.push({ id: a.id, approval: r.approval, verdict: r.verdict, error: null });
    } catch (err) {
      if (!(err instanceof UsageError || err instanceof Conflict)) throw err;
      out.push({ id: a.id, approval: null, verdict: null, error: err.message });
    }
  }
  return out;
}
