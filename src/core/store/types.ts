/**
 * Domain records kept by the Store.
 *
 * Glossary:
 * - project: a tenant namespace; every other record belongs to exactly one.
 * - agent: a named participant in a project, with a kind (vendor), a role and capabilities.
 * - token: a bearer secret bound to (project, agent, role); only its SHA-256 hash is stored.
 * - squad: a named group of agents inside a project.
 * - security event: a refused attempt (bad token, cross-project access), kept so it can be counted.
 *
 * Times are epoch milliseconds.
 */

export const AGENT_KINDS = ['claude', 'codex', 'gemini', 'shell', 'custom'] as const;
export type AgentKind = (typeof AGENT_KINDS)[number];

export const AGENT_ROLES = ['coordinator', 'worker', 'specialist'] as const;
export type AgentRole = (typeof AGENT_ROLES)[number];

export const TOKEN_ROLES = ['agent', 'admin', 'observer'] as const;
export type TokenRole = (typeof TOKEN_ROLES)[number];

export interface Project {
  slug: string;
  createdAt: number;
}

export interface Agent extends AgentLifecycle {
  project: string;
  name: string;
  kind: AgentKind;
  role: AgentRole;
  capabilities: string[];
  /** `tmux:<target>` or `pty:<command>`; null for agents without a session (MCP-only, remote). */
  session: string | null;
  createdAt: number;
  updatedAt: number;
}

export const AGENT_POLICIES = ['warm', 'cold'] as const;
/** warm: kept running (restarted when dead); cold: started only when it has work (parked otherwise). */
export type AgentPolicy = (typeof AGENT_POLICIES)[number];

/** How the lifecycle supervisor starts and reads an agent's session (docs/ARCHITECTURE.md, "Lifecycle"). */
/**
 * What the daemon types into an agent's session when a message arrives: `text` its first line (for
 * CLIs that read a line as a prompt), `notify` a fixed line with nothing the sender wrote, `off`
 * nothing (the message waits in the inbox). A shell would run a typed line as a command.
 */
/** `api`: billed per token; `pro`, `max`, `team`: flat-rate subscriptions limited by 5-hour and weekly windows. */
export const AGENT_PLANS = ['api', 'pro', 'max', 'team'] as const;
export type AgentPlan = (typeof AGENT_PLANS)[number];

export const WAKE_MODES = ['text', 'notify', 'off'] as const;
export type WakeMode = (typeof WAKE_MODES)[number];

/** Kinds whose CLI reads a typed line as a prompt; every other kind types nothing unless set. */
export const PROMPT_KINDS: readonly AgentKind[] = ['claude', 'codex', 'gemini'];

/** The wake mode in force: the agent's own, else its kind's default. */
export function wakeModeOf(agent: Pick<Agent, 'kind' | 'wake'>): WakeMode {
  return agent.wake ?? (PROMPT_KINDS.includes(agent.kind) ? 'text' : 'off');
}

export interface AgentLifecycle {
  /** The command that (re)starts the agent in its session, e.g. `claude --continue`. */
  startCmd: string | null;
  workdir: string | null;
  policy: AgentPolicy;
  /** tmux `-S` socket for a `tmux:` session on a non-default server. */
  tmuxSocket: string | null;
  /** Pattern groups (classifier PatternSet JSON) replacing the defaults of the agent's kind. */
  patterns: Record<string, unknown> | null;
  /** Null: the kind's default (see `wakeModeOf`). */
  wake: WakeMode | null;
  /** How it pays: per token (`api`) or a flat-rate plan limited by quota windows; null: not said. */
  plan: AgentPlan | null;
  /** A glob of transcript files that are its own, whatever their working directory. */
  transcripts: string | null;
}

export type AgentPatch = Partial<AgentLifecycle> & { session?: string | null };

export interface NewAgent extends Partial<AgentLifecycle> {
  project: string;
  name: string;
  kind: AgentKind;
  role: AgentRole;
  capabilities: string[];
  session: string | null;
}

export interface TokenRecord {
  id: string;
  project: string;
  agent: string;
  role: TokenRole;
  /** The first characters of the secret, to recognise it in listings. */
  prefix: string;
  createdAt: number;
  lastUsedAt: number | null;
  revokedAt: number | null;
}

export interface NewToken {
  id: string;
  project: string;
  agent: string;
  role: TokenRole;
  prefix: string;
  hash: string;
}

export interface Squad {
  project: string;
  name: string;
  description: string | null;
  members: string[];
  createdAt: number;
}

export interface SecurityEvent {
  project: string;
  kind: 'cross_project' | 'bad_token' | 'forbidden';
  actor: string;
  detail: string;
}
