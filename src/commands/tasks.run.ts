import { type TaskCost, taskCost, unknownCostLine } from '../core/economy/cost.js';
import { dollars } from '../core/economy/format.js';
import { UsageError } from '../core/errors.js';
import {
  acceptHandoff,
  blockTask,
  board as rankBoard,
  cancelTask,
  claimTask,
  commentTask,
  completeTask,
  createTask,
  failTask,
  getTask,
  handoffTask,
  heartbeatTask,
  listTasks,
  redriveTask,
  rejectHandoff,
  releaseTask,
  startTask,
  sweepTasks,
  taskCounters,
  taskEvents,
  unblockTask,
} from '../core/tasks/service.js';
import type { Task, TaskEvent } from '../core/tasks/types.js';
import { MAX_WAIT_MS } from '../core/time.js';
import { duration, int, opt, readStdin, str, strings } from './args.js';
import type { Invocation, Output } from './define.js';
import { fields, iso, table } from './format.js';
import { withTasks } from './session.js';

/** The `--json` shape of a task (stable). */
export function taskView(t: Task) {
  return {
    id: t.id,
    project: t.project,
    title: t.title,
    description: t.description,
    status: t.status,
    priority: t.priority,
    squad: t.squad,
    labels: t.labels,
    requires: t.requires,
    dependsOn: t.dependsOn,
    assignee: t.assignee,
    claimant: t.claimant,
    fence: t.attempt,
    attempt: t.attempt,
    maxAttempts: t.maxAttempts,
    leaseMs: t.leaseMs,
    leaseUntil: iso(t.leaseUntil),
    availableAt: iso(t.availableAt),
    unmetDependencies: t.unmetDeps,
    budget: { tokens: t.budgetTokens, dollars: t.budgetMicros === null ? null : t.budgetMicros / 1_000_000 },
    usageTokens: t.usageTokens,
    result: t.result,
    error: t.error,
    artifacts: t.artifacts,
    blockedReason: t.blockedReason,
    handoff: t.handoff ? { ...t.handoff, at: iso(t.handoff.at) } : null,
    createdBy: t.createdBy,
    createdAt: iso(t.createdAt),
    updatedAt: iso(t.updatedAt),
  };
}

const eventView = (e: TaskEvent) => ({ at: iso(e.at), actor: e.actor, event: e.event, from: e.from, to: e.to, detail: e.detail });

const key = (inv: Invocation) => str(inv.options.idempotencyKey);


function line(t: Task): (string | number | null)[] {
  return [t.id, t.status, t.priority, t.claimant ?? t.assignee, t.squad, t.title.length > 60 ? `${t.title.slice(0, 57)}...` : t.title];
}

const tokens = (v: number) => v.toLocaleString('en-US');

/** The cost so far of a task, in one line (two with tokens): priced dollars, then the unpriced events by model. */
function costText(u: TaskCost): [string, string][] {
  if (u.events === 0) return [['cost', 'no usage recorded']];
  const unknown = u.unknownModels.map((m) => unknownCostLine(m.events, m.model));
  // Every event unpriced: no dollar figure at all (never $0.00).
  const priced = u.costMicros === null ? [] : [`${dollars(u.costMicros)} over ${tokens(u.events)} event${u.events === 1 ? '' : 's'}`];
  return [
    ['cost', [...priced, ...unknown].join('; ')],
    [
      'tokens',
      `${tokens(u.inputTokens)} in, ${tokens(u.outputTokens)} out, ${tokens(u.cacheWriteTokens + u.cacheWrite1hTokens)} cache write, ${tokens(u.cacheReadTokens)} cache read`,
    ],
  ];
}

function showText(t: Task, usage: TaskCost): string {
  return fields([
    ['id', t.id],
    ['title', t.title],
    ['status', t.status + (t.blockedReason ? ` (${t.blockedReason})` : '')],
    ['priority', t.priority],
    ['squad', t.squad],
    ['labels', t.labels.join(', ')],
    ['requires', t.requires.join(', ')],
    ['depends on', t.dependsOn.join(', ')],
    ['assignee', t.assignee],
    ['claimant', t.claimant ? `${t.claimant} (fence ${t.attempt}, lease until ${iso(t.leaseUntil)})` : null],
    ['attempts', `${t.attempt} of ${t.maxAttempts}`],
    ...costText(usage),
    ['handoff', t.handoff ? `${t.handoff.from} → ${t.handoff.to}: ${t.handoff.summary}` : null],
    ['result', t.result],
    ['error', t.error],
    ['artifacts', t.artifacts.join(', ')],
    ['description', t.description],
  ]);
}

/** Every mutating verb prints the task: its id for scripts, the essentials for people. */
function mutated(task: Task, verb: string, extra: string[] = []): Output {
  return { data: taskView(task), human: [`${verb} ${task.id} (${task.status})`, ...extra].join('\n'), quiet: task.id };
}

export async function create(inv: Invocation): Promise<Output> {
  const o = inv.options;
  if (o.stdin === true && o.description !== undefined) throw new UsageError('give --description or --stdin, not both');
  const description = o.stdin === true ? await readStdin(inv) : str(o.description);
  const title = ((inv.args.title as string[] | undefined) ?? []).join(' ');
  return withTasks(inv, async ({ tasks, caller }) => {
    const { task, replayed } = await createTask(tasks, caller, {
      title,
      ...opt('description', description),
      ...opt('priority', str(o.priority)),
      ...opt('squad', str(o.squad)),
      ...opt('labels', strings(o.label)),
      ...opt('requires', strings(o.requires)),
      ...opt('dependsOn', strings(o.dependsOn)),
      ...opt('assignee', str(o.assignee)),
      ...opt('maxAttempts', int(o.maxAttempts, '--max-attempts')),
      ...opt('leaseMs', duration(o.lease, '--lease')),
      ...opt('budget', str(o.budget)),
      ...opt('status', str(o.status)),
      ...opt('idempotencyKey', key(inv)),
    });
    return { data: { ...taskView(task), replayed }, human: task.id, quiet: task.id };
  });
}

export async function list(inv: Invocation): Promise<Output> {
  const o = inv.options;
  return withTasks(inv, async ({ tasks, caller }) => {
    const found = await listTasks(tasks, caller, {
      ...opt('statuses', strings(o.status)),
      ...opt('squad', str(o.squad)),
      ...opt('assignee', str(o.assignee)),
      ...(o.ready === true ? { ready: true } : {}),
      ...opt('limit', int(o.limit, '--limit')),
    });
    return {
      data: found.map(taskView),
      human: found.length ? table(['id', 'status', 'pri', 'agent', 'squad', 'title'], found.map(line)) : 'no tasks',
      quiet: found.map((t) => t.id).join('\n'),
    };
  });
}

export async function show(inv: Invocation): Promise<Output> {
  return withTasks(inv, async ({ tasks, caller }) => {
    // getTask refuses a task the caller may not see, so its cost is read only after it.
    const task = await getTask(tasks, caller, inv.args.id as string);
    const usage = await taskCost(tasks.store.sql, task.project, task.id);
    const events = inv.options.events === true ? await taskEvents(tasks, caller, task.id) : undefined;
    const history = events
      ? `\n\n${table(
          ['at', 'actor', 'event', 'from', 'to'],
          events.map((e) => [iso(e.at), e.actor, e.event, e.from, e.to]),
        )}`
      : '';
    return {
      data: { ...taskView(task), usage, ...(events ? { events: events.map(eventView) } : {}) },
      human: showText(task, usage) + history,
      quiet: task.id,
    };
  });
}

export async function board(inv: Invocation): Promise<Output> {
  return withTasks(inv, async ({ tasks, caller }) => {
    const ranked = await rankBoard(tasks, caller, { ...opt('squad', str(inv.options.squad)), ...opt('limit', int(inv.options.limit, '--limit')) });
    const now = Date.now();
    return {
      data: ranked.map((t) => ({ ...taskView(t), unblocks: t.unblocks })),
      human: ranked.length
        ? table(
            ['id', 'pri', 'unblocks', 'age', 'requires', 'title'],
            ranked.map((t) => [t.id, t.priority, t.unblocks, `${Math.round((now - t.createdAt) / 60_000)}m`, t.requires.join(','), t.title]),
          )
        : 'no ready work',
      quiet: ranked.map((t) => t.id).join('\n'),
    };
  });
}

export async function claim(inv: Invocation): Promise<Output> {
  const o = inv.options;
  const waitMs = duration(o.wait, '--wait', MAX_WAIT_MS);
  return withTasks(inv, async ({ tasks, caller }) => {
    const controller = new AbortController();
    const stop = () => controller.abort();
    process.once('SIGINT', stop);
    try {
      const { task, replayed } = await claimTask(tasks, caller, {
        ...opt('id', str(o.id)),
        ...opt('squad', str(o.squad)),
        ...opt('leaseMs', duration(o.lease, '--lease')),
        ...opt('waitMs', waitMs),
        ...opt('idempotencyKey', key(inv)),
        signal: controller.signal,
      });
      return {
        data: { ...taskView(task), replayed },
        human: `claimed ${task.id} "${task.title}"\nfence ${task.attempt}, lease until ${iso(task.leaseUntil)}`,
        quiet: `${task.id} ${task.attempt}`,
      };
    } finally {
      process.off('SIGINT', stop);
    }
  });
}

const holder = (inv: Invocation) => ({ id: inv.args.id as string, ...opt('fence', int(inv.options.fence, '--fence')), ...opt('idempotencyKey', key(inv)) });

export const start = (inv: Invocation) => withTasks(inv, async ({ tasks, caller }) => mutated((await startTask(tasks, caller, holder(inv))).task, 'started'));

export const heartbeat = (inv: Invocation) =>
  withTasks(inv, async ({ tasks, caller }) => {
    const { task } = await heartbeatTask(tasks, caller, { ...holder(inv), ...opt('leaseMs', duration(inv.options.lease, '--lease')) });
    return mutated(task, 'renewed', [`lease until ${iso(task.leaseUntil)}`]);
  });

export async function complete(inv: Invocation): Promise<Output> {
  const o = inv.options;
  if (o.stdin === true && o.result !== undefined) throw new UsageError('give --result or --stdin, not both');
  const result = o.stdin === true ? await readStdin(inv) : str(o.result);
  return withTasks(inv, async ({ tasks, caller }) => {
    const r = await completeTask(tasks, caller, {
      ...holder(inv),
      ...opt('result', result),
      ...opt('artifacts', strings(o.artifact)),
      ...opt('usageTokens', int(o.usage, '--usage')),
    });
    return { ...mutated(r.task, 'completed', r.unblocked.length ? [`now ready: ${r.unblocked.join(', ')}`] : []), data: { ...taskView(r.task), unblocked: r.unblocked } };
  });
}

export async function fail(inv: Invocation): Promise<Output> {
  const error = str(inv.options.error);
  if (error === undefined) throw new UsageError('say why it failed: --error <text>');
  return withTasks(inv, async ({ tasks, caller }) => {
    const r = await failTask(tasks, caller, { ...holder(inv), error, ...(inv.options.retryable === true ? { retryable: true } : {}) });
    const note = r.task.status === 'queued' ? [`retry after ${iso(r.task.availableAt)}`] : r.blocked.length ? [`blocked: ${r.blocked.join(', ')}`] : [];
    return mutated(r.task, 'failed', note);
  });
}

export const release = (inv: Invocation) => withTasks(inv, async ({ tasks, caller }) => mutated((await releaseTask(tasks, caller, holder(inv))).task, 'released'));

export const cancel = (inv: Invocation) =>
  withTasks(inv, async ({ tasks, caller }) => {
    const r = await cancelTask(tasks, caller, {
      id: inv.args.id as string,
      ...(inv.options.cascade === true ? { cascade: true } : {}),
      ...opt('reason', str(inv.options.reason)),
      ...opt('idempotencyKey', key(inv)),
    });
    const notes = [...(r.canceled.length > 1 ? [`also canceled: ${r.canceled.slice(1).join(', ')}`] : []), ...(r.blocked.length ? [`blocked: ${r.blocked.join(', ')}`] : [])];
    return { ...mutated(r.task, 'canceled', notes), data: { ...taskView(r.task), canceled: r.canceled, blocked: r.blocked } };
  });

export const block = (inv: Invocation) =>
  withTasks(inv, async ({ tasks, caller }) =>
    mutated((await blockTask(tasks, caller, { id: inv.args.id as string, ...opt('reason', str(inv.options.reason)), ...opt('idempotencyKey', key(inv)) })).task, 'blocked'),
  );

export const unblock = (inv: Invocation) =>
  withTasks(inv, async ({ tasks, caller }) => mutated((await unblockTask(tasks, caller, { id: inv.args.id as string, ...opt('idempotencyKey', key(inv)) })).task, 'unblocked'));

export const redrive = (inv: Invocation) =>
  withTasks(inv, async ({ tasks, caller }) =>
    mutated(
      (await redriveTask(tasks, caller, { id: inv.args.id as string, ...opt('attempts', int(inv.options.attempts, '--attempts')), ...opt('idempotencyKey', key(inv)) })).task,
      'redriven',
    ),
  );

export const comment = (inv: Invocation) =>
  withTasks(inv, async ({ tasks, caller }) => {
    const text = ((inv.args.text as string[] | undefined) ?? []).join(' ');
    const { task } = await commentTask(tasks, caller, { id: inv.args.id as string, text, ...opt('idempotencyKey', key(inv)) });
    return { data: taskView(task), human: `commented on ${task.id}`, quiet: task.id };
  });

export async function handoff(inv: Invocation): Promise<Output> {
  const to = str(inv.options.to);
  const summary = str(inv.options.summary);
  if (to === undefined || summary === undefined) throw new UsageError('a handoff needs --to <agent> and --summary <text>');
  return withTasks(inv, async ({ tasks, caller }) => {
    const r = await handoffTask(tasks, caller, { ...holder(inv), to, summary, ...opt('memories', strings(inv.options.memory)) });
    return mutated(r.task, `handed off to ${to}:`);
  });
}

export const accept = (inv: Invocation) =>
  withTasks(inv, async ({ tasks, caller }) => {
    const { task } = await acceptHandoff(tasks, caller, { id: inv.args.id as string, ...opt('idempotencyKey', key(inv)) });
    return mutated(task, 'accepted', [`fence ${task.attempt}, lease until ${iso(task.leaseUntil)}`]);
  });

export async function reject(inv: Invocation): Promise<Output> {
  const reason = str(inv.options.reason);
  if (reason === undefined) throw new UsageError('say why: --reason <text>');
  return withTasks(inv, async ({ tasks, caller }) => mutated((await rejectHandoff(tasks, caller, { id: inv.args.id as string, reason, ...opt('idempotencyKey', key(inv)) })).task, 'rejected'));
}

export const sweep = (inv: Invocation) =>
  withTasks(inv, async ({ tasks, caller }) => {
    const report = await sweepTasks(tasks, caller);
    const lines = [
      ...report.requeued.map((r) => `requeued ${r.id} (attempt ${r.attempt}), claimable after ${iso(r.availableAt)}`),
      ...report.dead.map((d) => `dead ${d.id} after ${d.attempt} attempts${d.blocked.length ? `; blocked ${d.blocked.join(', ')}` : ''}`),
    ];
    return { data: report, human: lines.length ? lines.join('\n') : 'no expired leases' };
  });

export const stats = (inv: Invocation) =>
  withTasks(inv, async ({ tasks, caller }) => {
    const counters = await taskCounters(tasks, caller);
    return { data: counters, human: Object.keys(counters).length ? fields(Object.entries(counters)) : 'no counters yet' };
  });

export const route = (inv: Invocation) =>
  withTasks(inv, async ({ tasks, caller, config }) => {
    // Loaded here: the router pulls in quota windows and lifecycle records, which no other verb needs.
    const { routeTasks } = await import('../core/tasks/route.js');
    const { parsePlanLimits } = await import('../core/economy/quota.js');
    const dryRun = inv.options.dryRun === true;
    const report = await routeTasks({ tasks }, caller, {
      ...opt('squad', str(inv.options.squad)),
      ...(dryRun ? { dryRun: true } : {}),
      planLimits: parsePlanLimits(config.values.planLimits),
      quotaMarginMs: config.values.quotaMarginMs,
    });
    const summary = dryRun
      ? `dry run: would assign ${report.assigned}, ${report.unrouted} unroutable; nothing assigned or counted`
      : `assigned ${report.assigned}, ${report.unrouted} unroutable (counted in unclaimed_routed_tasks)${report.taken ? `, ${report.taken} taken meanwhile` : ''}`;
    return {
      data: report,
      human: report.tasks.length
        ? `${table(['task', 'pri', 'agent', 'why'], report.tasks.map((t) => [t.task, t.priority, t.agent ?? '-', t.reason]))}\n${summary}`
        : 'no queued, unassigned work to route',
      quiet: report.tasks
        .filter((t) => t.agent !== null)
        .map((t) => `${t.task} ${t.agent}`)
        .join('\n'),
    };
  });
