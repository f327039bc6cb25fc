import { type RetiredMarker, retiredMarkers, retireMarker, unretireMarker } from '../core/brain/stale.js';
import type { Invocation, Output } from './define.js';
import { iso, table } from './format.js';
import { withSession } from './session.js';

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
