import type { Caller } from '../auth/caller.js';
import { escalateToCoordinators, streamsFrom } from '../bus/service.js';
import { SosError, UsageError } from '../errors.js';
import { listSquads } from '../identity/squads.js';
import { createToken } from '../identity/tokens.js';
import { clip } from '../safe-text.js';
import { sessionLine } from '../sessions/line.js';
import type { SessionDriver } from '../sessions/port.js';
import { type Agent, wakeModeOf } from '../store/types.js';
import { releaseTask } from '../tasks/service.js';
import type { Task } from '../tasks/types.js';
import { abortableSleep, isMoment, momentText } from '../time.js';
import type { LifecycleState } from './classifier.js';
import { type LifecycleContext, nowOf, taskContextOf } from './context.js';
import type { PlannedAction } from './policy.js';
import { readSession } from './read.js';
import type { Observation } from './probe.js';
import { recordState } from './probe.js';
import type { ActionKind, ActionOutcome, ActionRecord, AgentStateRecord, InjectKind, Recovery } from './sql-lifecycle.js';

/**
 * The recovery actions (docs/ARCHITECTURE.md, "Lifecycle"). Each one is recorded with its outcome; actions meant to
 * bring the agent back are `recovery: pending` until a later probe sees it idle or busy.
 * Text typed into a session is built here from records, one line, never from a model's output
 * run through a shell: drivers type it literally.
 */

/** The longest line typed into a session. */
export const MAX_INJECT_CHARS = 1_800;
const POLL_MS = 200;

/** Identity, held tasks and unread digest: the pack when memory is not configured. */
async function minimalPack(ctx: LifecycleContext, caller: Caller, agent: Agent, held: Task[]): Promise<string> {
  const squads = await listSquads(ctx.store, caller);
  const unread = (await ctx.bus.history(agent.project, agent.name, streamsFrom(squads, agent.name), 50)).filter(
    (i) => i.state === 'queued' || i.state === 'delivered',
  );
  return [
    `You are ${agent.name}, a ${agent.role} (${agent.kind}) in project ${agent.project}.`,
    held.length ? `Tasks you hold: ${held.map((t) => `${t.id} [${t.status}, fence ${t.attempt}] ${t.title}`).join('; ')}` : 'Tasks you hold: none.',
    unread.length
      ? `Unread messages (${unread.length}, read with sos inbox): ${unread
          .slice(-5)
          .map((i) => `${i.message.from}: ${i.message.text.split('\n')[0]!.slice(0, 120)}`)
          .join('; ')}`
      : 'Unread messages: none.',
  ].join('\n');
}

/** The context pack as one line: `sos memory context` when memory is configured, else the minimal pack. */
export async function packLine(ctx: LifecycleContext, caller: Caller, agent: Agent, held: Task[], why: string): Promise<string> {
  let pack: string;
  if (ctx.memory) {
    const { contextPack } = await import('../memory/service.js');
    pack = await contextPack(ctx.memory, caller, agent.name, 4_000);
  } else {
    pack = await minimalPack(ctx, caller, agent, held);
  }
  const tail = ' (full context: sos memory context)';
  return clip(`[sos] ${why}: ${sessionLine(pack)}`, MAX_INJECT_CHARS - tail.length) + tail;
}

/** The current task as one line, for a stuck or compacted agent. */
export function taskLine(held: Task[], why: string): string {
  if (held.length === 0) return `[sos] ${why}: you hold no task; check sos inbox and sos tasks board`;
  const task = held[0]!;
  const more = held.length > 1 ? ` (and ${held.length - 1} more: sos tasks list --assignee me)` : '';
  const description = task.description ? ` — ${task.description}` : '';
  // Title and description are anyone's text: the whole line goes through sessionLine.
  return clip(
    sessionLine(
      `[sos] ${why}: your current task is ${task.id} "${task.title}" [${task.status}, fence ${task.attempt}]${description}${more}. Continue it, or release it: sos tasks release ${task.id}`,
    ),
    MAX_INJECT_CHARS,
  );
}

/** The fixed line typed to a `notify` agent instead of a pack or a task: no stored text in it. */
export function lifecycleNotifyLine(kind: InjectKind, why: string): string {
  return `# [sos] ${why}: run ${kind === 'pack' ? 'sos memory context' : 'sos tasks list --assignee me'}`;
}

/**
 * Types a pack or a task line into the session as the agent's wake mode allows (the same rule
 * as the daemon's message wake): `text` types it, `notify` types a fixed line that names the
 * command to run, `off` types nothing. Returns what happened, for the action's detail.
 */
async function typeFor(agent: Agent, driver: SessionDriver, kind: InjectKind, why: string, line: () => Promise<string> | string): Promise<string> {
  const mode = wakeModeOf(agent);
  if (mode === 'off') return 'not typed (wake off)';
  await driver.submit(mode === 'notify' ? lifecycleNotifyLine(kind, why) : await line());
  return mode === 'notify' ? 'notice typed (wake notify)' : 'typed';
}

/** Polls the session until it reads one of `states` (or the timeout); returns the last state read. */
export async function waitForState(agent: Agent, driver: SessionDriver, states: LifecycleState[], timeoutMs: number): Promise<LifecycleState> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const state = readSession(agent, await driver.snapshot(50)).state;
    if (states.includes(state) || Date.now() >= deadline) return state;
    await abortableSleep(POLL_MS);
  }
}

interface Done {
  outcome: ActionOutcome;
  detail: string;
  recovery: Recovery | null;
  /** Changes to the agent's state record. */
  update?: Partial<Pick<AgentStateRecord, 'pendingInject' | 'sessionToken' | 'parkedUntil' | 'parkReason'>> & { state?: LifecycleState };
}

async function restart(ctx: LifecycleContext, caller: Caller, agent: Agent, record: AgentStateRecord, obs: Observation): Promise<Done> {
  const driver = await ctx.openDriver(agent);
  const command = agent.startCmd ?? (driver.type === 'pty' ? driver.spec.slice('pty:'.length) : null);
  if (command === null) return { outcome: 'failed', detail: 'no start command', recovery: null };
  // A fresh agent token for the new session; the previous session's one is revoked.
  const { token, secret } = await createToken(ctx.store, caller, { agent: agent.name, role: 'agent' });
  if (record.sessionToken) await ctx.store.tokens.revoke(agent.project, record.sessionToken);
  const workdir = agent.workdir ?? ctx.defaultWorkdir;
  try {
    await driver.start({
      command,
      workdir,
      replace: true,
      env: { ...ctx.sessionEnv, SOS_TOKEN: secret, SOS_PROJECT: agent.project, SOS_AGENT: agent.name },
    });
  } catch (err) {
    // No session carries the new token: it must not stay valid (the attempt is recorded as failed).
    await ctx.store.tokens.revoke(agent.project, token.id).catch(() => undefined);
    throw err;
  }
  const state = await waitForState(agent, driver, ['idle'], ctx.readyTimeoutMs);
  const base = `restarted with ${JSON.stringify(command)} in ${workdir}`;
  if (state !== 'idle') {
    return { outcome: 'done', detail: `${base}; context pack pending: not at its prompt yet (${state})`, recovery: 'pending', update: { pendingInject: 'pack', sessionToken: token.id } };
  }
  const why = 'context after restart';
  const typed = await typeFor(agent, driver, 'pack', why, () => packLine(ctx, caller, agent, obs.held, why));
  return { outcome: 'done', detail: `${base}; context pack ${typed}`, recovery: 'pending', update: { pendingInject: null, sessionToken: token.id } };
}

async function interrupt(ctx: LifecycleContext, agent: Agent, obs: Observation): Promise<Done> {
  const driver = await ctx.openDriver(agent);
  await driver.interrupt();
  const state = await waitForState(agent, driver, ['idle'], ctx.readyTimeoutMs);
  const task = obs.held[0]?.id ?? 'no task';
  if (state !== 'idle') {
    return { outcome: 'done', detail: `interrupted (${task}); task pending: not at its prompt yet (${state})`, recovery: 'pending', update: { pendingInject: 'task' } };
  }
  const why = 'you were interrupted after no output while holding a task';
  const typed = await typeFor(agent, driver, 'task', why, () => taskLine(obs.held, why));
  return { outcome: 'done', detail: `interrupted; ${task} ${typed}`, recovery: 'pending', update: { pendingInject: null } };
}

async function checkpoint(ctx: LifecycleContext, caller: Caller, agent: Agent, obs: Observation): Promise<Done> {
  let saved = 'no memory configured: no checkpoint written';
  if (ctx.memory) {
    const { remember } = await import('../memory/service.js');
    const screen = (obs.snapshot?.screen ?? '').split('\n').slice(-10).join('\n');
    const held = obs.held.map((t) => `${t.id} [${t.status}] ${t.title}`).join('; ') || 'none';
    const text = clip(
      `Checkpoint for ${agent.name} after its context was compacted at ${momentText(nowOf(ctx))}. Held tasks: ${held}.\nLast screen lines:\n${screen}`,
      ctx.memory.maxEngramBytes,
    );
    const { id } = await remember(ctx.memory, { ...caller, agent: agent.name }, {
      text,
      kind: 'checkpoint',
      tags: ['lifecycle', 'compaction'],
      ...(obs.held[0] ? { taskId: obs.held[0].id } : {}),
    });
    saved = `checkpoint ${id} written`;
  }
  const driver = await ctx.openDriver(agent);
  const state = await waitForState(agent, driver, ['idle', 'compacted'], ctx.readyTimeoutMs);
  if (state !== 'idle' && state !== 'compacted') {
    return { outcome: 'done', detail: `${saved}; task pending: not at its prompt (${state})`, recovery: null, update: { pendingInject: 'task' } };
  }
  const why = 'your context was compacted';
  const typed = await typeFor(agent, driver, 'task', why, () => taskLine(obs.held, why));
  return { outcome: 'done', detail: `${saved}; current task ${typed}`, recovery: null, update: { pendingInject: null } };
}

async function park(ctx: LifecycleContext, caller: Caller, agent: Agent, obs: Observation, planned: PlannedAction): Promise<Done> {
  const released: string[] = [];
  const failed: string[] = [];
  for (const task of obs.held) {
    try {
      await releaseTask(taskContextOf(ctx), caller, { id: task.id });
      released.push(task.id);
    } catch (err) {
      failed.push(`${task.id} (${err instanceof SosError ? err.message : String(err)})`);
    }
  }
  const until = 'until' in planned ? (planned.until ?? null) : null;
  // runAction puts the plan's reason in front of this detail.
  const detail = [
    until !== null ? `until ${momentText(until)}` : 'until unparked',
    released.length ? `released ${released.join(', ')}` : '',
    failed.length ? `could not release ${failed.join(', ')}` : '',
  ]
    .filter(Boolean)
    .join('; ');
  return { outcome: failed.length ? 'failed' : 'done', detail, recovery: null, update: { state: 'parked', parkedUntil: until, parkReason: planned.reason } };
}

/** Tells the project's coordinators (other than the agent itself) on the bus. */
export async function escalate(ctx: LifecycleContext, agent: Agent, reason: string): Promise<Done> {
  const text = `lifecycle: ${agent.name} needs a human or a coordinator: ${reason}`;
  const { coordinators } = await escalateToCoordinators(ctx, agent.project, { from: 'sos', text, exclude: agent.name, at: nowOf(ctx) });
  if (coordinators.length === 0) return { outcome: 'escalated', detail: `${reason}; no coordinator to tell`, recovery: null };
  return { outcome: 'escalated', detail: `${reason}; told ${coordinators.join(', ')}`, recovery: null };
}

/** Types what a previous action left pending, now that the agent is at its prompt. */
async function inject(ctx: LifecycleContext, caller: Caller, agent: Agent, kind: InjectKind, obs: Observation): Promise<Done> {
  const driver = await ctx.openDriver(agent);
  const why = kind === 'pack' ? 'context after restart' : 'picking up where you left off';
  const typed = await typeFor(agent, driver, kind, why, () => (kind === 'pack' ? packLine(ctx, caller, agent, obs.held, why) : taskLine(obs.held, why)));
  return { outcome: 'done', detail: `pending ${kind === 'pack' ? 'context pack' : 'task'} ${typed}`, recovery: null, update: { pendingInject: null } };
}

/**
 * Refuses a plan whose input no action may take, before anything is written: an action's row is
 * recorded only once its input is valid. (The operator's input is checked by `parkAgent`; this is
 * the last guard for every entry point.)
 */
function checkPlan(planned: PlannedAction): void {
  if (planned.action === 'park' && planned.until != null && !isMoment(planned.until)) {
    throw new UsageError(`cannot park until ${String(planned.until)}: not a moment between 1970 and 9999`);
  }
}

/**
 * Takes the planned action (or the pending injection) for one agent and records it. Errors from
 * the session become a `failed` outcome; they never escape to the supervisor loop. The action's
 * row and the state it leads to are written in one transaction.
 */
export async function runAction(
  ctx: LifecycleContext,
  caller: Caller,
  agent: Agent,
  record: AgentStateRecord,
  obs: Observation,
  planned: PlannedAction,
): Promise<ActionRecord> {
  checkPlan(planned);
  const kind: ActionKind = planned.action === 'none' ? 'inject' : planned.action;
  let done: Done;
  try {
    switch (planned.action) {
      case 'none':
        done = await inject(ctx, caller, agent, record.pendingInject ?? 'task', obs);
        break;
      case 'restart':
        done = await restart(ctx, caller, agent, record, obs);
        break;
      case 'interrupt':
        done = await interrupt(ctx, agent, obs);
        break;
      case 'checkpoint':
        done = await checkpoint(ctx, caller, agent, obs);
        break;
      case 'park':
        done = await park(ctx, caller, agent, obs, planned);
        break;
      case 'escalate':
        done = await escalate(ctx, agent, planned.reason);
        break;
    }
  } catch (err) {
    const message = err instanceof SosError ? err.message : String(err);
    // Rows of planned actions get the reason in front below; escalations and injections carry it here.
    done = { outcome: 'failed', detail: planned.action === 'escalate' || planned.action === 'none' ? `${planned.reason}: ${message}` : `failed: ${message}`, recovery: null };
  }
  const row: Omit<ActionRecord, 'id' | 'recoveredAt'> = {
    project: agent.project,
    agent: agent.name,
    action: kind,
    fromState: record.state,
    outcome: done.outcome,
    detail: planned.action === 'escalate' || planned.action === 'none' ? done.detail : `${planned.reason} → ${done.detail}`,
    at: nowOf(ctx),
    recovery: done.recovery,
  };
  if (!done.update) return ctx.repo.addAction(row);
  const { state, ...fields } = done.update;
  const current = (await ctx.repo.get(agent.project, agent.name)) ?? record;
  const reading = state
    ? { state, confidence: 1, evidence: [{ signal: `action.${kind}`, detail: done.detail }, ...current.evidence] }
    : { state: current.state, confidence: current.confidence, evidence: current.evidence };
  let action: ActionRecord | undefined;
  await recordState(ctx, agent, current, reading, fields, async (tx) => {
    action = await ctx.repo.addAction(row, tx);
  });
  return action!;
}
