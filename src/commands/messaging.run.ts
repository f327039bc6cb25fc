import { createInterface } from 'node:readline';
import {
  ackMessage,
  followInbox,
  heartbeat as beat,
  listPeers,
  pendingAcks,
  readInbox,
  type SendInput,
  sendMessage,
  showMessage,
  sweepAcks,
  waitForAck,
} from '../core/bus/service.js';
import { type Envelope, type InboxItem, type SkippedRow, targetKey } from '../core/bus/types.js';
import { UsageError } from '../core/errors.js';
import { MAX_WAIT_MS, parseDuration } from '../core/time.js';
import { readStdin } from './args.js';
import type { Invocation, Output } from './define.js';
import { fields, iso, table } from './format.js';
import { withBus } from './session.js';
import { neutralise } from '../core/safe-text.js';

/** The `--json` shape of a message (stable). */
export function messageView(m: Envelope) {
  return {
    id: m.id,
    project: m.project,
    from: m.from,
    to: m.target.kind === 'broadcast' ? 'all' : targetKey(m.target).replace(/^agent:/, ''),
    type: m.type,
    text: m.text,
    contentType: m.contentType,
    replyTo: m.replyTo,
    requestId: m.requestId,
    ackRequired: m.ackRequired,
    ackTimeoutMs: m.ackTimeoutMs,
    priority: m.priority,
    createdAt: iso(m.createdAt),
    expiresAt: iso(m.expiresAt),
    recipients: m.recipients,
    ackFor: m.ackFor,
    ackOk: m.ackOk,
    resendOf: m.resendOf,
  };
}

const itemView = (i: InboxItem) => ({ ...messageView(i.message), state: i.state, stateAt: iso(i.at) });

function formatItem(i: InboxItem): string {
  const m = i.message;
  const to = m.target.kind === 'agent' ? '' : ` → ${m.target.kind === 'squad' ? `squad:${m.target.name}` : 'all'}`;
  const tags = [
    m.priority !== 'normal' ? m.priority : '',
    m.type !== 'message' ? m.type : '',
    m.replyTo ? `re ${m.replyTo}` : '',
    m.ackRequired ? (i.state === 'acked' ? 'acked' : 'ack requested') : '',
    m.type === 'ack' ? (m.ackOk ? 'ok' : 'refused') : '',
  ].filter(Boolean);
  const head = `${m.id}  ${iso(m.createdAt)}  from ${m.from}${to}${tags.length ? `  [${tags.join(', ')}]` : ''}`;
  return `${head}\n${m.text.split('\n').map((l) => `  ${l}`).join('\n')}`;
}


/** Rows the bus could not read: said on stderr (stdout stays the messages), counted as bus_rows_skipped. */
function warnSkipped(rows: SkippedRow[]): void {
  for (const r of rows) process.stderr.write(neutralise(`sos: skipped a stored message that cannot be read (${r.id}: ${r.reason}); it stays unread\n`));
}

function sendOptions(inv: Invocation): Omit<SendInput, 'text'> {
  const o = inv.options;
  const input: Omit<SendInput, 'text'> = { to: inv.args.to as string };
  if (typeof o.replyTo === 'string') input.replyTo = o.replyTo;
  if (o.ack === true || typeof o.waitAck === 'string') input.ack = true;
  if (o.critical === true) input.critical = true;
  if (typeof o.priority === 'string') input.priority = o.priority;
  if (typeof o.expires === 'string') input.expiresInMs = parseDuration(o.expires, '--expires');
  if (typeof o.idempotencyKey === 'string') input.idempotencyKey = o.idempotencyKey;
  return input;
}

export async function send(inv: Invocation): Promise<Output> {
  const words = (inv.args.text as string[] | undefined) ?? [];
  const fromStdin = inv.options.stdin === true || inv.options.eachLine === true;
  if (fromStdin && words.length > 0) throw new UsageError('give the text as arguments or with --stdin, not both');
  if (!fromStdin && words.length === 0) throw new UsageError('nothing to send: give the text, or --stdin');
  const waitMs = typeof inv.options.waitAck === 'string' ? parseDuration(inv.options.waitAck, '--wait-ack', MAX_WAIT_MS) : undefined;
  const base = sendOptions(inv);
  if (inv.options.eachLine === true) {
    if (waitMs !== undefined) throw new UsageError('--wait-ack cannot be combined with --each-line');
    if (base.idempotencyKey !== undefined) throw new UsageError('--idempotency-key cannot be combined with --each-line');
    return withBus(inv, async ({ ctx, caller }) => {
      const ids: string[] = [];
      for await (const line of createInterface({ input: inv.stdin, crlfDelay: Number.POSITIVE_INFINITY })) {
        if (line.trim() === '') continue;
        const result = await sendMessage(ctx, caller, { ...base, text: line });
        ids.push(result.id);
        if (!inv.globals.json) inv.stdout.write(`${result.id}\n`);
      }
      return { data: { sent: ids.length, ids }, human: '', quiet: '' };
    });
  }
  const text = fromStdin ? await readStdin(inv) : words.join(' ');
  return withBus(inv, async ({ ctx, caller }) => {
    const result = await sendMessage(ctx, caller, { ...base, text });
    const data: Record<string, unknown> = { ...result };
    let exitCode = 0;
    if (waitMs !== undefined) {
      // The id goes out before the wait, so a script can hand it to whoever must ack.
      if (!inv.globals.json) inv.stdout.write(`${result.id}\n`);
      const outcome = await waitForAck(ctx, caller, result.id, waitMs);
      data.ack = outcome;
      exitCode = outcome === 'acked' ? 0 : outcome === 'refused' ? 4 : 1;
      if (outcome !== 'acked') process.stderr.write(`sos: ${result.id} ${outcome === 'refused' ? 'was refused' : `was not acked within ${inv.options.waitAck}`}\n`);
    }
    const printed = waitMs !== undefined;
    const acked = result.ack ? `  (${result.ack.ok ? 'acks' : 'refuses'} ${result.ack.for.join(', ')})` : '';
    return { data, human: printed ? '' : `${result.id}${acked}`, quiet: printed ? '' : result.id, exitCode };
  });
}

export async function inbox(inv: Invocation): Promise<Output> {
  const o = inv.options;
  const limit = typeof o.limit === 'string' ? Number(o.limit) : undefined;
  if (limit !== undefined && !Number.isInteger(limit)) throw new UsageError('--limit must be a whole number');
  const agent = typeof o.agent === 'string' ? o.agent : undefined;
  if (o.follow === true) {
    return withBus(inv, async ({ ctx, caller }) => {
      const controller = new AbortController();
      const stop = () => controller.abort();
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
      inv.stdout.on('error', stop); // the reader went away (a closed pipe)
      let count = 0;
      try {
        await followInbox(ctx, caller, {
          ...(agent ? { agent } : {}),
          signal: controller.signal,
          onSkipped: warnSkipped,
          onItems: (items) => {
            count += items.length;
            const text = items.map((i) => (inv.globals.json ? JSON.stringify(itemView(i)) : neutralise(formatItem(i)))).join('\n');
            inv.stdout.write(`${text}\n`);
          },
        });
      } finally {
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
      }
      return { data: undefined, human: '', quiet: '', ...(count >= 0 ? {} : {}) };
    });
  }
  return withBus(inv, async ({ ctx, caller }) => {
    const result = await readInbox(ctx, caller, {
      ...(agent ? { agent } : {}),
      ...(o.all === true ? { all: true } : {}),
      ...(limit !== undefined ? { limit } : {}),
    });
    warnSkipped(result.skipped);
    const parts: string[] = [];
    if (result.unread.length) parts.push(`${result.unread.length} unread for ${result.agent}:\n\n${result.unread.map(formatItem).join('\n\n')}`);
    else parts.push(`no unread messages for ${result.agent}`);
    if (result.history.length) parts.push(`earlier:\n\n${result.history.map(formatItem).join('\n\n')}`);
    return {
      data: { agent: result.agent, unread: result.unread.map(itemView), history: result.history.map(itemView), skipped: result.skipped },
      human: parts.join('\n\n'),
      quiet: result.unread.map((i) => i.message.id).join('\n'),
    };
  });
}

export async function ack(inv: Invocation): Promise<Output> {
  if (inv.options.ok === true && inv.options.refuse === true) throw new UsageError('choose --ok or --refuse, not both');
  return withBus(inv, async ({ ctx, caller }) => {
    const result = await ackMessage(ctx, caller, {
      id: inv.args.id as string,
      ok: inv.options.refuse !== true,
      ...(typeof inv.options.note === 'string' ? { note: inv.options.note } : {}),
    });
    return { data: result, human: `${result.ok ? 'acked' : 'refused'} ${result.id}`, quiet: result.ackMessageId ?? '' };
  });
}

export async function show(inv: Invocation): Promise<Output> {
  return withBus(inv, async ({ ctx, caller }) => {
    const { message, deliveries } = await showMessage(ctx, caller, inv.args.id as string);
    const view = messageView(message);
    return {
      data: { ...view, deliveries: deliveries.map((d) => ({ recipient: d.recipient, state: d.state, at: iso(d.at) })) },
      human: [
        fields([
          ['id', view.id],
          ['from', view.from],
          ['to', view.to],
          ['type', view.type],
          ['priority', view.priority],
          ['created', view.createdAt],
          ['expires', view.expiresAt],
          ['reply to', view.replyTo],
          ['ack', view.ackRequired ? `required within ${(view.ackTimeoutMs ?? 0) / 1000} s (request ${view.requestId})` : 'not required'],
        ]),
        '',
        message.text,
        '',
        table(
          ['recipient', 'state', 'since'],
          deliveries.map((d) => [d.recipient, d.state, iso(d.at)]),
        ),
      ].join('\n'),
    };
  });
}

export async function pending(inv: Invocation): Promise<Output> {
  return withBus(inv, async ({ ctx, caller }) => {
    const list = await pendingAcks(ctx, caller, { overdue: inv.options.overdue === true });
    return {
      data: list.map((w) => ({
        ...messageView(w.message),
        unacked: w.unacked,
        deadline: iso(w.deadline),
        overdue: w.overdue,
        resentAt: iso(w.resentAt),
        escalatedAt: iso(w.escalatedAt),
      })),
      human: list.length
        ? table(
            ['id', 'from', 'waiting on', 'deadline', 'state'],
            list.map((w) => [
              w.message.id,
              w.message.from,
              w.unacked.join(','),
              iso(w.deadline),
              w.escalatedAt ? 'escalated' : w.resentAt ? 're-sent' : w.overdue ? 'overdue' : 'waiting',
            ]),
          )
        : 'no messages waiting for an ack',
      quiet: list.map((w) => w.message.id).join('\n'),
    };
  });
}

export async function sweep(inv: Invocation): Promise<Output> {
  return withBus(inv, async ({ ctx, caller }) => {
    const report = await sweepAcks(ctx, caller);
    const lines = [
      ...report.resent.map((r) => `re-sent ${r.id} to ${r.to.join(', ')} as ${r.resendId}`),
      ...report.escalated.map((e) =>
        e.coordinators.length ? `escalated ${e.id} to ${e.coordinators.join(', ')}` : `escalated ${e.id}: the project has no coordinator agent`,
      ),
    ];
    return { data: report, human: lines.length ? lines.join('\n') : 'nothing overdue' };
  });
}

export async function peers(inv: Invocation): Promise<Output> {
  return withBus(inv, async ({ ctx, caller }) => {
    const list = await listPeers(ctx, caller);
    return {
      data: list.map((p) => ({ ...p, lastSeen: iso(p.lastSeen) })),
      human: table(
        ['agent', 'kind', 'role', 'presence', 'last seen', 'unread'],
        list.map((p) => [p.name, p.kind, p.role, p.online ? 'online' : 'offline', iso(p.lastSeen), p.unread]),
      ),
      quiet: list.filter((p) => p.online).map((p) => p.name).join('\n'),
    };
  });
}

export async function heartbeat(inv: Invocation): Promise<Output> {
  return withBus(inv, async ({ ctx, caller }) => {
    const result = await beat(ctx, caller, typeof inv.options.agent === 'string' ? { agent: inv.options.agent } : {});
    return {
      data: { agent: result.agent, at: iso(result.at), ttlMs: result.ttlMs },
      human: `${result.agent} is online for ${Math.round(result.ttlMs / 1000)} s`,
    };
  });
}
