import { type ChildProcess, execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { expect, type TestContext } from 'vitest';
import { isolatedEnv, type SosResult, sos, spawnSos } from './cli.js';
import { type AdapterFixture, ADAPTERS, tempDir } from './isolation.js';
import { FAKE_AGENT, type FakeAgentRecord, readFakeAgentLog } from './lifecycle.js';

/**
 * A daemon world for `sos daemon` tests: a private database, a tmux server of the test's own (on
 * a socket in its temp dir), agents running the fake agent (test/fixtures/fake-agent.mjs) that the
 * daemon itself starts, and `sos daemon` run as a real separate process. Every daemon is stopped
 * (SIGTERM, then SIGKILL) and the tmux server killed when the test ends.
 */

export const FAKE_PATTERNS_FILE = join(FAKE_AGENT, '..', 'fake-agent.patterns.json');

/** Fast loops so a test sees several passes a second. */
export const FAST = ['--probe-interval', '300ms', '--sweep-interval', '300ms', '--wake-cooldown', '200ms'];

export interface DaemonEvent {
  at: string;
  event: string;
  [key: string]: unknown;
}

export type Received = FakeAgentRecord;

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface DaemonProcess {
  child: ChildProcess;
  pid: number;
  events: DaemonEvent[];
  stderr(): string;
  /** Resolves on the process's `close` (exited, and its pipes are drained). */
  exited: Promise<Exit>;
  /** Polls the events until one matches (fails after `timeoutMs`, or when the daemon exits first). */
  waitFor(match: (e: DaemonEvent) => boolean, timeoutMs?: number): Promise<DaemonEvent>;
  /** SIGTERM and wait for the exit; SIGKILL if it takes longer than `graceMs`. */
  stop(graceMs?: number): Promise<Exit>;
}

export interface DaemonWorld {
  dir: string;
  socket: string;
  env: NodeJS.ProcessEnv;
  run(args: string[], options?: { env?: Record<string, string>; input?: string }): Promise<SosResult>;
  /** Registers an agent on the test's tmux server running the fake agent (not started: the daemon starts it). */
  /** A fake agent in a tmux session (default) or a pty session owned by a pty host. */
  addAgent(name: string, options?: { policy?: 'warm' | 'cold'; driver?: 'tmux' | 'pty'; wake?: 'text' | 'notify' | 'off' }): Promise<void>;
  /** Spawns `sos daemon <args>`; with `ready` (default) waits for its `started` event. */
  daemon(args?: string[], options?: { env?: Record<string, string>; ready?: boolean }): Promise<DaemonProcess>;
  received(name: string): Received[];
  /** Lines starting with `[sos] ` the agent received (wake lines and context packs). */
  sosLines(name: string): Received[];
  /** Waits until the agent's log shows its n-th context pack (the daemon started it and it is at its prompt). */
  ready(name: string, n?: number, timeoutMs?: number): Promise<void>;
  /** The agent's pane, as tmux shows it. */
  screen(name: string): string;
  /** Types a line into the agent's session, the way a human at the terminal would. */
  type(name: string, line: string): void;
}

/** Polls `check` every `everyMs` until it returns a value other than undefined/false. */
export async function until<T>(what: string, check: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 5_000, everyMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() >= deadline) expect.fail(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

function watchDaemon(child: ChildProcess): DaemonProcess {
  const events: DaemonEvent[] = [];
  let err = '';
  let partial = '';
  child.stderr!.on('data', (d: Buffer) => {
    err += d.toString();
    partial += d.toString();
    const lines = partial.split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) {
      try {
        events.push(JSON.parse(line) as DaemonEvent);
      } catch {
        // not an event line (a crash trace): kept in stderr()
      }
    }
  });
  child.stdout!.resume();
  let done: Exit | null = null;
  const exited = new Promise<Exit>((resolve) => {
    child.on('close', (code, signal) => {
      done = { code, signal };
      resolve(done);
    });
  });
  const d: DaemonProcess = {
    child,
    pid: child.pid!,
    events,
    stderr: () => err,
    exited,
    async waitFor(match, timeoutMs = 8_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const found = events.find(match);
        if (found) return found;
        if (done) expect.fail(`daemon ${d.pid} exited (${JSON.stringify(done)}) before the awaited event; stderr:\n${err}`);
        if (Date.now() >= deadline) expect.fail(`daemon ${d.pid}: no matching event within ${timeoutMs} ms; stderr:\n${err}`);
        await new Promise((r) => setTimeout(r, 25));
      }
    },
    async stop(graceMs = 5_000) {
      if (done) return done;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      try {
        return await exited;
      } finally {
        clearTimeout(timer);
      }
    },
  };
  return d;
}

export async function daemonWorld(ctx: TestContext, adapter: AdapterFixture = ADAPTERS[0]!): Promise<DaemonWorld> {
  const target = adapter.target(ctx);
  const dir = tempDir(ctx);
  const socket = join(dir, 'tmux.sock');
  // No HTTP unless a test asks for it (`--listen`): daemons of tests running at once would all
  // want the default port.
  const env = isolatedEnv(join(dir, 'home'), { ...target.env, SOS_DB: target.db, SOS_LISTEN: 'off' });
  // Registered first, so it runs last (onTestFinished hooks run in reverse): after every daemon stopped.
  ctx.onTestFinished(() => {
    try {
      execFileSync('tmux', ['-S', socket, 'kill-server'], { stdio: 'ignore' });
    } catch {
      // no server was started, or it is gone already
    }
  });
  const run: DaemonWorld['run'] = (args, o = {}) => sos(args, { ...env, ...o.env }, o.input === undefined ? {} : { input: o.input });
  const init = await run(['init']);
  expect(init.code, init.stderr).toBe(0);
  expect((await run(['agents', 'add', 'boss', '--role', 'coordinator'])).code).toBe(0);

  const logOf = (name: string) => join(dir, `${name}.log`);
  const received = (name: string): Received[] => readFakeAgentLog(logOf(name));
  const sosLines = (name: string) => received(name).filter((r) => r.line?.startsWith('[sos] '));
  const w: DaemonWorld = {
    dir,
    socket,
    env,
    run,
    async addAgent(name, o = {}) {
      const start = `node ${FAKE_AGENT} --log ${logOf(name)}`;
      const session = o.driver === 'pty' ? ['--session', `pty:${start}`] : ['--session', `tmux:${name}`, '--tmux-socket', socket, '--start-cmd', start];
      const r = await run([
        'agents', 'add', name,
        ...session,
        '--workdir', dir,
        '--patterns', FAKE_PATTERNS_FILE,
        '--policy', o.policy ?? 'warm',
        // The fake agent reads a typed line as a prompt; custom kinds type nothing unless they opt in.
        '--wake', o.wake ?? 'text',
      ]);
      expect(r.code, r.stderr).toBe(0);
    },
    async daemon(args = FAST, o = {}) {
      const d = watchDaemon(spawnSos(['daemon', ...args], { ...env, ...o.env }));
      ctx.onTestFinished(async () => {
        await d.stop();
      });
      if (o.ready !== false) await d.waitFor((e) => e.event === 'started');
      return d;
    },
    received,
    sosLines,
    async ready(name, n = 1, timeoutMs = 8_000) {
      await until(`${name}'s context pack #${n}`, () => sosLines(name).filter((r) => r.line!.startsWith('[sos] context after restart')).length >= n, timeoutMs);
    },
    screen: (name) => execFileSync('tmux', ['-S', socket, 'capture-pane', '-p', '-t', name], { encoding: 'utf8' }),
    type(name, line) {
      execFileSync('tmux', ['-S', socket, 'send-keys', '-t', name, '-l', line]);
      execFileSync('tmux', ['-S', socket, 'send-keys', '-t', name, 'Enter']);
    },
  };
  return w;
}
