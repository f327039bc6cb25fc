import { UsageError } from '../../errors.js';
import { deadline } from '../deadline.js';
import { ProviderError, type RateLimits } from '../provider.js';

/**
 * The HTTP side shared by the HTTP providers: one JSON POST under a deadline, with transport
 * failures turned into `ProviderError`s (`timeout`, `aborted`, `network`) and HTTP errors left to
 * the adapter, which knows its vendor's error body and headers.
 */

export const DEFAULT_HTTP_TIMEOUT_MS = 120_000;
/** An answer larger than this is not a decision; reading stops there. */
const MAX_BODY_BYTES = 4 * 1024 * 1024;

export interface HttpAnswer {
  status: number;
  headers: Headers;
  text: string;
}

/** Parses and checks a base URL once, at construction; trailing slashes dropped. */
export function checkedBaseUrl(raw: string, provider: string): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new UsageError(`${provider}: the base URL is not a URL: ${JSON.stringify(raw.slice(0, 200))}`, {
      hint: 'Use e.g. https://api.anthropic.com or http://127.0.0.1:11434/v1',
    });
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new UsageError(`${provider}: the base URL must be http:// or https://, not ${url.protocol}`);
  }
  url.search = '';
  url.hash = '';
  return url.toString().replace(/\/+$/, '');
}

export function checkedTimeout(value: number | undefined, fallback: number, provider: string): number {
  const ms = value ?? fallback;
  if (!Number.isInteger(ms) || ms <= 0) throw new UsageError(`${provider}: the timeout must be a positive number of milliseconds`);
  return ms;
}

/** The URL as errors show it: never with credentials. */
function shown(url: string): string {
  try {
    const copy = new URL(url);
    copy.username = '';
    copy.password = '';
    return copy.toString();
  } catch {
    return '(bad URL)';
  }
}

async function readCapped(response: Response, signal: AbortSignal): Promise<string> {
  if (!response.body) return '';
  const decoder = new TextDecoder();
  let text = '';
  let bytes = 0;
  const reader = response.body.getReader();
  try {
    for (;;) {
      if (signal.aborted) throw signal.reason;
      const { done, value } = await reader.read();
      if (done) break;
      bytes += value.byteLength;
      if (bytes > MAX_BODY_BYTES) throw new RangeError(`the answer is larger than ${MAX_BODY_BYTES} bytes`);
      text += decoder.decode(value, { stream: true });
    }
  } finally {
    await reader.cancel().catch(() => undefined);
  }
  return text + decoder.decode();
}

export interface PostOptions {
  provider: string;
  url: string;
  headers: Record<string, string>;
  body: unknown;
  timeoutMs: number;
  signal?: AbortSignal | undefined;
}

export async function postJson(options: PostOptions): Promise<HttpAnswer> {
  const { provider, url, timeoutMs } = options;
  const where = shown(url);
  const limit = deadline(timeoutMs, options.signal);
  try {
    const response = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json', ...options.headers },
      body: JSON.stringify(options.body),
      signal: limit.signal,
    });
    const text = await readCapped(response, limit.signal);
    return { status: response.status, headers: response.headers, text };
  } catch (err) {
    const reason = limit.reason();
    if (reason === 'timeout') {
      throw new ProviderError(provider, 'timeout', `${provider}: ${where} did not answer within ${timeoutMs} ms`, {
        hint: 'The model may be overloaded or loading; the chain tries the next provider.',
        cause: err,
      });
    }
    if (reason === 'aborted') throw new ProviderError(provider, 'aborted', `${provider}: the call to ${where} was cancelled`, { cause: err });
    if (err instanceof RangeError) throw new ProviderError(provider, 'network', `${provider}: ${where}: ${err.message}`, { retryable: false, cause: err });
    const cause = err instanceof Error && err.cause instanceof Error ? err.cause : err;
    const code = cause && typeof cause === 'object' && 'code' in cause ? String(cause.code) : undefined;
    const why = code ?? (cause instanceof Error ? cause.message : String(cause));
    throw new ProviderError(provider, 'network', `${provider}: cannot reach ${where} (${why})`, {
      hint: 'Check the base URL and that the server is up.',
      cause: err,
    });
  } finally {
    limit.clear();
  }
}

/** The server's own words: `{error: {message}}` (Anthropic, OpenAI), `{error: "…"}` (Ollama), or the text. */
export function serverMessage(body: string): string {
  let text = body.trim();
  try {
    const parsed: unknown = JSON.parse(text);
    if (parsed && typeof parsed === 'object' && 'error' in parsed) {
      const error = (parsed as { error: unknown }).error;
      if (typeof error === 'string') text = error;
      else if (error && typeof error === 'object' && 'message' in error && typeof error.message === 'string') text = error.message;
    }
  } catch {
    // not JSON: the raw text
  }
  return text.replace(/\s+/g, ' ').slice(0, 300) || '(empty body)';
}

/** `retry-after` in seconds or as an HTTP date, as milliseconds from now. */
export function retryAfterMs(headers: Headers, now: number = Date.now()): number | undefined {
  const value = headers.get('retry-after');
  if (value === null || value.trim() === '') return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds) && seconds >= 0) return Math.round(seconds * 1000);
  const at = Date.parse(value);
  return Number.isFinite(at) ? Math.max(0, at - now) : undefined;
}

/** A non-2xx answer as a ProviderError; the hint says what to do for the usual causes. */
export function httpError(provider: string, answer: HttpAnswer, extra: { rateLimits?: RateLimits | undefined } = {}): ProviderError {
  const { status } = answer;
  const hint =
    status === 401 || status === 403
      ? 'Check the API key configured for this provider.'
      : status === 404
        ? 'Check the base URL and the model name.'
        : status === 400 || status === 422
          ? 'The provider refused the request itself (not retried): check the model supports tools or JSON schema output.'
          : undefined;
  const options: ConstructorParameters<typeof ProviderError>[3] = {};
  if (hint !== undefined) options.hint = hint;
  const after = retryAfterMs(answer.headers);
  if (after !== undefined) options.retryAfterMs = after;
  if (extra.rateLimits !== undefined) options.rateLimits = extra.rateLimits;
  return new ProviderError(provider, status, `${provider}: HTTP ${status}: ${serverMessage(answer.text)}`, options);
}

/** The body as JSON, or a ProviderError saying the server answered something else. */
export function jsonBody(provider: string, answer: HttpAnswer): unknown {
  try {
    return JSON.parse(answer.text) as unknown;
  } catch {
    throw new ProviderError(provider, answer.status, `${provider}: the answer is not JSON: ${serverMessage(answer.text).slice(0, 120)}`, {
      retryable: true,
    });
  }
}
