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
      options: [{ flags: '--redis-acl', summary: 'also create a Redis user confined to this project (prints its password once)' }],
      handler: lazy(load, 'create'),
    },
    {
      name: 'acl',
      summary: "create or reset the project's Redis ACL user (prints its password once)",
      args: [{ name: 'slug', summary: 'project', complete: 'projects' }],
      options: [{ flags: '--revoke', summary: 'delete the Redis user instead' }],
      handler: lazy(load, 'acl'),
    },
    { name: 'list', summary: 'list projects', handler: lazy(load, 'list') },
  ],
};
