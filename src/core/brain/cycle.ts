import { type Caller, requireAdmin } from '../auth/caller.js';
import { systemMessage } from '../bus/service.js';
import type { CheckResult } from '../doctor/checks.js';
import { listBudgets, spentBudgets } from '../economy/budgets.js';
import type { PriceTable } from '../economy/prices.js';
import { type PlanLimits, saveQuotaReading } from '../economy/quota.js';
import { recordUsage } from '../economy/service.js';
import { UsageError } from '../errors.js';
import { newId } from '../ids.js';
import type { SqlLifecycleRepo } from '../lifecycle/sql-lifecycle.js';
import { recall, rememberSystem, type MemoryContext } from '../memory/service.js';
import type { SqlExecutor } from '../store/sql/driver.js';
import type { TaskContext } from '../tasks/service.js';
import { type BreakerOptions, type BreakerSnapshot, CircuitBreaker } from './breaker.js';
import { type ChainAttempt, ChainFailed, ProviderChain } from './chain.js';
import { type Decision, parseDecision } from './decision.js';
import { listGoals } from './goals.js';
import { type MotorOutcome, type MotorVerdict, runMotor } from './motor.js';
import type { DecideResponse, RateLimits } from './provider.js';
import { type ConfiguredProvider, routeEntries, type Tier } from './tiers.js';

/**
 * The brain's cycle (issue 14): perceive → decide → act, once.
 *
 * - perceive: the trigger, the open goals, task counts per squad and the ready board, the agents
 *   with their lifecycle state, budgets and spend, the last cycles and their outcomes, and memory
 *   recalled for the trigger and the top goals; each part bounded, the whole bounded in characters.
 * - decide: one call through the provider chain (routed by tier and price, breakers skipping a
 *   failing provider). The answer is validated (`parseDecision`); an invalid one is retried once
 *   with the validation error, then the cycle is `failed`. Every call's tokens go to the ledger
 *   (source `brain`, agent none) whether its answer was valid or not; the provider's rate-limit
 *   windows go to `quota_readings` (source `api`, agent `brain`).
 * - act: the validated decision goes to the motor, which alone changes anything.
 * - record: a `brain_cycles` row, an engram of kind `cycle`, a message to each coordinator and a
 *   `brain.cycle` event (the last three not for a dry run).
 *
 * A spent `block` or `pause` budget on the project stops the cycle before the model is called:
 * the brain does not spend what the project may not. A spent `downgrade` budget asks the cheap tier.
 */

export const BRAIN_AUTHOR = 'brain';
export const DEFAULT_PROMPT_CHARS = 12_000;
export const DEFAULT_DECISION_TOKENS = 1_024;

/** Why a cycle runs: the events that woke it (a burst, counted by type), a wake request, the timer. */
export interface Trigger {
  kind: 'events' | 'wake' | 'timer' | 'manual';
  /** The events, oldest first, at most `MAX_TRIGGER_EVENTS` kept (the counts cover all). */
  events?: { type: string; at: number; data: Record<string, unknown> }[];
  counts?: Record<string, number>;
  /** The operator's reason for `sos brain wake --reason`. */
  text?: string;
}
export const MAX_TRIGGER_EVENTS = 10;

export interface BrainContext {
  tasks: TaskContext;
  memory?: MemoryContext | undefined;
  lifecycle?: SqlLifecycleRepo | undefined;
  providers: readonly ConfiguredProvider[];
  /** Breakers by provider name, shared by every cycle of this process (and saved for the others). */
  breakers: Map<string, CircuitBreaker>;
  breakerOptions?: BreakerOptions;
  prices: PriceTable;
  tier?: Tier;
  health?: () => Promise<CheckResult[]>;
  planLimits?: PlanLimits;
  quotaMarginMs?: number;
  now?: () => number;
  maxPromptChars?: number;
  maxTokens?: number;
}

export interface CycleRecord {
  id: string;
  project: string;
  trigger: string;
  triggerDetail: Trigger;
  startedAt: number;
  finishedAt: number;
  dryRun: boolean;
  provider: string | null;
  model: string | null;
  decision: Decision | null;
  outcome: MotorOutcome;
  check: string | null;
  reason: string;
  made: MotorVerdict['made'] | null;
  attempts: ChainAttempt[];
  calls: number;
  inputTokens: number;
  outputTokens: number;
  /** Null when a call's model is unpriced. */
  costMicros: number | null;
  promptChars: number;
  engram?: string;
  reportedTo?: string[];
}

const clip = (text: string, n: number) => (text.length > n ? `${text.slice(0, n - 1)}…` : text);
const oneLine = (text: string, n: number) => clip(text.replace(/\s+/g, ' ').trim(), n);

/** A short name for the trigger: `task.completed×20, task.failed`, `wake: <reason>`, `timer`. */
export function triggerName(t: Trigger): string {
  if (t.kind === 'wake') return t.text ? `wake: ${oneLine(t.text, 80)}` : 'wake';
  if (t.kind !== 'events') return t.kind;
  const counts = Object.entries(t.counts ?? {});
  return counts.length ? counts.map(([type, n]) => (n > 1 ? `${type}×${n}` : type)).join(', ') : 'events';
}

// ---------------------------------------------------------------------------------------------
// perceive

const SYSTEM = `You are the coordinator ("brain") of a team of AI agents run by sos on the operator's machine.
Each time you are woken you propose exactly ONE next action, as one decision object:
{action, goal_id, agent, method, details, expected_progress, risk}. Nothing else: no prose.

You act only through these methods; no other method exists and inventing one is refused:
- create_task: a task for the team. details: {title, text?, squad?, requires?: [capability], labels?, priority?: critical|high|normal|low}; agent: the assignee or null.
- research: a research task (same details).
- fix_code: a task that needs the code capability (same details).
- send_message: a message to one agent. details: {to?, text}; or agent: the recipient.
- health_check: run the installation's health checks and report them to the coordinators. details: {}.
- post_content, send_outreach: tasks that wait for a human's approval (same details as create_task).

Rules that the runtime enforces whatever you propose:
- A proposal that mentions a retired directive, serves a goal that is done or dropped, or cleans up
  tasks while a cleanup task is recent or still open is skipped as stale.
- A task whose title matches an open task is not created again.
- Dead, parked, quota-limited and over-budget agents are not targets.
- A spent budget blocks every mutation.
Prefer progress on the highest-priority open goal. Fixture and test tasks are not work.
If nothing needs doing, choose health_check.`;

interface Section {
  title: string;
  lines: string[];
}

async function perceive(ctx: BrainContext, caller: Caller, trigger: Trigger, now: number): Promise<string> {
  const store = ctx.tasks.store;
  const project = caller.project;
  const sections: Section[] = [];

  const why: string[] = [`${triggerName(trigger)} (${new Date(now).toISOString()})`];
  if (trigger.text) why.push(`the operator says: ${oneLine(trigger.text, 300)}`);
  for (const e of (trigger.events ?? []).slice(-MAX_TRIGGER_EVENTS)) why.push(`${e.type} at ${new Date(e.at).toISOString()}: ${clip(JSON.stringify(e.data), 240)}`);
  sections.push({ title: 'Why you woke', lines: why });

  const goals = (await listGoals(store, caller)).slice(0, 10);
  sections.push({ title: 'Open goals (highest priority first)', lines: goals.length ? goals.map((g) => `${g.id} [priority ${g.priority}] ${oneLine(g.text, 240)}`) : ['none'] });

  const counts = await store.sql.all<{ squad: string | null; status: string; n: number | string }>(
    'SELECT squad, status, COUNT(*) AS n FROM tasks WHERE project = $1 GROUP BY squad, status ORDER BY squad, status',
    [project],
  );
  const bySquad = new Map<string, string[]>();
  for (const c of counts) {
    const key = c.squad ?? '(no squad)';
    bySquad.set(key, [...(bySquad.get(key) ?? []), `${c.status} ${Number(c.n)}`]);
  }
  const ready = await store.tasks.readyTop(project, now, 10);
  sections.push({
    title: 'Tasks',
    lines: [
      ...(bySquad.size ? [...bySquad].slice(0, 20).map(([squad, parts]) => `${squad}: ${parts.join(', ')}`) : ['no tasks']),
      ...(ready.length ? ['ready board (top 10):'] : []),
      ...ready.map((t) => `  ${t.id} [${t.priority}] "${oneLine(t.title, 120)}"${t.requires.length ? ` requires ${t.requires.join(',')}` : ''}${t.assignee ? ` for ${t.assignee}` : ''}${t.squad ? ` squad ${t.squad}` : ''}`),
    ],
  });

  const agents = (await store.agents.list(project)).slice(0, 40);
  const states = new Map((await ctx.lifecycle?.list(project))?.map((s) => [s.agent, s]) ?? []);
  sections.push({
    title: 'Agents',
    lines: agents.length
      ? agents.map((a) => {
          const s = states.get(a.name);
          const state = s ? `${s.state} since ${new Date(s.since).toISOString()}` : 'state unknown';
          return `${a.name} (${a.role}, ${a.kind}${a.capabilities.length ? `, can ${a.capabilities.join(',')}` : ''}): ${state}`;
        })
      : ['none'],
  });

  const budgets = await listBudgets(store, caller, now);
  sections.push({
    title: 'Budgets',
    lines: budgets.length ? budgets.map((b) => `${b.scope}: spent ${b.spent} of ${b.limit} ${b.unit} this ${b.period}, action ${b.action}, ${b.state}`) : ['none'],
  });

  const cycles = await store.sql.all<{ id: string; started_at: number | string; trigger: string; outcome: string; reason: string; decision: string | null }>(
    'SELECT id, started_at, trigger, outcome, reason, decision FROM brain_cycles WHERE project = $1 AND dry_run = 0 ORDER BY started_at DESC, id DESC LIMIT 5',
    [project],
  );
  sections.push({
    title: 'Your last cycles (newest first)',
    lines: cycles.length
      ? cycles.map((c) => {
          const d = c.decision ? (JSON.parse(c.decision) as Decision) : null;
          return `${new Date(Number(c.started_at)).toISOString()} ${d ? d.method : '-'} → ${c.outcome}: ${oneLine(c.reason, 160)}`;
        })
      : ['none'],
  });

  if (ctx.memory) {
    const query = [triggerName(trigger), trigger.text ?? '', ...goals.slice(0, 3).map((g) => g.text)].join('\n').trim();
    const found = query ? await recall(ctx.memory, caller, { query: clip(query, 2_000), limit: 5 }).catch(() => []) : [];
    sections.push({ title: 'Memory', lines: found.length ? found.map((r) => `[${r.engram.kind}] ${oneLine(r.engram.text, 240)}`) : ['nothing relevant'] });
  }

  const limit = ctx.maxPromptChars ?? DEFAULT_PROMPT_CHARS;
  let text = sections.map((s) => `# ${s.title}\n${s.lines.join('\n')}`).join('\n\n');
  if (text.length > limit) text = `${text.slice(0, limit - 40)}\n… (the rest was cut to fit)`;
  return text;
}

// ---------------------------------------------------------------------------------------------
// breakers shared through the Store

async function loadBreakers(db: SqlExecutor, ctx: BrainContext): Promise<void> {
  const names = [...new Set(ctx.providers.map((p) => p.provider.name))];
  for (const name of names) if (!ctx.breakers.has(name)) ctx.breakers.set(name, new CircuitBreaker(name, ctx.breakerOptions));
  if (!names.length) return;
  const rows = await db.all<{ name: string; snapshot: string; updated_at: number | string }>(
    `SELECT name, snapshot, updated_at FROM brain_breakers WHERE name IN (${names.map((_, i) => `$${i + 1}`).join(', ')})`,
    names,
  );
  for (const row of rows) {
    const breaker = ctx.breakers.get(row.name)!;
    const seen = synced.get(breaker) ?? -1;
    if (Number(row.updated_at) <= seen) continue;
    breaker.restore(JSON.parse(row.snapshot) as BreakerSnapshot);
    synced.set(breaker, Number(row.updated_at));
  }
}

const synced = new WeakMap<CircuitBreaker, number>();

async function saveBreakers(db: SqlExecutor, ctx: BrainContext, at: number): Promise<void> {
  for (const name of new Set(ctx.providers.map((p) => p.provider.name))) {
    const breaker = ctx.breakers.get(name)!;
    await db.run(
      `INSERT INTO brain_breakers (name, snapshot, updated_at) VALUES ($1, $2, $3)
       ON CONFLICT (name) DO UPDATE SET snapshot = excluded.snapshot, updated_at = excluded.updated_at`,
      [name, JSON.stringify(breaker.snapshot()), at],
    );
    synced.set(breaker, at);
  }
}

/** The saved breaker of each provider name (what `sos brain status` shows outside the daemon). */
export async function savedBreakers(db: SqlExecutor): Promise<(BreakerSnapshot & { updatedAt: number })[]> {
  const rows = await db.all<{ snapshot: string; updated_at: number | string }>('SELECT snapshot, updated_at FROM brain_breakers ORDER BY name');
  const now = Date.now();
  return rows.map((r) => {
    const s = JSON.parse(r.snapshot) as BreakerSnapshot;
    // An open breaker whose cool-down has passed lets the next call probe: it reads half-open.
    const state = s.state === 'open' && s.probeAt !== null && s.probeAt <= now ? 'half-open' : s.state;
    return { ...s, state, updatedAt: Number(r.updated_at) };
  });
}

// ---------------------------------------------------------------------------------------------
// the cycle

async function saveRateLimits(ctx: BrainContext, project: string, limits: RateLimits | undefined, at: number): Promise<void> {
  if (!limits) return;
  for (const [key, window, minutes] of [
    ['fiveHour', 'five_hour', 300],
    ['sevenDay', 'seven_day', 10_080],
  ] as const) {
    const w = limits[key];
    if (w) await saveQuotaReading(ctx.tasks.store.sql, { project, agent: BRAIN_AUTHOR, window, source: 'api', usedPercent: w.usedPercent, windowMinutes: minutes, resetsAt: w.resetsAt, observedAt: at });
  }
}

/**
 * Runs one cycle for the caller's project (the operator, or an admin) and returns its record.
 * With `dryRun`, the model is asked and the motor judges, but nothing is executed, reported or
 * remembered; the cycle is still recorded (marked dry run), since its model call was spent.
 */
export async function runCycle(ctx: BrainContext, caller: Caller, input: { trigger: Trigger; dryRun?: boolean; signal?: AbortSignal }): Promise<CycleRecord> {
  await requireAdmin(ctx.tasks.store, caller, 'running the brain');
  if (!ctx.providers.length) throw new UsageError('the brain has no provider', { hint: 'set SOS_BRAIN_PROVIDER (anthropic, openai or claude-cli), with SOS_BRAIN_MODEL, SOS_BRAIN_URL and SOS_BRAIN_KEY as it needs' });
  const clock = ctx.now ?? Date.now;
  const startedAt = clock();
  const store = ctx.tasks.store;
  const project = caller.project;
  const dryRun = input.dryRun === true;
  const record: CycleRecord = {
    id: newId('cyc', startedAt),
    project,
    trigger: triggerName(input.trigger),
    triggerDetail: input.trigger,
    startedAt,
    finishedAt: startedAt,
    dryRun,
    provider: null,
    model: null,
    decision: null,
    outcome: 'failed',
    check: null,
    reason: '',
    made: null,
    attempts: [],
    calls: 0,
    inputTokens: 0,
    outputTokens: 0,
    costMicros: 0,
    promptChars: 0,
  };

  const spent = await spentBudgets(store.sql, project, startedAt);
  const stop = spent.find((b) => b.scope === 'project' && (b.action === 'block' || b.action === 'pause'));
  if (stop) {
    record.outcome = 'blocked_budget';
    record.check = 'budget';
    record.reason = `the project budget is spent (action ${stop.action}): the model was not called`;
    await store.counters.add(project, 'motor_blocked_budget');
    return finish(ctx, caller, record, clock);
  }
  const downgraded = spent.some((b) => b.scope === 'project' && b.action === 'downgrade');
  const tier: Tier = downgraded ? 'cheap' : (ctx.tier ?? 'standard');

  const prompt = await perceive(ctx, caller, input.trigger, startedAt);
  record.promptChars = prompt.length;
  await loadBreakers(store.sql, ctx);
  const chain = new ProviderChain(routeEntries(ctx.providers, tier, ctx.prices), { breakers: ctx.breakers, ...(ctx.now ? { now: ctx.now } : {}) });

  let decision: Decision | null = null;
  let retryError: string | undefined;
  try {
    for (let attempt = 1; attempt <= 2 && decision === null; attempt++) {
      let answer;
      try {
        answer = await chain.decide({
          system: SYSTEM,
          prompt,
          maxTokens: ctx.maxTokens ?? DEFAULT_DECISION_TOKENS,
          ...(retryError ? { retryError } : {}),
          ...(input.signal ? { signal: input.signal } : {}),
        });
      } finally {
        await saveBreakers(store.sql, ctx, clock());
      }
      record.attempts.push(...(answer?.attempts ?? []));
      record.provider = answer.entry.provider.name;
      record.model = answer.response.model || answer.entry.model;
      await account(ctx, caller, record, answer.entry.provider.kind, answer.response, attempt);
      const parsed = parseDecision(answer.response.raw ?? answer.response.text);
      if (parsed.ok) decision = parsed.decision;
      else {
        retryError = parsed.error;
        await store.counters.add(project, 'brain_decisions_invalid');
      }
    }
  } catch (err) {
    if (err instanceof ChainFailed) record.attempts.push(...err.attempts);
    record.outcome = 'failed';
    record.check = 'provider';
    record.reason = `no decision: ${err instanceof Error ? err.message : String(err)}`;
    await store.counters.add(project, 'motor_failed');
    return finish(ctx, caller, record, clock);
  }
  if (decision === null) {
    record.outcome = 'failed';
    record.check = 'schema';
    record.reason = `no valid decision after a retry: ${retryError}`;
    await store.counters.add(project, 'motor_failed');
    return finish(ctx, caller, record, clock);
  }

  record.decision = decision;
  const verdict = await runMotor(
    {
      tasks: ctx.tasks,
      ...(ctx.lifecycle ? { lifecycle: ctx.lifecycle } : {}),
      ...(ctx.health ? { health: ctx.health } : {}),
      ...(ctx.planLimits ? { planLimits: ctx.planLimits } : {}),
      ...(ctx.quotaMarginMs !== undefined ? { quotaMarginMs: ctx.quotaMarginMs } : {}),
      ...(ctx.now ? { now: ctx.now } : {}),
    },
    caller,
    record.id,
    { method: decision.method, agent: decision.agent, goal_id: decision.goal_id, details: decision.details },
    { dryRun },
  );
  record.outcome = verdict.outcome;
  record.check = verdict.check;
  record.reason = verdict.reason;
  record.made = verdict.made ?? null;
  return finish(ctx, caller, record, clock);
}

/** Records one model call in the ledger and its rate-limit windows; adds it to the cycle's sums. */
async function account(ctx: BrainContext, caller: Caller, record: CycleRecord, kind: string, response: DecideResponse, attempt: number): Promise<void> {
  const u = response.usage;
  const result = await recordUsage(
    ctx.tasks.store,
    caller,
    {
      model: record.model ?? 'unknown',
      ...(kind === 'claude-cli' ? {} : { provider: kind }),
      inputTokens: u.inputTokens,
      outputTokens: u.outputTokens,
      cacheWriteTokens: u.cacheWriteTokens,
      cacheWrite1hTokens: u.cacheWrite1hTokens,
      cacheReadTokens: u.cacheReadTokens,
      agent: null,
      task: null,
      source: 'brain',
      sourceKey: `${record.id}:${attempt}`,
    },
    { prices: ctx.prices, ...(ctx.now ? { now: ctx.now } : {}) },
  );
  record.calls += 1;
  record.inputTokens += u.inputTokens + u.cacheReadTokens + u.cacheWriteTokens + u.cacheWrite1hTokens;
  record.outputTokens += u.outputTokens;
  record.costMicros = record.costMicros === null || result.costMicros === null ? null : record.costMicros + result.costMicros;
  await saveRateLimits(ctx, caller.project, response.rateLimits, ctx.now?.() ?? Date.now());
}

async function finish(ctx: BrainContext, caller: Caller, record: CycleRecord, clock: () => number): Promise<CycleRecord> {
  const store = ctx.tasks.store;
  record.finishedAt = clock();
  await store.sql.run(
    `INSERT INTO brain_cycles (project, id, trigger, trigger_detail, started_at, finished_at, dry_run, provider, model, decision, outcome, motor_check, reason, made, attempts, calls, input_tokens, output_tokens, cost_micros)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)`,
    [
      record.project,
      record.id,
      record.trigger,
      JSON.stringify(record.triggerDetail),
      record.startedAt,
      record.finishedAt,
      record.dryRun ? 1 : 0,
      record.provider,
      record.model,
      record.decision ? JSON.stringify(record.decision) : null,
      record.outcome,
      record.check,
      clip(record.reason, 2_000),
      record.made ? JSON.stringify(record.made) : null,
      JSON.stringify(record.attempts),
      record.calls,
      record.inputTokens,
      record.outputTokens,
      record.costMicros,
    ],
  );
  await store.counters.add(record.project, record.dryRun ? 'brain_dry_runs' : 'brain_cycles');
  if (record.dryRun) return record;

  const d = record.decision;
  const summary = `brain cycle ${record.id} (${record.trigger}): ${d ? `${d.method}${d.agent ? ` for ${d.agent}` : ''}: ${oneLine(d.action, 200)}` : 'no decision'} → ${record.outcome}: ${oneLine(record.reason, 300)}`;
  if (ctx.memory) {
    // The cycle's engram is its memory, not its effect: an embedder failure does not undo the cycle.
    const engram = await rememberSystem(ctx.memory, record.project, { author: BRAIN_AUTHOR, kind: 'cycle', text: summary, tags: ['brain', record.outcome.replace(/_/g, '-')] }).catch(() => undefined);
    if (engram !== undefined) record.engram = engram;
  }
  const coordinators = (await store.agents.list(record.project)).filter((a) => a.role === 'coordinator').map((a) => a.name);
  for (const to of coordinators) {
    await systemMessage(ctx.tasks, record.project, { from: BRAIN_AUTHOR, to, type: 'text', text: summary, priority: 'normal', at: record.finishedAt, idempotencyKey: `brain:${record.id}:report:${to}` });
  }
  record.reportedTo = coordinators;
  await ctx.tasks.bus.emit(
    record.project,
    'brain.cycle',
    { id: record.id, trigger: record.trigger, method: d?.method ?? null, agent: d?.agent ?? null, outcome: record.outcome, reason: clip(record.reason, 300), costMicros: record.costMicros },
    record.finishedAt,
  );
  return record;
}

// ---------------------------------------------------------------------------------------------
// reading cycles back

interface CycleRow {
  project: string;
  id: string;
  trigger: string;
  trigger_detail: string | null;
  started_at: number | string;
  finished_at: number | string;
  dry_run: number | string;
  provider: string | null;
  model: string | null;
  decision: string | null;
  outcome: MotorOutcome;
  motor_check: string | null;
  reason: string;
  made: string | null;
  attempts: string | null;
  calls: number | string;
  input_tokens: number | string;
  output_tokens: number | string;
  cost_micros: number | string | null;
}

const cycleOf = (r: CycleRow): CycleRecord => ({
  id: r.id,
  project: r.project,
  trigger: r.trigger,
  triggerDetail: r.trigger_detail ? (JSON.parse(r.trigger_detail) as Trigger) : { kind: 'manual' },
  startedAt: Number(r.started_at),
  finishedAt: Number(r.finished_at),
  dryRun: Number(r.dry_run) === 1,
  provider: r.provider,
  model: r.model,
  decision: r.decision ? (JSON.parse(r.decision) as Decision) : null,
  outcome: r.outcome,
  check: r.motor_check,
  reason: r.reason,
  made: r.made ? (JSON.parse(r.made) as MotorVerdict['made']) : null,
  attempts: r.attempts ? (JSON.parse(r.attempts) as ChainAttempt[]) : [],
  calls: Number(r.calls),
  inputTokens: Number(r.input_tokens),
  outputTokens: Number(r.output_tokens),
  costMicros: r.cost_micros === null ? null : Number(r.cost_micros),
  promptChars: 0,
});

/** The project's cycles, newest first. */
export async function listCycles(ctx: Pick<TaskContext, 'store'>, caller: Caller, filter: { since?: number; outcome?: string; limit?: number; dryRuns?: boolean } = {}): Promise<CycleRecord[]> {
  const limit = filter.limit ?? 50;
  if (!Number.isInteger(limit) || limit < 1 || limit > 1_000) throw new UsageError('--limit must be a whole number from 1 to 1000');
  const where = ['project = $1'];
  const params: unknown[] = [caller.project];
  if (filter.since !== undefined) where.push(`started_at >= $${params.push(filter.since)}`);
  if (filter.outcome !== undefined) where.push(`outcome = $${params.push(filter.outcome)}`);
  if (filter.dryRuns !== true) where.push('dry_run = 0');
  const rows = await ctx.store.sql.all<CycleRow>(`SELECT * FROM brain_cycles WHERE ${where.join(' AND ')} ORDER BY started_at DESC, id DESC LIMIT ${limit}`, params);
  return rows.map(cycleOf);
}

/** Cycles per outcome, and the brain's spend, over the project's history (dry runs apart). */
export async function cycleSummary(ctx: Pick<TaskContext, 'store'>, caller: Caller): Promise<{ cycles: number; byOutcome: Record<string, number>; lastAt: number | null; costMicros: number; dryRuns: number }> {
  const rows = await ctx.store.sql.all<{ outcome: string; dry_run: number | string; n: number | string; last: number | string | null; cost: number | string | null }>(
    'SELECT outcome, dry_run, COUNT(*) AS n, MAX(started_at) AS last, SUM(cost_micros) AS cost FROM brain_cycles WHERE project = $1 GROUP BY outcome, dry_run',
    [caller.project],
  );
  const byOutcome: Record<string, number> = {};
  let cycles = 0;
  let dryRuns = 0;
  let lastAt: number | null = null;
  let costMicros = 0;
  for (const r of rows) {
    costMicros += Number(r.cost ?? 0);
    if (Number(r.dry_run) === 1) {
      dryRuns += Number(r.n);
      continue;
    }
    byOutcome[r.outcome] = Number(r.n);
    cycles += Number(r.n);
    if (r.last !== null) lastAt = Math.max(lastAt ?? 0, Number(r.last));
  }
  return { cycles, byOutcome, lastAt, costMicros, dryRuns };
}
