import { createProject, listProjects } from '../core/identity/projects.js';
import type { Project } from '../core/store/types.js';
import type { Invocation, Output } from './define.js';
import { iso, table } from './format.js';
import { withSession } from './session.js';

const view = (p: Project) => ({ slug: p.slug, createdAt: iso(p.createdAt) });

export function create(inv: Invocation): Promise<Output> {
  return withSession(inv, async ({ store, caller }) => {
    const project = await createProject(store, caller, inv.args.slug as string);
    return { data: view(project), human: `project "${project.slug}" created`, quiet: project.slug };
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
