import { createHash } from 'node:crypto';
import { type ChainableCommander, Redis } from 'ioredis';
import { z } from 'zod';
import { PermissionDenied, SosError, Unavailable } from '../errors.js';
import { redactUrl } from '../store/sql/driver.js';
import { abortableSleep, isMoment } from '../time.js';
import type { AppendResult, Bus, BusCapabilities } from './port.js';
import {
  acksKey,
  deliveryKey,
  eventsChannel,
  eventsKey,
  idempotencyKey,
  messageChannel,
  presenceKey,
  readerGroup,
  registryKey,
  registryPattern,
  streamKey,
  targetField,
  targetOfStream,
  upstreamAgentChannels,
  upstreamAgentStreams,
  upstreamReaderGroup,
  upstreamWakeChannel,
  wakeChannel,
  wireTarget,
} from './redis-keys.js';
import {
  type AckWatch,
  type BusEvent,
  canonicalMessageId,
  type Delivery,
  DELIVERY_STATES,
  type DeliveryState,
  type Envelope,
  fromWireId,
  type InboxItem,
  type Presence,
  type Priority,
  PRIORITIES,
  type SkippedRow,
  type Target,
  UUID_PATTERN,
  wireId,
} from './types.js';

/**
 * The bus on Redis (docs/ARCHITECTURE.md, "Redis wire layout"). One stream per target in the upstream SOS v1 layout and entry
 * shape; a consumer group per agent is its read cursor; a hash per message holds each recipient's
 * delivery state and is the exactly-once gate (a state moves from unread to `read` once, in a
 * single-key Lua script), so a duplicate entry of one message is never delivered twice. No command
 * or script spans two keys, so the layout works on Redis Cluster.
 */

const HINT = 'run `bash scripts/install-services.sh` to start Redis, or check SOS_REDIS_URL';
const CONNECT_TIMEOUT_MS = 3_000;
const COMMAND_TIMEOUT_MS = 10_000;
const LOADING_WAIT_MS = 30_000;
/** An entry read but not acked for this long belonged to a reader that died: it is taken again. */
const CLAIM_IDLE_MS = 30_000;
const IDEMPOTENCY_TTL_S = 7 * 24 * 3600;
/** How long a repeat waits for the first sender's message to appear before writing it itself. */
const IDEMPOTENCY_WAIT_MS = 1_000;
/** How far from its send time `get` looks for an entry whose id is not recorded yet. */
const LOCATE_WINDOW_MS = 10_000;
/** One consumer name for every reader of a group: the group, not the name, splits the entries. */
const CONSUMER = 'reader';
/** Owner of entries a take read beyond its limit: pending, unread, taken first next time. */
const PARKED = 'parked';
const HISTORY_PAGE = 200;
/** A take looks at least this far past each cursor, to choose the oldest and mark the expired. */
const PEEK_MIN = 100;
/** How long a wake channel stays subscribed after its last waiter left. */
const LINGER_MS = 10_000;

// ---------------------------------------------------------------- connections and errors

const CONNECTION_ERROR =
  /ECONNREFUSED|ECONNRESET|ETIMEDOUT|ENOTFOUND|EAI_AGAIN|EHOSTUNREACH|ENETUNREACH|EPIPE|Connection is closed|Stream isn't writeable|Command timed out|max retries|enableOfflineQueue|^LOADING/i;

/** Turns an ioredis failure into the error taxonomy; anything else is returned unchanged. */
export function redisError(err: unknown, url: string): Error {
  if (err instanceof SosError) return err;
  const e: Error & { code?: string } = err instanceof Error ? err : new Error(String(err));
  const where = redactUrl(url);
  if (/^NOPERM/.test(e.message)) {
    return new PermissionDenied(`Redis refused: ${e.message}`, {
      hint: 'this Redis user is confined to another project; check SOS_REDIS_URL',
      cause: err,
    });
  }
  if (/WRONGPASS|NOAUTH|invalid username-password/i.test(e.message)) {
    return new PermissionDenied(`Redis at ${where} rejected the credentials: ${e.message}`, {
      hint: 'check the user and password in SOS_REDIS_URL',
      cause: err,
    });
  }
  if (CONNECTION_ERROR.test(e.message) || (e.code !== undefined && CONNECTION_ERROR.test(e.code)) || e.name === 'MaxRetriesPerRequestError') {
    return new Unavailable(`Redis at ${where} is unavailable: ${e.message}`, { hint: HINT, cause: err });
  }
  return e;
}

/**
 * Connects and waits until Redis has loaded its data. Fails fast: no offline queue, no retry of
 * a command whose connection dropped (it may have run; the caller decides), a connect timeout.
 * After the first connect it reconnects in the background, so a long-lived bus survives a
 * Redis restart while commands in between fail with `Unavailable`.
 */
export async function openRedis(url: string, name: string): Promise<Redis> {
  let connected = false;
  const redis = new Redis(url, {
    lazyConnect: true,
    connectionName: name,
    connectTimeout: CONNECT_TIMEOUT_MS,
    commandTimeout: COMMAND_TIMEOUT_MS,
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: false,
    enableOfflineQueue: false,
    // The ready check runs INFO, which a project ACL user may not run; LOADING is awaited below.
    enableReadyCheck: false,
    protocol: 2,
    // Commands issued in the same tick (many sends in flight) share one write to the socket.
    enableAutoPipelining: true,
    retryStrategy: (times) => (connected ? Math.min(times * 100, 2_000) : null),
  });
  // Failures surface through the command that failed; without a listener ioredis logs them. A
  // failed connect only says "Connection is closed": the error event has the reason (WRONGPASS…).
  let reason: unknown;
  redis.on('error', (err: unknown) => {
    if (!connected) reason ??= err;
  });
  try {
    await redis.connect();
    const deadline = Date.now() + LOADING_WAIT_MS;
    for (;;) {
      try {
        await redis.ping();
        break;
      } catch (err) {
        if (!/^LOADING/.test((err as Error).message) || Date.now() > deadline) throw err;
        await abortableSleep(100);
      }
    }
    connected = true;
    return redis;
  } catch (err) {
    redis.disconnect();
    throw redisError(reason ?? err, url);
  }
}

async function closeRedis(redis: Redis): Promise<void> {
  try {
    if (redis.status === 'ready') await redis.quit();
  } catch {
    // Closing anyway.
  } finally {
    redis.disconnect();
  }
}

/**
 * Whether the connection may touch upstream's global keys (no project in their names): a project
 * ACL user may not, and is answered NOPERM.
 */
async function reachesGlobalKeys(redis: Redis): Promise<boolean> {
  const probes = ['sos:stream:global:agent:-', 'sos:stream:sos:channel:private:agent:-', 'sos:registry:-'];
  try {
    await Promise.all(probes.map((key) => redis.exists(key)));
    return true;
  } catch (err) {
    if (/^NOPERM/.test((err as Error).message)) return false;
    throw err;
  }
}

/** Runs a pipeline; the first failed command's error is thrown. */
async function run(pipe: ChainableCommander): Promise<unknown[]> {
  const results = (await pipe.exec()) ?? [];
  return results.map(([err, value]) => {
    if (err) throw err;
    return value;
  });
}

// ---------------------------------------------------------------- Lua (one key each)

const RANK = Object.fromEntries(DELIVERY_STATES.map((s, i) => [s, i])) as Record<DeliveryState, number>;

/**
 * Moves one recipient's delivery. KEYS[1] the delivery hash; ARGV: recipient, state, at, mode,
 * addressed, stream, entry. Mode `set`: forward only, never out of `expired` (as the SQL bus).
 * Mode `take`: only from unread (queued, delivered), the exactly-once gate of takeUnread.
 * `addressed` = 1: a missing field reads as queued (the hash may not be written yet).
 * Returns -1 no such message, 0 not a recipient, 1 unchanged, 2 changed.
 */
const TRANSITION = `
local rank = {queued=0, delivered=1, read=2, acked=3, expired=4}
local field = 'r:' .. ARGV[1]
local cur = redis.call('HGET', KEYS[1], field)
local state
if cur then
  state = string.match(cur, '^(%a+)')
elseif ARGV[5] == '1' then
  state = 'queued'
elseif redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
else
  return -1
end
local ok
if ARGV[4] == 'take' then
  ok = state == 'queued' or state == 'delivered'
else
  ok = state ~= 'expired' and rank[ARGV[2]] > rank[state]
end
if not ok then return 1 end
redis.call('HSET', KEYS[1], field, ARGV[2] .. ':' .. ARGV[3])
if ARGV[6] ~= '' then
  redis.call('HSETNX', KEYS[1], 'stream', ARGV[6])
  redis.call('HSETNX', KEYS[1], 'entry', ARGV[7])
end
return 2`;

/**
 * A send's second half, in one command: the delivery hash KEYS[1], then the wakes. ARGV: mode
 * (`set`: HSET; `keep`: HSETNX each field, for a re-send that must not reset a state), f (field
 * count), f field/value pairs, n (wakes that must go out), u (best-effort wakes: a channel this
 * user may not publish on is skipped), n + u channel/message pairs.
 */
const DELIVER = `
local f = tonumber(ARGV[2])
if ARGV[1] == 'keep' then
  for i = 0, f - 1 do redis.call('HSETNX', KEYS[1], ARGV[3 + 2 * i], ARGV[4 + 2 * i]) end
else
  redis.call('HSET', KEYS[1], unpack(ARGV, 3, 2 + 2 * f))
end
local at = 3 + 2 * f
local n, u = tonumber(ARGV[at]), tonumber(ARGV[at + 1])
for i = 0, n - 1 do redis.call('PUBLISH', ARGV[at + 2 + 2 * i], ARGV[at + 3 + 2 * i]) end
for i = n, n + u - 1 do redis.pcall('PUBLISH', ARGV[at + 2 + 2 * i], ARGV[at + 3 + 2 * i]) end
return 1`;

/** HSET KEYS[1] ARGV[1] ARGV[2] only when the hash exists (never creates a stray message). */
const SET_IF_EXISTS = `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1`;

interface Scripted {
  sosDeliver(key: string, ...args: string[]): Promise<unknown>;
  sosTransition(key: string, ...args: string[]): unknown;
  sosSetIfExists(key: string, field: string, value: string): unknown;
}

const scripted = (commander: Redis | ChainableCommander) => commander as unknown as Scripted;

// ---------------------------------------------------------------- stream entries (SOS v1)

/**
 * What sos writes is an upstream SOS v1 `send` (sos/contracts/schemas/messages/send_v1.json), so
 * upstream's typed decoder and `enforce()` take it: `type: send`, `version: 1.0`, a UUID
 * `message_id`, `payload` of `text` and `content_type` only, top-level `reply_to` and
 * `correlation_id` (UUIDs), a channel `target` for squads and broadcasts, and, as upstream's own
 * senders add them, top-level `project` and `tenant_id`. What sos has beyond that rides in
 * `headers` (string values, `sos_` keys), where the schema allows anything.
 */
const WIRE_VERSION = '1.0';
const WIRE_CONTENT_TYPES: readonly string[] = ['text/plain', 'text/markdown'];

/** A name-based UUID (SHA-256; version 8, RFC variant) for an id with no UUID spelling of its own. */
function hashedUuid(id: string): string {
  const h = createHash('sha256').update(id).digest('hex');
  const variant = ((parseInt(h[16]!, 16) & 3) | 8).toString(16);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-8${h.slice(13, 16)}-${variant}${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

/** The UUID of an id on the wire; an id with none (not sos's own form, not a UUID) is kept whole in `headers[header]`. */
function wireRef(id: string, headers: Record<string, string>, header: string): string | undefined {
  const uuid = wireId(id) ?? (UUID_PATTERN.test(id) ? id.toLowerCase() : undefined);
  if (uuid === undefined) headers[header] = id;
  return uuid;
}

/** The entry's fields, in XADD order (also what is published, as JSON, on upstream's channels). */
function wireFields(m: Envelope): Record<string, string> {
  const headers: Record<string, string> = {};
  const messageId = wireRef(m.id, headers, 'sos_id') ?? hashedUuid(m.id);
  const replyTo = m.replyTo === null ? undefined : wireRef(m.replyTo, headers, 'sos_reply_to');
  const correlation = m.requestId === null ? undefined : wireRef(m.requestId, headers, 'sos_request_id');
  // A request id an agent wrote as a UUID (`[request_id:<uuid>]`) reads back as it was written,
  // not as the req_ spelling of its bits.
  if (m.requestId !== null && UUID_PATTERN.test(m.requestId)) headers.sos_request_id = m.requestId;
  if (m.type !== 'message') headers.sos_type = m.type;
  if (m.priority !== 'normal') headers.sos_priority = m.priority;
  if (m.ackRequired) headers.sos_ack_required = 'true';
  if (m.ackTimeoutMs !== null) headers.sos_ack_timeout_ms = String(m.ackTimeoutMs);
  if (m.expiresAt !== null) headers.sos_expires_at = String(m.expiresAt);
  if (m.target.kind !== 'agent' || m.recipients.length !== 1 || m.recipients[0] !== m.target.name) {
    headers.sos_recipients = m.recipients.join(',');
  }
  if (m.ackFor !== null) headers.sos_ack_for = m.ackFor;
  if (m.ackOk !== null) headers.sos_ack_ok = String(m.ackOk);
  if (m.resendOf !== null) headers.sos_resend_of = m.resendOf;
  let contentType = m.contentType;
  if (!WIRE_CONTENT_TYPES.includes(contentType)) {
    headers.sos_content_type = contentType;
    contentType = 'text/plain';
  }
  const fields: Record<string, string> = {
    type: 'send',
    source: `agent:${m.from}`,
    target: wireTarget(m.project, m.target),
    timestamp: new Date(m.createdAt).toISOString(),
    version: WIRE_VERSION,
    message_id: messageId,
    payload: JSON.stringify({ text: m.text, content_type: contentType }),
  };
  if (replyTo !== undefined) fields.reply_to = replyTo;
  if (correlation !== undefined) fields.correlation_id = correlation;
  if (Object.keys(headers).length > 0) fields.headers = JSON.stringify(headers);
  fields.project = m.project;
  // Upstream's scope guard (enforce_scope) wants a tenant too; sos's hard boundary is the project.
  fields.tenant_id = m.project;
  return fields;
}

/**
 * The tolerant reader. Every field falls back on its own, in this order: our `sos_` headers, the
 * v1 top-level fields, then the payload extras sos wrote before it followed upstream's schema
 * (`version: 1`, `type: message`, `msg_…` ids, `reply_to` and 12 more keys inside `payload`).
 */
const Payload = z.object({
  text: z.string().optional().catch(undefined),
  content_type: z.string().catch('text/plain'),
  reply_to: z.string().nullable().catch(null),
  request_id: z.string().nullable().catch(null),
  ack_required: z.boolean().catch(false),
  ack_timeout_ms: z.number().nullable().catch(null),
  priority: z.enum(PRIORITIES).catch('normal'),
  // A moment no date can hold (a foreign writer's, or one written before sends were bounded) reads as none.
  created_at: z.number().refine(isMoment).optional().catch(undefined),
  expires_at: z.number().refine(isMoment).nullable().catch(null),
  recipients: z.array(z.string()).optional().catch(undefined),
  ack_for: z.string().nullable().catch(null),
  ack_ok: z.boolean().nullable().catch(null),
  resend_of: z.string().nullable().catch(null),
});

const Headers = z.record(z.string(), z.unknown()).catch({});

function parseObject(value: unknown): Record<string, unknown> | undefined {
  let parsed = value;
  if (typeof value === 'string') {
    try {
      parsed = JSON.parse(value);
    } catch {
      return undefined;
    }
  }
  return parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed) ? (parsed as Record<string, unknown>) : undefined;
}

/** A v1 id field: a UUID reads as sos's spelling of the same bits (`<prefix>_…`), anything else as it is. */
function fromWire(prefix: string, value: unknown): string | undefined {
  if (typeof value !== 'string' || value === '') return undefined;
  return UUID_PATTERN.test(value) ? fromWireId(prefix, value) : value;
}

const flag = (v: unknown) => (v === 'true' ? true : v === 'false' ? false : undefined);
const whole = (v: unknown) => (typeof v === 'string' && /^\d{1,16}$/.test(v) ? Number(v) : undefined);

interface Stored {
  entry: string;
  /** Our message id (a monotonic ULID), or undefined for another client's entry. */
  seq: string | undefined;
  message: Envelope;
  /** Written without a recipient list (another SOS client, squad or broadcast): every reader but the sender. */
  open: boolean;
}

type RawEntry = [id: string, fields: string[] | null];

function entryMs(entry: string): number {
  return Number(entry.split('-', 1)[0]);
}

function compareEntries(a: string, b: string): number {
  const [am = 0, as = 0] = a.split('-').map(Number);
  const [bm = 0, bs = 0] = b.split('-').map(Number);
  return am - bm || as - bs;
}

/**
 * Oldest first across streams. Entry ids order one stream, but across streams only to the
 * millisecond (their sequence part is per stream): message ids, which are monotonic within a
 * sending process, break those ties without a shared counter (one round trip less per send).
 */
function compareStored(a: Pick<Stored, 'entry' | 'seq'>, b: Pick<Stored, 'entry' | 'seq'>): number {
  const byTime = entryMs(a.entry) - entryMs(b.entry);
  if (byTime !== 0) return byTime;
  if (a.seq !== undefined && b.seq !== undefined && a.seq !== b.seq) return a.seq < b.seq ? -1 : 1;
  return compareEntries(a.entry, b.entry);
}

/** Parses an entry tolerantly: whatever another SOS client wrote becomes a valid Envelope. */
function fieldValue(list: string[], name: string): string | undefined {
  for (let i = 0; i + 1 < list.length; i += 2) if (list[i] === name) return list[i + 1];
  return undefined;
}

function decode(project: string, target: Target, [entry, list]: RawEntry): Stored | undefined {
  if (!Array.isArray(list)) return undefined;
  let f: Record<string, unknown> = {};
  for (let i = 0; i + 1 < list.length; i += 2) f[list[i]!] = list[i + 1]!;
  // The kernel MessageBus writes one field, `payload`, that holds the whole message.
  if (f.type === undefined && f.source === undefined && typeof f.payload === 'string') {
    const inner = parseObject(f.payload);
    if (inner && typeof inner.type === 'string') f = { ...inner, message_id: inner.message_id ?? inner.id };
  }
  const str = (key: string) => (typeof f[key] === 'string' ? (f[key] as string) : undefined);
  let raw: Record<string, unknown> | undefined;
  if (f.payload === undefined) raw = {};
  else raw = parseObject(f.payload) ?? { text: typeof f.payload === 'string' ? f.payload : JSON.stringify(f.payload) };
  const p = Payload.parse(raw);
  const h = Headers.parse(parseObject(f.headers) ?? {});
  const hs = (key: string) => (typeof h[key] === 'string' ? (h[key] as string) : undefined);
  const timestamp = str('timestamp') === undefined ? NaN : Date.parse(str('timestamp')!);
  const source = str('source') ?? 'unknown';
  const type = str('type');
  const listed = hs('sos_recipients');
  const recipients = listed !== undefined ? listed.split(',').filter((r) => r !== '') : p.recipients;
  const open = recipients === undefined && target.kind !== 'agent';
  const priority = hs('sos_priority');
  const expires = whole(hs('sos_expires_at'));
  // A body with no text (another client's shape): show what it holds rather than nothing.
  const text =
    p.text ?? str('text') ?? str('content') ?? (typeof raw.content === 'string' ? raw.content : Object.keys(raw).length > 0 ? JSON.stringify(raw) : '');
  const message: Envelope = {
    id: hs('sos_id') ?? fromWire('msg', str('message_id') ?? str('id')) ?? `${entry}@${targetField(target)}`,
    project,
    from: source.startsWith('agent:') ? source.slice('agent:'.length) : source,
    target,
    type: hs('sos_type') ?? (type === undefined || type === 'send' ? 'message' : type),
    text,
    contentType: hs('sos_content_type') ?? p.content_type,
    replyTo: hs('sos_reply_to') ?? fromWire('msg', f.reply_to) ?? p.reply_to,
    requestId: hs('sos_request_id') ?? fromWire('req', f.correlation_id) ?? p.request_id,
    ackRequired: flag(hs('sos_ack_required')) ?? p.ack_required,
    ackTimeoutMs: whole(hs('sos_ack_timeout_ms')) ?? p.ack_timeout_ms,
    priority: (PRIORITIES as readonly string[]).includes(priority ?? '') ? (priority as Priority) : p.priority,
    createdAt: p.created_at ?? (Number.isFinite(timestamp) ? timestamp : entryMs(entry)),
    expiresAt: expires !== undefined && isMoment(expires) ? expires : p.expires_at,
    recipients: recipients ?? (target.kind === 'agent' ? [target.name] : []),
    ackFor: hs('sos_ack_for') ?? p.ack_for,
    ackOk: flag(hs('sos_ack_ok')) ?? p.ack_ok,
    resendOf: hs('sos_resend_of') ?? p.resend_of,
  };
  return { entry, seq: sortableNear(message.id, entryMs(entry)), message, open };
}

const ULID_TIME = '0123456789abcdefghjkmnpqrstvwxyz';

/**
 * The id, when it is a sortable id made about when its entry was written (a day either way): then
 * it orders messages of one millisecond across streams. A UUID of another client read as `msg_…`
 * holds random bits where the time would be, and orders nothing.
 */
function sortableNear(id: string, ms: number): string | undefined {
  if (!/^msg_[0-9a-z]{26}$/.test(id)) return undefined;
  let time = 0;
  for (const c of id.slice(4, 14)) {
    const digit = ULID_TIME.indexOf(c);
    if (digit < 0) return undefined;
    time = time * 32 + digit;
  }
  return Math.abs(time - ms) < 86_400_000 ? id : undefined;
}

/** The id of the message an entry holds, as `decode` reads it (without decoding the rest). */
function entryMessageId(fields: string[]): string | undefined {
  const headers = parseObject(fieldValue(fields, 'headers'));
  if (typeof headers?.sos_id === 'string') return headers.sos_id;
  return fromWire('msg', fieldValue(fields, 'message_id') ?? fieldValue(fields, 'id'));
}

function isFor(stored: Stored, agent: string): boolean {
  return stored.open ? stored.message.from !== agent : stored.message.recipients.includes(agent);
}

function parseState(value: string | null | undefined): { state: DeliveryState; at: number } | undefined {
  if (!value) return undefined;
  const [state, at] = value.split(':', 2) as [DeliveryState, string | undefined];
  return RANK[state] === undefined ? undefined : { state, at: Number(at ?? 0) };
}

const isUnread = (state: DeliveryState) => state === 'queued' || state === 'delivered';

function asEntries(value: unknown): RawEntry[] {
  return Array.isArray(value) ? (value as RawEntry[]) : [];
}

/**
 * XINFO GROUPS reply (RESP2: flat field/value arrays) → the group's cursor, and its lag (entries
 * not delivered to the group yet; null when Redis cannot tell, or before Redis 7).
 */
function groupInfo(reply: unknown, group: string): { last: string; lag: number | null } | undefined {
  for (const row of asEntries(reply) as unknown as unknown[][]) {
    const info: Record<string, unknown> = {};
    for (let i = 0; i + 1 < row.length; i += 2) info[String(row[i])] = row[i + 1];
    if (info.name !== group) continue;
    const lag = info.lag;
    return { last: String(info['last-delivered-id']), lag: typeof lag === 'number' ? lag : lag == null ? null : Number(lag) };
  }
  return undefined;
}

// ---------------------------------------------------------------- the adapter

export interface RedisBusOptions {
  /** `redis://[user:password@]host:port[/db]` (or `rediss://`). */
  url: string;
  /** Approximate cap on each stream (`XADD MAXLEN ~`). */
  maxLen: number;
  /**
   * Whether to use upstream SOS's global keys and channels too (its `sos:stream:global:agent:<a>`
   * and kernel streams, `sos:wake:<a>`, `sos:registry:<p>:<a>`). Default: when the connection may
   * reach them, which a project ACL user may not.
   */
  upstreamGlobal?: boolean;
}

interface StreamRef {
  key: string;
  target: Target;
  /** The consumer group that is the reader's cursor on it. */
  group: string;
  /** A global stream upstream writes: never created by us, read only while it exists. */
  foreign: boolean;
}

interface Batch {
  ref: StreamRef;
  entries: RawEntry[];
}

interface Taken {
  stored: Stored;
  item: InboxItem;
}

interface ChannelWaiters {
  listeners: Set<() => void>;
  subscribed: Promise<unknown>;
  /** Pending unsubscribe of a channel nobody listens to any more (see `listen`). */
  linger: NodeJS.Timeout | undefined;
}

/**
 * Construct, then `await bus.connect()` (or `await RedisBus.open(options)`). Every method also
 * connects on first use, so `connect()` only moves the failure earlier.
 */
export class RedisBus implements Bus {
  readonly capabilities: BusCapabilities = { adapter: 'redis', pushWake: true, serverSideIsolation: true };
  private connection: Promise<Redis> | undefined;
  private subscriber: Promise<Redis> | undefined;
  private readonly groups = new Set<string>();
  /** Foreign streams (`key\ngroup`) found not to exist, so with no group yet (see `ensureGroups`). */
  private readonly absent = new Set<string>();
  private readonly channels = new Map<string, ChannelWaiters>();
  private readonly patterns = new Map<string, { listeners: Set<(agent: string) => void>; subscribed: Promise<unknown> }>();
  private readonly closing = new AbortController();
  private closed: Promise<void> | undefined;
  /** Whether this connection uses upstream's global keys and channels (see `upstreamGlobal`). */
  private global = false;

  /** `options.maxLen` as XADD takes it. */
  private readonly maxLen: string;

  constructor(private readonly options: RedisBusOptions) {
    if (!Number.isInteger(options.maxLen) || options.maxLen < 1) throw new RangeError('maxLen must be a positive integer');
    this.maxLen = String(options.maxLen);
  }

  static async open(options: RedisBusOptions): Promise<RedisBus> {
    const bus = new RedisBus(options);
    try {
      await bus.connect();
    } catch (err) {
      await bus.close();
      throw err;
    }
    return bus;
  }

  async connect(): Promise<void> {
    await this.client();
  }

  private client(): Promise<Redis> {
    if (this.closed) return Promise.reject(new Unavailable('the Redis bus is closed'));
    this.connection ??= openRedis(this.options.url, 'sos-bus').then(
      async (redis) => {
        redis.defineCommand('sosDeliver', { numberOfKeys: 1, lua: DELIVER });
        redis.defineCommand('sosTransition', { numberOfKeys: 1, lua: TRANSITION });
        redis.defineCommand('sosSetIfExists', { numberOfKeys: 1, lua: SET_IF_EXISTS });
        try {
          this.global = this.options.upstreamGlobal ?? (await reachesGlobalKeys(redis));
        } catch (err) {
          redis.disconnect();
          throw redisError(err, this.options.url);
        }
        return redis;
      },
      (err: unknown) => {
        this.connection = undefined;
        throw err;
      },
    );
    return this.connection;
  }

  /** Runs `fn` on the connection; every failure leaves as a SosError where one applies. */
  private async use<T>(fn: (redis: Redis) => Promise<T>): Promise<T> {
    const redis = await this.client();
    try {
      return await fn(redis);
    } catch (err) {
      throw redisError(err, this.options.url);
    }
  }

  // ------------------------------------------------------------ append

  async append(message: Envelope, key: string | null): Promise<AppendResult> {
    return this.use(async (redis) => {
      // A reply carries its thread's correlation id (upstream's `correlation_id`) when it has none.
      if (message.replyTo !== null && message.requestId === null) {
        const [parent] = await this.load(redis, message.project, [canonicalMessageId(message.replyTo)]);
        const correlation = parent?.stored.message.requestId;
        if (correlation) message = { ...message, requestId: correlation };
      }
      if (key !== null) {
        const guard = idempotencyKey(message.project, message.from, key);
        for (let attempt = 0; attempt < 5; attempt++) {
          if ((await redis.set(guard, message.id, 'EX', IDEMPOTENCY_TTL_S, 'NX')) === 'OK') break;
          const first = await redis.get(guard);
          if (first === null) continue; // expired between SET and GET: try again
          // The first sender may still be writing, or may have died between SET and XADD.
          if (!(await this.appeared(redis, message.project, first))) await this.write(redis, { ...message, id: first }, true);
          return { id: first, duplicate: true };
        }
      }
      await this.write(redis, message);
      return { id: message.id, duplicate: false };
    });
  }

  private async appeared(redis: Redis, project: string, id: string): Promise<boolean> {
    const deadline = Date.now() + IDEMPOTENCY_WAIT_MS;
    for (;;) {
      if ((await redis.exists(deliveryKey(project, id))) === 1) return true;
      if (Date.now() >= deadline) return false;
      await abortableSleep(20, this.closing.signal);
    }
  }

  /**
   * One round trip, two commands: XADD (durable), then one script on the delivery hash that
   * writes it (HSETNX on a take-over: a re-send never resets a state) and publishes the wakes;
   * and the ack watch. Every command and the script touch one key, and Redis runs them in order,
   * so a wake is never published before its message exists. The hash records the stream and send
   * time; the entry id is filled in by the first reader or by `get`. A crash after XADD leaves no
   * hash: readers treat it as queued. Wakes go out in both conventions: sos's (the bare id on
   * `sos:wake:project:<p>:agent:<r>`) and upstream's (the message's JSON on its per-agent, squad
   * or project channel, and on `sos:wake:<r>`, which upstream's wake daemon listens to).
   */
  private async write(redis: Redis, m: Envelope, takeover = false): Promise<void> {
    const stream = streamKey(m.project, m.target);
    // Plain commands, not a pipeline object: with auto-pipelining, the commands of every send
    // issued in the same tick go out in one write, and Redis still runs each send's in order.
    const entry: (string | number)[] = [stream, 'MAXLEN', '~', this.maxLen, '*'];
    const wire = wireFields(m);
    for (const name in wire) entry.push(name, wire[name]!);
    const added = redis.xadd(...(entry as [string]));
    const watched = m.ackRequired ? redis.zadd(acksKey(m.project), m.createdAt, m.id) : undefined;
    // Wall time of the write (not the envelope's, which a caller may set): where `locate` looks.
    const args: string[] = [takeover ? 'keep' : 'set', String(2 + m.recipients.length), 'stream', stream, 'created', String(Date.now())];
    for (const r of m.recipients) args.push(`r:${r}`, `queued:${m.createdAt}`);
    const json = JSON.stringify(wire);
    args.push(String(m.recipients.length + 1), this.global ? String(m.recipients.length) : '0');
    for (const r of m.recipients) args.push(wakeChannel(m.project, r), m.id);
    args.push(messageChannel(m.project, m.target), json);
    // Best effort: a user allowed the global keys but not these channels loses only upstream's wake.
    if (this.global) for (const r of m.recipients) args.push(upstreamWakeChannel(r), json);
    const delivered = scripted(redis).sosDeliver(deliveryKey(m.project, m.id), ...args);
    const [id] = await Promise.all([added, watched, delivered]);
    if (id === null || id === undefined) throw new Error(`XADD to ${stream} returned no id`);
  }

  /**
   * Finds a message's entry when its hash has no entry id yet: entries carry the send time, so
   * the search scans a window around it (clocks of one deployment agree to well within it),
   * then remembers the id.
   */
  private async locate(redis: Redis, project: string, id: string, hash: Record<string, string>): Promise<string | undefined> {
    const created = Number(hash.created);
    if (!hash.stream || !Number.isFinite(created)) return undefined;
    let start = String(Math.max(0, created - LOCATE_WINDOW_MS));
    const end = String(created + LOCATE_WINDOW_MS);
    for (;;) {
      const page = asEntries(await redis.xrange(hash.stream, start, end, 'COUNT', 500));
      for (const [entry, fields] of page) {
        if (fields && entryMessageId(fields) === id) {
          await scripted(redis).sosSetIfExists(deliveryKey(project, id), 'entry', entry);
          return entry;
        }
      }
      if (page.length < 500) return undefined;
      start = `(${page[page.length - 1]![0]}`;
    }
  }

  // ------------------------------------------------------------ reading

  /**
   * The agent's inbox plus the given streams, each once; with upstream's global keys, also the
   * per-agent streams upstream writes outside any project (part of the agent's inbox).
   */
  private streamsOf(project: string, agent: string, streams: Target[]): StreamRef[] {
    const refs = new Map<string, StreamRef>();
    const inbox: Target = { kind: 'agent', name: agent };
    const group = readerGroup(agent);
    for (const target of [inbox, ...streams]) {
      const key = streamKey(project, target);
      if (!refs.has(key)) refs.set(key, { key, target, group, foreign: false });
    }
    if (this.global) {
      const foreignGroup = upstreamReaderGroup(project, agent);
      for (const key of upstreamAgentStreams(agent)) refs.set(key, { key, target: inbox, group: foreignGroup, foreign: true });
    }
    return [...refs.values()];
  }

  /**
   * Creates the missing reader groups (at the start: every entry is unread until read) and returns
   * the refs that have one: a foreign stream that does not exist is left alone, not created. A
   * foreign stream already found absent is tried again alongside the take, not before it (one round
   * trip less per take): once upstream writes it, the next take reads it, from its first entry.
   */
  private async ensureGroups(redis: Redis, refs: StreamRef[]): Promise<StreamRef[]> {
    const missing = refs.filter((r) => !this.groups.has(`${r.key}\n${r.group}`));
    if (missing.length > 0) {
      const pipe = redis.pipeline();
      for (const r of missing) pipe.call('XGROUP', 'CREATE', r.key, r.group, '0', ...(r.foreign ? [] : ['MKSTREAM']));
      const created = pipe.exec().then((results) => {
        (results ?? []).forEach(([err], i) => {
          const r = missing[i]!;
          const id = `${r.key}\n${r.group}`;
          if (err && r.foreign && /requires the key to exist/.test(err.message)) {
            this.absent.add(id);
            return;
          }
          if (err && !/BUSYGROUP/.test(err.message)) throw err;
          this.absent.delete(id);
          this.groups.add(id);
        });
      });
      if (missing.every((r) => this.absent.has(`${r.key}\n${r.group}`))) created.catch(() => undefined);
      else await created;
    }
    return refs.filter((r) => this.groups.has(`${r.key}\n${r.group}`));
  }

  /** Entries are decoded field by field with a fallback for each (see `decode`): none is ever skipped. */
  drainSkipped(): SkippedRow[] {
    return [];
  }

  async takeUnread(project: string, agent: string, streams: Target[], limit: number, now: number): Promise<InboxItem[]> {
    return this.use(async (redis) => {
      const refs = this.streamsOf(project, agent, streams);
      for (let attempt = 0; ; attempt++) {
        try {
          return await this.take(redis, project, agent, await this.ensureGroups(redis, refs), limit, now);
        } catch (err) {
          // The stream was deleted under us (or Redis lost its data): create the group again.
          if (attempt > 0 || !/NOGROUP|no such key/i.test((err as Error).message)) throw err;
          for (const r of refs) this.groups.delete(`${r.key}\n${r.group}`);
        }
      }
    });
  }

  /**
   * Oldest first across streams, at most `limit`, from the group cursors: first entries that left
   * a cursor but were never settled (parked by a take that hit its limit, or left by a reader that
   * died), then everything new when it fits in the limit, else rounds of: peek past each cursor,
   * choose the oldest for the agent, XREADGROUP exactly as many entries per stream as that needs.
   */
  private async take(redis: Redis, project: string, agent: string, refs: StreamRef[], limit: number, now: number) {
    if (limit < 1) return [];
    const taken: Taken[] = [];
    const first = redis.pipeline();
    for (const r of refs) {
      first.call('XINFO', 'GROUPS', r.key);
      first.call('XPENDING', r.key, r.group, '-', '+', limit, PARKED);
      first.call('XAUTOCLAIM', r.key, r.group, CONSUMER, CLAIM_IDLE_MS, '0-0', 'COUNT', limit);
    }
    const replies = await run(first);
    const infos = refs.map((r, i) => groupInfo(replies[3 * i], r.group));
    const cursors = infos.map((info) => info?.last ?? '0-0');
    const lags = infos.map((info) => info?.lag ?? null);
    const recovered: Batch[] = [];
    const unpark = redis.pipeline();
    const unparked: StreamRef[] = [];
    refs.forEach((r, i) => {
      const parked = asEntries(replies[3 * i + 1]).map((p) => String(p[0]));
      if (parked.length > 0) {
        unpark.call('XCLAIM', r.key, r.group, CONSUMER, 0, ...parked);
        unparked.push(r);
      }
      const claimed = asEntries((replies[3 * i + 2] as unknown[] | undefined)?.[1]);
      if (claimed.length > 0) recovered.push({ ref: r, entries: claimed });
    });
    if (unparked.length > 0) (await run(unpark)).forEach((reply, i) => recovered.push({ ref: unparked[i]!, entries: asEntries(reply) }));
    if (recovered.length > 0) taken.push(...(await this.settle(redis, project, agent, recovered, limit, now)));

    // When the lags say everything new fits in the limit, read it all: no peek, nothing is cut.
    let direct: number[] | undefined;
    if (lags.every((lag) => lag !== null && Number.isFinite(lag) && lag >= 0)) {
      const all = lags as number[];
      if (all.every((lag) => lag === 0)) return this.ordered(taken);
      if (all.reduce((a, b) => a + b, 0) <= limit - taken.length) direct = all;
    }
    while (taken.length < limit) {
      let round: { taken: Taken[]; done: boolean };
      try {
        round = await this.round(redis, project, agent, refs, cursors, limit - taken.length, now, direct);
        direct = undefined;
      } catch (err) {
        // What was taken is already `read`: hand it over; the next call meets the error again.
        if (taken.length > 0) break;
        throw err;
      }
      taken.push(...round.taken);
      if (round.done) break;
    }
    return this.ordered(taken);
  }

  private ordered(taken: Taken[]): InboxItem[] {
    return taken.sort((a, b) => compareStored(a.stored, b.stored)).map((t) => t.item);
  }

  /**
   * One peek, plan, read and settle (or, with `direct` counts, just read and settle); `cursors`
   * advance past what was read.
   */
  private async round(
    redis: Redis,
    project: string,
    agent: string,
    refs: StreamRef[],
    cursors: string[],
    remaining: number,
    now: number,
    direct?: number[],
  ): Promise<{ taken: Taken[]; done: boolean }> {
    const decoded = new Map<string, Stored | undefined>();
    let counts = direct ?? [];
    let expired: { ref: StreamRef; stored: Stored }[] = [];
    let done = direct !== undefined;
    if (!direct) {
      const window = Math.max(remaining, PEEK_MIN);
      const peek = redis.pipeline();
      refs.forEach((r, i) => peek.call('XRANGE', r.key, `(${cursors[i]}`, '+', 'COUNT', window));
      const peeked = (await run(peek)).map(asEntries);
      ({ counts, expired } = this.plan(project, agent, refs, peeked, remaining, now, decoded));
      // Read up to the end of every stream as it was: no need to look again.
      done = peeked.every((entries, i) => entries.length < window && counts[i] === entries.length);
    }
    if (counts.every((n) => n === 0)) return { taken: [], done: true };
    const read = redis.pipeline();
    const reading = refs.filter((_, i) => counts[i]! > 0);
    for (const r of reading) read.call('XREADGROUP', 'GROUP', r.group, CONSUMER, 'COUNT', counts[refs.indexOf(r)]!, 'STREAMS', r.key, '>');
    // Expired messages further on are marked now, as the SQL bus does; reaching them later skips them.
    for (const { ref, stored } of expired) {
      const args = [agent, 'expired', String(now), 'take', '1', ref.key, stored.entry];
      scripted(read).sosTransition(deliveryKey(project, stored.message.id), ...args);
    }
    const batches = (await run(read)).slice(0, reading.length).map((reply, i): Batch => ({
      ref: reading[i]!,
      entries: asEntries((reply as [string, unknown][] | null)?.[0]?.[1]),
    }));
    if (batches.every((b) => b.entries.length === 0)) return { taken: [], done: true };
    for (const b of batches) if (b.entries.length > 0) cursors[refs.indexOf(b.ref)] = b.entries[b.entries.length - 1]![0];
    const taken = await this.settle(redis, project, agent, batches, remaining, now, decoded);
    return { taken, done };
  }

  /**
   * How many entries to read from each stream so that the oldest `remaining` messages for the
   * agent are read, with the entries not for it (or expired) that sit before them; and the
   * expired messages for the agent beyond that.
   */
  private plan(
    project: string,
    agent: string,
    refs: StreamRef[],
    peeked: RawEntry[][],
    remaining: number,
    now: number,
    decoded: Map<string, Stored | undefined>,
  ): { counts: number[]; expired: { ref: StreamRef; stored: Stored }[] } {
    const kinds = peeked.map((entries, i) =>
      entries.map((raw) => {
        const stored = decode(project, refs[i]!.target, raw);
        decoded.set(`${refs[i]!.key}\n${raw[0]}`, stored);
        if (stored === undefined || !isFor(stored, agent)) return { stored, kind: 'skip' as const };
        const expired = stored.message.expiresAt !== null && stored.message.expiresAt <= now;
        return { stored, kind: expired ? ('expired' as const) : ('take' as const) };
      }),
    );
    const chosen = new Set(
      peeked
        .flatMap((entries, i) => entries.map((_, j) => ({ key: `${i}/${j}`, ...kinds[i]![j]! })))
        .filter((c) => c.kind === 'take')
        .sort((a, b) => compareStored(a.stored!, b.stored!))
        .slice(0, remaining)
        .map((c) => c.key),
    );
    const expired: { ref: StreamRef; stored: Stored }[] = [];
    // Each stream: the prefix up to its first message for the agent that was not chosen.
    const counts = kinds.map((entries, i) => {
      const stop = entries.findIndex((e, j) => e.kind === 'take' && !chosen.has(`${i}/${j}`));
      if (stop === -1) return entries.length;
      for (const e of entries.slice(stop)) if (e.kind === 'expired') expired.push({ ref: refs[i]!, stored: e.stored! });
      return stop;
    });
    return { counts, expired };
  }

  /**
   * Settles entries this reader got from the group, oldest first: those for the agent pass the
   * exactly-once gate to `read` (or `expired`) and are returned when it opened; all are XACKed,
   * except ones beyond `capacity` (only when a concurrent reader moved the cursor between peek
   * and read), which are parked: left pending under PARKED and taken first by the next take.
   */
  private async settle(
    redis: Redis,
    project: string,
    agent: string,
    batches: Batch[],
    capacity: number,
    now: number,
    decoded?: Map<string, Stored | undefined>,
  ): Promise<Taken[]> {
    const pipe = redis.pipeline();
    const gated: { stored: Stored; expired: boolean }[] = [];
    const acks = new Map<StreamRef, string[]>();
    const parks = new Map<StreamRef, string[]>();
    const push = (map: Map<StreamRef, string[]>, ref: StreamRef, id: string) => {
      const ids = map.get(ref);
      if (ids) ids.push(id);
      else map.set(ref, [id]);
    };
    const entries = batches
      .flatMap((b) =>
        b.entries.map((raw) => {
          const key = `${b.ref.key}\n${raw[0]}`;
          // Decoded during the peek, unless a concurrent reader moved the cursor in between.
          return { ref: b.ref, raw, stored: decoded?.has(key) ? decoded.get(key) : decode(project, b.ref.target, raw) };
        }),
      )
      .sort((a, b) => compareStored(a.stored ?? { entry: a.raw[0], seq: undefined }, b.stored ?? { entry: b.raw[0], seq: undefined }));
    let accepted = 0;
    for (const { ref, raw, stored } of entries) {
      if (stored && isFor(stored, agent)) {
        const expired = stored.message.expiresAt !== null && stored.message.expiresAt <= now;
        if (!expired && accepted >= capacity) {
          push(parks, ref, raw[0]);
          continue;
        }
        if (!expired) accepted++;
        const args = [agent, expired ? 'expired' : 'read', String(now), 'take', '1', ref.key, stored.entry];
        scripted(pipe).sosTransition(deliveryKey(project, stored.message.id), ...args);
        gated.push({ stored, expired });
      }
      push(acks, ref, raw[0]);
    }
    for (const [ref, ids] of acks) pipe.xack(ref.key, ref.group, ...ids);
    for (const [ref, ids] of parks) pipe.call('XCLAIM', ref.key, ref.group, PARKED, 0, ...ids, 'JUSTID');
    const results = await run(pipe);
    const taken: Taken[] = [];
    gated.forEach(({ stored, expired }, i) => {
      if (!expired && Number(results[i]) === 2) {
        taken.push({ stored, item: { message: stored.message, state: 'read', at: now } });
      }
    });
    return taken;
  }

  async history(project: string, agent: string, streams: Target[], limit: number): Promise<InboxItem[]> {
    return this.use(async (redis) => {
      const found: Stored[] = [];
      for (const r of this.streamsOf(project, agent, streams)) {
        let end = '+';
        let mine = 0;
        while (mine < limit) {
          const page = asEntries(await redis.call('XREVRANGE', r.key, end, '-', 'COUNT', HISTORY_PAGE));
          for (const raw of page) {
            const stored = decode(project, r.target, raw);
            if (stored && isFor(stored, agent)) {
              found.push(stored);
              mine++;
            }
          }
          if (page.length < HISTORY_PAGE) break;
          end = `(${page[page.length - 1]![0]}`;
        }
      }
      found.sort((a, b) => compareStored(b, a));
      const seen = new Set<string>();
      const newest = found.filter((s) => !seen.has(s.message.id) && seen.add(s.message.id)).slice(0, limit);
      const pipe = redis.pipeline();
      for (const s of newest) pipe.hget(deliveryKey(project, s.message.id), `r:${agent}`);
      const states = await run(pipe);
      return newest.map((s, i) => {
        const st = parseState(states[i] as string | null) ?? { state: 'queued' as const, at: s.message.createdAt };
        return { message: s.message, state: st.state, at: st.at };
      });
    });
  }

  async countUnread(project: string, agent: string, streams: Target[], now: number): Promise<number> {
    return this.use(async (redis) => {
      const refs = this.streamsOf(project, agent, streams);
      const info = redis.pipeline();
      for (const r of refs) info.call('XINFO', 'GROUPS', r.key);
      const groups = ((await info.exec()) ?? []).map(([err, reply], i) => {
        if (err && !/no such key/i.test(err.message)) throw err;
        return err ? undefined : groupInfo(reply, refs[i]!.group)?.last; // no stream yet: nothing read yet
      });
      // New entries past the cursor, plus pending ones that a take will pick up: parked, or left
      // by a dead reader long enough ago to be claimed.
      const scan = redis.pipeline();
      const slots = refs.map((r, i) => {
        const last = groups[i];
        scan.call('XRANGE', r.key, last === undefined ? '-' : `(${last}`, '+');
        if (last === undefined) return { ref: r, pending: false };
        scan.call('XPENDING', r.key, r.group, '-', '+', 1000);
        return { ref: r, pending: true };
      });
      const scanned = await run(scan);
      const candidates: Stored[] = [];
      const pendingIds: { ref: StreamRef; id: string }[] = [];
      let at = 0;
      for (const slot of slots) {
        for (const raw of asEntries(scanned[at++])) {
          const stored = decode(project, slot.ref.target, raw);
          if (stored) candidates.push(stored);
        }
        if (!slot.pending) continue;
        for (const [id, consumer, idle] of scanned[at++] as [string, string, number][]) {
          if (consumer === PARKED || Number(idle) >= CLAIM_IDLE_MS) pendingIds.push({ ref: slot.ref, id });
        }
      }
      if (pendingIds.length > 0) {
        const fetch = redis.pipeline();
        for (const p of pendingIds) fetch.call('XRANGE', p.ref.key, p.id, p.id);
        (await run(fetch)).forEach((reply, i) => {
          const raw = asEntries(reply)[0];
          const stored = raw && decode(project, pendingIds[i]!.ref.target, raw);
          if (stored) candidates.push(stored);
        });
      }
      const seen = new Set<string>();
      const mine = candidates.filter(
        (s) =>
          isFor(s, agent) &&
          (s.message.expiresAt === null || s.message.expiresAt > now) &&
          !seen.has(s.message.id) &&
          seen.add(s.message.id),
      );
      if (mine.length === 0) return 0;
      const states = redis.pipeline();
      for (const s of mine) states.hget(deliveryKey(project, s.message.id), `r:${agent}`);
      return (await run(states)).filter((v) => isUnread(parseState(v as string | null)?.state ?? 'queued')).length;
    });
  }

  // ------------------------------------------------------------ one message

  /** Messages by id (undefined where unknown): their delivery hashes, then their entries. */
  private async load(redis: Redis, project: string, given: string[]): Promise<({ stored: Stored; hash: Record<string, string> } | undefined)[]> {
    if (given.length === 0) return [];
    const ids = given.map(canonicalMessageId);
    const hashes = redis.pipeline();
    for (const id of ids) hashes.hgetall(deliveryKey(project, id));
    const found = (await run(hashes)).map((value) => {
      const hash = value as Record<string, string>;
      const target = hash.stream === undefined ? undefined : targetOfStream(project, hash.stream);
      return hash.stream === undefined || target === undefined ? undefined : { hash, target };
    });
    // Sends record the stream and time, not the entry id (one round trip per send): find those.
    for (const [i, f] of found.entries()) {
      if (f && f.hash.entry === undefined) {
        const entry = await this.locate(redis, project, ids[i]!, f.hash);
        if (entry === undefined) found[i] = undefined;
        else f.hash.entry = entry;
      }
    }
    const entries = redis.pipeline();
    for (const f of found) if (f) entries.call('XRANGE', f.hash.stream!, f.hash.entry!, f.hash.entry!);
    const replies = await run(entries);
    let at = 0;
    return found.map((f) => {
      if (!f) return undefined;
      const raw = asEntries(replies[at++])[0];
      const stored = raw && decode(project, f.target, raw);
      return stored ? { stored, hash: f.hash } : undefined;
    });
  }

  private deliveries(stored: Stored, hash: Record<string, string>): Delivery[] {
    const recipients = stored.open
      ? Object.keys(hash).filter((k) => k.startsWith('r:')).map((k) => k.slice(2))
      : stored.message.recipients;
    return [...new Set(recipients)]
      .sort()
      .map((recipient) => ({ recipient, ...(parseState(hash[`r:${recipient}`]) ?? { state: 'queued' as const, at: stored.message.createdAt }) }));
  }

  /** By `msg_…` id or its UUID (upstream's spelling of the same id). */
  async get(project: string, id: string): Promise<{ message: Envelope; deliveries: Delivery[] } | undefined> {
    return this.use(async (redis) => {
      const [found] = await this.load(redis, project, [id]);
      if (!found) return undefined;
      const deliveries = this.deliveries(found.stored, found.hash);
      const message = found.stored.open ? { ...found.stored.message, recipients: deliveries.map((d) => d.recipient) } : found.stored.message;
      return { message, deliveries };
    });
  }

  async setState(project: string, given: string, recipient: string, state: DeliveryState, at: number): Promise<boolean> {
    const id = canonicalMessageId(given);
    return this.use(async (redis) => {
      const key = deliveryKey(project, id);
      const result = Number(await scripted(redis).sosTransition(key, recipient, state, String(at), 'set', '0', '', ''));
      if (result > 0) return true;
      if (result < 0) return false;
      // No state recorded yet for this recipient: a recipient of the message reads as queued.
      const [found] = await this.load(redis, project, [id]);
      if (!found || !isFor(found.stored, recipient)) return false;
      return Number(await scripted(redis).sosTransition(key, recipient, state, String(at), 'set', '1', '', '')) > 0;
    });
  }

  async pendingAcks(project: string): Promise<AckWatch[]> {
    return this.use(async (redis) => {
      const ids = await redis.zrange(acksKey(project), '0', '-1');
      const loaded = await this.load(redis, project, ids);
      const watches: AckWatch[] = [];
      const done: string[] = [];
      for (const [i, id] of ids.entries()) {
        const found = loaded[i];
        const unacked = found
          ? this.deliveries(found.stored, found.hash)
              .filter((d) => d.state !== 'acked' && d.state !== 'expired')
              .map((d) => d.recipient)
          : [];
        if (!found || unacked.length === 0) {
          done.push(id);
          continue;
        }
        const resent = found.hash.resent_at;
        const escalated = found.hash.escalated_at;
        watches.push({
          message: found.stored.message,
          unacked,
          resentAt: resent === undefined ? null : Number(resent),
          escalatedAt: escalated === undefined ? null : Number(escalated),
        });
      }
      if (done.length > 0) await redis.zrem(acksKey(project), ...done);
      return watches;
    });
  }

  async markAckEvent(project: string, id: string, event: 'resent' | 'escalated', at: number): Promise<void> {
    const key = deliveryKey(project, canonicalMessageId(id));
    await this.use((redis) => Promise.resolve(scripted(redis).sosSetIfExists(key, `${event}_at`, String(at))));
  }

  // ------------------------------------------------------------ presence

  /**
   * The heartbeat goes to the project's presence hash and, with upstream's global keys, to
   * upstream's registry (`sos:registry:<p>:<a>`, expiring with the TTL), which its peers read.
   */
  async heartbeat(project: string, agent: string, at: number, ttlMs: number): Promise<void> {
    await this.use(async (redis) => {
      const done: Promise<unknown>[] = [redis.hset(presenceKey(project), agent, `${at}:${ttlMs}`)];
      if (this.global) {
        const key = registryKey(project, agent);
        const seen = new Date(at).toISOString();
        done.push(
          redis.hset(key, { name: agent, project, status: 'online', last_seen: seen, tool: 'sos', agent_type: 'sos', ttl_ms: String(ttlMs) }),
          redis.pexpire(key, Math.max(1, Math.round(ttlMs))),
        );
      }
      await Promise.all(done);
    });
  }

  /**
   * The presence hash, merged (newest heartbeat wins) with upstream's registry of the project when
   * this connection reaches it: an upstream agent is online while its registry hash lives.
   */
  async presence(project: string): Promise<Presence[]> {
    return this.use(async (redis) => {
      const all = await redis.hgetall(presenceKey(project));
      const found = new Map<string, Presence>();
      for (const [agent, value] of Object.entries(all)) {
        const [lastSeen, ttlMs] = value.split(':').map(Number);
        found.set(agent, { agent, lastSeen: lastSeen ?? 0, ttlMs: ttlMs ?? 0 });
      }
      if (this.global) {
        for (const p of await this.registryPresence(redis, project)) {
          const known = found.get(p.agent);
          if (!known || p.lastSeen > known.lastSeen) found.set(p.agent, p);
        }
      }
      return [...found.values()].sort((a, b) => (a.agent < b.agent ? -1 : a.agent > b.agent ? 1 : 0));
    });
  }

  /** Upstream's registry hashes of the project (SCAN, never KEYS): `last_seen` (ISO) and the key's TTL. */
  private async registryPresence(redis: Redis, project: string): Promise<Presence[]> {
    const keys = new Set<string>();
    let cursor = '0';
    do {
      const [next, page] = await redis.scan(cursor, 'MATCH', registryPattern(project), 'COUNT', 1000);
      cursor = next;
      for (const k of page) keys.add(k);
    } while (cursor !== '0');
    if (keys.size === 0) return [];
    const pipe = redis.pipeline();
    const list = [...keys];
    for (const k of list) {
      pipe.hmget(k, 'name', 'last_seen', 'ttl_ms');
      pipe.pttl(k);
    }
    const replies = await run(pipe);
    const now = Date.now();
    const prefix = registryPattern(project).slice(0, -1);
    const out: Presence[] = [];
    list.forEach((k, i) => {
      const [name, seen, ttl] = (replies[2 * i] as (string | null)[] | undefined) ?? [];
      const pttl = Number(replies[2 * i + 1]);
      const lastSeen = seen ? Date.parse(seen) : NaN;
      if (!Number.isFinite(lastSeen) || pttl === -2) return;
      const stated = Number(ttl);
      // Online while the hash lives (upstream lets it expire); a hash that never expires: 10 minutes.
      const ttlMs = Number.isFinite(stated) && stated > 0 ? stated : pttl > 0 ? now - lastSeen + pttl : 600_000;
      out.push({ agent: name || k.slice(prefix.length), lastSeen, ttlMs: Math.max(0, ttlMs) });
    });
    return out;
  }

  // ------------------------------------------------------------ wake-ups

  private subscriberConnection(): Promise<Redis> {
    if (this.closed) return Promise.reject(new Unavailable('the Redis bus is closed'));
    this.subscriber ??= openRedis(this.options.url, 'sos-bus-wake').then(
      (sub) => {
        sub.on('message', (channel: string) => {
          for (const wake of this.channels.get(channel)?.listeners ?? []) wake();
        });
        // Back after a Redis restart: what was published while the connection was down is lost,
        // so every waiter looks again (a spurious wake costs one read; a missed one, a timeout).
        sub.on('ready', () => {
          for (const waiters of this.channels.values()) for (const wake of waiters.listeners) wake();
        });
        sub.on('pmessage', (pattern: string, channel: string) => {
          const agent = channel.slice(channel.lastIndexOf(':') + 1);
          for (const wake of this.patterns.get(pattern)?.listeners ?? []) wake(agent);
        });
        return sub;
      },
      (err: unknown) => {
        this.subscriber = undefined;
        throw err;
      },
    );
    return this.subscriber;
  }

  /**
   * Subscribes `wake` to the channel (one SUBSCRIBE per channel however many wait); returns the
   * undo. A channel nobody listens to any more stays subscribed for `LINGER_MS`: a reader that
   * follows an inbox waits again right after each take, and then waits on a subscription that is
   * already there (no SUBSCRIBE and UNSUBSCRIBE round trips between a wake and the next take).
   */
  private async listen(channel: string, wake: () => void): Promise<() => void> {
    const sub = await this.subscriberConnection();
    let waiters = this.channels.get(channel);
    if (!waiters) {
      waiters = { listeners: new Set(), subscribed: sub.subscribe(channel), linger: undefined };
      this.channels.set(channel, waiters);
    }
    const mine = waiters;
    if (mine.linger) clearTimeout(mine.linger);
    mine.linger = undefined;
    mine.listeners.add(wake);
    const drop = () => {
      if (mine.listeners.size > 0 || this.channels.get(channel) !== mine) return;
      this.channels.delete(channel);
      sub.unsubscribe(channel).catch(() => undefined);
    };
    const stop = () => {
      mine.listeners.delete(wake);
      if (mine.listeners.size > 0 || this.channels.get(channel) !== mine || mine.linger) return;
      mine.linger = setTimeout(() => {
        mine.linger = undefined;
        drop();
      }, LINGER_MS);
      mine.linger.unref();
    };
    try {
      await mine.subscribed;
    } catch (err) {
      mine.listeners.delete(wake);
      drop();
      throw err;
    }
    return stop;
  }

  /**
   * One PSUBSCRIBE to the project's sos wake channels (`…:agent:*`) however many listen. A
   * project-scoped ACL user may not hold the pattern: then this rejects and the caller polls.
   */
  async onWake(project: string, onWake: (agent: string) => void): Promise<() => Promise<void>> {
    const sub = await this.subscriberConnection();
    const pattern = wakeChannel(project, 'x').replace(/x$/, '*');
    let entry = this.patterns.get(pattern);
    if (!entry) {
      entry = { listeners: new Set(), subscribed: sub.psubscribe(pattern) };
      this.patterns.set(pattern, entry);
    }
    const mine = entry;
    mine.listeners.add(onWake);
    const stop = async () => {
      mine.listeners.delete(onWake);
      if (mine.listeners.size > 0 || this.patterns.get(pattern) !== mine) return;
      this.patterns.delete(pattern);
      await sub.punsubscribe(pattern).catch(() => undefined);
    };
    try {
      await mine.subscribed;
    } catch (err) {
      await stop();
      throw redisError(err, this.options.url);
    }
    return stop;
  }

  async waitForWake(
    project: string,
    agent: string,
    streams: Target[],
    options: { timeoutMs: number; signal?: AbortSignal },
  ): Promise<boolean> {
    // Subscribed first, then checked: a message sent in between is not missed. Both conventions
    // wake: sos's wake channel, and the channels upstream's senders publish each message on.
    if (options.signal?.aborted || this.closed) return false;
    await this.client();
    const channels = [wakeChannel(project, agent), messageChannel(project, { kind: 'agent', name: agent })];
    for (const t of streams) if (t.kind !== 'agent') channels.push(messageChannel(project, t));
    const global = this.global ? [upstreamWakeChannel(agent), ...upstreamAgentChannels(agent)] : [];
    return this.waitOn(channels, options, () => this.mayHaveUnread(project, agent, streams), global);
  }

  /**
   * Whether the agent has unread mail, in one round trip when the answer is no (the common case
   * right after a take): every group cursor at the end of its stream (lag 0) and nothing pending.
   * Anything else (entries past a cursor that may be for others, pending entries, a stream with no
   * group yet, a lag Redis cannot tell) is settled by `countUnread`.
   */
  private async mayHaveUnread(project: string, agent: string, streams: Target[]): Promise<boolean> {
    const refs = this.streamsOf(project, agent, streams);
    const settled = await this.use(async (redis) => {
      const pipe = redis.pipeline();
      for (const r of refs) {
        pipe.call('XINFO', 'GROUPS', r.key);
        pipe.call('XPENDING', r.key, r.group);
      }
      const replies = (await pipe.exec()) ?? [];
      return refs.every((r, i) => {
        const [infoErr, info] = replies[2 * i] ?? [];
        if (infoErr) {
          if (/no such key/i.test(infoErr.message)) return true; // no stream: nothing to read
          throw infoErr;
        }
        if (groupInfo(info, r.group)?.lag !== 0) return false;
        const [pendingErr, pending] = replies[2 * i + 1] ?? [];
        if (pendingErr) throw pendingErr;
        return Number((pending as unknown[] | null)?.[0] ?? 0) === 0;
      });
    });
    return settled ? false : (await this.countUnread(project, agent, streams, Date.now())) > 0;
  }

  /**
   * Waits for a publish on any of `channels` (or timeout/abort); with `ready`, returns at once when
   * it holds. `optional` channels are listened to when the server allows it (never an error).
   */
  private async waitOn(
    channels: string[],
    options: { timeoutMs: number; signal?: AbortSignal },
    ready?: () => Promise<boolean>,
    optional: string[] = [],
  ): Promise<boolean> {
    if (options.signal?.aborted || this.closed) return false;
    const inner = new AbortController();
    const abort = () => inner.abort();
    options.signal?.addEventListener('abort', abort, { once: true });
    this.closing.signal.addEventListener('abort', abort, { once: true });
    let woken = false;
    const wake = () => {
      woken = true;
      inner.abort();
    };
    const stops: (() => void)[] = [];
    try {
      const listening = [
        ...channels.map((c) => this.listen(c, wake).then((stop) => stops.push(stop))),
        ...optional.map((c) => this.listen(c, wake).then((stop) => stops.push(stop), () => undefined)),
      ];
      const settled = await Promise.allSettled(listening);
      const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failed) throw redisError(failed.reason, this.options.url);
      if (ready && (await ready())) return true;
      await abortableSleep(options.timeoutMs, inner.signal);
      return woken;
    } finally {
      inner.abort();
      options.signal?.removeEventListener('abort', abort);
      this.closing.signal.removeEventListener('abort', abort);
      for (const stop of stops) stop();
    }
  }

  // ------------------------------------------------------------ project events

  async emit(project: string, type: string, data: Record<string, unknown>, at: number): Promise<void> {
    await this.use(async (redis) => {
      const maxLen = String(this.options.maxLen);
      await Promise.all([
        redis.xadd(eventsKey(project), 'MAXLEN', '~', maxLen, '*', 'type', type, 'data', JSON.stringify(data), 'at', String(at)),
        redis.publish(eventsChannel(project), type),
      ]);
    });
  }

  async events(project: string, cursor: string, limit: number): Promise<{ cursor: string; events: BusEvent[] }> {
    return this.use(async (redis) => {
      const page = asEntries(await redis.xrange(eventsKey(project), cursor === '' ? '-' : `(${cursor}`, '+', 'COUNT', limit));
      const events: BusEvent[] = [];
      for (const [, fields] of page) {
        if (!fields) continue;
        let data: Record<string, unknown> = {};
        try {
          data = JSON.parse(fieldValue(fields, 'data') ?? '{}') as Record<string, unknown>;
        } catch {
          // another client's event: keep its type, drop the unreadable data
        }
        events.push({ type: fieldValue(fields, 'type') ?? 'unknown', data, at: Number(fieldValue(fields, 'at') ?? 0) });
      }
      return { cursor: page.length ? page[page.length - 1]![0] : cursor, events };
    });
  }

  async waitForEvent(project: string, options: { timeoutMs: number; signal?: AbortSignal }): Promise<boolean> {
    return this.waitOn([eventsChannel(project)], options);
  }

  async close(): Promise<void> {
    this.closed ??= (async () => {
      this.closing.abort();
      const opened = await Promise.allSettled([this.connection, this.subscriber]);
      await Promise.all(opened.map((o) => (o.status === 'fulfilled' && o.value ? closeRedis(o.value) : undefined)));
      for (const waiters of this.channels.values()) if (waiters.linger) clearTimeout(waiters.linger);
      this.channels.clear();
      this.patterns.clear();
    })();
    return this.closed;
  }
}
