import { Unavailable, UsageError } from '../errors.js';

/**
 * A circuit breaker per provider, so a provider that keeps failing is left alone for a while
 * instead of costing every turn of the loop its timeout.
 *
 * - closed: calls pass. `failureThreshold` consecutive failures (timeouts included) open it.
 * - open: calls are refused (counted as rejections) until `coolDownMs` has passed since it opened.
 * - half-open: after the cool-down exactly one call, the probe, is let through; callers that come
 *   while the probe is in flight are refused. The probe's success closes the breaker, its failure
 *   opens it again for another cool-down.
 *
 * A call is a permit: `acquire()` returns one (or null when refused) and the caller settles it
 * with `success()`, `failure()` or `cancel()` (the caller gave up: no verdict on the provider; a
 * cancelled probe lets the next caller probe). A permit taken before the state last changed only
 * counts: a slow call that fails after the breaker opened does not extend the cool-down, and one
 * that succeeds while it is open does not close it; only the probe decides.
 */

export type BreakerState = 'closed' | 'open' | 'half-open';

export interface BreakerOptions {
  /** Consecutive failures that open the breaker (default 3). */
  failureThreshold?: number;
  /** How long it stays open before a probe is allowed, in ms (default 60 s). */
  coolDownMs?: number;
  /** Epoch ms; injectable for tests. */
  now?: () => number;
}

export interface BreakerCounters {
  /** Calls let through (probes included). */
  calls: number;
  successes: number;
  /** Failed calls, timeouts included. */
  failures: number;
  timeouts: number;
  /** Times the breaker opened (a failed probe re-opens it and counts again). */
  opens: number;
  /** Calls refused because the breaker was open or a probe was in flight. */
  rejections: number;
}

export interface BreakerSnapshot {
  name: string;
  state: BreakerState;
  consecutiveFailures: number;
  failureThreshold: number;
  coolDownMs: number;
  /** Epoch ms of the last opening, or null if it never opened. */
  openedAt: number | null;
  /** When an open breaker lets a probe through (epoch ms), else null. */
  probeAt: number | null;
  probeInFlight: boolean;
  lastError: string | null;
  counters: BreakerCounters;
}

export interface Permit {
  /** True for the one call let through in half-open. */
  readonly probe: boolean;
  success(): void;
  /** `timeout: true` also counts it under `timeouts`. */
  failure(info?: { timeout?: boolean; error?: string }): void;
  cancel(): void;
}

export const DEFAULT_FAILURE_THRESHOLD = 3;
export const DEFAULT_COOL_DOWN_MS = 60_000;

export class CircuitBreaker {
  readonly name: string;
  private readonly threshold: number;
  private readonly coolDownMs: number;
  private readonly now: () => number;
  private current: 'closed' | 'open' = 'closed';
  private consecutive = 0;
  private openedAt: number | null = null;
  private probing = false;
  /** Bumped on every state change; a permit from an older generation only counts. */
  private generation = 0;
  private lastError: string | null = null;
  private readonly counters: BreakerCounters = { calls: 0, successes: 0, failures: 0, timeouts: 0, opens: 0, rejections: 0 };

  constructor(name: string, options: BreakerOptions = {}) {
    this.name = name;
    this.threshold = options.failureThreshold ?? DEFAULT_FAILURE_THRESHOLD;
    this.coolDownMs = options.coolDownMs ?? DEFAULT_COOL_DOWN_MS;
    this.now = options.now ?? Date.now;
    if (!Number.isInteger(this.threshold) || this.threshold < 1) throw new UsageError(`breaker ${name}: the failure threshold must be an integer ≥ 1`);
    if (!Number.isFinite(this.coolDownMs) || this.coolDownMs < 0) throw new UsageError(`breaker ${name}: the cool-down must be ≥ 0 ms`);
  }

  get state(): BreakerState {
    if (this.current === 'closed') return 'closed';
    return this.probing || this.coolDownOver() ? 'half-open' : 'open';
  }

  private coolDownOver(): boolean {
    return this.openedAt !== null && this.now() - this.openedAt >= this.coolDownMs;
  }

  /** A permit to call, or null when the breaker refuses (counted as a rejection). */
  acquire(): Permit | null {
    if (this.current === 'closed') return this.permit(false);
    if (!this.probing && this.coolDownOver()) {
      this.probing = true;
      return this.permit(true);
    }
    this.counters.rejections++;
    return null;
  }

  private permit(probe: boolean): Permit {
    this.counters.calls++;
    const generation = this.generation;
    let settled = false;
    /** Runs once per permit; `current` is false when the state changed since the permit was given. */
    const settle = (fn: (current: boolean) => void) => {
      if (settled) return;
      settled = true;
      fn(generation === this.generation);
    };
    return {
      probe,
      success: () =>
        settle((current) => {
          this.counters.successes++;
          if (current) this.close();
        }),
      failure: (info = {}) =>
        settle((current) => {
          this.counters.failures++;
          if (info.timeout) this.counters.timeouts++;
          if (info.error !== undefined) this.lastError = info.error.slice(0, 300);
          if (!current) return;
          if (probe || ++this.consecutive >= this.threshold) this.open();
        }),
      cancel: () =>
        settle((current) => {
          if (current && probe) this.probing = false;
        }),
    };
  }

  private open(): void {
    this.current = 'open';
    this.openedAt = this.now();
    this.probing = false;
    this.consecutive = Math.max(this.consecutive, this.threshold);
    this.counters.opens++;
    this.generation++;
  }

  private close(): void {
    const changed = this.current !== 'closed';
    this.current = 'closed';
    this.consecutive = 0;
    this.probing = false;
    if (changed) this.generation++;
  }

  /** Runs `fn` under the breaker; refused calls throw `refused()`'s error without calling it. */
  async run<T>(fn: () => Promise<T>, classify: (err: unknown) => 'failure' | 'timeout' | 'cancel' = () => 'failure'): Promise<T> {
    const permit = this.acquire();
    if (!permit) throw this.refused();
    try {
      const value = await fn();
      permit.success();
      return value;
    } catch (err) {
      const kind = classify(err);
      if (kind === 'cancel') permit.cancel();
      else permit.failure({ timeout: kind === 'timeout', error: err instanceof Error ? err.message : String(err) });
      throw err;
    }
  }

  /**
   * Takes on a state saved by another process (`snapshot()` there): open or closed, the failure
   * streak, when it opened, the last error and the counters. A probe in flight elsewhere is not
   * taken on: this process may probe once the cool-down is over.
   */
  restore(saved: Pick<BreakerSnapshot, 'state' | 'consecutiveFailures' | 'openedAt' | 'lastError' | 'counters'>): void {
    this.current = saved.state === 'closed' ? 'closed' : 'open';
    this.consecutive = Math.max(0, Math.floor(saved.consecutiveFailures));
    this.openedAt = this.current === 'open' ? (saved.openedAt ?? this.now()) : saved.openedAt;
    this.probing = false;
    this.lastError = saved.lastError;
    for (const key of Object.keys(this.counters) as (keyof BreakerCounters)[]) {
      const v = saved.counters?.[key];
      if (typeof v === 'number' && Number.isFinite(v) && v >= 0) this.counters[key] = v;
    }
    this.generation++;
  }

  /** The error for a refused call. */
  refused(): BreakerOpen {
    const s = this.snapshot();
    return new BreakerOpen(this.name, s.state, s.probeAt);
  }

  snapshot(): BreakerSnapshot {
    const state = this.state;
    return {
      name: this.name,
      state,
      consecutiveFailures: this.consecutive,
      failureThreshold: this.threshold,
      coolDownMs: this.coolDownMs,
      openedAt: this.openedAt,
      probeAt: state === 'open' && this.openedAt !== null ? this.openedAt + this.coolDownMs : null,
      probeInFlight: this.probing,
      lastError: this.lastError,
      counters: { ...this.counters },
    };
  }
}


export class BreakerOpen extends Unavailable {
  readonly breaker: string;
  readonly state: BreakerState;
  readonly probeAt: number | null;

  constructor(breaker: string, state: BreakerState, probeAt: number | null) {
    super(
      state === 'half-open'
        ? `provider ${breaker} is being probed after repeated failures; not called meanwhile`
        : `provider ${breaker} is failing; its circuit breaker is open${probeAt !== null ? ` until ${new Date(probeAt).toISOString()}` : ''}`,
      { hint: 'sos brain status shows the breaker of each provider.' },
    );
    this.breaker = breaker;
    this.state = state;
    this.probeAt = probeAt;
  }
}
