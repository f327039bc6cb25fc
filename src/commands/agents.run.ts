import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { type AgentChanges, addAgent, getAgent, listAgents, removeAgent, updateAgent } from '../core/identity/agents.js';
import { UsageError } from '../core/errors.js';
import { listSquads } from '../core/identity/squads.js';
import { type Agent, wakeModeOf } from '../core/store/types.js';
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
  startCmd: a.startCmd,
  workdir: a.workdir,
  policy: a.policy,
  tmuxSocket: a.tmuxSocket,
  patterns: a.patterns,
  wake: wakeModeOf(a),
  wakeDefault: a.wake === null,
  plan: a.plan,
  transcripts: a.transcripts,
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
      ...(await lifecycleInput(inv)),
    });
    return {
      data: agentView(agent),
      human: `agent "${agent.name}" added to project "${agent.project}" (${agent.kind}, ${agent.role})`,
      quiet: agent.name,
    };
  });
}

async function readPatterns(inv: Invocation, file: string): Promise<unknown> {
  const path = resolve(inv.cwd, file);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new UsageError(`cannot read --patterns ${path}: ${(err as Error).message}`);
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new UsageError(`--patterns ${path} is not JSON: ${(err as Error).message}`);
  }
}

/** The lifecycle options of `agents add` / `agents set`, read (and the patterns file parsed) before any write. */
async function lifecycleInput(inv: Invocation): Promise<Omit<AgentChanges, 'session'>> {
  const o = inv.options;
  const out: Omit<AgentChanges, 'session'> = {};
  if (typeof o.startCmd === 'string') out.startCmd = o.startCmd;
  if (typeof o.workdir === 'string') out.workdir = resolve(inv.cwd, o.workdir);
  if (typeof o.policy === 'string') out.policy = o.policy;
  if (typeof o.tmuxSocket === 'string') out.tmuxSocket = resolve(inv.cwd, o.tmuxSocket);
  if (typeof o.patterns === 'string') out.patterns = await readPatterns(inv, o.patterns);
  if (typeof o.wake === 'string') out.wake = o.wake === 'default' ? null : o.wake;
  if (typeof o.plan === 'string') out.plan = o.plan;
  if (typeof o.transcripts === 'string') out.transcripts = resolve(inv.cwd, o.transcripts);
  if (o.iUnderstandShell === true) out.shellTextAllowed = true;
  return out;
}

const CLEARABLE: Record<string, keyof AgentChanges> = { 'start-cmd': 'startCmd', workdir: 'workdir', 'tmux-socket': 'tmuxSocket', patterns: 'patterns', plan: 'plan', transcripts: 'transcripts' };

export async function set(inv: Invocation): Promise<Output> {
  const changes: AgentChanges = await lifecycleInput(inv);
  if (typeof inv.options.session === 'string') changes.session = inv.options.session === 'none' ? null : inv.options.session;
  for (const field of (inv.options.clear as string[] | undefined) ?? []) {
    const key = CLEARABLE[field];
    if (!key) throw new UsageError(`--clear ${field}: use one of ${Object.keys(CLEARABLE).join(', ')}`);
    if (changes[key] !== undefined) throw new UsageError(`--clear ${field} contradicts the value given for it`);
    (changes as Record<string, unknown>)[key] = null;
  }
  return withSession(inv, async ({ store, caller }) => {
    const agent = await updateAgent(store, caller, inv.args.name as string, changes);
    return { data: agentView(agent), human: `agent "${agent.name}" updated`, quiet: agent.name };
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
        ['start command', agent.startCmd],
        ['workdir', agent.workdir],
        ['policy', agent.policy],
        ['tmux socket', agent.tmuxSocket],
        ['patterns', agent.patterns ? Object.keys(agent.patterns).join(', ') : null],
        ['wake', `${wakeModeOf(agent)}${agent.wake === null ? ` (default for ${agent.kind})` : ''}`],
        ['plan', agent.plan],
        ['transcripts', agent.transcripts],
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
