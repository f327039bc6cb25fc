import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { type Caller, deny, isAdmin, requireAdmin } from '../auth/caller.js';
import { NotFound, UsageError } from '../errors.js';
import { newId } from '../ids.js';
import { NAME_PATTERN } from '../names.js';
import { quote } from '../safe-text.js';
import type { Store } from '../store/port.js';
import type { SqlExecutor } from '../store/sql/driver.js';
import { MAX_MOMENT_MS } from '../time.js';
import { addSpend, type BudgetCrossing, rebuildSpend, spendBook } from './budgets.js';
import { builtinPrices, priceEvent, type PriceTable } from './prices.js';
import { type NewUsageEvent, RollupDelta, SqlUsageRepo } from './sql-usage.js';
import {
  type RecomputeResult,
  type RecordResult,
  REPORT_DIMENSIONS,
  type ReportFilter,
  USAGE_SOURCES,
  type UsageEvent,
  type UsageInput,
  type UsageReport,
} from './types.js';

/**
 * The ledger service: every source (importers, `sos usage record`, the MCP tool, the brain) goes
 * through `recordUsage`/`recordMany`, which validate, attribute (agent, task), price and insert
 * idempotently. Reports and recompute read and write only the caller's project.
 */

export interface EconomyOptions {
  /** The price table in force (`loadPrices(SOS_PRICES)`); default the built-in one. */
  prices?: PriceTable;
  now?: () => number;
  /** Told, after the batch commits, of each budget threshold it crossed (once per crossing). */
  crossed?: (crossings: BudgetCrossing[]) => void | Promise<void>;
  /** Runs last inside the batch's transaction (an importer saves its file offsets there). */
  inTransaction?: (tx: SqlExecutor) => Promise<void>;
}

/** Largest token count of one kind in one event (far above any single call or turn). */
export const MAX_TOKENS = 1_000_000_000;
/** Most events in one `recordMany` batch (one transaction). */
export const MAX_BATCH = 10_000;

const tokens = (what: string) =>
  z
    .number({ error: `${what} must be a number` })
    .int(`${what} must be a whole number`)
    .min(0, `${what} must be 0 or more`)
    .max(MAX_TOKENS, `${what} is at most ${MAX_TOKENS.toLocaleString('en-US')}`);

const printable = (what: string, max: number) =>
  z
    .string()
    .min(1, `${what} is empty`)
    .max(max, `${what} is at most ${max} characters`)
    .regex(/^[\x21-\x7e]+$/, `${what} is printable characters without spaces`);

const optionalText = (what: string, max: number) =>
  z
    .string()
    .max(max, `${what} is at most ${max} characters`)
    .refine((v) => !v.includes('\0'), `${what} contains a NUL character`)
    .nullable()
    .optional();

const TASK_ID = /^tsk_[0-9a-z]{26}$/;

const usageInput = z.strictObject({
  model: printable('the model', 200),
  provider: z
    .string()
    .regex(/^[a-z0-9][a-z0-9._-]{0,39}$/, 'the provider is lowercase letters, digits, . _ or -, at most 40')
    .optional(),
  inputTokens: tokens('input tokens'),
  outputTokens: tokens('output tokens'),
  cacheWriteTokens: tokens('cache-write tokens').optional(),
  cacheWrite1hTokens: tokens('1-hour cache-write tokens').optional(),
  cacheReadTokens: tokens('cache-read tokens').optional(),
  reasoningTokens: tokens('reasoning tokens').optional(),
  agent: z.string().regex(NAME_PATTERN, 'an agent name is lowercase letters, digits and -, starting with a letter').nullable().optional(),
  task: z.string().regex(TASK_ID, 'a task id is tsk_ followed by 26 characters').nullable().optional(),
  source: z.enum(USAGE_SOURCES).optional(),
  sourceKey: printable('the source key', 300).optional(),
  sourceFile: optionalText('the source file', 4096),
  sessionId: optionalText('the session id', 200),
  occurredAt: z
    .number()
    .int('the time must be whole milliseconds')
    .min(0, 'the time is after 1970')
    .max(MAX_MOMENT_MS, 'the time is before the year 10000')
    .optional(),
});

/** The first zod issue as a usage error that names the field (and, in a batch, the event). */
function invalid(error: z.ZodError, where: string): UsageError {
  const issue = error.issues[0]!;
  const field = issue.path.map(String).join('.');
  return new UsageError(`invalid usage event: ${where}${field ? `${field}: ` : ''}${issue.message}`);
}

type Parsed = z.infer<typeof usageInput> & { source: (typeof USAGE_SOURCES)[number] };

/**
 * Validates events without writing anything: the first bad one is a usage error naming it
 * (`event 3: inputTokens: …`, or `line 3: …` with `label` 'line') and the field.
 */
export function checkUsage(events: readonly unknown[], label = 'event'): Parsed[] {
  return events.map((e, i) => {
    const where = `${label} ${i + 1}: `;
    const r = usageInput.safeParse(e);
    if (!r.success) throw invalid(r.error, where);
    const source = r.data.source ?? 'report';
    if (source !== 'report' && r.data.sourceKey === undefined) {
      throw new UsageError(`invalid usage event: ${where}sourceKey: a ${source} event needs its source key`);
    }
    return { ...r.data, source };
  });
}

const repoOf = (store: Store) => new SqlUsageRepo(store.sql);

/** Records one usage event. See `recordMany`. */
export async function recordUsage(store: Store, caller: Caller, event: UsageInput, options: EconomyOptions = {}): Promise<RecordResult> {
  try {
    return (await recordMany(store, caller, [event], options))[0]!;
  } catch (err) {
    // One event: its errors need no "event 1:".
    if (err instanceof UsageError && err.message.startsWith('invalid usage event: event 1: ')) {
      throw new UsageError(err.message.replace('event 1: ', ''), { cause: err });
    }
    throw err;
  }
}

/**
 * Records a batch in one transaction: every event is validated first (any bad one refuses the
 * whole batch and writes nothing), then attributed and priced, then inserted with
 * `ON CONFLICT DO NOTHING` on (project, source, source key), so a repeat is `duplicate: true`
 * and counts once however many importers race. The new events' sums go into the report rollups
 * (`addToRollups`) and their cost or tokens into the budgets (`addSpend`) in the same transaction.
 *
 * Attribution: the agent defaults to the caller's; recording for another agent (or for none)
 * needs an admin token or the operator. A task must exist in the caller's project; without one,
 * the event goes to the task the agent holds a claim on at that moment when there is exactly one.
 */
export async function recordMany(store: Store, caller: Caller, events: readonly UsageInput[], options: EconomyOptions = {}): Promise<RecordResult[]> {
  if (events.length > MAX_BATCH) throw new UsageError(`at most ${MAX_BATCH} usage events in one batch; got ${events.length}`);
  const parsed = checkUsage(events);
  if (caller.role === 'observer') await deny(store, caller, 'recording usage', 'is not allowed with an observer token');
  for (const e of parsed) {
    if (e.agent !== undefined && e.agent !== caller.agent && !isAdmin(caller)) {
      await requireAdmin(store, caller, e.agent === null ? 'recording usage for no agent' : `recording usage for agent "${e.agent}"`);
    }
  }
  const prices = options.prices ?? builtinPrices();
  const now = (options.now ?? Date.now)();
  const repo = repoOf(store);
  const crossings: BudgetCrossing[] = [];
  const results = await repo.transaction(async (tx) => {
    const book = await spendBook(tx, caller.project);
    const held = new Map<string, string | null>();
    const heldTask = async (agent: string): Promise<string | null> => {
      if (!held.has(agent)) {
        const ids = await repo.heldTasks(tx, caller.project, agent);
        held.set(agent, ids.length === 1 ? ids[0]! : null);
      }
      return held.get(agent)!;
    };
    const known = new Set<string>();
    const rollup = new RollupDelta();
    const results: (RecordResult & { counts: Counted; inserted: NewUsageEvent })[] = [];
    for (const e of parsed) {
      const agent = e.agent === undefined ? caller.agent : e.agent;
      let task: string | null;
      if (e.task === undefined) task = agent === null ? null : await heldTask(agent);
      else task = e.task;
      if (task !== null && e.task !== undefined && !known.has(task)) {
        if (!(await repo.taskExists(tx, caller.project, task))) throw new NotFound(`task ${task} does not exist in project "${caller.project}"`);
        known.add(task);
      }
      const result = await insertOne(repo, tx, caller, e, agent, task, prices, now);
      results.push(result);
      if (!result.duplicate) rollup.add(result.inserted);
      if (!result.duplicate && book.budgets.length > 0) {
        crossings.push(...(await addSpend(tx, book, caller.project, { ...result.counts, agent: result.agent, task: result.task, costMicros: result.costMicros }, now)));
      }
    }
    await repo.addToRollups(tx, caller.project, rollup);
    await options.inTransaction?.(tx);
    return results;
  });
  if (crossings.length > 0) await options.crossed?.(crossings);
  return results.map(({ counts: _counts, inserted: _inserted, ...r }) => r);
}

async function insertOne(
  repo: SqlUsageRepo,
  tx: SqlExecutor,
  caller: Caller,
  e: Parsed,
  agent: string | null,
  task: string | null,
  prices: PriceTable,
  now: number,
): Promise<RecordResult & { counts: Counted; inserted: NewUsageEvent }> {
  const counts = {
    inputTokens: e.inputTokens,
    outputTokens: e.outputTokens,
    cacheWriteTokens: e.cacheWriteTokens ?? 0,
    cacheWrite1hTokens: e.cacheWrite1hTokens ?? 0,
    cacheReadTokens: e.cacheReadTokens ?? 0,
  };
  const priced = priceEvent(prices, e.model, counts);
  const inserted: NewUsageEvent = {
    id: newId('use', now),
    project: caller.project,
    agent,
    task,
    provider: e.provider ?? priced.provider ?? 'unknown',
    model: e.model,
    ...counts,
    reasoningTokens: e.reasoningTokens ?? 0,
    costMicros: priced.costMicros,
    priceVersion: priced.priceVersion,
    source: e.source,
    sourceFile: e.sourceFile ?? null,
    sessionId: e.sessionId ?? null,
    sourceKey: e.sourceKey ?? randomUUID(),
    occurredAt: e.occurredAt ?? now,
    recordedAt: now,
  };
  const stored = await repo.insert(tx, inserted);
  return {
    id: stored.id,
    duplicate: stored.duplicate,
    costMicros: stored.costMicros,
    agent: stored.agent,
    task: stored.task,
    model: e.model,
    counts: { ...counts, occurredAt: e.occurredAt ?? now },
    inserted,
  };
}

interface Counted {
  inputTokens: number;
  outputTokens: number;
  cacheWriteTokens: number;
  cacheWrite1hTokens: number;
  cacheReadTokens: number;
  occurredAt: number;
}

/**
 * Token and cost sums of the caller's project grouped by one dimension, with the overall total,
 * the unpriced events per model and the cost per completed task. Read from the rollups (whole
 * UTC days) and, for a --since/--until inside a day, that day's events: the same sums as the
 * ledger's.
 */
export async function usageReport(store: Store, caller: Caller, filter: ReportFilter = {}): Promise<UsageReport> {
  const by = filter.by ?? 'agent';
  if (!REPORT_DIMENSIONS.includes(by)) throw new UsageError(`invalid --by ${quote(by)}: use ${REPORT_DIMENSIONS.join(', ')}`);
  if (filter.since !== undefined && filter.until !== undefined && filter.since >= filter.until) {
    throw new UsageError('--since must be before --until');
  }
  if (filter.agent !== undefined && !NAME_PATTERN.test(filter.agent)) throw new UsageError(`invalid agent name ${quote(filter.agent)}`);
  const { rows, total, unknownModels, completedTasks: done } = await repoOf(store).report(caller.project, by, filter);
  return {
    by,
    since: filter.since ?? null,
    until: filter.until ?? null,
    agent: filter.agent ?? null,
    rows,
    total,
    unknownModels,
    completedTasks: done.tasks,
    completedTaskCostMicros: done.costMicros,
    costPerCompletedTaskMicros: done.tasks === 0 ? null : Math.round(done.costMicros / done.tasks),
  };
}

const RECOMPUTE_PAGE = 500;

/**
 * Re-prices every event of the caller's project with the table in force (after a price change
 * or an SOS_PRICES overlay): admins and the operator only. Each page of events is updated in one
 * transaction, with the rollups' costs; returns how many events changed cost or price version.
 */
export async function recompute(store: Store, caller: Caller, options: EconomyOptions = {}): Promise<RecomputeResult> {
  await requireAdmin(store, caller, 're-pricing the usage ledger');
  const prices = options.prices ?? builtinPrices();
  const repo = repoOf(store);
  let after = '';
  let events = 0;
  let changed = 0;
  let unknown = 0;
  for (;;) {
    const page = await repo.page(caller.project, after, RECOMPUTE_PAGE);
    if (page.length === 0) break;
    const updates: { event: UsageEvent; costMicros: number | null; priceVersion: string | null }[] = [];
    for (const e of page) {
      const priced = priceEvent(prices, e.model, e);
      if (priced.costMicros === null) unknown++;
      if (priced.costMicros !== e.costMicros || priced.priceVersion !== e.priceVersion) updates.push({ event: e, ...priced });
    }
    // The page's new costs and the rollups' sums move together.
    if (updates.length > 0) changed += await repo.transaction((tx) => repo.reprice(tx, caller.project, updates));
    events += page.length;
    after = page.at(-1)!.id;
  }
  // Dollar budgets follow the new prices.
  if (changed > 0) await store.sql.transaction((tx) => rebuildSpend(tx, caller.project, (options.now ?? Date.now)()));
  return { events, changed, unknown, priceVersion: prices.version };
}
