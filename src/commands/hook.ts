import { type CommandSpec, lazy } from './define.js';

export const hookCommand: CommandSpec = {
  name: 'hook',
  summary: 'report a lifecycle event from the agent’s own hooks (Claude Code hooks, Codex notify)',
  group: 'Agents',
  args: [{ name: 'event', summary: 'SessionStart, Stop, PreCompact, Notification, UserPromptSubmit, SessionEnd… or Codex notify JSON' }],
  options: [{ flags: '--agent <name>', summary: 'whose event (default: the caller)', complete: 'agents' }],
  handler: lazy(() => import('./lifecycle.run.js'), 'hook'),
  examples: ['sos hook Stop', 'sos hook PreCompact --agent kasra'],
};
