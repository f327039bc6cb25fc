import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it, type TestContext } from 'vitest';
import { Conflict, NotFound, Unavailable, UsageError } from '../../src/core/errors.js';
import type { SessionDriver } from '../../src/core/sessions/port.js';
import { TmuxDriver } from '../../src/core/sessions/tmux.js';
import { fails } from '../helpers/expect.js';
import { tempDir } from '../helpers/isolation.js';
import {
  atPrompt,
  fakeAgentCommand,
  killTmuxServer,
  readFakeAgentLog,
  receivedLines,
  SESSION_ADAPTERS,
  TMUX_ADAPTER,
  waitFor,
  waitForPrompt,
  type SessionAdapter,
} from '../helpers/sessions.js';

/**
 * One suite, unchanged, against every session driver: the fake agent
 * (test/fixtures/fake-agent.mjs) runs in a real session and the test drives it through the port.
 *
 * On exit the drivers differ, as each adapter declares (`afterExit`): tmux keeps the dead pane,
 * so the session still exists and the snapshot carries the exit status; a driver whose session
 * ends with its process reports exists = false.
 */

const EMPTY_HASH = createHash('sha256').update('').digest('hex');

interface Started {
  driver: SessionDriver;
  dir: string;
  workdir: string;
  log: string;
}

async function startFakeAgent(ctx: TestContext, adapter: SessionAdapter, env: Record<string, string> = {}): Promise<Started> {
  const dir = tempDir(ctx);
  const workdir = join(dir, 'work');
  mkdirSync(workdir);
  const log = join(dir, 'in.log');
  const command = fakeAgentCommand(log);
  const driver = await adapter.open(ctx, dir, command);
  await driver.start({ command, workdir, env });
  await waitForPrompt(driver);
  return { driver, dir, workdir, log };
}

/** Submits `text` and waits until the agent has logged it and shows its prompt again. */
async function say(s: Started, text: string): Promise<string> {
  const before = receivedLines(s.log).length;
  await s.driver.submit(text);
  await waitFor(`the agent to receive ${JSON.stringify(text)}`, () => receivedLines(s.log).length, (n) => n > before);
  return waitForPrompt(s.driver);
}

const interrupts = (log: string) => readFakeAgentLog(log).filter((e) => 'event' in e && e.event === 'interrupt').length;

describe.each(SESSION_ADAPTERS)('Session conformance: $name', (adapter) => {
  describe.skipIf(!adapter.available())(adapter.name, () => {
    it('reports a session that was never started as absent, and refuses to type into it', async (ctx) => {
      const dir = tempDir(ctx);
      const driver = await adapter.open(ctx, dir, fakeAgentCommand(join(dir, 'in.log')));
      expect(await driver.exists()).toBe(false);
      expect(await driver.snapshot()).toEqual({
        exists: false,
        exited: null,
        screen: '',
        title: '',
        cwd: null,
        hash: EMPTY_HASH,
        lastOutputAt: null,
      });
      await fails(driver.submit('hello'), Unavailable);
      await fails(driver.interrupt(), Unavailable);
      await driver.stop();
    });

    it('starts the agent in its workdir with its environment and shows its prompt', async (ctx) => {
      const s = await startFakeAgent(ctx, adapter, { SOS_AGENT: 'fake', SOS_ODD: 'x; $(y) #{pane_id};' });
      expect(await s.driver.exists()).toBe(true);
      const snap = await s.driver.snapshot();
      expect(snap).toMatchObject({ exists: true, exited: null });
      expect(snap.screen).toContain('fake-agent ready');
      expect(atPrompt(snap.screen)).toBe(true);
      expect(snap.hash).toBe(createHash('sha256').update(snap.screen).digest('hex'));
      expect(typeof snap.title).toBe('string');
      if (adapter.reportsCwd) expect(snap.cwd).toBe(realpathSync(s.workdir));
      if (snap.lastOutputAt !== null) expect(Math.abs(Date.now() - snap.lastOutputAt)).toBeLessThan(60_000);

      // The environment reached the agent's process, byte for byte.
      const screen = await say(s, '/env SOS_AGENT SOS_ODD');
      expect(screen).toContain('SOS_AGENT=fake');
      expect(screen).toContain('SOS_ODD=x; $(y) #{pane_id};');

      // `lines` limits the screen to the last lines.
      expect((await s.driver.snapshot(1)).screen.split('\n')).toHaveLength(1);
    });

    it('types each line literally, then Enter, with nothing reaching a shell', async (ctx) => {
      const s = await startFakeAgent(ctx, adapter);
      const lines = [
        'hello world; $(rm -rf /) `x`',
        'ends with a semicolon;',
        'a backslash then one\\;',
        ';',
        '-l -- C-c Enter',
        '#{pane_id} %1 ~ $HOME \'"',
        'tab\there ✓ é',
      ];
      for (const line of lines) await say(s, line);
      expect(receivedLines(s.log)).toEqual(lines);
      expect((await s.driver.snapshot()).screen).toContain('ok: hello world; $(rm -rf /) `x`');
    });

    it('refuses a line with a newline or a control character before typing anything', async (ctx) => {
      const s = await startFakeAgent(ctx, adapter);
      for (const text of ['a\nb', 'a\rb', 'esc \u001b[A', 'bell \u0007', 'nul \u0000', 'del \u007f']) {
        await fails(s.driver.submit(text), UsageError);
      }
      await say(s, 'after');
      expect(receivedLines(s.log)).toEqual(['after']);
    });

    it('refuses to start a running session again, and replaces it when asked', async (ctx) => {
      const s = await startFakeAgent(ctx, adapter);
      const again = { command: fakeAgentCommand(join(s.workdir, 'second.log')), workdir: s.workdir, env: {} };
      await fails(s.driver.start(again), Conflict);
      await say(s, 'still the first');
      expect(receivedLines(s.log)).toEqual(['still the first']);

      await s.driver.start({ ...again, replace: true });
      const second = { ...s, log: join(s.workdir, 'second.log') };
      await waitFor('the replacement agent', () => s.driver.snapshot(), (snap) => atPrompt(snap.screen) && !snap.screen.includes('still the first'));
      await say(second, 'to the second');
      expect(receivedLines(second.log)).toEqual(['to the second']);
      expect(receivedLines(s.log)).toEqual(['still the first']);
    });

    it('shows a busy agent spinning: the screen hash changes between snapshots', async (ctx) => {
      const s = await startFakeAgent(ctx, adapter);
      await s.driver.submit('/busy 2');
      const first = await waitFor('the spinner', () => s.driver.snapshot(), (snap) => snap.screen.includes('Working…'));
      const later = await waitFor('the spinner to turn', () => s.driver.snapshot(), (snap) => snap.hash !== first.hash, 2_000);
      expect(later.screen).toContain('Working…');
      const done = await waitForPrompt(s.driver, 5_000);
      expect(done).toContain('done');
      expect(done).not.toContain('Working…');
    });

    it('interrupts a hung agent with Ctrl-C and gets the prompt back', async (ctx) => {
      const s = await startFakeAgent(ctx, adapter);
      await s.driver.submit('/hang');
      const hung = await waitFor('the hang', () => s.driver.snapshot(), (snap) => snap.screen.includes('Working…'));
      // A hung agent draws nothing: the screen stays the same.
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect((await s.driver.snapshot()).hash).toBe(hung.hash);

      await s.driver.interrupt();
      await waitFor('the interrupt in the log', () => interrupts(s.log), (n) => n === 1);
      const screen = await waitForPrompt(s.driver);
      expect(screen).toContain('^C interrupted');
      expect(screen).not.toContain('Working…');
      // The agent survived its Ctrl-C and still answers.
      expect(await say(s, 'still here')).toContain('ok: still here');
    });

    it('reports the exit status, then stops idempotently', async (ctx) => {
      const s = await startFakeAgent(ctx, adapter);
      await s.driver.submit('/exit 3');
      if (adapter.afterExit === 'exited') {
        const snap = await waitFor('the exit status', () => s.driver.snapshot(), (x) => x.exited?.code === 3);
        expect(snap).toMatchObject({ exists: true, exited: { code: 3, signal: null } });
        expect(await s.driver.exists()).toBe(true);
        await fails(s.driver.submit('hello'), Unavailable);
      } else {
        await waitFor('the session to end', () => s.driver.exists(), (exists) => !exists);
      }

      await s.driver.stop();
      expect(await s.driver.exists()).toBe(false);
      expect((await s.driver.snapshot()).exists).toBe(false);
      await s.driver.stop();
      await fails(s.driver.submit('hello'), Unavailable);
      await fails(s.driver.interrupt(), Unavailable);
    });

    it('restarts after an exit and reports the next exit too', async (ctx) => {
      const s = await startFakeAgent(ctx, adapter);
      await s.driver.submit('/crash');
      if (adapter.afterExit === 'exited') {
        const crashed = await waitFor('the crash', () => s.driver.snapshot(), (x) => x.exited !== null && x.exited.code !== null);
        expect(crashed.exited).toEqual({ code: 1, signal: null });
        expect(crashed.screen).toContain('Error: boom');
      } else {
        await waitFor('the session to end', () => s.driver.exists(), (exists) => !exists);
      }

      await s.driver.start({ command: fakeAgentCommand(s.log), workdir: s.workdir, env: {} });
      const screen = await waitForPrompt(s.driver);
      // The restarted agent's screen does not carry the last run's crash.
      expect(screen).not.toContain('Error: boom');
      await say(s, 'again');
      await s.driver.submit('/exit 4');
      if (adapter.afterExit === 'exited') {
        const snap = await waitFor('the second exit status', () => s.driver.snapshot(), (x) => x.exited?.code === 4);
        expect(snap.exists).toBe(true);
      } else {
        await waitFor('the session to end', () => s.driver.exists(), (exists) => !exists);
      }
    });
  });
});

/** What only the tmux driver has: targets, signals, pane targets, a missing tmux binary. */
describe.skipIf(!TMUX_ADAPTER.available())('TmuxDriver specifics', () => {
  it('accepts session and pane targets and refuses anything tmux would read differently', () => {
    expect(new TmuxDriver('work', {}).spec).toBe('tmux:work');
    expect(new TmuxDriver('work:0.1', { socket: null }).spec).toBe('tmux:work:0.1');
    expect(new TmuxDriver('work:editor', {}).spec).toBe('tmux:work:editor');
    for (const bad of ['', 'a.b', 'a#{x}', 'my session', '-t', '=work', 'work:0.1;', 'work:0.x y']) {
      expect(() => new TmuxDriver(bad, {}), bad).toThrow(UsageError);
    }
  });

  it('reports a process killed by a signal as exited with the signal name', async (ctx) => {
    const s = await startFakeAgent(ctx, TMUX_ADAPTER);
    const socket = join(s.dir, 'tmux.sock');
    const pid = Number(execFileSync('tmux', ['-S', socket, 'display-message', '-p', '-t', '=agent:', '#{pane_pid}'], { encoding: 'utf8' }));
    // The pane's whole process group, as a hangup or the OOM killer would end it.
    process.kill(-pid, 'SIGTERM');
    const snap = await waitFor('the signal', () => s.driver.snapshot(), (x) => x.exited !== null && x.exited.signal !== null);
    expect(snap).toMatchObject({ exists: true, exited: { code: null, signal: 'SIGTERM' } });
  });

  it('drives a pane target, creates only a first pane, and stops only its pane', async (ctx) => {
    const dir = tempDir(ctx);
    const socket = join(dir, 'tmux.sock');
    ctx.onTestFinished(() => killTmuxServer(socket));
    const workdir = join(dir, 'work');
    mkdirSync(workdir);
    const log = join(dir, 'in.log');
    const spec = { command: fakeAgentCommand(log), workdir, env: {} };

    await fails(new TmuxDriver('agent:0.5', { socket }).start(spec), UsageError);
    expect(await new TmuxDriver('agent', { socket }).exists()).toBe(false);

    const pane = new TmuxDriver('agent:0.0', { socket });
    await pane.start(spec);
    await waitForPrompt(pane);
    await pane.submit('to the pane');
    await waitFor('the line', () => receivedLines(log), (lines) => lines.includes('to the pane'));

    // A second pane in the same window: the driver of pane 0 must not touch it.
    execFileSync('tmux', ['-S', socket, 'split-window', '-d', '-t', '=agent:0', 'cat', '-']);
    expect(await new TmuxDriver('agent:0.1', { socket }).exists()).toBe(true);
    expect(await new TmuxDriver('agent:0.7', { socket }).exists()).toBe(false);
    await fails(new TmuxDriver('agent:0.7', { socket }).start(spec), NotFound);
    await pane.stop();
    // The other pane lives on (tmux renumbers it to 0.0).
    expect(await new TmuxDriver('agent', { socket }).exists()).toBe(true);
    const panes = execFileSync('tmux', ['-S', socket, 'list-panes', '-t', '=agent:0', '-F', '#{pane_current_command}'], { encoding: 'utf8' });
    expect(panes.trim().split('\n')).toEqual(['cat']);
  });

  it('reads the exit status of every run of a restarted pane', async (ctx) => {
    // tmux 3.3 sometimes misses the SIGCHLD of a pane respawned after it died; the driver must
    // still report each exit status.
    const dir = tempDir(ctx);
    const driver = await TMUX_ADAPTER.open(ctx, dir, '');
    for (let code = 10; code < 18; code++) {
      await driver.start({ command: `sleep 0.1; exit ${code}`, workdir: dir, env: {} });
      const snap = await waitFor(`exit ${code}`, () => driver.snapshot(), (x) => x.exited !== null && x.exited.code !== null);
      expect(snap.exited).toEqual({ code, signal: null });
    }
  });

  it('checks the workdir and the environment names before creating anything', async (ctx) => {
    const dir = tempDir(ctx);
    const driver = await TMUX_ADAPTER.open(ctx, dir, '');
    await fails(driver.start({ command: 'true', workdir: join(dir, 'missing'), env: {} }), UsageError, /not a directory/);
    await fails(driver.start({ command: 'true', workdir: dir, env: { 'A=B': 'x' } }), UsageError, /environment variable/);
    expect(await driver.exists()).toBe(false);
  });

  it('says to install tmux when the binary is missing', async () => {
    const path = process.env.PATH;
    process.env.PATH = '/nonexistent';
    try {
      await fails(new TmuxDriver('agent', {}).exists(), Unavailable, /tmux is not installed/);
      const err = await new TmuxDriver('agent', {}).snapshot().catch((e: unknown) => e);
      expect(err).toMatchObject({ hint: 'install tmux' });
    } finally {
      process.env.PATH = path;
    }
  });
});
