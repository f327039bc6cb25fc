import { DECISION_STRICT_JSON_SCHEMA } from '../decision.js';
import {
  type DecideRequest,
  type DecideResponse,
  type Provider,
  ProviderError,
  promptWithRetry,
  tokens,
  type TokenUsage,
} from '../provider.js';
import { checkedBaseUrl, checkedTimeout, DEFAULT_HTTP_TIMEOUT_MS, httpError, jsonBody, postJson } from './http.js';

/**
 * OpenAI-compatible chat completions: `POST <base>/chat/completions`, where the base includes the
 * version path (`http://127.0.0.1:11434/v1` for Ollama, `https://api.openai.com/v1`,
 * `https://openrouter.ai/api/v1`). The decision is asked for as a strict `json_schema`
 * response format, with the strict form of the schema (every object closed, every key present);
 * `parseDecision` still checks the bounds strict mode cannot express.
 *
 * `raw` is the message content parsed as JSON, or the content itself when it does not parse (a
 * server that ignores response formats), so the caller's `parseDecision` reports what is wrong.
 */

export interface OpenAIOptions {
  /** Default `openai`. */
  name?: string;
  /** Including the version path, e.g. `http://127.0.0.1:11434/v1`. */
  baseUrl: string;
  /** Sent as `Authorization: Bearer <key>` when given (a local Ollama needs none). */
  apiKey?: string;
  /** Per call, in milliseconds (default 120 s). */
  timeoutMs?: number;
  /**
   * The name of the output limit: `max_tokens` (default: Ollama, OpenRouter and most servers) or
   * `max_completion_tokens` (OpenAI's reasoning models refuse `max_tokens`).
   */
  maxTokensField?: 'max_tokens' | 'max_completion_tokens';
}

/** OpenAI counts cached input inside `prompt_tokens`; the ledger counts it apart. */
export function openaiUsage(usage: unknown): TokenUsage {
  const u = (usage && typeof usage === 'object' ? usage : {}) as Record<string, unknown>;
  const details = (u['prompt_tokens_details'] && typeof u['prompt_tokens_details'] === 'object' ? u['prompt_tokens_details'] : {}) as Record<string, unknown>;
  const prompt = tokens(u['prompt_tokens']);
  const cached = Math.min(tokens(details['cached_tokens']), prompt);
  return {
    inputTokens: prompt - cached,
    outputTokens: tokens(u['completion_tokens']),
    cacheWriteTokens: 0,
    cacheWrite1hTokens: 0,
    cacheReadTokens: cached,
  };
}

export class OpenAIProvider implements Provider {
  readonly kind = 'openai' as const;
  readonly name: string;
  private readonly url: string;
  private readonly apiKey: string | undefined;
  private readonly timeoutMs: number;
  private readonly maxTokensField: 'max_tokens' | 'max_completion_tokens';

  constructor(options: OpenAIOptions) {
    this.name = options.name ?? 'openai';
    this.url = `${checkedBaseUrl(options.baseUrl, this.name)}/chat/completions`;
    this.apiKey = options.apiKey || undefined;
    this.timeoutMs = checkedTimeout(options.timeoutMs, DEFAULT_HTTP_TIMEOUT_MS, this.name);
    this.maxTokensField = options.maxTokensField ?? 'max_tokens';
  }

  /** The exact request body (exported for tests and dry runs). */
  body(req: DecideRequest): Record<string, unknown> {
    const messages = [
      ...(req.system ? [{ role: 'system', content: req.system }] : []),
      { role: 'user', content: promptWithRetry(req.prompt, req.retryError) },
    ];
    return {
      model: req.model,
      messages,
      [this.maxTokensField]: req.maxTokens,
      stream: false,
      response_format: { type: 'json_schema', json_schema: { name: 'decision', strict: true, schema: DECISION_STRICT_JSON_SCHEMA } },
    };
  }

  async decide(req: DecideRequest): Promise<DecideResponse> {
    const answer = await postJson({
      provider: this.name,
      url: this.url,
      headers: this.apiKey ? { authorization: `Bearer ${this.apiKey}` } : {},
      body: this.body(req),
      timeoutMs: this.timeoutMs,
      signal: req.signal,
    });
    if (answer.status < 200 || answer.status >= 300) throw httpError(this.name, answer);
    const completion = jsonBody(this.name, answer) as {
      choices?: { message?: { content?: unknown; refusal?: unknown }; finish_reason?: unknown }[];
      model?: unknown;
      usage?: unknown;
    } | null;
    const choice = Array.isArray(completion?.choices) ? completion.choices[0] : undefined;
    if (!choice || !choice.message || typeof choice.message !== 'object') {
      throw new ProviderError(this.name, answer.status, `${this.name}: the answer has no choices[0].message`, { retryable: true });
    }
    const { content, refusal } = choice.message;
    const text = typeof content === 'string' ? content : typeof refusal === 'string' ? refusal : null;
    let raw: unknown = text ?? '';
    if (typeof content === 'string') {
      try {
        raw = JSON.parse(content) as unknown;
      } catch {
        raw = content;
      }
    }
    const out: DecideResponse = {
      raw,
      text,
      usage: openaiUsage(completion?.usage),
      model: typeof completion?.model === 'string' && completion.model ? completion.model : req.model,
    };
    if (typeof choice.finish_reason === 'string') out.stopReason = choice.finish_reason;
    return out;
  }
}
