import { isMoment } from '../time.js';

/**
 * Bus records.
 *
 * Glossary:
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
  /**
   * `msg_<sortable id>`. On the Redis wire (SOS v1 `message_id`) the same 128 bits are written as a
   * UUID; a message another SOS client wrote with a UUID reads back as the `msg_` spelling of it
   * (see `wireId` / `canonicalMessageId`).
   */
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
  /** `req_<sortable id>` on ack requests; SOS v1 `correlation_id` (as a UUID) on the wire. */
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

// ---------------------------------------------------------------- ids on the wire

const CROCKFORD = '0123456789abcdefghjkmnpqrstvwxyz';

/** An RFC 4122 spelling of 128 bits (any version): upstream SOS v1 `message_id`, `reply_to`, `correlation_id`. */
export const UUID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** `<prefix>_` then 26 Crockford base32 characters that hold 128 bits (a ULID: the first is 0-7). */
const SORTABLE = /^([a-z]+)_([0-7][0-9a-hjkmnp-tv-z]{25})$/;

/**
 * The UUID spelling of a sortable id (`msg_…`, `req_…`): its 128 bits, unchanged, as 8-4-4-4-12
 * lowercase hex. Undefined for an id that is not 26 Crockford characters of 128 bits.
 */
export function wireId(id: string): string | undefined {
  const m = SORTABLE.exec(id);
  if (!m) return undefined;
  let value = 0n;
  for (const c of m[2]!) value = (value << 5n) | BigInt(CROCKFORD.indexOf(c));
  const hex = value.toString(16).padStart(32, '0');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** The sortable spelling (`<prefix>_` + 26 Crockford characters) of a UUID's 128 bits: the inverse of `wireId`. */
export function fromWireId(prefix: string, uuid: string): string {
  let value = BigInt(`0x${uuid.replace(/-/g, '')}`);
  let out = '';
  for (let i = 0; i < 26; i++) {
    out = CROCKFORD[Number(value & 31n)]! + out;
    value >>= 5n;
  }
  return `${prefix}_${out}`;
}

/**
 * The one spelling sos keeps a message id in: a UUID (what upstream SOS writes and shows) becomes
 * `msg_…` with the same 128 bits; anything else is returned as it is. So `msg_…` and its UUID name
 * the same message everywhere a message id is taken.
 */
export function canonicalMessageId(id: string): string {
  return UUID_PATTERN.test(id) ? fromWireId('msg', id) : id;
}
