import { type CommandSpec, lazy } from './define.js';

const load = () => import('./budgets.run.js');

const scopeArg = { name: 'scope', summary: 'project, squad:<name>, agent:<name> or task:<id>' } as const;

export const budgetsCommand: CommandSpec = {
  name: 'budgets',
  summary: 'spending limits per project, squad, agent or task, and what happens when one is spent',
  group: 'Work',
  subcommands: [
    {
      name: 'set',
      summary: 'create or replace the budget of a scope (admin)',
      args: [scopeArg],
      options: [
        { flags: '--limit <amount>', summary: 'dollars ($25, 0.5usd) or tokens (500000, 500k, 2m)' },
        { flags: '--period <period>', summary: 'day, week, month (UTC) or total', choices: ['day', 'week', 'month', 'total'] },
        {
          flags: '--action <action>',
          summary: 'when spent: warn, downgrade, pause, or block (claims in the scope are refused)',
          choices: ['warn', 'downgrade', 'pause', 'block'],
        },
        { flags: '--at <percent>', summary: 'warn at this share of the limit (default 80%)' },
      ],
      examples: ['sos budgets set project --limit $50 --period day --action block', 'sos budgets set agent:codex --limit 2m --period week --action warn --at 90%'],
      handler: lazy(load, 'set'),
    },
    { name: 'list', summary: 'every budget with its spend this period, what is left, and its state', handler: lazy(load, 'list') },
    { name: 'show', summary: 'one budget', args: [scopeArg], handler: lazy(load, 'show') },
    { name: 'remove', summary: 'remove the budget of a scope (admin)', args: [scopeArg], handler: lazy(load, 'remove') },
    {
      name: 'lift',
      summary: 'lift a spent budget for the rest of its period: claims resume and the agents its pause parked are unparked (admin)',
      args: [scopeArg],
      handler: lazy(load, 'lift'),
      examples: ['sos budgets lift squad:seo'],
    },
  ],
};
