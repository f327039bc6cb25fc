import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import type { Socket } from 'node:net';

/**
 * A persistent tmux control-mode client (`tmux -C`), one per tmux server, so that a long-running
 * process (the daemon) reads panes and types into them without spawning a tmux process for every
 * command. Commands are written to the client's stdin as one line each, every argument single-
 * quoted (tmux's command parser expands nothing inside single quotes: no `$`, `~`, `#`, `;` or
 * `\`), and each command's reply is the `%begin … %end` (or `%error`) block tmux writes back, in
 * order. A line of several commands stops at the first that fails, so its reply is complete after
 * one block per command or at the first `%error`.
 *
 * The client attaches to whichever session tmux picks, with `-f no-output,ignore-size`: it gets
 * no pane output and never counts for a window's size. An attached client keeps nothing alive: a
 * session still ends with its last window, and the server with its last session; when the
 * session it attached to ends, tmux detaches it and it exits. It is restarted on a later call (at
 * most once a second); until it is ready, and whenever it is gone, callers spawn tmux as before
 * (`runControl` answers null). Off unless a user turned it on (`useTmuxControl`: short-lived
 * commands gain nothing from it); when the last one releases it, every client ends.
 */

export interface ControlResult {
  ok: boolean;
  stdout: string;
  stderr: string;
}

/** The client went away (or stopped answering) after the command was written: it may have run. */
export class ControlLost extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ControlLost';
  }
}

const REPLY_TIMEOUT_MS = 10_000;
const READY_TIMEOUT_MS = 3_000;
const RESTART_AFTER_MS = 1_000;
const READY_TOKEN = 'sos-control-ready';
const BLOCK_END = /^%(end|error) (\d+) (\d+) (\d+)$/;
const BLOCK_BEGIN = /^%begin (\d+) (\d+) (\d+)$/;

/** One tmux argument as tmux's command parser reads it literally. */
export function quoteArg(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

interface Request {
  commands: number;
  blocks: { ok: boolean; lines: string[] }[];
  resolve: (result: ControlResult) => void;
  reject: (err: Error) => void;
}

class ControlClient {
  private readonly child: ChildProcessWithoutNullStreams;
  private ready = false;
  private closed = false;
  private buffer = '';
  /** The block being read: its `time number` and lines; null between blocks. */
  private block: { id: string; ours: boolean; lines: string[] } | null = null;
  private readonly pending: Request[] = [];
  private timer: NodeJS.Timeout | null = null;
  private readonly exited: Promise<void>;
  /** Whether the attach command's own block (the first one) was read. */
  private attached = false;

  constructor(
    socketArgs: string[],
    env: NodeJS.ProcessEnv,
    private readonly onGone: (client: ControlClient) => void,
  ) {
    this.child = spawn('tmux', [...socketArgs, '-C', 'attach-session', '-f', 'no-output,ignore-size'], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    this.exited = new Promise((resolve) => this.child.once('close', () => resolve()));
    this.child.once('error', () => this.lost('tmux control client failed to start'));
    this.child.once('exit', () => this.lost('tmux control client exited'));
    this.child.stdin.on('error', () => this.lost('tmux control client closed its input'));
    this.child.stdout.setEncoding('utf8');
    this.child.stdout.on('data', (chunk: string) => this.read(chunk));
    this.child.stderr.resume();
    // Never what keeps the process alive: closeTmuxControl ends it, and so does the end of its stdin.
    this.child.unref();
    for (const stream of [this.child.stdin, this.child.stdout, this.child.stderr]) (stream as Socket).unref();
    this.timer = setTimeout(() => this.lost('tmux control client did not become ready'), READY_TIMEOUT_MS);
    this.timer.unref();
  }

  get usable(): boolean {
    return this.ready && !this.closed;
  }

  run(commands: string[][]): Promise<ControlResult> {
    return new Promise((resolve, reject) => {
      if (!this.usable) return reject(new Error('tmux control client not ready'));
      this.pending.push({ commands: commands.length, blocks: [], resolve, reject });
      this.armTimer();
      this.child.stdin.write(`${commands.map((c) => c.map(quoteArg).join(' ')).join(' ; ')}\n`);
    });
  }

  /** Ends the client once the replies in flight are in (or after `graceMs`). */
  async close(graceMs = 2_000): Promise<void> {
    if (!this.closed) {
      const deadline = Date.now() + graceMs;
      while (this.pending.length > 0 && !this.closed && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      this.lost('tmux control closed');
    }
    const killer = setTimeout(() => this.child.kill('SIGKILL'), 1_000);
    await this.exited;
    clearTimeout(killer);
  }

  private armTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (this.pending.length === 0) return;
    // Left referenced: the client's process and pipes are not, so without this timer a process
    // whose only work is waiting for a reply (a daemon's start-up recovery) would simply end,
    // exit code 0, mid-command. A spawned tmux keeps its caller alive the same way.
    this.timer = setTimeout(() => this.lost(`tmux did not answer within ${REPLY_TIMEOUT_MS / 1000}s`), REPLY_TIMEOUT_MS);
  }

  private read(chunk: string): void {
    this.buffer += chunk;
    let nl: number;
    while ((nl = this.buffer.indexOf('\n')) !== -1) {
      const line = this.buffer.slice(0, nl);
      this.buffer = this.buffer.slice(nl + 1);
      this.line(line);
    }
  }

  private line(line: string): void {
    if (this.block) {
      // A line of pane text can look like an end marker, but not with this block's time and number.
      const end = BLOCK_END.exec(line);
      if (end && `${end[2]} ${end[3]}` === this.block.id) {
        const { ours, lines } = this.block;
        this.block = null;
        this.blockDone(ours, end[1] === 'end', lines);
      } else {
        this.block.lines.push(line);
      }
      return;
    }
    const begin = BLOCK_BEGIN.exec(line);
    if (begin) {
      // Flag 1 marks a command this client sent; others (the attach, hooks) are not replies.
      this.block = { id: `${begin[1]} ${begin[2]}`, ours: begin[3] === '1', lines: [] };
      return;
    }
    if (line === '%exit' || line.startsWith('%exit ')) this.lost('tmux control client detached');
    // Every other notification (%session-changed, %window-add, ...) says nothing we need.
  }

  private blockDone(ours: boolean, ok: boolean, lines: string[]): void {
    if (!this.attached) {
      this.attached = true;
      if (!ok) return this.lost(`tmux control client could not attach: ${lines.join(' ')}`);
      // Ready once a command of ours comes back marked as ours (tmux 3.2 and later do).
      this.child.stdin.write(`display-message -p ${quoteArg(READY_TOKEN)}\n`);
      return;
    }
    if (!ours) return;
    if (!this.ready) {
      if (ok && lines[0] === READY_TOKEN) {
        this.ready = true;
        if (this.timer) clearTimeout(this.timer);
        this.timer = null;
      } else {
        this.lost('tmux control client gave an unexpected first reply');
      }
      return;
    }
    const request = this.pending[0];
    if (!request) return;
    request.blocks.push({ ok, lines });
    if (ok && request.blocks.length < request.commands) return;
    this.pending.shift();
    this.armTimer();
    const text = (blocks: { lines: string[] }[]) => blocks.map((b) => b.lines.map((l) => `${l}\n`).join('')).join('');
    request.resolve(ok ? { ok, stdout: text(request.blocks), stderr: '' } : { ok, stdout: text(request.blocks.slice(0, -1)), stderr: text(request.blocks.slice(-1)) });
  }

  private lost(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    for (const request of this.pending.splice(0)) request.reject(new ControlLost(reason));
    this.child.stdin.end();
    if (this.child.exitCode === null && this.child.signalCode === null) {
      // stdin's end makes tmux detach and exit; a hung one is told to.
      const term = setTimeout(() => this.child.kill('SIGTERM'), 500);
      term.unref();
      void this.exited.then(() => clearTimeout(term));
    }
    this.onGone(this);
  }
}

/** How many users (daemons in this process) have control mode on. */
let users = 0;
const clients = new Map<string, { client: ControlClient | null; startedAt: number }>();

/** The `-S` arguments and environment for a control client of the server at `socket` (null: the default one). */
function socketOf(socket: string | null): { args: string[]; env: NodeJS.ProcessEnv } {
  const env = { ...process.env };
  // Inside tmux, $TMUX names the default server; spelled out as -S so tmux does not refuse to
  // attach a client from within one of its own panes.
  const inherited = env.TMUX ? env.TMUX.split(',')[0] : undefined;
  delete env.TMUX;
  const path = socket ?? (inherited || null);
  return { args: path ? ['-S', path] : [], env };
}

/**
 * Turns control mode on for this process until the returned release is called (idempotent);
 * when the last user releases it, every client ends.
 */
export function useTmuxControl(): () => Promise<void> {
  users += 1;
  let released = false;
  return async () => {
    if (released) return;
    released = true;
    users -= 1;
    if (users === 0) await closeTmuxControl();
  };
}

export function tmuxControlEnabled(): boolean {
  return users > 0;
}

/**
 * Runs `commands` (each an argument vector, taken literally) on the control client of the server
 * at `socket`, as one line. Null when no client is ready (or control mode is off): the caller
 * spawns tmux instead, and a client is started for the next calls. Rejects with ControlLost when
 * the client went away after the line was written.
 */
export function runControl(socket: string | null, commands: string[][]): Promise<ControlResult> | null {
  if (users === 0) return null;
  const key = socket ?? '';
  const entry = clients.get(key);
  if (entry?.client?.usable) return entry.client.run(commands);
  if (entry?.client || (entry && Date.now() - entry.startedAt < RESTART_AFTER_MS)) return null; // starting, or failed just now
  const { args, env } = socketOf(socket);
  const fresh: { client: ControlClient | null; startedAt: number } = { client: null, startedAt: Date.now() };
  clients.set(key, fresh);
  fresh.client = new ControlClient(args, env, (gone) => {
    if (fresh.client === gone) fresh.client = null;
  });
  return null;
}

/** Ends every control client (after the replies in flight); they start again on a later call while control mode is on. */
export async function closeTmuxControl(): Promise<void> {  const all = [...clients.values()].map((e) => e.client).filter((c): c is ControlClient => c !== null);
  clients.clear();
  await Promise.all(all.map((c) => c.close()));
}
