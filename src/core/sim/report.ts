import { z } from 'zod';
import type { Caller } from '../auth/caller.js';
import type { BusContext } from '../bus/service.js';
import { SqlLifecycleRepo } from '../lifecycle/sql-lifecycle.js';
import { flatMetrics, projectMetrics } from '../metrics.js';
import type { Store } from '../store/port.js';
import { type AgentLogEntry, readAgentLog } from './agent.js';
import { BRAIN_TASK_TITLE, type ModelServer } from './model-server.js';
import type { Resources } from './resources.js';
import type { Scenario } from './scenario.js';

/**
 * The report of a simulation: the paper's six observables with their numerators and
 * denominators, then messages, tasks, budget refusals and recovery times. Every figure is read
 * from the Store's own records and counters (`projectMetrics`, the task rows, the bus deliveries,
 * the lifecycle actions) and cross-checked against two logs the Store never sees: the
 * simulator's log of what it did (`SimLogEntry`) and each simulated agent's log of what it did
 * (`agent.ts`). Each disagreement is a failure line, never a silent correction; so is any of the
 * rows that must be zero (lost messages, duplicate deliveries, duplicate claims, tasks stranded
 * on a dead agent).
 */

/** One line of the simulator's own log (`<dir>/sim.jsonl`). */
export interface SimLogEntry {
  at: number;
  kind: string;
  agent?: string;
  id?: string;
  task?: string;
  [key: string]: unknown;
}

/** A figure and where it comes from; a rate carries its numerator and denominator. */
export interface Figure {
  value: number | null;
  numerator?: number;
  denominator?: number;
  /** What the figure leaves out of the Store's raw value, and how many (e.g. the first starts). */
  excluded?: number;
}

export interface KillRecovery {
  agent: string;
  how: string;
  at: number;
  /** Milliseconds from the kill to the agent's next start at its prompt; null: never came back. */
  recoveredMs: number | null;
}

export interface SimReport {
  scenario: { name: string; agents: number; tasks: number; minutes: number; seed: number; backend: 'sqlite' | 'postgres'; redis: boolean };
  ok: boolean;
  failures: string[];
  settled: boolean;
  observables: {
    recovery_success_rate: Figure;
    duplicate_claims: Figure;
    blocked_methods: Figure;
    stale_enqueue_attempts: Figure;
    cost_per_completed_task_usd: Figure;
    unclaimed_routed_tasks: Figure;
  };
  messages: { sent: number; read: number; lost: number; deliveredTwice: number; acksAsked: number; acked: number; wakeLinesTyped: number; heldTotal: number };
  tasks: { created: number; fixtures: number; byBrain: number; done: number; dead: number; failed: number; queued: number; held: number; strandedOnDeadAgent: number; staleFenceRefused: number; leasesExpired: number; routingRuns: number; routedAssigned: number; routedStillQueued: number; createdDespiteError: number };
  budget: { claimsRefused: number; refusalsLogged: number };
  recovery: { killed: number; recovered: number; p50Ms: number | null; p95Ms: number | null; restarts: number; firstStarts: number; escalations: number; cascadeEscalated: number; operatorRestarts: number; pending: number; kills: KillRecovery[] };
  daemon: { kills: number; restarts: number };
  redis: { restarts: number; skipped: number };
  brain: { cycles: number; modelCalls: number; answered: Record<string, number>; motor: Record<string, number> };
  injected: Record<string, number>;
  metrics: Record<string, number | null>;
  load: { loadavg: number[]; cpus: number } & Resources;
  durationMs: number;
}

const figure = z.object({ value: z.number().nullable(), numerator: z.number().optional(), denominator: z.number().optional(), excluded: z.number().optional() }).strict();
const count = z.number().int().min(0);
const counts = z.record(z.string(), count);

/** The JSON shape of `sos sim --json` (and of `SimReport`), for tests and for tools that read it. */
export const SIM_REPORT_SCHEMA = z
  .object({
    scenario: z.object({ name: z.string(), agents: count, tasks: count, minutes: z.number().positive(), seed: count, backend: z.enum(['sqlite', 'postgres']), redis: z.boolean() }).strict(),
    ok: z.boolean(),
    failures: z.array(z.string()),
    settled: z.boolean(),
    observables: z
      .object({
        recovery_success_rate: figure,
        duplicate_claims: figure,
        blocked_methods: figure,
        stale_enqueue_attempts: figure,
        cost_per_completed_task_usd: figure,
        unclaimed_routed_tasks: figure,
      })
      .strict(),
    messages: z.object({ sent: count, read: count, lost: count, deliveredTwice: count, acksAsked: count, acked: count, wakeLinesTyped: count, heldTotal: count }).strict(),
    tasks: z
      .object({
        created: count, fixtures: count, byBrain: count, done: count, dead: count, failed: count, queued: count, held: count, strandedOnDeadAgent: count,
        staleFenceRefused: count, leasesExpired: count, routingRuns: count, routedAssigned: count, routedStillQueued: count, createdDespiteError: count,
      })
      .strict(),
    budget: z.object({ claimsRefused: count, refusalsLogged: count }).strict(),
    recovery: z
      .object({
        killed: count, recovered: count, p50Ms: z.number().nullable(), p95Ms: z.number().nullable(), restarts: count, firstStarts: count, escalations: count,
        cascadeEscalated: count, operatorRestarts: count, pending: count,
        kills: z.array(z.object({ agent: z.string(), how: z.string(), at: z.number(), recoveredMs: z.number().nullable() }).strict()),
      })
      .strict(),
    daemon: z.object({ kills: count, restarts: count }).strict(),
    redis: z.object({ restarts: count, skipped: count }).strict(),
    brain: z.object({ cycles: count, modelCalls: count, answered: counts, motor: counts }).strict(),
    injected: counts,
    metrics: z.record(z.string(), z.number().nullable()),
    load: z
      .object({
        loadavg: z.array(z.number()),
        cpus: count,
        samples: count,
        load1Max: z.number().nullable(),
        load1Mean: z.number().nullable(),
        machineBusyPct: z.number().nullable(),
        machineBusyMaxPct: z.number().nullable(),
        processes: z.array(z.object({ name: z.string(), cpuPct: z.number().nullable(), rssMaxMiB: z.number().nullable() }).strict()),
      })
      .strict(),
    durationMs: count,
  })
  .strict();

export interface ReportInput {
  store: Store;
  bus: BusContext;
  project: string;
  dir: string;
  agents: string[];
  simLog: SimLogEntry[];
}

const num = (v: unknown) => Number(v ?? 0);

/** Simulator log kinds that take an agent away from its work (its first start comes before any). */
const DISRUPTIONS = ['kill', 'hang', 'compact', 'quota', 'ask'];

/** The p-th percentile (nearest rank) of sorted values; null for none. */
export function percentile(sorted: readonly number[], p: number): number | null {
  if (sorted.length === 0) return null;
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[Math.min(rank, sorted.length) - 1]!;
}

/** Each kill of the simulator's log, matched with the agent's next `ready` after it. */
export function killRecoveries(simLog: readonly SimLogEntry[], logs: ReadonlyMap<string, AgentLogEntry[]>): KillRecovery[] {
  return simLog
    .filter((e) => e.kind === 'kill')
    .map((k) => {
      const ready = (logs.get(k.agent!) ?? []).find((e) => e.event === 'ready' && e.at > k.at);
      return { agent: k.agent!, how: String(k.how ?? 'kill'), at: k.at, recoveredMs: ready ? ready.at - k.at : null };
    });
}

interface MessageTally {
  sent: number;
  read: number;
  lost: number;
  twice: number;
  acksAsked: number;
  acked: number;
  failures: string[];
}

/** Every message the simulator sent, against the bus's delivery state and the recipient's own log. */
async function tallyMessages(input: ReportInput, logs: ReadonlyMap<string, AgentLogEntry[]>): Promise<MessageTally> {
  const readCount = new Map<string, number>();
  const ackedBy = new Set<string>();
  for (const [agent, entries] of logs) {
    for (const e of entries) {
      if (e.event === 'read') for (const id of e.ids ?? []) readCount.set(`${agent}/${id}`, (readCount.get(`${agent}/${id}`) ?? 0) + 1);
      if (e.event === 'acked') for (const id of e.acked ?? []) ackedBy.add(`${agent}/${id}`);
    }
  }
  const t: MessageTally = { sent: 0, read: 0, lost: 0, twice: 0, acksAsked: 0, acked: 0, failures: [] };
  for (const m of input.simLog.filter((e) => e.kind === 'message')) {
    t.sent += 1;
    const key = `${m.agent}/${m.id}`;
    const found = await input.bus.bus.get(input.project, m.id!);
    const state = found?.deliveries.find((d) => d.recipient === m.agent)?.state ?? 'missing';
    const seen = readCount.get(key) ?? 0;
    if (seen === 0) {
      t.lost += 1;
      t.failures.push(`message ${m.id} to ${m.agent}: never read by the agent (bus state ${state})`);
    } else t.read += 1;
    if (seen > 1) {
      t.twice += 1;
      t.failures.push(`message ${m.id} to ${m.agent}: the inbox gave it to the agent ${seen} times`);
    }
    if (seen > 0 && state !== 'read' && state !== 'acked') t.failures.push(`message ${m.id} to ${m.agent}: the agent read it but the bus says ${state}`);
    if (m.ack === true) {
      t.acksAsked += 1;
      if (state === 'acked') t.acked += 1;
      if (ackedBy.has(key) && state !== 'acked') t.failures.push(`message ${m.id} to ${m.agent}: the agent acked it but the bus says ${state}`);
    }
  }
  return t;
}

/** Tasks held (claimed or in progress) by an agent whose latest lifecycle state is dead. */
async function strandedTasks(store: Store, project: string): Promise<{ id: string; claimant: string }[]> {
  const dead = new Set((await new SqlLifecycleRepo(store.sql).list(project)).filter((s) => s.state === 'dead').map((s) => s.agent));
  const held = await store.sql.all<{ id: string; claimant: string | null }>("SELECT id, claimant FROM tasks WHERE project = $1 AND status IN ('claimed', 'in_progress')", [project]);
  return held.filter((t) => t.claimant !== null && dead.has(t.claimant)).map((t) => ({ id: t.id, claimant: t.claimant! }));
}

const readLogs = (dir: string, agents: readonly string[]) => new Map(agents.map((a) => [a, readAgentLog(dir, a)]));

/** The settling test: every sent message read, nothing on a dead agent, every killed agent back. */
export async function settledNow(input: ReportInput): Promise<boolean> {
  const logs = readLogs(input.dir, input.agents);
  const t = await tallyMessages(input, logs);
  if (t.lost > 0) return false;
  if ((await strandedTasks(input.store, input.project)).length > 0) return false;
  return killRecoveries(input.simLog, logs).every((k) => k.recoveredMs !== null);
}

export interface BuildInput extends ReportInput {
  scenario: Scenario;
  backend: 'sqlite' | 'postgres';
  redis: boolean;
  model: ModelServer;
  durationMs: number;
  load: { loadavg: number[]; cpus: number } & Resources;
  settled: boolean;
}

export async function buildReport(input: BuildInput): Promise<SimReport> {
  const { store, project, simLog } = input;
  const operator: Caller = { project, agent: null, role: 'operator', via: 'local' };
  const repo = new SqlLifecycleRepo(store.sql);
  const m = await projectMetrics({ store, bus: input.bus, repo }, operator);
  const logs = readLogs(input.dir, input.agents);
  const failures: string[] = [];

  // Tasks: the Store's rows against what the simulator created and what the agents did.
  const rows = await store.sql.all<{ id: string; status: string; title: string }>('SELECT id, status, title FROM tasks WHERE project = $1', [project]);
  const byId = new Map(rows.map((r) => [r.id, r]));
  const simTasks = simLog.filter((e) => e.kind === 'task_created').map((e) => e.task!);
  const fixtures = simLog.filter((e) => e.kind === 'fixture_created').map((e) => e.task!);
  const ours = new Set([...simTasks, ...fixtures]);
  for (const id of ours) if (!byId.has(id)) failures.push(`task ${id}: created by the simulator, missing from the Store`);
  // A routed task whose creation reported an error (the bus away) but whose row was written anyway.
  const failedTitles = new Set(simLog.filter((e) => e.kind === 'route_failed' && typeof e.title === 'string').map((e) => e.title as string));
  const despiteError = rows.filter((r) => !ours.has(r.id) && failedTitles.has(r.title));
  for (const r of despiteError) ours.add(r.id);
  const others = rows.filter((r) => !ours.has(r.id));
  // The only other author is the brain's motor, whose one executable task proposal has this title.
  for (const r of others) if (!r.title.startsWith(BRAIN_TASK_TITLE)) failures.push(`task ${r.id} ("${r.title.slice(0, 80)}"): in the Store, created neither by the simulator nor by the brain`);
  const completing = new Set<string>();
  const completed = new Map<string, number>();
  const claims = new Map<string, string[]>();
  let refusalsLogged = 0;
  for (const [agent, entries] of logs) {
    for (const e of entries) {
      if (e.event === 'completing') completing.add(e.task!);
      if (e.event === 'completed') completed.set(e.task!, (completed.get(e.task!) ?? 0) + 1);
      if (e.event === 'claimed') claims.set(`${e.task}#${e.fence}`, [...(claims.get(`${e.task}#${e.fence}`) ?? []), agent]);
      if (e.event === 'budget_refused') refusalsLogged += 1;
    }
  }
  for (const r of rows) if (r.status === 'done' && !completing.has(r.id)) failures.push(`task ${r.id}: done in the Store, but no agent logged completing it`);
  for (const [id, n] of completed) {
    if (byId.get(id)?.status !== 'done') failures.push(`task ${id}: an agent completed it, but the Store says ${byId.get(id)?.status ?? 'missing'}`);
    if (n > 1) failures.push(`task ${id}: completed ${n} times in the agents' logs`);
  }
  const loggedDuplicates = [...claims].filter(([, who]) => who.length > 1);
  for (const [claim, who] of loggedDuplicates) failures.push(`claim ${claim}: logged by ${who.join(' and ')}`);
  const stranded = await strandedTasks(store, project);
  for (const t of stranded) failures.push(`task ${t.id}: still claimed by ${t.claimant}, which is dead`);

  const msgs = await tallyMessages(input, logs);
  failures.push(...msgs.failures);

  // Budget refusals: the Store's counter against the agents' own count.
  const claimsRefused = m.fixed.budget_claims_refused ?? 0;
  if (claimsRefused !== refusalsLogged) failures.push(`claims refused for budget: the Store counted ${claimsRefused}, the agents logged ${refusalsLogged}`);

  // Recovery: each kill of the simulator's log, the restarts the Store recorded after it.
  const kills = killRecoveries(simLog, logs);
  const t0 = simLog.find((e) => e.kind === 'run_started')?.at ?? simLog[0]?.at ?? 0;
  const actions = await store.sql.all<{ agent: string; action: string; at: number | string }>("SELECT agent, action, at FROM lifecycle_actions WHERE project = $1 AND action IN ('restart', 'escalate')", [project]);
  for (const k of kills) {
    if (k.recoveredMs === null) failures.push(`${k.agent} (${k.how} at +${Math.round((k.at - t0) / 1000)} s): never came back`);
    // A cascade's agents are not restarted by the supervisor (its guard escalates; the operator restarts them).
    if (k.how !== 'cascade kill -9' && !actions.some((a) => a.agent === k.agent && a.action === 'restart' && num(a.at) >= k.at)) failures.push(`${k.agent} (${k.how}): no restart recorded by the supervisor after the kill`);
  }
  const cascades = simLog.filter((e) => e.kind === 'cascade');
  for (const e of cascades) if (e.escalated !== true) failures.push(`cascade at +${Math.round((e.at - t0) / 1000)} s: the supervisor did not escalate within 30 s`);
  // Once escalated, a cascade's agents are the operator's: the supervisor restarting one of them
  // before the operator is done (as the first hand restarts bring the dead below the guard's
  // fraction) races the operator for the same session.
  for (const k of kills.filter((x) => x.how === 'cascade kill -9')) {
    const handed = simLog.find((e) => e.kind === 'operator_restart' && e.at >= k.at);
    const early = actions.find((a) => a.agent === k.agent && a.action === 'restart' && num(a.at) >= k.at && (!handed || num(a.at) <= handed.at));
    if (early) failures.push(`${k.agent} (cascade kill -9): restarted by the supervisor at +${Math.round((num(early.at) - t0) / 1000)} s, before the operator's restarts were done`);
  }
  const operatorRestarts = simLog.filter((e) => e.kind === 'operator_restart').reduce((n, e) => n + (Array.isArray(e.agents) ? e.agents.length : 0), 0);

  // Recovery success: the lifecycle's recoveries, less each agent's first start. The daemon brings
  // a never-started agent up with the same restart action (recovery pending, then succeeded), which
  // is no recovery from anything: the earliest restart of an agent before any failure injected on it.
  const recs = await store.sql.all<{ agent: string; action: string; at: number | string; recovery: string }>(
    'SELECT agent, action, at, recovery FROM lifecycle_actions WHERE project = $1 AND recovery IS NOT NULL ORDER BY at',
    [project],
  );
  const firstDisruption = new Map<string, number>();
  for (const e of simLog) if (e.agent && DISRUPTIONS.includes(e.kind) && !firstDisruption.has(e.agent)) firstDisruption.set(e.agent, e.at);
  const firstStart = new Set<number>();
  const seenAgent = new Set<string>();
  recs.forEach((r, i) => {
    if (r.action !== 'restart' || seenAgent.has(r.agent)) return;
    seenAgent.add(r.agent);
    if (num(r.at) < (firstDisruption.get(r.agent) ?? Number.POSITIVE_INFINITY)) firstStart.add(i);
  });
  const counted = recs.filter((_, i) => !firstStart.has(i));
  const recSucceeded = counted.filter((r) => r.recovery === 'succeeded').length;
  const recFailed = counted.filter((r) => r.recovery === 'failed').length;
  const recPending = counted.filter((r) => r.recovery === 'pending').length;
  const rawSettled = recs.filter((r) => r.recovery !== 'pending').length;
  if (rawSettled !== m.fixed.recoveries_succeeded! + m.fixed.recoveries_failed!) failures.push(`recoveries: the lifecycle rows settle ${rawSettled}, the metrics ${m.fixed.recoveries_succeeded! + m.fixed.recoveries_failed!}`);

  // Routing: the Store's counter against the sum of the routing runs' own reports.
  const routes = simLog.filter((e) => e.kind === 'route');
  const unroutedLogged = routes.reduce((n, e) => n + num(e.unrouted), 0);
  const consideredLogged = routes.reduce((n, e) => n + num(e.considered), 0);
  const unclaimedRouted = m.fixed.unclaimed_routed_tasks ?? 0;
  if (unclaimedRouted !== unroutedLogged) failures.push(`unclaimed routed tasks: the Store counted ${unclaimedRouted}, the routing runs reported ${unroutedLogged}`);
  const stillQueued = await store.sql.one<{ n: number | string }>("SELECT COUNT(*) AS n FROM tasks WHERE project = $1 AND status = 'queued' AND assignee IS NOT NULL", [project]);
  const times = kills.flatMap((k) => (k.recoveredMs === null ? [] : [k.recoveredMs])).sort((a, b) => a - b);

  const duplicateClaims = m.fixed.duplicate_claims ?? 0;
  const claimEvents = await store.sql.one<{ n: number | string }>("SELECT COUNT(*) AS n FROM task_events e JOIN tasks t ON t.seq = e.task_seq WHERE t.project = $1 AND e.event = 'claimed'", [project]);
  if (duplicateClaims !== 0) failures.push(`duplicate claims: ${duplicateClaims} (task attempts claimed more than once)`);
  const daemonKills = simLog.filter((e) => e.kind === 'daemon_kill').length;
  const daemonRestarts = simLog.filter((e) => e.kind === 'daemon_restart').length;
  if (daemonKills !== daemonRestarts) failures.push(`daemon: killed ${daemonKills} times, restarted ${daemonRestarts}`);
  if (!input.settled) failures.push('the installation did not settle before the drain deadline (see the lines above)');

  const injected: Record<string, number> = {};
  for (const e of simLog) {
    const kind = e.kind === 'kill' ? String(e.how) : e.kind;
    if (['task_created', 'fixture_created', 'run_started', 'run_ended', 'settled', 'route', 'operator_restart'].includes(e.kind)) continue;
    injected[kind] = (injected[kind] ?? 0) + 1;
  }
  const c = await store.counters.all(project);
  const spendMicros = Math.round((m.fixed.priced_spend_usd ?? 0) * 1_000_000);
  const report: SimReport = {
    scenario: { name: input.scenario.name, agents: input.scenario.agents, tasks: input.scenario.tasks, minutes: input.scenario.minutes, seed: input.scenario.seed, backend: input.backend, redis: input.redis },
    ok: false,
    failures,
    settled: input.settled,
    observables: {
      recovery_success_rate: { value: recSucceeded + recFailed === 0 ? null : Math.round((recSucceeded / (recSucceeded + recFailed)) * 10_000) / 10_000, numerator: recSucceeded, denominator: recSucceeded + recFailed, excluded: firstStart.size },
      duplicate_claims: { value: duplicateClaims, numerator: duplicateClaims, denominator: num(claimEvents?.n) },
      blocked_methods: { value: m.fixed.blocked_methods, numerator: m.fixed.blocked_methods ?? 0, denominator: c.brain_cycles ?? 0 },
      stale_enqueue_attempts: { value: m.fixed.stale_enqueue_attempts, numerator: m.fixed.stale_enqueue_attempts ?? 0, denominator: c.brain_cycles ?? 0 },
      cost_per_completed_task_usd: { value: m.fixed.cost_per_completed_task_usd, numerator: spendMicros / 1_000_000, denominator: m.fixed.tasks_done ?? 0 },
      unclaimed_routed_tasks: { value: unclaimedRouted, numerator: unclaimedRouted, denominator: consideredLogged },
    },
    messages: { sent: msgs.sent, read: msgs.read, lost: msgs.lost, deliveredTwice: msgs.twice, acksAsked: msgs.acksAsked, acked: msgs.acked, wakeLinesTyped: m.fixed.messages_delivered ?? 0, heldTotal: m.fixed.messages_held_total ?? 0 },
    tasks: {
      created: simTasks.length,
      fixtures: fixtures.length,
      byBrain: others.length,
      done: m.tasksByStatus.done,
      dead: m.tasksByStatus.dead,
      failed: m.tasksByStatus.failed,
      queued: m.tasksByStatus.queued,
      held: m.tasksByStatus.claimed + m.tasksByStatus.in_progress,
      strandedOnDeadAgent: stranded.length,
      staleFenceRefused: m.fixed.stale_fence_refused ?? 0,
      leasesExpired: m.fixed.leases_expired ?? 0,
      routingRuns: routes.length,
      routedAssigned: routes.reduce((n, e) => n + num(e.assigned), 0),
      routedStillQueued: num(stillQueued?.n),
      createdDespiteError: despiteError.length,
    },
    budget: { claimsRefused, refusalsLogged },
    recovery: {
      killed: kills.length,
      recovered: times.length,
      p50Ms: percentile(times, 50),
      p95Ms: percentile(times, 95),
      restarts: actions.filter((a) => a.action === 'restart').length,
      firstStarts: firstStart.size,
      escalations: actions.filter((a) => a.action === 'escalate').length,
      cascadeEscalated: cascades.filter((e) => e.escalated === true).length,
      operatorRestarts,
      pending: recPending,
      kills,
    },
    daemon: { kills: daemonKills, restarts: daemonRestarts },
    redis: { restarts: simLog.filter((e) => e.kind === 'redis_restart').length, skipped: simLog.filter((e) => e.kind === 'skipped' && e.what === 'redis_restart').length },
    brain: { cycles: c.brain_cycles ?? 0, modelCalls: input.model.calls, answered: { ...input.model.answered }, motor: { ...m.motor } },
    injected,
    metrics: flatMetrics(m),
    load: input.load,
    durationMs: input.durationMs,
  };
  report.ok = failures.length === 0;
  return report;
}

/** The report for a terminal: the observables first, then the evidence, then every failure line. */
export function reportText(r: SimReport): string {
  const f = (x: Figure, digits = 4) => (x.value === null ? '—' : String(Math.round(x.value * 10 ** digits) / 10 ** digits));
  const ms = (v: number | null) => (v === null ? '—' : `${(v / 1000).toFixed(1)} s`);
  const pct = (v: number | null, unit = ' %') => (v === null ? '—' : `${v}${unit}`);
  const o = r.observables;
  const lines = [
    `sos sim: ${r.scenario.name} scenario, ${r.scenario.agents} agents, ${r.scenario.tasks} tasks, ${r.scenario.minutes} min, seed ${r.scenario.seed}, ${r.scenario.backend}${r.scenario.redis ? ' + Redis' : ''}`,
    '',
    'observables',
    `  recovery success rate      ${f(o.recovery_success_rate)}  (${o.recovery_success_rate.numerator} succeeded / ${o.recovery_success_rate.denominator} settled; ${o.recovery_success_rate.excluded ?? 0} first starts left out, ${r.recovery.pending} pending)`,
    `  duplicate claims           ${f(o.duplicate_claims)}  (of ${o.duplicate_claims.denominator} claims)`,
    `  blocked methods            ${f(o.blocked_methods)}  (in ${o.blocked_methods.denominator} brain cycles)`,
    `  stale enqueue attempts     ${f(o.stale_enqueue_attempts)}  (in ${o.stale_enqueue_attempts.denominator} brain cycles)`,
    `  cost per completed task    ${o.cost_per_completed_task_usd.value === null ? '—' : `$${o.cost_per_completed_task_usd.value.toFixed(6)}`}  ($${(o.cost_per_completed_task_usd.numerator ?? 0).toFixed(4)} / ${o.cost_per_completed_task_usd.denominator} done)`,
    `  unclaimed routed tasks     ${f(o.unclaimed_routed_tasks)}  (of ${o.unclaimed_routed_tasks.denominator} tasks considered by ${r.tasks.routingRuns} routing runs; ${r.tasks.routedAssigned} assigned, ${r.tasks.routedStillQueued} still queued on their assignee at the end)`,
    '',
    `messages   sent ${r.messages.sent}  read ${r.messages.read}  lost ${r.messages.lost}  delivered twice ${r.messages.deliveredTwice}  acks ${r.messages.acked}/${r.messages.acksAsked}  wake lines typed ${r.messages.wakeLinesTyped}  held ${r.messages.heldTotal}`,
    `tasks      created ${r.tasks.created} (+${r.tasks.fixtures} stale fixtures, +${r.tasks.byBrain} by the brain)  done ${r.tasks.done}  dead ${r.tasks.dead}  failed ${r.tasks.failed}  queued ${r.tasks.queued}  held ${r.tasks.held}  stranded on a dead agent ${r.tasks.strandedOnDeadAgent}`,
    `           stale fences refused ${r.tasks.staleFenceRefused}  leases expired ${r.tasks.leasesExpired}${r.tasks.createdDespiteError ? `  created although the call failed ${r.tasks.createdDespiteError}` : ''}`,
    `budget     claims refused ${r.budget.claimsRefused} (the agents logged ${r.budget.refusalsLogged})`,
    `recovery   killed ${r.recovery.killed}  back ${r.recovery.recovered}  p50 ${ms(r.recovery.p50Ms)}  p95 ${ms(r.recovery.p95Ms)}  restarts ${r.recovery.restarts}  escalations ${r.recovery.escalations}`,
    `           cascades escalated ${r.recovery.cascadeEscalated}  restarted by the operator ${r.recovery.operatorRestarts}  first starts ${r.recovery.firstStarts}`,
    `daemon     killed ${r.daemon.kills}  restarted ${r.daemon.restarts}`,
    `redis      restarted ${r.redis.restarts}${r.redis.skipped ? `  (skipped ${r.redis.skipped}: no Redis of the run's own; see --redis local)` : ''}`,
    `brain      cycles ${r.brain.cycles}  model calls ${r.brain.modelCalls}  motor ${Object.entries(r.brain.motor).filter(([, n]) => n > 0).map(([k, n]) => `${k} ${n}`).join(', ') || 'none'}`,
    `injected   ${Object.entries(r.injected).map(([k, n]) => `${k} ${n}`).join(', ')}`,
    `load       ${r.load.loadavg.map((l) => l.toFixed(2)).join(' ')} at the end on ${r.load.cpus} CPUs; 1-min load mean ${pct(r.load.load1Mean, '')} max ${pct(r.load.load1Max, '')} (${r.load.samples} samples)`,
    `machine    CPUs busy ${pct(r.load.machineBusyPct)} over the run, ${pct(r.load.machineBusyMaxPct)} in the busiest interval (everything on the machine, not only this run)`,
    `processes  ${r.load.processes.map((p) => `${p.name} ${pct(p.cpuPct)} of a core, RSS ≤ ${p.rssMaxMiB === null ? '—' : `${p.rssMaxMiB} MiB`}`).join('; ') || 'not measured'}`,
    '',
    r.ok ? 'ok: no lost or twice-delivered message, no duplicate claim, nothing stranded, and the Store agrees with the logs' : `FAILED (${r.failures.length}):`,
    ...r.failures.map((x) => `  ${x}`),
  ];
  return lines.join('\n');
}
