import { z } from 'zod';
import { contextPack, type MemoryContext, recall, remember } from '../memory/service.js';
import type { Caller } from '../auth/caller.js';
import { ackMessage, type BusContext, listPeers, readInbox, type SendInput, sendMessage } from '../bus/service.js';
import { type InboxItem, PRIORITIES, type Target } from '../bus/types.js';
import type { PriceTable } from '../economy/prices.js';
import { announceCrossings } from '../economy/announce.js';
import { recordUsage } from '../economy/service.js';
import { UsageError } from '../errors.js';
import { joinWorkspace, leaveSquad } from '../identity/squads.js';
import { checkDuration, MAX_WAIT_MS, momentText } from '../time.js';
import {
  acceptHandoff,
  claimTask,
  completeTask,
  createTask,
  failTask,
  handoffTask,
  heartbeatTask,
  listTasks,
  type TaskContext,
} from '../tasks/service.js';
import type { Task } from '../tasks/types.js';

/**
 * The bus as MCP tools: each one validates its arguments with zod and calls the same service
 * function as the CLI. Every description is read into each agent's context on every turn, so
 * they stay one short sentence; results are compact, snake_case JSON with empty fields left out.
 */

/** What the tools run against: the bus, the task engine over it, and when to stop waiting. */
export interface McpContext {
  bus: BusContext;
  tasks: TaskContext;
  memory: MemoryContext;
  /** The price table in force (`SOS_PRICES` overlaid); default the built-in one. */
  prices?: PriceTable;
}

export interface ToolContext extends McpContext {
  /** Aborted when the client cancels the call or the server shuts down. */
  signal: AbortSignal;
}

export interface ToolSpec<S extends z.ZodObject = z.ZodObject> {
  name: string;
  description: string;
  /**
   * The arguments. A plain (not strict) object: the server refuses names it does not list, once
   * for every tool (`parseArguments` in server.ts), so the tool list carries no
   * `additionalProperties` per tool.
   */
  input: S;
  // Method syntax on purpose: a tool with a narrower schema still fits in `ToolSpec[]`.
  run(ctx: ToolContext, caller: Caller, args: z.infer<S>): Promise<unknown>;
}

const tool = <S extends z.ZodObject>(spec: ToolSpec<S>): ToolSpec<S> => spec;

const iso = (ms: number | null) => (ms === null ? undefined : momentText(ms));

/** The address a reply would use: an agent name, `squad:<name>` or `all`. */
const address = (t: Target) => (t.kind === 'agent' ? t.name : t.kind === 'squad' ? `squad:${t.name}` : 'all');

function messageView({ message: m, state }: InboxItem) {
  return {
    id: m.id,
    from: m.from,
    to: address(m.target),
    type: m.type,
    text: m.text,
    priority: m.priority,
    ...(m.replyTo ? { reply_to: m.replyTo } : {}),
    ...(m.ackRequired ? { ack_required: true } : {}),
    ...(m.ackFor ? { ack_for: m.ackFor, ok: m.ackOk } : {}),
    created: iso(m.createdAt),
    state,
  };
}

async function send(ctx: BusContext, caller: Caller, input: SendInput) {
  const r = await sendMessage(ctx, caller, input);
  return {
    id: r.id,
    to: r.to,
    recipients: r.recipients,
    ...(r.ackRequired ? { ack_required: true } : {}),
    ...(r.ack ? { acked: r.ack.for, ok: r.ack.ok } : {}),
    ...(r.duplicate ? { duplicate: true } : {}),
  };
}

/**
 * A task as the tools return it (and the REST API, which shares the shape). `brief` (task_list)
 * leaves out the long texts, description and result; the fence and lease show only while someone
 * holds the task.
 */
export function taskView(t: Task, brief = false) {
  return {
    id: t.id,
    title: t.title,
    status: t.status,
    priority: t.priority,
    ...(t.squad !== null ? { squad: t.squad } : {}),
    ...(t.labels.length ? { labels: t.labels } : {}),
    ...(t.requires.length ? { requires: t.requires } : {}),
    ...(t.dependsOn.length ? { depends_on: t.dependsOn } : {}),
    ...(t.assignee !== null ? { assignee: t.assignee } : {}),
    ...(t.claimant !== null ? { claimant: t.claimant, fence: t.attempt, lease_until: iso(t.leaseUntil) } : {}),
    ...(t.handoff ? { handoff: { from: t.handoff.from, to: t.handoff.to, summary: t.handoff.summary, ...(t.handoff.memories.length ? { memories: t.handoff.memories } : {}) } } : {}),
    ...(!brief && t.description !== null ? { description: t.description } : {}),
    ...(!brief && t.result !== null ? { result: t.result } : {}),
    ...(t.error !== null ? { error: t.error } : {}),
    ...(t.artifacts.length ? { artifacts: t.artifacts } : {}),
  };
}

const taskResult = (r: { task: Task; replayed: boolean }) => ({ ...taskView(r.task), ...(r.replayed ? { replayed: true } : {}) });

/** Longest a task_claim waits for work: a tool call should not hold the agent's turn for long. */
export const MAX_CLAIM_WAIT_SECONDS = 60;

/** The task service's bounds on a lease (it refuses anything outside them too). */
const MIN_LEASE_SECONDS = 1;
const MAX_LEASE_MS = 7 * 86_400_000;

/** A number of seconds as milliseconds, refused unless finite and from `min` seconds to `maxMs`. */
function seconds(value: number | undefined, what: string, min: number, maxMs: number): number | undefined {
  if (value === undefined) return undefined;
  // The minimum is checked here to say it in the caller's unit ("lease_seconds must be 1 or
  // more", not "at least 1s"). checkDuration bounds the rest.
  if (!(value >= min)) throw new UsageError(`${what} must be ${min} or more`);
  return checkDuration(value * 1000, what, maxMs, min * 1000);
}

/**
 * Whole numbers are checked here, not in the schema: zod writes a JSON Schema integer with
 * ±2^53 bounds, 55 bytes a field in a tool list every agent reads on every turn.
 */
function whole<T extends number | undefined>(value: T, what: string, min: number): T {
  if (value !== undefined && (!Number.isInteger(value) || value < min)) throw new UsageError(`${what} must be a whole number, ${min} or more`);
  return value;
}

/**
 * One argument under two names: sos's own and the one SOS agents are taught (`message` for
 * `text`, `content`, `workspace_id`…). Either may be given, not two different values.
 */
function either(a: string | undefined, b: string | undefined, names: string): string | undefined {
  if (a !== undefined && b !== undefined && a !== b) throw new UsageError(`give ${names.replace('|', ' or ')}, not both`);
  return a ?? b;
}

/** `either`, for an argument one of the two names must carry. */
function needed(a: string | undefined, b: string | undefined, names: string): string {
  const value = either(a, b, names);
  if (value === undefined) throw new UsageError(`${names.replace('|', ' (or ')}) is required`);
  return value;
}

const opt = <K extends string, V>(k: K, v: V | undefined): { [P in K]?: V } => (v === undefined ? {} : ({ [k]: v } as { [P in K]: V }));

const taskId = z.string().describe('task id (tsk_…)');
const fence = z.number().describe('fence from task_claim');
const held = (a: { id: string; fence: number }) => ({ id: a.id, fence: whole(a.fence, 'fence', 1) });

export const TOOLS: readonly ToolSpec[] = [
  tool({
    name: 'send',
    description: 'Send a message to an agent, a squad or everyone.',
    input: z.object({
      to: z.string().describe('agent, agent:<name>, squad:<name>, or all'),
      text: z.string().optional().describe('or message'),
      message: z.string().optional(),
      reply_to: z.string().optional().describe('id of the message this answers'),
      ack: z.boolean().optional().describe('ask for an ack'),
      priority: z.enum(PRIORITIES).optional(),
      idempotency_key: z.string().optional().describe('a repeat with this key sends nothing'),
    }),
    run: (ctx, caller, a) =>
      send(ctx.bus, caller, {
        to: a.to,
        text: needed(a.text, a.message, 'text|message'),
        ...(a.reply_to !== undefined ? { replyTo: a.reply_to } : {}),
        ...(a.ack !== undefined ? { ack: a.ack } : {}),
        ...(a.priority !== undefined ? { priority: a.priority } : {}),
        ...(a.idempotency_key !== undefined ? { idempotencyKey: a.idempotency_key } : {}),
      }),
  }),
  tool({
    name: 'inbox',
    description: 'Read your unread messages (marks them read); all=true adds earlier ones.',
    input: z.object({
      agent: z.string().optional().describe('your own name'),
      limit: z.int().min(1).max(10_000).optional().describe('max per list, default 50'),
      all: z.boolean().optional().describe('include read history'),
    }),
    async run(ctx, caller, a) {
      const r = await readInbox(ctx.bus, caller, {
        ...opt('agent', a.agent),
        ...(a.limit !== undefined ? { limit: a.limit } : {}),
        ...(a.all ? { all: true } : {}),
      });
      return {
        agent: r.agent,
        unread: r.unread.map(messageView),
        ...(a.all ? { history: r.history.map(messageView) } : {}),
      };
    },
  }),
  tool({
    name: 'ack',
    description: 'Acknowledge a message; its sender gets an ack reply.',
    input: z.object({
      id: z.string().describe('message or request id'),
      ok: z.boolean().optional().describe('false refuses; default true'),
      note: z.string().optional().describe('short reply'),
    }),
    async run(ctx, caller, a) {
      const r = await ackMessage(ctx.bus, caller, {
        id: a.id,
        ok: a.ok ?? true,
        ...(a.note !== undefined ? { note: a.note } : {}),
      });
      return { id: r.id, ok: r.ok, ...(r.ackMessageId ? { ack_message_id: r.ackMessageId } : {}) };
    },
  }),
  tool({
    name: 'broadcast',
    description: "Send a message to a squad's members, or to every agent of the project.",
    input: z.object({
      text: z.string().optional().describe('or message'),
      message: z.string().optional(),
      squad: z.string().optional().describe('or workspace_id; default everyone'),
      workspace_id: z.string().optional(),
    }),
    run: (ctx, caller, a) => {
      const squad = either(a.squad, a.workspace_id, 'squad|workspace_id');
      return send(ctx.bus, caller, { to: squad === undefined ? 'all' : `squad:${squad}`, text: needed(a.text, a.message, 'text|message') });
    },
  }),
  tool({
    name: 'workspace_join',
    description: 'Join a squad (workspace); a coordinator creates it on first join.',
    input: z.object({ workspace_id: z.string(), summary: z.string().optional() }),
    run: async (ctx, caller, a) => {
      const r = await joinWorkspace(ctx.bus.store, caller, a.workspace_id, a.summary);
      return { workspace_id: r.squad, agent: r.agent, joined: r.changed, ...(r.created ? { created: true } : {}) };
    },
  }),
  tool({
    name: 'workspace_leave',
    description: 'Leave a squad (workspace).',
    input: z.object({ workspace_id: z.string() }),
    run: async (ctx, caller, a) => {
      const r = await leaveSquad(ctx.bus.store, caller, a.workspace_id);
      return { workspace_id: r.squad, agent: r.agent, left: r.changed };
    },
  }),
  tool({
    name: 'peers',
    description: "List the project's agents: role, online, unread count.",
    input: z.object({}),
    async run(ctx, caller) {
      return (await listPeers(ctx.bus, caller)).map((p) => ({
        name: p.name,
        kind: p.kind,
        role: p.role,
        online: p.online,
        ...(p.lastSeen !== null ? { last_seen: iso(p.lastSeen) } : {}),
        unread: p.unread,
      }));
    },
  }),
  tool({
    name: 'whoami',
    description: 'Show who you are on the bus: project, agent, role.',
    input: z.object({}),
    run: async (_ctx, caller) => ({ project: caller.project, agent: caller.agent, role: caller.role, via: caller.via }),
  }),
  tool({
    name: 'task_create',
    description: 'Create a task for any agent (or squad) to claim.',
    input: z.object({
      title: z.string(),
      description: z.string().optional(),
      priority: z.union([z.string(), z.number()]).optional().describe('critical|high|normal|low or 0-100'),
      squad: z.string().optional(),
      labels: z.array(z.string()).optional(),
      requires: z.array(z.string()).optional().describe('capabilities the claimant needs'),
      depends_on: z.array(z.string()).optional().describe('task ids that must finish first'),
      assignee: z.string().optional().describe('only this agent may claim it'),
      idempotency_key: z.string().optional(),
    }),
    run: async (ctx, caller, a) =>
      taskResult(
        await createTask(ctx.tasks, caller, {
          title: a.title,
          ...opt('description', a.description),
          ...opt('priority', a.priority),
          ...opt('squad', a.squad),
          ...opt('labels', a.labels),
          ...opt('requires', a.requires),
          ...opt('dependsOn', a.depends_on),
          ...opt('assignee', a.assignee),
          ...opt('idempotencyKey', a.idempotency_key),
        }),
      ),
  }),
  tool({
    name: 'task_list',
    description: 'List tasks you can see, highest priority first.',
    input: z.object({
      status: z.array(z.string()).optional().describe('e.g. queued, claimed, done'),
      squad: z.string().optional(),
      ready: z.boolean().optional().describe('only claimable now'),
      limit: z.int().min(1).max(1000).optional().describe('default 50'),
    }),
    async run(ctx, caller, a) {
      const found = await listTasks(ctx.tasks, caller, {
        ...opt('statuses', a.status),
        ...opt('squad', a.squad),
        ...(a.ready ? { ready: true } : {}),
        limit: a.limit ?? 50,
      });
      return found.map((t) => taskView(t, true));
    },
  }),
  tool({
    name: 'task_claim',
    description: 'Claim the best ready task you may take (or one by id); returns its fence.',
    input: z.object({
      id: taskId.optional(),
      squad: z.string().optional(),
      wait_seconds: z.number().optional().describe(`wait for work, at most ${MAX_CLAIM_WAIT_SECONDS}`),
      lease_seconds: z.number().optional(),
      idempotency_key: z.string().optional(),
    }),
    async run(ctx, caller, a) {
      // Past 60 the wait is capped, not refused: the description promises at most 60 and the caller
      // still gets work or a conflict. Past a day (the CLI's own --wait bound) the number is
      // nonsense and refused, like a negative one.
      const wait = seconds(a.wait_seconds, 'wait_seconds', 0, MAX_WAIT_MS);
      const lease = seconds(a.lease_seconds, 'lease_seconds', MIN_LEASE_SECONDS, MAX_LEASE_MS);
      return taskResult(
        await claimTask(ctx.tasks, caller, {
          ...opt('id', a.id),
          ...opt('squad', a.squad),
          ...opt('waitMs', wait === undefined ? undefined : Math.min(wait, MAX_CLAIM_WAIT_SECONDS * 1000)),
          ...opt('leaseMs', lease),
          ...opt('idempotencyKey', a.idempotency_key),
          signal: ctx.signal,
        }),
      );
    },
  }),
  tool({
    name: 'task_complete',
    description: 'Finish a task you hold (fence from task_claim).',
    input: z.object({
      id: taskId,
      fence,
      result: z.string().optional(),
      artifacts: z.array(z.string()).optional().describe('paths or URLs'),
      usage_tokens: z.number().optional(),
    }),
    async run(ctx, caller, a) {
      const r = await completeTask(ctx.tasks, caller, {
        ...held(a),
        ...opt('result', a.result),
        ...opt('artifacts', a.artifacts),
        ...opt('usageTokens', whole(a.usage_tokens, 'usage_tokens', 0)),
      });
      return { ...taskResult(r), unblocked: r.unblocked };
    },
  }),
  tool({
    name: 'task_fail',
    description: 'Fail a task you hold; retryable=true puts it back in the queue.',
    input: z.object({ id: taskId, fence, error: z.string(), retryable: z.boolean().optional() }),
    run: async (ctx, caller, a) =>
      taskResult(await failTask(ctx.tasks, caller, { ...held(a), error: a.error, ...(a.retryable ? { retryable: true } : {}) })),
  }),
  tool({
    name: 'task_heartbeat',
    description: 'Renew the lease on a task you hold while you work on it.',
    input: z.object({ id: taskId, fence }),
    run: async (ctx, caller, a) => taskResult(await heartbeatTask(ctx.tasks, caller, held(a))),
  }),
  tool({
    name: 'task_handoff',
    description: 'Hand a task you hold to another agent, with a summary of where it stands.',
    input: z.object({
      id: taskId,
      fence,
      to: z.string().describe('agent'),
      summary: z.string(),
      memories: z.array(z.string()).optional().describe('engram ids'),
    }),
    run: async (ctx, caller, a) =>
      taskResult(await handoffTask(ctx.tasks, caller, { ...held(a), to: a.to, summary: a.summary, ...opt('memories', a.memories) })),
  }),
  tool({
    name: 'task_accept',
    description: 'Accept a task handed off to you; returns your new fence.',
    input: z.object({ id: taskId }),
    run: async (ctx, caller, a) => taskResult(await acceptHandoff(ctx.tasks, caller, { id: a.id })),
  }),
  tool({
    name: 'usage_report',
    description: 'Record the tokens one model call of yours used (counted once per key).',
    input: z.object({
      model: z.string(),
      input_tokens: z.number().describe('not from cache'),
      output_tokens: z.number(),
      cache_read_tokens: z.number().optional(),
      cache_write_tokens: z.number().optional(),
      task: taskId.optional().describe('default: the task you hold'),
      idempotency_key: z.string().optional(),
    }),
    async run(ctx, caller, a) {
      const r = await recordUsage(
        ctx.tasks.store,
        caller,
        {
          model: a.model,
          inputTokens: a.input_tokens,
          outputTokens: a.output_tokens,
          ...opt('cacheReadTokens', a.cache_read_tokens),
          ...opt('cacheWriteTokens', a.cache_write_tokens),
          ...opt('task', a.task),
          ...opt('sourceKey', a.idempotency_key),
          source: 'report',
        },
        {
          ...(ctx.prices ? { prices: ctx.prices } : {}),
          crossed: (crossings) => announceCrossings(ctx.bus, caller.project, crossings),
        },
      );
      return { id: r.id, duplicate: r.duplicate, cost_micros: r.costMicros, ...(r.task ? { task: r.task } : {}) };
    },
  }),
  tool({
    name: 'remember',
    description: 'Store a memory for the team (decision, finding, handoff…); near-duplicates merge.',
    input: z.object({
      text: z.string().optional().describe('or content'),
      content: z.string().optional(),
      kind: z.string().optional().describe('observation|decision|handoff|finding|checkpoint'),
      scope: z.string().optional().describe('private|project|squad:<name>'),
      tags: z.array(z.string()).optional(),
      task: z.string().optional().describe('task id'),
    }),
    run: async (ctx, caller, a) => {
      const r = await remember(ctx.memory, caller, {
        text: needed(a.text, a.content, 'text|content'),
        ...opt('kind', a.kind),
        ...opt('scope', a.scope),
        ...opt('tags', a.tags),
        ...opt('taskId', a.task),
      });
      return { id: r.id, merged: r.merged };
    },
  }),
  tool({
    name: 'recall',
    description: 'Search team memory by meaning and words; best matches first.',
    input: z.object({
      query: z.string(),
      limit: z.number().optional(),
      tags: z.array(z.string()).optional(),
      agent: z.string().optional().describe('author'),
      kind: z.string().optional(),
    }),
    run: async (ctx, caller, a) =>
      (
        await recall(ctx.memory, caller, {
          query: a.query,
          ...opt('limit', a.limit),
          ...opt('tags', a.tags),
          ...opt('agent', a.agent),
          ...opt('kind', a.kind),
        })
      ).map((r) => ({
        id: r.engram.id,
        score: Number(r.score.toFixed(4)),
        kind: r.engram.kind,
        author: r.engram.author,
        updated: iso(r.engram.updatedAt),
        ...(r.engram.tags.length ? { tags: r.engram.tags } : {}),
        text: r.engram.text,
      })),
  }),
  tool({
    name: 'memory_context',
    description: 'Your context pack: identity, held tasks, unread digest, relevant memories.',
    input: z.object({ max_chars: z.number().optional() }),
    run: async (ctx, caller, a) => ({ text: await contextPack(ctx.memory, caller, caller.agent ?? '', a.max_chars ?? 4_000) }),
  }),
];
