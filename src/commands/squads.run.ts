import { createSquad, getSquad, joinSquad, leaveSquad, listSquads } from '../core/identity/squads.js';
import type { Squad } from '../core/store/types.js';
import type { Invocation, Output } from './define.js';
import { fields, iso, table } from './format.js';
import { withSession } from './session.js';

const view = (s: Squad) => ({
  project: s.project,
  name: s.name,
  description: s.description,
  members: s.members,
  createdAt: iso(s.createdAt),
});

export function create(inv: Invocation): Promise<Output> {
  return withSession(inv, async ({ store, caller }) => {
    const description = typeof inv.options.description === 'string' ? inv.options.description : undefined;
    const squad = await createSquad(store, caller, inv.args.name as string, description);
    return { data: view(squad), human: `squad "${squad.name}" created`, quiet: squad.name };
  });
}

export function list(inv: Invocation): Promise<Output> {
  return withSession(inv, async ({ store, caller }) => {
    const squads = await listSquads(store, caller);
    return {
      data: squads.map(view),
      human: squads.length
        ? table(
            ['squad', 'members', 'description'],
            squads.map((s) => [s.name, s.members.join(','), s.description]),
          )
        : `no squads in project "${caller.project}" yet: sos squads create <name>`,
      quiet: squads.map((s) => s.name).join('\n'),
    };
  });
}

export function show(inv: Invocation): Promise<Output> {
  return withSession(inv, async ({ store, caller }) => {
    const squad = await getSquad(store, caller, inv.args.squad as string);
    return {
      data: view(squad),
      human: fields([
        ['squad', squad.name],
        ['project', squad.project],
        ['description', squad.description],
        ['members', squad.members.join(', ')],
        ['created', iso(squad.createdAt)],
      ]),
      quiet: squad.members.join('\n'),
    };
  });
}

function membership(change: 'join' | 'leave') {
  return (inv: Invocation): Promise<Output> =>
    withSession(inv, async ({ store, caller }) => {
      const agent = typeof inv.options.agent === 'string' ? inv.options.agent : undefined;
      const op = change === 'join' ? joinSquad : leaveSquad;
      const result = await op(store, caller, inv.args.squad as string, agent);
      const verb =
        change === 'join'
          ? result.changed
            ? 'joined'
            : 'was already in'
          : result.changed
            ? 'left'
            : 'was not in';
      return { data: result, human: `${result.agent} ${verb} squad "${result.squad}"` };
    });
}

export const join = membership('join');
export const leave = membership('leave');
