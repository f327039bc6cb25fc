import { describe, expect, it } from 'vitest';
import { sendMessage } from '../../src/core/bus/service.js';
import { BUS_ADAPTERS, seedAgents } from '../helpers/bus.js';
import { until } from '../helpers/daemon.js';

/**
 * `Bus.onWake`, the pushed wake source the daemon's wake loop waits on: present exactly where the
 * adapter says it pushes (Redis PSUBSCRIBE, PostgreSQL LISTEN/NOTIFY), called with each recipient
 * of a send made through another handle, scoped to its project, and silent once stopped.
 */
describe.each(BUS_ADAPTERS)('pushed wakes on $name', (adapter) => {
  it.skipIf(!adapter.available)('onWake exists iff pushWake, names each recipient of a send from another handle, only for its project, and stops', async (ctx) => {
    const w = await adapter.open(ctx);
    const bus = w.ctx.bus;
    if (!bus.capabilities.pushWake) {
      expect(bus.onWake).toBeUndefined();
      return;
    }
    await seedAgents(w, { kasra: 'coordinator', codex: 'worker', gemini: 'worker' }, { core: ['codex', 'gemini'] });
    const other = await w.otherProject();
    await w.store.agents.add({ project: other, name: 'codex', kind: 'custom', role: 'worker', capabilities: [], session: null });
    await w.store.agents.add({ project: other, name: 'kasra', kind: 'custom', role: 'coordinator', capabilities: [], session: null });
    const woken: string[] = [];
    const stop = await bus.onWake!(w.project, (agent) => woken.push(agent));
    const sender = await w.second();
    await sendMessage(sender, w.as('kasra'), { to: 'codex', text: 'deploy fixed' });
    await until('the wake for codex', () => (woken.includes('codex') ? true : undefined), 3_000);
    await sendMessage(sender, w.as('kasra'), { to: 'squad:core', text: 'standup' });
    await until('the wakes for the squad', () => (woken.includes('gemini') ? true : undefined), 3_000);
    // Another project's send wakes nobody here.
    await sendMessage(sender, { ...w.as('kasra'), project: other }, { to: 'codex', text: 'elsewhere' });
    await sendMessage(sender, w.as('kasra'), { to: 'gemini', text: 'marker' });
    await until('the marker wake', () => (woken.filter((a) => a === 'gemini').length >= 2 ? true : undefined), 3_000);
    expect(woken.filter((a) => a === 'codex')).toHaveLength(2); // the direct send and the squad's, not the other project's
    await stop();
    const before = woken.length;
    await sendMessage(sender, w.as('kasra'), { to: 'codex', text: 'after stop' });
    await new Promise((r) => setTimeout(r, 300));
    expect(woken).toHaveLength(before);
  });
});
