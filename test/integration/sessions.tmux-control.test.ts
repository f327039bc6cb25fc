import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it, type TestContext } from 'vitest';
import { Unavailable } from '../../src/core/errors.js';
import { closeTmuxControl, quoteArg, runControl, tmuxControlEnabled, useTmuxControl } from '../../src/core/sessions/tmux-control.js';
import { TmuxDriver } from '../../src/core/sessions/tmux.js';
import { fails } from '../helpers/expect.js';
import { tempDir } from '../helpers/isolation.js';
import { fakeAgentCommand, killTmuxServer, receivedLines, TMUX_ADAPTER, waitFor, waitForPrompt } from '../helpers/sessions.js';

/**
 * The tmux driver through a control-mode client (tmux-control.ts): the same literal typing and
 * the same readings as when it spawns tmux, one client per server that changes no window's size,
 * keeps no session or server alive, is restarted when it goes and ends when released.
 */

const releases: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const release of releases.splice(0)) await release();
  await closeTmuxControl();
});

function control(): void {
  releases.push(useTmuxControl());
}

interface Started {
  driver: TmuxDriver;
  socket: string;
  log: string;
}

async function start(ctx: TestContext, session = 'agent', socket?: string): Promise<Started> {
  const dir = tempDir(ctx);
  const workdir = join(dir, 'work');
  mkdirSync(workdir);
  const log = join(dir, 'in.log');
  const sock = socket ?? join(dir, 'tmux.sock');
  ctx.onTestFinished(() => killTmuxServer(sock));
  const driver = new TmuxDriver(session, { socket: sock });
  await driver.start({ command: fakeAgentCommand(log), workdir, env: {} });
  await waitForPrompt(driver);
  return { driver, socket: sock, log };
}

const tmux = (socket: string, args: string[]): string => execFileSync('tmux', ['-S', socket, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
const controlClients = (socket: string): string[] =>
  tmux(socket, ['list-clients', '-F', '#{client_control_mode} #{client_flags}'])
    .split('\n')
    .filter((l) => l.startsWith('1 '));

/** Until the control client of `socket` is attached and answers (the first calls spawn tmux). */
async function untilControlReady(s: Started): Promise<void> {
  await waitFor('the control client to be ready', async () => {
    await s.driver.snapshot(1);
    const reply = runControl(s.socket, [['display-message', '-p', 'x']]);
    return reply !== null && (await reply).stdout === 'x\n';
  }, (ready) => ready);
}

describe.skipIf(!TMUX_ADAPTER.available())('tmux control mode', () => {
  it('quotes every argument so that tmux takes it literally', () => {
    expect(quoteArg("it's")).toBe(`'it'\\''s'`);
    expect(quoteArg('a;')).toBe(`'a;'`);
  });

  it('is off unless a user turns it on, and spawns tmux then', async (ctx) => {
    const s = await start(ctx);
    expect(tmuxControlEnabled()).toBe(false);
    expect(runControl(s.socket, [['display-message', '-p', 'x']])).toBeNull();
    await s.driver.snapshot();
    expect(controlClients(s.socket)).toEqual([]);
  });

  it('types each line literally through one control client, without changing the window size', async (ctx) => {
    const s = await start(ctx);
    const size = tmux(s.socket, ['display-message', '-p', '-t', '=agent:', '#{window_width}x#{window_height}']);
    control();
    await untilControlReady(s);
    const lines = [
      'hello world; $(rm -rf /) `x`',
      'ends with a semicolon;',
      'a backslash then one\\;',
      ';',
      "it's 'quoted' \"twice\"",
      '-l -- C-c Enter',
      '#{pane_id} %1 ~ $HOME {a} #x',
      '%end 1 2 1',
      'tab\there ✓ é',
    ];
    for (const line of lines) {
      const before = receivedLines(s.log).length;
      await s.driver.submit(line);
      await waitFor(`the agent to receive ${JSON.stringify(line)}`, () => receivedLines(s.log).length, (n) => n > before);
      await waitForPrompt(s.driver);
    }
    expect(receivedLines(s.log)).toEqual(lines);
    const screen = (await s.driver.snapshot()).screen;
    expect(screen).toContain('ok: %end 1 2 1');
    expect(screen).toContain("ok: it's 'quoted' \"twice\"");
    const clients = controlClients(s.socket);
    expect(clients).toHaveLength(1);
    expect(clients[0]).toMatch(/ignore-size/);
    expect(clients[0]).toMatch(/no-output/);
    expect(tmux(s.socket, ['display-message', '-p', '-t', '=agent:', '#{window_width}x#{window_height}'])).toBe(size);
  });

  it('reads what spawning reads: the screen, the exit status, a missing pane or session', async (ctx) => {
    const s = await start(ctx);
    const spawned = await s.driver.snapshot(20);
    control();
    await untilControlReady(s);
    const viaControl = await s.driver.snapshot(20);
    expect({ ...viaControl, lastOutputAt: null }).toEqual({ ...spawned, lastOutputAt: null });
    expect(await s.driver.exists()).toBe(true);
    expect(await new TmuxDriver('agent:0.7', { socket: s.socket }).exists()).toBe(false);
    expect((await new TmuxDriver('other', { socket: s.socket }).snapshot()).exists).toBe(false);
    await fails(new TmuxDriver('other', { socket: s.socket }).submit('x'), Unavailable);
    await s.driver.submit('/exit 3');
    const exited = await waitFor('the exit', () => s.driver.snapshot(), (snap) => snap.exited !== null);
    expect(exited.exited).toEqual({ code: 3, signal: null });
    await fails(s.driver.submit('hello'), Unavailable);
  });

  it('keeps no session alive, follows its session ending, and ends when released', async (ctx) => {
    const a = await start(ctx, 'one');
    const b = await start(ctx, 'two', a.socket);
    const release = useTmuxControl();
    releases.push(release);
    await untilControlReady(a);
    expect(controlClients(a.socket)).toHaveLength(1);
    const attachedTo = tmux(a.socket, ['list-clients', '-F', '#{client_control_mode} #{session_name}'])
      .split('\n')
      .find((l) => l.startsWith('1 '))!
      .slice(2);
    // The session the client sits in ends like any other; the client goes with it and the next
    // calls spawn tmux until a new client attaches to the session that is left.
    const [gone, left] = attachedTo === 'one' ? [a, b] : [b, a];
    await gone.driver.stop();
    expect(await gone.driver.exists()).toBe(false);
    expect((await left.driver.snapshot()).exists).toBe(true);
    await untilControlReady(left);
    expect(controlClients(left.socket)).toHaveLength(1);
    await say(left, 'after the restart');
    // The last session ending ends the server, client and all.
    await left.driver.stop();
    expect(await left.driver.exists()).toBe(false);
    expect(() => tmux(left.socket, ['list-sessions'])).toThrow();
    // Released: a new server gets no control client.
    await release();
    const c = await start(ctx, 'three');
    await c.driver.snapshot();
    expect(controlClients(c.socket)).toEqual([]);
  });

  it('keeps its process alive while a reply is pending, and not once it is in', async (ctx) => {
    // The client's process and pipes never keep node alive; a command waiting for its reply must
    // (as a spawned tmux does), or a daemon whose only work is that reply simply exits mid-command.
    const s = await start(ctx);
    control();
    await untilControlReady(s);
    const timers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    const idle = timers();
    const reply = runControl(s.socket, [['display-message', '-p', 'x']]);
    expect(reply).not.toBeNull();
    expect(timers()).toBe(idle + 1);
    expect((await reply!).stdout).toBe('x\n');
    expect(timers()).toBe(idle);
  });

  it('ends every client when the last user releases control mode', async (ctx) => {
    const s = await start(ctx);
    const first = useTmuxControl();
    const second = useTmuxControl();
    releases.push(first, second);
    await untilControlReady(s);
    await first();
    expect(tmuxControlEnabled()).toBe(true);
    expect(controlClients(s.socket)).toHaveLength(1);
    await second();
    expect(tmuxControlEnabled()).toBe(false);
    await waitFor('the control client to leave', () => controlClients(s.socket).length, (n) => n === 0);
    await say(s, 'spawned again');
  });
});

async function say(s: Started, text: string): Promise<void> {
  const before = receivedLines(s.log).length;
  await s.driver.submit(text);
  await waitFor(`the agent to receive ${JSON.stringify(text)}`, () => receivedLines(s.log).length, (n) => n > before);
  expect(receivedLines(s.log).at(-1)).toBe(text);
}
