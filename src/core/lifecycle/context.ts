import { join, resolve } from 'node:path';
import type { Bus } from '../bus/port.js';
import type { ConfigValues } from '../config/variables.js';
import type { MemoryContext } from '../memory/service.js';
import type { SessionDriver } from '../sessions/port.js';
import type { Store } from '../store/port.js';
import type { Agent } from '../store/types.js';
import type { TaskContext } from '../tasks/service.js';
import type { LifecycleLimits } from './policy.js';
import { SqlLifecycleRepo } from './sql-lifecycle.js';

/** What the lifecycle functions need: the Store, the bus, memory when configured, and the limits. */
export interface LifecycleContext {
  store: Store;
  bus: Bus;
  repo: SqlLifecycleRepo;
  /** For the checkpoint engram and the context pack; null falls back to a minimal pack. */
  memory: MemoryContext | null;
  /** Largest task text (for the task context built over the same Store and bus). */
  maxTextBytes: number;
  /** Where pty hosts keep their sockets and logs. */
  runDir: string;
  /** Working directory for agents that do not name one. */
  defaultWorkdir: string;
  /** Extra environment for started sessions (where the database is, …); the agent token is added. */
  sessionEnv: Record<string, string>;
  limits: LifecycleLimits;
  stuckAfterMs: number;
  recoveryTimeoutMs: number;
  /** How long a restarted or interrupted agent gets to reach its prompt before the next step. */
  readyTimeoutMs: number;
  now?: () => number;
  /** Opens the session driver of an agent (tests and the daemon may share or wrap drivers). */
  openDriver: (agent: Agent) => Promise<SessionDriver>;
}

export type LifecycleOptions = Omit<LifecycleContext, 'repo' | 'openDriver' | 'now'> & Partial<Pick<LifecycleContext, 'openDriver' | 'now'>>;

export function lifecycleContext(options: LifecycleOptions): LifecycleContext {
  return {
    ...options,
    repo: new SqlLifecycleRepo(options.store.sql),
    openDriver:
      options.openDriver ??
      (async (agent) => {
        const { openSessionDriver } = await import('../sessions/open.js');
        return openSessionDriver(agent.session ?? '', {
          tmuxSocket: agent.tmuxSocket,
          runDir: options.runDir,
          owner: { project: agent.project, agent: agent.name },
        });
      }),
  };
}

/**
 * The lifecycle context from configuration: the one place that decides where pty hosts live,
 * what environment started sessions get (where the database is) and the guardrails in force.
 */
export async function lifecycleFromConfig(
  values: ConfigValues,
  parts: { store: Store; bus: Bus; memory: MemoryContext | null; cwd: string; readyTimeoutMs?: number },
): Promise<LifecycleContext> {
  const { DEFAULT_LIMITS } = await import('./policy.js');
  const sessionEnv: Record<string, string> = {
    SOS_DB: /^postgres(ql)?:\/\//.test(values.db) ? values.db : resolve(parts.cwd, values.db),
    SOS_PG_SCHEMA: values.pgSchema,
  };
  if (values.redisUrl !== undefined) sessionEnv.SOS_REDIS_URL = values.redisUrl;
  if (values.memoryDb !== undefined) sessionEnv.SOS_MEMORY_DB = values.memoryDb;
  return lifecycleContext({
    store: parts.store,
    bus: parts.bus,
    memory: parts.memory,
    maxTextBytes: values.maxMessageBytes,
    runDir: join(values.dataDir, 'sessions'),
    defaultWorkdir: parts.cwd,
    sessionEnv,
    limits: { ...DEFAULT_LIMITS, restartLimit: values.restartLimit, restartWindowMs: values.restartWindowMs, cooldownMs: values.restartCooldownMs },
    stuckAfterMs: values.stuckAfterMs,
    recoveryTimeoutMs: values.recoveryTimeoutMs,
    readyTimeoutMs: parts.readyTimeoutMs ?? 20_000,
  });
}

export const nowOf = (ctx: { now?: () => number }) => (ctx.now ?? Date.now)();

export function taskContextOf(ctx: LifecycleContext): TaskContext {
  return { store: ctx.store, bus: ctx.bus, maxTextBytes: ctx.maxTextBytes, ...(ctx.now ? { now: ctx.now } : {}) };
}
