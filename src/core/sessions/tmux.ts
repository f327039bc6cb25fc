import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { statSync } from 'node:fs';
import { constants } from 'node:os';
import { Conflict, NotFound, OperationFailed, Unavailable, UsageError } from '../errors.js';
import type { ExitStatus, SessionDriver, SessionSnapshot, StartSpec } from './port.js';
import { ControlLost, runControl } from './tmux-control.js';

/**
 * The tmux session driver: `tmux:<session>[:<window>.<pane>]`, on the default server or the one
 * at `-S <socket>`. tmux is always run with an argument vector, never through a shell; the only
 * text a shell ever sees is the operator's start command.
 *
 * A pane whose process ended stays visible as a dead pane (`remain-on-exit on`, set by `start`),
 * so an exit reads as `exists: true, exited: {code, signal}` until the session is stopped.
 *
 * Reading a pane and typing into it (capture-pane, display-message, has-session, send-keys) go
 * through the server's control-mode client when one is enabled and ready (tmux-control.ts: no
 * process spawned per command); otherwise, and for everything else, tmux is spawned.
 */

const TMUX_TIMEOUT_MS = 10_000;
const DEFAULT_LINES = 50;
const MAX_LINES = 10_000;
const FIELD = '\u001f';
const END = '\u001e';
const PANE_FORMAT = [
  '#{pane_id}',
  '#{pane_dead}',
  '#{pane_dead_status}',
  '#{pane_dead_signal}',
  '#{window_activity}',
  '#{pane_current_path}',
  '#{pane_title}',
].join(FIELD) + END;

/** Session names tmux keeps as given (no `:`, `.`, and no `#`, which `-s` expands as a format). */
const SESSION_NAME = /^[A-Za-z0-9_][A-Za-z0-9_@+-]*$/;
/** A window (index or name) and an optional pane (index or `%id`). */
const WINDOW_PANE = /^[A-Za-z0-9_@+-]+(\.%?[0-9]+)?$/;

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * tmux answers for a server, session, window or pane that is not there ("no current target"
 * comes from a server shutting down after its last session ended).
 */
const GONE =
  /no server running|no current target|can't find (session|window|pane)|session not found|no such (session|window|pane)|error connecting to .*\((No such file or directory|Connection refused)\)|server exited unexpectedly|lost server/i;

// `sh -c` alone is not enough: dash (Debian's sh) keeps itself as the parent of the last command
// and dies of the terminal's SIGINT even when the agent handles it, which would end the pane on
// interrupt(). A caught (not ignored) SIGINT keeps sh alive and is reset to default in the command.
const START_WRAPPER = ['sh', '-c', 'trap : INT; eval "$1"', 'sh'];
// The pane exists running this until the start command replaces it, so remain-on-exit is set
// before the command can exit (tmux has no way to set a pane option at creation).
const PLACEHOLDER = ['cat', '-'];

const SIGNAL_NAMES = new Map<number, string>(Object.entries(constants.signals).map(([name, n]) => [n, name]));

interface TmuxResult {
  ok: boolean;
  stdout: string;
  stderr: string;
}

type PaneState = 'alive' | 'dead' | 'no-pane' | 'gone';

interface PaneReading {
  exited: ExitStatus | null;
  cwd: string | null;
  title: string;
  lastOutputAt: number | null;
}

const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex');

/**
 * tmux ends a command at any argument ending in `;` (a literal one must be written `\;`), so text
 * from outside gets its final `;` escaped before it becomes an argument.
 */
function arg(value: string): string {
  return value.endsWith(';') ? `${value.slice(0, -1)}\\;` : value;
}

/** `-c` is expanded as a tmux format: `#` must be doubled to stay literal. */
function literalFormat(value: string): string {
  return arg(value.replace(/#/g, '##'));
}

function checkSubmitText(text: string): void {
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u0008\u000a-\u001f\u007f-\u009f]/.test(text)) {
    throw new UsageError('submit takes one line of text without control characters (tab is allowed)', {
      hint: 'send one line at a time',
    });
  }
}

function parseReading(line: string): { paneId: string; dead: boolean; reading: PaneReading } | null {
  const [paneId = '', dead = '', status = '', signal = '', activity = '', cwd = '', ...title] = line.split(FIELD);
  if (paneId === '') return null;
  const code = status === '' ? null : Number(status);
  const signalNumber = signal === '' ? null : Number(signal);
  const signalName = signalNumber === null ? null : (SIGNAL_NAMES.get(signalNumber) ?? `SIG${signalNumber}`);
  const seconds = Number(activity);
  return {
    paneId,
    dead: dead === '1',
    reading: {
      exited: dead === '1' ? { code, signal: signalName } : null,
      cwd: cwd === '' ? null : cwd,
      title: title.join(FIELD),
      lastOutputAt: activity !== '' && Number.isFinite(seconds) ? seconds * 1000 : null,
    },
  };
}

export class TmuxDriver implements SessionDriver {
  readonly type = 'tmux' as const;
  readonly spec: string;
  private readonly socket: string | null;
  private readonly session: string;
  /** Whether the target names a window/pane rather than the whole session. */
  private readonly paneTarget: boolean;
  /** The tmux `-t` value; `=` asks for the exact session name (tmux otherwise matches a prefix). */
  private readonly target: string;

  constructor(target: string, options: { socket?: string | null }) {
    const colon = target.indexOf(':');
    const session = colon === -1 ? target : target.slice(0, colon);
    const windowPane = colon === -1 ? '' : target.slice(colon + 1);
    if (!SESSION_NAME.test(session) || (windowPane !== '' && !WINDOW_PANE.test(windowPane))) {
      throw new UsageError(`invalid tmux session ${JSON.stringify(target)}`, {
        hint: 'use tmux:<session>[:<window>.<pane>] with letters, digits, _ @ + - in the session name',
      });
    }
    this.spec = `tmux:${target}`;
    this.socket = options.socket ?? null;
    this.session = session;
    this.paneTarget = windowPane !== '';
    this.target = `=${session}:${windowPane}`;
  }

  async exists(): Promise<boolean> {
    if (!this.paneTarget) {
      return this.expect(await this.command([['has-session', '-t', `=${this.session}`]], 'read'), 'has-session');
    }
    // display-message does not fail for a missing pane (it falls back to another one), and
    // capture-pane does: one line of it is the cheapest check that the pane itself exists.
    return this.expect(await this.command([['capture-pane', '-p', '-t', this.target, '-S', '0', '-E', '0']], 'read'), 'capture-pane');
  }

  async snapshot(lines: number = DEFAULT_LINES): Promise<SessionSnapshot> {
    if (!Number.isInteger(lines) || lines < 1 || lines > MAX_LINES) {
      throw new UsageError(`snapshot lines must be a whole number from 1 to ${MAX_LINES}, not ${lines}`);
    }
    // One invocation: both readings come from one server turn, and because capture-pane fails
    // on a missing target the whole call fails, where display-message alone would not.
    const capture = ['capture-pane', '-p', '-J', '-t', this.target, '-S', `-${lines}`];
    const result = await this.command([['display-message', '-p', '-t', this.target, PANE_FORMAT], capture], 'read');
    if (!this.expect(result, 'capture-pane')) return TmuxDriver.absent();
    const end = result.stdout.indexOf(`${END}\n`);
    const parsed = end === -1 ? null : parseReading(result.stdout.slice(0, end));
    if (!parsed) return TmuxDriver.absent();
    let reading = parsed.reading;
    if (reading.exited && reading.exited.code === null && reading.exited.signal === null) {
      reading = (await this.collectExitStatus()) ?? reading;
    }
    const screenLines = result.stdout.slice(end + END.length + 1).split('\n');
    while (screenLines.length > 0 && screenLines[screenLines.length - 1]!.trim() === '') screenLines.pop();
    const screen = screenLines.slice(-lines).join('\n');
    return { exists: true, screen, hash: sha256(screen), ...reading };
  }

  async submit(text: string): Promise<void> {
    checkSubmitText(text);
    await this.requireRunning('type into');
    // -l sends the text as literal keys (no key names); Enter goes separately so agent TUIs see a
    // keypress, not a pasted newline.
    if (text !== '') await this.keys(['-l', '--', text]);
    await this.keys(['Enter']);
  }

  async interrupt(): Promise<void> {
    await this.requireRunning('interrupt');
    await this.keys(['C-c']);
  }

  async start(spec: StartSpec): Promise<void> {
    if (!statSync(spec.workdir, { throwIfNoEntry: false })?.isDirectory()) {
      throw new UsageError(`the workdir ${spec.workdir} is not a directory`);
    }
    const bad = Object.keys(spec.env).find((key) => !ENV_NAME.test(key));
    if (bad !== undefined) throw new UsageError(`invalid environment variable name ${JSON.stringify(bad)}`);
    const state = await this.paneState();
    if (state === 'alive' && !spec.replace) {
      throw new Conflict(`${this.spec} is already running`, { hint: 'stop it first, or restart it' });
    }
    if (state === 'no-pane') {
      throw new NotFound(`${this.spec}: tmux session ${this.session} has no such window or pane`, {
        hint: `sos creates whole sessions only: use tmux:${this.session}, or create the pane first`,
      });
    }
    const created = state === 'gone';
    if (created) await this.createSession(spec.workdir);

    const env = Object.entries(spec.env).flatMap(([key, value]) => ['-e', arg(`${key}=${value}`)]);
    try {
      // One invocation, so nothing the new process prints is processed before all three ran; the
      // history is cleared so a restarted agent's screen never shows the last run's crash.
      const result = await this.tmux([
        ...['set-option', '-p', '-t', this.target, 'remain-on-exit', 'on', ';'],
        ...['clear-history', '-t', this.target, ';'],
        ...['respawn-pane', '-k', '-t', this.target, '-c', literalFormat(spec.workdir), ...env],
        ...START_WRAPPER,
        arg(spec.command),
      ]);
      if (!this.expect(result, 'respawn-pane')) {
        throw new Unavailable(`${this.spec} went away while it was being started`, { hint: 'try again' });
      }
    } catch (err) {
      // A session created here that never got its command would only hold the placeholder.
      if (created) await this.tmux(['kill-session', '-t', `=${this.session}`]).catch(() => undefined);
      throw err;
    }
  }

  async stop(): Promise<void> {
    // A pane target ends only that pane: the rest of the operator's session is not ours to close.
    const args = this.paneTarget ? ['kill-pane', '-t', this.target] : ['kill-session', '-t', `=${this.session}`];
    this.expect(await this.tmux(args), args[0]!);
  }

  private static absent(): SessionSnapshot {
    return { exists: false, exited: null, screen: '', title: '', cwd: null, hash: sha256(''), lastOutputAt: null };
  }

  private async createSession(workdir: string): Promise<void> {
    const result = await this.tmux([
      ...['new-session', '-d', '-s', this.session, '-x', '200', '-y', '50', '-c', literalFormat(workdir)],
      ...PLACEHOLDER,
    ]);
    if (!result.ok) {
      if (/duplicate session/.test(result.stderr)) {
        throw new Conflict(`${this.spec} was created by someone else at the same time`, { hint: 'try again' });
      }
      throw new OperationFailed(`tmux new-session failed: ${result.stderr.trim()}`);
    }
    if (this.paneTarget && (await this.paneState()) !== 'alive') {
      await this.tmux(['kill-session', '-t', `=${this.session}`]);
      throw new UsageError(`${this.spec}: a new tmux session has only its first window and pane`, {
        hint: `use tmux:${this.session} for a session that sos creates`,
      });
    }
  }

  /** Whether the target exists and whether its process still runs. */
  private async paneState(): Promise<PaneState> {
    const probe = ['capture-pane', '-p', '-t', this.target, '-S', '0', '-E', '0'];
    const result = await this.command([['display-message', '-p', '-t', this.target, PANE_FORMAT], probe], 'read');
    if (this.expect(result, 'capture-pane')) {
      const parsed = parseReading(result.stdout.slice(0, Math.max(0, result.stdout.indexOf(END))));
      if (parsed) return parsed.dead ? 'dead' : 'alive';
    }
    if (!this.paneTarget) return 'gone';
    return this.expect(await this.command([['has-session', '-t', `=${this.session}`]], 'read'), 'has-session') ? 'no-pane' : 'gone';
  }

  private async requireRunning(action: string): Promise<void> {
    const state = await this.paneState();
    if (state === 'alive') return;
    if (state === 'dead') {
      throw new Unavailable(`cannot ${action} ${this.spec}: its process has exited`, { hint: 'restart the agent' });
    }
    throw new Unavailable(`cannot ${action} ${this.spec}: the tmux session does not exist`, {
      hint: 'start the agent first, or check its session and tmux socket',
    });
  }

  private async keys(keys: string[]): Promise<void> {
    const result = await this.command([['send-keys', '-t', this.target, ...keys]], 'write');
    if (!this.expect(result, 'send-keys')) {
      throw new Unavailable(`${this.spec} went away while keys were being sent`, { hint: 'check the agent and restart it' });
    }
  }

  /**
   * tmux 3.3 sometimes misses the SIGCHLD of a pane respawned after it had died: the pane reads
   * dead with no status, its process left a zombie. The exit of any other child of the server
   * makes it reap them all, so run a no-op job and read the pane again.
   */
  private async collectExitStatus(): Promise<PaneReading | null> {
    if (!(await this.tmux(['run-shell', 'true'])).ok) return null;
    const result = await this.tmux(['display-message', '-p', '-t', this.target, PANE_FORMAT]);
    if (!result.ok) return null;
    const parsed = parseReading(result.stdout.slice(0, Math.max(0, result.stdout.indexOf(END))));
    return parsed?.dead ? parsed.reading : null;
  }

  /** True on success, false when the server, session or target is gone; throws on anything else. */
  private expect(result: TmuxResult, command: string): boolean {
    if (result.ok) return true;
    if (GONE.test(result.stderr)) return false;
    throw new OperationFailed(`tmux ${command} failed: ${result.stderr.trim() || 'no message'}`, {
      ...(this.socket ? { hint: `check the tmux socket ${this.socket}` } : {}),
    });
  }

  /**
   * Runs commands given as literal argument vectors: on the control client when it is ready,
   * else by spawning tmux (each value escaped for tmux's argument parsing). A read whose client
   * went away mid-reply is read again by spawning; keys whose client went away may have been
   * typed, so they fail (Unavailable) rather than risk being typed twice.
   */
  private async command(commands: string[][], kind: 'read' | 'write'): Promise<TmuxResult> {
    const control = runControl(this.socket, commands);
    if (control) {
      try {
        return await control;
      } catch (err) {
        if (!(err instanceof ControlLost)) throw err;
        if (kind === 'write') {
          throw new Unavailable(`${this.spec}: tmux went away while keys were being sent (${err.message})`, {
            hint: 'check the agent and restart it',
            cause: err,
          });
        }
      }
    }
    return this.tmux(commands.flatMap((c, i) => [...(i > 0 ? [';'] : []), ...c.map(arg)]));
  }

  private tmux(args: string[]): Promise<TmuxResult> {
    const argv = [...(this.socket ? ['-S', this.socket] : []), ...args];
    return new Promise((resolve, reject) => {
      execFile('tmux', argv, { timeout: TMUX_TIMEOUT_MS, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
        if (!err) return resolve({ ok: true, stdout, stderr });
        const e = err as NodeJS.ErrnoException & { killed?: boolean };
        if (e.code === 'ENOENT') {
          return reject(new Unavailable('tmux is not installed (or not on PATH)', { hint: 'install tmux', cause: err }));
        }
        if (e.killed) {
          return reject(new Unavailable(`tmux did not answer within ${TMUX_TIMEOUT_MS / 1000}s`, { cause: err }));
        }
        resolve({ ok: false, stdout, stderr });
      });
    });
  }
}
