import type { CycleRecord } from '../core/brain/cycle.js';
import { type RetiredMarker, retiredMarkers, retireMarker, unretireMarker } from '../core/brain/stale.js';
import { dollars } from '../core/economy/format.js';
import { UsageError } from '../core/errors.js';
import { parseMoment } from '../core/time.js';
import { int, opt, str } from './args.js';
import type { Invocation, Output } from './define.js';
import { fields, iso, table } from './format.js';
import { withBus, withMemory, withSession } from './session.js';

const view = (m: RetiredMarker) => ({ marker: m.marker, source: m.source, createdBy: m.createdBy, createdAt: iso(m.createdAt) });

export function retire(inv: Invocation): Promise<Output> {
  return withSession(inv, async ({ store, caller }) => {
    const m = await retireMarker(store, caller, inv.args.marker as string);
    return { data: view(m), human: m.source === 'built-in' ? `"${m.marker}" is retired already (built in)` : `"${m.marker}" retired`, quiet: m.marker };
  });
}

export function unretire(inv: Invocation): Promise<Output> {
  return withSession(inv, async ({ store, caller }) => {
    await unretireMarker(store, caller, inv.args.marker as string);
    return { data: { marker: inv.args.marker, removed: true }, human: `"${String(inv.args.marker).trim().toLowerCase()}" is no longer retired` };
  });
}

export function retired(inv: Invocation): Promise<Output> {
  return withSession(inv, async ({ store, caller }) => {
    const markers = await retiredMarkers(store, caller);
    return {
      data: markers.map(view),
      human: table(['marker', 'source', 'by', 'since'], markers.map((m) => [m.marker, m.source, m.createdBy ?? '-', m.createdAt === null ? '-' : (iso(m.createdAt) ?? '-')])),
      quiet: markers.map((m) => m.marker).join('\n'),
    };
  });
}

// ---------------------------------------------------------------------------------------------
// cycles

const cost = (micros: number | null) => (micros === null ? 'unpriced' : dollars(micros));

/** The `--json` shape of a cycle (stable). */
const cycleView = (c: CycleRecord) => ({
  id: c.id,
  trigger: c.trigger,
  triggerDetail: c.triggerDetail,
  startedAt: iso(c.startedAt),
  finishedAt: iso(c.finishedAt),
  dryRun: c.dryRun,
  provider: c.provider,
  model: c.model,
  decision: c.decision,
  outcome: c.outcome,
  check: c.check,
  reason: c.reason,
  made: c.made,
  attempts: c.attempts,
  calls: c.calls,
  inputTokens: c.inputTokens,
  outputTokens: c.outputTokens,
  costMicros: c.costMicros,
  ...(c.engram ? { engram: c.engram } : {}),
  ...(c.reportedTo ? { reportedTo: c.reportedTo } : {}),
});

const describeCycle = (c: CycleRecord) =>
  fields([
    ['cycle', `${c.id}${c.dryRun ? ' (dry run: nothing executed)' : ''}`],
    ['trigger', c.trigger],
    ['model', c.provider ? `${c.provider}:${c.model} (${c.calls} call${c.calls === 1 ? '' : 's'}, ${c.inputTokens} in / ${c.outputTokens} out, ${cost(c.costMicros)})` : '-'],
    ['decision', c.decision ? `${c.decision.method}${c.decision.agent ? ` for ${c.decision.agent}` : ''}: ${c.decision.action}` : 'none'],
    ['details', c.decision ? JSON.stringify(c.decision.details) : '-'],
    ['outcome', `${c.outcome}${c.check ? ` (${c.check})` : ''}`],
    ['reason', c.reason],
    ['providers', c.attempts.map((a) => `${a.provider}:${a.model} ${a.outcome}${a.error ? ` (${a.error.slice(0, 80)})` : ''}`).join('; ') || '-'],
  ]);

/** `sos brain run --once [--dry-run] [--reason]`: one cycle in this process. */
export function run(inv: Invocation): Promise<Output> {
  if (inv.options.once !== true) {
    throw new UsageError('the brain loop runs in `sos daemon`; `sos brain run` needs --once', { hint: 'sos brain run --once [--dry-run]; or start the daemon with SOS_BRAIN_PROVIDER set' });
  }
  return withMemory(inv, async ({ config, store, caller, ctx, memory }) => {
    const { brainFromConfig } = await import('../core/brain/context.js');
    const { runCycle } = await import('../core/brain/cycle.js');
    const brain = await brainFromConfig(config.values, { store, bus: ctx.bus, memory, cwd: inv.cwd, env: inv.env });
    if (!brain) throw new UsageError('the brain has no provider', { hint: 'set SOS_BRAIN_PROVIDER (anthropic, openai or claude-cli), with SOS_BRAIN_MODEL, SOS_BRAIN_URL and SOS_BRAIN_KEY as it needs' });
    const reason = str(inv.options.reason);
    const c = await runCycle(brain, caller, { trigger: reason ? { kind: 'wake', text: reason } : { kind: 'manual' }, dryRun: inv.options.dryRun === true });
    return { data: cycleView(c), human: describeCycle(c), quiet: c.id, ...(c.outcome === 'failed' ? { exitCode: 1 } : {}) };
  });
}

export function cycles(inv: Invocation): Promise<Output> {
  return withSession(inv, async ({ store, caller }) => {
    const { listCycles } = await import('../core/brain/cycle.js');
    const since = str(inv.options.since);
    const outcome = str(inv.options.outcome);
    const list = await listCycles({ store }, caller, {
      ...opt('since', since === undefined ? undefined : parseMoment(since, '--since', Date.now(), 'ago')),
      ...opt('outcome', outcome),
      ...opt('limit', int(inv.options.limit, '--limit')),
      dryRuns: inv.options.dryRuns === true,
    });
    return {
      data: list.map(cycleView),
      human: list.length
        ? table(
            ['cycle', 'started', 'trigger', 'method', 'outcome', 'cost', 'reason'],
            list.map((c) => [c.id, iso(c.startedAt) ?? '-', c.trigger.slice(0, 40), c.decision?.method ?? '-', `${c.outcome}${c.dryRun ? ' (dry)' : ''}`, cost(c.costMicros), c.reason.slice(0, 70)]),
          )
        : `no brain cycles in project "${caller.project}"${outcome ? ` with outcome ${outcome}` : ''}`,
      quiet: list.map((c) => c.id).join('\n'),
    };
  });
}

/** `sos brain status`: the routing order, the breakers as last saved, and the cycles so far. */
export function status(inv: Invocation): Promise<Output> {
  return withSession(inv, async ({ config, store, caller }) => {
    const { cycleSummary, savedBreakers } = await import('../core/brain/cycle.js');
    const { providersFromValues, routeEntries } = await import('../core/brain/tiers.js');
    const { loadPrices } = await import('../core/economy/prices.js');
    const { readLease, leaseLive } = await import('../core/daemon/lock.js');
    const providers = providersFromValues(config.values, inv.env);
    const routed = routeEntries(providers, config.values.brainTier, loadPrices(config.values.prices));
    const saved = new Map((await savedBreakers(store.sql)).map((b) => [b.name, b]));
    const summary = await cycleSummary({ store }, caller);
    const lease = await readLease(store.sql);
    const loop = lease && leaseLive(lease, Date.now(), 6_000) ? ((lease.status as { loops?: { name: string; state: string; runs: number }[] } | undefined)?.loops ?? []).find((l) => l.name === 'brain') : undefined;
    const breakers = [...new Set(providers.map((p) => p.provider.name))].map((name) => saved.get(name) ?? { name, state: 'closed', consecutiveFailures: 0, counters: null, lastError: null, probeAt: null, openedAt: null, updatedAt: null });
    const data = {
      enabled: providers.length > 0,
      tier: config.values.brainTier,
      daemonLoop: loop ? { state: loop.state, runs: loop.runs } : null,
      routing: routed.map((e) => ({ provider: e.provider.name, kind: e.provider.kind, model: e.model, tier: e.tier, unitPriceUsd: e.unitPrice })),
      breakers,
      cycles: summary.cycles,
      byOutcome: summary.byOutcome,
      dryRuns: summary.dryRuns,
      lastCycleAt: iso(summary.lastAt),
      costMicros: summary.costMicros,
    };
    const human = providers.length
      ? [
          fields([
            ['brain', loop ? `on in the daemon (loop ${loop.state}, ${loop.runs} runs)` : 'configured; the daemon is not running its loop'],
            ['tier', config.values.brainTier],
            ['cycles', `${summary.cycles}${summary.dryRuns ? ` (+${summary.dryRuns} dry runs)` : ''}, last ${iso(summary.lastAt) ?? 'never'}, spent ${dollars(summary.costMicros)}`],
            ['outcomes', Object.entries(summary.byOutcome).map(([o, n]) => `${o} ${n}`).join(', ') || '-'],
          ]),
          '',
          table(['order', 'provider', 'model', 'tier', 'USD/Mtok in+out'], routed.map((e, i) => [String(i + 1), e.provider.name, e.model, e.tier ?? '-', e.unitPrice === null ? 'unpriced' : e.unitPrice.toFixed(2)])),
          '',
          table(
            ['breaker', 'state', 'failures in a row', 'calls', 'failures', 'opens', 'last error'],
            breakers.map((b) => [b.name, b.state, String(b.consecutiveFailures), String(b.counters?.calls ?? 0), String(b.counters?.failures ?? 0), String(b.counters?.opens ?? 0), (b.lastError ?? '-').slice(0, 60)]),
          ),
        ].join('\n')
      : 'the brain is off: no provider is configured (set SOS_BRAIN_PROVIDER, see `sos config list`)';
    return { data, human };
  });
}

/** `sos brain wake [--reason]`: a `brain.wake` event; the daemon's brain loop runs a cycle for it at once. */
export function wake(inv: Invocation): Promise<Output> {
  return withBus(inv, async ({ store, caller, ctx }) => {
    const { requireAdmin } = await import('../core/auth/caller.js');
    const { requireProject } = await import('../core/identity/projects.js');
    await requireProject(store, caller.project);
    await requireAdmin(store, caller, 'waking the brain');
    const reason = str(inv.options.reason)?.trim();
    if (reason !== undefined && (reason === '' || reason.length > 1_000)) throw new UsageError('--reason must be 1 to 1000 characters');
    const at = Date.now();
    await ctx.bus.emit(caller.project, 'brain.wake', { reason: reason ?? null, by: caller.agent ?? 'operator' }, at);
    return { data: { project: caller.project, reason: reason ?? null, at: iso(at) }, human: `brain woken in project "${caller.project}"${reason ? `: ${reason}` : ''} (the daemon runs the cycle)` };
  });
}
