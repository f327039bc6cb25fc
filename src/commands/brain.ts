import { type CommandSpec, lazy } from './define.js';

const load = () => import('./brain.run.js');
const markerArg = { name: 'marker', summary: 'text that marks a retired directive, e.g. "test quest" (case-insensitive)' } as const;

export const brainCommand: CommandSpec = {
  name: 'brain',
  summary: "the coordinator's guards: retired directive markers (the rest of the brain is not built yet)",
  group: 'Work',
  subcommands: [
    {
      name: 'retire',
      summary: 'retire a directive marker: proposals that mention it are skipped as stale (admin)',
      args: [markerArg],
      handler: lazy(load, 'retire'),
      examples: ['sos brain retire "migration quest"'],
    },
    { name: 'unretire', summary: "remove one of the project's own retired markers (admin)", args: [markerArg], handler: lazy(load, 'unretire') },
    { name: 'retired', summary: 'the retired markers in force: built-in ones and the project’s own', handler: lazy(load, 'retired') },
  ],
};
