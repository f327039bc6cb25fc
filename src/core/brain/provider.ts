import { SosError } from '../errors.js';

/**
 * The brain's model port (issue 14): a provider is asked for one decision and answers with what
 * the model returned, unvalidated (`parseDecision` judges it), plus what the call cost.
 *
 * - provider: one configured way of reaching models (`anthropic` Messages API, an
 *   OpenAI-compatible chat completions server, the `claude` CLI); `name` tells configured
 *   instances apart (the circuit breakers are per name).
 * - raw: the structured object the provider returned (a tool call's input, a structured output),
 *   or the text when it returned text.
 * - usage: tokens as the ledger counts them: `inputTokens` excludes input read from the cache;
 *   `cacheWriteTokens` are 5-minute cache writes (or all writes when the provider does not split
 *   them) and `cacheWrite1hTokens` the 1-hour ones.
 * - rate limits: a subscription's quota windows as the provider reported them, `usedPercent`
 *   0–100 and `resetsAt` epoch milliseconds (the `quota_readings` units).
 */

export type ProviderKind = 'anthropic' | 'openai' | 'claude-cli';

export interface DecideRequest {
  system: string;
  prompt: string;
  model: string;
  maxTokens: number;
  /** The caller's cancellation (daemon shutdown); distinct from the provider's own timeout. */
  signal?: AbortSignal;
  /** Why the previous answer was refused (`parseDecision`'s error), told to the model. */
  retryError?: string;
}

export interface TokenUsage {
  inputTokens: number;
  outputTokens: number;
  cacheWriteTokens: number;
  cacheWrite1hTokens: number;
  cacheReadTokens: number;
}

export interface RateLimitWindow {
  usedPercent: number;
  /** Epoch ms; null when the provider gave none. */
  resetsAt: number | null;
}

export interface RateLimits {
  fiveHour?: RateLimitWindow;
  sevenDay?: RateLimitWindow;
}

export interface DecideResponse {
  raw: unknown;
  /** The text the model wrote, if any (beside a tool call, or the whole answer). */
  text: string | null;
  usage: TokenUsage;
  /** The model as the provider reported it (may differ from the one asked for). */
  model: string;
  rateLimits?: RateLimits;
  /** What the provider itself says the call cost (the `claude` CLI's `total_cost_usd`). */
  costUsd?: number;
  /** `tool_use`, `end_turn`, `max_tokens`, `stop`, `length`…, when the provider says. */
  stopReason?: string;
}

export interface Provider {
  readonly name: string;
  readonly kind: ProviderKind;
  decide(req: DecideRequest): Promise<DecideResponse>;
}

export const ZERO_USAGE: TokenUsage = Object.freeze({
  inputTokens: 0,
  outputTokens: 0,
  cacheWriteTokens: 0,
  cacheWrite1hTokens: 0,
  cacheReadTokens: 0,
});

/**
 * HTTP status, or what went wrong without one: `timeout` (the provider's deadline passed),
 * `network` (no connection, reset), `exit` (a CLI provider failed to run or exited wrongly),
 * `aborted` (the caller cancelled: not the provider's fault, not counted by the breaker).
 */
export type ProviderErrorStatus = number | 'timeout' | 'network' | 'exit' | 'aborted';

export interface ProviderErrorOptions {
  retryable?: boolean;
  hint?: string;
  cause?: unknown;
  retryAfterMs?: number;
  rateLimits?: RateLimits;
}

/**
 * Whether another attempt, later or at the next entry of a chain, may succeed. Refused: the
 * request itself (400 bad request, 413 too large, 422 unprocessable), which no retry changes, and
 * the caller's own cancellation. Everything else is the provider's state (overloaded, rate
 * limited, down, a bad key or model name, a crashed CLI), which the next provider does not share.
 */
export function retryableStatus(status: ProviderErrorStatus): boolean {
  if (typeof status === 'number') return !(status === 400 || status === 413 || status === 422);
  return status !== 'aborted';
}

export class ProviderError extends SosError {
  readonly provider: string;
  readonly status: ProviderErrorStatus;
  readonly retryable: boolean;
  readonly retryAfterMs: number | undefined;
  readonly rateLimits: RateLimits | undefined;

  constructor(provider: string, status: ProviderErrorStatus, message: string, options: ProviderErrorOptions = {}) {
    const retryable = options.retryable ?? retryableStatus(status);
    const base: { hint?: string; cause?: unknown } = {};
    if (options.hint !== undefined) base.hint = options.hint;
    if (options.cause !== undefined) base.cause = options.cause;
    super(retryable ? 'unavailable' : 'failed', message, base);
    this.provider = provider;
    this.status = status;
    this.retryable = retryable;
    this.retryAfterMs = options.retryAfterMs;
    this.rateLimits = options.rateLimits;
  }
}

/** The user turn: the prompt, and after a refused answer, why it was refused. */
export function promptWithRetry(prompt: string, retryError?: string): string {
  if (!retryError) return prompt;
  return `${prompt}\n\nYour previous answer was refused: ${retryError}\nAnswer again with exactly one decision that fits the schema.`;
}

/** A token count from a provider's usage object: a non-negative integer, else 0. */
export function tokens(value: unknown): number {
  return typeof value === 'number' && Number.isFinite(value) && value > 0 ? Math.floor(value) : 0;
}
