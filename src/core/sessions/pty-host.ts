import { chmodSync, existsSync, readlinkSync, unlinkSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { constants } from 'node:os';
import xterm, { type Terminal } from '@xterm/headless';
import type { IPty } from 'node-pty';
import { Conflict, SosError, UsageError, Unavailable } from '../errors.js';
import type { ExitStatus } from './port.js';
import {
  connectHost,
  HostGone,
  LineReader,
  type HelloResult,
  type PtyRequest,
  type PtyResponse,
  type SnapshotResult,
} from './pty-protocol.js';
import { RotatingLog } from './rotating-log.js';

/**
 * The pty host: one agent process on a pseudo-terminal, rendered by a headless xterm, served on a
 * Unix socket (protocol in pty-protocol.ts). It outlives the CLI that started it, like a tmux
 * server, and stays up after the child exits so the exit can be observed.
 */

export interface PtyHostOptions {
  /** Run by `/bin/sh -c`. */
  command: string;
  workdir: string;
  /** The child's whole environment. */
  env: Record<string, string>;
  socketPath: string;
  logPath: string;
  cols?: number;
  rows?: number;
  /** How long the host stays up after the child exits (default 10 minutes). */
  lingerMs?: number;
  /** The log rotates to `<log>.1` past this size (default 8 MiB). */
  logMaxBytes?: number;
}

const RING_BYTES = 64 * 1024;
const DEFAULT_LOG_MAX_BYTES = 8 * 1024 * 1024;
/** Agent TUIs take a newline inside a paste as text, so Enter is a separate, later write. */
const ENTER_DELAY_MS = 30;
/** Interactive shells ignore SIGTERM; a hangup (what closing a terminal sends) ends them. */
const HANGUP_AFTER_MS = 500;
const KILL_AFTER_MS = 3_000;
const DEFAULT_LINGER_MS = 10 * 60_000;

/** The last `capacity` bytes of output, replayed to a client that attaches. */
class RingBuffer {
  private chunks: Buffer[] = [];
  private size = 0;

  constructor(private readonly capacity: number) {}

  push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.size += chunk.length;
    while (this.size - this.chunks[0]!.length >= this.capacity) this.size -= this.chunks.shift()!.length;
    if (this.size > this.capacity) {
      this.chunks[0] = this.chunks[0]!.subarray(this.size - this.capacity);
      this.size = this.capacity;
    }
  }

  contents(): Buffer {
    return Buffer.concat(this.chunks);
  }
}

function signalName(signal: number | undefined): string | null {
  if (!signal) return null;
  return Object.entries(constants.signals).find(([, n]) => n === signal)?.[0] ?? String(signal);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export class PtyHost {
  readonly startedAt = Date.now();
  /** Resolves once the host has stopped its child, closed its socket and flushed its log. */
  readonly closed: Promise<void>;
  private exited: ExitStatus | null = null;
  private title = '';
  private lastOutputAt: number | null = null;
  private readonly ring = new RingBuffer(RING_BYTES);
  private readonly connections = new Set<Socket>();
  private readonly attached = new Set<Socket>();
  private readonly childExit: Promise<void>;
  private readonly server: Server;
  private lingerTimer: NodeJS.Timeout | undefined;
  private closing: Promise<void> | null = null;
  private markClosed!: () => void;

  private constructor(
    private readonly options: PtyHostOptions,
    private readonly child: IPty,
    private readonly term: Terminal,
    private readonly log: RotatingLog,
  ) {
    this.closed = new Promise((resolve) => (this.markClosed = resolve));
    this.server = createServer((socket) => this.onConnection(socket));
    term.onTitleChange((title) => (this.title = title));
    child.onData((data) => this.onOutput(data));
    this.childExit = new Promise((resolve) => {
      child.onExit(({ exitCode, signal }) => {
        const name = signalName(signal);
        this.exited = { code: name ? null : exitCode, signal: name };
        this.onChildExit();
        resolve();
      });
    });
  }

  static async start(options: PtyHostOptions): Promise<PtyHost> {
    await removeStaleSocket(options.socketPath);
    // node-pty is a native addon: only a pty host ever loads it.
    const { default: pty } = await import('node-pty');
    const cols = options.cols ?? 120;
    const rows = options.rows ?? 40;
    const term = new xterm.Terminal({ cols, rows, allowProposedApi: true, scrollback: 1_000 });
    const log = new RotatingLog(options.logPath, options.logMaxBytes ?? DEFAULT_LOG_MAX_BYTES);
    const child = pty.spawn('/bin/sh', ['-c', options.command], {
      // Our renderer is an xterm, whatever TERM the starting process had (a daemon may have none).
      name: 'xterm-256color',
      cols,
      rows,
      cwd: options.workdir,
      env: options.env,
    });
    const host = new PtyHost(options, child, term, log);
    try {
      await host.listen();
    } catch (err) {
      await host.close();
      throw err;
    }
    return host;
  }

  /** Stops the child (SIGTERM, then SIGHUP, then SIGKILL), then closes the socket. Idempotent. */
  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private listen(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.options.socketPath, () => {
        this.server.off('error', reject);
        // Whoever can connect can type into the agent.
        chmodSync(this.options.socketPath, 0o600);
        resolve();
      });
    });
  }

  private onOutput(data: string): void {
    const bytes = Buffer.from(data, 'utf8');
    this.lastOutputAt = Date.now();
    this.term.write(data);
    this.ring.push(bytes);
    this.log.write(bytes);
    for (const socket of this.attached) socket.write(bytes);
  }

  private onChildExit(): void {
    const how = this.exited?.signal ? `signal ${this.exited.signal}` : `code ${this.exited?.code}`;
    this.log.write(`\n[sos pty host] the process exited with ${how}\n`);
    for (const socket of this.attached) socket.end(`\r\n[sos: the process exited with ${how}]\r\n`);
    this.attached.clear();
    if (!this.closing) this.lingerTimer = setTimeout(() => void this.close(), this.options.lingerMs ?? DEFAULT_LINGER_MS);
  }

  private onConnection(socket: Socket): void {
    this.connections.add(socket);
    socket.on('close', () => {
      this.connections.delete(socket);
      this.attached.delete(socket);
    });
    // A client that vanishes mid-write is its own problem, not the host's.
    socket.on('error', () => socket.destroy());
    const reader = new LineReader();
    const onData = (chunk: Buffer): void => {
      const lines = reader.push(chunk);
      for (const [i, line] of lines.entries()) {
        let request: PtyRequest;
        try {
          request = JSON.parse(line) as PtyRequest;
        } catch {
          this.reply(socket, { id: 0, ok: false, error: { code: 'usage', message: 'a request is one line of JSON' } });
          continue;
        }
        if (request.op === 'attach') {
          socket.off('data', onData);
          const typed = lines.slice(i + 1).map((l) => `${l}\n`).join('');
          this.attach(socket, request, Buffer.concat([Buffer.from(typed), reader.rest()]));
          return;
        }
        this.handle(request).then(
          (result) => this.reply(socket, { id: request.id, ok: true, result }),
          (err: unknown) => {
            const code = err instanceof SosError ? err.code : 'internal';
            const message = err instanceof Error ? err.message : String(err);
            this.reply(socket, { id: request.id, ok: false, error: { code, message } });
          },
        );
      }
    };
    socket.on('data', onData);
  }

  private reply(socket: Socket, response: PtyResponse): void {
    if (!socket.destroyed) socket.write(`${JSON.stringify(response)}\n`);
  }

  private async handle(request: PtyRequest): Promise<unknown> {
    switch (request.op) {
      case 'hello':
        return this.hello();
      case 'snapshot':
        return this.snapshot(request.lines);
      case 'submit':
        if (typeof request.text !== 'string') throw new UsageError('submit needs a text');
        this.write(request.text);
        await sleep(ENTER_DELAY_MS);
        this.write('\r');
        return {};
      case 'interrupt':
        this.write('\x03');
        return {};
      case 'resize':
        this.resize(request.cols, request.rows);
        return {};
      case 'stop':
        // Answer first: closing ends this connection.
        setImmediate(() => void this.close());
        return {};
      default:
        throw new UsageError(`unknown op ${JSON.stringify((request as { op: unknown }).op)}`);
    }
  }

  private hello(): HelloResult {
    return {
      pid: process.pid,
      childPid: this.child.pid,
      command: this.options.command,
      startedAt: this.startedAt,
      exited: this.exited,
    };
  }

  private async snapshot(lines: number): Promise<SnapshotResult> {
    if (!Number.isInteger(lines) || lines < 1) throw new UsageError('snapshot needs lines ≥ 1');
    // xterm parses asynchronously: an empty write's callback runs after all earlier output.
    await new Promise<void>((resolve) => this.term.write('', resolve));
    return {
      exited: this.exited,
      screen: this.screen(lines),
      title: this.title,
      cwd: this.cwd(),
      lastOutputAt: this.lastOutputAt,
    };
  }

  /**
   * The last `lines` lines of the active buffer (the alternate one while a TUI uses it), blank lines
   * at the end dropped; written trailing spaces are kept, as `tmux capture-pane -J` keeps them.
   */
  private screen(lines: number): string {
    const buffer = this.term.buffer.active;
    const out: string[] = [];
    for (let y = buffer.length - 1; y >= 0 && out.length < lines; y--) {
      const text = buffer.getLine(y)?.translateToString(true) ?? '';
      if (out.length > 0 || text.trim() !== '') out.push(text);
    }
    return out.reverse().join('\n');
  }

  private cwd(): string | null {
    if (this.exited) return null;
    try {
      return readlinkSync(`/proc/${this.child.pid}/cwd`);
    } catch {
      return null; // no procfs (macOS) or the process just ended
    }
  }

  private write(data: string | Buffer): void {
    if (this.exited || this.closing) throw new Unavailable('the session process has exited');
    this.child.write(data);
  }

  private resize(cols: number, rows: number): void {
    const valid = (n: number): boolean => Number.isInteger(n) && n >= 1 && n <= 1_000;
    if (!valid(cols) || !valid(rows)) throw new UsageError('resize needs cols and rows between 1 and 1000');
    if (this.exited) return;
    this.child.resize(cols, rows);
    this.term.resize(cols, rows);
  }

  private attach(socket: Socket, request: Extract<PtyRequest, { op: 'attach' }>, typed: Buffer): void {
    try {
      if (request.cols !== undefined && request.rows !== undefined) this.resize(request.cols, request.rows);
    } catch (err) {
      this.reply(socket, { id: request.id, ok: false, error: { code: 'usage', message: (err as Error).message } });
      socket.end();
      return;
    }
    this.reply(socket, { id: request.id, ok: true, result: this.hello() });
    socket.write(this.ring.contents());
    if (this.exited) {
      socket.end('\r\n[sos: the process has exited]\r\n');
      return;
    }
    this.attached.add(socket);
    const input = (chunk: Buffer): void => {
      if (!this.exited && !this.closing) this.child.write(chunk);
    };
    if (typed.length > 0) input(typed);
    socket.on('data', input);
  }

  private async shutdown(): Promise<void> {
    clearTimeout(this.lingerTimer);
    await this.stopChild();
    for (const socket of this.connections) socket.end();
    const force = setTimeout(() => this.connections.forEach((s) => s.destroy()), 1_000);
    await new Promise<void>((resolve) => (this.server.listening ? this.server.close(() => resolve()) : resolve()));
    clearTimeout(force);
    try {
      unlinkSync(this.options.socketPath);
    } catch {
      // already removed by the server's close
    }
    this.term.dispose();
    await this.log.end();
    this.markClosed();
  }

  private async stopChild(): Promise<void> {
    if (this.exited) return;
    // node-pty makes the child a session leader: signal its whole process group.
    const signal = (name: NodeJS.Signals): void => {
      try {
        process.kill(-this.child.pid, name);
      } catch {
        try {
          process.kill(this.child.pid, name);
        } catch {
          // already gone
        }
      }
    };
    signal('SIGTERM');
    const hangup = setTimeout(() => signal('SIGHUP'), HANGUP_AFTER_MS);
    const kill = setTimeout(() => signal('SIGKILL'), KILL_AFTER_MS);
    let giveUp: NodeJS.Timeout | undefined;
    await Promise.race([this.childExit, new Promise((resolve) => (giveUp = setTimeout(resolve, KILL_AFTER_MS + 1_000)))]);
    clearTimeout(hangup);
    clearTimeout(kill);
    clearTimeout(giveUp);
  }
}

/** A leftover socket file from a host that died is removed; a live host there is a Conflict. */
async function removeStaleSocket(socketPath: string): Promise<void> {
  if (!existsSync(socketPath)) return;
  try {
    const socket = await connectHost(socketPath, 1_000);
    socket.destroy();
    throw new Conflict(`a pty host already listens on ${socketPath}`);
  } catch (err) {
    if (!(err instanceof HostGone)) throw err;
  }
  try {
    unlinkSync(socketPath);
  } catch {
    // there was no file
  }
}
