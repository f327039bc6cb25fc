/**
 * The brain's provider layer (issue 14): the decision schema, the `Provider` port and its
 * adapters, circuit breakers and the fallback chain. The coordinator loop and the motor build on
 * this; nothing here touches the daemon, the CLI, the configuration or the ledger.
 */

export {
  DECISION_JSON_SCHEMA,
  DECISION_LIMITS,
  DECISION_STRICT_JSON_SCHEMA,
  DecisionSchema,
  extractJsonObject,
  parseDecision,
  PRIORITY_WORDS,
  RISKS,
  toStrictJsonSchema,
  type Decision,
  type DecisionDetails,
  type DetailValue,
  type ExtractedObject,
  type JsonSchema,
  type ParsedDecision,
  type Risk,
  type Scalar,
} from './decision.js';
export {
  promptWithRetry,
  ProviderError,
  retryableStatus,
  tokens,
  ZERO_USAGE,
  type DecideRequest,
  type DecideResponse,
  type Provider,
  type ProviderErrorOptions,
  type ProviderErrorStatus,
  type ProviderKind,
  type RateLimits,
  type RateLimitWindow,
  type TokenUsage,
} from './provider.js';
export { deadline, type Deadline, type DeadlineReason } from './deadline.js';
export {
  ANTHROPIC_DEFAULT_URL,
  ANTHROPIC_VERSION,
  AnthropicProvider,
  anthropicRateLimits,
  anthropicUsage,
  DECIDE_TOOL,
  type AnthropicOptions,
} from './providers/anthropic.js';
export { OpenAIProvider, openaiUsage, type OpenAIOptions } from './providers/openai.js';
export { CLAUDE_CLI_DEFAULT_TIMEOUT_MS, ClaudeCliProvider, type ClaudeCliOptions } from './providers/claude-cli.js';
export { DEFAULT_HTTP_TIMEOUT_MS } from './providers/http.js';
export {
  BreakerOpen,
  CircuitBreaker,
  DEFAULT_COOL_DOWN_MS,
  DEFAULT_FAILURE_THRESHOLD,
  type BreakerCounters,
  type BreakerOptions,
  type BreakerSnapshot,
  type BreakerState,
  type Permit,
} from './breaker.js';
export {
  ChainFailed,
  ProviderChain,
  type AttemptOutcome,
  type ChainAnswer,
  type ChainAttempt,
  type ChainEntry,
  type ChainOptions,
  type ChainRequest,
  type ChainStatus,
} from './chain.js';
