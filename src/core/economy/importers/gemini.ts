import { jsonLine, obj, type ParsedEvent, type ParseResult, prefilter, text, timeOf, tok } from './common.js';

/**
 * Gemini CLI chat recordings (`~/.gemini/tmp/<project>/chats/session-*.jsonl`): every `gemini`
 * record line with `tokens`, one event per record `id` (a response with a function call is
 * written twice with the same id; a `$set.messages` rewrite on resume carries no tokens and is
 * ignored). Mapping, checked on the fixture numbers (total = input + output + thoughts, and
 * input ≥ cached): `tokens.input` (promptTokenCount) INCLUDES `tokens.cached`, so
 * inputTokens = input − cached and cacheRead = cached; thoughts are billed as output, so
 * outputTokens = output + thoughts with reasoningTokens = thoughts (informational);
 * `tool` (toolUsePromptTokenCount) is prompt input and is added to inputTokens.
 */
export function parseGemini(lines: readonly string[], file: string | null = null): ParseResult {
  const byKey = new Map<string, ParsedEvent>();
  let corrupt = 0;
  let skipped = 0;
  let sessionId: string | null = null;
  for (const line of lines) {
    if (line.trim() === '') continue;
    const o = jsonLine(line);
    if (!o) {
      corrupt++;
      continue;
    }
    if (text(o.sessionId) && o.type === undefined) sessionId = text(o.sessionId)!;
    const tokens = obj(o.tokens);
    const id = text(o.id);
    const model = text(o.model);
    if (o.type !== 'gemini' || !tokens || !id || !model) {
      skipped++;
      continue;
    }
    const input = tok(tokens.input);
    const cached = Math.min(tok(tokens.cached), input);
    const thoughts = tok(tokens.thoughts);
    const event: ParsedEvent = {
      sourceKey: id,
      model,
      provider: 'google',
      inputTokens: input - cached + tok(tokens.tool),
      outputTokens: tok(tokens.output) + thoughts,
      cacheReadTokens: cached,
      reasoningTokens: thoughts,
      sourceFile: file,
      sessionId,
    };
    const at = timeOf(o.timestamp);
    if (at !== undefined) event.occurredAt = at;
    if (byKey.has(id)) skipped++;
    byKey.delete(id);
    byKey.set(id, event);
  }
  return { events: [...byKey.values()], lines: lines.filter((l) => l.trim() !== '').length, corrupt, skipped };
}

/** An event needs `type` "gemini"; the session header is the line with `sessionId` and no type. */
const GEMINI_KEYS = [Buffer.from('"gemini"'), Buffer.from('"sessionId"')];

/** `parseGemini` on a chunk of complete lines, parsing only the lines that can matter (see `prefilter`). */
export function parseGeminiChunk(chunk: Buffer, file: string | null = null): ParseResult {
  const p = prefilter(chunk, GEMINI_KEYS);
  const r = parseGemini(p.candidates, file);
  return { events: r.events, lines: p.lines, corrupt: p.corrupt + r.corrupt, skipped: p.skipped + r.skipped };
}
