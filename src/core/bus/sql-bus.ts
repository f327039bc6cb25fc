import { OperationFailed } from '../errors.js';
import { EventEmitter } from 'node:events';
import { nextChange, SqlError, type SqlDriver, type SqlExecutor } from '../store/sql/driver.js';
import { abortableSleep } from '../time.js';
import type { AppendResult, Bus, BusCapabilities } from './port.js';
import {
  type AckWatch,
  type BusEvent,
  type Delivery,
  type DeliveryState,
  type Envelope,
  type InboxItem,
  type Presence,
  readEnvelope,
  type SkippedRow,
  type Target,
  targetKey,
} from './types.js';

interface MessageRow {
  seq: number;
  envelope: string;
  resent_at: number | null;
  escalated_at: number | null;
}

interface DeliveryRow {
  message_seq: number;
  recipient: string;
  state: DeliveryState;
  at: number;
}

const UNREAD = "('queued', 'delivered')";
/** Forward-only: a delivery never moves back (read → delivered) or out of a final state. */
const RANK: Record<DeliveryState, number> = { queued: 0, delivered: 1, read: 2, acked: 3, expired: 4 };
/** SQLite wake poll: one `PRAGMA data_version` (microseconds) per tick per waiting reader. */
const POLL_MS = 5;
/** The pseudo-recipient that event waiters listen on. */
const EVENTS = '#events';

// SQLite has one writer at a time, so a plain IN (… LIMIT) is atomic.
const TAKE_SQLITE = `UPDATE bus_deliveries SET state = 'read', at = $3
  WHERE project = $1 AND recipient = $2 AND state IN ${UNREAD} AND message_seq IN (
    SELECT message_seq FROM bus_deliveries
    WHERE project = $1 AND recipient = $2 AND state IN ${UNREAD}
    ORDER BY message_seq LIMIT $4)
  RETURNING message_seq, recipient, state, at`;

// PostgreSQL: the pick is materialised once (an IN (… LIMIT) subquery may be re-run and take more
// than the limit) and skips rows another reader holds, so concurrent readers split the inbox.
const TAKE_POSTGRES = `WITH picked AS MATERIALIZED (
    SELECT message_seq FROM bus_deliveries
    WHERE project = $1 AND recipient = $2 AND state IN ${UNREAD}
    ORDER BY message_seq LIMIT $4 FOR UPDATE SKIP LOCKED)
  UPDATE bus_deliveries d SET state = 'read', at = $3 FROM picked
  WHERE d.message_seq = picked.message_seq AND d.recipient = $2
  RETURNING d.message_seq, d.recipient, d.state, d.at`;

/** In-process wake-ups are shared by every SqlBus on the same database handle. */
const EMITTERS = new WeakMap<SqlDriver, EventEmitter>();
function emitterFor(db: SqlDriver): EventEmitter {
  let emitter = EMITTERS.get(db);
  if (!emitter) {
    emitter = new EventEmitter();
    emitter.setMaxListeners(0);
    EMITTERS.set(db, emitter);
  }
  return emitter;
}

/**
 * The bus on the Store's own database: the embedded default. Delivery rows double as the read
 * cursor, so "take unread" is one UPDATE … RETURNING that two readers can never both win.
 * Wake-ups: PostgreSQL NOTIFY; on SQLite a poll of `PRAGMA data_version` (one cheap pragma per
 * tick, the unread query only when another connection committed) plus an in-process emitter.
 */
export class SqlBus implements Bus {
  readonly capabilities: BusCapabilities;
  private readonly local: EventEmitter;
  private readonly channel: string;
  private readonly skipped: SkippedRow[] = [];

  constructor(private readonly db: SqlDriver) {
    this.capabilities = { adapter: 'sql', pushWake: db.listen !== undefined, serverSideIsolation: false };
    this.channel = `sos_bus_${db.location.replace(/[^a-z0-9]/gi, '').slice(-40)}`.toLowerCase();
    this.local = emitterFor(db);
    if (db.listen) this.onWake = (project, onWake) => this.listenForWakes(project, onWake);
  }

  readonly onWake: Bus['onWake'];

  async append(message: Envelope, idempotencyKey: string | null): Promise<AppendResult> {
    const existing = async (db: SqlExecutor) =>
      idempotencyKey === null
        ? undefined
        : db.one<{ id: string }>('SELECT id FROM bus_messages WHERE project = $1 AND sender = $2 AND idempotency_key = $3', [
            message.project,
            message.from,
            idempotencyKey,
          ]);
    try {
      const result = await this.db.transaction(async (tx) => {
        const first = await existing(tx);
        if (first) return { id: first.id, duplicate: true };
        const row = await tx.one<{ seq: number }>(
          `INSERT INTO bus_messages (id, project, sender, target, type, envelope, ack_required, created_at, expires_at, idempotency_key)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING seq`,
          [
            message.id,
            message.project,
            message.from,
            targetKey(message.target),
            message.type,
            JSON.stringify(message),
            message.ackRequired,
            message.createdAt,
            message.expiresAt,
            idempotencyKey,
          ],
        );
        for (const recipient of message.recipients) {
          await tx.run('INSERT INTO bus_deliveries (message_seq, project, recipient, state, at) VALUES ($1, $2, $3, $4, $5)', [
            row!.seq,
            message.project,
            recipient,
            'queued',
            message.createdAt,
          ]);
        }
        return { id: message.id, duplicate: false };
      });
      if (!result.duplicate) await this.wake(message);
      return result;
    } catch (err) {
      // Two senders raced on one idempotency key: the loser returns the winner's message.
      if (err instanceof SqlError && err.kind === 'unique' && idempotencyKey !== null) {
        const first = await existing(this.db);
        if (first) return { id: first.id, duplicate: true };
      }
      throw err;
    }
  }

  private async wake(message: Envelope): Promise<void> {
    for (const recipient of message.recipients) this.relay(message.project, recipient, !this.db.listen);
    if (this.db.listen) {
      await this.db.one('SELECT pg_notify($1, $2)', [this.channel, `${message.project}/${message.recipients.join(',')}`]);
    }
  }

  async takeUnread(project: string, agent: string, _streams: Target[], limit: number, now: number): Promise<InboxItem[]> {
    return this.db.transaction(async (tx) => {
      await tx.run(
        `UPDATE bus_deliveries SET state = 'expired', at = $3
         WHERE project = $1 AND recipient = $2 AND state IN ${UNREAD}
           AND message_seq IN (SELECT seq FROM bus_messages WHERE project = $1 AND expires_at IS NOT NULL AND expires_at <= $3)`,
        [project, agent, now],
      );
      const taken = await tx.all<DeliveryRow>(this.db.dialect === 'postgres' ? TAKE_POSTGRES : TAKE_SQLITE, [project, agent, now, limit]);
      const { items, unreadable } = await this.withMessages(taken, tx);
      // A row that cannot be shown is not taken: it goes back to unread in the same transaction.
      for (const seq of unreadable) {
        await tx.run("UPDATE bus_deliveries SET state = 'queued' WHERE message_seq = $1 AND recipient = $2", [seq, agent]);
      }
      return items;
    });
  }

  drainSkipped(): SkippedRow[] {
    return this.skipped.splice(0);
  }

  /** Noted for the next drainSkipped; a process that never drains (the daemon) keeps the latest 100. */
  private skip(row: SkippedRow): void {
    if (this.skipped.push(row) > 100) this.skipped.shift();
  }

  /** The rows' messages, oldest first; rows whose envelope cannot be read are skipped and noted. */
  private async withMessages(rows: DeliveryRow[], db: SqlExecutor = this.db): Promise<{ items: InboxItem[]; unreadable: number[] }> {
    if (rows.length === 0) return { items: [], unreadable: [] };
    const seqs = rows.map((r) => r.message_seq);
    const placeholders = seqs.map((_, i) => `$${i + 1}`).join(', ');
    const messages = await db.all<MessageRow & { id: string }>(
      `SELECT seq, id, envelope, resent_at, escalated_at FROM bus_messages WHERE seq IN (${placeholders})`,
      seqs,
    );
    const bySeq = new Map(messages.map((m) => [m.seq, m]));
    const items: InboxItem[] = [];
    const unreadable: number[] = [];
    for (const r of rows.sort((a, b) => a.message_seq - b.message_seq)) {
      const row = bySeq.get(r.message_seq);
      const message = row === undefined ? 'the message row is missing' : readEnvelope(row.envelope);
      if (typeof message === 'string') {
        this.skip({ id: row?.id ?? `seq ${r.message_seq}`, reason: message });
        unreadable.push(r.message_seq);
      } else items.push({ message, state: r.state, at: r.at });
    }
    return { items, unreadable };
  }

  async history(project: string, agent: string, _streams: Target[], limit: number): Promise<InboxItem[]> {
    const rows = await this.db.all<DeliveryRow>(
      `SELECT message_seq, recipient, state, at FROM bus_deliveries
       WHERE project = $1 AND recipient = $2 ORDER BY message_seq DESC LIMIT $3`,
      [project, agent, limit],
    );
    return (await this.withMessages(rows)).items.reverse();
  }

  async countUnread(project: string, agent: string, _streams: Target[], now: number): Promise<number> {
    const row = await this.db.one<{ n: number }>(
      `SELECT COUNT(*) AS n FROM bus_deliveries d JOIN bus_messages m ON m.seq = d.message_seq
       WHERE d.project = $1 AND d.recipient = $2 AND d.state IN ${UNREAD}
         AND (m.expires_at IS NULL OR m.expires_at > $3)`,
      [project, agent, now],
    );
    return Number(row?.n ?? 0);
  }

  async get(project: string, id: string): Promise<{ message: Envelope; deliveries: Delivery[] } | undefined> {
    const message = await this.db.one<MessageRow>(
      'SELECT seq, envelope, resent_at, escalated_at FROM bus_messages WHERE project = $1 AND id = $2',
      [project, id],
    );
    if (!message) return undefined;
    const deliveries = await this.db.all<DeliveryRow>(
      'SELECT message_seq, recipient, state, at FROM bus_deliveries WHERE message_seq = $1 ORDER BY recipient',
      [message.seq],
    );
    const envelope = readEnvelope(message.envelope);
    if (typeof envelope === 'string') throw new OperationFailed(`message ${id} is stored but cannot be read: ${envelope}`);
    return {
      message: envelope,
      deliveries: deliveries.map((d) => ({ recipient: d.recipient, state: d.state, at: d.at })),
    };
  }

  async setState(project: string, id: string, recipient: string, state: DeliveryState, at: number): Promise<boolean> {
    return this.db.transaction(async (tx) => {
      const row = await tx.one<{ message_seq: number; state: DeliveryState }>(
        `SELECT d.message_seq, d.state FROM bus_deliveries d JOIN bus_messages m ON m.seq = d.message_seq
         WHERE m.project = $1 AND m.id = $2 AND d.recipient = $3`,
        [project, id, recipient],
      );
      if (!row) return false;
      if (RANK[state] > RANK[row.state] && row.state !== 'expired') {
        await tx.run('UPDATE bus_deliveries SET state = $1, at = $2 WHERE message_seq = $3 AND recipient = $4', [
          state,
          at,
          row.message_seq,
          recipient,
        ]);
      }
      return true;
    });
  }

  async pendingAcks(project: string): Promise<AckWatch[]> {
    const messages = await this.db.all<MessageRow>(
      `SELECT seq, envelope, resent_at, escalated_at FROM bus_messages m
       WHERE m.project = $1 AND m.ack_required = $2 AND EXISTS (
         SELECT 1 FROM bus_deliveries d WHERE d.message_seq = m.seq AND d.state NOT IN ('acked', 'expired'))
       ORDER BY m.seq`,
      [project, true],
    );
    const result: AckWatch[] = [];
    for (const m of messages) {
      const unacked = await this.db.all<{ recipient: string }>(
        "SELECT recipient FROM bus_deliveries WHERE message_seq = $1 AND state NOT IN ('acked', 'expired') ORDER BY recipient",
        [m.seq],
      );
      const envelope = readEnvelope(m.envelope);
      if (typeof envelope === 'string') {
        this.skip({ id: `seq ${m.seq}`, reason: envelope });
        continue;
      }
      result.push({
        message: envelope,
        unacked: unacked.map((u) => u.recipient),
        resentAt: m.resent_at,
        escalatedAt: m.escalated_at,
      });
    }
    return result;
  }

  async markAckEvent(project: string, id: string, event: 'resent' | 'escalated', at: number): Promise<void> {
    const column = event === 'resent' ? 'resent_at' : 'escalated_at';
    await this.db.run(`UPDATE bus_messages SET ${column} = $1 WHERE project = $2 AND id = $3`, [at, project, id]);
  }

  async heartbeat(project: string, agent: string, at: number, ttlMs: number): Promise<void> {
    await this.db.run(
      `INSERT INTO bus_presence (project, agent, last_seen, ttl_ms) VALUES ($1, $2, $3, $4)
       ON CONFLICT (project, agent) DO UPDATE SET last_seen = excluded.last_seen, ttl_ms = excluded.ttl_ms`,
      [project, agent, at, ttlMs],
    );
  }

  async presence(project: string): Promise<Presence[]> {
    const rows = await this.db.all<{ agent: string; last_seen: number; ttl_ms: number }>(
      'SELECT agent, last_seen, ttl_ms FROM bus_presence WHERE project = $1 ORDER BY agent',
      [project],
    );
    return rows.map((r) => ({ agent: r.agent, lastSeen: r.last_seen, ttlMs: r.ttl_ms }));
  }

  async waitForWake(
    project: string,
    agent: string,
    streams: Target[],
    options: { timeoutMs: number; signal?: AbortSignal },
  ): Promise<boolean> {
    // Subscribed first, then checked: a message sent in between is not missed.
    return this.waitFor(`${project}/${agent}`, async () => (await this.countUnread(project, agent, streams, Date.now())) > 0, options, true);
  }

  /**
   * SQLite keys bus_events by (project, seq) with no AUTOINCREMENT (one b-tree, no
   * sqlite_sequence write): the new seq is the project's MAX(seq) + 1, read in the same statement
   * under the write lock, so it only grows (migration 0018 keeps a project's newest row from being
   * deleted). PostgreSQL keeps its identity column.
   */
  private get insertEvent(): string {
    return this.db.dialect === 'sqlite'
      ? 'INSERT INTO bus_events (project, seq, type, data, at) SELECT $1, COALESCE(MAX(seq), 0) + 1, $2, $3, $4 FROM bus_events WHERE project = $1'
      : 'INSERT INTO bus_events (project, type, data, at) VALUES ($1, $2, $3, $4)';
  }

  async emit(project: string, type: string, data: Record<string, unknown>, at: number): Promise<void> {
    await this.db.run(this.insertEvent, [project, type, JSON.stringify(data), at]);
    this.local.emit(`${project}/${EVENTS}`);
    if (this.db.listen) await this.db.one('SELECT pg_notify($1, $2)', [this.channel, `${project}/${EVENTS}`]);
  }

  async emitWithin(tx: SqlExecutor, project: string, type: string, data: Record<string, unknown>, at: number): Promise<() => void> {
    await tx.run(this.insertEvent, [project, type, JSON.stringify(data), at]);
    // NOTIFY is transactional in PostgreSQL: delivered on commit, dropped on rollback.
    if (this.db.listen) await tx.one('SELECT pg_notify($1, $2)', [this.channel, `${project}/${EVENTS}`]);
    return () => {
      this.local.emit(`${project}/${EVENTS}`);
    };
  }

  async events(project: string, cursor: string, limit: number): Promise<{ cursor: string; events: BusEvent[] }> {
    const rows = await this.db.all<{ seq: number; type: string; data: string; at: number }>(
      'SELECT seq, type, data, at FROM bus_events WHERE project = $1 AND seq > $2 ORDER BY seq LIMIT $3',
      [project, cursor === '' ? 0 : Number(cursor), limit],
    );
    return {
      cursor: rows.length ? String(rows[rows.length - 1]!.seq) : cursor,
      events: rows.map((r) => ({ type: r.type, data: JSON.parse(r.data) as Record<string, unknown>, at: r.at })),
    };
  }

  async waitForEvent(project: string, options: { timeoutMs: number; signal?: AbortSignal }): Promise<boolean> {
    const last = async () =>
      Number((await this.db.one<{ n: number | null }>('SELECT MAX(seq) AS n FROM bus_events WHERE project = $1', [project]))?.n ?? 0);
    const start = await last();
    return this.waitFor(`${project}/${EVENTS}`, async () => (await last()) > start, options, false);
  }

  /**
   * Waits until `key` is emitted in-process or by NOTIFY, or (SQLite) another connection commits
   * and `ready()` holds. With `checkFirst`, returns at once when `ready()` already holds.
   */
  private async waitFor(
    key: string,
    ready: () => Promise<boolean>,
    options: { timeoutMs: number; signal?: AbortSignal },
    checkFirst: boolean,
  ): Promise<boolean> {
    const deadline = Date.now() + options.timeoutMs;
    const inner = new AbortController();
    const abort = () => inner.abort();
    options.signal?.addEventListener('abort', abort, { once: true });
    let woken = false;
    const onLocal = () => {
      woken = true;
      inner.abort();
    };
    this.local.on(key, onLocal);
    try {
      await this.startListening();
      if (checkFirst && (await ready())) return true;
      if (this.db.changeCounter) {
        // SQLite: poll the change counter; a change may be for this reader or for another.
        const changeCounter = this.db.changeCounter.bind(this.db);
        for (let version: number | null = await changeCounter(); !woken; ) {
          version = await nextChange(changeCounter, version, deadline, inner.signal, POLL_MS);
          if (version === null) break;
          if (await ready()) return true;
        }
      } else {
        // PostgreSQL: NOTIFY (relayed as a local event) aborts the sleep.
        await abortableSleep(deadline - Date.now(), inner.signal);
      }
      return woken;
    } finally {
      this.local.off(key, onLocal);
      options.signal?.removeEventListener('abort', abort);
    }
  }

  /**
   * A wake for `recipient` to its waiters and, with `listeners`, to the project's `onWake`
   * listeners (under NOTIFY they hear each send once: from the notification, not the local emit).
   */
  private relay(project: string, recipient: string, listeners: boolean): void {
    this.local.emit(`${project}/${recipient}`);
    if (listeners && recipient !== EVENTS) this.local.emit(`${project}/*`, recipient);
  }

  /** PostgreSQL (NOTIFY); on SQLite (no push) the constructor leaves it out. */
  private async listenForWakes(project: string, onWake: (agent: string) => void): Promise<() => Promise<void>> {
    await this.startListening();
    this.local.on(`${project}/*`, onWake);
    return async () => {
      this.local.off(`${project}/*`, onWake);
    };
  }

  private listening: Promise<() => Promise<void>> | undefined;

  /** One LISTEN connection for the life of the bus, relayed to in-process waiters. */
  private async startListening(): Promise<void> {
    if (!this.db.listen) return;
    this.listening ??= this.db.listen(this.channel, (payload) => {
      const [project, recipients] = payload.split('/', 2);
      for (const recipient of recipients?.split(',') ?? []) this.relay(project ?? '', recipient, true);
    });
    try {
      await this.listening;
    } catch (err) {
      this.listening = undefined;
      throw err;
    }
  }

  async close(): Promise<void> {
    const stop = await this.listening?.catch(() => undefined);
    this.listening = undefined;
    await stop?.();
  }
}
