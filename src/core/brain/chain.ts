import { SosError, UsageError } from '../errors.js';
import { type BreakerOptions, type BreakerSnapshot, CircuitBreaker } from './breaker.js';
import { type DecideRequest, type DecideResponse, type Provider, ProviderError, type ProviderErrorStatus } from './provider.js';

/**
 * A fallback chain over [provider, model] entries, tried in order for each decision:
 *
 * - an entry whose provider's breaker refuses the call (open, or half-open with its probe in
 *   flight) is skipped;
 * - a retryable failure (5xx, 429, timeout, network, a bad key…) is counted by the breaker and
 *   the next entry is tried;
 * - a non-retryable failure (the request itself refused: 400, 413, 422) is counted by the breaker
 *   too, but stops the chain: the next provider would be sent the same request. The error says so;
 * - the caller's cancellation stops the chain, counted by nobody.
 *
 * There is one breaker per provider name, shared by every entry of that provider (and with other
 * chains when the same `breakers` map is passed), so a down provider is skipped under every model.
 */

export interface ChainEntry {
  provider: Provider;
  model: string;
  /** Overrides the request's `maxTokens` for this entry. */
  maxTokens?: number;
}

export type AttemptOutcome = 'answered' | 'skipped' | 'failed';

export interface ChainAttempt {
  provider: string;
  model: string;
  outcome: AttemptOutcome;
  /** Why it was skipped or how it failed. */
  error?: string;
  status?: ProviderErrorStatus;
  retryable?: boolean;
  ms: number;
}

export interface ChainAnswer {
  /** The entry that answered, and its place in the chain. */
  entry: ChainEntry;
  index: number;
  response: DecideResponse;
  /** Every entry tried or skipped for this decision, in order, ending with the one that answered. */
  attempts: ChainAttempt[];
}

export type ChainRequest = Omit<DecideRequest, 'model'>;

export interface ChainOptions {
  breaker?: BreakerOptions;
  /** Breakers by provider name, to share them between chains; missing ones are created here. */
  breakers?: Map<string, CircuitBreaker>;
  /** Epoch ms for the attempts' durations (default `Date.now`; the breakers take `breaker.now`). */
  now?: () => number;
}

export interface ChainStatus {
  entries: { provider: string; kind: Provider['kind']; model: string; breaker: BreakerSnapshot['state'] }[];
  breakers: BreakerSnapshot[];
}

/** No entry answered. `retryable` is false when a non-retryable error stopped the chain. */
export class ChainFailed extends SosError {
  readonly attempts: ChainAttempt[];
  readonly retryable: boolean;

  constructor(message: string, attempts: ChainAttempt[], retryable: boolean, cause?: unknown) {
    super(retryable ? 'unavailable' : 'failed', message, {
      hint: retryable ? 'Every provider is failing or its breaker is open; sos brain status shows them.' : 'The request was refused as such; retrying elsewhere would not help.',
      cause,
    });
    this.attempts = attempts;
    this.retryable = retryable;
  }
}

function summary(attempts: ChainAttempt[]): string {
  return attempts.map((a) => `${a.provider}:${a.model} ${a.outcome === 'skipped' ? 'skipped' : a.status ?? 'failed'}`).join(', ');
}

export class ProviderChain {
  private readonly entries: ChainEntry[];
  private readonly breakers: Map<string, CircuitBreaker>;
  private readonly now: () => number;

  constructor(entries: ChainEntry[], options: ChainOptions = {}) {
    if (entries.length === 0) throw new UsageError('the brain needs at least one [provider, model] entry');
    for (const e of entries) if (!e.model.trim()) throw new UsageError(`brain provider ${e.provider.name}: an entry has no model`);
    this.entries = [...entries];
    this.breakers = options.breakers ?? new Map();
    this.now = options.now ?? Date.now;
    for (const { provider } of entries) {
      if (!this.breakers.has(provider.name)) this.breakers.set(provider.name, new CircuitBreaker(provider.name, options.breaker));
    }
  }

  breaker(providerName: string): CircuitBreaker | undefined {
    return this.breakers.get(providerName);
  }

  status(): ChainStatus {
    const names = [...new Set(this.entries.map((e) => e.provider.name))];
    return {
      entries: this.entries.map((e) => ({ provider: e.provider.name, kind: e.provider.kind, model: e.model, breaker: this.breakers.get(e.provider.name)!.state })),
      breakers: names.map((n) => this.breakers.get(n)!.snapshot()),
    };
  }

  async decide(req: ChainRequest): Promise<ChainAnswer> {
    const attempts: ChainAttempt[] = [];
    let lastError: unknown;
    for (const [index, entry] of this.entries.entries()) {
      const { provider, model } = entry;
      if (req.signal?.aborted) throw new ProviderError(provider.name, 'aborted', 'the brain call was cancelled');
      const breaker = this.breakers.get(provider.name)!;
      const started = this.now();
      const permit = breaker.acquire();
      if (!permit) {
        attempts.push({ provider: provider.name, model, outcome: 'skipped', error: breaker.refused().message, ms: 0 });
        continue;
      }
      try {
        const response = await provider.decide({ ...req, model, maxTokens: entry.maxTokens ?? req.maxTokens });
        permit.success();
        attempts.push({ provider: provider.name, model, outcome: 'answered', ms: this.now() - started });
        return { entry, index, response, attempts };
      } catch (err) {
        const ms = this.now() - started;
        lastError = err;
        const pe = err instanceof ProviderError ? err : undefined;
        if (pe?.status === 'aborted') {
          permit.cancel();
          throw pe;
        }
        const message = err instanceof Error ? err.message : String(err);
        permit.failure({ timeout: pe?.status === 'timeout', error: message });
        // Anything that is not a ProviderError is a bug, not an outage: no use trying elsewhere.
        const retryable = pe?.retryable ?? false;
        const attempt: ChainAttempt = { provider: provider.name, model, outcome: 'failed', error: message, retryable, ms };
        if (pe) attempt.status = pe.status;
        attempts.push(attempt);
        if (!retryable) {
          throw new ChainFailed(`${message} (not retryable: the chain stopped at ${provider.name}:${model})`, attempts, false, err);
        }
      }
    }
    const allSkipped = attempts.every((a) => a.outcome === 'skipped');
    const message = allSkipped
      ? `no brain provider is available: every circuit breaker is open (${summary(attempts)})`
      : `no brain provider answered (${summary(attempts)})`;
    throw new ChainFailed(message, attempts, true, lastError);
  }
}
