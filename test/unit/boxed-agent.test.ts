import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it, type TestContext } from 'vitest';
import { classify, typedInput } from '../../src/core/lifecycle/classifier.js';
import { until } from '../helpers/daemon.js';
import { tempDir } from '../helpers/isolation.js';
import { type FakeAgentRecord, readFakeAgentLog, tmuxAvailable } from '../helpers/lifecycle.js';

/**
 * test/fixtures/boxed-agent.mjs, the Claude Code look-alike, against the default `claude`
 * patterns: it runs in a real tmux server of the test's own (120x40, like the captured Claude
 * Code screens), is driven with send-keys, and each screen is read as the lifecycle and wake
 * delivery read it (`classify`, `typedInput`).
 */

const BOXED_AGENT = fileURLToPath(new URL('../fixtures/boxed-agent.mjs', import.meta.url));
const CLAUDE_IDLE = fileURLToPath(new URL('../fixtures/screens/claude-code/idle.txt', import.meta.url));

interface Boxed {
  /** The pane, as `capture-pane -p` shows it (`joined`: with -J, as the tmux driver reads it). */
  screen(joined?: boolean): string;
  keys(...keys: string[]): void;
  /** Types text literally (send-keys -l). */
  type(text: string): void;
  received(): FakeAgentRecord[];
  /** Waits until the input box holds `text` (and returns the screen). */
  box(text: string): Promise<string>;
}

async function boxedAgent(ctx: TestContext, ...flags: string[]): Promise<Boxed> {
  const dir = tempDir(ctx);
  const socket = join(dir, 'sock');
  const log = join(dir, 'agent.log');
  const tmux = (...args: string[]) => execFileSync('tmux', ['-S', socket, ...args], { encoding: 'utf8' });
  // Registered after tempDir's own hook, so it runs first: the server is gone before its dir.
  ctx.onTestFinished(() => {
    try {
      tmux('kill-server');
    } catch {
      // already gone
    }
  });
  tmux('new-session', '-d', '-s', 't', '-x', '120', '-y', '40', ['node', BOXED_AGENT, '--log', log, ...flags].join(' '));
  const b: Boxed = {
    screen: (joined = false) => tmux('capture-pane', '-p', ...(joined ? ['-J'] : []), '-t', 't'),
    keys: (...keys) => void tmux('send-keys', '-t', 't', ...keys),
    type: (text) => void tmux('send-keys', '-t', 't', '-l', '--', text),
    received: () => readFakeAgentLog(log),
    box: (text) =>
      until(`the input box to hold ${JSON.stringify(text)}`, () => {
        const screen = b.screen();
        return typedInput('claude', screen)?.text === text && screen.includes('? for shortcuts') ? screen : undefined;
      }),
  };
  await b.box('');
  return b;
}

const read = (screen: string) => classify({ kind: 'claude', screen, sessionExists: true });
const nonEmpty = (screen: string) => screen.split('\n').filter((l) => l.trim() !== '');
/** The shape of a line: rule, input box, footer or other. */
const shape = (line: string) => (/^─+$/.test(line.trim()) ? 'rule' : /^❯\s/.test(`${line} `) ? 'box' : /\? for shortcuts/.test(line) ? 'footer' : 'other');

describe.skipIf(!tmuxAvailable)('boxed agent (a Claude Code look-alike) read with the default claude patterns', () => {
  it('draws an idle screen: the empty input box between two rules, the footer below it', async (ctx) => {
    const b = await boxedAgent(ctx);
    const screen = b.screen();
    const reading = read(screen);
    expect(reading.state, screen).toBe('idle');
    expect(reading.evidence).toContainEqual(expect.objectContaining({ signal: 'screen.idle', detail: 'claude.footer.shortcuts' }));
    expect(typedInput('claude', screen)).toEqual({ id: 'claude.input.box', text: '' });
    // The input line is not the last line: a footer sits below it, as in Claude Code.
    expect(nonEmpty(screen).slice(-4).map(shape)).toEqual(['rule', 'box', 'rule', 'footer']);
    // The captured Claude Code screen has the same shape (the fixture ships with the repository).
    expect(nonEmpty(readFileSync(CLAUDE_IDLE, 'utf8')).slice(-4).map(shape)).toEqual(['rule', 'box', 'rule', 'footer']);
    expect(b.received()).toEqual([]);
  });

  it('shows typed text in the input box, and Enter submits it: logged, echoed, the box cleared', async (ctx) => {
    const b = await boxedAgent(ctx);
    b.type('hello');
    const typed = await b.box('hello');
    expect(read(typed).state).toBe('idle');
    // The footer line below the box does not hold the text: only the input line tells.
    expect(nonEmpty(typed).pop()).not.toContain('hello');
    expect(b.received()).toEqual([]);

    b.keys('Enter');
    const done = await b.box('');
    expect(read(done).state).toBe('idle');
    expect(b.received()).toEqual([{ at: expect.any(Number), line: 'hello' }]);
    // Echoed above the box with the same mark: the last `❯` line is still the box.
    expect(done).toMatch(/^❯ hello$/m);
    expect(done).toContain('● ok: hello');
  });

  it('Backspace deletes, Ctrl-C clears the box without ending the agent, escape sequences are ignored', async (ctx) => {
    const b = await boxedAgent(ctx);
    b.type('abcd');
    await b.box('abcd');
    b.keys('BSpace');
    await b.box('abc');
    b.keys('Left', 'Up');
    b.type('é✓');
    await b.box('abcé✓');
    b.keys('C-c');
    await b.box('');
    b.type('still here');
    await b.box('still here');
    b.keys('Enter');
    await until('the line logged', () => b.received().length === 1);
    expect(b.received().map((r) => r.line)).toEqual(['still here']);
  });

  it('a line longer than the pane wraps, and capture-pane -J (as the tmux driver reads) gives it whole', async (ctx) => {
    const b = await boxedAgent(ctx);
    const long = `[sos] from boss: ${'x'.repeat(180)} end`;
    b.type(long);
    const joined = await until('the long line on screen', () => {
      const screen = b.screen(true);
      return typedInput('claude', screen)?.text === long ? screen : undefined;
    });
    expect(read(joined).state).toBe('idle');
    expect(typedInput('claude', b.screen())?.text).toBe(long.slice(0, 118)); // 120 columns, less `❯ `
  });

  it('when deaf (--deaf), ignores Enter: the text stays in the box, nothing is submitted, each Enter logged as ignored', async (ctx) => {
    const b = await boxedAgent(ctx, '--deaf');
    b.type('[sos] from boss: anyone?');
    await b.box('[sos] from boss: anyone?');
    b.keys('Enter');
    await until('the ignored Enter', () => b.received().some((r) => r.event === 'enter-ignored'));
    b.keys('Enter');
    await until('the second ignored Enter', () => b.received().length === 2);
    const screen = b.screen();
    expect(typedInput('claude', screen)?.text).toBe('[sos] from boss: anyone?');
    expect(read(screen).state).toBe('idle');
    expect(b.received()).toEqual([
      { at: expect.any(Number), event: 'enter-ignored' },
      { at: expect.any(Number), event: 'enter-ignored' },
    ]);
    expect(screen).not.toContain('● ok:');
  });

  it('becomes deaf when /deaf is submitted', async (ctx) => {
    const b = await boxedAgent(ctx);
    b.type('/deaf');
    b.keys('Enter');
    await b.box('');
    b.type('next');
    await b.box('next');
    b.keys('Enter');
    await until('the ignored Enter', () => b.received().length === 2);
    expect(b.received().map((r) => r.line ?? r.event)).toEqual(['/deaf', 'enter-ignored']);
    expect(typedInput('claude', b.screen())?.text).toBe('next');
  });
});
