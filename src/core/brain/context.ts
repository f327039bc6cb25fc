import type { Bus } from '../bus/port.js';
import type { ConfigValues } from '../config/variables.js';
import { loadPrices } from '../economy/prices.js';
import { parsePlanLimits } from '../economy/quota.js';
import { SqlLifecycleRepo } from '../lifecycle/sql-lifecycle.js';
import type { MemoryContext } from '../memory/service.js';
import type { Store } from '../store/port.js';
import type { CircuitBreaker } from './breaker.js';
import type { BrainContext } from './cycle.js';
import { providersFromValues } from './tiers.js';

/**
 * The brain's context from the configuration, for `sos brain run` and the daemon's `brain` loop
 * alike: the providers of SOS_BRAIN_PROVIDER…, their breakers (the daemon passes one map for
 * its whole life), the price table, plan limits, and the doctor's checks for `health_check`.
 * Null when no provider is configured: the brain is off.
 */
export async function brainFromConfig(
  values: ConfigValues,
  parts: { store: Store; bus: Bus; memory?: MemoryContext | null; cwd: string; env?: NodeJS.ProcessEnv; breakers?: Map<string, CircuitBreaker> },
): Promise<BrainContext | null> {
  const providers = providersFromValues(values, parts.env ?? process.env);
  if (!providers.length) return null;
  const { runChecks } = await import('../doctor/checks.js');
  return {
    tasks: { store: parts.store, bus: parts.bus, maxTextBytes: values.maxMessageBytes },
    ...(parts.memory ? { memory: parts.memory } : {}),
    lifecycle: new SqlLifecycleRepo(parts.store.sql),
    providers,
    breakers: parts.breakers ?? new Map(),
    breakerOptions: { failureThreshold: values.brainFailures, coolDownMs: values.brainCoolDownMs },
    prices: loadPrices(values.prices),
    tier: values.brainTier,
    health: () => runChecks(values, parts.cwd),
    planLimits: parsePlanLimits(values.planLimits),
    quotaMarginMs: values.quotaMarginMs,
  };
}
