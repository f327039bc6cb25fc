import { OperationFailed, Unavailable, UsageError } from '../errors.js';
import { LocalEmbedder, type Embedder } from './embedder.js';

/**
 * HTTP embedders: Ollama's `/api/embed` and the OpenAI-compatible `/v1/embeddings`.
 * The dimension is whatever the model returns: learned from the first answer, then held to, so a
 * model swapped behind the same name cannot slip vectors of another size into the store.
 */

export interface HttpEmbedderOptions {
  model: string;
  /** Base URL without the API path. Ollama defaults to the local daemon; OpenAI requires one. */
  baseUrl?: string;
  /** Sent as `Authorization: Bearer <key>` (OpenAI-compatible only). */
  apiKey?: string;
  /** Per request, in milliseconds (default 30 s). */
  timeoutMs?: number;
  /** Texts per request (default 64). */
  batchSize?: number;
}

export const DEFAULT_TIMEOUT_MS = 30_000;
export const DEFAULT_BATCH_SIZE = 64;
export const OLLAMA_DEFAULT_URL = 'http://127.0.0.1:11434';

const URL_VARIABLE = 'SOS_EMBEDDER_URL';
const KEY_VARIABLE = 'SOS_EMBEDDER_KEY';
const SPEC_FORMS = 'local, ollama:<model> or openai:<model>';

/** Parses and checks a base URL; its path is kept (reverse proxies), query and fragment dropped. */
function baseUrlOf(raw: string, name: string): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new UsageError(`${name}: ${URL_VARIABLE} is not a URL: ${raw}`, { hint: 'Use e.g. http://127.0.0.1:11434' });
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new UsageError(`${name}: ${URL_VARIABLE} must be an http:// or https:// URL, not ${url.protocol}`);
  }
  url.search = '';
  url.hash = '';
  return url;
}

/** The URL as printed in errors: never with credentials. */
function shown(url: URL): string {
  const copy = new URL(url);
  copy.username = '';
  copy.password = '';
  return copy.toString();
}

/** The server's own words: `{error: "…"}` (Ollama), `{error: {message: "…"}}` (OpenAI), or raw text. */
function serverError(body: string): string {
  let text = body.trim();
  try {
    const parsed: unknown = JSON.parse(text);
    if (parsed && typeof parsed === 'object' && 'error' in parsed) {
      const error = (parsed as { error: unknown }).error;
      if (typeof error === 'string') text = error;
      else if (error && typeof error === 'object' && 'message' in error && typeof error.message === 'string') {
        text = error.message;
      }
    }
  } catch {
    // not JSON: keep the raw text
  }
  return text.replace(/\s+/g, ' ').slice(0, 200) || '(empty body)';
}

function normalised(values: unknown, name: string): Float32Array {
  if (!Array.isArray(values) || values.length === 0) {
    throw new OperationFailed(`${name}: the server returned an embedding that is not a non-empty array of numbers`);
  }
  const v = new Float32Array(values.length);
  let norm = 0;
  for (let i = 0; i < values.length; i++) {
    const x: unknown = values[i];
    if (typeof x !== 'number' || !Number.isFinite(x)) {
      throw new OperationFailed(`${name}: the server returned a non-numeric value at position ${i} of an embedding`);
    }
    v[i] = x;
    norm += x * x;
  }
  norm = Math.sqrt(norm);
  if (norm > 0) for (let i = 0; i < v.length; i++) v[i]! /= norm;
  return v;
}

abstract class HttpEmbedder implements Embedder {
  readonly name: string;
  readonly model: string;
  protected readonly baseUrl: URL;
  protected readonly timeoutMs: number;
  protected readonly batchSize: number;
  private learnedDim: number | undefined;

  protected constructor(provider: string, baseUrl: string, options: HttpEmbedderOptions) {
    const model = options.model.trim();
    if (!model) throw new UsageError(`The ${provider} embedder needs a model: ${provider}:<model>`);
    this.model = model;
    this.name = `${provider}:${model}`;
    this.baseUrl = baseUrlOf(baseUrl, this.name);
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.batchSize = options.batchSize ?? DEFAULT_BATCH_SIZE;
    if (!Number.isInteger(this.timeoutMs) || this.timeoutMs <= 0) {
      throw new UsageError(`${this.name}: the timeout must be a positive number of milliseconds`);
    }
    if (!Number.isInteger(this.batchSize) || this.batchSize <= 0) {
      throw new UsageError(`${this.name}: the batch size must be a positive integer`);
    }
  }

  /** Known once a request has answered (see `probe()`); reading it earlier is a programming error. */
  get dim(): number {
    if (this.learnedDim === undefined) {
      throw new OperationFailed(`${this.name}: the dimension is not known until the server has answered once`, {
        hint: 'Call probe() (or embed()) before reading dim.',
      });
    }
    return this.learnedDim;
  }

  /** Embeds one word to learn the dimension; returns it. */
  async probe(): Promise<number> {
    if (this.learnedDim === undefined) await this.embed(['probe']);
    return this.dim;
  }

  async embed(texts: string[]): Promise<Float32Array[]> {
    const out: Float32Array[] = [];
    for (let start = 0; start < texts.length; start += this.batchSize) {
      const batch = texts.slice(start, start + this.batchSize);
      const raw = await this.request(batch);
      if (raw.length !== batch.length) {
        throw new OperationFailed(`${this.name}: sent ${batch.length} texts, the server returned ${raw.length} embeddings`);
      }
      for (const values of raw) {
        const v = normalised(values, this.name);
        if (this.learnedDim === undefined) this.learnedDim = v.length;
        else if (v.length !== this.learnedDim) {
          throw new OperationFailed(
            `${this.name}: the server returned a ${v.length}-dimensional embedding, earlier ones had ${this.learnedDim}`,
            { hint: 'The model behind this name changed; vectors of different sizes cannot be mixed (reindex memory).' },
          );
        }
        out.push(v);
      }
    }
    return out;
  }

  /** One batch on the wire; returns the raw vectors in input order. */
  protected abstract request(batch: string[]): Promise<unknown[]>;

  protected abstract unreachableHint(): string;

  /** POSTs JSON, maps transport failures to Unavailable and HTTP errors to OperationFailed. */
  protected async post(path: string, body: unknown, headers: Record<string, string> = {}): Promise<unknown> {
    const url = new URL(this.baseUrl);
    url.pathname = `${url.pathname.replace(/\/+$/, '')}${path}`;
    const where = shown(url);
    const signal = AbortSignal.timeout(this.timeoutMs);
    try {
      const response = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json', ...headers },
        body: JSON.stringify(body),
        signal,
      });
      const text = await response.text();
      if (!response.ok) {
        const auth = response.status === 401 || response.status === 403;
        throw new OperationFailed(
          `${this.name}: POST ${where} failed with HTTP ${response.status}: ${serverError(text)}`,
          auth ? { hint: `Set ${KEY_VARIABLE} to a key the server accepts.` } : undefined,
        );
      }
      try {
        return JSON.parse(text) as unknown;
      } catch {
        throw new OperationFailed(`${this.name}: POST ${where} answered with something that is not JSON: ${text.slice(0, 200)}`);
      }
    } catch (err) {
      if (err instanceof OperationFailed) throw err;
      if (err instanceof Error && (err.name === 'TimeoutError' || signal.aborted)) {
        throw new Unavailable(
          `${this.name}: ${where} did not answer within ${this.timeoutMs} ms (check ${URL_VARIABLE})`,
          { hint: 'A first request may be loading the model; retry, or check the server is healthy.', cause: err },
        );
      }
      const cause = err instanceof Error && err.cause instanceof Error ? err.cause : err;
      const code = cause && typeof cause === 'object' && 'code' in cause ? String(cause.code) : undefined;
      const reason = code ?? (cause instanceof Error ? cause.message : String(cause));
      throw new Unavailable(
        `${this.name}: cannot reach ${where} (${reason}); set ${URL_VARIABLE} to the embedder's base URL`,
        { hint: this.unreachableHint(), cause: err },
      );
    }
  }
}

/** Ollama: `POST /api/embed {model, input}` → `{embeddings}`. */
export class OllamaEmbedder extends HttpEmbedder {
  constructor(options: HttpEmbedderOptions) {
    super('ollama', options.baseUrl ?? OLLAMA_DEFAULT_URL, options);
  }

  protected async request(batch: string[]): Promise<unknown[]> {
    const answer = await this.post('/api/embed', { model: this.model, input: batch });
    const embeddings = (answer as { embeddings?: unknown } | null)?.embeddings;
    if (!Array.isArray(embeddings)) {
      throw new OperationFailed(`${this.name}: the answer has no "embeddings" array`);
    }
    return embeddings;
  }

  protected unreachableHint(): string {
    return `Start Ollama (ollama serve) and pull the model (ollama pull ${this.model}), or set ${URL_VARIABLE}.`;
  }
}

/** OpenAI-compatible: `POST /v1/embeddings {model, input}` → `{data: [{index, embedding}]}`. */
export class OpenAIEmbedder extends HttpEmbedder {
  private readonly apiKey: string | undefined;

  constructor(options: HttpEmbedderOptions) {
    if (!options.baseUrl) {
      throw new UsageError(`openai:${options.model}: no base URL configured for the OpenAI-compatible embedder`, {
        hint: `Set ${URL_VARIABLE} (e.g. the server's root, without /v1) and ${KEY_VARIABLE} if it needs a key.`,
      });
    }
    // Both "https://host" and "https://host/v1" are common ways to write the base; accept either.
    super('openai', options.baseUrl.replace(/\/+$/, '').replace(/\/v1$/, ''), options);
    this.apiKey = options.apiKey || undefined;
  }

  protected async request(batch: string[]): Promise<unknown[]> {
    const headers: Record<string, string> = this.apiKey ? { authorization: `Bearer ${this.apiKey}` } : {};
    const answer = await this.post('/v1/embeddings', { model: this.model, input: batch }, headers);
    const data = (answer as { data?: unknown } | null)?.data;
    if (!Array.isArray(data)) throw new OperationFailed(`${this.name}: the answer has no "data" array`);
    const ordered: unknown[] = new Array<unknown>(data.length);
    for (const item of data as { index?: unknown; embedding?: unknown }[]) {
      const index = item?.index;
      if (typeof index !== 'number' || !Number.isInteger(index) || index < 0 || index >= data.length || index in ordered) {
        throw new OperationFailed(`${this.name}: the answer's indexes are not 0..${data.length - 1} each once`);
      }
      ordered[index] = item.embedding;
    }
    return ordered;
  }

  protected unreachableHint(): string {
    return `Check the OpenAI-compatible server is running and ${URL_VARIABLE} points at it.`;
  }
}

export interface EmbedderConfig {
  baseUrl?: string;
  apiKey?: string;
  timeoutMs?: number;
}

/** `undefined`/`local` → the offline default; `ollama:<model>`; `openai:<model>` (needs a base URL). */
export function createEmbedder(spec: string | undefined, options: EmbedderConfig = {}): Embedder {
  const trimmed = spec?.trim();
  if (trimmed === undefined || trimmed === '' || trimmed === 'local') return new LocalEmbedder();
  const match = /^(ollama|openai):(.+)$/.exec(trimmed);
  if (!match || !match[2]!.trim()) {
    throw new UsageError(`Unknown embedder "${spec}": expected ${SPEC_FORMS}`, {
      hint: 'Set SOS_EMBEDDER, e.g. SOS_EMBEDDER=ollama:nomic-embed-text',
    });
  }
  const http: HttpEmbedderOptions = { model: match[2]! };
  if (options.baseUrl !== undefined) http.baseUrl = options.baseUrl;
  if (options.apiKey !== undefined) http.apiKey = options.apiKey;
  if (options.timeoutMs !== undefined) http.timeoutMs = options.timeoutMs;
  return match[1] === 'ollama' ? new OllamaEmbedder(http) : new OpenAIEmbedder(http);
}
