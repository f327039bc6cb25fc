/**
 * Ephemeral workers (issue 18): `sos worker` claims ready tasks for one agent and runs each in its
 * own git worktree with an agent CLI, then tears the worktree down.
 *
 * Glossary:
 * - executor: how a task is run: an agent CLI (`claude`, `codex`, `gemini`) given the task as
 *   its prompt, or `shell`, the task's own command (an argument vector), gated by governance.
 * - worktree: `git worktree add` of the worker's repository on the branch `sos/<task id>`,
 *   under `<data dir>/worktrees/<project>/<task id>`; the branch outlives the worktree.
 * - sidecar: `<task id>.json` next to the worktree: the worker's pid, the fence, the CLI's pid.
 *   A restarted worker reads it to tell a dead run (its worktree is removed, its task failed
 *   retryable) from a live one (left alone).
 * - worker spec: an optional fenced block in the task's description, ```` ```sos-worker ````,
 *   holding JSON `{ "base": "<ref>", "command": ["argv", …] }`: the base ref of the branch and,
 *   for the shell executor, the command.
 * - run outcome: how the CLI ended: `exited` (with its code), `timeout` (`--task-timeout`),
 *   `lease_lost` (a heartbeat was refused), `budget` (a spent `block`/`pause` budget now covers
 *   the task) or `stopped` (the worker was told to stop and its drain bound ran out).
 */

export const EXECUTORS = ['claude', 'codex', 'gemini', 'shell'] as const;
export type ExecutorName = (typeof EXECUTORS)[number];

export type RunEnd = 'exited' | 'timeout' | 'lease_lost' | 'budget' | 'stopped' | 'spawn_failed';

/** One worker log line: an event name and its fields (the CLI prints it on stderr). */
export type WorkerLog = (event: Record<string, unknown>) => void;

export interface WorkerOptions {
  agent: string;
  /** Absolute path of the repository the worktrees are made from. */
  repo: string;
  executor: ExecutorName;
  /** The executor's program: a path or a name on PATH (default: the executor's own name). */
  program?: string;
  /** Extra arguments appended to the CLI's argument vector (not used by `shell`). */
  cliArgs: string[];
  concurrency: number;
  squad?: string;
  /** Claim until nothing is ready, finish what runs, then return. */
  once: boolean;
  keepWorktrees: boolean;
  taskTimeoutMs: number;
  /** How long a stop waits for running tasks before it kills them. */
  drainMs: number;
  /** `<data dir>/worktrees/<project>`. */
  worktreeRoot: string;
  /** The environment the CLI starts from (SOS_TOKEN, SOS_PROJECT, SOS_AGENT are set on top). */
  env: NodeJS.ProcessEnv;
  /** The agent's token, given to the CLI as SOS_TOKEN so it can use the bus, memory and tasks. */
  token?: string;
  /** An MCP server command for Claude Code (`sos mcp`), written as its `--mcp-config`. */
  mcp?: { command: string; args: string[] };
  log: WorkerLog;
}

/** What one task's run came to, for the log, the report of `--once` and the benchmark. */
export interface TaskReport {
  task: string;
  status: 'done' | 'failed' | 'retrying' | 'lost' | 'refused';
  end: RunEnd | 'refused';
  exitCode: number | null;
  branch: string;
  commits: string[];
  error: string | null;
  /** Milliseconds: worktree and context before the CLI, the CLI itself, and everything after it. */
  setupMs: number;
  cliMs: number;
  teardownMs: number;
}
