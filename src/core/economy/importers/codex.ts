import { jsonLine, obj, type ParsedEvent, type ParseResult, prefilter, text, timeOf, tok } from './common.js';

/** Where a Codex rollout stands: the thread and model in force, for lines read later. */
export interface CodexContext {
  thread: string | null;
  model: string | null;
  cwd: string | null;
}

export interface RateLimitWindow {
  usedPercent: number | null;
  windowMinutes: number | null;
  resetsAt: number | null;
}

export interface CodexRateLimits {
  primary: RateLimitWindow | null;
  secondary: RateLimitWindow | null;
  /** When the token_count event carrying them was written (epoch ms), if known. */
  seenAt: number | null;
}

export interface CodexParseResult extends ParseResult {
  context: CodexContext;
  rateLimits: CodexRateLimits | null;
}

const window = (v: unknown): RateLimitWindow | null => {
  const w = obj(v);
  if (!w) return null;
  const num = (x: unknown) => (typeof x === 'number' && Number.isFinite(x) ? x : null);
  return { usedPercent: num(w.used_percent), windowMinutes: num(w.window_minutes), resetsAt: num(w.resets_at) };
};

/**
 * Codex rollouts (`sessions/YYYY/MM/DD/rollout-*.jsonl`). One event per model response, keyed
 * by the thread's cumulative totals: `<thread>:<input>/<cached>/<output>/<reasoning>`.
 * - 0.171 writes a `token_usage_record` (with `thread_token_usage`) and a `token_count` (with
 *   `total_token_usage`) per response: both give the same key, so the pair counts once.
 * - 0.130 repeats unchanged totals (after tool output, at a turn's start): same key, once.
 * - a 0.130 fork replays the parent's whole rollout after the parent's own `session_meta`: the
 *   thread in force is then the parent's, its keys are the parent's, once. The fork's own turn
 *   continues the parent's totals, so its keys are new.
 * - a 0.171 fork (no replay) starts its own thread's totals from the parent's: new keys.
 * `info: null` events (rate limits only) count nothing. Usage is `last_token_usage` (or the
 * record's `usage`): OpenAI input includes cached, so inputTokens = input − cached and
 * cacheRead = cached (`cache_write_input_tokens`, new in 0.171 and 0 in every rollout seen, is
 * not stored: whether it is inside input is undocumented); output includes reasoning (reasoningTokens is informational). The model
 * is the latest `turn_context`'s. `context` carries thread/model/cwd across calls (the driver
 * rebuilds it from a file's head when it resumes mid-file).
 */
export function parseCodex(lines: readonly string[], file: string | null = null, start: CodexContext = { thread: null, model: null, cwd: null }): CodexParseResult {
  const ctx = { ...start };
  const byKey = new Map<string, ParsedEvent>();
  let corrupt = 0;
  let skipped = 0;
  let rateLimits: CodexRateLimits | null = null;
  for (const line of lines) {
    if (line.trim() === '') continue;
    const o = jsonLine(line);
    if (!o) {
      corrupt++;
      continue;
    }
    const p = obj(o.payload);
    if (o.type === 'session_meta' && p) {
      ctx.thread = text(p.id) ?? ctx.thread;
      ctx.cwd = text(p.cwd) ?? ctx.cwd;
      skipped++;
      continue;
    }
    if (o.type === 'turn_context' && p) {
      ctx.model = text(p.model) ?? ctx.model;
      ctx.cwd = text(p.cwd) ?? ctx.cwd;
      skipped++;
      continue;
    }
    let total: Record<string, unknown> | undefined;
    let last: Record<string, unknown> | undefined;
    let thread = ctx.thread;
    if (o.type === 'event_msg' && p?.type === 'token_count') {
      const limits = obj(p.rate_limits);
      if (limits) rateLimits = { primary: window(limits.primary), secondary: window(limits.secondary), seenAt: timeOf(o.timestamp) ?? null };
      const info = obj(p.info);
      total = obj(info?.total_token_usage);
      last = obj(info?.last_token_usage);
    } else if (o.type === 'token_usage_record' && p) {
      total = obj(p.thread_token_usage);
      last = obj(p.usage);
      thread = text(p.thread_id) ?? thread;
    }
    if (!total || !last || !thread || !ctx.model) {
      skipped++;
      continue;
    }
    const key = `${thread}:${tok(total.input_tokens)}/${tok(total.cached_input_tokens)}/${tok(total.output_tokens)}/${tok(total.reasoning_output_tokens)}`;
    if (byKey.has(key)) {
      skipped++;
      continue;
    }
    const input = tok(last.input_tokens);
    const cached = Math.min(tok(last.cached_input_tokens), input);
    const event: ParsedEvent = {
      sourceKey: key,
      model: ctx.model,
      provider: 'openai',
      inputTokens: input - cached,
      outputTokens: tok(last.output_tokens),
      cacheReadTokens: cached,
      reasoningTokens: tok(last.reasoning_output_tokens),
      sourceFile: file,
      sessionId: thread,
      cwd: ctx.cwd,
    };
    const at = timeOf(o.timestamp);
    if (at !== undefined) event.occurredAt = at;
    byKey.set(key, event);
  }
  return { events: [...byKey.values()], lines: lines.filter((l) => l.trim() !== '').length, corrupt, skipped, context: ctx, rateLimits };
}

/** The `type` values `parseCodex` reads (a line holding none of them is skipped). */
const CODEX_TYPES = ['"session_meta"', '"turn_context"', '"token_count"', '"token_usage_record"'].map((t) => Buffer.from(t));
const CODEX_CONTEXT = CODEX_TYPES.slice(0, 2);

/**
 * `parseCodex` on a chunk of complete lines, parsing only the lines that hold one of the types
 * it reads (see `prefilter`: same events, context, rate limits and lines; corrupt but for a
 * non-candidate line shaped `{…}` that is not JSON). With `contextOnly`, only session_meta and
 * turn_context lines are parsed: the context at the chunk's end, for a driver resuming mid-file.
 */
export function parseCodexChunk(chunk: Buffer, file: string | null = null, start?: CodexContext, contextOnly = false): CodexParseResult {
  const p = prefilter(chunk, contextOnly ? CODEX_CONTEXT : CODEX_TYPES);
  const r = parseCodex(p.candidates, file, start);
  return { ...r, lines: p.lines, corrupt: p.corrupt + r.corrupt, skipped: p.skipped + r.skipped };
}
