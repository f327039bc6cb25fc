import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, statSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Conflict, Unavailable, UsageError } from '../errors.js';
import type { SessionDriver, SessionSnapshot, StartSpec } from './port.js';
import { HostGone, requestHost, type HelloResult, type SnapshotResult } from './pty-protocol.js';

/**
 * The pty session driver: the agent runs under a detached `sos` pty host (pty-host.ts), which
 * outlives the CLI that started it; this driver only speaks to the host's socket, so the CLI
 * never loads node-pty.
 */

export interface PtyDriverOptions {
  runDir: string;
  owner: { project: string; agent: string };
  /** The host script to run; by default dist/pty-host.js, found relative to this module. */
  hostScript?: string;
  cols?: number;
  rows?: number;
  /** Passed to the host: its log rotates past this size (default 8 MiB). */
  logMaxBytes?: number;
}

/** sun_path holds 108 bytes on Linux and 104 on macOS; stay clear of both. */
const SOCKET_PATH_MAX = 100;
// Generous: a loaded machine (a test run spawning many processes on 2 cores) can take seconds to
// boot node and load node-pty; a host that fails is seen at once through its exit event.
const START_TIMEOUT_MS = 15_000;
/** The host's own grace: SIGKILL after 3 s, then up to 1 s for its clients to hang up. */
const STOP_TIMEOUT_MS = 5_000;
const POLL_MS = 50;

/**
 * Where the driver looks for the host script: bundled, this module is dist/chunks/*.js (or a
 * dist/ entry); run from source (vitest), it is src/core/sessions/pty.ts.
 */
const HOST_CANDIDATES = ['../pty-host.js', './pty-host.js', '../../../dist/pty-host.js'];

export function ptySessionPaths(runDir: string, owner: { project: string; agent: string }): { socketPath: string; logPath: string } {
  const name = `${owner.project}.${owner.agent}`;
  if (/[/\\\0]/.test(name)) throw new UsageError(`invalid pty session owner ${JSON.stringify(name)}`);
  let socketPath = join(runDir, `${name}.sock`);
  // A deep data directory can overflow sun_path; then the socket lives in the temp directory
  // under a name hashed from the full path, still unique per run directory and agent.
  if (Buffer.byteLength(socketPath) > SOCKET_PATH_MAX) {
    const digest = createHash('sha256').update(socketPath).digest('hex').slice(0, 16);
    socketPath = join(tmpdir(), `sos-pty-${digest}.sock`);
  }
  return { socketPath, logPath: join(runDir, `${name}.log`) };
}

/** The last thing the pty host reported about itself in the session log since `from` (pty-host-main.ts). */
function hostReport(logPath: string, from: number): string | null {
  let text: string;
  try {
    text = readFileSync(logPath).subarray(from).toString('utf8');
  } catch {
    return null;
  }
  const at = text.lastIndexOf('[sos pty host] ');
  return at < 0 ? null : text.slice(at + '[sos pty host] '.length).split('\n')[0]!.trim();
}

function locateHostScript(): string {
  for (const candidate of HOST_CANDIDATES) {
    const path = fileURLToPath(new URL(candidate, import.meta.url));
    if (existsSync(path)) return path;
  }
  throw new Unavailable('the pty host script dist/pty-host.js was not found', {
    hint: 'build sos first: npm run build',
  });
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/**
 * Text is typed as keys: a newline would submit early and a control byte would be a keystroke.
 * Tab is allowed, as the tmux driver allows it.
 */
function checkSubmitText(text: string): void {
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u0008\u000a-\u001f\u007f-\u009f]/.test(text)) {
    throw new UsageError('submit takes one line of text without control characters (tab is allowed)');
  }
}

export class PtyDriver implements SessionDriver {
  readonly type = 'pty' as const;
  readonly spec: string;
  readonly socketPath: string;
  readonly logPath: string;

  constructor(
    private readonly command: string,
    private readonly options: PtyDriverOptions,
  ) {
    this.spec = `pty:${command}`;
    ({ socketPath: this.socketPath, logPath: this.logPath } = ptySessionPaths(options.runDir, options.owner));
  }

  async exists(): Promise<boolean> {
    return (await this.hello()) !== null;
  }

  /**
   * The host's hello, or null when no host answers; a stale socket file is removed unless
   * `removeStale` is false (while a host is starting: its file exists a moment before it listens).
   */
  async hello(removeStale = true): Promise<HelloResult | null> {
    try {
      return await requestHost<HelloResult>(this.socketPath, { op: 'hello' }, 2_000);
    } catch (err) {
      if (!(err instanceof HostGone)) throw err;
      if (removeStale) {
        try {
          unlinkSync(this.socketPath);
        } catch {
          // no file: nothing stale
        }
      }
      return null;
    }
  }

  async snapshot(lines = 50): Promise<SessionSnapshot> {
    try {
      const result = await requestHost<SnapshotResult>(this.socketPath, { op: 'snapshot', lines });
      return { exists: true, ...result, hash: sha256(result.screen) };
    } catch (err) {
      if (!(err instanceof HostGone)) throw err;
      return { exists: false, exited: null, screen: '', title: '', cwd: null, hash: sha256(''), lastOutputAt: null };
    }
  }

  async submit(text: string): Promise<void> {
    checkSubmitText(text);
    await this.send({ op: 'submit', text });
  }

  async interrupt(): Promise<void> {
    await this.send({ op: 'interrupt' });
  }

  async start(spec: StartSpec): Promise<void> {
    if (!statSync(spec.workdir, { throwIfNoEntry: false })?.isDirectory()) {
      throw new UsageError(`the session's working directory ${spec.workdir} is not a directory`);
    }
    const running = await this.hello();
    if (running && !running.exited && !spec.replace) {
      throw new Conflict(`session ${this.spec} is already running (pty host pid ${running.pid})`, {
        hint: 'stop it first',
      });
    }
    // An exited session, or one the caller asked to replace, gives way to a fresh host.
    if (running) await this.stop();
    const script = this.options.hostScript ?? locateHostScript();
    mkdirSync(this.options.runDir, { recursive: true, mode: 0o700 });
    const config = {
      command: spec.command,
      workdir: spec.workdir,
      socketPath: this.socketPath,
      logPath: this.logPath,
      ...(this.options.cols === undefined ? {} : { cols: this.options.cols }),
      ...(this.options.rows === undefined ? {} : { rows: this.options.rows }),
      ...(this.options.logMaxBytes === undefined ? {} : { logMaxBytes: this.options.logMaxBytes }),
    };
    const logFrom = statSync(this.logPath, { throwIfNoEntry: false })?.size ?? 0;
    const host = spawn(process.execPath, [script, JSON.stringify(config)], {
      detached: true,
      stdio: 'ignore',
      cwd: spec.workdir,
      env: { ...process.env, ...spec.env },
    });
    let failure: string | null = null;
    host.once('error', (err) => (failure = err.message));
    host.once('exit', (code, signal) => (failure = `it exited with ${signal ?? `code ${code}`}`));
    host.unref();
    for (const deadline = Date.now() + START_TIMEOUT_MS; Date.now() < deadline && failure === null; ) {
      if (await this.hello(false)) return;
      await sleep(POLL_MS);
    }
    // A host that never answered must not linger as an orphan with the agent in it: end its group.
    if (failure === null && host.pid !== undefined) {
      try {
        process.kill(-host.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    const why = hostReport(this.logPath, logFrom);
    throw new Unavailable(`the pty host for ${this.spec} did not start: ${failure ?? `no answer within ${START_TIMEOUT_MS} ms`}${why ? ` (${why})` : ''}`, {
      hint: `see ${this.logPath}`,
    });
  }

  async stop(): Promise<void> {
    const running = await this.hello();
    if (!running) return;
    try {
      await requestHost(this.socketPath, { op: 'stop' });
    } catch (err) {
      if (!(err instanceof HostGone)) throw err;
    }
    const deadline = Date.now() + STOP_TIMEOUT_MS;
    while ((isAlive(running.pid) || existsSync(this.socketPath)) && Date.now() < deadline) await sleep(POLL_MS);
    if (isAlive(running.pid)) {
      // The host did not end within its own grace: it is ours (it answered hello), so force it.
      process.kill(running.pid, 'SIGKILL');
      try {
        unlinkSync(this.socketPath);
      } catch {
        // the host removed it
      }
    }
  }

  private async send(body: { op: 'submit'; text: string } | { op: 'interrupt' }): Promise<void> {
    try {
      await requestHost(this.socketPath, body);
    } catch (err) {
      if (err instanceof HostGone) throw new Unavailable(`session ${this.spec} is not running`, { cause: err });
      throw err;
    }
  }
}
