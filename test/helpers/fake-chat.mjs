#!/usr/bin/env node
// A scripted fake model server for the brain's HTTP providers, on 127.0.0.1 only, speaking the
// non-streaming JSON wire formats exactly:
//
//   Anthropic Messages API       POST /v1/messages          (anthropicMessage builds the body)
//   OpenAI chat completions      POST /v1/chat/completions  (openaiCompletion builds the body)
//
// startFakeChat({ path, answers, port? }) → Promise<{ url, port, requests, close() }>
//   path     the one route served (anything else is a 404 and logged)
//   answers  Answer[] (consumed in order; the last one repeats) or (request, index) => Answer
//   Answer   { status?: 200, headers?: {}, json?: object, body?: string, delayMs?: number, hang?: true }
//            `hang` accepts the request and never answers (until close()).
//   requests every request: { method, path, headers (lower-case names), body (parsed JSON, else text) }
//
// CLI: node test/helpers/fake-chat.mjs anthropic|openai [--port N]
//   serves a fixed valid decision forever and prints the base URL, for trying the brain by hand.

import http from 'node:http';
import { fileURLToPath } from 'node:url';

export const SAMPLE_DECISION = {
  action: 'Create a task for the failing deploy and give it to the code squad.',
  goal_id: 'goal_01',
  agent: 'kasra',
  method: 'create_task',
  details: { title: 'Fix the deploy', squad: 'code', requires: ['code'], priority: 'high' },
  expected_progress: 'A queued task for the deploy fix.',
  risk: 'low',
};

/** An Anthropic Messages API answer with a `decide` tool call (or text only, when `input` is undefined). */
export function anthropicMessage({ input, text, model = 'claude-sonnet-4-5-20250929', usage = {}, stopReason } = {}) {
  const content = [];
  if (text !== undefined) content.push({ type: 'text', text });
  if (input !== undefined) content.push({ type: 'tool_use', id: 'toolu_01FAKE', name: 'decide', input });
  return {
    id: 'msg_01FAKE',
    type: 'message',
    role: 'assistant',
    model,
    content,
    stop_reason: stopReason ?? (input !== undefined ? 'tool_use' : 'end_turn'),
    stop_sequence: null,
    usage: { input_tokens: 0, output_tokens: 0, cache_creation_input_tokens: 0, cache_read_input_tokens: 0, ...usage },
  };
}

/** An OpenAI chat completion whose message content is `content` (a string, sent as is). */
export function openaiCompletion({ content, model = 'gpt-4o-2024-08-06', usage = {}, finishReason = 'stop' } = {}) {
  return {
    id: 'chatcmpl-FAKE',
    object: 'chat.completion',
    created: 1767225600,
    model,
    choices: [{ index: 0, message: { role: 'assistant', content, refusal: null }, logprobs: null, finish_reason: finishReason }],
    usage: { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0, ...usage },
  };
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

export async function startFakeChat({ path, answers, port: wanted = 0 }) {
  const requests = [];
  const pending = new Set();
  const pick = (request, index) => {
    if (typeof answers === 'function') return answers(request, index);
    return answers[Math.min(index, answers.length - 1)];
  };
  const server = http.createServer(async (req, res) => {
    const text = await readBody(req);
    let body = text;
    try {
      body = text ? JSON.parse(text) : undefined;
    } catch {
      // logged as text
    }
    const request = { method: req.method, path: req.url, headers: { ...req.headers }, body };
    requests.push(request);
    if (req.method !== 'POST' || req.url !== path) {
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: { type: 'not_found_error', message: `no route ${req.method} ${req.url}` } }));
      return;
    }
    const answer = (await pick(request, requests.filter((r) => r.path === path).length - 1)) ?? { status: 500, body: 'no answer scripted' };
    if (answer.hang) {
      pending.add(res);
      res.on('close', () => pending.delete(res));
      return;
    }
    if (answer.delayMs) await new Promise((r) => setTimeout(r, answer.delayMs));
    const payload = answer.body ?? JSON.stringify(answer.json ?? {});
    res.writeHead(answer.status ?? 200, {
      'content-type': answer.body !== undefined ? 'text/plain' : 'application/json',
      'content-length': Buffer.byteLength(payload),
      ...(answer.headers ?? {}),
    });
    res.end(payload);
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(wanted, '127.0.0.1', resolve);
  });
  const { port } = server.address();
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    requests,
    close: () =>
      new Promise((resolve) => {
        for (const res of pending) res.destroy();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const kind = process.argv[2];
  const portAt = process.argv.indexOf('--port');
  const port = portAt > 0 ? Number(process.argv[portAt + 1]) : 0;
  if (kind !== 'anthropic' && kind !== 'openai') {
    process.stderr.write('usage: node test/helpers/fake-chat.mjs anthropic|openai [--port N]\n');
    process.exit(2);
  }
  const usage = kind === 'anthropic' ? { input_tokens: 900, output_tokens: 120 } : { prompt_tokens: 900, completion_tokens: 120 };
  const json = kind === 'anthropic' ? anthropicMessage({ input: SAMPLE_DECISION, usage }) : openaiCompletion({ content: JSON.stringify(SAMPLE_DECISION), usage });
  const fake = await startFakeChat({ path: kind === 'anthropic' ? '/v1/messages' : '/v1/chat/completions', answers: [{ json }], port });
  process.stdout.write(`${kind === 'anthropic' ? fake.url : `${fake.url}/v1`}\n`);
}
