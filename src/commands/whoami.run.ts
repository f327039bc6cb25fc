import type { Invocation, Output } from './define.js';
import { fields } from './format.js';
import { withSession } from './session.js';

export function whoami(inv: Invocation): Promise<Output> {
  return withSession(inv, async ({ caller, store }) => {
    const data = {
      project: caller.project,
      agent: caller.agent,
      role: caller.role,
      via: caller.via,
      database: store.location,
    };
    return {
      data,
      human: fields([
        ['project', caller.project],
        ['agent', caller.agent ?? '(none: operator)'],
        ['role', caller.role],
        ['via', caller.via === 'local' ? 'local trust (direct database access)' : 'token'],
        ['database', store.location],
      ]),
      quiet: caller.agent ?? '',
    };
  });
}
