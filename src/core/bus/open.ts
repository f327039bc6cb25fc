import type { Store } from '../store/port.js';
import type { Bus } from './port.js';
import { SqlBus } from './sql-bus.js';

export interface BusOptions {
  /** Absent: the bus lives in the Store's database. */
  redisUrl: string | undefined;
  maxLen: number;
}

/** Opens the configured Bus; `ioredis` is loaded only when a Redis URL is configured. */
export async function openBus(options: BusOptions, store: Store): Promise<Bus> {
  if (options.redisUrl === undefined) return new SqlBus(store.sql);
  const { RedisBus } = await import('./redis-bus.js');
  const bus = new RedisBus({ url: options.redisUrl, maxLen: options.maxLen });
  if ('connect' in bus && typeof bus.connect === 'function') await bus.connect();
  return bus;
}
