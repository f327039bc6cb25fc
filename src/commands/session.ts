import { type Caller, resolveCaller } from '../core/auth/caller.js';
import { type ResolvedConfig, resolveConfig } from '../core/config/resolve.js';
import type { VariableKey } from '../core/config/variables.js';
import { PermissionDenied } from '../core/errors.js';
import { openStore, parseStoreTarget } from '../core/store/open.js';
import type { Store } from '../core/store/port.js';
import type { BusContext } from '../core/bus/service.js';
import type { MemoryContext } from '../core/memory/service.js';
import type { TaskContext } from '../core/tasks/service.js';
import type { LifecycleContext } from '../core/lifecycle/context.js';
import type { Invocation } from './define.js';

export interface Session {
  config: ResolvedConfig;
  store: Store;
  caller: Caller;
}

export function loadConfig(inv: Invocation): Promise<ResolvedConfig> {
  const flags: Partial<Record<VariableKey, string>> = {};
  if (inv.globals.db !== undefined) flags.db = inv.globals.db;
  if (inv.globals.project !== undefined) flags.project = inv.globals.project;
  if (inv.globals.as !== undefined) flags.agent = inv.globals.as;
  if (inv.globals.token !== undefined) flags.token = inv.globals.token;
  return resolveConfig({ env: inv.env, flags });
}

/**
 * Resolves configuration, opens the Store, checks its schema is current, works out the caller,
 * runs `fn`, and always closes the Store. `init` passes `create` and skips the readiness check.
 */
export async function withSession<T>(
  inv: Invocation,
  fn: (session: Session) => Promise<T>,
  options: { create?: boolean; requireReady?: boolean; localOnly?: boolean } = {},
): Promise<T> {
  const config = await loadConfig(inv);
  if (options.localOnly && config.values.token !== undefined) {
    throw new PermissionDenied('this command needs local operator access to the database, not a token', {
      hint: 'unset SOS_TOKEN / drop --token and run it where the database is',
    });
  }
  const store = await openStore({
    target: parseStoreTarget(config.values.db, inv.cwd),
    pgSchema: config.values.pgSchema,
    busyTimeoutMs: config.values.busyTimeoutMs,
    create: options.create ?? false,
  });
  try {
    if (options.requireReady !== false) await store.assertReady();
    const caller: Caller = options.localOnly
      ? { project: config.values.project, agent: config.values.agent ?? null, role: 'operator', via: 'local' }
      : await resolveCaller(store, {
          token: config.values.token,
          project: config.values.project,
          projectExplicit: config.sources.project !== 'default',
          agent: config.values.agent,
        });
    return await fn({ config, store, caller });
  } finally {
    await store.close();
  }
}

/** A session with the bus open too; the bus is closed before the Store (reverse order). */
export function withBus<T>(inv: Invocation, fn: (session: Session & { ctx: BusContext }) => Promise<T>): Promise<T> {
  return withSession(inv, async (session) => {
    const { openBusContext } = await import('../core/bus/context.js');
    const ctx = await openBusContext(session.config.values, session.store);
    try {
      return await fn({ ...session, ctx });
    } finally {
      await ctx.bus.close();
    }
  });
}

/** A session with the bus open and the task context built over it. */
export function withTasks<T>(inv: Invocation, fn: (session: Session & { ctx: BusContext; tasks: TaskContext }) => Promise<T>): Promise<T> {
  return withBus(inv, (session) =>
    fn({ ...session, tasks: { store: session.store, bus: session.ctx.bus, maxTextBytes: session.config.values.maxMessageBytes } }),
  );
}

/** A session with the bus and memory open (memory may live in SOS_MEMORY_DB). */
export function withMemory<T>(inv: Invocation, fn: (session: Session & { ctx: BusContext; memory: MemoryContext }) => Promise<T>): Promise<T> {
  return withBus(inv, async (session) => {
    const { openMemoryContext } = await import('../core/memory/open.js');
    const opened = await openMemoryContext(session.config.values, session.store, inv.cwd, session.ctx.bus);
    try {
      return await fn({ ...session, memory: opened.ctx });
    } finally {
      await opened.close();
    }
  });
}

/** A session with the lifecycle context (bus open; memory too when `memory`, for packs and checkpoints). */
export function withLifecycle<T>(
  inv: Invocation,
  fn: (session: Session & { ctx: BusContext; life: LifecycleContext }) => Promise<T>,
  options: { memory?: boolean } = {},
): Promise<T> {
  const run = async (session: Session & { ctx: BusContext }, memory: MemoryContext | null) => {
    const { lifecycleFromConfig } = await import('../core/lifecycle/context.js');
    const life = await lifecycleFromConfig(session.config.values, { store: session.store, bus: session.ctx.bus, memory, cwd: inv.cwd });
    return fn({ ...session, life });
  };
  return options.memory ? withMemory(inv, (s) => run(s, s.memory)) : withBus(inv, (s) => run(s, null));
}
