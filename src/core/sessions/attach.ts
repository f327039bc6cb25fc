import { spawn } from 'node:child_process';
import { constants } from 'node:os';
import type { Readable, Writable } from 'node:stream';
import { Unavailable } from '../errors.js';
import { connectHost, errorFromHost, HostGone, readResponse, requestHost } from './pty-protocol.js';

/**
 * Attaching the operator's terminal to a session. A pty session is attached over its host's
 * socket (replayed recent output, then live bytes both ways); a tmux session by running
 * `tmux attach-session` itself.
 */

/** Ctrl-] (0x1d), as in telnet: detaches and leaves the session running; it never reaches the agent. */
export const DETACH_KEY = 0x1d;

/** Leaves the operator's terminal as we found it, whatever modes the agent's TUI turned on. */
const RESET_TERMINAL = '\x1b[0m\x1b[?25h\x1b[?1049l\x1b[?1000l\x1b[?1002l\x1b[?1003l\x1b[?1006l\x1b[?2004l\r\n';

export interface AttachOptions {
  stdin?: Readable & { isTTY?: boolean; setRawMode?: (raw: boolean) => unknown };
  stdout?: Writable & { isTTY?: boolean; columns?: number; rows?: number };
  detachKey?: number;
}

/** 'detached': the operator pressed the detach key; 'ended': the host closed (process exited or stopped). */
export type AttachEnd = 'detached' | 'ended';

export async function attachPty(socketPath: string, options: AttachOptions = {}): Promise<AttachEnd> {
  const stdin = options.stdin ?? process.stdin;
  const stdout = options.stdout ?? process.stdout;
  const detachKey = options.detachKey ?? DETACH_KEY;
  const socket = await connectHost(socketPath).catch((err: unknown) => {
    throw err instanceof HostGone ? new Unavailable('the pty session is not running', { cause: err }) : err;
  });
  const size = (): { cols: number; rows: number } | null =>
    stdout.isTTY && stdout.columns && stdout.rows ? { cols: stdout.columns, rows: stdout.rows } : null;
  socket.write(`${JSON.stringify({ id: 1, op: 'attach', ...size() })}\n`);
  let replay: Buffer;
  try {
    const { response, rest } = await readResponse(socket, 5_000);
    if (!response.ok) throw errorFromHost(response.error);
    replay = rest;
  } catch (err) {
    socket.destroy();
    throw err;
  }
  if (replay.length > 0) stdout.write(replay);

  // Raw mode only for a real terminal: a pipe or a test stream has no line discipline to switch.
  const raw = stdin.isTTY === true && typeof stdin.setRawMode === 'function';
  if (raw) stdin.setRawMode?.(true);

  return new Promise((resolve) => {
    let ended = false;
    const finish = (how: AttachEnd): void => {
      if (ended) return;
      ended = true;
      stdin.off('data', onInput);
      stdin.pause();
      if (raw) stdin.setRawMode?.(false);
      stdout.off('resize', onResize);
      socket.off('data', onOutput);
      if (stdout.isTTY) stdout.write(RESET_TERMINAL);
      // Resolve once the connection is really closed, so nothing is left open behind the caller.
      const force = setTimeout(() => socket.destroy(), 500);
      if (socket.closed) done();
      else socket.once('close', done).end();
      function done(): void {
        clearTimeout(force);
        resolve(how);
      }
    };
    const onInput = (chunk: Buffer | string): void => {
      const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
      const at = bytes.indexOf(detachKey);
      if (at < 0) {
        socket.write(bytes);
        return;
      }
      if (at > 0) socket.write(bytes.subarray(0, at));
      finish('detached');
    };
    const onOutput = (chunk: Buffer): void => {
      stdout.write(chunk);
    };
    const onResize = (): void => {
      const now = size();
      if (now) void requestHost(socketPath, { op: 'resize', ...now }).catch(() => undefined);
    };
    socket.on('data', onOutput);
    socket.once('close', () => finish('ended'));
    socket.on('error', () => finish('ended'));
    stdout.on('resize', onResize);
    stdin.on('data', onInput);
    stdin.resume();
  });
}

/** The socket path of the tmux server this process runs inside (from `$TMUX`), or null. */
function enclosingTmuxServer(): string | null {
  const value = process.env.TMUX;
  return value ? (value.split(',')[0] ?? null) : null;
}

/** The socket path a `-S` value (or the default server, for null) names. */
function tmuxSocketPath(socket: string | null): string {
  if (socket) return socket;
  return `${process.env.TMUX_TMPDIR ?? '/tmp'}/tmux-${process.getuid?.() ?? 0}/default`;
}

/**
 * Runs `tmux [-S socket] attach-session -t <target>` on the operator's terminal; resolves with its
 * exit code once the client detaches. Inside a pane of the same tmux server the client is
 * switched instead (`switch-client`, which returns at once: the operator comes back with the
 * client's last-session key), because tmux refuses to nest a server inside itself. Inside another
 * server's pane it nests (`TMUX` dropped for the child; that server's prefix is typed twice).
 */
export function attachTmux(target: string, socket: string | null = null): Promise<number> {
  const enclosing = enclosingTmuxServer();
  const sameServer = enclosing !== null && enclosing === tmuxSocketPath(socket);
  return new Promise((resolve, reject) => {
    const args = [...(socket ? ['-S', socket] : []), sameServer ? 'switch-client' : 'attach-session', '-t', target];
    const { TMUX: _nested, ...env } = process.env;
    const child = spawn('tmux', args, { stdio: 'inherit', env: sameServer ? process.env : env });
    child.once('error', (err: NodeJS.ErrnoException) => {
      reject(err.code === 'ENOENT' ? new Unavailable('tmux is not installed', { hint: 'install tmux', cause: err }) : err);
    });
    child.once('exit', (code, signal) => resolve(code ?? 128 + (signal ? constants.signals[signal] : 0)));
  });
}

/** How an attach ended: the tmux client's exit code, or the pty host's end. */
export type AgentAttachEnd = { via: 'tmux'; exitCode: number } | { via: 'pty'; end: AttachEnd };

/**
 * Attaches the operator's terminal to an agent's session, whatever its driver: `tmux:` runs
 * `tmux attach-session` with the agent's socket (see attachTmux for inside tmux), `pty:` connects to its host's socket under `runDir`. Used by `sos attach` and by `a` in
 * `sos top`; both check first that the caller may attach (operator or admin).
 */
export async function attachAgentSession(
  agent: { name: string; project: string; session: string | null; tmuxSocket: string | null },
  runDir: string,
  options: AttachOptions = {},
): Promise<AgentAttachEnd> {
  if (!agent.session) throw new Unavailable(`agent "${agent.name}" has no session to attach to`);
  if (agent.session.startsWith('tmux:')) return { via: 'tmux', exitCode: await attachTmux(agent.session.slice('tmux:'.length), agent.tmuxSocket) };
  const { PtyDriver } = await import('./pty.js');
  const driver = new PtyDriver(agent.session.slice('pty:'.length), { runDir, owner: { project: agent.project, agent: agent.name } });
  return { via: 'pty', end: await attachPty(driver.socketPath, options) };
}
