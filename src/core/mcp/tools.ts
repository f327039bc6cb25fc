import { z } from 'zod';
import type { Caller } from '../auth/caller.js';
import { ackMessage, type BusContext, listPeers, readInbox, type SendInput, sendMessage } from '../bus/service.js';
import { type InboxItem, PRIORITIES, type Target } from '../bus/types.js';

/**
 * The bus as MCP tools: each one validates its arguments with zod and calls the same service
 * function as the CLI. Every description is read into each agent's context on every turn, so
 * they stay one short sentence; results are compact, snake_case JSON with empty fields left out.
 */

export interface ToolSpec<S extends z.ZodObject = z.ZodObject> {
  name: string;
  description: string;
  input: S;
  // Method syntax on purpose: a tool with a narrower schema still fits in `ToolSpec[]`.
  run(ctx: BusContext, caller: Caller, args: z.infer<S>): Promise<unknown>;
}

const tool = <S extends z.ZodObject>(spec: ToolSpec<S>): ToolSpec<S> => spec;

const iso = (ms: number | null) => (ms === null ? undefined : new Date(ms).toISOString());

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
    ...(r.duplicate ? { duplicate: true } : {}),
  };
}

export const TOOLS: readonly ToolSpec[] = [
  tool({
    name: 'send',
    description: 'Send a message to an agent, a squad or everyone.',
    input: z.object({
      to: z.string().describe('agent, squad:<name>, or all'),
      text: z.string(),
      reply_to: z.string().optional().describe('id of the message this answers'),
      ack: z.boolean().optional().describe('ask for an ack'),
      priority: z.enum(PRIORITIES).optional(),
      idempotency_key: z.string().optional().describe('a repeat with this key sends nothing'),
    }),
    run: (ctx, caller, a) =>
      send(ctx, caller, {
        to: a.to,
        text: a.text,
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
      limit: z.int().min(1).max(10_000).optional().describe('max per list, default 50'),
      all: z.boolean().optional().describe('include read history'),
    }),
    async run(ctx, caller, a) {
      const r = await readInbox(ctx, caller, {
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
      id: z.string().describe('message id (msg_…)'),
      ok: z.boolean().optional().describe('false refuses; default true'),
      note: z.string().optional().describe('short reply'),
    }),
    async run(ctx, caller, a) {
      const r = await ackMessage(ctx, caller, {
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
      text: z.string(),
      squad: z.string().optional().describe('squad name; default everyone'),
    }),
    run: (ctx, caller, a) => send(ctx, caller, { to: a.squad === undefined ? 'all' : `squad:${a.squad}`, text: a.text }),
  }),
  tool({
    name: 'peers',
    description: "List the project's agents: role, online, unread count.",
    input: z.object({}),
    async run(ctx, caller) {
      return (await listPeers(ctx, caller)).map((p) => ({
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
];
