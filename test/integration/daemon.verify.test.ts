import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { typedInput } from '../../src/core/lifecycle/classifier.js';
import { openStore, parseStoreTarget } from '../../src/core/store/open.js';
import { type DaemonWorld, daemonWorld, until } from '../helpers/daemon.js';
import { tmuxAvailable } from '../helpers/lifecycle.js';

/**
 * Wake delivery's check that a typed line was submitted (src/core/daemon/wake.ts `verify`),
 * against a session laid out like Claude Code: test/fixtures/boxed-agent.mjs draws an input box
 * with a footer BELOW it, and is read with the default `claude` patterns (no --patterns). The
 * line must be confirmed from the input box, not from the last line (which is the footer); and
 * a session whose Enter never goes through must make the delivery fail, leave the message
 * unread, and not have it typed again.
 */

const BOXED_AGENT = fileURLToPath(new URL('../fixtures/boxed-agent.mjs', import.meta.url));

interface Shown {
  id: string;
  deliveries: { recipient: string; state: string }[];
}

interface WakeRow {
  state: string;
  route: string | null;
  attempts: number;
}

async function send(w: DaemonWorld, to: string, text: string): Promise<string> {
  const r = await w.run(['send', to, text, '--as', 'boss', '-q']);
  expect(r.code, r.stderr).toBe(0);
  return r.stdout.trim();
}

async function deliveryState(w: DaemonWorld, id: string, agent: string): Promise<string | undefined> {
  const r = await w.run(['messages', 'show', id, '--json']);
  expect(r.code, r.stderr).toBe(0);
  return r.json<Shown>().deliveries.find((d) => d.recipient === agent)?.state;
}

/** The daemon's own record of a wake delivery (no command shows it). */
async function wakeRow(w: DaemonWorld, id: string, agent: string): Promise<WakeRow | undefined> {
  const store = await openStore({ target: parseStoreTarget(w.env.SOS_DB!), pgSchema: 'sos', busyTimeoutMs: 5_000 });
  try {
    return await store.sql.one<WakeRow>('SELECT state, route, attempts FROM wake_deliveries WHERE message_id = $1 AND agent = $2', [id, agent]);
  } finally {
    await store.close();
  }
}

/** Lines the agent submitted, the context pack left out. */
const submitted = (w: DaemonWorld, name: string) =>
  w
    .received(name)
    .filter((r) => r.line !== undefined && !r.line.startsWith('[sos] context after restart'))
    .map((r) => r.line);

describe.skipIf(!tmuxAvailable)('sos daemon: wake delivery verified on a Claude Code–like screen', () => {
  it('confirms a delivery from the input box, fails one whose Enter never goes through (reported, counted, still unread, typed once), and types nothing more while a line sits unsent', async (ctx) => {
    const w = await daemonWorld(ctx);
    const added = await w.run([
      'agents', 'add', 'cc',
      '--kind', 'claude',
      '--session', 'tmux:cc',
      '--tmux-socket', w.socket,
      '--start-cmd', `node ${BOXED_AGENT} --log ${join(w.dir, 'cc.log')}`,
      '--workdir', w.dir,
      '--policy', 'warm',
    ]);
    expect(added.code, added.stderr).toBe(0);
    const d = await w.daemon();
    // The daemon starts it, waits for it to read idle and types its context pack.
    await w.ready('cc');
    const box = () => typedInput('claude', w.screen('cc'))?.text;
    await until('the context pack submitted (the box empty)', () => box() === '');

    // (a) A working Enter: typed once, submitted, confirmed from the box, recorded delivered.
    const first = await send(w, 'cc', 'deploy fixed');
    await until('the wake line submitted', () => submitted(w, 'cc').length > 0, 3_000);
    await d.waitFor((e) => e.event === 'wake_delivered' && e.agent === 'cc' && (e.messages as string[]).includes(first), 5_000);
    expect(await deliveryState(w, first, 'cc')).toBe('delivered');
    expect(await wakeRow(w, first, 'cc')).toEqual({ state: 'delivered', route: 'inject tmux:cc', attempts: 1 });
    // Exactly the line, and confirmed at the first check (no second Enter: no empty line).
    expect(submitted(w, 'cc')).toEqual(['[sos] from boss: deploy fixed']);
    expect(box()).toBe('');

    // (b) Enter stops working: typed `/deaf` the way a human would.
    w.type('cc', '/deaf');
    await until('/deaf submitted', () => submitted(w, 'cc').includes('/deaf'));
    const sentAt = Date.now();
    const second = await send(w, 'cc', 'are you there?');
    const failed = await d.waitFor((e) => e.event === 'wake_failed' && (e.messages as string[]).includes(second), 8_000);
    expect(failed.agent).toBe('cc');
    // Two verifications of 1.5 s each, with an Enter before each: the first and the retry.
    expect(Date.parse(failed.at) - sentAt).toBeGreaterThanOrEqual(3_000);

    const m = (await w.run(['metrics', '--json'])).json<Record<string, number>>();
    expect(m.messages_failed).toBeGreaterThanOrEqual(1);
    expect(m.messages_delivered).toBe(1);
    // Not delivered: the message stays queued; the wake row says failed.
    expect(await deliveryState(w, second, 'cc')).toBe('queued');
    expect(await wakeRow(w, second, 'cc')).toEqual({ state: 'failed', route: 'inject tmux:cc not confirmed on screen', attempts: 1 });

    // A failed row is never taken again: nothing more is typed or pressed (several wake passes
    // and probes run meanwhile), and the line sits in the box once.
    await new Promise((r) => setTimeout(r, 2_000));
    const ignored = w.received('cc').filter((r) => r.event === 'enter-ignored');
    expect(ignored).toHaveLength(2);
    expect(ignored.every((r) => r.at >= sentAt)).toBe(true);
    const inBox = box() ?? '';
    expect(inBox).toBe('[sos] from boss: are you there?');
    expect(inBox.split('[sos] from boss:')).toHaveLength(2);
    expect(submitted(w, 'cc')).toEqual(['[sos] from boss: deploy fixed', '/deaf']);
    expect(d.events.filter((e) => e.event === 'wake_failed')).toHaveLength(1);
    expect(d.events.filter((e) => e.event === 'wake_delivered')).toHaveLength(1);
    expect(await deliveryState(w, second, 'cc')).toBe('queued');
    // The session itself is fine: the agent is still running, and reads idle.
    execFileSync('tmux', ['-S', w.socket, 'has-session', '-t', 'cc']);
    expect(w.screen('cc')).toContain('? for shortcuts');

    // (c) While that line sits unsent in the box, nothing more is typed into it (it would join
    // the two): the next message is held, and says why.
    const third = await send(w, 'cc', 'third one');
    const held = await d.waitFor((e) => e.event === 'wake_held' && (e.messages as string[]).includes(third), 5_000);
    expect(held.reason).toBe('an earlier wake line sits unsent in its input');
    await new Promise((r) => setTimeout(r, 600));
    expect(box()).toBe('[sos] from boss: are you there?');
    expect(await wakeRow(w, third, 'cc')).toMatchObject({ state: 'held', route: 'held: an earlier wake line sits unsent in its input' });
    // Once the box is cleared (Ctrl-C, as a human would), the held message is typed, alone.
    execFileSync('tmux', ['-S', w.socket, 'send-keys', '-t', 'cc', 'C-c']);
    await until('the third line typed alone into the cleared box', () => box() === '[sos] from boss: third one', 5_000);

    // Last, since reading the inbox marks what it shows read: the message is there, unread (as
    // is the delivered one: typed into the session is not read).
    const inbox = await w.run(['inbox', '--agent', 'cc', '--json']);
    expect(inbox.code, inbox.stderr).toBe(0);
    expect(inbox.json<{ unread: { id: string }[] }>().unread.map((u) => u.id).sort()).toEqual([first, second, third].sort());
    expect(await deliveryState(w, second, 'cc')).toBe('read');
  });
});
