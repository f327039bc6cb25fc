import { type CommandSpec, lazy } from './define.js';

export const whoamiCommand: CommandSpec = {
  name: 'whoami',
  summary: 'show who sos thinks is calling: project, agent, role, and how',
  group: 'Identity',
  handler: lazy(() => import('./whoami.run.js'), 'whoami'),
};
