import type { TestContext } from 'vitest';
import type { Caller } from '../../src/core/auth/caller.js';
import { openBus } from '../../src/core/bus/open.js';
import type { BusContext } from '../../src/core/bus/service.js';
import type { Store } from '../../src/core/store/port.js';
import { ADAPTERS, services } from './isolation.js';
import { redisProject } from './redis.js';

/**
 * Bus fixtures: the SQL bus on SQLite, the SQL bus on PostgreSQL, and the Redis bus (with its
 * Store on SQLite). Each test gets a fresh database and a project slug of its own, so Redis keys
 * never collide; the project's Redis keys are deleted when the test passes.
 */

export interface BusFixture {
  name: string;
  available: boolean;
  open(ctx: TestContext, options?: { now?: () => number }): Promise<BusWorld>;
}

export interface BusWorld {
  project: string;
  store: Store;
  ctx: BusContext;
  /** Another handle on the same bus (a second process would have its own). */
  second(): Promise<BusContext>;
  /** The operator acting as `agent`. */
  as(agent: string | null): Caller;
  /** An agent token's caller for `agent`. */
  token(agent: string, role?: 'agent' | 'admin' | 'observer'): Caller;
  /** Creates a second project in the same Store (its Redis keys are dropped on success too). */
  otherProject(): Promise<string>;
}

const sqlite = ADAPTERS.find((a) => a.name === 'sqlite')!;
const postgres = ADAPTERS.find((a) => a.name === 'postgres')!;

function makeWorld(
  project: string,
  store: Store,
  open: () => Promise<BusContext>,
  first: BusContext,
  newProject: () => string,
): BusWorld {
  return {
    async otherProject() {
      const other = newProject();
      await store.projects.create(other);
      return other;
    },
    project,
    store,
    ctx: first,
    second: open,
    as: (agent) => ({ project, agent, role: 'operator', via: 'local' }),
    token: (agent, role = 'agent') => ({ project, agent, role, via: 'token', tokenId: `tok_${agent}` }),
  };
}

function fixture(name: string, available: boolean, store: typeof sqlite, redisUrl: string | undefined): BusFixture {
  return {
    name,
    available,
    async open(ctx, options = {}) {
      // On Redis the slug keeps keys apart, and its keys are dropped when the test passes.
      const newProject = () => (redisUrl ? redisProject(ctx, { url: redisUrl }) : `p${Math.random().toString(36).slice(2, 10)}`);
      const project = newProject();
      const s = await store.open(ctx);
      await s.projects.create(project);
      const openCtx = async (): Promise<BusContext> => {
        const bus = await openBus({ redisUrl, maxLen: 100_000 }, s);
        ctx.onTestFinished(() => bus.close());
        return { store: s, bus, maxMessageBytes: 65_536, presenceTtlMs: 90_000, ...(options.now ? { now: options.now } : {}) };
      };
      return makeWorld(project, s, openCtx, await openCtx(), newProject);
    },
  };
}

export const BUS_ADAPTERS: BusFixture[] = [
  fixture('sql on sqlite', true, sqlite, undefined),
  fixture('sql on postgres', postgres.available, postgres, undefined),
  fixture('redis', services.redis !== null, sqlite, services.redisUrl),
];

/** Registers agents (and optionally squads) in the world's project. */
export async function seedAgents(world: BusWorld, agents: Record<string, 'coordinator' | 'worker'>, squads: Record<string, string[]> = {}) {
  for (const [name, role] of Object.entries(agents)) {
    await world.store.agents.add({ project: world.project, name, kind: 'custom', role, capabilities: [], session: null });
  }
  for (const [squad, members] of Object.entries(squads)) {
    await world.store.squads.create(world.project, squad, null);
    for (const m of members) await world.store.squads.join(world.project, squad, m);
  }
}
