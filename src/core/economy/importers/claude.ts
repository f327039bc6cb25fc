import { jsonLine, obj, type ParsedEvent, type ParseResult, prefilter, text, timeOf, tok } from './common.js';

/**
 * Claude Code transcripts (`projects/<cwd>/<session>.jsonl`, subagents in
 * `<session>/subagents/agent-*.jsonl`): one event per `message.id` + `requestId`. Every content
 * block of a response is its own line with the same ids and the same final usage; the last line
 * seen wins. A fork replays its parent's lines with the same ids, and a subagent's ids are its
 * own, so the key names neither the file nor the sidechain flag: each response counts once.
 * Skipped: non-assistant lines (`toolUseResult.usage` copies, `cost-state` running totals),
 * `<synthetic>` / `isApiErrorMessage` lines, lines without usage.
 * `cache_creation.ephemeral_5m/1h_input_tokens`, when present, replace the creation total
 * (5m → cacheWrite, 1h → cacheWrite1h).
 */
export function parseClaude(lines: readonly string[], file: string | null = null): ParseResult {
  const byKey = new Map<string, ParsedEvent>();
  let corrupt = 0;
  let skipped = 0;
  for (const line of lines) {
    if (line.trim() === '') continue;
    const o = jsonLine(line);
    if (!o) {
      corrupt++;
      continue;
    }
    const message = obj(o.message);
    const usage = obj(message?.usage);
    const id = text(message?.id);
    const requestId = text(o.requestId);
    const model = text(message?.model);
    if (o.type !== 'assistant' || !usage || !id || !requestId || !model || model === '<synthetic>' || o.isApiErrorMessage === true) {
      skipped++;
      continue;
    }
    const split = obj(usage.cache_creation);
    const has5m = split !== undefined && typeof split.ephemeral_5m_input_tokens === 'number';
    const has1h = split !== undefined && typeof split.ephemeral_1h_input_tokens === 'number';
    const details = obj(usage.output_tokens_details);
    const event: ParsedEvent = {
      sourceKey: `${id}:${requestId}`,
      model,
      provider: 'anthropic',
      inputTokens: tok(usage.input_tokens),
      outputTokens: tok(usage.output_tokens),
      cacheWriteTokens: has5m || has1h ? tok(split!.ephemeral_5m_input_tokens) : tok(usage.cache_creation_input_tokens),
      cacheWrite1hTokens: has5m || has1h ? tok(split!.ephemeral_1h_input_tokens) : 0,
      cacheReadTokens: tok(usage.cache_read_input_tokens),
      reasoningTokens: tok(details?.thinking_tokens),
      sourceFile: file,
      sessionId: text(o.sessionId) ?? null,
      cwd: text(o.cwd) ?? null,
    };
    const at = timeOf(o.timestamp);
    if (at !== undefined) event.occurredAt = at;
    if (byKey.has(event.sourceKey)) skipped++;
    byKey.delete(event.sourceKey);
    byKey.set(event.sourceKey, event);
  }
  return { events: [...byKey.values()], lines: lines.filter((l) => l.trim() !== '').length, corrupt, skipped };
}

const ASSISTANT = [Buffer.from('"assistant"')];

/**
 * `parseClaude` on a chunk of complete lines, parsing only the lines that hold `"assistant"`
 * (an event needs `type` "assistant"; about a quarter of a transcript's bytes): the same events,
 * lines and (but for `prefilter`'s one approximation, a non-assistant line shaped `{…}` that is
 * not JSON) corrupt counts as `parseClaude` on the decoded lines.
 */
export function parseClaudeChunk(chunk: Buffer, file: string | null = null): ParseResult {
  const p = prefilter(chunk, ASSISTANT);
  const r = parseClaude(p.candidates, file);
  return { events: r.events, lines: p.lines, corrupt: p.corrupt + r.corrupt, skipped: p.skipped + r.skipped };
}
