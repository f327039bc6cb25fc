import { type CommandSpec, lazy } from './define.js';

const load = () => import('./worker.run.js');

export const workerCommand: CommandSpec = {
  name: 'worker',
  summary: 'run an agent’s ready tasks with Claude Code, Codex, Gemini or a gated shell, each in its own git worktree',
  group: 'Work',
  options: [
    { flags: '--agent <name>', summary: 'the agent whose tasks are claimed (its token, or local operator access)', complete: 'agents' },
    { flags: '--repo <path>', summary: 'the git repository the worktrees are made from', complete: 'files' },
    { flags: '--exec <executor>', summary: 'claude (default), codex, gemini, or shell (the task’s approved command)', choices: ['claude', 'codex', 'gemini', 'shell'] },
    { flags: '--program <path>', summary: 'the executor’s program (default: its name on PATH)', complete: 'files' },
    { flags: '--cli-arg <arg>', summary: 'an extra argument for the CLI, repeatable', repeatable: true },
    { flags: '--concurrency <n>', summary: 'tasks run at once (default 1)' },
    { flags: '--squad <name>', summary: 'claim only this squad’s tasks', complete: 'squads' },
    { flags: '--once', summary: 'run until nothing is ready, then exit' },
    { flags: '--keep-worktrees', summary: 'leave each worktree in place after its task (branches are always kept)' },
    { flags: '--task-timeout <duration>', summary: 'kill a run after this long and fail its task retryable (default 30m)' },
    { flags: '--drain <duration>', summary: 'on SIGTERM, how long running tasks may finish before they are killed (default 30s)' },
  ],
  handler: lazy(load, 'run'),
  examples: [
    'sos worker --agent kasra --repo . --concurrency 3',
    'sos worker --agent ops --repo ~/src/site --exec shell --once',
  ],
};
