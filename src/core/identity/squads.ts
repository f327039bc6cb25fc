import { actingAgent, type Caller, isAdmin, requireAdmin } from '../auth/caller.js';
import { Conflict, NotFound, UsageError } from '../errors.js';
import { assertName } from '../names.js';
import type { Store } from '../store/port.js';
import type { Squad } from '../store/types.js';
import { getAgent } from './agents.js';
import { requireProject } from './projects.js';
import { refuseNul } from '../safe-text.js';

export async function createSquad(
  store: Store,
  caller: Caller,
  name: string,
  description?: string,
): Promise<Squad> {
  assertName('squad', name);
  refuseNul(description, 'the squad description');
  if (description !== undefined && description.length > 500)
    throw new UsageError('squad description is over 500 characters');
  await requireAdmin(store, caller, 'creating a squad');
  await requireProject(store, caller.project);
  return store.squads.create(caller.project, name, description ?? null);
}

export async function getSquad(store: Store, caller: Caller, name: string): Promise<Squad> {
  assertName('squad', name);
  const squad = await store.squads.get(caller.project, name);
  if (!squad) {
    throw new NotFound(`squad "${name}" does not exist in project "${caller.project}"`, {
      hint: 'list squads with `sos squads list`',
    });
  }
  return squad;
}

export async function listSquads(store: Store, caller: Caller): Promise<Squad[]> {
  await requireProject(store, caller.project);
  return store.squads.list(caller.project);
}

export interface MembershipChange {
  squad: string;
  agent: string;
  changed: boolean;
}

export async function joinSquad(
  store: Store,
  caller: Caller,
  squad: string,
  agent?: string,
): Promise<MembershipChange> {
  assertName('squad', squad);
  if (agent !== undefined) assertName('agent', agent);
  const who = await actingAgent(store, caller, agent, 'joining a squad');
  await getSquad(store, caller, squad);
  await getAgent(store, caller, who);
  return { squad, agent: who, changed: await store.squads.join(caller.project, squad, who) };
}

export async function leaveSquad(
  store: Store,
  caller: Caller,
  squad: string,
  agent?: string,
): Promise<MembershipChange> {
  assertName('squad', squad);
  if (agent !== undefined) assertName('agent', agent);
  const who = await actingAgent(store, caller, agent, 'leaving a squad');
  await getSquad(store, caller, squad);
  return { squad, agent: who, changed: await store.squads.leave(caller.project, squad, who) };
}

export interface WorkspaceJoin extends MembershipChange {
  /** The squad did not exist and this join created it (admins and coordinators only). */
  created: boolean;
}

/**
 * Upstream SOS's `workspace_join`: a workspace is a squad. The caller joins it; a squad that does
 * not exist yet is created first (its summary as the description), but only by an admin or an
 * agent whose role is coordinator: anyone else gets an error that says who can.
 */
export async function joinWorkspace(store: Store, caller: Caller, name: string, summary?: string): Promise<WorkspaceJoin> {
  assertName('squad', name);
  refuseNul(summary, 'the workspace summary');
  if (summary !== undefined && summary.length > 500) throw new UsageError('workspace summary is over 500 characters');
  const who = await actingAgent(store, caller, undefined, 'joining a workspace');
  const agent = await getAgent(store, caller, who);
  let created = false;
  if (!(await store.squads.get(caller.project, name))) {
    if (!isAdmin(caller) && agent.role !== 'coordinator') {
      throw new NotFound(`workspace (squad) "${name}" does not exist in project "${caller.project}"`, {
        hint: 'a coordinator or an admin creates it (by joining it first, or `sos squads create`)',
      });
    }
    await requireProject(store, caller.project);
    try {
      await store.squads.create(caller.project, name, summary ?? null);
      created = true;
    } catch (err) {
      // Two first joins at once: the other one created it.
      if (!(err instanceof Conflict)) throw err;
    }
  }
  return { squad: name, agent: who, changed: await store.squads.join(caller.project, name, who), created };
}
