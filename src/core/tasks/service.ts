import { type Caller, deny, isAdmin } from '../auth/caller.js';
import type { Bus } from '../bus/port.js';
import { budgetRefusal, type ClaimBlocks, claimBlocks } from '../economy/budgets.js';
import { Conflict, NotFound, UsageError } from '../errors.js';
import { getAgent } from '../identity/agents.js';
import { getSquad, listSquads } from '../identity/squads.js';
import { newId } from '../ids.js';
import { assertCapability, assertName } from '../names.js';
import { quote, refuseNul } from '../safe-text.js';
import type { Store } from '../store/port.js';
import type { SqlExecutor } from '../store/sql/driver.js';
import { momentText } from '../time.js';
import type { ChangeResult } from './sql-tasks.js';
import { canMove, HELD } from './transitions.js';
import { type Idempotency, PRIORITY_NAMES, type Task, type TaskChange, type TaskEvent, type TaskStatus, TASK_STATUSES } from './types.js';

/**
 * The task service (docs/ARCHITECTURE.md, "Tasks"): validation, visibility, the transition table, fencing, the
 * stall-rescue sweep, handoffs. CLI commands and MCP tools call these functions.
 */

export interface TaskContext {
  store: Store;
  bus: Bus;
  /** Largest description, result or comment, in bytes. */
  maxTextBytes: number;
  now?: () => number;
  /** Delay before a retried task may be claimed again (default: jittered exponential). */
  backoff?: (attempt: number) => number;
}

export const DEFAULT_LEASE_MS = 10 * 60_000;
const TASK_ID = /^tsk_[0-9a-z]{26}$/;

const now = (ctx: TaskContext) => (ctx.now ?? Date.now)();

/** 5 s × 2^(attempt-1), at most 5 min, ±20 % jitter so retried work does not stampede. */
export function defaultBackoff(attempt: number): number {
  const base = Math.min(5_000 * 2 ** Math.max(0, attempt - 1), 300_000);
  return Math.round(base * (0.8 + Math.random() * 0.4));
}

export function assertTaskId(id: string): string {
  if (!TASK_ID.test(id)) throw new UsageError(`invalid task id ${quote(id)}: expected tsk_ followed by 26 characters`);
  return id;
}

export function parsePriority(value: string | number | undefined): number {
  if (value === undefined) return PRIORITY_NAMES.normal;
  if (typeof value === 'string' && value in PRIORITY_NAMES) return PRIORITY_NAMES[value as keyof typeof PRIORITY_NAMES];
  const n = typeof value === 'number' ? value : /^\d+$/.test(value) ? Number(value) : Number.NaN;
  if (!Number.isInteger(n) || n < 0 || n > 100) {
    throw new UsageError(`invalid priority ${quote(value)}: use critical, high, normal, low or a number 0-100`);
  }
  return n;
}

/** `50000` (tokens) or `$2.50` (dollars, kept as micro-dollars). */
export function parseBudget(value: string): { tokens: number | null; micros: number | null } {
  const dollars = /^\$(\d+(?:\.\d{1,6})?)$/.exec(value);
  if (dollars) return { tokens: null, micros: Math.round(Number(dollars[1]) * 1_000_000) };
  if (/^\d+$/.test(value) && Number(value) > 0) return { tokens: Number(value), micros: null };
  throw new UsageError(`invalid budget ${quote(value)}: use a token count (50000) or dollars ($2.50)`);
}

function assertText(what: string, text: string, max: number): string {
  refuseNul(text, `the ${what}`);
  const bytes = Buffer.byteLength(text, 'utf8');
  if (bytes > max) throw new UsageError(`the ${what} is ${bytes} bytes; the limit is ${max}`);
  return text;
}

function idempotency(caller: Caller, key: string | undefined, operation: string): Idempotency | undefined {
  if (key === undefined) return undefined;
  if (!/^[\x21-\x7e]{1,200}$/.test(key)) throw new UsageError('an idempotency key is 1-200 printable characters without spaces');
  return { actor: caller.agent ?? 'operator', key, operation };
}

function actor(caller: Caller): string {
  return caller.agent ?? 'operator';
}

async function mySquads(ctx: TaskContext, caller: Caller): Promise<Set<string>> {
  if (caller.agent === null) return new Set();
  return new Set((await listSquads(ctx.store, caller)).filter((s) => s.members.includes(caller.agent!)).map((s) => s.name));
}

/** Admins see every task; others see tasks without a squad and those of their squads. */
async function visible(ctx: TaskContext, caller: Caller): Promise<(t: Task) => boolean> {
  if (isAdmin(caller)) return () => true;
  const squads = await mySquads(ctx, caller);
  return (t) => t.squad === null || squads.has(t.squad);
}

/**
 * Emits the event of a change already committed. An event the bus cannot take (Redis down) must
 * not make the call fail, or its caller would retry a change that happened: it is counted as
 * `task_events_unpublished`, and waiters fall back to their poll.
 */
async function emitCommitted(ctx: TaskContext, project: string, events: [string, Record<string, unknown>][]): Promise<void> {
  try {
    for (const [type, data] of events) await ctx.bus.emit(project, type, data, now(ctx));
  } catch {
    await ctx.store.counters.add(project, 'task_events_unpublished').catch(() => undefined);
  }
}

async function publish(ctx: TaskContext, caller: Caller, event: string, task: Task, extra: Record<string, unknown> = {}): Promise<void> {
  await emitCommitted(ctx, caller.project, [[`task.${event}`, eventData(ctx, caller, task, extra)]]);
}

function eventData(ctx: TaskContext, caller: Caller, task: Task, extra: Record<string, unknown>): Record<string, unknown> {
  return { task: task.id, title: task.title, status: task.status, squad: task.squad, claimant: task.claimant, actor: actor(caller), ...extra };
}

type EventList = (task: Task, info: { unblocked: string[]; blocked: string[] }) => [string, Record<string, unknown>][];

/**
 * Task events for a change: written inside the change's transaction when the bus keeps events in
 * the Store's database (one commit, not two), else emitted right after the commit.
 */
function eventHook(ctx: TaskContext, caller: Caller, make: EventList) {
  const emitWithin = ctx.bus.emitWithin?.bind(ctx.bus);
  const wakes: (() => void)[] = [];
  const list = (task: Task, info: { unblocked: string[]; blocked: string[] }) =>
    make(task, info).map(([event, extra]): [string, Record<string, unknown>] => [
      event.includes('.') ? event : `task.${event}`,
      event.includes('.') ? extra : eventData(ctx, caller, task, extra),
    ]);
  return {
    within: emitWithin
      ? async (tx: SqlExecutor, task: Task, info: { unblocked: string[]; blocked: string[] }) => {
          for (const [type, data] of list(task, info)) wakes.push(await emitWithin(tx, caller.project, type, data, now(ctx)));
        }
      : undefined,
    async after(task: Task, info: { unblocked: string[]; blocked: string[] }) {
      if (emitWithin) {
        for (const wake of wakes) wake();
        return;
      }
      await emitCommitted(ctx, caller.project, list(task, info));
    },
  };
}

export async function getTask(ctx: TaskContext, caller: Caller, id: string): Promise<Task> {
  assertTaskId(id);
  const task = await ctx.store.tasks.get(caller.project, id);
  if (!task || !(await visible(ctx, caller))(task)) throw new NotFound(`task ${id} does not exist in project "${caller.project}"`);
  return task;
}

export interface CreateTaskInput {
  title: string;
  description?: string;
  priority?: string | number;
  squad?: string;
  labels?: string[];
  requires?: string[];
  dependsOn?: string[];
  assignee?: string;
  maxAttempts?: number;
  leaseMs?: number;
  budget?: string;
  status?: string;
  idempotencyKey?: string;
}

export async function createTask(ctx: TaskContext, caller: Caller, input: CreateTaskInput): Promise<{ task: Task; replayed: boolean }> {
  const title = input.title.trim();
  if (title === '') throw new UsageError('the task title is empty');
  assertText('title', title, 500);
  if (input.description !== undefined) assertText('description', input.description, ctx.maxTextBytes);
  const priority = parsePriority(input.priority);
  const labels = (input.labels ?? []).map(assertCapability);
  const requires = (input.requires ?? []).map(assertCapability);
  const dependsOn = (input.dependsOn ?? []).map(assertTaskId);
  const maxAttempts = input.maxAttempts ?? 3;
  if (!Number.isInteger(maxAttempts) || maxAttempts < 1 || maxAttempts > 100) throw new UsageError('--max-attempts must be a whole number from 1 to 100');
  const leaseMs = input.leaseMs ?? DEFAULT_LEASE_MS;
  if (leaseMs < 1_000 || leaseMs > 7 * 86_400_000) throw new UsageError('--lease must be between 1s and 7d');
  const budget = input.budget === undefined ? { tokens: null, micros: null } : parseBudget(input.budget);
  const status = (input.status ?? 'queued') as 'queued' | 'backlog';
  if (status !== 'queued' && status !== 'backlog') throw new UsageError('--status must be backlog or queued');
  if (input.squad !== undefined) assertName('squad', input.squad);
  if (input.assignee !== undefined) assertName('agent', input.assignee);
  const idem = idempotency(caller, input.idempotencyKey, 'tasks create');

  if (caller.role === 'observer') await deny(ctx.store, caller, 'creating a task', 'is not allowed with an observer token');
  if (input.squad !== undefined) {
    await getSquad(ctx.store, caller, input.squad);
    if (!isAdmin(caller) && !(await mySquads(ctx, caller)).has(input.squad)) {
      await deny(ctx.store, caller, `creating a task in squad "${input.squad}"`, 'needs membership of that squad');
    }
  }
  if (input.assignee !== undefined) await getAgent(ctx.store, caller, input.assignee);
  const at = now(ctx);
  const { task, replayed } = await ctx.store.tasks.create(
    {
      id: newId('tsk', at),
      project: caller.project,
      title,
      description: input.description ?? null,
      status,
      priority,
      squad: input.squad ?? null,
      labels,
      requires,
      dependsOn,
      assignee: input.assignee ?? null,
      maxAttempts,
      leaseMs,
      budgetTokens: budget.tokens,
      budgetMicros: budget.micros,
      createdBy: actor(caller),
      createdAt: at,
    },
    idem,
  );
  if (!replayed) await publish(ctx, caller, 'created', task);
  return { task, replayed };
}

export interface ListInput {
  statuses?: string[];
  squad?: string;
  assignee?: string;
  ready?: boolean;
  limit?: number;
}

export async function listTasks(ctx: TaskContext, caller: Caller, input: ListInput = {}): Promise<Task[]> {
  const statuses = (input.statuses ?? []).map((s) => {
    if (!(TASK_STATUSES as readonly string[]).includes(s)) throw new UsageError(`invalid status ${quote(s)}: use ${TASK_STATUSES.join(', ')}`);
    return s as TaskStatus;
  });
  if (input.squad !== undefined) assertName('squad', input.squad);
  if (input.assignee !== undefined) assertName('agent', input.assignee);
  const filter = await visible(ctx, caller);
  const tasks = await ctx.store.tasks.list(
    caller.project,
    {
      statuses,
      ...(input.squad !== undefined ? { squad: input.squad } : {}),
      ...(input.assignee !== undefined ? { assignee: input.assignee } : {}),
      ...(input.ready ? { ready: true } : {}),
      limit: input.limit ?? 1000,
    },
    now(ctx),
  );
  return tasks.filter(filter);
}

export async function taskEvents(ctx: TaskContext, caller: Caller, id: string): Promise<TaskEvent[]> {
  await getTask(ctx, caller, id);
  return ctx.store.tasks.events(caller.project, id);
}

export async function board(ctx: TaskContext, caller: Caller, input: { squad?: string; limit?: number } = {}) {
  if (input.squad !== undefined) assertName('squad', input.squad);
  const filter = await visible(ctx, caller);
  return (await ctx.store.tasks.board(caller.project, input.squad, now(ctx), input.limit ?? 50)).filter(filter);
}

/** The caller's agent name for holder writes (checked by the write itself, not looked up). */
async function speaker(ctx: TaskContext, caller: Caller, action: string): Promise<string> {
  if (caller.role === 'observer') return deny(ctx.store, caller, action, 'is not allowed with an observer token');
  if (caller.agent === null) throw new UsageError(`${action} needs an agent`, { hint: 'pass --as <agent> (or SOS_AGENT), or use an agent token' });
  return caller.agent;
}

/** The agent a worker command acts as: the caller's own agent (observers never). */
async function worker(ctx: TaskContext, caller: Caller, action: string): Promise<string> {
  if (caller.role === 'observer') return deny(ctx.store, caller, action, 'is not allowed with an observer token');
  if (caller.agent === null) throw new UsageError(`${action} needs an agent`, { hint: 'pass --as <agent> (or SOS_AGENT), or use an agent token' });
  if (!(await ctx.store.agents.exists(caller.project, caller.agent))) {
    throw new NotFound(`agent "${caller.agent}" does not exist in project "${caller.project}"`, { hint: 'list agents with `sos agents list`' });
  }
  return caller.agent;
}

export interface ClaimInput {
  id?: string;
  squad?: string;
  leaseMs?: number;
  waitMs?: number;
  idempotencyKey?: string;
  signal?: AbortSignal;
}

/**
 * Claims the best ready task the caller may take. Nothing claimable: Conflict (exit 4), or with
 * `waitMs`, sleeps until a `task.*` event (or a retry backoff running out) and tries again.
 */
export async function claimTask(ctx: TaskContext, caller: Caller, input: ClaimInput = {}): Promise<{ task: Task; replayed: boolean }> {
  if (input.id !== undefined) assertTaskId(input.id);
  if (input.squad !== undefined) assertName('squad', input.squad);
  if (input.leaseMs !== undefined && (input.leaseMs < 1_000 || input.leaseMs > 7 * 86_400_000)) throw new UsageError('--lease must be between 1s and 7d');
  // The claim statement itself requires the agent to be registered; a miss is explained below.
  const agent = await speaker(ctx, caller, 'claiming a task');
  const idem = idempotency(caller, input.idempotencyKey, 'tasks claim');
  const deadline = Date.now() + (input.waitMs ?? 0);
  for (;;) {
    const blocks = await claimBlocks(ctx.store.sql, caller.project, agent, now(ctx));
    await refuseBlocked(ctx, caller, blocks, input);
    const events = eventHook(ctx, caller, (task) => [['claimed', { fence: task.attempt }]]);
    const { task, replayed } = await ctx.store.tasks.claim(
      caller.project,
      agent,
      {
        now: now(ctx),
        ...(input.id !== undefined ? { id: input.id } : {}),
        ...(input.squad !== undefined ? { squad: input.squad } : {}),
        ...(input.leaseMs !== undefined ? { leaseMs: input.leaseMs } : {}),
        ...(blocks.squads.size > 0 ? { excludeSquads: [...blocks.squads.keys()] } : {}),
        ...(blocks.tasks.size > 0 ? { excludeTasks: [...blocks.tasks.keys()] } : {}),
      },
      idem,
      events.within,
    );
    if (task) {
      if (!replayed) await events.after(task, { unblocked: [], blocked: [] });
      return { task, replayed };
    }
    if (!(await ctx.store.agents.exists(caller.project, agent))) {
      throw new NotFound(`agent "${agent}" does not exist in project "${caller.project}"`, { hint: 'list agents with `sos agents list`' });
    }
    const left = deadline - Date.now();
    const ended = left <= 0 || input.signal?.aborted === true;
    let wake = 1_000;
    if (input.id !== undefined) {
      // A named task: what only time can change (a backoff, dependencies, another holder) is
      // waited out while the wait lasts; anything else is refused at once.
      const why = await unclaimable(ctx, caller, agent, input.id);
      if (ended || !why.waitable || (why.retryAt !== undefined && why.retryAt > deadline)) {
        if (why.duplicate) await ctx.store.counters.add(caller.project, 'duplicate_claims_refused');
        throw why.error;
      }
      if (why.retryAt !== undefined) wake = Math.max(1, why.retryAt - Date.now());
    } else if (ended) {
      throw new Conflict(`nothing to claim for ${agent} in project "${caller.project}"${input.squad ? ` (squad ${input.squad})` : ''}`, {
        hint: 'see `sos tasks board`; --wait <duration> blocks until work arrives',
      });
    }
    // Woken by the next task.* event; the cap catches retry backoffs running out.
    await ctx.bus.waitForEvent(caller.project, { timeoutMs: Math.min(left, wake), ...(input.signal ? { signal: input.signal } : {}) });
  }
}

/**
 * A claim a spent `block` or `pause` budget forbids outright: any claim when the project's or the agent's
 * budget is spent, a named squad's or task's claim when theirs is. Counted, then exit 6. Other
 * spent squads and tasks are only left out of the pick.
 */
async function refuseBlocked(ctx: TaskContext, caller: Caller, blocks: ClaimBlocks, input: ClaimInput): Promise<void> {
  let mark = blocks.all ?? (input.squad !== undefined ? blocks.squads.get(input.squad) : undefined);
  if (mark === undefined && input.id !== undefined) {
    const task = await ctx.store.tasks.peek(caller.project, input.id);
    mark = blocks.tasks.get(input.id) ?? (task?.squad ? blocks.squads.get(task.squad) : undefined);
  }
  if (mark === undefined) return;
  await ctx.store.counters.add(caller.project, 'budget_claims_refused');
  throw budgetRefusal(mark.scope, caller.project, mark.action);
}

/**
 * Why a named task cannot be claimed by `agent` now. `waitable`: time alone may change it (a
 * retry backoff ending at `retryAt`, dependencies finishing, the holder letting go); `duplicate`:
 * the refusal is a duplicate claim, counted when it is final.
 */
async function unclaimable(ctx: TaskContext, caller: Caller, agent: string, id: string): Promise<{ error: Conflict; waitable: boolean; duplicate?: boolean; retryAt?: number }> {
  const task = await getTask(ctx, caller, id);
  if (HELD.includes(task.status) || task.status === 'review') {
    return { error: new Conflict(`task ${id} is ${task.status} by ${task.claimant}; it cannot be claimed twice`), waitable: true, duplicate: true };
  }
  if (task.status !== 'queued') return { error: new Conflict(`task ${id} is ${task.status}, not queued`), waitable: false };
  if (task.unmetDeps > 0) return { error: new Conflict(`task ${id} waits on ${task.unmetDeps} unfinished dependenc${task.unmetDeps === 1 ? 'y' : 'ies'}`), waitable: true };
  if (task.availableAt > now(ctx)) return { error: new Conflict(`task ${id} is backing off until ${momentText(task.availableAt)}`), waitable: true, retryAt: task.availableAt };
  if (task.assignee !== null && task.assignee !== agent) return { error: new Conflict(`task ${id} is assigned to ${task.assignee}`), waitable: false };
  const agentRecord = await getAgent(ctx.store, caller, agent);
  const missing = task.requires.filter((c) => !agentRecord.capabilities.includes(c));
  if (missing.length) return { error: new Conflict(`${agent} lacks the capabilities task ${id} requires: ${missing.join(', ')}`), waitable: false };
  if (task.squad !== null && !(await mySquads(ctx, caller)).has(task.squad)) return { error: new Conflict(`task ${id} belongs to squad ${task.squad}, which ${agent} is not in`), waitable: false };
  return { error: new Conflict(`task ${id} was just claimed by someone else`), waitable: true };
}

/** Turns a refused change into the error the user should see, counting stale fences. */
async function settle(ctx: TaskContext, caller: Caller, id: string, result: ChangeResult, what: string): Promise<Task> {
  if (result.ok) return result.task;
  const r = result.refusal;
  switch (r.reason) {
    case 'not_found':
      throw new NotFound(`task ${id} does not exist in project "${caller.project}"`);
    case 'status':
      throw new Conflict(`cannot ${what} task ${id}: it is ${r.status}`);
    case 'holder':
      await ctx.store.counters.add(caller.project, 'stale_fence_refused');
      throw new Conflict(
        r.claimant === actor(caller)
          ? `cannot ${what} task ${id}: your fence is stale (the task is at attempt ${r.attempt} now)`
          : `cannot ${what} task ${id}: it is held by ${r.claimant ?? 'nobody'} (${r.status}), not ${actor(caller)}`,
      );
    case 'handoff':
      throw new Conflict(`cannot ${what} task ${id}: its handoff is addressed to ${r.to ?? 'nobody'}`);
  }
}

function guard(task: Task, to: TaskStatus, what: string): void {
  if (!canMove(task.status, to)) throw new Conflict(`cannot ${what} task ${task.id}: it is ${task.status}`);
}

interface HolderInput {
  id: string;
  fence?: number;
  idempotencyKey?: string;
}

async function holderChange(
  ctx: TaskContext,
  caller: Caller,
  input: HolderInput,
  what: string,
  to: (task: Task) => TaskStatus,
  change: (task: Task, at: number) => Omit<TaskChange, 'from' | 'to' | 'holder' | 'event'> & { event?: Record<string, unknown> },
  options: { onBehalf?: boolean; events?: EventList } = {},
): Promise<{ task: Task; replayed: boolean; unblocked: string[]; blocked: string[] }> {
  assertTaskId(input.id);
  if (input.fence !== undefined && (!Number.isInteger(input.fence) || input.fence < 1)) throw new UsageError('--fence must be a positive whole number');
  // A supervisor (an admin, or the operator acting as nobody) may renew a lease on the claimant's behalf.
  const supervisor = options.onBehalf === true && isAdmin(caller);
  // No registry lookup: the write only succeeds for the task's claimant, which was a registered
  // agent when it claimed, so an unknown name is refused by the holder check.
  const agent = supervisor && caller.agent === null ? 'operator' : await speaker(ctx, caller, `${what} a task`);
  const idem = idempotency(caller, input.idempotencyKey, `tasks ${what}`);
  // Only the holder can change a held task (the write checks it), so a bare read is enough here.
  const task = await ctx.store.tasks.peek(caller.project, input.id);
  if (!task) throw new NotFound(`task ${input.id} does not exist in project "${caller.project}"`);
  const holder = supervisor && task.claimant !== null ? task.claimant : agent;
  const target = to(task);
  if (idem === undefined) guard(task, target, what);
  const at = now(ctx);
  const { event, ...rest } = change(task, at);
  const events = eventHook(ctx, caller, options.events ?? (() => []));
  const result = await ctx.store.tasks.change(
    caller.project,
    input.id,
    {
      ...rest,
      from: HELD,
      to: target,
      expect: task.status,
      holder: { agent: holder, fence: input.fence },
      event: { actor: agent, name: what, ...(event ? { detail: event } : {}) },
    },
    at,
    idem,
    events.within,
  );
  const done = await settle(ctx, caller, input.id, result, what);
  const extra = result.ok ? { replayed: result.replayed, unblocked: result.unblocked, blocked: result.blocked } : { replayed: false, unblocked: [], blocked: [] };
  if (!extra.replayed) await events.after(done, extra);
  return { task: done, ...extra };
}

export function startTask(ctx: TaskContext, caller: Caller, input: HolderInput) {
  return holderChange(ctx, caller, input, 'start', () => 'in_progress', (t, at) => ({ set: { leaseUntil: at + t.leaseMs } }), {
    events: () => [['started', {}]],
  });
}

/** Renews the lease. The claimant renews its own; an admin (a supervisor) may renew for it. */
export function heartbeatTask(ctx: TaskContext, caller: Caller, input: HolderInput & { leaseMs?: number }) {
  return holderChange(
    ctx,
    caller,
    input,
    'heartbeat',
    (t) => t.status,
    (t, at) => ({ set: { leaseUntil: at + (input.leaseMs ?? t.leaseMs) } }),
    { onBehalf: true },
  );
}

export async function completeTask(
  ctx: TaskContext,
  caller: Caller,
  input: HolderInput & { result?: string; artifacts?: string[]; usageTokens?: number },
) {
  if (input.result !== undefined) assertText('result', input.result, ctx.maxTextBytes);
  if (input.usageTokens !== undefined && (!Number.isInteger(input.usageTokens) || input.usageTokens < 0)) throw new UsageError('--usage must be a whole number of tokens');
  for (const a of input.artifacts ?? []) if (a.trim() === '' || a.length > 2_000) throw new UsageError('an artifact is a path or URL of 1-2000 characters');
  return holderChange(
    ctx,
    caller,
    input,
    'complete',
    () => 'done',
    () => ({
      set: { result: input.result ?? null, leaseUntil: null, ...(input.usageTokens !== undefined ? { usageTokens: input.usageTokens } : {}) },
      ...(input.artifacts ? { artifacts: input.artifacts } : {}),
    }),
    {
      events: (task, info) => [
        ['completed', { unblocked: info.unblocked }],
        ...info.unblocked.map((id): [string, Record<string, unknown>] => ['task.ready', { task: id, after: task.id }]),
      ],
    },
  );
}

export async function failTask(ctx: TaskContext, caller: Caller, input: HolderInput & { error: string; retryable?: boolean }) {
  if (input.error.trim() === '') throw new UsageError('say why it failed: --error <text>');
  assertText('error', input.error, ctx.maxTextBytes);
  const backoff = ctx.backoff ?? defaultBackoff;
  const r = await holderChange(
    ctx,
    caller,
    input,
    'fail',
    (t) => (!input.retryable ? 'failed' : t.attempt >= t.maxAttempts ? 'dead' : 'queued'),
    (t, at) => ({
      set: { error: input.error, claimant: null, leaseUntil: null, ...(input.retryable ? { availableAt: at + backoff(t.attempt) } : {}) },
      event: { error: input.error, retryable: input.retryable === true },
    }),
    { events: (task, info) => [[task.status === 'queued' ? 'retrying' : task.status === 'dead' ? 'dead' : 'failed', { blocked: info.blocked }]] },
  );
  return r;
}

/** Gives the task back to the queue. The claimant releases its own; an admin (a supervisor parking an agent) may release for it. */
export async function releaseTask(ctx: TaskContext, caller: Caller, input: HolderInput) {
  return holderChange(ctx, caller, input, 'release', () => 'queued', () => ({ set: { claimant: null, leaseUntil: null } }), {
    onBehalf: true,
    events: () => [['released', {}]],
  });
}

async function adminChange(
  ctx: TaskContext,
  caller: Caller,
  id: string,
  what: string,
  from: readonly TaskStatus[],
  to: TaskStatus,
  change: Omit<TaskChange, 'from' | 'to' | 'event'> & { detail?: Record<string, unknown> },
  idempotencyKey?: string,
  creatorMay = false,
): Promise<ChangeResult & { ok: true }> {
  assertTaskId(id);
  const idem = idempotency(caller, idempotencyKey, `tasks ${what}`);
  const task = await getTask(ctx, caller, id);
  if (!isAdmin(caller) && !(creatorMay && task.createdBy === caller.agent)) {
    await deny(ctx.store, caller, `${what} a task`, creatorMay ? 'needs an admin or the task’s creator' : 'needs an admin token or local operator access');
  }
  if (idem === undefined) guard(task, to, what);
  const { detail, ...rest } = change;
  const at = now(ctx);
  const result = await ctx.store.tasks.change(
    caller.project,
    id,
    { ...rest, from, to, event: { actor: actor(caller), name: what, ...(detail ? { detail } : {}) } },
    at,
    idem,
  );
  await settle(ctx, caller, id, result, what);
  return result as ChangeResult & { ok: true };
}

export async function cancelTask(ctx: TaskContext, caller: Caller, input: { id: string; cascade?: boolean; reason?: string; idempotencyKey?: string }) {
  if (input.reason !== undefined) assertText('reason', input.reason, ctx.maxTextBytes);
  const open: TaskStatus[] = ['backlog', 'queued', 'claimed', 'in_progress', 'review', 'failed', 'dead', 'blocked'];
  const r = await adminChange(
    ctx,
    caller,
    input.id,
    'cancel',
    open,
    'canceled',
    { set: { claimant: null, leaseUntil: null }, ...(input.reason ? { detail: { reason: input.reason } } : {}) },
    input.idempotencyKey,
    true,
  );
  const canceled = [r.task.id];
  if (!r.replayed) await publish(ctx, caller, 'canceled', r.task);
  if (input.cascade) {
    for (const dependent of await ctx.store.tasks.dependents(caller.project, input.id)) {
      if (dependent.status === 'done' || dependent.status === 'canceled') continue;
      canceled.push(...(await cancelTask(ctx, caller, { id: dependent.id, cascade: true, reason: `cascade from ${input.id}` })).canceled);
    }
  }
  return { task: r.task, replayed: r.replayed, canceled, blocked: input.cascade ? [] : r.blocked };
}

export async function blockTask(ctx: TaskContext, caller: Caller, input: { id: string; reason?: string; idempotencyKey?: string }) {
  if (input.reason !== undefined) assertText('reason', input.reason, ctx.maxTextBytes);
  const r = await adminChange(ctx, caller, input.id, 'block', ['backlog', 'queued'], 'blocked', { set: { blockedReason: input.reason ?? 'blocked by hand' } }, input.idempotencyKey, true);
  if (!r.replayed) await publish(ctx, caller, 'blocked', r.task);
  return r;
}

export async function unblockTask(ctx: TaskContext, caller: Caller, input: { id: string; idempotencyKey?: string }) {
  const r = await adminChange(ctx, caller, input.id, 'unblock', ['blocked'], 'queued', { set: { blockedReason: null } }, input.idempotencyKey, true);
  if (!r.replayed) await publish(ctx, caller, 'unblocked', r.task);
  return r;
}

/** Dead (or failed) back to queued, with `attempts` more tries; fences keep counting up. */
export async function redriveTask(ctx: TaskContext, caller: Caller, input: { id: string; attempts?: number; idempotencyKey?: string }) {
  const attempts = input.attempts ?? 3;
  if (!Number.isInteger(attempts) || attempts < 1 || attempts > 100) throw new UsageError('--attempts must be a whole number from 1 to 100');
  const task = await getTask(ctx, caller, assertTaskId(input.id));
  const r = await adminChange(
    ctx,
    caller,
    input.id,
    'redrive',
    ['dead', 'failed'],
    'queued',
    { set: { maxAttempts: task.attempt + attempts, error: null, claimant: null, availableAt: now(ctx) }, detail: { attempts } },
    input.idempotencyKey,
  );
  if (!r.replayed) await publish(ctx, caller, 'redriven', r.task);
  return r;
}

export async function commentTask(ctx: TaskContext, caller: Caller, input: { id: string; text: string; idempotencyKey?: string }) {
  if (input.text.trim() === '') throw new UsageError('the comment is empty');
  assertText('comment', input.text, ctx.maxTextBytes);
  await worker(ctx, caller, 'commenting on a task').catch(async (err: unknown) => {
    if (!(err instanceof UsageError)) throw err; // the operator may comment as nobody in particular
  });
  const task = await getTask(ctx, caller, assertTaskId(input.id));
  await ctx.store.tasks.comment(caller.project, task.id, actor(caller), input.text, now(ctx), idempotency(caller, input.idempotencyKey, 'tasks comment'));
  await publish(ctx, caller, 'commented', task, { text: input.text.slice(0, 200) });
  return { task };
}

export interface HandoffInput extends HolderInput {
  to: string;
  summary: string;
  memories?: string[];
}

/** The claimant hands the task to another agent with a context package; the receiver is told on the bus. */
export async function handoffTask(ctx: TaskContext, caller: Caller, input: HandoffInput) {
  assertName('agent', input.to);
  if (input.summary.trim() === '') throw new UsageError('a handoff needs --summary');
  assertText('summary', input.summary, ctx.maxTextBytes);
  for (const m of input.memories ?? []) if (!/^[a-z]+_[0-9a-z]{26}$/.test(m)) throw new UsageError(`invalid engram id ${quote(m)}`);
  const receiver = await getAgent(ctx.store, caller, input.to);
  const r = await holderChange(ctx, caller, input, 'handoff', () => 'review', (_t, at) => ({
    set: { handoff: { from: actor(caller), to: receiver.name, summary: input.summary, memories: input.memories ?? [], at } },
    event: { to: receiver.name, summary: input.summary, memories: input.memories ?? [] },
  }));
  if (!r.replayed) {
    await publish(ctx, caller, 'handoff', r.task, { to: receiver.name });
    const { sendMessage } = await import('../bus/service.js');
    await sendMessage({ store: ctx.store, bus: ctx.bus, maxMessageBytes: Math.max(ctx.maxTextBytes, 65_536), presenceTtlMs: 90_000, ...(ctx.now ? { now: ctx.now } : {}) }, caller, {
      to: receiver.name,
      type: 'task.handoff',
      text: `handoff of ${r.task.id} "${r.task.title}": ${input.summary}\n(sos tasks accept ${r.task.id} | sos tasks reject ${r.task.id} --reason …)`,
      priority: 'high',
    });
  }
  return r;
}

async function handoffAnswer(ctx: TaskContext, caller: Caller, input: { id: string; reason?: string; idempotencyKey?: string }, accept: boolean) {
  assertTaskId(input.id);
  const what = accept ? 'accept' : 'reject';
  const agent = await worker(ctx, caller, `${what}ing a handoff`);
  const task = await getTask(ctx, caller, input.id);
  if (!task.handoff) throw new Conflict(`task ${input.id} has no handoff to ${what} (it is ${task.status})`);
  const at = now(ctx);
  const change: TaskChange = accept
    ? {
        from: ['review'],
        to: 'claimed',
        handoffTo: agent,
        bumpAttempt: true,
        set: { claimant: agent, leaseUntil: at + task.leaseMs },
        event: { actor: agent, name: 'handoff_accepted', detail: { from: task.handoff.from, package: task.handoff } },
      }
    : {
        from: ['review'],
        to: 'claimed',
        handoffTo: agent,
        set: { leaseUntil: at + task.leaseMs, handoff: null },
        event: { actor: agent, name: 'handoff_rejected', detail: { reason: input.reason ?? null, from: task.handoff.from } },
      };
  const result = await ctx.store.tasks.change(caller.project, input.id, change, at, idempotency(caller, input.idempotencyKey, `tasks ${what}`));
  const done = await settle(ctx, caller, input.id, result, what);
  if (result.ok && !result.replayed) await publish(ctx, caller, accept ? 'handoff_accepted' : 'handoff_rejected', done, { from: task.handoff.from });
  return { task: done, replayed: result.ok && result.replayed };
}

export function acceptHandoff(ctx: TaskContext, caller: Caller, input: { id: string; idempotencyKey?: string }) {
  return handoffAnswer(ctx, caller, input, true);
}

export function rejectHandoff(ctx: TaskContext, caller: Caller, input: { id: string; reason: string; idempotencyKey?: string }) {
  if (input.reason.trim() === '') throw new UsageError('say why: --reason <text>');
  assertText('reason', input.reason, ctx.maxTextBytes);
  return handoffAnswer(ctx, caller, input, false);
}

/**
 * Sets the assignee of a queued task that has none (the router's one write): only that agent may
 * then claim it. One guarded UPDATE (`status = 'queued' AND assignee IS NULL AND claimant IS
 * NULL`) and its `assigned` event commit together, so of two racing assigners one wins and the
 * other gets Conflict (exit 4); a task claimed meanwhile is never assigned. Admins only.
 */
export async function assignTask(ctx: TaskContext, caller: Caller, input: { id: string; agent: string }): Promise<{ task: Task }> {
  assertTaskId(input.id);
  assertName('agent', input.agent);
  if (!isAdmin(caller)) await deny(ctx.store, caller, 'assigning a task', 'needs an admin token or local operator access');
  await getAgent(ctx.store, caller, input.agent);
  const at = now(ctx);
  const emitWithin = ctx.bus.emitWithin?.bind(ctx.bus);
  const wakes: (() => void)[] = [];
  type Row = { seq: number; id: string; title: string; status: TaskStatus; squad: string | null; claimant: string | null };
  const data = (r: Row) => ({ task: r.id, title: r.title, status: r.status, squad: r.squad, claimant: r.claimant, actor: actor(caller), assignee: input.agent });
  const row = await ctx.store.sql.transaction(async (tx) => {
    const r = await tx.one<Row>(
      `UPDATE tasks SET assignee = $3, updated_at = $4
        WHERE project = $1 AND id = $2 AND status = 'queued' AND assignee IS NULL AND claimant IS NULL
        RETURNING seq, id, title, status, squad, claimant`,
      [caller.project, input.id, input.agent, at],
    );
    if (!r) return undefined;
    await tx.run('INSERT INTO task_events (task_seq, at, actor, event, from_status, to_status, detail) VALUES ($1, $2, $3, $4, $5, $6, $7)', [
      r.seq,
      at,
      actor(caller),
      'assigned',
      'queued',
      'queued',
      JSON.stringify({ assignee: input.agent }),
    ]);
    if (emitWithin) wakes.push(await emitWithin(tx, caller.project, 'task.assigned', data(r), at));
    return r;
  });
  if (!row) {
    const task = await ctx.store.tasks.peek(caller.project, input.id);
    if (!task) throw new NotFound(`task ${input.id} does not exist in project "${caller.project}"`);
    if (task.status !== 'queued') throw new Conflict(`cannot assign task ${input.id}: it is ${task.status}${task.claimant ? ` by ${task.claimant}` : ''}`);
    throw new Conflict(`cannot assign task ${input.id}: it is already assigned to ${task.assignee ?? task.claimant ?? 'someone'}`);
  }
  if (emitWithin) for (const wake of wakes) wake();
  else await ctx.bus.emit(caller.project, 'task.assigned', data(row), at);
  return { task: (await ctx.store.tasks.get(caller.project, input.id))! };
}

export interface TaskSweepReport {
  requeued: { id: string; attempt: number; availableAt: number }[];
  dead: { id: string; attempt: number; blocked: string[] }[];
}

/**
 * The stall rescue, meant for a timer in the daemon: every task whose lease ran out goes back to
 * the queue after a jittered backoff, or dead once its attempts are spent. The write re-checks
 * holder and fence, so a renewal racing the sweep wins cleanly.
 */
export async function sweepTasks(ctx: TaskContext, caller: Caller): Promise<TaskSweepReport> {
  if (!isAdmin(caller)) await deny(ctx.store, caller, 'sweeping tasks', 'needs an admin token or local operator access');
  const report: TaskSweepReport = { requeued: [], dead: [] };
  const backoff = ctx.backoff ?? defaultBackoff;
  const at = now(ctx);
  for (const task of await ctx.store.tasks.expired(caller.project, at)) {
    const exhausted = task.attempt >= task.maxAttempts;
    const result = await ctx.store.tasks.change(
      caller.project,
      task.id,
      {
        from: HELD,
        to: exhausted ? 'dead' : 'queued',
        holder: { agent: task.claimant ?? '', fence: task.attempt },
        leaseExpiredBy: at,
        set: { claimant: null, leaseUntil: null, availableAt: at + (exhausted ? 0 : backoff(task.attempt)), error: `lease expired (held by ${task.claimant})` },
        event: { actor: actor(caller), name: 'lease_expired', detail: { claimant: task.claimant, fence: task.attempt } },
      },
      at,
    );
    if (!result.ok) continue; // renewed or finished meanwhile
    await ctx.store.counters.add(caller.project, 'leases_expired');
    if (exhausted) {
      report.dead.push({ id: task.id, attempt: task.attempt, blocked: result.blocked });
      await publish(ctx, caller, 'dead', result.task, { blocked: result.blocked });
    } else {
      report.requeued.push({ id: task.id, attempt: task.attempt, availableAt: result.task.availableAt });
      await publish(ctx, caller, 'requeued', result.task);
    }
  }
  return report;
}

export async function taskCounters(ctx: TaskContext, caller: Caller): Promise<Record<string, number>> {
  return ctx.store.counters.all(caller.project);
}

