import { execFile, execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TestContext } from 'vitest';
import type { SessionDriver, SessionDriverType } from '../../src/core/sessions/port.js';
import { PtyDriver } from '../../src/core/sessions/pty.js';
import { TmuxDriver } from '../../src/core/sessions/tmux.js';

/**
 * Session fixtures for the one conformance suite every session driver passes unchanged, and
 * the fake agent the session and lifecycle tests drive. Each test gets its own session in its
 * own temp dir, and everything a driver started is ended when the test finishes.
 */

export interface SessionAdapter {
  name: SessionDriverType;
  /** False skips the adapter (its binary or native module is missing on this machine). */
  available(): boolean;
  /**
   * A driver for a session private to this test, not started yet. `dir` is a temp dir of the
   * test (`tempDir(ctx)`, created before this call so it outlives the cleanup registered here);
   * `command` is what the test will pass to `start`, for drivers whose spec names it (`pty:`).
   */
  open(ctx: TestContext, dir: string, command: string): Promise<SessionDriver>;
  /**
   * What the session looks like once its process has exited: `exited` — it still exists and
   * the snapshot carries the exit status (a tmux dead pane); `gone` — it no longer exists.
   */
  afterExit: 'exited' | 'gone';
  /** Whether snapshots report the process's current directory. */
  reportsCwd: boolean;
}

let tmuxFound: boolean | undefined;

function tmuxInstalled(): boolean {
  if (tmuxFound === undefined) {
    try {
      execFileSync('tmux', ['-V'], { stdio: 'ignore' });
      tmuxFound = true;
    } catch {
      tmuxFound = false;
    }
  }
  return tmuxFound;
}

/** Ends the private tmux server at `socket` with everything running in it. */
export function killTmuxServer(socket: string): Promise<void> {
  if (!existsSync(socket)) return Promise.resolve();
  // Errors are expected ("no server running" once the last session ended): nothing is left then.
  return new Promise((resolve) => execFile('tmux', ['-S', socket, 'kill-server'], () => resolve()));
}

/** A private tmux server per test (`-S <dir>/tmux.sock`), killed when the test finishes. */
export const TMUX_ADAPTER: SessionAdapter = {
  name: 'tmux',
  available: tmuxInstalled,
  afterExit: 'exited',
  reportsCwd: true,
  async open(ctx, dir) {
    const socket = join(dir, 'tmux.sock');
    // onTestFinished hooks run last-in first-out: the server goes before tempDir removes `dir`.
    ctx.onTestFinished(() => killTmuxServer(socket));
    return new TmuxDriver('agent', { socket });
  },
};

/**
 * Every session driver the conformance suite runs against. The pty adapter is appended here
 * (constructing `new PtyDriver(command, { runDir, owner: { project, agent } })`); nothing else
 * needs to change for the suite to cover it.
 */
export const SESSION_ADAPTERS: SessionAdapter[] = [
  TMUX_ADAPTER,
  {
    // A detached pty host per test (it needs dist/pty-host.js: `npm test` builds first), stopped
    // when the test finishes; after its process exits the host stays up to report the exit.
    name: 'pty',
    available: () => true,
    afterExit: 'exited',
    reportsCwd: process.platform === 'linux',
    async open(ctx, dir, command) {
      const driver = new PtyDriver(command, { runDir: join(dir, 'run'), owner: { project: 'conformance', agent: 'agent' } });
      ctx.onTestFinished(() => driver.stop());
      return driver;
    },
  },
];

// --- the fake agent ---------------------------------------------------------------------------

export const FAKE_AGENT = fileURLToPath(new URL('../fixtures/fake-agent.mjs', import.meta.url));
export const FAKE_AGENT_PATTERNS = fileURLToPath(new URL('../fixtures/fake-agent.patterns.json', import.meta.url));
export const FAKE_PROMPT = 'fake> ';

/** Quotes one word for `sh`. */
export function shellQuote(word: string): string {
  return `'${word.replace(/'/g, `'\\''`)}'`;
}

/** The start command that runs the fake agent logging what it receives to `log`. */
export function fakeAgentCommand(log: string): string {
  return `${shellQuote(process.execPath)} ${shellQuote(FAKE_AGENT)} --log ${shellQuote(log)}`;
}

export type FakeAgentLogEntry = { at: number; line: string } | { at: number; event: string };

/** The fake agent's log so far (empty when it has not written one yet). */
export function readFakeAgentLog(log: string): FakeAgentLogEntry[] {
  if (!existsSync(log)) return [];
  return readFileSync(log, 'utf8')
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line) as FakeAgentLogEntry);
}

/** The lines the fake agent received, in order. */
export function receivedLines(log: string): string[] {
  return readFakeAgentLog(log).flatMap((entry) => ('line' in entry ? [entry.line] : []));
}

/** The last line of a screen. */
export function lastLine(screen: string): string {
  return screen.split('\n').at(-1) ?? '';
}

/** Polls `probe` every 50 ms until `ok` holds, or fails with what was last seen. */
export async function waitFor<T>(what: string, probe: () => Promise<T> | T, ok: (value: T) => boolean, timeoutMs = 5_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (ok(value)) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last seen: ${JSON.stringify(value)}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Whether the screen ends in the fake agent's prompt (a renderer may drop its trailing space). */
export function atPrompt(screen: string): boolean {
  return lastLine(screen).trimEnd() === FAKE_PROMPT.trimEnd();
}

/** Waits until the session shows the fake agent's prompt on its last line; returns the screen. */
export async function waitForPrompt(driver: SessionDriver, timeoutMs = 5_000): Promise<string> {
  const snap = await waitFor('the fake agent prompt', () => driver.snapshot(), (s) => atPrompt(s.screen), timeoutMs);
  return snap.screen;
}
