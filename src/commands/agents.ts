import { type CommandSpec, lazy } from './define.js';

const load = () => import('./agents.run.js');

export const agentsCommand: CommandSpec = {
  name: 'agents',
  summary: 'register, list, show and remove agents',
  group: 'Identity',
  subcommands: [
    {
      name: 'add',
      summary: 'register an agent in the project',
      args: [{ name: 'name', summary: 'agent name: [a-z][a-z0-9-]{0,39}' }],
      options: [
        {
          flags: '--kind <kind>',
          summary: 'vendor or kind (default: custom)',
          choices: ['claude', 'codex', 'gemini', 'shell', 'custom'],
        },
        {
          flags: '--role <role>',
          summary: 'role (default: worker)',
          choices: ['coordinator', 'worker', 'specialist'],
        },
        {
          flags: '--cap <tag>',
          summary: 'capability tag, repeatable (code, seo, model:opus…)',
          repeatable: true,
        },
        {
          flags: '--session <spec>',
          summary: 'where it runs: tmux:<session>[:<window>.<pane>] or pty:<command>',
        },
      ],
      handler: lazy(load, 'add'),
      examples: ['sos agents add kasra --kind claude --role coordinator --cap code --session tmux:kasra'],
    },
    { name: 'list', summary: 'list agents of the project', handler: lazy(load, 'list') },
    {
      name: 'show',
      summary: 'show one agent and its squads',
      args: [{ name: 'name', summary: 'agent name', complete: 'agents' }],
      handler: lazy(load, 'show'),
    },
    {
      name: 'remove',
      summary: 'remove an agent (its tokens and memberships go with it)',
      args: [{ name: 'name', summary: 'agent name', complete: 'agents' }],
      handler: lazy(load, 'remove'),
    },
  ],
};
