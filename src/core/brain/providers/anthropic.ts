import { UsageError } from '../../errors.js';
import { DECISION_JSON_SCHEMA } from '../decision.js';
import {
  type DecideRequest,
  type DecideResponse,
  type Provider,
  ProviderError,
  promptWithRetry,
  type RateLimits,
  type RateLimitWindow,
  tokens,
  type TokenUsage,
} from '../provider.js';
import { checkedBaseUrl, checkedTimeout, DEFAULT_HTTP_TIMEOUT_MS, httpError, jsonBody, postJson } from './http.js';

/**
 * The Anthropic Messages API, non-streaming: `POST <base>/v1/messages` with one tool, `decide`,
 * whose input schema is the decision's, and `tool_choice` forcing that tool, so the answer is a
 * structured object rather than text to pick apart. The system prompt is marked for prompt caching
 * (it is the same on every turn of the loop); below the model's minimum cacheable length the API
 * simply does not cache it.
 *
 * Subscription quota comes back in `anthropic-ratelimit-unified-{5h,7d}-{utilization,reset}`
 * headers (utilization 0–1, reset epoch seconds; the names Claude Code reads), on success and on
 * a 429 alike.
 */

export const ANTHROPIC_DEFAULT_URL = 'https://api.anthropic.com';
export const ANTHROPIC_VERSION = '2023-06-01';
export const DECIDE_TOOL = 'decide';

export interface AnthropicOptions {
  /** Default `anthropic`. */
  name?: string;
  /** Without the `/v1` path; default `ANTHROPIC_DEFAULT_URL`. */
  baseUrl?: string;
  apiKey: string;
  /** Per call, in milliseconds (default 120 s). */
  timeoutMs?: number;
  /** Mark the system prompt for caching (default true). */
  cacheSystem?: boolean;
}

interface ContentBlock {
  type?: unknown;
  name?: unknown;
  input?: unknown;
  text?: unknown;
}

const WINDOWS = [
  ['fiveHour', '5h'],
  ['sevenDay', '7d'],
] as const;

/** The unified rate-limit headers, when present. */
export function anthropicRateLimits(headers: Headers): RateLimits | undefined {
  const out: RateLimits = {};
  for (const [key, tag] of WINDOWS) {
    const utilization = headers.get(`anthropic-ratelimit-unified-${tag}-utilization`);
    if (utilization === null || utilization.trim() === '') continue;
    const used = Number(utilization);
    if (!Number.isFinite(used) || used < 0) continue;
    const reset = Number(headers.get(`anthropic-ratelimit-unified-${tag}-reset`) ?? Number.NaN);
    const window: RateLimitWindow = {
      usedPercent: Math.round(used * 100 * 1000) / 1000,
      resetsAt: Number.isFinite(reset) && reset > 0 ? Math.round(reset) * 1000 : null,
    };
    out[key] = window;
  }
  return out.fiveHour || out.sevenDay ? out : undefined;
}

/** The API's usage, in the ledger's terms (the 5m/1h split replaces the creation total when given). */
export function anthropicUsage(usage: unknown): TokenUsage {
  const u = (usage && typeof usage === 'object' ? usage : {}) as Record<string, unknown>;
  const split = (u['cache_creation'] && typeof u['cache_creation'] === 'object' ? u['cache_creation'] : undefined) as
    | Record<string, unknown>
    | undefined;
  const hasSplit = split !== undefined && (typeof split['ephemeral_5m_input_tokens'] === 'number' || typeof split['ephemeral_1h_input_tokens'] === 'number');
  return {
    inputTokens: tokens(u['input_tokens']),
    outputTokens: tokens(u['output_tokens']),
    cacheWriteTokens: hasSplit ? tokens(split['ephemeral_5m_input_tokens']) : tokens(u['cache_creation_input_tokens']),
    cacheWrite1hTokens: hasSplit ? tokens(split['ephemeral_1h_input_tokens']) : 0,
    cacheReadTokens: tokens(u['cache_read_input_tokens']),
  };
}

export class AnthropicProvider implements Provider {
  readonly kind = 'anthropic' as const;
  readonly name: string;
  private readonly url: string;
  private readonly apiKey: string;
  private readonly timeoutMs: number;
  private readonly cacheSystem: boolean;

  constructor(options: AnthropicOptions) {
    this.name = options.name ?? 'anthropic';
    if (!options.apiKey) throw new UsageError(`${this.name}: no API key configured`, { hint: 'Set the Anthropic API key for the brain.' });
    this.url = `${checkedBaseUrl(options.baseUrl ?? ANTHROPIC_DEFAULT_URL, this.name)}/v1/messages`;
    this.apiKey = options.apiKey;
    this.timeoutMs = checkedTimeout(options.timeoutMs, DEFAULT_HTTP_TIMEOUT_MS, this.name);
    this.cacheSystem = options.cacheSystem ?? true;
  }

  /** The exact request body (exported for tests and `sos brain` dry runs). */
  body(req: DecideRequest): Record<string, unknown> {
    const system = req.system
      ? [{ type: 'text', text: req.system, ...(this.cacheSystem ? { cache_control: { type: 'ephemeral' } } : {}) }]
      : undefined;
    return {
      model: req.model,
      max_tokens: req.maxTokens,
      ...(system ? { system } : {}),
      messages: [{ role: 'user', content: promptWithRetry(req.prompt, req.retryError) }],
      tools: [{ name: DECIDE_TOOL, description: 'Record the one next action the coordinator takes.', input_schema: DECISION_JSON_SCHEMA }],
      tool_choice: { type: 'tool', name: DECIDE_TOOL },
    };
  }

  async decide(req: DecideRequest): Promise<DecideResponse> {
    const answer = await postJson({
      provider: this.name,
      url: this.url,
      headers: { 'x-api-key': this.apiKey, 'anthropic-version': ANTHROPIC_VERSION },
      body: this.body(req),
      timeoutMs: this.timeoutMs,
      signal: req.signal,
    });
    const rateLimits = anthropicRateLimits(answer.headers);
    if (answer.status < 200 || answer.status >= 300) throw httpError(this.name, answer, { rateLimits });
    const message = jsonBody(this.name, answer);
    if (!message || typeof message !== 'object' || !Array.isArray((message as { content?: unknown }).content)) {
      throw new ProviderError(this.name, answer.status, `${this.name}: the answer has no content array`, { retryable: true });
    }
    const m = message as { content: ContentBlock[]; model?: unknown; usage?: unknown; stop_reason?: unknown };
    const texts = m.content.filter((b) => b?.type === 'text' && typeof b.text === 'string').map((b) => b.text as string);
    const text = texts.length > 0 ? texts.join('\n') : null;
    const call = m.content.find((b) => b?.type === 'tool_use' && b.name === DECIDE_TOOL);
    const out: DecideResponse = {
      raw: call ? call.input : (text ?? ''),
      text,
      usage: anthropicUsage(m.usage),
      model: typeof m.model === 'string' && m.model ? m.model : req.model,
    };
    if (rateLimits) out.rateLimits = rateLimits;
    if (typeof m.stop_reason === 'string') out.stopReason = m.stop_reason;
    return out;
  }
}
