import { listTiers, setTier, type TierEntry } from '../core/brain/governance.js';
import type { Invocation, Output } from './define.js';
import { iso, table } from './format.js';
import { withSession } from './session.js';

/** The `--json` shape of a method's tier (stable). */
const view = (t: TierEntry) => ({ method: t.method, tier: t.tier, source: t.source, defaultTier: t.defaultTier, updatedBy: t.updatedBy, updatedAt: iso(t.updatedAt) });

export function set(inv: Invocation): Promise<Output> {
  return withSession(inv, async ({ store, caller }) => {
    const t = await setTier(store, caller, inv.args.method as string, inv.args.tier as string);
    return { data: view(t), human: `${t.method} is ${t.tier} in project "${caller.project}"`, quiet: t.tier };
  });
}

export function list(inv: Invocation): Promise<Output> {
  return withSession(inv, async ({ store, caller }) => {
    const tiers = await listTiers(store, caller);
    return {
      data: tiers.map(view),
      human: table(
        ['method', 'tier', 'source', 'by', 'since'],
        tiers.map((t) => [t.method, t.tier, t.source === 'default' ? 'default' : `project (default ${t.defaultTier})`, t.updatedBy, iso(t.updatedAt)]),
      ),
      quiet: tiers.map((t) => `${t.method} ${t.tier}`).join('\n'),
    };
  });
}
