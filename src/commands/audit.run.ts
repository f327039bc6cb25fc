import { type AuditRecord, readAudit } from '../core/http/audit.js';
import { parseMoment } from '../core/time.js';
import { int, opt, str } from './args.js';
import type { Invocation, Output } from './define.js';
import { iso, table } from './format.js';
import { withSession } from './session.js';

/** `sos audit`: the HTTP surface's audit rows of the caller's project (audit.ts in core/http). */

/** The `--json` shape of a row (stable). */
const view = (r: AuditRecord) => ({
  id: r.id,
  at: iso(r.at),
  actor: r.actor,
  tokenId: r.tokenId,
  role: r.role,
  method: r.method,
  path: r.path,
  action: r.action,
  target: r.target,
  status: r.status,
  outcome: r.outcome,
  requestId: r.requestId,
  remote: r.remote,
});

export function run(inv: Invocation): Promise<Output> {
  return withSession(inv, async ({ store, caller }) => {
    const since = str(inv.options.since);
    const rows = await readAudit(store, caller, {
      ...opt('since', since === undefined ? undefined : parseMoment(since, '--since', Date.now(), 'ago')),
      ...opt('action', str(inv.options.action)),
      ...opt('limit', int(inv.options.limit, '--limit')),
    });
    return {
      data: rows.map(view),
      human: rows.length
        ? table(
            ['at', 'actor', 'role', 'action', 'target', 'status', 'outcome', 'request', 'remote'],
            rows.map((r) => [iso(r.at), r.actor, r.role, r.action, r.target, r.status, r.outcome, r.requestId, r.remote]),
          )
        : `no audited HTTP requests in project "${caller.project}"${since !== undefined || inv.options.action !== undefined ? ' that match' : ''}`,
      quiet: rows.map((r) => r.id).join('\n'),
    };
  });
}
