import { join } from 'node:path';
import { type AgentCost, agentCosts, NO_AGENT_COST, type Spend, utcDayStart } from '../core/economy/cost.js';
import { dollars } from '../core/economy/format.js';
import { getAgent } from '../core/identity/agents.js';
import { SosError, UsageError } from '../core/errors.js';
import type { ProbeResult } from '../core/lifecycle/probe.js';
import type { ActionRecord } from '../core/lifecycle/sql-lifecycle.js';
import { int, str } from './args.js';
import type { Invocation, Output } from './define.js';
import { fields, iso, table } from './format.js';
import { withLifecycle, withSession } from './session.js';
import { neutralise } from '../core/safe-text.js';

/** `sos agents status|probe|history|park|unpark|attach` and `sos hook`: thin over core/lifecycle. */

function ago(ms: number | null, now = Date.now()): string | null {
  if (ms === null) return null;
  const s = Math.max(0, Math.round((now - ms) / 1000));
  if (s < 120) return `${s}s ago`;
  if (s < 7200) return `${Math.round(s / 60)}m ago`;
  return `${Math.round(s / 3600)}h ago`;
}

const actionView = (a: ActionRecord) => ({ ...a, at: iso(a.at), recoveredAt: iso(a.recoveredAt) });

/** Spend in a table cell: priced dollars, `+?` when some events are unpriced, `?` when all are. */
function spendCell(s: Spend): string {
  if (s.costMicros === null) return '?';
  return dollars(s.costMicros) + (s.unknownCostEvents > 0 ? '+?' : '');
}

const spendView = (s: Spend) => ({ costMicros: s.costMicros, events: s.events, unknownCostEvents: s.unknownCostEvents });

/** The status table fits 80 columns: the evidence is cut to what is left, and left out when under 8. */
const WIDTH = 80;
const MIN_EVIDENCE = 8;

function statusTable(headers: string[], rows: (string | number)[][], evidence: (string | null)[]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i]).length)));
  const room = WIDTH - widths.reduce((a, w) => a + w + 2, 0);
  if (room < MIN_EVIDENCE) return table(headers, rows);
  const cut = (e: string | null) => (e === null ? null : e.length > room ? `${e.slice(0, room - 1)}…` : e);
  return table([...headers, 'evidence'], rows.map((r, i) => [...r, cut(evidence[i] ?? null)]));
}

export function status(inv: Invocation): Promise<Output> {
  return withLifecycle(inv, async ({ life, caller, store }) => {
    const { agentStatus } = await import('../core/lifecycle/service.js');
    const rows = await agentStatus(life, caller);
    const today = utcDayStart(Date.now());
    const costs = await agentCosts(store.sql, caller.project, today);
    const cost = (agent: string): AgentCost => costs.get(agent) ?? NO_AGENT_COST;
    const unpriced = rows.some((r) => cost(r.agent).total.unknownCostEvents > 0);
    // To keep to 80 columns the session (also in `sos agents list`) and the held task ids are only in --json.
    const text = statusTable(
      ['agent', 'state', 'since', 'holds', 'unread', 'spent today', 'total'],
      rows.map((r) => [r.agent, r.state, ago(r.since) ?? '-', r.holds.length, r.unread, spendCell(cost(r.agent).since), spendCell(cost(r.agent).total)]),
      rows.map((r) => r.evidence),
    );
    return {
      data: rows.map((r) => ({
        ...r,
        since: iso(r.since),
        parkedUntil: iso(r.parkedUntil),
        probedAt: iso(r.probedAt),
        spent: { dayStart: iso(today), today: spendView(cost(r.agent).since), total: spendView(cost(r.agent).total) },
      })),
      human: rows.length
        ? text + (unpriced ? '\n?: events of an unpriced model, cost unknown (sos usage --by model)' : '')
        : `no agents in project "${caller.project}" yet`,
      quiet: rows.map((r) => `${r.agent} ${r.state}`).join('\n'),
    };
  });
}

function renderProbe(r: ProbeResult): string {
  return [
    fields([
      ['agent', r.agent],
      ['state', `${r.state} (confidence ${r.confidence.toFixed(2)})${r.changed ? `, was ${r.previous ?? 'unprobed'}` : `, since ${iso(r.since)}`}`],
      ['holds', r.holds.join(', ') || 'no task'],
      ['plan', `${r.plan.action}: ${r.plan.reason}`],
      ['action', r.action ? `${r.action.action} ${r.action.outcome}: ${r.action.detail}` : null],
    ]),
    'evidence:',
    ...r.evidence.map((e) => `  - ${e.signal}: ${e.detail}${e.lines?.length ? ` [${e.lines.slice(0, 3).join(' / ')}]` : ''}`),
  ].join('\n');
}

export function probe(inv: Invocation): Promise<Output> {
  const act = inv.options.act === true;
  const name = str(inv.args.name);
  return withLifecycle(
    inv,
    async ({ life, caller }) => {
      const { superviseOnce } = await import('../core/lifecycle/probe.js');
      const results = await superviseOnce(life, caller, { act, ...(name ? { agents: [name] } : {}) });
      const data = results.map((r) => ({ ...r, since: iso(r.since), ...(r.action ? { action: actionView(r.action) } : {}) }));
      return {
        data: name ? data[0] : data,
        human: results.length ? results.map(renderProbe).join('\n\n') : 'no agent has a session: nothing to probe (sos agents set <name> --session tmux:<target>)',
        quiet: results.map((r) => `${r.agent} ${r.state}`).join('\n'),
      };
    },
    { memory: act },
  );
}

export function history(inv: Invocation): Promise<Output> {
  return withLifecycle(inv, async ({ life, caller }) => {
    const { agentHistory } = await import('../core/lifecycle/service.js');
    const h = await agentHistory(life, caller, inv.args.name as string, int(inv.options.limit, '--limit') ?? 50);
    const lines = [
      ...h.states.map((s) => ({ at: s.at, text: `${s.previous ?? 'unprobed'} → ${s.state} (${s.confidence.toFixed(2)}) ${s.evidence[0] ? `${s.evidence[0].signal}: ${s.evidence[0].detail}` : ''}` })),
      ...h.actions.map((a) => ({ at: a.at, text: `action ${a.action} ${a.outcome}${a.recovery ? ` [recovery ${a.recovery}]` : ''}: ${a.detail}` })),
    ].sort((a, b) => b.at - a.at);
    return {
      data: { states: h.states.map((s) => ({ ...s, at: iso(s.at) })), actions: h.actions.map(actionView) },
      human: lines.length ? lines.map((l) => `${iso(l.at)}  ${l.text}`).join('\n') : `no lifecycle history for ${inv.args.name as string} yet (sos agents probe)`,
    };
  });
}

export function park(inv: Invocation): Promise<Output> {
  return withLifecycle(inv, async ({ life, caller }) => {
    const { parkAgent, parseUntil } = await import('../core/lifecycle/service.js');
    const until = str(inv.options.until);
    const action = await parkAgent(life, caller, inv.args.name as string, {
      ...(until !== undefined ? { until: parseUntil(until, Date.now()) } : {}),
      ...(str(inv.options.reason) !== undefined ? { reason: str(inv.options.reason)! } : {}),
      release: inv.options.release === true,
    });
    return { data: actionView(action), human: `${action.agent}: ${action.detail}`, quiet: action.id, ...(action.outcome === 'failed' ? { exitCode: 1 } : {}) };
  });
}

export function unpark(inv: Invocation): Promise<Output> {
  return withLifecycle(inv, async ({ life, caller }) => {
    const { unparkAgent } = await import('../core/lifecycle/service.js');
    const action = await unparkAgent(life, caller, inv.args.name as string);
    return { data: actionView(action), human: `${action.agent} unparked`, quiet: action.id };
  });
}

export function attach(inv: Invocation): Promise<Output> {
  return withSession(inv, async ({ store, caller, config }) => {
    const agent = await getAgent(store, caller, inv.args.name as string);
    if (caller.role !== 'operator' && caller.role !== 'admin') throw new UsageError('attaching needs local operator access or an admin token');
    if (!agent.session) throw new UsageError(`agent "${agent.name}" has no session to attach to`);
    const { attachAgentSession } = await import('../core/sessions/attach.js');
    const end = await attachAgentSession(agent, join(config.values.dataDir, 'sessions'), { stdin: process.stdin, stdout: process.stdout });
    if (end.via === 'tmux') return { data: { agent: agent.name, exitCode: end.exitCode }, human: '', ...(end.exitCode !== 0 ? { exitCode: end.exitCode } : {}) };
    return { data: { agent: agent.name, detached: true }, human: `detached from ${agent.name}` };
  });
}

/**
 * Claude Code writes the hook's JSON on standard input. Read it when stdin is a pipe, but never
 * wait long for it: a caller that leaves stdin open must not hang the agent's hook.
 */
async function hookPayload(inv: Invocation): Promise<Record<string, unknown> | undefined> {
  const stdin = inv.stdin as NodeJS.ReadStream;
  if (stdin.isTTY) return undefined;
  const chunks: Buffer[] = [];
  const done = new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, 250);
    stdin.on('data', (c: Buffer) => chunks.push(c));
    stdin.on('end', () => {
      clearTimeout(timer);
      resolve();
    });
    stdin.on('error', () => resolve());
  });
  await done;
  stdin.pause();
  (stdin as { unref?: () => void }).unref?.();
  const text = Buffer.concat(chunks).toString('utf8').trim();
  if (!text.startsWith('{')) return undefined;
  try {
    return JSON.parse(text) as Record<string, unknown>;
  } catch {
    return undefined;
  }
}

/**
 * Failures exit 1, never 2: Claude Code treats a hook's exit code 2 as "block and feed stderr to
 * the model", and a broken sos must not stop the agent it watches.
 */
export async function hook(inv: Invocation): Promise<Output> {
  try {
    return await withLifecycle(inv, async ({ life, caller }) => {
      const { reportHook } = await import('../core/lifecycle/service.js');
      const payload = await hookPayload(inv);
      const report = await reportHook(life, caller, {
        event: inv.args.event as string,
        ...(payload ? { payload } : {}),
        ...(str(inv.options.agent) ? { agent: str(inv.options.agent)! } : {}),
      });
      return { data: { ...report, at: iso(report.at) }, human: `${report.agent}: ${report.event} → ${report.state}`, quiet: report.state };
    });
  } catch (err) {
    if (!(err instanceof SosError)) throw err;
    process.stderr.write(neutralise(`sos hook: ${err.message}${err.hint ? `\n${err.hint}` : ''}\n`));
    return { data: { error: { code: err.code, message: err.message } }, human: '', exitCode: 1 };
  }
}
