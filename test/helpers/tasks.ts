import type { TestContext } from 'vitest';
import type { TaskContext } from '../../src/core/tasks/service.js';
import { BUS_ADAPTERS, type BusWorld } from './bus.js';

/** Task fixtures: the Store (and its SQL bus) on SQLite and on PostgreSQL. */
export interface TaskWorld extends BusWorld {
  tasks: TaskContext;
}

export const TASK_ADAPTERS = BUS_ADAPTERS.filter((a) => a.name.startsWith('sql on')).map((a) => ({
  name: a.name.replace('sql on ', ''),
  available: a.available,
  async open(ctx: TestContext, options: { now?: () => number; backoff?: (attempt: number) => number } = {}): Promise<TaskWorld> {
    const world = await a.open(ctx, options.now ? { now: options.now } : {});
    const tasks: TaskContext = {
      store: world.store,
      bus: world.ctx.bus,
      maxTextBytes: 65_536,
      ...(options.now ? { now: options.now } : {}),
      backoff: options.backoff ?? (() => 0),
    };
    return { ...world, tasks };
  },
}));
