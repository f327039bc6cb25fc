import { type CommandSpec, lazy } from './define.js';

/**
 * Claude Code runs its `statusLine` command with a JSON description of the session on standard
 * input (model, workspace, cost and, on a subscription, `rate_limits.five_hour` / `seven_day`).
 */
export const statuslineCommand: CommandSpec = {
  name: 'statusline',
  summary: "Claude Code's status line: stores the plan's rate limits it is handed on stdin, prints agent, task, quota and spend",
  group: 'Work',
  handler: lazy(() => import('./windows.run.js'), 'statusline'),
  examples: [
    'in ~/.claude/settings.json: "statusLine": {"type": "command", "command": "sos statusline"}',
    'echo \'{"model":{"id":"claude-opus-4-5"},"workspace":{"current_dir":"/srv/app"}}\' | sos statusline',
  ],
};
