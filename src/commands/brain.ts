import { type CommandSpec, lazy } from './define.js';

const load = () => import('./brain.run.js');
const markerArg = { name: 'marker', summary: 'text that marks a retired directive, e.g. "test quest" (case-insensitive)' } as const;
const OUTCOMES = ['executed', 'dry_run', 'rejected_schema', 'rejected_unsupported', 'skipped_stale', 'skipped_duplicate', 'skipped_unroutable', 'blocked_budget', 'gated', 'failed'] as const;

export const brainCommand: CommandSpec = {
  name: 'brain',
  summary: 'the coordinator: one guarded decision per cycle (run, status, cycles, wake) and its retired directive markers',
  group: 'Work',
  subcommands: [
    {
      name: 'run',
      summary: 'run one brain cycle now: perceive, ask the model, judge and act through the motor (admin)',
      options: [
        { flags: '--once', summary: 'one cycle, then exit (the loop itself runs in `sos daemon`)' },
        { flags: '--dry-run', summary: 'ask the model and show the motor verdict, execute nothing' },
        { flags: '--reason <text>', summary: 'why, told to the model as the trigger' },
      ],
      handler: lazy(load, 'run'),
      examples: ['sos brain run --once --dry-run', 'sos brain run --once --reason "the deploy failed"'],
    },
    {
      name: 'status',
      summary: 'the providers in order of routing, their circuit breakers, and the cycles so far',
      handler: lazy(load, 'status'),
    },
    {
      name: 'cycles',
      summary: "the brain's cycles, newest first: trigger, decision, outcome, reason, cost",
      options: [
        { flags: '--since <when>', summary: 'only cycles since this time (ISO date or 30m, 2h, 1d ago)' },
        { flags: '--outcome <outcome>', summary: 'only cycles with this outcome', choices: OUTCOMES },
        { flags: '--limit <n>', summary: 'at most n cycles (default 50)' },
        { flags: '--dry-runs', summary: 'include dry runs' },
      ],
      handler: lazy(load, 'cycles'),
    },
    {
      name: 'wake',
      summary: "wake the daemon's brain for a cycle now, without waiting for its debounce or timer (admin)",
      options: [{ flags: '--reason <text>', summary: 'why, told to the model as the trigger' }],
      handler: lazy(load, 'wake'),
      examples: ['sos brain wake --reason "new goal added"'],
    },
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
