import { actingAgent, type Caller, deny, requireAdmin } from '../auth/caller.js';
import { Conflict, NotFound, UsageError } from '../errors.js';
import { getAgent, listAgents } from '../identity/agents.js';
import { getSquad, listSquads } from '../identity/squads.js';
import { newId } from '../ids.js';
import { assertName } from '../names.js';
import type { Store } from '../store/port.js';
import { abortableSleep } from '../time.js';
import type { Bus } from './port.js';
import {
  ACK_TIMEOUT_MS,
  type AckWatch,
  type Delivery,
  type Envelope,
  type InboxItem,
  PRIORITIES,
  type Priority,
  type SkippedRow,
  type Target,
} from './types.js';
import { quote, refuseNul } from '../safe-text.js';
import { ackIn, requestIdIn, sameRef, type TextAck } from './text-ack.js';

/**
 * The bus rules, the same on every adapter: who may send what to whom, validation before any
 * write, the ack protocol and its sweep. CLI commands and MCP tools call these functions.
 */

export interface BusContext {
  store: Store;
  bus: Bus;
  maxMessageBytes: number;
  presenceTtlMs: number;
  now?: () => number;
}

/** sos's `msg_<26 chars>`, or a UUID: upstream SOS's spelling of a message id (the Redis bus reads both). */
const MESSAGE_ID = /^(?:msg_[0-9a-z]{26}|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})$/;
const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,200}$/;
/** A request id as `[request_id:…]` carries it (text-ack.ts), for `ack` by request. */
const REQUEST_REF = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;

const now = (ctx: BusContext) => (ctx.now ?? Date.now)();

export function assertMessageId(id: string): string {
  if (!MESSAGE_ID.test(id)) throw new UsageError(`invalid message id ${quote(id)}: expected msg_ followed by 26 characters, or a UUID`);
  return id;
}

/** The agent the caller speaks as; the operator must say who with --as. Observers never send. */
async function speaker(ctx: BusContext, caller: Caller, action: string): Promise<string> {
  if (caller.role === 'observer') return deny(ctx.store, caller, action, 'is not allowed with an observer token');
  if (caller.agent === null) {
    throw new UsageError(`${action} needs an agent to act as`, { hint: 'pass --as <agent> (or set SOS_AGENT), or use an agent token' });
  }
  await getAgent(ctx.store, caller, caller.agent);
  return caller.agent;
}

/** The streams an agent reads, given the project's squads: its inbox, its squads, the broadcast. */
export function streamsFrom(squads: { name: string; members: string[] }[], agent: string): Target[] {
  const mine = squads.filter((s) => s.members.includes(agent));
  return [{ kind: 'agent', name: agent }, ...mine.map((s): Target => ({ kind: 'squad', name: s.name })), { kind: 'broadcast' }];
}

/** The streams an agent reads: its inbox, its squads, the project broadcast. */
export async function streamsOf(store: Store, caller: Caller, agent: string): Promise<Target[]> {
  return streamsFrom(await listSquads(store, caller), agent);
}

export interface SendInput {
  /** An agent name or `agent:<name>`, `squad:<name>`/`workspace:<id>`/a squad's bare name, or `all`. */
  to: string;
  text: string;
  type?: string;
  replyTo?: string;
  ack?: boolean;
  critical?: boolean;
  priority?: string;
  expiresInMs?: number;
  idempotencyKey?: string;
}

export interface SendResult {
  id: string;
  duplicate: boolean;
  to: string;
  recipients: string[];
  ackRequired: boolean;
  /** When the text was an ack (`{ack_for: …, ok: …}`): the messages it acknowledged. */
  ack?: { for: string[]; ok: boolean };
}

/**
 * Where `to` points. The forms SOS agents are taught work as well as sos's own: an agent name or
 * `agent:<name>`; `squad:<name>`, `workspace:<id>` or a bare name that is no agent but a squad
 * (an upstream "workspace id" is a squad); `all` for everyone.
 */
async function resolveTarget(ctx: BusContext, caller: Caller, to: string, from: string): Promise<{ target: Target; recipients: string[] }> {
  if (to === 'all') {
    const recipients = (await listAgents(ctx.store, caller)).map((a) => a.name).filter((n) => n !== from);
    if (recipients.length === 0) throw new Conflict(`project "${caller.project}" has no other agents to broadcast to`);
    return { target: { kind: 'broadcast' }, recipients };
  }
  const prefix = /^(agent|squad|workspace):/.exec(to)?.[1];
  const name = prefix === undefined ? to : to.slice(prefix.length + 1);
  let squad = prefix === 'squad' || prefix === 'workspace' ? await getSquad(ctx.store, caller, assertName('squad', name)) : undefined;
  if (prefix === undefined && !(await ctx.store.agents.get(caller.project, assertName('agent', name)))) {
    squad = await ctx.store.squads.get(caller.project, name);
  }
  if (squad !== undefined) {
    const recipients = squad.members.filter((m) => m !== from);
    if (recipients.length === 0) throw new Conflict(`squad "${squad.name}" has no members besides ${from} to deliver to`);
    return { target: { kind: 'squad', name: squad.name }, recipients };
  }
  const agent = await getAgent(ctx.store, caller, assertName('agent', name));
  return { target: { kind: 'agent', name: agent.name }, recipients: [agent.name] };
}

/** How a target reads back to the sender: the agent's name, `squad:<name>`, or `all`. */
const targetText = (target: Target): string => (target.kind === 'broadcast' ? 'all' : target.kind === 'squad' ? `squad:${target.name}` : target.name);

/** A delivery to `who` of a message that asked for an ack: the message and its original. */
interface Ackable {
  message: Envelope;
  /** The message the ack is for: the original a re-send repeats. */
  original: string;
}

/**
 * What `ref` names among the messages sent to `who`: a message id (either spelling), or the
 * request id of messages still waiting for `who`'s ack (every one of them, re-sends included).
 */
async function ackablesFor(ctx: BusContext, project: string, who: string, ref: string): Promise<Ackable[]> {
  if (MESSAGE_ID.test(ref)) {
    const found = await ctx.bus.get(project, ref);
    if (found && found.deliveries.some((d) => d.recipient === who)) return [{ message: found.message, original: found.message.resendOf ?? found.message.id }];
  }
  return (await ctx.bus.pendingAcks(project))
    .filter((w) => w.unacked.includes(who) && (sameRef(ref, w.message.requestId) || sameRef(ref, w.message.id)))
    .map((w) => ({ message: w.message, original: w.message.resendOf ?? w.message.id }));
}

/** The state change of an ack: `who`'s delivery of the message, and of the original it re-sends, acked. */
async function markAcked(ctx: BusContext, project: string, who: string, found: Ackable, at: number): Promise<void> {
  await ctx.bus.setState(project, found.message.id, who, 'acked', at);
  if (found.original !== found.message.id) await ctx.bus.setState(project, found.original, who, 'acked', at);
}

/** Validates everything, then appends durably; returns once the message is persisted. */
export async function sendMessage(ctx: BusContext, caller: Caller, input: SendInput): Promise<SendResult> {
  const text = input.text;
  if (text.trim() === '') throw new UsageError('the message is empty');
  refuseNul(text, 'the message');
  const bytes = Buffer.byteLength(text, 'utf8');
  if (bytes > ctx.maxMessageBytes) {
    throw new UsageError(`the message is ${bytes} bytes; the limit is ${ctx.maxMessageBytes}`, {
      hint: 'send a path or a link instead, or raise SOS_MAX_MESSAGE_BYTES',
    });
  }
  const priority = (input.priority ?? (input.critical ? 'critical' : 'normal')) as Priority;
  if (!PRIORITIES.includes(priority)) throw new UsageError(`invalid priority ${quote(input.priority)}: use ${PRIORITIES.join(', ')}`);
  if (input.idempotencyKey !== undefined && !IDEMPOTENCY_KEY.test(input.idempotencyKey)) {
    throw new UsageError('an idempotency key is 1-200 printable characters without spaces');
  }
  if (input.replyTo !== undefined) assertMessageId(input.replyTo);
  if (input.expiresInMs !== undefined && !(input.expiresInMs > 0)) throw new UsageError('--expires must be positive');
  const type = input.type ?? 'message';
  if (!/^[a-z][a-z0-9._-]{0,39}$/.test(type)) throw new UsageError(`invalid message type ${quote(type)}`);

  const from = await speaker(ctx, caller, 'sending a message');
  const { target, recipients } = await resolveTarget(ctx, caller, input.to, from);
  if (input.replyTo !== undefined && !(await ctx.bus.get(caller.project, input.replyTo))) {
    throw new NotFound(`message ${input.replyTo} (--reply-to) does not exist in project "${caller.project}"`);
  }
  const at = now(ctx);
  // The ack protocol in the text (text-ack.ts): a reply that starts with {ack_for, ok} acks the
  // request it names; [request_id:<id>] anywhere asks for one. An ack that names nothing sent to
  // the sender is an ordinary message.
  const textAck = type === 'message' ? ackIn(text) : null;
  const acked = textAck === null ? [] : await ackablesFor(ctx, caller.project, from, textAck.ref);
  if (textAck !== null && acked.length > 0) return sendTextAck(ctx, caller, { from, target, recipients, textAck, acked, replyTo: input.replyTo ?? null, at, input });
  const textRequest = type === 'message' ? requestIdIn(text) : null;
  const ackRequired = input.ack === true || input.critical === true || textRequest !== null;
  const envelope: Envelope = {
    id: newId('msg', at),
    project: caller.project,
    from,
    target,
    type,
    text,
    contentType: 'text/plain',
    replyTo: input.replyTo ?? null,
    requestId: textRequest ?? (ackRequired ? newId('req', at) : null),
    ackRequired,
    ackTimeoutMs: ackRequired ? (input.critical || priority === 'critical' ? ACK_TIMEOUT_MS.critical : ACK_TIMEOUT_MS.routine) : null,
    priority,
    createdAt: at,
    expiresAt: input.expiresInMs === undefined ? null : at + input.expiresInMs,
    recipients,
    ackFor: null,
    ackOk: null,
    resendOf: null,
  };
  const result = await ctx.bus.append(envelope, input.idempotencyKey ?? null);
  return { id: result.id, duplicate: result.duplicate, to: targetText(target), recipients, ackRequired };
}

/**
 * A text ack: the state change of `sos ack` for every message it names, then the message itself
 * stored as the ack reply (type `ack`, for the original, its summary as the text), so the sender's
 * `--wait-ack` and the sweep see it as they see any ack.
 */
async function sendTextAck(
  ctx: BusContext,
  caller: Caller,
  a: { from: string; target: Target; recipients: string[]; textAck: TextAck; acked: Ackable[]; replyTo: string | null; at: number; input: SendInput },
): Promise<SendResult> {
  for (const found of a.acked) await markAcked(ctx, caller.project, a.from, found, a.at);
  const first = a.acked[0]!;
  const envelope: Envelope = {
    id: newId('msg', a.at),
    project: caller.project,
    from: a.from,
    target: a.target,
    type: 'ack',
    text: a.textAck.note ?? (a.textAck.ok ? 'ok' : 'refused'),
    contentType: 'text/plain',
    replyTo: a.replyTo ?? first.original,
    requestId: first.message.requestId,
    ackRequired: false,
    ackTimeoutMs: null,
    priority: first.message.priority,
    createdAt: a.at,
    expiresAt: null,
    recipients: a.recipients,
    ackFor: first.original,
    ackOk: a.textAck.ok,
    resendOf: null,
  };
  const result = await ctx.bus.append(envelope, a.input.idempotencyKey ?? null);
  return {
    id: result.id,
    duplicate: result.duplicate,
    to: targetText(a.target),
    recipients: a.recipients,
    ackRequired: false,
    ack: { for: [...new Set(a.acked.map((f) => f.original))], ok: a.textAck.ok },
  };
}

export interface InboxResult {
  agent: string;
  unread: InboxItem[];
  /** With `all`: earlier messages, already read, newest last. */
  history: InboxItem[];
  /** Stored rows that could not be read: not shown, left unread, counted as `bus_rows_skipped`. */
  skipped: SkippedRow[];
}

/** What the adapter skipped since the last call (less what `seen` holds), counted once per read. */
async function takeSkipped(ctx: BusContext, project: string, seen?: Set<string>): Promise<SkippedRow[]> {
  const skipped = ctx.bus.drainSkipped().filter((s) => !seen?.has(s.id));
  for (const s of skipped) seen?.add(s.id);
  if (skipped.length > 0) await ctx.store.counters.add(project, 'bus_rows_skipped', skipped.length);
  return skipped;
}

export async function readInbox(
  ctx: BusContext,
  caller: Caller,
  input: { agent?: string; all?: boolean; limit?: number },
): Promise<InboxResult> {
  const limit = input.limit ?? 50;
  if (!Number.isInteger(limit) || limit < 1 || limit > 10_000) throw new UsageError('--limit must be a whole number from 1 to 10000');
  if (input.agent !== undefined) assertName('agent', input.agent);
  const agent = await actingAgent(ctx.store, caller, input.agent ?? undefined, 'reading an inbox');
  await getAgent(ctx.store, caller, agent);
  const streams = await streamsOf(ctx.store, caller, agent);
  const unread = await ctx.bus.takeUnread(caller.project, agent, streams, limit, now(ctx));
  let history: InboxItem[] = [];
  if (input.all) {
    const taken = new Set(unread.map((i) => i.message.id));
    history = (await ctx.bus.history(caller.project, agent, streams, limit)).filter((i) => !taken.has(i.message.id));
  }
  return { agent, unread, history, skipped: await takeSkipped(ctx, caller.project) };
}

/**
 * Streams the agent's new messages to `onItems` until the signal aborts: takes what is unread,
 * then sleeps until the bus wakes it (no fast polling).
 */
export async function followInbox(
  ctx: BusContext,
  caller: Caller,
  input: { agent?: string; signal: AbortSignal; onItems: (items: InboxItem[]) => void | Promise<void>; onSkipped?: (rows: SkippedRow[]) => void },
): Promise<void> {
  const agent = await actingAgent(ctx.store, caller, input.agent, 'reading an inbox');
  await getAgent(ctx.store, caller, agent);
  const streams = await streamsOf(ctx.store, caller, agent);
  const seen = new Set<string>();
  while (!input.signal.aborted) {
    const items = await ctx.bus.takeUnread(caller.project, agent, streams, 500, now(ctx));
    const skipped = await takeSkipped(ctx, caller.project, seen);
    if (skipped.length > 0) input.onSkipped?.(skipped);
    if (items.length > 0) {
      await input.onItems(items);
      continue;
    }
    // An unreadable row stays unread, so a wait would return at once: look again in a second.
    if (seen.size > 0) {
      await abortableSleep(1_000, input.signal);
      continue;
    }
    await ctx.bus.waitForWake(caller.project, agent, streams, { timeoutMs: 30_000, signal: input.signal });
  }
}

export interface AckResult {
  id: string;
  ok: boolean;
  ackMessageId: string | null;
}

/** Marks the message acked for the caller and sends `{ack_for, ok}` back to its sender. */
export async function ackMessage(
  ctx: BusContext,
  caller: Caller,
  input: { id: string; ok: boolean; note?: string },
): Promise<AckResult> {
  // `msg_…` claims to be a message id: a malformed one is a usage error, not a request id.
  if (!MESSAGE_ID.test(input.id) && (!REQUEST_REF.test(input.id) || /^msg_/i.test(input.id))) {
    throw new UsageError(`invalid message id ${quote(input.id)}: expected msg_ followed by 26 characters, a UUID, or a request id`);
  }
  refuseNul(input.note, 'the ack note');
  const who = await speaker(ctx, caller, 'acknowledging a message');
  const acked = await ackablesFor(ctx, caller.project, who, input.id);
  if (acked.length === 0) {
    const what = MESSAGE_ID.test(input.id) ? `message ${input.id}` : `no message waiting for an ack with request id ${input.id}`;
    throw new NotFound(MESSAGE_ID.test(input.id) ? `${what} was not sent to ${who} in project "${caller.project}"` : `${what} was sent to ${who} in project "${caller.project}"`);
  }
  const at = now(ctx);
  const { message, original } = acked[0]!;
  let ackMessageId: string | null = null;
  const sender = await ctx.store.agents.get(caller.project, message.from);
  if (sender && sender.name !== who) {
    const reply: Envelope = {
      ...message,
      id: newId('msg', at),
      from: who,
      target: { kind: 'agent', name: sender.name },
      type: 'ack',
      text: input.note ?? (input.ok ? 'ok' : 'refused'),
      replyTo: original,
      ackRequired: false,
      ackTimeoutMs: null,
      priority: message.priority,
      createdAt: at,
      expiresAt: null,
      recipients: [sender.name],
      ackFor: original,
      ackOk: input.ok,
      resendOf: null,
    };
    // The reply goes out before the deliveries read acked, so a sender that sees them acked
    // (waitForAck) already finds a refusal in its stream. A crash in between leaves them unacked:
    // the recipient acks again, and the key makes that repeat write no second reply.
    ackMessageId = (await ctx.bus.append(reply, `sos-ack:${original}`)).id;
  }
  for (const found of acked) await markAcked(ctx, caller.project, who, found, at);
  return { id: original, ok: input.ok, ackMessageId };
}

export type AckOutcome = 'acked' | 'refused' | 'timeout';

/** Blocks until every recipient acked (or one refused) or the time runs out. */
export async function waitForAck(ctx: BusContext, caller: Caller, id: string, timeoutMs: number, signal?: AbortSignal): Promise<AckOutcome> {
  const deadline = Date.now() + timeoutMs;
  const from = await speaker(ctx, caller, 'waiting for an ack');
  const streams: Target[] = [{ kind: 'agent', name: from }];
  for (;;) {
    const found = await ctx.bus.get(caller.project, id);
    if (!found) throw new NotFound(`message ${id} does not exist`);
    const replies = (await ctx.bus.history(caller.project, from, streams, 500)).filter(
      (i) => i.message.type === 'ack' && i.message.ackFor === id,
    );
    if (replies.some((r) => r.message.ackOk === false)) return 'refused';
    if (found.deliveries.length > 0 && found.deliveries.every((d) => d.state === 'acked')) return 'acked';
    const left = deadline - Date.now();
    if (left <= 0 || signal?.aborted) return 'timeout';
    const started = Date.now();
    await ctx.bus.waitForWake(caller.project, from, streams, { timeoutMs: Math.min(left, 1_000), ...(signal ? { signal } : {}) });
    // The sender may have other unread mail, which makes the wait return at once: don't spin.
    if (Date.now() - started < 50) await abortableSleep(50, signal);
  }
}

export async function showMessage(
  ctx: BusContext,
  caller: Caller,
  id: string,
): Promise<{ message: Envelope; deliveries: Delivery[] }> {
  assertMessageId(id);
  const found = await ctx.bus.get(caller.project, id);
  if (!found) throw new NotFound(`message ${id} does not exist in project "${caller.project}"`);
  const involved = caller.agent !== null && (found.message.from === caller.agent || found.deliveries.some((d) => d.recipient === caller.agent));
  if (!involved && caller.role !== 'operator' && caller.role !== 'admin') {
    return deny(ctx.store, caller, `reading message ${id}`, 'is allowed only to its sender, its recipients and admins');
  }
  return found;
}

export interface PendingAck extends AckWatch {
  deadline: number;
  overdue: boolean;
}

export async function pendingAcks(ctx: BusContext, caller: Caller, input: { overdue?: boolean } = {}): Promise<PendingAck[]> {
  const at = now(ctx);
  const all = (await ctx.bus.pendingAcks(caller.project)).map((w) => {
    const deadline = w.message.createdAt + (w.message.ackTimeoutMs ?? ACK_TIMEOUT_MS.routine);
    return { ...w, deadline, overdue: deadline <= at };
  });
  const visible =
    caller.role === 'operator' || caller.role === 'admin'
      ? all
      : all.filter((w) => w.message.from === caller.agent || w.unacked.includes(caller.agent ?? ''));
  return input.overdue ? visible.filter((w) => w.overdue) : visible;
}

export interface SweepReport {
  resent: { id: string; resendId: string; to: string[] }[];
  escalated: { id: string; coordinators: string[]; messageIds: string[] }[];
}

/**
 * The ack sweep, meant for a timer in the daemon: an unacked message past its timeout is
 * re-sent once to those who have not acked; past a second timeout it is escalated to the
 * project's coordinators. Each step happens once per message.
 */
/**
 * One high-priority `escalation` message to each of the project's coordinators (but `exclude`,
 * the agent the escalation is about). Returns who was told and the message ids.
 */
/**
 * A message from sos itself (`sos`, `brain`: not a registered agent) to one agent: escalations,
 * budget announcements, the brain's messages. A repeated idempotency key sends nothing again.
 */
export async function systemMessage(
  ctx: Pick<BusContext, 'bus'>,
  project: string,
  input: { from: string; to: string; type: 'escalation' | 'text'; text: string; priority: 'high' | 'normal'; replyTo?: string | null; at: number; idempotencyKey?: string },
): Promise<string> {
  const envelope: Envelope = {
    id: newId('msg', input.at),
    project,
    from: input.from,
    target: { kind: 'agent', name: input.to },
    type: input.type,
    text: input.text,
    contentType: 'text/plain',
    replyTo: input.replyTo ?? null,
    requestId: null,
    ackRequired: false,
    ackTimeoutMs: null,
    priority: input.priority,
    createdAt: input.at,
    expiresAt: null,
    recipients: [input.to],
    ackFor: null,
    ackOk: null,
    resendOf: null,
  };
  return (await ctx.bus.append(envelope, input.idempotencyKey ?? null)).id;
}

export async function escalateToCoordinators(
  ctx: Pick<BusContext, 'store' | 'bus'>,
  project: string,
  input: { from: string; text: string; replyTo?: string | null; exclude?: string; at: number },
): Promise<{ coordinators: string[]; messageIds: string[] }> {
  const coordinators = (await ctx.store.agents.list(project)).filter((a) => a.role === 'coordinator' && a.name !== input.exclude).map((a) => a.name);
  const messageIds: string[] = [];
  for (const coordinator of coordinators) {
    messageIds.push(await systemMessage(ctx, project, { from: input.from, to: coordinator, type: 'escalation', text: input.text, priority: 'high', replyTo: input.replyTo ?? null, at: input.at }));
  }
  return { coordinators, messageIds };
}

export async function sweepAcks(ctx: BusContext, caller: Caller): Promise<SweepReport> {
  await requireAdmin(ctx.store, caller, 'sweeping acks');
  const report: SweepReport = { resent: [], escalated: [] };
  const at = now(ctx);
  for (const watch of await ctx.bus.pendingAcks(caller.project)) {
    const { message } = watch;
    const timeout = message.ackTimeoutMs ?? ACK_TIMEOUT_MS.routine;
    if (watch.resentAt === null && at >= message.createdAt + timeout) {
      const resend: Envelope = {
        ...message,
        id: newId('msg', at),
        createdAt: at,
        recipients: watch.unacked,
        ackRequired: false,
        ackTimeoutMs: null,
        resendOf: message.id,
        text: `(re-sent: no ack yet) ${message.text}`,
      };
      await ctx.bus.append(resend, null);
      await ctx.bus.markAckEvent(caller.project, message.id, 'resent', at);
      report.resent.push({ id: message.id, resendId: resend.id, to: watch.unacked });
    } else if (watch.resentAt !== null && watch.escalatedAt === null && at >= watch.resentAt + timeout) {
      const text = `ack overdue: ${message.from} → ${watch.unacked.join(', ')}: ${message.id} "${message.text.slice(0, 200)}"`;
      const { coordinators, messageIds } = await escalateToCoordinators(ctx, caller.project, { from: message.from, text, replyTo: message.id, at });
      await ctx.bus.markAckEvent(caller.project, message.id, 'escalated', at);
      report.escalated.push({ id: message.id, coordinators, messageIds });
    }
  }
  return report;
}

export async function heartbeat(ctx: BusContext, caller: Caller, input: { agent?: string } = {}): Promise<{ agent: string; at: number; ttlMs: number }> {
  if (input.agent !== undefined) assertName('agent', input.agent);
  const agent = await actingAgent(ctx.store, caller, input.agent, 'sending a heartbeat');
  await getAgent(ctx.store, caller, agent);
  const at = now(ctx);
  await ctx.bus.heartbeat(caller.project, agent, at, ctx.presenceTtlMs);
  return { agent, at, ttlMs: ctx.presenceTtlMs };
}

export interface Peer {
  name: string;
  kind: string;
  role: string;
  online: boolean;
  lastSeen: number | null;
  unread: number;
}

export async function listPeers(ctx: BusContext, caller: Caller): Promise<Peer[]> {
  const agents = await listAgents(ctx.store, caller);
  const presence = new Map((await ctx.bus.presence(caller.project)).map((p) => [p.agent, p]));
  const at = now(ctx);
  const squads = await listSquads(ctx.store, caller);
  const peers: Peer[] = [];
  for (const agent of agents) {
    const seen = presence.get(agent.name);
    const streams = streamsFrom(squads, agent.name);
    peers.push({
      name: agent.name,
      kind: agent.kind,
      role: agent.role,
      online: seen !== undefined && at - seen.lastSeen < seen.ttlMs,
      lastSeen: seen?.lastSeen ?? null,
      unread: await ctx.bus.countUnread(caller.project, agent.name, streams, at),
    });
  }
  return peers;
}
