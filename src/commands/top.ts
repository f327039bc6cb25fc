import { type CommandSpec, lazy } from './define.js';

export const topCommand: CommandSpec = {
  name: 'top',
  summary: 'the live terminal view: problems first, then agents, queues, spend and activity',
  group: 'Agents',
  options: [
    { flags: '--interval <ms>', summary: 'refresh at least this often, in milliseconds (default 1000); events refresh at once' },
    { flags: '--squad <name>', summary: 'only this squad: its members, its queue, its ready tasks and their events' },
    { flags: '--agent <name>', summary: 'only this agent: its row, its spend, its acks and its events' },
    { flags: '--once', summary: 'print the view once (80 columns unless the terminal says otherwise) and exit' },
  ],
  handler: lazy(() => import('./top.run.js'), 'top'),
  examples: ['sos top', 'sos top --squad ops', 'sos top --agent kasra', 'sos top --interval 500', 'sos top --once --json'],
};
