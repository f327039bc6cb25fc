import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it, type TestContext } from 'vitest';
import { isolatedEnv, sos } from '../helpers/cli.js';
import { dumpDatabase } from '../helpers/dump.js';
import { ADAPTERS, type AdapterFixture, tempDir } from '../helpers/isolation.js';
import { FAKE_AGENT, tmuxAvailable } from '../helpers/lifecycle.js';

/** `sos agents set|status|probe|history|park|unpark` and `sos hook`, as a user runs them. */

async function setup(ctx: TestContext, adapter: AdapterFixture) {
  const target = adapter.target(ctx);
  const home = tempDir(ctx);
  const env = isolatedEnv(home, { ...target.env, SOS_DB: target.db });
  const run = (args: string[], extra: Record<string, string> = {}, input?: string) => sos(args, { ...env, ...extra }, input === undefined ? {} : { input });
  expect((await run(['init'])).code).toBe(0);
  await run(['agents', 'add', 'boss', '--role', 'coordinator']);
  return { run, home, dump: () => dumpDatabase(target.db, target.env) };
}

describe.each(ADAPTERS)('sos agents lifecycle on $name', (adapter) => {
  describe.skipIf(!adapter.available)(adapter.name, () => {
    it('stores the lifecycle settings and refuses bad ones without writing', async (ctx) => {
      const { run, home, dump } = await setup(ctx, adapter);
      const patterns = join(home, 'p.json');
      writeFileSync(patterns, JSON.stringify({ notes: ['mine'], idle: [{ id: 'p', pattern: '^\\$ $', where: 'last' }] }));
      const added = await run(['agents', 'add', 'kasra', '--kind', 'claude', '--session', 'tmux:kasra:0.1', '--start-cmd', 'claude --continue', '--workdir', home, '--policy', 'cold', '--patterns', patterns, '--json']);
      expect(added.code, added.stdout).toBe(0);
      expect(added.json()).toMatchObject({ startCmd: 'claude --continue', workdir: home, policy: 'cold', patterns: { idle: [{ id: 'p' }] } });
      expect((await run(['agents', 'set', 'kasra', '--policy', 'warm', '--clear', 'patterns', '--json'])).json()).toMatchObject({ policy: 'warm', patterns: null, startCmd: 'claude --continue' });

      const bad = join(home, 'bad.json');
      writeFileSync(bad, JSON.stringify({ idle: [{ id: 'x', pattern: '(' }] }));
      const before = await dump();
      const cases: [string[], number, RegExp][] = [
        [['agents', 'set', 'kasra', '--patterns', bad], 2, /idle\[0\].*Invalid regular expression/],
        [['agents', 'set', 'kasra', '--patterns', join(home, 'missing.json')], 2, /cannot read --patterns/],
        [['agents', 'set', 'kasra', '--workdir', 'relative/dir', '--start-cmd', ''], 2, /one non-empty line/],
        [['agents', 'set', 'kasra', '--session', 'screen:x'], 2, /invalid session/],
        [['agents', 'set', 'kasra'], 2, /nothing to change/],
        [['agents', 'set', 'ghost', '--policy', 'warm'], 3, /does not exist/],
        [['agents', 'park', 'kasra', '--until', 'yesterday'], 2, /invalid --until/],
        // Past what any date holds: refused as input (exit 2), not a RangeError (exit 1) after a failed action row.
        [['agents', 'park', 'kasra', '--until', '100000000000000000000h'], 2, /invalid --until "100000000000000000000h": at most 366d/],
        [['agents', 'park', 'kasra', '--until', '367d', '--reason', 'too long'], 2, /invalid --until "367d": at most 366d/],
        [['agents', 'park', 'kasra', '--until', '+275760-09-13T00:00:00Z'], 2, /invalid --until .*between 1970 and 9999/],
        [['agents', 'park', 'kasra', '--until', '2001-01-01'], 2, /--until 2001-01-01 is in the past/],
        [['agents', 'unpark', 'kasra'], 2, /not parked/],
        [['hook', 'Bogus', '--agent', 'kasra'], 1, /unknown hook event/],
      ];
      for (const [args, code, message] of cases) {
        const r = await run(args);
        expect(r.code, args.join(' ')).toBe(code);
        expect(r.stderr + r.stdout, args.join(' ')).toMatch(message);
      }
      expect(await dump()).toEqual(before);
      // Nothing of a refused park was written: no lifecycle_actions row, and the agent is not parked.
      expect((before as Record<string, unknown[]>).lifecycle_actions ?? []).toEqual([]);
      const history = (await run(['agents', 'history', 'kasra', '--json'])).json<{ states: unknown[]; actions: unknown[] }>();
      expect(history).toEqual({ states: [], actions: [] });
      expect((await run(['agents', 'status', '--json'])).json<{ agent: string; state: string }[]>().find((a) => a.agent === 'kasra')).toMatchObject({ state: 'unprobed' });
    });

    it('takes hook reports, parks and unparks, and shows status and history', async (ctx) => {
      const { run } = await setup(ctx, adapter);
      await run(['agents', 'add', 'kasra', '--kind', 'claude']);
      const token = (await run(['tokens', 'create', '--agent', 'kasra', '-q'])).stdout.trim();
      // The agent reports from its own hooks with its token; Codex passes its notify JSON.
      expect((await run(['hook', 'UserPromptSubmit', '--json'], { SOS_TOKEN: token })).json()).toMatchObject({ agent: 'kasra', state: 'busy', changed: true });
      expect((await run(['hook', '{"type":"agent-turn-complete","turn-id":"1"}', '-q'], { SOS_TOKEN: token })).stdout.trim()).toBe('idle');
      // Claude's Notification: its JSON on stdin tells "waiting for your input" (idle) from a permission prompt.
      const notify = (message: string) => run(['hook', 'Notification', '-q'], { SOS_TOKEN: token }, JSON.stringify({ hook_event_name: 'Notification', message }));
      expect((await notify('Claude needs your permission to use Bash')).stdout.trim()).toBe('waiting');
      expect((await notify('Claude is waiting for your input')).stdout.trim()).toBe('idle');
      expect((await run(['hook', 'Stop', '--agent', 'boss'], { SOS_TOKEN: token })).code).toBe(1); // another agent's hook: refused, exit 1 not 2

      const status = (await run(['agents', 'status', '--json'])).json<{ agent: string; state: string; evidence: string }[]>();
      expect(status.find((s) => s.agent === 'kasra')).toMatchObject({ state: 'idle', evidence: expect.stringMatching(/^hook: hook Notification at .* → idle/) });
      expect(status.find((s) => s.agent === 'boss')).toMatchObject({ state: 'unprobed' });

      const parked = await run(['agents', 'park', 'kasra', '--until', '2h', '--reason', 'rotating keys', '--json']);
      expect(parked.code, parked.stderr).toBe(0);
      expect((await run(['agents', 'status'])).stdout).toMatch(/kasra\s+parked/);
      expect((await run(['hook', 'Stop', '-q'], { SOS_TOKEN: token })).stdout.trim()).toBe('parked');
      expect((await run(['agents', 'park', 'kasra'], { SOS_TOKEN: token })).code).toBe(6);
      expect((await run(['agents', 'unpark', 'kasra'])).code).toBe(0);

      const history = (await run(['agents', 'history', 'kasra', '--json'])).json<{ states: { state: string }[]; actions: { action: string }[] }>();
      expect(history.states.map((s) => s.state)).toEqual(['unknown', 'parked', 'idle', 'waiting', 'idle', 'busy']);
      expect(history.actions.map((a) => a.action)).toEqual(['unpark', 'park']);
      expect((await run(['agents', 'history', 'kasra'])).stdout).toMatch(/busy → idle/);
    });
  });
});

describe.skipIf(!tmuxAvailable)('sos agents probe on a real tmux session', () => {
  it('prints the state, the evidence and the plan, and acts only with --act', async (ctx) => {
    const { run, home } = await setup(ctx, ADAPTERS[0]!);
    const socket = join(home, 'tmux.sock');
    ctx.onTestFinished(() => {
      try {
        execFileSync('tmux', ['-S', socket, 'kill-server'], { stdio: 'ignore' });
      } catch {
        // already gone
      }
    });
    const start = `node ${FAKE_AGENT} --log ${join(home, 'in.log')}`;
    await run(['agents', 'add', 'ada', '--kind', 'custom', '--session', 'tmux:ada', '--tmux-socket', socket, '--start-cmd', start, '--workdir', home, '--patterns', join(FAKE_AGENT, '..', 'fake-agent.patterns.json')]);
    // Never started: the session is gone → dead, and the plan is a restart, not taken without --act.
    const dry = await run(['agents', 'probe', 'ada', '--json']);
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.json()).toMatchObject({ state: 'dead', plan: { action: 'restart' }, evidence: [{ signal: 'driver.session-gone' }] });
    expect(dry.json<Record<string, unknown>>().action).toBeUndefined();
    expect((await run(['agents', 'probe', 'ada'])).stdout).toMatch(/plan:\s+restart: session dead/);

    const acted = await run(['agents', 'probe', 'ada', '--act', '--json']);
    expect(acted.code, acted.stderr).toBe(0);
    expect(acted.json()).toMatchObject({ action: { action: 'restart', outcome: 'done' } });
    const again = (await run(['agents', 'probe', '--json'])).json<{ agent: string; state: string }[]>();
    expect(again).toEqual([expect.objectContaining({ agent: 'ada', state: 'idle' })]);
  });
});
