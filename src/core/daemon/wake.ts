import type { Caller } from '../auth/caller.js';
import { streamsFrom } from '../bus/service.js';
import type { Envelope, InboxItem } from '../bus/types.js';
import { listSquads } from '../identity/squads.js';
import { type LifecycleContext, nowOf } from '../lifecycle/context.js';
import { readInput, readSession } from '../lifecycle/read.js';
import { sessionLine } from '../sessions/line.js';
import type { SessionDriver, SessionSnapshot } from '../sessions/port.js';
import { type Agent, wakeModeOf } from '../store/types.js';
import { abortableSleep } from '../time.js';

/**
 * Wake delivery (docs/ARCHITECTURE.md, "Flow of a message"): a message for an agent with a session is typed into it as one
 * short line, only when the session is at its prompt; while the agent is busy, waiting on a
 * human, compacted or dead the message is `held` and goes out (several as one digest line) the
 * next time it is idle. Never dropped: the message stays in the inbox whatever happens here.
 *
 * No message is typed twice: its wake row is claimed (`injecting`) before typing, and a row
 * left in that state by a crash is never typed again (it becomes `unverified`).
 */

export const FIRST_LINE_CHARS = 200;

export interface WakeOptions {
  /** Least time between two injections into one agent (default 5 s). */
  cooldownMs: number;
  /** How long to wait for the screen to show the line was submitted. */
  verifyMs: number;
}

export interface DeliveryOutcome {
  agent: string;
  messages: string[];
  result: 'delivered' | 'failed' | 'held' | 'cooldown' | 'skipped';
  line?: string;
  /** Held: why, and which messages were newly held by this pass. */
  reason?: string;
  newlyHeld?: string[];
}

/** `[sos] from kasra: deploy fixed`, or a digest when several wait. */
export function wakeLine(messages: Envelope[]): string {
  if (messages.length === 1) {
    const m = messages[0]!;
    const lines = m.text.split('\n');
    const first = lines[0]!.trim();
    const clipped = first.length > FIRST_LINE_CHARS ? `${first.slice(0, FIRST_LINE_CHARS - 1)}…` : first;
    const more = lines.length > 1 || first.length > FIRST_LINE_CHARS;
    return sessionLine(`[sos] from ${m.from}: ${clipped}${more ? ' (sos inbox for the rest)' : ''}`);
  }
  const senders = [...new Set(messages.map((m) => m.from))];
  const newest = messages[messages.length - 1]!;
  const preview = newest.text.split('\n')[0]!.trim().slice(0, 80);
  return sessionLine(`[sos] ${messages.length} new messages from ${senders.join(', ')}; latest from ${newest.from}: ${preview} (sos inbox to read them)`);
}

/**
 * The `notify` line: fixed text and a count, nothing a sender wrote. It starts with `#` so that a
 * shell reads it as a comment.
 */
export function notifyLine(count: number): string {
  return `# [sos] ${count} new message${count === 1 ? '' : 's'}: run sos inbox`;
}

/** Why nothing is typed for an agent whose wake mode is off. */
function offReason(agent: Agent): string {
  return agent.wake === 'off' ? 'wake off for this agent' : `wake off by default for kind ${agent.kind} (sos agents set ${agent.name} --wake notify|text)`;
}

/**
 * What sits typed at the agent's prompt: its kind's input line (claude, codex and gemini draw a
 * footer below it), else the last non-empty line (a shell, a plain program). Null when the kind
 * has an input rule but no line on screen matches it (a half-drawn frame, a dialog over the box):
 * nothing can be told from such a screen.
 */
function inputText(agent: Agent, screen: string): string | null {
  const input = readInput(agent, screen);
  if (input !== undefined) return input?.text ?? null;
  return (
    screen
      .split('\n')
      .filter((l) => l.trim() !== '')
      .pop() ?? ''
  );
}

/**
 * Why a line must not be typed now although the agent reads idle: its input line (where the kind
 * says where it is) already holds text, an earlier wake line that did not go through or a
 * human's half-typed words; typing would join ours to it. Null when the input is empty.
 */
function inputBusy(agent: Agent, screen: string): string | null {
  const input = readInput(agent, screen);
  if (!input || input.text === '') return null;
  return input.text.includes('[sos] ') ? 'an earlier wake line sits unsent in its input' : 'text is typed in its input';
}

export class WakeDelivery {
  private readonly lastInjection = new Map<string, number>();
  /** Agents with held messages: re-checked every pass, whatever the change gate says. */
  private readonly holding = new Set<string>();

  constructor(
    private readonly ctx: LifecycleContext,
    private readonly options: WakeOptions,
    /** Serialises everything typed into one session (the lifecycle actions type too). */
    private readonly exclusive: <T>(key: string, fn: () => Promise<T>) => Promise<T>,
  ) {}

  hasHeld(): boolean {
    return this.holding.size > 0;
  }

  /**
   * After a crash: rows left `injecting` may or may not have been typed; they are never typed
   * again. A line typed but cut off before its Enter would sit in the agent's input and keep it
   * from ever reading idle, so where the input line still holds a `[sos] ` line, Enter is pressed:
   * that line goes out for the first time, nothing is typed twice.
   */
  async recover(): Promise<{ unverified: number; submitted: string[] }> {
    const rows = await this.ctx.store.sql.all<{ project: string; agent: string }>(
      "SELECT DISTINCT project, agent FROM wake_deliveries WHERE state = 'injecting'",
    );
    const unverified = await this.ctx.store.sql.run("UPDATE wake_deliveries SET state = 'unverified', at = $1 WHERE state = 'injecting'", [nowOf(this.ctx)]);
    // What a previous daemon held is re-checked on the first passes (delivered, or settled).
    const held = await this.ctx.store.sql.all<{ project: string; agent: string }>("SELECT DISTINCT project, agent FROM wake_deliveries WHERE state = 'held'");
    for (const { project, agent } of held) this.holding.add(`${project}/${agent}`);
    const submitted: string[] = [];
    for (const { project, agent: name } of rows) {
      const agent = await this.ctx.store.agents.get(project, name);
      if (!agent?.session) continue;
      try {
        const driver = await this.ctx.openDriver(agent);
        const snap = await driver.snapshot(50);
        if (snap.exists && !snap.exited && inputText(agent, snap.screen)?.includes('[sos] ')) {
          await driver.submit('');
          submitted.push(`${project}/${name}`);
        }
      } catch {
        // the session is gone: nothing is sitting in its input
      }
    }
    return { unverified, submitted };
  }

  /** One pass over a project's agents with sessions. */
  async deliverProject(caller: Caller, agents: Agent[], signal?: AbortSignal): Promise<DeliveryOutcome[]> {
    const squads = await listSquads(this.ctx.store, caller);
    const outcomes: DeliveryOutcome[] = [];
    for (const agent of agents) {
      if (signal?.aborted) break;
      if (agent.session === null) continue;
      const outcome = await this.deliverTo(agent, squads);
      if (outcome) outcomes.push(outcome);
    }
    return outcomes;
  }

  private key(agent: Agent): string {
    return `${agent.project}/${agent.name}`;
  }

  /** Queued messages for the agent that no wake row has taken yet (or that are held), oldest first. */
  private async pending(agent: Agent, squads: { name: string; members: string[] }[]): Promise<Envelope[]> {
    const now = nowOf(this.ctx);
    const streams = streamsFrom(squads, agent.name);
    const holding = this.holding.has(this.key(agent));
    if (!holding && (await this.ctx.bus.countUnread(agent.project, agent.name, streams, now)) === 0) return [];
    const items = (await this.ctx.bus.history(agent.project, agent.name, streams, 100)).filter((i) => i.message.from !== agent.name);
    const queued = items.filter((i) => i.state === 'queued' && (i.message.expiresAt === null || i.message.expiresAt > now)).map((i) => i.message);
    if (holding) await this.settleHeld(agent, items, new Set(queued.map((m) => m.id)), now);
    if (queued.length === 0) return [];
    const params = queued.map((m) => m.id);
    const rows = await this.ctx.store.sql.all<{ message_id: string; state: string }>(
      `SELECT message_id, state FROM wake_deliveries WHERE project = $1 AND agent = $2 AND message_id IN (${params.map((_, i) => `$${i + 3}`).join(', ')})`,
      [agent.project, agent.name, ...params],
    );
    const taken = new Set(rows.filter((r) => r.state !== 'held').map((r) => r.message_id));
    return queued.filter((m) => !taken.has(m.id)).sort((a, b) => a.createdAt - b.createdAt);
  }

  /**
   * Held rows whose message no longer waits: it expired before the agent could take it (counted
   * as `messages_expired`), or the agent read its inbox meanwhile (nothing left to wake it for).
   */
  private async settleHeld(agent: Agent, items: InboxItem[], waiting: Set<string>, now: number): Promise<void> {
    const held = await this.ctx.store.sql.all<{ message_id: string }>("SELECT message_id FROM wake_deliveries WHERE project = $1 AND agent = $2 AND state = 'held'", [
      agent.project,
      agent.name,
    ]);
    const byId = new Map(items.map((i) => [i.message.id, i]));
    let expired = 0;
    for (const { message_id: id } of held) {
      if (waiting.has(id)) continue;
      const item = byId.get(id);
      if (item === undefined) continue; // older than the history window: left as it is
      const lapsed = item.state === 'expired' || (item.message.expiresAt !== null && item.message.expiresAt <= now);
      const [state, route] = lapsed ? ['expired', 'expired while held'] : ['delivered', 'read in the inbox while held'];
      const changed = await this.ctx.store.sql.run(
        "UPDATE wake_deliveries SET state = $4, route = $5, at = $6 WHERE project = $1 AND message_id = $2 AND agent = $3 AND state = 'held'",
        [agent.project, id, agent.name, state, route, now],
      );
      if (lapsed) expired += changed;
    }
    if (expired > 0) await this.ctx.store.counters.add(agent.project, 'messages_expired', expired);
  }

  private async hold(agent: Agent, messages: Envelope[], reason: string): Promise<DeliveryOutcome> {
    const now = nowOf(this.ctx);
    const newlyHeld: string[] = [];
    for (const m of messages) {
      const fresh = await this.ctx.store.sql.run(
        `INSERT INTO wake_deliveries (project, message_id, agent, state, route, held_at, at) VALUES ($1, $2, $3, 'held', $4, $5, $5)
         ON CONFLICT (project, message_id, agent) DO NOTHING`,
        [agent.project, m.id, agent.name, `held: ${reason}`, now],
      );
      if (fresh > 0) newlyHeld.push(m.id);
    }
    if (newlyHeld.length > 0) await this.ctx.store.counters.add(agent.project, 'messages_held', newlyHeld.length);
    this.holding.add(this.key(agent));
    return { agent: agent.name, messages: messages.map((m) => m.id), result: 'held', reason, newlyHeld };
  }

  /** Wake off: each message is recorded once as not typed, and stays in the inbox. */
  private async skip(agent: Agent, messages: Envelope[], reason: string): Promise<DeliveryOutcome> {
    const now = nowOf(this.ctx);
    const skipped: string[] = [];
    for (const m of messages) {
      const fresh = await this.ctx.store.sql.run(
        `INSERT INTO wake_deliveries (project, message_id, agent, state, route, at) VALUES ($1, $2, $3, 'skipped', $4, $5)
         ON CONFLICT (project, message_id, agent) DO UPDATE SET state = 'skipped', route = $4, at = $5 WHERE wake_deliveries.state = 'held'`,
        [agent.project, m.id, agent.name, `skipped: ${reason}`, now],
      );
      if (fresh > 0) skipped.push(m.id);
    }
    if (skipped.length > 0) await this.ctx.store.counters.add(agent.project, 'messages_not_typed', skipped.length);
    this.holding.delete(this.key(agent));
    return { agent: agent.name, messages: skipped, result: 'skipped', reason };
  }

  private async deliverTo(agent: Agent, squads: { name: string; members: string[] }[]): Promise<DeliveryOutcome | null> {
    const messages = await this.pending(agent, squads);
    if (messages.length === 0) {
      this.holding.delete(this.key(agent));
      return null;
    }
    if (wakeModeOf(agent) === 'off') return this.skip(agent, messages, offReason(agent));
    return this.exclusive(this.key(agent), async () => {
      const driver = await this.ctx.openDriver(agent);
      const before = await driver.snapshot(50);
      const state = readSession(agent, before).state;
      if (state !== 'idle') return this.hold(agent, messages, state);
      const typed = inputBusy(agent, before.screen);
      if (typed) return this.hold(agent, messages, typed);
      const since = nowOf(this.ctx) - (this.lastInjection.get(this.key(agent)) ?? 0);
      if (since < this.options.cooldownMs) {
        this.holding.add(this.key(agent));
        return { agent: agent.name, messages: messages.map((m) => m.id), result: 'cooldown' as const };
      }
      return this.inject(agent, driver, before, messages);
    });
  }

  private async inject(agent: Agent, driver: SessionDriver, before: SessionSnapshot, candidates: Envelope[]): Promise<DeliveryOutcome> {
    const now = nowOf(this.ctx);
    // Claim each message's wake row first; a row another pass (or a crashed daemon) took is skipped.
    const messages: Envelope[] = [];
    for (const m of candidates) {
      const claimed = await this.ctx.store.sql.run(
        `INSERT INTO wake_deliveries (project, message_id, agent, state, attempts, at) VALUES ($1, $2, $3, 'injecting', 1, $4)
         ON CONFLICT (project, message_id, agent) DO UPDATE SET state = 'injecting', attempts = wake_deliveries.attempts + 1, at = $4
         WHERE wake_deliveries.state = 'held'`,
        [agent.project, m.id, agent.name, now],
      );
      if (claimed > 0) messages.push(m);
    }
    if (messages.length === 0) return { agent: agent.name, messages: [], result: 'delivered' };
    const line = wakeModeOf(agent) === 'notify' ? notifyLine(messages.length) : wakeLine(messages);
    this.lastInjection.set(this.key(agent), now);
    let submitted: boolean;
    try {
      await driver.submit(line);
      submitted = await this.verify(agent, driver, before, line);
      if (!submitted) {
        await driver.submit(''); // Enter once more: the line may be sitting in the input box
        submitted = await this.verify(agent, driver, before, line);
      }
    } catch {
      submitted = false; // the session went away mid-delivery: the message stays in the inbox
    }
    const at = nowOf(this.ctx);
    const ids = messages.map((m) => m.id);
    for (const id of ids) {
      await this.ctx.store.sql.run('UPDATE wake_deliveries SET state = $4, route = $5, at = $6 WHERE project = $1 AND message_id = $2 AND agent = $3', [
        agent.project,
        id,
        agent.name,
        submitted ? 'delivered' : 'failed',
        submitted ? `inject ${driver.spec}` : `inject ${driver.spec} not confirmed on screen`,
        at,
      ]);
      if (submitted) await this.ctx.bus.setState(agent.project, id, agent.name, 'delivered', at);
    }
    await this.ctx.store.counters.add(agent.project, submitted ? 'messages_delivered' : 'messages_failed', ids.length);
    this.holding.delete(this.key(agent));
    return { agent: agent.name, messages: ids, result: submitted ? 'delivered' : 'failed', line };
  }

  /**
   * Submitted when the screen changed and either the agent went busy or the line no longer sits
   * in its input line: a line typed and never submitted stays there, and reads as not submitted.
   */
  private async verify(agent: Agent, driver: SessionDriver, before: SessionSnapshot, line: string): Promise<boolean> {
    const fragment = line.slice(0, 40);
    const deadline = Date.now() + this.options.verifyMs;
    for (;;) {
      const snap = await driver.snapshot(50);
      const typed = inputText(agent, snap.screen);
      if (snap.hash !== before.hash && ((typed !== null && !typed.includes(fragment)) || readSession(agent, snap).state === 'busy')) return true;
      if (Date.now() >= deadline) return false;
      await abortableSleep(50);
    }
  }
}
