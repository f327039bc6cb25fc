import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { ProbeResult } from '../../src/core/lifecycle/probe.js';
import { isolatedEnv, sos } from '../helpers/cli.js';
import { ADAPTERS, tempDir } from '../helpers/isolation.js';
import { lifecycleWorld, tmuxAvailable } from '../helpers/lifecycle.js';

/**
 * A restart that cannot work (the agent's workdir is gone, so its start command never runs) is
 * an attempt like any other: it counts against SOS_RESTART_LIMIT per SOS_RESTART_WINDOW_MS and
 * waits out SOS_RESTART_COOLDOWN_MS, and reaching the limit tells the coordinators once. Before,
 * failed attempts did not count: the daemon retried on every 3 s probe and never escalated.
 */

const SECOND = 1_000;
const MINUTE = 60 * SECOND;

const outcome = (r: ProbeResult) => (r.action ? `${r.action.action}:${r.action.outcome}` : 'none');

describe.skipIf(!tmuxAvailable)('failed restarts and the restart limit', () => {
  it('counts failed attempts against the cooldown and the limit, then escalates once (clock under test control)', async (ctx) => {
    const w = await lifecycleWorld(ctx, 'tmux', { limits: { restartLimit: 3, restartWindowMs: 60 * MINUTE, cooldownMs: MINUTE } });
    let clock = Date.now();
    w.life.now = () => clock;
    await w.store.agents.add({ project: w.project, name: 'boss', kind: 'custom', role: 'coordinator', capabilities: [], session: null });
    await w.addAgent('lost');
    // The workdir is gone: the start command cannot run, every restart attempt fails.
    const missing = join(w.dir, 'no-such-dir');
    await w.store.agents.update(w.project, 'lost', { workdir: missing });

    // What the daemon does: a probe with --act every 3 s, here for 10 minutes of the test's clock.
    const log: { at: number; what: string; detail: string }[] = [];
    const start = clock;
    for (let t = 0; t <= 10 * MINUTE; t += 3 * SECOND) {
      clock = start + t;
      const [r] = await w.probe('lost', true);
      expect(r!.state).toBe('dead');
      if (r!.action) log.push({ at: t, what: outcome(r!), detail: r!.action.detail });
    }
    const attempts = log.filter((l) => l.what.startsWith('restart'));
    // One attempt per cooldown, each recorded as failed with the reason; the limit (3) and no more.
    expect(attempts.map((a) => [a.at, a.what])).toEqual([
      [0, 'restart:failed'],
      [MINUTE, 'restart:failed'],
      [2 * MINUTE, 'restart:failed'],
    ]);
    for (const a of attempts) expect(a.detail).toContain(`the workdir ${missing} is not a directory`);
    // The next probe after the third attempt escalates, once; nothing else happens for the rest of the window.
    expect(log.filter((l) => !l.what.startsWith('restart'))).toEqual([
      { at: 2 * MINUTE + 3 * SECOND, what: 'escalate:escalated', detail: expect.stringMatching(/^restart limit reached: 3 restart attempts within 60 min \(3 failed; last failure: the workdir .* is not a directory\); told boss$/) },
    ]);
    const inbox = await w.ctx.bus.history(w.project, 'boss', [{ kind: 'agent', name: 'boss' }], 10);
    expect(inbox).toHaveLength(1);
    expect(inbox[0]!.message).toMatchObject({ type: 'escalation', from: 'sos' });
    expect(inbox[0]!.message.text).toMatch(/^lifecycle: lost needs a human or a coordinator: restart limit reached.*no-such-dir/);

    // The rows tell the same story, and no failed attempt left a live agent token behind.
    const rows = await w.life.repo.actions(w.project, 'lost', 0);
    expect(rows.map((a) => `${a.action}:${a.outcome}`).sort()).toEqual(['escalate:escalated', 'restart:failed', 'restart:failed', 'restart:failed']);
    const tokens = (await w.store.tokens.list(w.project)).filter((t) => t.agent === 'lost');
    expect(tokens).toHaveLength(3);
    expect(tokens.every((t) => t.revokedAt !== null)).toBe(true);

    // Once the first attempt leaves the window, one more attempt is allowed (and fails again).
    clock = start + 60 * MINUTE + 3 * SECOND;
    const [after] = await w.probe('lost', true);
    expect(outcome(after!)).toBe('restart:failed');
    const [next] = await w.probe('lost', true);
    expect(next!.plan.reason).toMatch(/restart limit reached/);
  });

  it('with the real clock: `sos agents probe --act` on a loop keeps to the cooldown and the limit and tells the coordinator once', async (ctx) => {
    const adapter = ADAPTERS[0]!;
    const target = adapter.target(ctx);
    const home = tempDir(ctx);
    const socket = join(home, 'tmux.sock');
    ctx.onTestFinished(() => {
      try {
        execFileSync('tmux', ['-S', socket, 'kill-server'], { stdio: 'ignore' });
      } catch {
        // no server was ever started: every start failed
      }
    });
    const env = isolatedEnv(home, {
      ...target.env,
      SOS_DB: target.db,
      SOS_RESTART_LIMIT: '3',
      SOS_RESTART_WINDOW_MS: String(60 * MINUTE),
      SOS_RESTART_COOLDOWN_MS: '1500',
    });
    const run = (args: string[]) => sos(args, env);
    expect((await run(['init'])).code).toBe(0);
    expect((await run(['agents', 'add', 'boss', '--role', 'coordinator'])).code).toBe(0);
    const missing = join(home, 'gone');
    const added = await run(['agents', 'add', 'lost', '--kind', 'custom', '--session', 'tmux:lost', '--tmux-socket', socket, '--start-cmd', 'sleep 600', '--workdir', missing]);
    expect(added.code, added.stderr).toBe(0);

    const seen: { at: number; what: string }[] = [];
    const began = Date.now();
    while (Date.now() - began < 7_000) {
      const r = await run(['agents', 'probe', 'lost', '--act', '--json']);
      expect(r.code, r.stderr).toBe(0);
      const result = r.json<ProbeResult & { action?: { action: string; outcome: string } }>();
      if (result.action) seen.push({ at: Date.now(), what: `${result.action.action}:${result.action.outcome}` });
    }
    const attempts = seen.filter((s) => s.what.startsWith('restart'));
    expect(attempts.map((a) => a.what)).toEqual(['restart:failed', 'restart:failed', 'restart:failed']);
    for (let i = 1; i < attempts.length; i++) expect(attempts[i]!.at - attempts[i - 1]!.at).toBeGreaterThanOrEqual(1_500);
    expect(seen.filter((s) => !s.what.startsWith('restart')).map((s) => s.what)).toEqual(['escalate:escalated']);

    const inbox = (await run(['inbox', '--as', 'boss', '--json'])).json<{ unread: { type: string; from: string; text: string }[] }>().unread;
    expect(inbox.map((m) => [m.type, m.from])).toEqual([['escalation', 'sos']]);
    expect(inbox[0]!.text).toMatch(/lost .*restart limit reached: 3 restart attempts .*3 failed.*gone is not a directory/);
    const history = (await run(['agents', 'history', 'lost', '--json'])).json<{ actions: { action: string; outcome: string }[] }>();
    expect(history.actions.map((a) => `${a.action}:${a.outcome}`)).toEqual(['escalate:escalated', 'restart:failed', 'restart:failed', 'restart:failed']);
  });
});
