import { type CommandSpec, lazy } from './define.js';

const load = () => import('./init.run.js');

export const initCommand: CommandSpec = {
  name: 'init',
  summary: 'create the data directory, the database and the project (default: "default")',
  group: 'Setup',
  handler: lazy(load, 'init'),
  examples: ['sos init', 'sos init --project acme', 'sos init --db postgres://postgres@127.0.0.1/sos'],
};

export const migrateCommand: CommandSpec = {
  name: 'migrate',
  summary: 'apply pending database migrations (safe to run twice, or from two processes)',
  group: 'Setup',
  options: [{ flags: '--status', summary: 'show applied and pending migrations, change nothing' }],
  handler: lazy(load, 'migrate'),
};
