import { type CommandSpec, lazy } from './define.js';

export const doctorCommand: CommandSpec = {
  name: 'doctor',
  summary: 'check Node, the database and its migrations, Redis, PostgreSQL/pgvector and tmux',
  group: 'Setup',
  handler: lazy(() => import('./doctor.run.js'), 'doctor'),
};
