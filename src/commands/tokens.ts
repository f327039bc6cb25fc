import { type CommandSpec, lazy } from './define.js';

const load = () => import('./tokens.run.js');

export const tokensCommand: CommandSpec = {
  name: 'tokens',
  summary: 'bearer tokens for agents: create (shown once), list, revoke',
  group: 'Identity',
  subcommands: [
    {
      name: 'create',
      summary: 'create a token for an agent; prints the secret once',
      options: [
        { flags: '--agent <name>', summary: 'the agent the token speaks for (required)', complete: 'agents' },
        {
          flags: '--role <role>',
          summary: 'agent (default), admin or observer',
          choices: ['agent', 'admin', 'observer'],
        },
      ],
      handler: lazy(load, 'create'),
      examples: [
        'sos tokens create --agent kasra',
        'export SOS_TOKEN=$(sos tokens create --agent kasra --quiet)',
      ],
    },
    { name: 'list', summary: 'list tokens of the project (never the secrets)', handler: lazy(load, 'list') },
    {
      name: 'revoke',
      summary: 'revoke a token by id or prefix',
      args: [{ name: 'token', summary: 'token id (tok_…) or the prefix shown by `sos tokens list`' }],
      handler: lazy(load, 'revoke'),
    },
  ],
};
