import { join } from 'node:path';
import { UsageError } from '../core/errors.js';
import { getAgent } from '../core/identity/agents.js';
import { getSquad } from '../core/identity/squads.js';
import { int, str } from './args.js';
import type { Invocation, Output } from './define.js';
import { withLifecycle } from './session.js';

/** `sos top`: the Store and bus stay open while the TUI runs; Ink and React load only here. */
export function top(inv: Invocation): Promise<Output> {
  const intervalMs = int(inv.options.interval, '--interval') ?? 1_000;
  if (intervalMs < 100 || intervalMs > 3_600_000) throw new UsageError('--interval must be from 100 to 3600000 milliseconds');
  const once = inv.options.once === true;
  const out = inv.stdout as NodeJS.WriteStream;
  if (!once && !(out.isTTY && (inv.stdin as NodeJS.ReadStream).isTTY)) {
    throw new UsageError('sos top needs a terminal', { hint: 'for scripts: sos top --once [--json]' });
  }
  return withLifecycle(inv, async ({ life, caller, ctx, config }) => {
    const { EventFeed, loadSnapshot, narrowSnapshot } = await import('../tui/snapshot.js');
    const parts = { store: life.store, bus: ctx.bus, life, presenceTtlMs: config.values.presenceTtlMs, maxMessageBytes: config.values.maxMessageBytes };
    const feed = new EventFeed();
    const squadName = str(inv.options.squad);
    const agentName = str(inv.options.agent);
    // Names are checked once, up front (a typo is an error, not an empty screen); the squad's
    // members are read again with every load, so a join shows.
    if (agentName !== undefined) await getAgent(life.store, caller, agentName);
    if (squadName !== undefined) await getSquad(life.store, caller, squadName);
    const load = async () => {
      const snapshot = await loadSnapshot(parts, caller, Date.now(), feed);
      const squad = squadName === undefined ? undefined : await getSquad(life.store, caller, squadName);
      return narrowSnapshot(snapshot, { ...(squad ? { squad: { name: squad.name, members: squad.members } } : {}), ...(agentName !== undefined ? { agent: agentName } : {}) });
    };
    if (once) {
      const { initialUi, lineText, viewModel } = await import('../tui/model.js');
      const snapshot = await load();
      const vm = viewModel(snapshot, initialUi(), { columns: out.columns || 80, rows: out.rows || 24 });
      return { data: { snapshot, problems: vm.problems, lines: vm.lines.map(lineText) }, human: vm.lines.map(lineText).join('\n') };
    }
    const actions = await import('../tui/actions.js');
    // Ink reads CI / CONTINUOUS_INTEGRATION once, when it loads, and in "CI mode" draws nothing
    // until it exits. `sos top` only runs on a terminal (checked above), so it is never CI output:
    // this process forgets them before Ink loads.
    delete process.env.CI;
    delete process.env.CONTINUOUS_INTEGRATION;
    const { runTop } = await withoutFetch(() => import('../tui/app.js'));
    const act = { life, bus: ctx, caller };
    await runTop({
      load,
      waitForEvent: (timeoutMs, signal) => ctx.bus.waitForEvent(caller.project, { timeoutMs, signal }),
      actions: {
        togglePark: (agent) => actions.togglePark(act, agent),
        send: (agent, text) => actions.send(act, agent, text),
        restart: (agent) => actions.restart(act, agent),
        interrupt: (agent) => actions.interrupt(act, agent),
        decide: (id, vote) => actions.decide(act, id, vote),
        screen: (agent) => actions.screen(act, agent),
        attach: (agent) => actions.attach(act, agent, join(config.values.dataDir, 'sessions')),
      },
      intervalMs,
      color: !inv.env.NO_COLOR,
    });
    return { data: { exited: true }, human: '' };
  });
}

/**
 * Runs `load` with `globalThis.fetch` hidden. Yoga's WebAssembly loader (inside Ink) asks
 * `typeof fetch` once while it loads, and on Node that first touch of `fetch` loads undici:
 * ~40 ms before `sos top`'s first frame, for a fetch nobody makes (the WebAssembly is inline).
 * Node's lazy `fetch` property is put back untouched afterwards.
 */
async function withoutFetch<T>(load: () => Promise<T>): Promise<T> {
  const own = Object.getOwnPropertyDescriptor(globalThis, 'fetch');
  if (!own?.configurable) return load();
  Object.defineProperty(globalThis, 'fetch', { value: undefined, configurable: true, writable: true });
  try {
    return await load();
  } finally {
    Object.defineProperty(globalThis, 'fetch', own);
  }
}
