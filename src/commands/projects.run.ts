import { type ProjectCredentials, grantProjectRedisAcl, revokeProjectRedisAcl } from '../core/bus/project-acl.js';
import { UsageError } from '../core/errors.js';
import { createProject, listProjects } from '../core/identity/projects.js';
import type { Project } from '../core/store/types.js';
import type { Invocation, Output } from './define.js';
import { iso, table } from './format.js';
import { withSession } from './session.js';

const view = (p: Project) => ({ slug: p.slug, createdAt: iso(p.createdAt) });

function credentialsText(acl: ProjectCredentials): string {
  return [
    `Redis user ${acl.user} can reach only project "${acl.project}" (keys and channels sos:*:project:${acl.project}:*):`,
    '',
    `  SOS_REDIS_URL=${acl.url}`,
    '',
    'The password is shown only now.',
    acl.persisted ? '' : 'Redis has no ACL file: the user lasts until Redis restarts (run `sos projects acl` again then).',
  ]
    .filter((l, i, all) => l !== '' || i < all.length - 1)
    .join('\n');
}

export function create(inv: Invocation): Promise<Output> {
  return withSession(inv, async ({ store, caller, config }) => {
    const slug = inv.args.slug as string;
    const wantsAcl = inv.options.redisAcl === true;
    if (wantsAcl && config.values.redisUrl === undefined) {
      throw new UsageError('--redis-acl needs a Redis', { hint: 'set SOS_REDIS_URL to an admin connection' });
    }
    const project = await createProject(store, caller, slug);
    if (!wantsAcl) return { data: view(project), human: `project "${project.slug}" created`, quiet: project.slug };
    const acl = await grantProjectRedisAcl(store, caller, config.values.redisUrl, slug);
    return {
      data: { ...view(project), redis: acl },
      human: `project "${project.slug}" created\n${credentialsText(acl)}`,
      quiet: acl.url,
    };
  });
}

export function acl(inv: Invocation): Promise<Output> {
  return withSession(inv, async ({ store, caller, config }) => {
    const slug = inv.args.slug as string;
    if (inv.options.revoke === true) {
      const existed = await revokeProjectRedisAcl(store, caller, config.values.redisUrl, slug);
      return { data: { project: slug, revoked: existed }, human: existed ? `Redis user for "${slug}" deleted` : `project "${slug}" had no Redis user` };
    }
    const granted = await grantProjectRedisAcl(store, caller, config.values.redisUrl, slug);
    return { data: granted, human: credentialsText(granted), quiet: granted.url };
  });
}

export function list(inv: Invocation): Promise<Output> {
  return withSession(inv, async ({ store, caller }) => {
    const projects = await listProjects(store, caller);
    return {
      data: projects.map(view),
      human: table(
        ['project', 'created'],
        projects.map((p) => [p.slug, iso(p.createdAt)]),
      ),
      quiet: projects.map((p) => p.slug).join('\n'),
    };
  });
}
