import type { ConfigValues } from '../config/variables.js';
import type { Store } from '../store/port.js';
import { openBus } from './open.js';
import type { BusContext } from './service.js';

/** Opens the configured bus over an open Store; the caller closes `ctx.bus` before the Store. */
export async function openBusContext(values: ConfigValues, store: Store): Promise<BusContext> {
  const bus = await openBus({ redisUrl: values.redisUrl, maxLen: values.busMaxLen }, store);
  return { store, bus, maxMessageBytes: values.maxMessageBytes, presenceTtlMs: values.presenceTtlMs };
}
