import { type CommandSpec, lazy } from './define.js';

export const mcpCommand: CommandSpec = {
  name: 'mcp',
  summary: 'serve messages, tasks and memory as MCP tools over stdio (Claude Code, Codex, Gemini CLI)',
  group: 'Agents',
  options: [
    {
      flags: '--agent <name>',
      summary: 'the agent to serve as, in local trust (with a token: must be the token\'s agent)',
      complete: 'agents',
    },
  ],
  handler: lazy(() => import('./mcp.run.js'), 'mcp'),
  examples: ['claude mcp add sos -- sos mcp --agent kasra', 'SOS_TOKEN=… sos mcp'],
};
