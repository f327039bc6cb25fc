import { type Approval, approve as approveOne, approveBatch, deny as denyOne, getApproval, listApprovals } from '../core/brain/governance.js';
import type { MotorContext, MotorVerdict } from '../core/brain/motor.js';
import { UsageError } from '../core/errors.js';
import { str } from './args.js';
import type { Invocation, Output } from './define.js';
import { fields, iso, table } from './format.js';
import { type Session, withSession, withTasks } from './session.js';
import type { TaskContext } from '../core/tasks/service.js';

/** The `--json` shape of an approval (stable). */
const view = (a: Approval) => ({
  id: a.id,
  cycleId: a.cycleId,
  method: a.method,
  tier: a.tier,
  status: a.status,
  needs: a.needs,
  approves: a.votes.filter((v) => v.vote === 'approve').length,
  proposal: a.proposal,
  createdAt: iso(a.createdAt),
  decidedAt: iso(a.decidedAt),
  outcome: a.outcome,
  reason: a.reason,
  made: a.made,
  votes: a.votes.map((v) => ({ approver: v.approver, vote: v.vote, note: v.note, at: iso(v.at) })),
});

const verdictView = (v: MotorVerdict | null) => (v ? { outcome: v.outcome, check: v.check, reason: v.reason, made: v.made ?? null } : null);

const titleOf = (a: Approval): string => {
  const d = a.proposal.details ?? {};
  const t = typeof d.title === 'string' ? d.title : typeof d.text === 'string' ? d.text : '';
  return t.length > 60 ? `${t.slice(0, 59)}…` : t;
};

const approvesText = (a: Approval) => `${a.votes.filter((v) => v.vote === 'approve').length}/${a.needs}`;

const describe = (a: Approval) =>
  fields([
    ['id', a.id],
    ['method', a.method],
    ['tier', a.tier],
    ['status', a.status],
    ['cycle', a.cycleId],
    ['agent', a.proposal.agent],
    ['goal', a.proposal.goal_id],
    ['details', JSON.stringify(a.proposal.details)],
    ['approves', approvesText(a)],
    ['created', iso(a.createdAt)],
    ['decided', iso(a.decidedAt)],
    ['outcome', a.outcome],
    ['reason', a.reason],
    ['made', a.made ? Object.values(a.made).flat().join(', ') : null],
    ...a.votes.map((v): [string, string] => [`vote`, `${v.vote} by ${v.approver} at ${iso(v.at)}${v.note ? `: ${v.note}` : ''}`]),
  ]);

/** How one approve ended, in a line. */
const ended = (a: Approval) =>
  a.status === 'pending'
    ? `approval ${a.id}: approved ${approvesText(a)}, waiting for ${a.needs - a.votes.filter((v) => v.vote === 'approve').length} more approver(s)`
    : `approval ${a.id} ${a.status}${a.outcome ? ` (${a.outcome})` : ''}: ${a.reason ?? ''}`;

/** The motor as the brain runs it: lifecycle states, the doctor checks, plan limits from the configuration. */
async function motorContext(session: Session & { tasks: TaskContext }, cwd: string): Promise<MotorContext> {
  const [{ SqlLifecycleRepo }, { runChecks }, { parsePlanLimits }] = await Promise.all([
    import('../core/lifecycle/sql-lifecycle.js'),
    import('../core/doctor/checks.js'),
    import('../core/economy/quota.js'),
  ]);
  const values = session.config.values;
  return {
    tasks: session.tasks,
    lifecycle: new SqlLifecycleRepo(session.store.sql),
    health: () => runChecks(values, cwd),
    planLimits: parsePlanLimits(values.planLimits),
    quotaMarginMs: values.quotaMarginMs,
  };
}

export function list(inv: Invocation): Promise<Output> {
  return withSession(inv, async ({ store, caller }) => {
    const status = str(inv.options.status);
    const all = inv.options.all === true;
    const items = await listApprovals(store, caller, { ...(status !== undefined ? { status } : {}), all });
    const which = status ?? (all ? '' : 'pending');
    return {
      data: items.map(view),
      human: items.length
        ? table(['id', 'method', 'tier', 'status', 'approves', 'created', 'proposal'], items.map((a) => [a.id, a.method, a.tier, a.status, approvesText(a), iso(a.createdAt), titleOf(a)]))
        : `no ${which ? `${which} ` : ''}approvals in project "${caller.project}"`,
      quiet: items.map((a) => a.id).join('\n'),
    };
  });
}

export function show(inv: Invocation): Promise<Output> {
  return withSession(inv, async ({ store, caller }) => {
    const a = await getApproval(store, caller, inv.args.id as string);
    return { data: view(a), human: describe(a), quiet: a.status };
  });
}

export function approve(inv: Invocation): Promise<Output> {
  const id = str(inv.args.id);
  const all = inv.options.all === true;
  const note = str(inv.options.note);
  if (all && id !== undefined) return Promise.reject(new UsageError('give an approval id or --all, not both'));
  if (!all && id === undefined) return Promise.reject(new UsageError('which approval? give its id, or --all for every pending batch_approve item', { hint: 'list them with `sos approvals list`' }));
  return withTasks(inv, async (session) => {
    const ctx = await motorContext(session, inv.cwd);
    if (all) {
      const results = await approveBatch(ctx, session.caller, note !== undefined ? { note } : {});
      return {
        data: results.map((r) => ({ id: r.id, approval: r.approval ? view(r.approval) : null, verdict: verdictView(r.verdict), error: r.error })),
        human: results.length ? results.map((r) => (r.approval ? ended(r.approval) : `approval ${r.id}: not approved: ${r.error}`)).join('\n') : `no pending batch_approve approvals in project "${session.caller.project}"`,
        quiet: results.map((r) => `${r.id} ${r.approval?.status ?? 'refused'}`).join('\n'),
      };
    }
    const r = await approveOne(ctx, session.caller, id!, note !== undefined ? { note } : {});
    return { data: { ...view(r.approval), verdict: verdictView(r.verdict) }, human: ended(r.approval), quiet: r.approval.status };
  });
}

export function deny(inv: Invocation): Promise<Output> {
  return withSession(inv, async ({ store, caller }) => {
    const note = str(inv.options.note);
    const a = await denyOne(store, caller, inv.args.id as string, note !== undefined ? { note } : {});
    return { data: view(a), human: `approval ${a.id} denied: it will not execute`, quiet: a.status };
  });
}
