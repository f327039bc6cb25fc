import type { SqlExecutor } from '../store/sql/driver.js';
import type { AckWatch, BusEvent, Delivery, DeliveryState, Envelope, InboxItem, Presence, SkippedRow, Target } from './types.js';

/** What each Bus adapter can do; callers branch on these, never on the adapter class. */
export interface BusCapabilities {
  adapter: 'sql' | 'redis';
  /** Wake-ups are pushed (Redis PUBLISH, PostgreSQL NOTIFY) rather than polled. */
  pushWake: boolean;
  /** Per-project credentials enforced by the server itself (Redis ACL users). */
  serverSideIsolation: boolean;
}

export interface AppendResult {
  id: string;
  /** True when the idempotency key was seen before: nothing was written, `id` is the first message. */
  duplicate: boolean;
}

/**
 * The Bus port. Adapters store and move envelopes; the rules (who may send what to whom, ack
 * protocol, validation) live in `service.ts` and are the same on every adapter.
 *
 * `streams` arguments name the streams an agent reads: its inbox, its squads, the broadcast.
 * Adapters that index deliveries by recipient may ignore them.
 */
export interface Bus {
  readonly capabilities: BusCapabilities;

  /**
   * Durably appends the message to its target's stream and records a `queued` delivery for each
   * recipient, then wakes readers. Returns only once the message is persisted. With an
   * idempotency key, a repeat (same project, sender and key) writes nothing and returns the id
   * of the first message.
   */
  append(message: Envelope, idempotencyKey: string | null): Promise<AppendResult>;

  /**
   * Takes the agent's unread messages (queued or delivered), oldest first, up to `limit`, and
   * marks them `read` (or `expired` when past their expiry; those are not returned). Each
   * message is taken by exactly one caller even when several read the same inbox at once.
   */
  takeUnread(project: string, agent: string, streams: Target[], limit: number, now: number): Promise<InboxItem[]>;

  /**
   * Stored rows that the reads since the last call skipped because they could not be read (a
   * hand-corrupted row, a foreign entry that is not an envelope). A skipped row is never marked
   * read: nothing is marked read that was not shown.
   */
  drainSkipped(): SkippedRow[];

  /** Messages addressed to the agent, newest first, with their state; changes nothing. */
  history(project: string, agent: string, streams: Target[], limit: number): Promise<InboxItem[]>;

  /** How many unread (queued or delivered, unexpired) messages the agent has. */
  countUnread(project: string, agent: string, streams: Target[], now: number): Promise<number>;

  get(project: string, id: string): Promise<{ message: Envelope; deliveries: Delivery[] } | undefined>;

  /** Moves one recipient's delivery to `state`; false when there is no such delivery. */
  setState(project: string, id: string, recipient: string, state: DeliveryState, at: number): Promise<boolean>;

  /** Messages that required an ack and are not acked by every recipient, oldest first. */
  pendingAcks(project: string): Promise<AckWatch[]>;

  /** Records that the ack sweep re-sent or escalated a message (so it does so once). */
  markAckEvent(project: string, id: string, event: 'resent' | 'escalated', at: number): Promise<void>;

  heartbeat(project: string, agent: string, at: number, ttlMs: number): Promise<void>;
  presence(project: string): Promise<Presence[]>;

  /**
   * Resolves true as soon as the agent may have something new to read, false on timeout or
   * abort. Cheap: pushed wake-ups where the backend has them, a change counter otherwise.
   */
  waitForWake(project: string, agent: string, streams: Target[], options: { timeoutMs: number; signal?: AbortSignal }): Promise<boolean>;

  /**
   * Pushed wake-ups, where the backend has them (`capabilities.pushWake`): calls `onWake` with
   * the recipient each time any process sends a message to an agent of `project`, until the
   * returned stop is called. A hint, not a delivery: the listener still reads the Store.
   */
  onWake?: ((project: string, onWake: (agent: string) => void) => Promise<() => Promise<void>>) | undefined;

  /** Appends to the project's event stream (`task.*`, later `agent.state`…) and wakes event waiters. */
  emit(project: string, type: string, data: Record<string, unknown>, at: number): Promise<void>;

  /**
   * Adapters whose events live in the Store's database write the event inside the caller's
   * transaction (it commits or rolls back with the change it reports) and return the in-process
   * wake to run after the commit. Absent on adapters that keep events elsewhere.
   */
  emitWithin?(tx: SqlExecutor, project: string, type: string, data: Record<string, unknown>, at: number): Promise<() => void>;

  /** Events after `cursor` ('' = from the start), oldest first, and the cursor to continue from. */
  events(project: string, cursor: string, limit: number): Promise<{ cursor: string; events: BusEvent[] }>;

  /** Resolves true when an event is emitted after the call started; false on timeout or abort. */
  waitForEvent(project: string, options: { timeoutMs: number; signal?: AbortSignal }): Promise<boolean>;

  close(): Promise<void>;
}
