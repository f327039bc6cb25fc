import { type Caller, deny } from '../auth/caller.js';
import { NotFound, PermissionDenied } from '../errors.js';
import { assertName } from '../names.js';
import type { Store } from '../store/port.js';
import type { Project } from '../store/types.js';

export async function requireProject(store: Store, slug: string): Promise<Project> {
  const project = await store.projects.get(slug);
  if (!project) {
    throw new NotFound(`project "${slug}" does not exist`, {
      hint: `create it with \`sos projects create ${slug}\``,
    });
  }
  return project;
}

/** Creating a project spans tenants, so only the local operator may do it, never a token. */
export async function createProject(store: Store, caller: Caller, slug: string): Promise<Project> {
  assertName('project', slug);
  if (caller.via !== 'local') {
    await deny(
      store,
      caller,
      'creating a project',
      'needs local operator access; tokens are bound to one project',
    );
  }
  return store.projects.create(slug);
}

export async function listProjects(store: Store, caller: Caller): Promise<Project[]> {
  if (caller.via === 'local') return store.projects.list();
  return [await requireProject(store, caller.project)];
}

export interface InitResult {
  location: string;
  appliedMigrations: number[];
  project: Project;
  projectCreated: boolean;
}

/** `sos init`: migrate, then make sure the project exists. Safe to run again. */
export async function initialise(store: Store, caller: Caller, slug: string): Promise<InitResult> {
  assertName('project', slug);
  if (caller.via !== 'local')
    throw new PermissionDenied('`sos init` needs local operator access, not a token');
  const { applied } = await store.migrate();
  const existing = await store.projects.get(slug);
  if (existing)
    return { location: store.location, appliedMigrations: applied, project: existing, projectCreated: false };
  try {
    const project = await store.projects.create(slug);
    return { location: store.location, appliedMigrations: applied, project, projectCreated: true };
  } catch (err) {
    // Another `sos init` created it between our read and write: same end state.
    const project = await store.projects.get(slug);
    if (!project) throw err;
    return { location: store.location, appliedMigrations: applied, project, projectCreated: false };
  }
}
