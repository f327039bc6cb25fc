import { addAgent, getAgent, listAgents, removeAgent } from '../core/identity/agents.js';
import { listSquads } from '../core/identity/squads.js';
import type { Agent } from '../core/store/types.js';
import type { Invocation, Output } from './define.js';
import { fields, iso, table } from './format.js';
import { withSession } from './session.js';

/** The `--json` shape of an agent (stable). */
export const agentView = (a: Agent) => ({
  project: a.project,
  name: a.name,
  kind: a.kind,
  role: a.role,
  capabilities: a.capabilities,
  session: a.session,
  createdAt: iso(a.createdAt),
  updatedAt: iso(a.updatedAt),
});

export function add(inv: Invocation): Promise<Output> {
  return withSession(inv, async ({ store, caller }) => {
    const agent = await addAgent(store, caller, {
      name: inv.args.name as string,
      ...(typeof inv.options.kind === 'string' ? { kind: inv.options.kind } : {}),
      ...(typeof inv.options.role === 'string' ? { role: inv.options.role } : {}),
      ...(Array.isArray(inv.options.cap) ? { capabilities: inv.options.cap as string[] } : {}),
      ...(typeof inv.options.session === 'string' ? { session: inv.options.session } : {}),
    });
    return {
      data: agentView(agent),
      human: `agent "${agent.name}" added to project "${agent.project}" (${agent.kind}, ${agent.role})`,
      quiet: agent.name,
    };
  });
}

export function list(inv: Invocation): Promise<Output> {
  return withSession(inv, async ({ store, caller }) => {
    const agents = await listAgents(store, caller);
    return {
      data: agents.map(agentView),
      human: agents.length
        ? table(
            ['name', 'kind', 'role', 'capabilities', 'session'],
            agents.map((a) => [a.name, a.kind, a.role, a.capabilities.join(','), a.session]),
          )
        : `no agents in project "${caller.project}" yet: sos agents add <name> --kind claude`,
      quiet: agents.map((a) => a.name).join('\n'),
    };
  });
}

export function show(inv: Invocation): Promise<Output> {
  return withSession(inv, async ({ store, caller }) => {
    const agent = await getAgent(store, caller, inv.args.name as string);
    const squads = (await listSquads(store, caller))
      .filter((s) => s.members.includes(agent.name))
      .map((s) => s.name);
    return {
      data: { ...agentView(agent), squads },
      human: fields([
        ['name', agent.name],
        ['project', agent.project],
        ['kind', agent.kind],
        ['role', agent.role],
        ['capabilities', agent.capabilities.join(', ')],
        ['session', agent.session],
        ['squads', squads.join(', ')],
        ['created', iso(agent.createdAt)],
      ]),
      quiet: agent.name,
    };
  });
}

export function remove(inv: Invocation): Promise<Output> {
  return withSession(inv, async ({ store, caller }) => {
    const agent = await removeAgent(store, caller, inv.args.name as string);
    return { data: agentView(agent), human: `agent "${agent.name}" removed`, quiet: agent.name };
  });
}
