#!/usr/bin/env node
// Scripted fake model servers, one per vendor wire format, for driving the real
// agent CLIs (Claude Code, Codex CLI, Gemini CLI) offline.
//
//   startAnthropic(script)  Anthropic Messages API   (POST /v1/messages, SSE or JSON)
//   startOpenAI(script)     OpenAI Responses API     (POST /v1/responses, SSE or JSON)
//   startGemini(script)     Gemini generateContent   (…:generateContent, …:streamGenerateContent?alt=sse)
//
// Each returns Promise<{ url, port, requests, close() }>: `url` is the base URL
// (http://127.0.0.1:PORT), `requests` the log of every request received (method,
// path, headers, parsed body, how it was classified and answered).
//
// A script is { turns: Turn[], model?, idPrefix?, aux?, isMain?(req), headers? }
// (`headers`: extra response headers on every model answer, e.g. Codex's
// x-codex-primary-used-percent rate-limit headers).
// Requests the CLI makes for its own model loop ("main" requests: those that
// offer tools, unless script.isMain says otherwise) consume turns in order;
// every other request (title generation, quota probes, JSON side-queries) gets
// the `aux` answer and consumes nothing. A Turn is
//   { text?, thinking?, tool?: { name: string | string[], input: object | (req) => object },
//     usage: {...}, model?, error?: { status, type?, message }, times? }
// A turn with `error` is answered with that HTTP status and the vendor's error body;
// `times: n` makes a turn answer n consecutive main requests (e.g. the CLI's retries).
// `tool.name` may list alternatives: the first one the request offers is used.
// Usage field names are the vendor's own:
//   anthropic: input_tokens, output_tokens, cache_read_input_tokens,
//              ephemeral_5m_input_tokens, ephemeral_1h_input_tokens
//              (cache_creation_input_tokens = 5m + 1h)
//   openai:    input_tokens, cached_tokens, output_tokens, reasoning_tokens
//   gemini:    promptTokenCount, candidatesTokenCount, cachedContentTokenCount,
//              thoughtsTokenCount  (totalTokenCount = prompt + candidates + thoughts)
// When the turns run out the server answers "(script exhausted)" with zero usage
// and marks the request { exhausted: true }.
//
// CLI: node test/helpers/fake-models.mjs anthropic|openai|gemini [script.json] [--port N] [--log FILE]
//   prints the base URL on stdout; appends one JSON line per request to --log.
//   A script file is JSON (no functions; tool.input must be an object).

import http from 'node:http';
import { randomBytes } from 'node:crypto';
import { appendFileSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const ZERO = {};

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function parseJson(text) {
  if (!text) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

function sendJson(res, status, obj, headers = {}) {
  const body = JSON.stringify(obj);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...headers });
  res.end(body);
}

function startSse(res, headers = {}) {
  res.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache',
    connection: 'keep-alive',
    ...headers,
  });
}

/** Splits text into at most `n` roughly equal chunks (at least one, possibly empty). */
function chunks(text, n = 2) {
  if (!text) return [''];
  const size = Math.max(1, Math.ceil(text.length / n));
  const out = [];
  for (let i = 0; i < text.length; i += size) out.push(text.slice(i, i + size));
  return out;
}

function pickToolName(name, offered) {
  const names = Array.isArray(name) ? name : [name];
  return names.find((n) => offered.includes(n)) ?? names[0];
}

/**
 * Shared scripted server: `vendor` supplies classify(req) and respond(ctx).
 * Returns { url, port, requests, close }.
 */
function startServer(script, vendor, opts = {}) {
  const turns = script.turns ?? [];
  const idPrefix = script.idPrefix ?? randomBytes(4).toString('hex');
  let next = 0;
  let used = 0;
  let seq = 0;
  const requests = [];
  const newId = (kind) => `${kind}${idPrefix}${String(++seq).padStart(4, '0')}`;

  const server = http.createServer(async (req, res) => {
    const raw = await readBody(req);
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const entry = {
      at: new Date().toISOString(),
      method: req.method,
      path: url.pathname,
      query: Object.fromEntries(url.searchParams),
      headers: { 'user-agent': req.headers['user-agent'], 'content-type': req.headers['content-type'] },
      body: parseJson(raw),
    };
    requests.push(entry);
    try {
      const ctx = { req, res, url, body: entry.body, entry, script, newId };
      const kind = vendor.route(ctx);
      entry.kind = kind;
      if (kind === 'main' || kind === 'aux') {
        const isMain = script.isMain ? script.isMain(entry) : kind === 'main';
        entry.kind = isMain ? 'main' : 'aux';
        let turn;
        if (isMain) {
          turn = turns[next];
          if (turn) {
            entry.turn = next;
            // a turn with `times: n` answers n requests (retries of a failing one)
            if (++used >= (turn.times ?? 1)) {
              next++;
              used = 0;
            }
          } else {
            entry.exhausted = true;
            turn = { text: '(script exhausted)', usage: ZERO };
          }
        } else {
          turn = script.aux ?? vendor.defaultAux;
        }
        entry.answered = { text: turn.text, tool: turn.tool?.name, usage: turn.usage, error: turn.error };
        if (turn.error) vendor.error(ctx, turn.error);
        else await vendor.respond(ctx, turn);
      } else if (!res.headersSent) {
        // vendor.route answered it (metadata endpoints, 404s)
      }
    } catch (err) {
      entry.error = String(err?.stack ?? err);
      if (!res.headersSent) sendJson(res, 500, { error: { message: String(err) } });
      else res.end();
    }
    if (opts.log) appendFileSync(opts.log, JSON.stringify(entry) + '\n');
  });

  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, '127.0.0.1', () => {
      const { port } = server.address();
      resolve({
        url: `http://127.0.0.1:${port}`,
        port,
        requests,
        close: () =>
          new Promise((r) => {
            server.closeAllConnections?.();
            server.close(() => r());
          }),
      });
    });
  });
}

// ---------------------------------------------------------------- Anthropic

function anthropicUsage(u = ZERO) {
  const e5 = u.ephemeral_5m_input_tokens ?? 0;
  const e1 = u.ephemeral_1h_input_tokens ?? 0;
  return {
    input_tokens: u.input_tokens ?? 0,
    cache_creation_input_tokens: e5 + e1,
    cache_read_input_tokens: u.cache_read_input_tokens ?? 0,
    cache_creation: { ephemeral_5m_input_tokens: e5, ephemeral_1h_input_tokens: e1 },
    output_tokens: u.output_tokens ?? 0,
    service_tier: 'standard',
  };
}

function anthropicBlocks(turn, body, newId) {
  const blocks = [];
  if (turn.thinking) blocks.push({ type: 'thinking', thinking: turn.thinking, signature: `sig-${newId('')}` });
  if (turn.text) blocks.push({ type: 'text', text: turn.text });
  if (turn.tool) {
    const offered = (body?.tools ?? []).map((t) => t.name);
    const input = typeof turn.tool.input === 'function' ? turn.tool.input(body) : (turn.tool.input ?? {});
    blocks.push({ type: 'tool_use', id: newId('toolu_'), name: pickToolName(turn.tool.name, offered), input });
  }
  if (blocks.length === 0) blocks.push({ type: 'text', text: '' });
  return blocks;
}

const anthropic = {
  defaultAux: { text: 'ok', usage: { input_tokens: 0, output_tokens: 0 } },
  route({ req, res, url, body }) {
    const p = url.pathname.replace(/\/+$/, '');
    if (req.method === 'POST' && p === '/v1/messages') {
      return Array.isArray(body?.tools) && body.tools.length > 0 ? 'main' : 'aux';
    }
    if (req.method === 'POST' && p === '/v1/messages/count_tokens') {
      const n = Math.max(1, Math.round(JSON.stringify(body ?? {}).length / 4));
      sendJson(res, 200, { input_tokens: n });
      return 'count_tokens';
    }
    if (req.method === 'GET' && p === '/v1/models') {
      const ids = ['claude-sonnet-4-5-20250929', 'claude-opus-4-1-20250805', 'claude-haiku-4-5-20251001'];
      sendJson(res, 200, {
        data: ids.map((id) => ({ type: 'model', id, display_name: id, created_at: '2025-09-29T00:00:00Z' })),
        has_more: false,
        first_id: ids[0],
        last_id: ids[ids.length - 1],
      });
      return 'models';
    }
    if (req.method === 'GET' && p.startsWith('/v1/models/')) {
      const id = decodeURIComponent(p.slice('/v1/models/'.length));
      sendJson(res, 200, { type: 'model', id, display_name: id, created_at: '2025-09-29T00:00:00Z' });
      return 'model';
    }
    sendJson(res, 404, { type: 'error', error: { type: 'not_found_error', message: `fake server: no route ${req.method} ${p}` } });
    return 'unrouted';
  },
  error({ res, newId }, e) {
    sendJson(res, e.status ?? 400, { type: 'error', error: { type: e.type ?? 'invalid_request_error', message: e.message ?? 'fake error' } }, { 'request-id': newId('req_') });
  },
  async respond({ res, body, newId, script }, turn) {
    const model = turn.model ?? script.model ?? body?.model ?? 'claude-sonnet-4-5-20250929';
    const id = newId('msg_');
    const requestId = newId('req_');
    const usage = anthropicUsage(turn.usage);
    const blocks = anthropicBlocks(turn, body, newId);
    const stopReason = turn.tool ? 'tool_use' : 'end_turn';
    if (!body?.stream) {
      sendJson(
        res,
        200,
        { id, type: 'message', role: 'assistant', model, content: blocks, stop_reason: stopReason, stop_sequence: null, usage },
        { 'request-id': requestId, ...script.headers },
      );
      return;
    }
    startSse(res, { 'request-id': requestId, ...script.headers });
    const ev = (type, data) => res.write(`event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`);
    // message_start carries the input-side usage and a placeholder output count,
    // as the real API does; message_delta carries the final counts.
    ev('message_start', {
      message: {
        id,
        type: 'message',
        role: 'assistant',
        model,
        content: [],
        stop_reason: null,
        stop_sequence: null,
        usage: { ...usage, output_tokens: Math.min(1, usage.output_tokens) },
      },
    });
    ev('ping', {});
    blocks.forEach((block, index) => {
      if (block.type === 'text') {
        ev('content_block_start', { index, content_block: { type: 'text', text: '' } });
        for (const t of chunks(block.text)) ev('content_block_delta', { index, delta: { type: 'text_delta', text: t } });
      } else if (block.type === 'thinking') {
        ev('content_block_start', { index, content_block: { type: 'thinking', thinking: '', signature: '' } });
        for (const t of chunks(block.thinking)) ev('content_block_delta', { index, delta: { type: 'thinking_delta', thinking: t } });
        ev('content_block_delta', { index, delta: { type: 'signature_delta', signature: block.signature } });
      } else if (block.type === 'tool_use') {
        ev('content_block_start', { index, content_block: { type: 'tool_use', id: block.id, name: block.name, input: {} } });
        for (const j of chunks(JSON.stringify(block.input), 3)) {
          ev('content_block_delta', { index, delta: { type: 'input_json_delta', partial_json: j } });
        }
      }
      ev('content_block_stop', { index });
    });
    ev('message_delta', {
      delta: { stop_reason: stopReason, stop_sequence: null },
      usage: {
        input_tokens: usage.input_tokens,
        cache_creation_input_tokens: usage.cache_creation_input_tokens,
        cache_read_input_tokens: usage.cache_read_input_tokens,
        output_tokens: usage.output_tokens,
      },
    });
    ev('message_stop', {});
    res.end();
  },
};

// ------------------------------------------------------------------- OpenAI

function openaiUsage(u = ZERO) {
  const input = u.input_tokens ?? 0;
  const output = u.output_tokens ?? 0;
  return {
    input_tokens: input,
    input_tokens_details: { cached_tokens: u.cached_tokens ?? 0 },
    output_tokens: output,
    output_tokens_details: { reasoning_tokens: u.reasoning_tokens ?? 0 },
    total_tokens: input + output,
  };
}

function openaiToolNames(body) {
  return (body?.tools ?? []).map((t) => t.name ?? t.function?.name ?? t.type).filter(Boolean);
}

const openai = {
  defaultAux: { text: 'ok', usage: { input_tokens: 0, output_tokens: 0 } },
  route({ req, res, url, body, script }) {
    const p = url.pathname.replace(/\/+$/, '');
    if (req.method === 'POST' && p.endsWith('/responses')) {
      return Array.isArray(body?.tools) && body.tools.length > 0 ? 'main' : 'aux';
    }
    if (req.method === 'GET' && p.endsWith('/models')) {
      const ids = [script.model ?? 'gpt-5-codex', 'gpt-5', 'gpt-5-mini'];
      sendJson(res, 200, { object: 'list', data: ids.map((id) => ({ id, object: 'model', created: 1757000000, owned_by: 'fake' })), models: [] });
      return 'models';
    }
    sendJson(res, 404, { error: { message: `fake server: no route ${req.method} ${p}`, type: 'invalid_request_error', code: 'not_found' } });
    return 'unrouted';
  },
  error({ res }, e) {
    sendJson(res, e.status ?? 400, { error: { message: e.message ?? 'fake error', type: e.type ?? 'invalid_request_error', code: null } });
  },
  async respond({ res, body, newId, script }, turn) {
    const model = turn.model ?? script.model ?? body?.model ?? 'gpt-5-codex';
    const respId = newId('resp_');
    const createdAt = Math.floor(Date.now() / 1000);
    const items = [];
    if (turn.thinking) {
      items.push({ id: newId('rs_'), type: 'reasoning', summary: [{ type: 'summary_text', text: turn.thinking }] });
    }
    if (turn.text) {
      items.push({
        id: newId('msg_'),
        type: 'message',
        role: 'assistant',
        status: 'completed',
        content: [{ type: 'output_text', text: turn.text, annotations: [] }],
      });
    }
    if (turn.tool) {
      const input = typeof turn.tool.input === 'function' ? turn.tool.input(body) : (turn.tool.input ?? {});
      items.push({
        id: newId('fc_'),
        type: 'function_call',
        status: 'completed',
        call_id: newId('call_'),
        name: pickToolName(turn.tool.name, openaiToolNames(body)),
        arguments: JSON.stringify(input),
      });
    }
    const usage = openaiUsage(turn.usage);
    const base = { id: respId, object: 'response', created_at: createdAt, model, parallel_tool_calls: false, tool_choice: 'auto', tools: [] };
    if (!body?.stream) {
      sendJson(res, 200, { ...base, status: 'completed', output: items, usage }, script.headers);
      return;
    }
    startSse(res, { 'x-request-id': newId('req_'), ...script.headers });
    let sequence = 0;
    const ev = (type, data) => res.write(`event: ${type}\ndata: ${JSON.stringify({ type, sequence_number: sequence++, ...data })}\n\n`);
    ev('response.created', { response: { ...base, status: 'in_progress', output: [], usage: null } });
    ev('response.in_progress', { response: { ...base, status: 'in_progress', output: [], usage: null } });
    items.forEach((item, output_index) => {
      if (item.type === 'message') {
        const text = item.content[0].text;
        ev('response.output_item.added', { output_index, item: { ...item, status: 'in_progress', content: [] } });
        ev('response.content_part.added', { item_id: item.id, output_index, content_index: 0, part: { type: 'output_text', text: '', annotations: [] } });
        for (const t of chunks(text)) ev('response.output_text.delta', { item_id: item.id, output_index, content_index: 0, delta: t });
        ev('response.output_text.done', { item_id: item.id, output_index, content_index: 0, text });
        ev('response.content_part.done', { item_id: item.id, output_index, content_index: 0, part: item.content[0] });
      } else if (item.type === 'function_call') {
        ev('response.output_item.added', { output_index, item: { ...item, status: 'in_progress', arguments: '' } });
        for (const d of chunks(item.arguments, 3)) ev('response.function_call_arguments.delta', { item_id: item.id, output_index, delta: d });
        ev('response.function_call_arguments.done', { item_id: item.id, output_index, arguments: item.arguments });
      } else {
        ev('response.output_item.added', { output_index, item: { ...item, summary: [] } });
      }
      ev('response.output_item.done', { output_index, item });
    });
    ev('response.completed', { response: { ...base, status: 'completed', output: items, usage } });
    res.end();
  },
};

// ------------------------------------------------------------------- Gemini

function geminiUsage(u = ZERO) {
  const prompt = u.promptTokenCount ?? 0;
  const cand = u.candidatesTokenCount ?? 0;
  const thoughts = u.thoughtsTokenCount ?? 0;
  const out = { promptTokenCount: prompt, candidatesTokenCount: cand, totalTokenCount: prompt + cand + thoughts };
  if (u.cachedContentTokenCount) out.cachedContentTokenCount = u.cachedContentTokenCount;
  if (thoughts) out.thoughtsTokenCount = thoughts;
  out.promptTokensDetails = [{ modality: 'TEXT', tokenCount: prompt }];
  return out;
}

/** A minimal value satisfying a JSON schema (for Gemini CLI's JSON side-queries). */
function fromSchema(schema, key = '') {
  if (!schema || typeof schema !== 'object') return null;
  const type = String(schema.type ?? '').toLowerCase();
  if (Array.isArray(schema.enum) && schema.enum.length) return schema.enum[0];
  if (type === 'object' || schema.properties) {
    const out = {};
    for (const [k, v] of Object.entries(schema.properties ?? {})) out[k] = fromSchema(v, k);
    return out;
  }
  if (type === 'array') return [];
  if (type === 'boolean') return false;
  if (type === 'number' || type === 'integer') return 0;
  return key === 'reasoning' ? 'fake server' : 'ok';
}

function geminiToolNames(body) {
  return (body?.tools ?? []).flatMap((t) => (t.functionDeclarations ?? []).map((f) => f.name));
}

const gemini = {
  defaultAux: { text: 'ok', usage: { promptTokenCount: 0, candidatesTokenCount: 0 } },
  route({ req, res, url, body }) {
    const p = url.pathname.replace(/\/+$/, '');
    const m = /^\/(v1beta|v1|v1alpha)\/models\/([^:]+):(\w+)$/.exec(p);
    if (req.method === 'POST' && m && (m[3] === 'generateContent' || m[3] === 'streamGenerateContent')) {
      const json = body?.generationConfig?.responseMimeType === 'application/json';
      return geminiToolNames(body).length > 0 && !json ? 'main' : 'aux';
    }
    if (req.method === 'POST' && m && m[3] === 'countTokens') {
      const n = Math.max(1, Math.round(JSON.stringify(body ?? {}).length / 4));
      sendJson(res, 200, { totalTokens: n });
      return 'countTokens';
    }
    if (req.method === 'POST' && m && m[3] === 'embedContent') {
      sendJson(res, 200, { embedding: { values: Array.from({ length: 8 }, (_, i) => i / 8) } });
      return 'embedContent';
    }
    if (req.method === 'GET' && /^\/(v1beta|v1)\/models$/.test(p)) {
      const ids = ['gemini-2.5-pro', 'gemini-2.5-flash', 'gemini-2.5-flash-lite'];
      sendJson(res, 200, { models: ids.map((id) => ({ name: `models/${id}`, displayName: id, supportedGenerationMethods: ['generateContent', 'countTokens'] })) });
      return 'models';
    }
    sendJson(res, 404, { error: { code: 404, message: `fake server: no route ${req.method} ${p}`, status: 'NOT_FOUND' } });
    return 'unrouted';
  },
  error({ res }, e) {
    sendJson(res, e.status ?? 400, { error: { code: e.status ?? 400, message: e.message ?? 'fake error', status: e.type ?? 'INVALID_ARGUMENT' } });
  },
  async respond({ res, url, body, newId, script }, turn) {
    const m = /models\/([^:]+):(\w+)$/.exec(url.pathname);
    const model = turn.model ?? script.model ?? m?.[1] ?? 'gemini-2.5-pro';
    const stream = m?.[2] === 'streamGenerateContent';
    const parts = [];
    if (turn.thinking) parts.push({ text: turn.thinking, thought: true });
    const gc = body?.generationConfig;
    if (gc?.responseMimeType === 'application/json' && !turn.tool) {
      const schema = gc.responseJsonSchema ?? gc.responseSchema;
      const value = script.json ? script.json(body) : fromSchema(schema);
      parts.push({ text: JSON.stringify(value) });
    } else if (turn.text) {
      parts.push({ text: turn.text });
    }
    if (turn.tool) {
      const input = typeof turn.tool.input === 'function' ? turn.tool.input(body) : (turn.tool.input ?? {});
      parts.push({ functionCall: { name: pickToolName(turn.tool.name, geminiToolNames(body)), args: input } });
    }
    if (parts.length === 0) parts.push({ text: '' });
    const usageMetadata = geminiUsage(turn.usage);
    const responseId = newId('resp');
    const final = (p) => ({
      candidates: [{ content: { role: 'model', parts: p }, finishReason: 'STOP', index: 0 }],
      usageMetadata,
      modelVersion: model,
      responseId,
    });
    if (!stream) {
      sendJson(res, 200, final(parts), script.headers);
      return;
    }
    startSse(res, script.headers);
    const send = (obj) => res.write(`data: ${JSON.stringify(obj)}\r\n\r\n`);
    // Leading chunks carry partial text and prompt-only usage; the last chunk
    // carries the rest of the parts, finishReason and the full usage.
    const textParts = parts.filter((p) => typeof p.text === 'string' && !p.thought && !p.functionCall);
    const lead = textParts.length === 1 && textParts[0].text.length > 1 ? chunks(textParts[0].text)[0] : '';
    if (lead) {
      send({
        candidates: [{ content: { role: 'model', parts: [{ text: lead }] }, index: 0 }],
        usageMetadata: { promptTokenCount: usageMetadata.promptTokenCount, totalTokenCount: usageMetadata.promptTokenCount },
        modelVersion: model,
        responseId,
      });
    }
    const rest = parts.map((p) => (lead && p === textParts[0] ? { text: p.text.slice(lead.length) } : p));
    send(final(rest));
    res.end();
  },
};

export function startAnthropic(script = {}, opts = {}) {
  return startServer(script, anthropic, opts);
}
export function startOpenAI(script = {}, opts = {}) {
  return startServer(script, openai, opts);
}
export function startGemini(script = {}, opts = {}) {
  return startServer(script, gemini, opts);
}

// ---------------------------------------------------------------------- CLI

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const args = process.argv.slice(2);
  const vendor = args.shift();
  const starters = { anthropic: startAnthropic, openai: startOpenAI, gemini: startGemini };
  if (!starters[vendor]) {
    console.error('usage: fake-models.mjs anthropic|openai|gemini [script.json] [--port N] [--log FILE]');
    process.exit(2);
  }
  const opts = {};
  let script = {};
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '--port') opts.port = Number(args[++i]);
    else if (args[i] === '--log') opts.log = args[++i];
    else script = JSON.parse(readFileSync(args[i], 'utf8'));
  }
  const srv = await starters[vendor](script, opts);
  console.log(srv.url);
  const stop = async () => {
    await srv.close();
    process.exit(0);
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}
