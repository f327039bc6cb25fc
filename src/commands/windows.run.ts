import { streamsFrom } from '../core/bus/service.js';
import { dollars } from '../core/economy/format.js';
import { workdirs } from '../core/economy/import.js';
import { type AgentWindows, epochMs, parsePlanLimits, type QuotaReading, saveQuotaReading, usageWindows, type WindowFigures } from '../core/economy/quota.js';
import { UsageError } from '../core/errors.js';
import { listSquads } from '../core/identity/squads.js';
import { readStdin, str } from './args.js';
import type { Invocation, Output } from './define.js';
import { iso } from './format.js';
import { loadConfig, withBus, withSession } from './session.js';

const count = (n: number) => (n >= 10_000 ? `${(n / 1000).toFixed(n >= 100_000 ? 0 : 1)}k` : String(n));

/** A moment as the operator reads it: HH:MMZ within a day, else the date too. */
function when(ms: number | null, now: number): string {
  if (ms === null) return '-';
  const t = new Date(ms).toISOString();
  return Math.abs(ms - now) < 86_400_000 ? `${t.slice(11, 16)}Z` : `${t.slice(0, 10)} ${t.slice(11, 16)}Z`;
}

function used(w: WindowFigures): string {
  if (w.usedPercent === null) return `${count(w.tokens)} tok`;
  return `${Math.round(w.usedPercent)}% ${w.basis === 'reported' ? `(${w.reported!.source})` : '(est)'}`;
}

function windowView(w: WindowFigures) {
  return {
    start: iso(w.start),
    end: iso(w.end),
    tokens: w.tokens,
    cacheReadTokens: w.cacheReadTokens,
    costMicros: w.costMicros,
    events: w.events,
    limitTokens: w.limitTokens,
    usedPercent: w.usedPercent,
    basis: w.basis,
    reported: w.reported && { usedPercent: w.reported.usedPercent, resetsAt: iso(w.reported.resetsAt), source: w.reported.source, observedAt: iso(w.reported.observedAt) },
  };
}

/** The `--json` shape of an agent's windows (stable; money in micro-dollars, times ISO). */
const view = (w: AgentWindows) => ({
  agent: w.agent,
  plan: w.plan,
  fiveHour: windowView(w.fiveHour),
  sevenDay: windowView(w.sevenDay),
  burnTokensPerHour: w.burnTokensPerHour,
  burnCostMicrosPerHour: w.burnCostMicrosPerHour,
  projectedLimitAt: iso(w.projectedLimitAt),
  marginMs: w.marginMs,
  routable: w.routable,
  reason: w.reason,
});

function table(rows: AgentWindows[], now: number): string {
  const headers = ['AGENT', 'PLAN', '5H USED', 'ENDS', 'BURN/H', 'LIMIT AT', '7D USED', 'ROUTABLE'];
  const cells = rows.map((w) => [
    w.agent,
    w.plan ?? '-',
    used(w.fiveHour),
    when(w.fiveHour.end, now),
    `${count(w.burnTokensPerHour)} ${dollars(w.burnCostMicrosPerHour)}`,
    when(w.projectedLimitAt, now),
    used(w.sevenDay),
    w.routable ? 'yes' : 'no',
  ]);
  const widths = headers.map((h, i) => Math.max(h.length, ...cells.map((r) => r[i]!.length)));
  const line = (c: string[]) => c.map((x, i) => (i === c.length - 1 ? x : x.padEnd(widths[i]!))).join('  ');
  const out = [line(headers), ...cells.map(line)];
  for (const w of rows) if (!w.routable) out.push(`${w.agent}: not routable: ${w.reason}`);
  const estimated = rows.some((w) => w.fiveHour.basis === 'estimate' || w.sevenDay.basis === 'estimate');
  if (estimated) out.push('(est): from the ledger and the plan limits of SOS_PLAN_LIMITS, whose defaults are estimates');
  return out.join('\n');
}

export async function windows(inv: Invocation): Promise<Output> {
  const values = (await loadConfig(inv)).values;
  const limits = parsePlanLimits(values.planLimits);
  const agent = str(inv.options.agent);
  return withSession(inv, async ({ store, caller }) => {
    const now = Date.now();
    const rows = await usageWindows(store, caller, { now, limits, marginMs: values.quotaMarginMs, ...(agent !== undefined ? { agent } : {}) });
    return {
      data: rows.map(view),
      human: rows.length ? table(rows, now) : `no agent on a subscription plan in project "${caller.project}": sos agents set <name> --plan max`,
      quiet: rows.filter((w) => !w.routable).map((w) => w.agent).join('\n'),
    };
  });
}

// ---------------------------------------------------------------- statusline

/** The largest status-line input read (Claude Code's is a few kilobytes). */
const MAX_INPUT = 1_000_000;

interface StatusInput {
  model?: { id?: unknown; display_name?: unknown };
  workspace?: { current_dir?: unknown; project_dir?: unknown };
  cwd?: unknown;
  transcript_path?: unknown;
  rate_limits?: Record<string, { used_percentage?: unknown; resets_at?: unknown } | null | undefined> | null;
}

const textOf = (v: unknown) => (typeof v === 'string' && v !== '' ? v : null);

function parseStatus(text: string): StatusInput {
  if (text.length > MAX_INPUT) throw new UsageError(`the status-line input is ${text.length} bytes; the limit is ${MAX_INPUT}`);
  if (text.trim() === '') return {};
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw new UsageError(`the status-line input is not JSON: ${(err as Error).message}`, { hint: 'Claude Code passes a JSON object on standard input' });
  }
  if (typeof data !== 'object' || data === null || Array.isArray(data)) throw new UsageError('the status-line input must be a JSON object');
  return data as StatusInput;
}

/** Claude Code's `rate_limits.five_hour` / `seven_day` (`used_percentage` 0–100, `resets_at` epoch seconds). */
function readingsOf(input: StatusInput, project: string, agent: string, now: number): QuotaReading[] {
  const out: QuotaReading[] = [];
  for (const [key, window, minutes] of [['five_hour', 'five_hour', 300], ['seven_day', 'seven_day', 10_080]] as const) {
    const r = input.rate_limits?.[key];
    if (!r || typeof r.used_percentage !== 'number' || !Number.isFinite(r.used_percentage)) continue;
    out.push({ project, agent, window, source: 'statusline', usedPercent: r.used_percentage, windowMinutes: minutes, resetsAt: epochMs(typeof r.resets_at === 'number' ? r.resets_at : null), observedAt: now });
  }
  return out;
}

export async function statusline(inv: Invocation): Promise<Output> {
  const input = parseStatus(await readStdin(inv));
  const values = (await loadConfig(inv)).values;
  const limits = parsePlanLimits(values.planLimits);
  return withBus(inv, async ({ store, caller, ctx }) => {
    const now = Date.now();
    const cwd = textOf(input.workspace?.current_dir) ?? textOf(input.cwd);
    const transcript = textOf(input.transcript_path);
    let agent = caller.agent;
    if (agent === null) {
      const locate = await workdirs(store, caller);
      agent = (transcript ? locate.byFile(transcript) : null) ?? locate.byCwd(cwd);
    }
    const readings = readingsOf(input, caller.project, agent ?? '-', now);
    for (const r of readings) await saveQuotaReading(store.sql, r);
    const model = textOf(input.model?.display_name) ?? textOf(input.model?.id);
    const parts = [agent ?? `sos (no agent for ${cwd ?? 'this session'})`];
    if (model) parts.push(model);
    let data: Record<string, unknown> = { agent, model, readings: readings.length };
    if (agent !== null) {
      const held = await store.tasks.list(caller.project, { statuses: ['claimed', 'in_progress'], limit: 10 }, now);
      const mine = held.filter((t) => t.claimant === agent).map((t) => t.id);
      const day = now - (now % 86_400_000);
      const spent = await store.sql.one<{ cost: number | string | null }>('SELECT SUM(cost_micros) AS cost FROM usage_events WHERE project = $1 AND agent = $2 AND occurred_at >= $3', [caller.project, agent, day]);
      const w = (await usageWindows(store, caller, { agent, now, limits, marginMs: values.quotaMarginMs }))[0]!;
      const unread = await ctx.bus.countUnread(caller.project, agent, streamsFrom(await listSquads(store, caller), agent), now);
      if (mine.length) parts.push(mine.length === 1 ? mine[0]! : `${mine.length} tasks`);
      if (w.fiveHour.usedPercent !== null) parts.push(`5h ${Math.round(w.fiveHour.usedPercent)}%${w.fiveHour.end !== null ? ` (resets ${when(w.fiveHour.end, now)})` : ''}`);
      if (w.sevenDay.usedPercent !== null) parts.push(`7d ${Math.round(w.sevenDay.usedPercent)}%`);
      parts.push(`today ${dollars(Number(spent?.cost ?? 0))}`);
      if (unread > 0) parts.push(`${unread} unread`);
      if (!w.routable) parts.push(`not routable: ${w.reason}`);
      data = { ...data, tasks: mine, todayCostMicros: Number(spent?.cost ?? 0), unread, windows: view(w) };
    }
    const line = parts.join(' · ');
    return { data, human: line, quiet: line };
  });
}
