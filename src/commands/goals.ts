import { type CommandSpec, lazy } from './define.js';

const load = () => import('./goals.run.js');
const idArg = { name: 'id', summary: 'goal id (gol_…)' } as const;

export const goalsCommand: CommandSpec = {
  name: 'goals',
  summary: 'what the brain works toward: add, list, show, done, drop',
  group: 'Work',
  subcommands: [
    {
      name: 'add',
      summary: 'add an open goal (admin)',
      args: [{ name: 'text', summary: 'the goal, in a sentence' }],
      options: [{ flags: '--priority <p>', summary: 'critical, high, normal (default), low or 0-100' }],
      handler: lazy(load, 'add'),
      examples: ['sos goals add "ship the billing page" --priority high'],
    },
    { name: 'list', summary: 'open goals by priority', options: [{ flags: '--all', summary: 'done and dropped ones too' }], handler: lazy(load, 'list') },
    { name: 'show', summary: 'one goal', args: [idArg], handler: lazy(load, 'show') },
    { name: 'done', summary: 'mark a goal done (admin)', args: [idArg], handler: lazy(load, 'done') },
    { name: 'drop', summary: 'drop a goal: no longer wanted (admin)', args: [idArg], handler: lazy(load, 'drop') },
  ],
};
