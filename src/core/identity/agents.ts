import { type Caller, requireAdmin } from '../auth/caller.js';
import { NotFound, UsageError } from '../errors.js';
import { assertCapability, assertName } from '../names.js';
import type { Store } from '../store/port.js';
import { isAbsolute } from 'node:path';
import { parsePatternOverrides } from '../lifecycle/classifier.js';
import {
  AGENT_KINDS,
  AGENT_POLICIES,
  AGENT_PLANS,
  AGENT_ROLES,
  type Agent,
  type AgentKind,
  type AgentLifecycle,
  type AgentPatch,
  type AgentRole,
  WAKE_MODES,
  type WakeMode,
} from '../store/types.js';
import { requireProject } from './projects.js';

export interface AddAgentInput extends Omit<AgentChanges, 'session'> {
  name: string;
  kind?: string;
  role?: string;
  capabilities?: string[];
  session?: string;
}

/** What `sos agents set` may change; null clears a field. */
export interface AgentChanges {
  session?: string | null;
  startCmd?: string | null;
  workdir?: string | null;
  policy?: string;
  tmuxSocket?: string | null;
  /** Parsed JSON of per-agent pattern groups. */
  patterns?: unknown;
  /** `text`, `notify` or `off`; null: the kind's default. */
  wake?: string | null;
  /** The operator's word that a shell agent may have message text typed into it. */
  shellTextAllowed?: boolean;
  /** `api`, `pro`, `max` or `team`; null: not said. */
  plan?: string | null;
  /** A glob of the agent's own transcript files (absolute; `*`, `**`, `?`). */
  transcripts?: string | null;
}

/**
 * `--wake text` types what a sender wrote; into a shell that is a command anyone who may send can
 * run. Refused for a shell agent unless the operator says they understand.
 */
function checkWake(kind: AgentKind, wake: WakeMode | null | undefined, allowed: boolean | undefined): void {
  if (wake === 'text' && kind === 'shell' && allowed !== true) {
    throw new UsageError('--wake text would type message text into a shell, which runs it as a command', {
      hint: 'use --wake notify (a fixed line) or off; or add --i-understand-shell if every sender is trusted with that shell',
    });
  }
}

function absolutePath(what: string, value: string): string {
  if (!isAbsolute(value)) throw new UsageError(`${what} must be an absolute path, not ${JSON.stringify(value)}`);
  return value;
}

/** Validates the lifecycle fields given (all before any write). */
function lifecycleFields(input: AgentChanges): AgentPatch {
  const out: AgentPatch = {};
  if (input.session !== undefined) out.session = input.session === null ? null : parseSessionSpec(input.session);
  if (input.startCmd !== undefined) {
    if (input.startCmd !== null && (input.startCmd.trim() === '' || /[\n\r\0]/.test(input.startCmd))) {
      throw new UsageError('--start-cmd must be one non-empty line');
    }
    out.startCmd = input.startCmd;
  }
  if (input.workdir !== undefined) out.workdir = input.workdir === null ? null : absolutePath('--workdir', input.workdir);
  if (input.tmuxSocket !== undefined) out.tmuxSocket = input.tmuxSocket === null ? null : absolutePath('--tmux-socket', input.tmuxSocket);
  if (input.policy !== undefined) out.policy = oneOf('policy', input.policy, AGENT_POLICIES);
  if (input.wake !== undefined) out.wake = input.wake === null ? null : oneOf('wake mode', input.wake, WAKE_MODES);
  if (input.patterns !== undefined) out.patterns = input.patterns === null ? null : (parsePatternOverrides(input.patterns) as AgentLifecycle['patterns']);
  if (input.plan !== undefined) out.plan = input.plan === null ? null : oneOf('plan', input.plan, AGENT_PLANS);
  if (input.transcripts !== undefined) {
    if (input.transcripts !== null) {
      absolutePath('--transcripts', input.transcripts);
      if (/[\n\r\0]/.test(input.transcripts)) throw new UsageError('--transcripts must be one line');
    }
    out.transcripts = input.transcripts;
  }
  return out;
}

function oneOf<T extends string>(what: string, value: string, allowed: readonly T[]): T {
  if (!(allowed as readonly string[]).includes(value)) {
    throw new UsageError(`invalid ${what} ${JSON.stringify(value)}: use one of ${allowed.join(', ')}`);
  }
  return value as T;
}

/** `tmux:<session>[:<window>.<pane>]` or `pty:<command>`. */
export function parseSessionSpec(value: string): string {
  const match = /^(tmux|pty):(.+)$/.exec(value);
  if (!match || match[2]!.trim() === '') {
    throw new UsageError(`invalid session ${JSON.stringify(value)}: use tmux:<target> or pty:<command>`);
  }
  if (match[1] === 'tmux' && !/^[A-Za-z0-9_.-]+(:[A-Za-z0-9_-]+(\.[0-9]+)?)?$/.test(match[2]!)) {
    throw new UsageError(`invalid tmux target ${JSON.stringify(match[2])}: use <session>[:<window>.<pane>]`);
  }
  return value;
}

/** Validates everything before writing anything, so a bad input changes nothing. */
export async function addAgent(store: Store, caller: Caller, input: AddAgentInput): Promise<Agent> {
  const name = assertName('agent', input.name);
  const kind: AgentKind = oneOf('kind', input.kind ?? 'custom', AGENT_KINDS);
  const role: AgentRole = oneOf('role', input.role ?? 'worker', AGENT_ROLES);
  const capabilities = (input.capabilities ?? []).map(assertCapability);
  const { session = null, ...life } = lifecycleFields(input);
  checkWake(kind, life.wake, input.shellTextAllowed);
  await requireAdmin(store, caller, 'adding an agent');
  await requireProject(store, caller.project);
  return store.agents.add({ project: caller.project, name, kind, role, capabilities, session, ...life });
}

export async function updateAgent(store: Store, caller: Caller, name: string, changes: AgentChanges): Promise<Agent> {
  assertName('agent', name);
  const patch = lifecycleFields(changes);
  if (Object.keys(patch).length === 0) throw new UsageError('nothing to change', { hint: 'give at least one option, e.g. --start-cmd "claude --continue"' });
  await requireAdmin(store, caller, 'changing an agent');
  if (patch.wake === 'text') checkWake((await getAgent(store, caller, name)).kind, patch.wake, changes.shellTextAllowed);
  if (!(await store.agents.update(caller.project, name, patch))) await getAgent(store, caller, name);
  return getAgent(store, caller, name);
}

export async function getAgent(store: Store, caller: Caller, name: string): Promise<Agent> {
  assertName('agent', name);
  const agent = await store.agents.get(caller.project, name);
  if (!agent) {
    throw new NotFound(`agent "${name}" does not exist in project "${caller.project}"`, {
      hint: 'list agents with `sos agents list`',
    });
  }
  return agent;
}

export async function listAgents(store: Store, caller: Caller): Promise<Agent[]> {
  await requireProject(store, caller.project);
  return store.agents.list(caller.project);
}

export async function removeAgent(store: Store, caller: Caller, name: string): Promise<Agent> {
  assertName('agent', name);
  await requireAdmin(store, caller, 'removing an agent');
  const agent = await getAgent(store, caller, name);
  await store.agents.remove(caller.project, name);
  return agent;
}
