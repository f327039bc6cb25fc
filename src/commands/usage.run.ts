import { type ImportSource, importTranscripts } from '../core/economy/import.js';
import { loadPrices, type PriceTable } from '../core/economy/prices.js';
import { checkUsage, recompute as recomputeLedger, recordUsage, usageReport } from '../core/economy/service.js';
import type { ReportDimension, UsageReport, UsageRow } from '../core/economy/types.js';
import { UsageError } from '../core/errors.js';
import { parseMoment } from '../core/time.js';
import { int, opt, readStdin, str } from './args.js';
import type { Invocation, Output } from './define.js';
import { fields, iso } from './format.js';
import { dollars } from '../core/economy/format.js';
import type { BudgetCrossing } from '../core/economy/budgets.js';
import { loadConfig, type Session, withSession } from './session.js';

/** The price table in force; a bad SOS_PRICES file fails here, before the database is opened. */
async function pricesOf(inv: Invocation): Promise<PriceTable> {
  return loadPrices((await loadConfig(inv)).values.prices);
}

const count = (n: number) => n.toLocaleString('en-US');

/** Columns aligned, numbers to the right. */
function grid(headers: readonly string[], rows: readonly (readonly string[])[], numeric: readonly boolean[]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => (numeric[i] ? c.padStart(widths[i]!) : i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(headers.map((h) => h.toUpperCase())), ...rows.map(line)].join('\n');
}

const HEADINGS: Record<ReportDimension, string> = { agent: 'agent', model: 'model', project: 'project', task: 'task', squad: 'squad', day: 'day' };

function cells(row: UsageRow, unpriced: boolean): string[] {
  const out = [
    row.key,
    count(row.events),
    count(row.inputTokens),
    count(row.outputTokens),
    count(row.cacheWriteTokens + row.cacheWrite1hTokens),
    count(row.cacheReadTokens),
    count(row.reasoningTokens),
    row.costMicros === null ? 'unknown' : dollars(row.costMicros),
  ];
  return unpriced ? [...out, count(row.unknownCostEvents)] : out;
}

function reportText(r: UsageReport): string {
  if (r.total.events === 0) return 'no usage recorded' + (r.since !== null || r.until !== null || r.agent !== null ? ' that matches' : '');
  // UNPRICED (events of models the table lacks, not in COST) only when there are some.
  const unpriced = r.total.unknownCostEvents > 0;
  const headers = [HEADINGS[r.by], 'events', 'input', 'output', 'cache write', 'cache read', 'reasoning', 'cost', ...(unpriced ? ['unpriced'] : [])];
  const numeric = headers.map((_, i) => i > 0);
  const lines = [grid(headers, [...r.rows.map((row) => cells(row, unpriced)), cells(r.total, unpriced)], numeric)];
  if (r.by === 'squad') lines.push('(an agent counts in each squad it is in; rows may overlap)');
  for (const u of r.unknownModels) lines.push(`cost: unknown for ${count(u.events)} event${u.events === 1 ? '' : 's'} of model ${u.model}`);
  if (r.costPerCompletedTaskMicros !== null) {
    lines.push(`cost per completed task: ${dollars(r.costPerCompletedTaskMicros)} (${count(r.completedTasks)} done task${r.completedTasks === 1 ? '' : 's'}, ${dollars(r.completedTaskCostMicros)})`);
  }
  return lines.join('\n');
}

function rowView(row: UsageRow) {
  return {
    key: row.key,
    events: row.events,
    inputTokens: row.inputTokens,
    outputTokens: row.outputTokens,
    cacheWriteTokens: row.cacheWriteTokens,
    cacheWrite1hTokens: row.cacheWrite1hTokens,
    cacheReadTokens: row.cacheReadTokens,
    reasoningTokens: row.reasoningTokens,
    costMicros: row.costMicros,
    unknownCostEvents: row.unknownCostEvents,
  };
}

/** The `--json` shape of a report (stable; money in integer micro-dollars). */
export function reportView(r: UsageReport) {
  return {
    by: r.by,
    since: iso(r.since),
    until: iso(r.until),
    agent: r.agent,
    rows: r.rows.map(rowView),
    total: rowView(r.total),
    unknownModels: r.unknownModels,
    completedTasks: r.completedTasks,
    completedTaskCostMicros: r.completedTaskCostMicros,
    costPerCompletedTaskMicros: r.costPerCompletedTaskMicros,
  };
}

export async function report(inv: Invocation): Promise<Output> {
  const o = inv.options;
  const now = Date.now();
  const since = str(o.since);
  const until = str(o.until);
  const filter = {
    ...opt('by', str(o.by) as ReportDimension | undefined),
    ...opt('since', since === undefined ? undefined : parseMoment(since, '--since', now, 'ago')),
    ...opt('until', until === undefined ? undefined : parseMoment(until, '--until', now, 'ago')),
    ...opt('agent', str(o.agent)),
  };
  return withSession(inv, async ({ store, caller }) => {
    const r = await usageReport(store, caller, filter);
    return { data: reportView(r), human: reportText(r), quiet: r.total.costMicros === null ? 'unknown' : String(r.total.costMicros) };
  });
}

function required(inv: Invocation, flag: string, key: string): number {
  const value = int(inv.options[key], flag);
  if (value === undefined) throw new UsageError(`${flag} <n> is required`);
  return value;
}

const EVENT_FLAGS = ['model', 'input', 'output', 'cacheRead', 'cacheWrite', 'cacheWrite1h', 'reasoning', 'provider', 'task', 'key', 'at'];

/**
 * `--stdin`: one JSON event per line (`{"model": "gpt-5", "inputTokens": 10, "outputTokens": 2,
 * "sourceKey": "…"}`, the fields of recordUsage). Every line is checked before anything is
 * written; then each is recorded in its own transaction (a long stream never holds the write lock).
 */
async function recordLines(inv: Invocation): Promise<Output> {
  const given = EVENT_FLAGS.filter((f) => inv.options[f] !== undefined);
  if (given.length > 0) throw new UsageError('give the event as options or as JSON lines on --stdin, not both');
  const lines = (await readStdin(inv)).split('\n').filter((l) => l.trim() !== '');
  const events = lines.map((line, i) => {
    try {
      return JSON.parse(line) as unknown;
    } catch (err) {
      throw new UsageError(`invalid usage event: line ${i + 1}: not JSON: ${(err as Error).message}`);
    }
  });
  checkUsage(events, 'line');
  const prices = await pricesOf(inv);
  return withSession(inv, async (session) => {
    const { store, caller } = session;
    const results = [];
    for (const e of events) results.push(await recordUsage(store, caller, e as Parameters<typeof recordUsage>[2], { prices, crossed: announcer(session) }));
    const duplicates = results.filter((r) => r.duplicate).length;
    return {
      data: { recorded: results.length - duplicates, duplicates, events: results },
      human: `recorded ${count(results.length - duplicates)} event${results.length - duplicates === 1 ? '' : 's'}${duplicates ? `; ${count(duplicates)} already recorded` : ''}`,
      quiet: results.map((r) => r.id).join('\n'),
    };
  });
}

export async function record(inv: Invocation): Promise<Output> {
  const o = inv.options;
  if (o.stdin === true) return recordLines(inv);
  const model = str(o.model);
  if (model === undefined) throw new UsageError('--model <model> is required');
  const inputTokens = required(inv, '--input', 'input');
  const outputTokens = required(inv, '--output', 'output');
  const at = str(o.at);
  const event = {
    model,
    inputTokens,
    outputTokens,
    ...opt('cacheReadTokens', int(o.cacheRead, '--cache-read')),
    ...opt('cacheWriteTokens', int(o.cacheWrite, '--cache-write')),
    ...opt('cacheWrite1hTokens', int(o.cacheWrite1h, '--cache-write-1h')),
    ...opt('reasoningTokens', int(o.reasoning, '--reasoning')),
    ...opt('provider', str(o.provider)),
    ...opt('task', str(o.task)),
    ...opt('sourceKey', str(o.key)),
    ...opt('occurredAt', at === undefined ? undefined : parseMoment(at, '--at', Date.now(), 'ago')),
    source: 'report' as const,
  };
  const prices = await pricesOf(inv);
  return withSession(inv, async (session) => {
    const { store, caller } = session;
    const r = await recordUsage(store, caller, event, { prices, crossed: announcer(session) });
    const cost = r.costMicros === null ? `cost unknown (model ${r.model} is not in the price table)` : dollars(r.costMicros);
    const who = [r.agent ? `agent ${r.agent}` : null, r.task ? `task ${r.task}` : null].filter(Boolean).join(', ');
    return {
      data: r,
      human: r.duplicate ? `already recorded as ${r.id} (same --key); nothing added` : `recorded ${r.id}: ${cost}${who ? ` (${who})` : ''}`,
      quiet: r.id,
    };
  });
}

export async function prices(inv: Invocation): Promise<Output> {
  const table = await pricesOf(inv);
  const names = Object.keys(table.models).sort();
  // At least the cents, and every decimal the table has ($0.075).
  const price = (v: number) => `$${Math.abs(Math.round(v * 100) - v * 100) < 1e-9 ? v.toFixed(2) : String(v)}`;
  const rows = names.map((name) => {
    const p = table.models[name]!;
    return [name, p.provider, price(p.input), price(p.output), price(p.cache_write), price(p.cache_write_1h), price(p.cache_read)];
  });
  const header = fields([
    ['version', table.version],
    ['checked', table.checked],
    ['overlays', table.overlays.length ? table.overlays.map((ov) => `${ov.file} (${ov.version}: ${ov.models.join(', ')})`).join('; ') : 'none (set SOS_PRICES=<file> to add your own)'],
  ]);
  const body = grid(['model', 'provider', 'input', 'output', 'cache write', 'cache write 1h', 'cache read'], rows, [false, false, true, true, true, true, true]);
  return {
    data: { version: table.version, checked: table.checked, note: table.note, unit: 'USD per million tokens', overlays: table.overlays, models: Object.fromEntries(names.map((n) => [n, table.models[n]])) },
    human: `${header}\n\n${body}\n\nUSD per million tokens. ${table.note}`,
    quiet: table.version,
  };
}

export async function recompute(inv: Invocation): Promise<Output> {
  const table = await pricesOf(inv);
  return withSession(inv, async ({ store, caller }) => {
    const r = await recomputeLedger(store, caller, { prices: table });
    return {
      data: r,
      human: `re-priced ${count(r.changed)} of ${count(r.events)} event${r.events === 1 ? '' : 's'} with prices ${r.priceVersion}${r.unknown ? `; ${count(r.unknown)} still unpriced` : ''}`,
      quiet: String(r.changed),
    };
  });
}

/** `sos usage import`: the agent CLIs' transcripts into the ledger (admin or the operator). */
export async function importLogs(inv: Invocation): Promise<Output> {
  const source = (str(inv.options.source) ?? 'all') as ImportSource | 'all';
  const path = str(inv.options.path);
  const table = await pricesOf(inv);
  return withSession(inv, async (session) => {
    const { store, caller } = session;
    const r = await importTranscripts(store, caller, { source, prices: table, crossed: announcer(session), ...opt('path', path) });
    const rows = r.sources.map((s) => [s.source, count(s.files), count(s.lines), count(s.eventsNew), count(s.duplicates), count(s.corrupt), s.root]);
    const lines = [
      grid(['source', 'files', 'lines', 'events new', 'duplicates', 'corrupt', 'root'], rows, [false, true, true, true, true, true, false]),
      `${count(r.files)} files, ${count(r.lines)} lines (${count(r.bytes)} new bytes), ${count(r.eventsNew)} events new, ${count(r.duplicates)} duplicates skipped, ${count(r.corrupt)} corrupt lines, ${r.seconds.toFixed(2)}s`,
    ];
    const rl = r.rateLimits;
    if (rl) {
      const w = (x: typeof rl.primary) => (x ? `${x.usedPercent ?? '?'}% of ${x.windowMinutes ?? '?'} min${x.resetsAt ? `, resets ${new Date(x.resetsAt * 1000).toISOString()}` : ''}` : '-');
      lines.push(`codex rate limits: primary ${w(rl.primary)}; secondary ${w(rl.secondary)}`);
    }
    return { data: r, human: lines.join('\n'), quiet: String(r.eventsNew) };
  });
}

/**
 * Announces budget crossings (events and coordinator messages) through the bus, opened only when
 * a record crossed a threshold, so recording usage costs no bus connection otherwise.
 */
function announcer(session: Session): (crossings: BudgetCrossing[]) => Promise<void> {
  return async (crossings) => {
    const { openBusContext } = await import('../core/bus/context.js');
    const { announceCrossings } = await import('../core/economy/announce.js');
    const ctx = await openBusContext(session.config.values, session.store);
    try {
      await announceCrossings(ctx, session.caller.project, crossings);
    } finally {
      await ctx.bus.close();
    }
  };
}
