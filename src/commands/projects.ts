import { type CommandSpec, lazy } from './define.js';

const load = () => import('./projects.run.js');

export const projectsCommand: CommandSpec = {
  name: 'projects',
  summary: 'create and list projects (tenant namespaces)',
  group: 'Identity',
  subcommands: [
    {
      name: 'create',
      summary: 'create a project (local operator only)',
      args: [{ name: 'slug', summary: 'project name: [a-z][a-z0-9-]{0,39}' }],
      handler: lazy(load, 'create'),
    },
    { name: 'list', summary: 'list projects', handler: lazy(load, 'list') },
  ],
};
