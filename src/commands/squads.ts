import { type CommandSpec, lazy } from './define.js';

const load = () => import('./squads.run.js');

const agentOption = {
  flags: '--agent <name>',
  summary: 'the agent (default: the caller)',
  complete: 'agents',
} as const;
const squadArg = { name: 'squad', summary: 'squad name', complete: 'squads' } as const;

export const squadsCommand: CommandSpec = {
  name: 'squads',
  summary: 'groups of agents: create, list, show, join, leave',
  group: 'Identity',
  subcommands: [
    {
      name: 'create',
      summary: 'create a squad',
      args: [{ name: 'name', summary: 'squad name: [a-z][a-z0-9-]{0,39}' }],
      options: [{ flags: '--description <text>', summary: 'what the squad is for' }],
      handler: lazy(load, 'create'),
    },
    { name: 'list', summary: 'list squads with their members', handler: lazy(load, 'list') },
    { name: 'show', summary: 'show a squad', args: [squadArg], handler: lazy(load, 'show') },
    {
      name: 'join',
      summary: 'add an agent to a squad',
      args: [squadArg],
      options: [agentOption],
      handler: lazy(load, 'join'),
    },
    {
      name: 'leave',
      summary: 'remove an agent from a squad',
      args: [squadArg],
      options: [agentOption],
      handler: lazy(load, 'leave'),
    },
  ],
};
