import { type CommandSpec, lazy } from './define.js';

export const configCommand: CommandSpec = {
  name: 'config',
  summary: 'print the resolved configuration and where each value came from',
  group: 'Setup',
  handler: lazy(() => import('./config.run.js'), 'config'),
};
