import { isMoment } from '../time.js';

/**
 * Bus records.
 *
 * Glossary (DESIGN.md §1, §4):
 * - message: one envelope on the bus; it lives in exactly one stream (its target's) and is
 *   addressed to a snapshot of recipients taken when it was sent.
 * - target: an agent's inbox, a squad, or the project broadcast.
 * - delivery: the state of one message for one recipient: queued → delivered → read → acked, or
 *   expired. A squad or broadcast message has one delivery per member.
 * - ack: a reply `{ack_for, ok}` to a message sent with `ack_required`; it must arrive within the
 *   message's timeout class (critical 30 s, routine 60 s) or the sweep re-sends, then escalates.
 * - presence: an agent's last heartbeat and its time-to-live; online while younger than the TTL.
 */

export const PRIORITIES = ['low', 'normal', 'high', 'critical'] as const;
export type Priority = (typeof PRIORITIES)[number];

export const DELIVERY_STATES = ['queued', 'delivered', 'read', 'acked', 'expired'] as const;
export type DeliveryState = (typeof DELIVERY_STATES)[number];

export type Target = { kind: 'agent'; name: string } | { kind: 'squad'; name: string } | { kind: 'broadcast' };

/** Ack timeout classes (ms). */
export const ACK_TIMEOUT_MS = { critical: 30_000, routine: 60_000 } as const;

export interface Envelope {
  /** `msg_<sortable id>`; SOS v1 `message_id`. */
  id: string;
  project: string;
  /** Sending agent. */
  from: string;
  target: Target;
  /** `message`, `ack`, `escalation`, later `task.*` events. */
  type: string;
  text: string;
  contentType: string;
  replyTo: string | null;
  requestId: string | null;
  ackRequired: boolean;
  ackTimeoutMs: number | null;
  priority: Priority;
  createdAt: number;
  expiresAt: number | null;
  /** Who it is for, fixed at send time. */
  recipients: string[];
  /** On `ack` messages: the message acknowledged, and whether it was accepted. */
  ackFor: string | null;
  ackOk: boolean | null;
  /** On a re-send by the ack sweep: the original message. */
  resendOf: string | null;
}

/** A stored row a reader could not turn into a message: skipped (never fatal), logged and counted. */
export interface SkippedRow {
  /** The message id when it could be read, else the row's own key. */
  id: string;
  reason: string;
}

/**
 * A stored envelope, read tolerantly: a moment no date can hold (a row written before sends were
 * bounded) reads as none; a row that is not an envelope at all is a reason, never an exception.
 */
export function readEnvelope(json: string): Envelope | string {
  let raw: unknown;
  try {
    raw = JSON.parse(json);
  } catch {
    return 'the stored envelope is not JSON';
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) return 'the stored envelope is not an object';
  const e = raw as Record<string, unknown>;
  for (const key of ['id', 'project', 'from', 'type', 'text'] as const) {
    if (typeof e[key] !== 'string') return `the stored envelope has no ${key}`;
  }
  const target = e.target as { kind?: unknown; name?: unknown } | null | undefined;
  if (!target || (target.kind !== 'broadcast' && !((target.kind === 'agent' || target.kind === 'squad') && typeof target.name === 'string'))) {
    return 'the stored envelope has no valid target';
  }
  if (!isMoment(e.createdAt)) return 'the stored envelope has no valid creation time';
  const envelope = raw as Envelope;
  return {
    ...envelope,
    expiresAt: isMoment(envelope.expiresAt) ? envelope.expiresAt : null,
    recipients: Array.isArray(envelope.recipients) ? envelope.recipients : [],
    priority: (PRIORITIES as readonly unknown[]).includes(envelope.priority) ? envelope.priority : 'normal',
  };
}

export interface Delivery {
  recipient: string;
  state: DeliveryState;
  /** When the state last changed. */
  at: number;
}

export interface InboxItem {
  message: Envelope;
  state: DeliveryState;
  at: number;
}

export interface AckWatch {
  message: Envelope;
  /** Recipients that have not acked yet. */
  unacked: string[];
  resentAt: number | null;
  escalatedAt: number | null;
}

export interface Presence {
  agent: string;
  lastSeen: number;
  ttlMs: number;
}

export function targetKey(target: Target): string {
  return target.kind === 'broadcast' ? 'broadcast' : `${target.kind}:${target.name}`;
}

export function parseTargetKey(key: string): Target {
  if (key === 'broadcast') return { kind: 'broadcast' };
  const [kind, name] = key.split(':', 2) as [string, string];
  return kind === 'squad' ? { kind: 'squad', name } : { kind: 'agent', name };
}

/** One entry of a project's event stream. */
export interface BusEvent {
  type: string;
  data: Record<string, unknown>;
  at: number;
}
