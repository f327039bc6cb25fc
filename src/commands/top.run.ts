import { UsageError } from '../core/errors.js';
import { int } from './args.js';
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
    const { EventFeed, loadSnapshot } = await import('../tui/snapshot.js');
    const parts = { store: life.store, bus: ctx.bus, life, presenceTtlMs: config.values.presenceTtlMs, maxMessageBytes: config.values.maxMessageBytes };
    const feed = new EventFeed();
    const load = () => loadSnapshot(parts, caller, Date.now(), feed);
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
    const { runTop } = await import('../tui/app.js');
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
      },
      intervalMs,
      color: !inv.env.NO_COLOR,
    });
    return { data: { exited: true }, human: '' };
  });
}
