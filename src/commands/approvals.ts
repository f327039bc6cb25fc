import { type CommandSpec, lazy } from './define.js';

const load = () => import('./approvals.run.js');
const noteOption = { flags: '--note <text>', summary: 'why, recorded with the vote' } as const;
const STATUSES = ['pending', 'approved', 'denied', 'executed', 'failed', 'skipped'] as const;

export const approvalsCommand: CommandSpec = {
  name: 'approvals',
  summary: "the brain's gated proposals: list, show, approve (executes once), deny",
  group: 'Work',
  subcommands: [
    {
      name: 'list',
      summary: 'pending approvals, oldest first',
      options: [
        { flags: '--status <status>', summary: 'only this status', choices: STATUSES },
        { flags: '--all', summary: 'every status' },
      ],
      handler: lazy(load, 'list'),
    },
    { name: 'show', summary: 'one approval: the proposal, its votes and how it ended', args: [{ name: 'id', summary: 'approval id (apr_…)' }], handler: lazy(load, 'show') },
    {
      name: 'approve',
      summary: 'approve a gated proposal; the deciding approve re-checks and executes it once (admin)',
      args: [{ name: 'id', summary: 'approval id (apr_…); omit with --all', required: false }],
      options: [noteOption, { flags: '--all', summary: 'approve every pending batch_approve item' }],
      handler: lazy(load, 'approve'),
      examples: ['sos approvals approve apr_01j… --note "ok to post"', 'sos approvals approve --all'],
    },
    {
      name: 'deny',
      summary: 'deny a gated proposal: it never executes (admin)',
      args: [{ name: 'id', summary: 'approval id (apr_…)' }],
      options: [noteOption],
      handler: lazy(load, 'deny'),
    },
  ],
};
