import { type CommandSpec, lazy } from './define.js';

export const auditCommand: CommandSpec = {
  name: 'audit',
  summary: "the daemon's HTTP audit log: every mutating request, who, what, when, outcome (admin)",
  group: 'Agents',
  options: [
    { flags: '--since <when>', summary: 'a duration ago (1h) or a date-time (default: all)' },
    { flags: '--action <name>', summary: 'only this action (e.g. mcp.send, tasks.claim)' },
    { flags: '--limit <n>', summary: 'at most n rows, newest first (default 100)' },
  ],
  handler: lazy(() => import('./audit.run.js'), 'run'),
  examples: ['sos audit --since 1h', 'sos audit --action mcp.task_claim --json'],
};
