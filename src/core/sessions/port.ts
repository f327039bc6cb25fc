/**
 * The session port: where an agent's process runs and what `sos` can see and do there.
 *
 * Glossary:
 * - session: a tmux pane (`tmux:<session>[:<window>.<pane>]`) or a pseudo-terminal that a `sos`
 *   pty host owns (`pty:<command>`);
 * - snapshot: what the driver sees now — does the session exist, did its process exit and how,
 *   the last screen lines, the terminal title, the current directory and when output last came;
 * - submit: type a line literally, then press Enter as a separate key (agent TUIs treat a pasted
 *   newline as part of the text).
 *
 * Drivers never pass text through a shell: tmux is run with an argument vector, the pty host is
 * spoken to over a local socket.
 */

export type SessionDriverType = 'tmux' | 'pty';

export interface ExitStatus {
  code: number | null;
  signal: string | null;
}

export interface SessionSnapshot {
  exists: boolean;
  /** Set when the session still exists but the process in it has ended (tmux dead pane, pty exit). */
  exited: ExitStatus | null;
  /** The last screen lines as plain text (escape sequences rendered or removed), joined by `\n`. */
  screen: string;
  /** The terminal title (`#{pane_title}`, or the last OSC 0/2 title a pty program set). */
  title: string;
  /** The current directory of the pane's process, when the driver can tell. */
  cwd: string | null;
  /** SHA-256 (hex) of `screen`: equal hashes mean nothing on screen changed. */
  hash: string;
  /** Epoch ms of the last output the driver knows of, or null when it cannot tell. */
  lastOutputAt: number | null;
}

export interface StartSpec {
  /** The agent's start command, run by `sh -c` inside the session (the operator wrote it). */
  command: string;
  workdir: string;
  /** Added to the environment of the started process (e.g. SOS_TOKEN, SOS_AGENT). */
  env: Record<string, string>;
  /**
   * Replace whatever runs in the session instead of refusing (a restart): tmux respawns the pane
   * (`respawn-pane -k`, the rest of the tmux session untouched), pty stops its host's child first.
   */
  replace?: boolean;
}

export interface SessionDriver {
  readonly type: SessionDriverType;
  /** The session as the operator wrote it, e.g. `tmux:work:0.1` or `pty:claude`. */
  readonly spec: string;
  exists(): Promise<boolean>;
  /** `lines`: how many of the last screen lines to return (default 50). */
  snapshot(lines?: number): Promise<SessionSnapshot>;
  /** Types `text` literally, then Enter as a separate key. Throws Unavailable if the session is gone. */
  submit(text: string): Promise<void>;
  /** Sends an interrupt (Ctrl-C). */
  interrupt(): Promise<void>;
  /** Creates the session and runs the start command in it. Conflict if it already exists and runs, unless `replace`. */
  start(spec: StartSpec): Promise<void>;
  /** Ends the session and its process. Idempotent. */
  stop(): Promise<void>;
}

export interface DriverOptions {
  /** tmux: `-S <path>` socket (the agent's `--tmux-socket`). */
  tmuxSocket?: string | null;
  /** pty: directory holding the pty hosts' sockets and logs (default `<SOS_DATA_DIR>/sessions`). */
  runDir?: string;
  /** pty: names the host's socket and log (`<project>.<agent>`). */
  owner?: { project: string; agent: string };
}
