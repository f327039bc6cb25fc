/**
 * What `sos top` shows, read in one pass from the Store and the bus for the caller's project.
 * Everything here is a read: core functions where they exist, bounded read-only SQL where core
 * has no read for it (marked "read-only SQL" below). The result is plain data; `model.ts` turns
 * it into what to draw.
 */
import type { Caller } from '../core/auth/caller.js';
import type { Bus } from '../core/bus/port.js';
import type { BusEvent } from '../core/bus/types.js';
import type { LifecycleContext } from '../core/lifecycle/context.js';
import type { Store } from '../core/store/port.js';

export interface SnapshotParts {
  store: Store;
  bus: Bus;
  life: LifecycleContext;
  presenceTtlMs: number;
  maxMessageBytes: number;
}

/** Priced dollars in micro-dollars, and how many events had no price (their cost is unknown). */
export interface Money {
  micros: number;
  unpriced: number;
}

export interface AgentRow {
  name: string;
  kind: string;
  role: string;
  session: string | null;
  /** A lifecycle state, or `unprobed` when the supervisor never read it. */
  state: string;
  since: number | null;
  evidence: string | null;
  parkedUntil: number | null;
  /** The first task it holds (claimed or in progress), and how many it holds. */
  task: { id: string; title: string; status: string } | null;
  holds: number;
  unread: number;
  spendToday: Money;
  /** The 5-hour window of an agent on a plan (or with a quota reading); null otherwise. */
  window: { usedPercent: number | null; end: number | null; projectedLimitAt: number | null; burnMicrosPerHour: number; routable: boolean; reason: string | null } | null;
}

export interface QueueRow {
  squad: string;
  ready: number;
  /** Claimed or in progress. */
  claimed: number;
  blocked: number;
  dead: number;
  oldestReadyAt: number | null;
}

export interface SpendRow {
  key: string;
  today: Money;
  period: Money;
}

export interface BudgetRow {
  scope: string;
  unit: 'usd' | 'tokens';
  limit: number;
  spent: number;
  warnAt: number;
  state: 'ok' | 'warning' | 'exhausted';
  action: string;
  since: number | null;
  lifted: boolean;
}

export interface Snapshot {
  project: string;
  at: number;
  daemon: { running: boolean; pid: number | null; heartbeatAt: number | null };
  agents: AgentRow[];
  queues: QueueRow[];
  ready: { id: string; title: string; priority: number; squad: string | null; createdAt: number }[];
  spend: { dayStart: number; periodStart: number; today: Money; period: Money; byModel: SpendRow[]; byAgent: SpendRow[]; tasksDone: number };
  budgets: BudgetRow[];
  /** The newest bus events, oldest first. */
  events: BusEvent[];
  cycles: { id: string; startedAt: number; trigger: string; outcome: string; reason: string; costMicros: number | null }[];
  approvals: { id: string; method: string; tier: string; createdAt: number; votes: number; needs: number }[];
  breakers: { name: string; state: string; openedAt: number | null; lastError: string | null }[];
  acksOverdue: { id: string; from: string; unacked: string[]; deadline: number }[];
  deadTasks: { id: string; title: string; squad: string | null; at: number; error: string | null }[];
}

/** How much of each list a snapshot keeps: every query is bounded by one of these. */
export const LIMITS = { agents: 1_000, held: 2_000, ready: 10, events: 50, eventPages: 4, eventPage: 500, cycles: 10, deadTasks: 20, spendRows: 20 } as const;

/**
 * The event tail between loads: the cursor of the last event read and the newest events. The
 * first load starts near the end of the stream; later loads read only what came after.
 */
export class EventFeed {
  cursor: string | null = null;
  tail: BusEvent[] = [];
  /** How many events the last load read (0: nothing new). */
  fresh = 0;
}

const num = (v: unknown): number => (v === null || v === undefined ? 0 : Number(v));

const DAY = 86_400_000;
/** The UTC day start and the UTC month start (the spend period) of `now`. */
export function spendPeriods(now: number): { dayStart: number; periodStart: number } {
  const d = new Date(now);
  return { dayStart: Math.floor(now / DAY) * DAY, periodStart: Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1) };
}

async function readEvents(parts: SnapshotParts, project: string, feed: EventFeed): Promise<void> {
  if (feed.cursor === null) {
    // Start near the end. On the SQL bus the events are in the Store's database: the seq N from
    // the end is the cursor (read-only SQL). On another bus the first loads page from the start,
    // a bounded number of pages per load, until they catch up.
    const row = await parts.store.sql
      .one<{ seq: number | string }>('SELECT seq FROM bus_events WHERE project = $1 ORDER BY seq DESC LIMIT 1 OFFSET $2', [project, LIMITS.events])
      .catch(() => undefined);
    feed.cursor = row ? String(row.seq) : '';
  }
  feed.fresh = 0;
  for (let page = 0; page < LIMITS.eventPages; page++) {
    const got = await parts.bus.events(project, feed.cursor, LIMITS.eventPage);
    feed.cursor = got.cursor;
    feed.fresh += got.events.length;
    feed.tail = [...feed.tail, ...got.events].slice(-LIMITS.events);
    if (got.events.length < LIMITS.eventPage) break;
  }
}

/** Reads everything `sos top` shows. `feed` carries the event cursor from one load to the next. */
export async function loadSnapshot(parts: SnapshotParts, caller: Caller, now: number, feed: EventFeed = new EventFeed()): Promise<Snapshot> {
  const { store } = parts;
  const db = store.sql;
  const project = caller.project;
  const { agentStatus } = await import('../core/lifecycle/service.js');
  const { usageWindows } = await import('../core/economy/quota.js');
  const { listBudgets } = await import('../core/economy/budgets.js');
  const { listCycles, savedBreakers, triggerName } = await import('../core/brain/cycle.js');
  const { listApprovals } = await import('../core/brain/governance.js');
  const { pendingAcks } = await import('../core/bus/service.js');
  const { readLease, leaseLive } = await import('../core/daemon/lock.js');
  const { HELD_STATUSES } = await import('../core/lifecycle/probe.js');

  // ---- the daemon, as `sos daemon status` reads it
  const lease = await readLease(db);
  const daemon = { running: lease !== undefined && leaseLive(lease, now, 6_000), pid: lease?.pid ?? null, heartbeatAt: lease?.heartbeatAt ?? null };

  // ---- agents: lifecycle status (state, since, evidence, held ids, unread), held tasks, spend, windows
  const status = await agentStatus(parts.life, caller);
  const held = new Map<string, { id: string; title: string; status: string }>();
  for (const t of await store.tasks.list(project, { statuses: [...HELD_STATUSES], limit: LIMITS.held }, now)) {
    if (t.claimant !== null && !held.has(t.claimant)) held.set(t.claimant, { id: t.id, title: t.title, status: t.status });
  }
  const { dayStart, periodStart } = spendPeriods(now);
  // read-only SQL: the usage rollup of this period, per agent and model (one row per day, agent, model).
  const rollup = await db.all<{ day: number | string; agent: string; model: string; cost: number | string | null; unknown: number | string | null }>(
    'SELECT day, agent, model, SUM(cost_micros) AS cost, SUM(unknown_cost_events) AS unknown FROM usage_rollup WHERE project = $1 AND day >= $2 GROUP BY day, agent, model',
    [project, periodStart],
  );
  const money = (): Money => ({ micros: 0, unpriced: 0 });
  const add = (m: Money, cost: unknown, unknown: unknown) => {
    m.micros += num(cost);
    m.unpriced += num(unknown);
  };
  const byAgent = new Map<string, SpendRow>();
  const byModel = new Map<string, SpendRow>();
  const today = money();
  const period = money();
  for (const r of rollup) {
    const isToday = num(r.day) >= dayStart;
    for (const [map, key] of [
      [byAgent, r.agent === '' ? '-' : r.agent],
      [byModel, r.model],
    ] as const) {
      const row = map.get(key) ?? { key, today: money(), period: money() };
      map.set(key, row);
      add(row.period, r.cost, r.unknown);
      if (isToday) add(row.today, r.cost, r.unknown);
    }
    add(period, r.cost, r.unknown);
    if (isToday) add(today, r.cost, r.unknown);
  }
  const windows = new Map((await usageWindows(store, caller, { now })).map((w) => [w.agent, w]));
  const agents: AgentRow[] = status.slice(0, LIMITS.agents).map((s) => {
    const w = windows.get(s.agent);
    return {
      name: s.agent,
      kind: s.kind,
      role: s.role,
      session: s.session,
      state: s.state,
      since: s.since,
      evidence: s.evidence,
      parkedUntil: s.parkedUntil,
      task: held.get(s.agent) ?? null,
      holds: s.holds.length,
      unread: s.unread,
      spendToday: byAgent.get(s.agent)?.today ?? money(),
      window: w
        ? { usedPercent: w.fiveHour.usedPercent, end: w.fiveHour.end, projectedLimitAt: w.projectedLimitAt, burnMicrosPerHour: w.burnCostMicrosPerHour, routable: w.routable, reason: w.reason }
        : null,
    };
  });

  // ---- queues (read-only SQL along tasks_by_status): per squad, ready / claimed / blocked / dead, oldest ready
  const counts = await db.all<{ squad: string | null; status: string; n: number | string; ready: number | string | null; oldest: number | string | null }>(
    `SELECT squad, status, COUNT(*) AS n,
            SUM(CASE WHEN status = 'queued' AND unmet_deps = 0 AND available_at <= $2 THEN 1 ELSE 0 END) AS ready,
            MIN(CASE WHEN status = 'queued' AND unmet_deps = 0 AND available_at <= $2 THEN created_at END) AS oldest
       FROM tasks WHERE project = $1 AND status IN ('queued', 'claimed', 'in_progress', 'blocked', 'dead')
      GROUP BY squad, status`,
    [project, now],
  );
  const queues = new Map<string, QueueRow>();
  for (const c of counts) {
    const squad = c.squad ?? '-';
    const q = queues.get(squad) ?? { squad, ready: 0, claimed: 0, blocked: 0, dead: 0, oldestReadyAt: null };
    queues.set(squad, q);
    if (c.status === 'queued') {
      q.ready += num(c.ready);
      if (c.oldest !== null) q.oldestReadyAt = Math.min(q.oldestReadyAt ?? Number.POSITIVE_INFINITY, num(c.oldest));
    } else if (c.status === 'claimed' || c.status === 'in_progress') q.claimed += num(c.n);
    else if (c.status === 'blocked') q.blocked += num(c.n);
    else if (c.status === 'dead') q.dead += num(c.n);
  }
  const ready = (await store.tasks.readyTop(project, now, LIMITS.ready)).map((t) => ({ id: t.id, title: t.title, priority: t.priority, squad: t.squad, createdAt: t.createdAt }));
  // read-only SQL: the newest dead-lettered tasks
  const deadTasks = (
    await db.all<{ id: string; title: string; squad: string | null; updated_at: number | string; error: string | null }>(
      `SELECT id, title, squad, updated_at, error FROM tasks WHERE project = $1 AND status = 'dead' ORDER BY seq DESC LIMIT ${LIMITS.deadTasks}`,
      [project],
    )
  ).map((t) => ({ id: t.id, title: t.title, squad: t.squad, at: num(t.updated_at), error: t.error }));
  // read-only SQL: tasks now done (the denominator of cost per completed task, as in `sos metrics`)
  const done = await db.one<{ n: number | string }>("SELECT COUNT(*) AS n FROM tasks WHERE project = $1 AND status = 'done'", [project]);

  // ---- budgets, brain, approvals, acks, events
  const budgets: BudgetRow[] = (await listBudgets(store, caller, now)).map((b) => ({
    scope: b.scope,
    unit: b.unit,
    limit: b.limit,
    spent: b.spent,
    warnAt: b.warnAt,
    state: b.state,
    action: b.action,
    since: b.exhaustedAt ?? b.warnedAt,
    lifted: b.liftedAt !== null,
  }));
  const cycles = (await listCycles({ store }, caller, { limit: LIMITS.cycles })).map((c) => ({
    id: c.id,
    startedAt: c.startedAt,
    trigger: triggerName(c.triggerDetail),
    outcome: c.outcome,
    reason: c.reason,
    costMicros: c.costMicros,
  }));
  const approvals = (await listApprovals(store, caller, { status: 'pending' })).map((a) => ({
    id: a.id,
    method: a.method,
    tier: a.tier,
    createdAt: a.createdAt,
    votes: a.votes.filter((v) => v.vote === 'approve').length,
    needs: a.needs,
  }));
  const breakers = (await savedBreakers(db)).map((b) => ({ name: b.name, state: b.state, openedAt: b.openedAt, lastError: b.lastError }));
  const acksOverdue = (
    await pendingAcks({ store, bus: parts.bus, maxMessageBytes: parts.maxMessageBytes, presenceTtlMs: parts.presenceTtlMs, now: () => now }, caller, { overdue: true })
  ).map((a) => ({ id: a.message.id, from: a.message.from, unacked: a.unacked, deadline: a.deadline }));
  await readEvents(parts, project, feed);

  return {
    project,
    at: now,
    daemon,
    agents,
    queues: [...queues.values()].sort((a, b) => a.squad.localeCompare(b.squad)),
    ready,
    spend: {
      dayStart,
      periodStart,
      today,
      period,
      byModel: [...byModel.values()].sort((a, b) => b.period.micros - a.period.micros).slice(0, LIMITS.spendRows),
      byAgent: [...byAgent.values()].sort((a, b) => b.period.micros - a.period.micros).slice(0, LIMITS.spendRows),
      tasksDone: num(done?.n),
    },
    budgets,
    events: feed.tail,
    cycles,
    approvals,
    breakers,
    acksOverdue,
    deadTasks,
  };
}

/** What `--squad` and `--agent` narrow the view to; the squad's members are read with it. */
export interface Narrowing {
  squad?: { name: string; members: string[] };
  agent?: string;
}

/** The event's agent-like fields (who acted, who it was for). */
const EVENT_PEOPLE = ['agent', 'from', 'to', 'claimant', 'by'] as const;

/**
 * The snapshot seen through `--squad` / `--agent`: agents, their spend, queues, the ready top,
 * dead tasks, overdue acks and events that concern them. Project-wide facts (the daemon, budgets,
 * brain cycles, approvals, breakers, the project's spend totals) stay: they concern everyone.
 */
export function narrowSnapshot(s: Snapshot, n: Narrowing): Snapshot {
  if (!n.squad && n.agent === undefined) return s;
  const inScope = (name: string) => (n.agent === undefined || name === n.agent) && (!n.squad || n.squad.members.includes(name));
  const squadOk = (squad: string | null) => !n.squad || squad === n.squad.name;
  const eventOk = (e: BusEvent) => {
    const people = EVENT_PEOPLE.map((k) => e.data[k]).filter((v): v is string => typeof v === 'string');
    if (people.some(inScope)) return true;
    return n.agent === undefined && n.squad !== undefined && e.data.squad === n.squad.name;
  };
  return {
    ...s,
    agents: s.agents.filter((a) => inScope(a.name)),
    queues: s.queues.filter((q) => squadOk(q.squad === '-' ? null : q.squad)),
    ready: s.ready.filter((t) => squadOk(t.squad)),
    deadTasks: s.deadTasks.filter((t) => squadOk(t.squad)),
    acksOverdue: s.acksOverdue.filter((a) => inScope(a.from) || a.unacked.some(inScope)),
    events: s.events.filter(eventOk),
    spend: { ...s.spend, byAgent: s.spend.byAgent.filter((r) => inScope(r.key)) },
  };
}
