import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished, type TestContext } from 'vitest';
import {
  AnthropicProvider,
  ChainFailed,
  ClaudeCliProvider,
  DECISION_JSON_SCHEMA,
  DECISION_STRICT_JSON_SCHEMA,
  type DecideRequest,
  OpenAIProvider,
  parseDecision,
  ProviderChain,
  ProviderError,
} from '../../src/core/brain/index.js';
import { tempDir } from '../helpers/isolation.js';

/**
 * The brain's providers against real servers on 127.0.0.1 (test/helpers/fake-chat.mjs) that speak
 * the Anthropic Messages and OpenAI chat completions wire formats, and against a fake `claude`
 * executable written per test: the bytes each adapter sends, how it reads what comes back, and how
 * it fails. The chain runs over the same servers with a fake clock for its breakers.
 */

interface FakeRequest {
  method: string;
  path: string;
  headers: Record<string, string | undefined>;
  body: unknown;
}
interface Answer {
  status?: number;
  headers?: Record<string, string>;
  json?: unknown;
  body?: string;
  delayMs?: number;
  hang?: boolean;
}
interface FakeChat {
  url: string;
  port: number;
  requests: FakeRequest[];
  close(): Promise<void>;
}

const fake = (await import(new URL('../helpers/fake-chat.mjs', import.meta.url).href)) as {
  SAMPLE_DECISION: Record<string, unknown>;
  anthropicMessage(o: { input?: unknown; text?: string; model?: string; usage?: Record<string, unknown>; stopReason?: string }): unknown;
  openaiCompletion(o: { content: string | null; model?: string; usage?: Record<string, unknown>; finishReason?: string }): unknown;
  startFakeChat(o: { path: string; answers: Answer[] | ((req: FakeRequest, index: number) => Answer | Promise<Answer>) }): Promise<FakeChat>;
};
const DECISION = fake.SAMPLE_DECISION;

async function serve(path: string, answers: Answer[] | ((req: FakeRequest, index: number) => Answer | Promise<Answer>)): Promise<FakeChat> {
  const server = await fake.startFakeChat({ path, answers });
  onTestFinished(() => server.close());
  return server;
}

const anthropicServer = (answers: Parameters<typeof serve>[1]) => serve('/v1/messages', answers);
const openaiServer = (answers: Parameters<typeof serve>[1]) => serve('/v1/chat/completions', answers);

const request: DecideRequest = {
  system: 'You are the coordinator of project demo. Answer with one decision.',
  prompt: 'State: 2 queued tasks, kasra idle. What next?',
  model: 'claude-sonnet-4-5',
  maxTokens: 1024,
};

/** A port nothing listens on: bound, then released. */
async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const { port } = s.address() as { port: number };
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

async function failure(p: Promise<unknown>): Promise<ProviderError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ProviderError);
  return err as ProviderError;
}

describe('AnthropicProvider', () => {
  it('sends the forced decide tool call and reads the tool input, usage, model and rate limits', async () => {
    const server = await anthropicServer([
      {
        json: fake.anthropicMessage({
          input: DECISION,
          text: 'Creating the task.',
          usage: {
            input_tokens: 1200,
            output_tokens: 150,
            cache_creation_input_tokens: 300,
            cache_read_input_tokens: 4000,
            cache_creation: { ephemeral_5m_input_tokens: 200, ephemeral_1h_input_tokens: 100 },
          },
        }),
        headers: {
          'anthropic-ratelimit-unified-5h-utilization': '0.42',
          'anthropic-ratelimit-unified-5h-reset': '1767225600',
          'anthropic-ratelimit-unified-7d-utilization': '0.071',
          'anthropic-ratelimit-unified-7d-reset': '1767600000',
          'anthropic-ratelimit-unified-status': 'allowed',
        },
      },
    ]);
    const provider = new AnthropicProvider({ baseUrl: `${server.url}/`, apiKey: 'sk-ant-test' });
    expect(provider).toMatchObject({ name: 'anthropic', kind: 'anthropic' });
    const response = await provider.decide(request);

    expect(server.requests).toHaveLength(1);
    const sent = server.requests[0]!;
    expect(sent.method).toBe('POST');
    expect(sent.path).toBe('/v1/messages');
    expect(sent.headers['x-api-key']).toBe('sk-ant-test');
    expect(sent.headers['anthropic-version']).toBe('2023-06-01');
    expect(sent.headers['content-type']).toBe('application/json');
    expect(sent.headers['authorization']).toBeUndefined();
    expect(sent.body).toEqual({
      model: 'claude-sonnet-4-5',
      max_tokens: 1024,
      system: [{ type: 'text', text: request.system, cache_control: { type: 'ephemeral' } }],
      messages: [{ role: 'user', content: request.prompt }],
      tools: [{ name: 'decide', description: 'Record the one next action the coordinator takes.', input_schema: DECISION_JSON_SCHEMA }],
      tool_choice: { type: 'tool', name: 'decide' },
    });

    expect(response).toEqual({
      raw: DECISION,
      text: 'Creating the task.',
      usage: { inputTokens: 1200, outputTokens: 150, cacheWriteTokens: 200, cacheWrite1hTokens: 100, cacheReadTokens: 4000 },
      model: 'claude-sonnet-4-5-20250929',
      rateLimits: {
        fiveHour: { usedPercent: 42, resetsAt: 1767225600_000 },
        sevenDay: { usedPercent: 7.1, resetsAt: 1767600000_000 },
      },
      stopReason: 'tool_use',
    });
    expect(parseDecision(response.raw).ok).toBe(true);
  });

  it('takes the creation total when there is no 5m/1h split, tells the model a refused answer, and reads no rate limits when absent', async () => {
    const server = await anthropicServer([
      { json: fake.anthropicMessage({ input: DECISION, usage: { input_tokens: 10, output_tokens: 5, cache_creation_input_tokens: 70 } }) },
    ]);
    const provider = new AnthropicProvider({ baseUrl: server.url, apiKey: 'k', cacheSystem: false });
    const response = await provider.decide({ ...request, retryError: 'invalid decision: risk: missing' });
    const body = server.requests[0]!.body as { system: unknown; messages: { content: string }[] };
    expect(body.system).toEqual([{ type: 'text', text: request.system }]);
    expect(body.messages[0]!.content).toBe(
      `${request.prompt}\n\nYour previous answer was refused: invalid decision: risk: missing\nAnswer again with exactly one decision that fits the schema.`,
    );
    expect(response.usage).toEqual({ inputTokens: 10, outputTokens: 5, cacheWriteTokens: 70, cacheWrite1hTokens: 0, cacheReadTokens: 0 });
    expect(response.rateLimits).toBeUndefined();
    expect(response.text).toBeNull();
  });

  it('a text answer without the tool call comes back as raw text', async () => {
    const server = await anthropicServer([{ json: fake.anthropicMessage({ text: 'I think we should wait.' }) }]);
    const response = await new AnthropicProvider({ baseUrl: server.url, apiKey: 'k' }).decide(request);
    expect(response.raw).toBe('I think we should wait.');
    expect(parseDecision(response.raw)).toEqual({ ok: false, error: 'the answer holds no JSON object: "I think we should wait."' });
  });

  it('a 500 is a retryable ProviderError with the server message', async () => {
    const server = await anthropicServer([{ status: 500, json: { type: 'error', error: { type: 'api_error', message: 'Internal server error' } } }]);
    const err = await failure(new AnthropicProvider({ baseUrl: server.url, apiKey: 'k' }).decide(request));
    expect(err).toMatchObject({ provider: 'anthropic', status: 500, retryable: true, code: 'unavailable' });
    expect(err.message).toBe('anthropic: HTTP 500: Internal server error');
  });

  it('a 429 carries retry-after and the rate limits; a 400 is not retryable; a 401 says to check the key', async () => {
    const server = await anthropicServer([
      {
        status: 429,
        json: { type: 'error', error: { type: 'rate_limit_error', message: 'Rate limited' } },
        headers: {
          'retry-after': '17',
          'anthropic-ratelimit-unified-5h-utilization': '1.0',
          'anthropic-ratelimit-unified-5h-reset': '1767225600',
        },
      },
      { status: 400, json: { type: 'error', error: { type: 'invalid_request_error', message: 'tools.0.input_schema: bad' } } },
      { status: 401, json: { type: 'error', error: { type: 'authentication_error', message: 'invalid x-api-key' } } },
    ]);
    const provider = new AnthropicProvider({ baseUrl: server.url, apiKey: 'k' });
    const limited = await failure(provider.decide(request));
    expect(limited).toMatchObject({ status: 429, retryable: true, retryAfterMs: 17_000, rateLimits: { fiveHour: { usedPercent: 100, resetsAt: 1767225600_000 } } });
    const bad = await failure(provider.decide(request));
    expect(bad).toMatchObject({ status: 400, retryable: false, code: 'failed' });
    expect(bad.message).toContain('tools.0.input_schema: bad');
    expect(bad.hint).toMatch(/not retried/);
    const auth = await failure(provider.decide(request));
    expect(auth).toMatchObject({ status: 401 });
    expect(auth.hint).toMatch(/API key/);
    expect(auth.message).not.toContain('k"');
  });

  it('a server that never answers is a timeout within the deadline', async () => {
    const server = await anthropicServer([{ hang: true }]);
    const provider = new AnthropicProvider({ baseUrl: server.url, apiKey: 'k', timeoutMs: 300 });
    const started = Date.now();
    const err = await failure(provider.decide(request));
    const elapsed = Date.now() - started;
    expect(err).toMatchObject({ status: 'timeout', retryable: true });
    expect(err.message).toContain('did not answer within 300 ms');
    expect(elapsed).toBeGreaterThanOrEqual(290);
    expect(elapsed).toBeLessThan(1_000);
  });

  it("the caller's cancellation is 'aborted', not a timeout", async () => {
    const server = await anthropicServer([{ hang: true }]);
    const provider = new AnthropicProvider({ baseUrl: server.url, apiKey: 'k', timeoutMs: 10_000 });
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 100);
    const err = await failure(provider.decide({ ...request, signal: controller.signal }));
    expect(err).toMatchObject({ status: 'aborted', retryable: false });
  });

  it('nothing listening is a retryable network error', async () => {
    const port = await closedPort();
    const err = await failure(new AnthropicProvider({ baseUrl: `http://127.0.0.1:${port}`, apiKey: 'k' }).decide(request));
    expect(err).toMatchObject({ status: 'network', retryable: true });
    expect(err.message).toMatch(/ECONNREFUSED/);
  });

  it('refuses a missing key and a bad base URL at construction', () => {
    expect(() => new AnthropicProvider({ apiKey: '' })).toThrow(/no API key/);
    expect(() => new AnthropicProvider({ apiKey: 'k', baseUrl: 'ftp://x' })).toThrow(/http/);
    expect(() => new AnthropicProvider({ apiKey: 'k', baseUrl: 'not a url' })).toThrow(/not a URL/);
  });
});

describe('OpenAIProvider', () => {
  it('sends a strict json_schema response format and maps usage (cached input apart)', async () => {
    const server = await openaiServer([
      {
        json: fake.openaiCompletion({
          content: JSON.stringify(DECISION),
          model: 'gpt-4o-2024-08-06',
          usage: { prompt_tokens: 1000, completion_tokens: 50, total_tokens: 1050, prompt_tokens_details: { cached_tokens: 400 } },
        }),
      },
    ]);
    const provider = new OpenAIProvider({ baseUrl: `${server.url}/v1`, apiKey: 'sk-test', name: 'openrouter' });
    expect(provider).toMatchObject({ name: 'openrouter', kind: 'openai' });
    const response = await provider.decide({ ...request, model: 'gpt-4o' });

    const sent = server.requests[0]!;
    expect(sent.path).toBe('/v1/chat/completions');
    expect(sent.headers['authorization']).toBe('Bearer sk-test');
    expect(sent.headers['content-type']).toBe('application/json');
    expect(sent.body).toEqual({
      model: 'gpt-4o',
      messages: [
        { role: 'system', content: request.system },
        { role: 'user', content: request.prompt },
      ],
      max_tokens: 1024,
      stream: false,
      response_format: { type: 'json_schema', json_schema: { name: 'decision', strict: true, schema: DECISION_STRICT_JSON_SCHEMA } },
    });
    expect(response).toEqual({
      raw: DECISION,
      text: JSON.stringify(DECISION),
      usage: { inputTokens: 600, outputTokens: 50, cacheWriteTokens: 0, cacheWrite1hTokens: 0, cacheReadTokens: 400 },
      model: 'gpt-4o-2024-08-06',
      stopReason: 'stop',
    });
  });

  it('sends no Authorization without a key (Ollama), and max_completion_tokens when asked', async () => {
    const server = await openaiServer([{ json: fake.openaiCompletion({ content: JSON.stringify(DECISION), model: 'qwen2.5:7b', usage: { prompt_tokens: 30, completion_tokens: 9 } }) }]);
    const provider = new OpenAIProvider({ baseUrl: `${server.url}/v1/`, name: 'ollama', maxTokensField: 'max_completion_tokens' });
    const response = await provider.decide({ ...request, model: 'qwen2.5:7b' });
    const sent = server.requests[0]!;
    expect(sent.headers['authorization']).toBeUndefined();
    expect(sent.body).toMatchObject({ max_completion_tokens: 1024 });
    expect(sent.body).not.toHaveProperty('max_tokens');
    expect(response.usage).toEqual({ inputTokens: 30, outputTokens: 9, cacheWriteTokens: 0, cacheWrite1hTokens: 0, cacheReadTokens: 0 });
  });

  it('content that is not JSON comes back as raw text for parseDecision to report', async () => {
    const text = 'Sure! {"action": "wait", oops';
    const server = await openaiServer([{ json: fake.openaiCompletion({ content: text }) }]);
    const response = await new OpenAIProvider({ baseUrl: `${server.url}/v1` }).decide(request);
    expect(response.raw).toBe(text);
    expect(response.text).toBe(text);
    const parsed = parseDecision(response.raw);
    expect(parsed.ok).toBe(false);
    if (!parsed.ok) expect(parsed.error).toMatch(/text around the JSON object/);
  });

  it('a 503 is retryable, a 422 is not, and a hanging server times out within the deadline', async () => {
    const server = await openaiServer([
      { status: 503, json: { error: { message: 'model is loading', type: 'server_error' } } },
      { status: 422, json: { error: 'response_format: unsupported' } },
      { hang: true },
    ]);
    const provider = new OpenAIProvider({ baseUrl: `${server.url}/v1`, timeoutMs: 250 });
    expect(await failure(provider.decide(request))).toMatchObject({ status: 503, retryable: true, message: 'openai: HTTP 503: model is loading' });
    expect(await failure(provider.decide(request))).toMatchObject({ status: 422, retryable: false, message: 'openai: HTTP 422: response_format: unsupported' });
    const started = Date.now();
    expect(await failure(provider.decide(request))).toMatchObject({ status: 'timeout', retryable: true });
    expect(Date.now() - started).toBeLessThan(1_000);
  });

  it('an answer that is not JSON at all, or has no choices, is a retryable error', async () => {
    const server = await openaiServer([{ body: '<html>gateway</html>' }, { json: { choices: [] } }]);
    const provider = new OpenAIProvider({ baseUrl: `${server.url}/v1` });
    expect(await failure(provider.decide(request))).toMatchObject({ retryable: true, message: expect.stringMatching(/not JSON/) });
    expect(await failure(provider.decide(request))).toMatchObject({ retryable: true, message: expect.stringMatching(/no choices/) });
  });
});

// ---------------------------------------------------------------------------------------------
// claude CLI

/**
 * A stand-in for `claude -p --output-format json`: logs its argv, stdin, pid and environment to
 * FAKE_CLAUDE_LOG, then acts out FAKE_CLAUDE_MODE. The `ok` result is the shape Claude Code 2.1.332
 * prints (captured from the real binary against a fake Anthropic server).
 */
const FAKE_CLAUDE = `
const fs = require('node:fs');
const { spawn } = require('node:child_process');
let stdin = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (c) => (stdin += c));
process.stdin.on('end', () => {
  const mode = process.env.FAKE_CLAUDE_MODE;
  const log = process.env.FAKE_CLAUDE_LOG;
  fs.writeFileSync(log, JSON.stringify({ argv: process.argv.slice(2), stdin, pid: process.pid,
    maxTokens: process.env.CLAUDE_CODE_MAX_OUTPUT_TOKENS }));
  const decision = ${JSON.stringify(JSON.stringify(DECISION))};
  const result = (text, extra = {}) => JSON.stringify({
    type: 'result', subtype: 'success', is_error: false, duration_ms: 173, duration_api_ms: 39, num_turns: 1,
    result: text, stop_reason: 'end_turn', session_id: 'd4f48ae0-2e09-4a9e-bee3-0eda63283e78', total_cost_usd: 0.0008625,
    usage: { input_tokens: 120, cache_creation_input_tokens: 10, cache_read_input_tokens: 50, output_tokens: 30,
      server_tool_use: { web_search_requests: 0, web_fetch_requests: 0 }, service_tier: 'standard',
      cache_creation: { ephemeral_1h_input_tokens: 0, ephemeral_5m_input_tokens: 10 } },
    modelUsage: {
      'claude-haiku-4-5-20251001': { inputTokens: 40, outputTokens: 2, cacheReadInputTokens: 0, cacheCreationInputTokens: 0, costUSD: 0.00005 },
      'claude-sonnet-4-5-20250929': { inputTokens: 120, outputTokens: 30, cacheReadInputTokens: 50, cacheCreationInputTokens: 10, costUSD: 0.0008125 },
    },
    permission_denials: [], terminal_reason: 'completed', uuid: '75228b9f-2902-48d0-b4c6-365c7cc532c9', ...extra });
  switch (mode) {
    case 'ok': process.stdout.write(result('\`\`\`json\\n' + decision + '\\n\`\`\`') + '\\n'); break;
    case 'prose': process.stdout.write(result('Here is my decision: ' + decision + ' Let me know.')); break;
    case 'api-error':
      process.stdout.write(result('API Error: 400 prompt is too long', { is_error: true, api_error_status: 400, total_cost_usd: 0 }));
      process.exitCode = 1; break;
    case 'overloaded':
      process.stdout.write(result('API Error: 529 Overloaded', { is_error: true, api_error_status: 529 }));
      process.exitCode = 1; break;
    case 'crash': process.stderr.write('Error: not logged in\\n'); process.exitCode = 2; break;
    case 'hang': {
      const grandchild = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
      fs.writeFileSync(log + '.grandchild', String(grandchild.pid));
      setInterval(() => {}, 1000);
      break;
    }
  }
});
`;

function fakeClaude(ctx: TestContext, mode: string): { executable: string; log: string; env: NodeJS.ProcessEnv } {
  const dir = tempDir(ctx);
  const executable = join(dir, 'claude');
  writeFileSync(executable, `#!${process.execPath}\n${FAKE_CLAUDE}`);
  chmodSync(executable, 0o755);
  const log = join(dir, 'calls.json');
  return { executable, log, env: { PATH: process.env.PATH ?? '', FAKE_CLAUDE_MODE: mode, FAKE_CLAUDE_LOG: log } };
}

interface Logged {
  argv: string[];
  stdin: string;
  pid: number;
  maxTokens: string;
}

function gone(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return true;
  }
  // a zombie waiting to be reaped by init counts as gone
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.startsWith('Z') ?? false;
  } catch {
    return true;
  }
}

describe('ClaudeCliProvider', () => {
  it('runs an argument vector with the prompt on stdin and reads the JSON result', async (ctx) => {
    const f = fakeClaude(ctx, 'ok');
    const provider = new ClaudeCliProvider({ executable: f.executable, env: f.env });
    expect(provider).toMatchObject({ name: 'claude-cli', kind: 'claude-cli' });
    const response = await provider.decide({ ...request, retryError: 'the answer is empty' });
    const logged = JSON.parse(readFileSync(f.log, 'utf8')) as Logged;
    expect(logged.argv).toEqual([
      '-p',
      '--output-format',
      'json',
      '--model',
      'claude-sonnet-4-5',
      '--append-system-prompt',
      request.system,
      '--no-session-persistence',
    ]);
    expect(logged.stdin).toBe(`${request.prompt}\n\nYour previous answer was refused: the answer is empty\nAnswer again with exactly one decision that fits the schema.`);
    for (const arg of logged.argv) expect(arg).not.toContain('What next?');
    expect(logged.maxTokens).toBe('1024');
    expect(response).toEqual({
      raw: DECISION,
      text: `\`\`\`json\n${JSON.stringify(DECISION)}\n\`\`\``,
      usage: { inputTokens: 120, outputTokens: 30, cacheWriteTokens: 10, cacheWrite1hTokens: 0, cacheReadTokens: 50 },
      model: 'claude-sonnet-4-5-20250929',
      costUsd: 0.0008625,
      stopReason: 'end_turn',
    });
  });

  it('leaves out an empty system prompt, keeps the session when asked, and appends extra arguments', async (ctx) => {
    const f = fakeClaude(ctx, 'ok');
    const provider = new ClaudeCliProvider({ executable: f.executable, env: f.env, persistSession: true, extraArgs: ['--tools', ''] });
    await provider.decide({ ...request, system: '' });
    const logged = JSON.parse(readFileSync(f.log, 'utf8')) as Logged;
    expect(logged.argv).toEqual(['-p', '--output-format', 'json', '--model', 'claude-sonnet-4-5', '--tools', '']);
  });

  it('prose around the JSON comes back as raw text, and parseDecision says why it is refused', async (ctx) => {
    const f = fakeClaude(ctx, 'prose');
    const response = await new ClaudeCliProvider({ executable: f.executable, env: f.env }).decide(request);
    expect(typeof response.raw).toBe('string');
    expect(response.raw).toBe(response.text);
    expect(parseDecision(response.raw)).toEqual({ ok: false, error: 'the answer has text around the JSON object; answer with only the JSON object' });
  });

  it("an API error reported by the CLI takes the API's status", async (ctx) => {
    const bad = fakeClaude(ctx, 'api-error');
    const err = await failure(new ClaudeCliProvider({ executable: bad.executable, env: bad.env }).decide(request));
    expect(err).toMatchObject({ status: 400, retryable: false });
    expect(err.message).toContain('API Error: 400 prompt is too long');
    const busy = fakeClaude(ctx, 'overloaded');
    expect(await failure(new ClaudeCliProvider({ executable: busy.executable, env: busy.env }).decide(request))).toMatchObject({ status: 529, retryable: true });
  });

  it("a crash is an 'exit' error quoting stderr; a missing executable says how to fix it", async (ctx) => {
    const f = fakeClaude(ctx, 'crash');
    const crash = await failure(new ClaudeCliProvider({ executable: f.executable, env: f.env }).decide(request));
    expect(crash).toMatchObject({ status: 'exit', retryable: true });
    expect(crash.message).toContain('exited with 2 without its JSON result: Error: not logged in');
    const missing = await failure(new ClaudeCliProvider({ executable: join(tempDir(ctx), 'no-such-claude'), env: f.env }).decide(request));
    expect(missing).toMatchObject({ status: 'exit' });
    expect(missing.message).toMatch(/ENOENT/);
    expect(missing.hint).toMatch(/Install Claude Code/);
  });

  it('a hanging CLI is killed with its process group at the timeout', async (ctx) => {
    const f = fakeClaude(ctx, 'hang');
    const provider = new ClaudeCliProvider({ executable: f.executable, env: f.env, timeoutMs: 600 });
    const started = Date.now();
    const err = await failure(provider.decide(request));
    const elapsed = Date.now() - started;
    expect(err).toMatchObject({ status: 'timeout', retryable: true });
    expect(err.message).toMatch(/did not finish within 600 ms and was killed/);
    expect(elapsed).toBeGreaterThanOrEqual(590);
    expect(elapsed).toBeLessThan(2_000);
    const logged = JSON.parse(readFileSync(f.log, 'utf8')) as Logged;
    const grandchild = Number(readFileSync(`${f.log}.grandchild`, 'utf8'));
    for (let i = 0; i < 50 && !(gone(logged.pid) && gone(grandchild)); i++) await new Promise((r) => setTimeout(r, 20));
    expect(gone(logged.pid), 'the CLI').toBe(true);
    expect(gone(grandchild), 'what the CLI started').toBe(true);
  });

  it("the caller's cancellation kills it too, as 'aborted'", async (ctx) => {
    const f = fakeClaude(ctx, 'hang');
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 300);
    const err = await failure(new ClaudeCliProvider({ executable: f.executable, env: f.env, timeoutMs: 10_000 }).decide({ ...request, signal: controller.signal }));
    expect(err).toMatchObject({ status: 'aborted', retryable: false });
  });
});

// ---------------------------------------------------------------------------------------------
// the chain

describe('ProviderChain', () => {
  function fakeClock() {
    let t = 1_767_225_600_000;
    return { now: () => t, advance: (ms: number) => (t += ms) };
  }

  it('falls back to B while A fails, opens A after 3 failures, probes it after the cool-down, and closes when A recovers', async () => {
    let aHealthy = false;
    const a = await anthropicServer(() =>
      aHealthy
        ? { json: fake.anthropicMessage({ input: DECISION, usage: { input_tokens: 5, output_tokens: 5 } }) }
        : { status: 500, json: { type: 'error', error: { type: 'api_error', message: 'Internal server error' } } },
    );
    const b = await openaiServer([{ json: fake.openaiCompletion({ content: JSON.stringify(DECISION), model: 'qwen2.5:7b' }) }]);
    const clock = fakeClock();
    const chain = new ProviderChain(
      [
        { provider: new AnthropicProvider({ baseUrl: a.url, apiKey: 'k' }), model: 'claude-sonnet-4-5' },
        { provider: new OpenAIProvider({ baseUrl: `${b.url}/v1`, name: 'ollama' }), model: 'qwen2.5:7b', maxTokens: 512 },
      ],
      { breaker: { now: clock.now } },
    );
    const ask = () => chain.decide({ system: request.system, prompt: request.prompt, maxTokens: 1024 });

    for (let i = 1; i <= 3; i++) {
      const answer = await ask();
      expect(answer.index).toBe(1);
      expect(answer.entry.model).toBe('qwen2.5:7b');
      expect(answer.response.raw).toEqual(DECISION);
      expect(answer.attempts.map((x) => [x.provider, x.outcome, x.status])).toEqual([
        ['anthropic', 'failed', 500],
        ['ollama', 'answered', undefined],
      ]);
      expect(chain.breaker('anthropic')!.state).toBe(i < 3 ? 'closed' : 'open');
    }
    expect(a.requests).toHaveLength(3);
    expect((b.requests[0]!.body as { max_tokens: number }).max_tokens).toBe(512);

    // open: A is skipped without a request
    const skipped = await ask();
    expect(skipped.attempts.map((x) => [x.provider, x.outcome])).toEqual([
      ['anthropic', 'skipped'],
      ['ollama', 'answered'],
    ]);
    expect(skipped.attempts[0]!.error).toMatch(/circuit breaker is open until/);
    expect(a.requests).toHaveLength(3);

    // after the cool-down A is probed; it still fails: open again
    clock.advance(60_000);
    expect(chain.breaker('anthropic')!.state).toBe('half-open');
    await ask();
    expect(a.requests).toHaveLength(4);
    expect(chain.breaker('anthropic')!.state).toBe('open');

    // A recovers: the next probe succeeds and closes the breaker
    aHealthy = true;
    clock.advance(60_000);
    const recovered = await ask();
    expect(recovered.index).toBe(0);
    expect(recovered.attempts.map((x) => [x.provider, x.outcome])).toEqual([['anthropic', 'answered']]);
    expect(chain.breaker('anthropic')!.state).toBe('closed');
    expect(a.requests).toHaveLength(5);

    const status = chain.status();
    expect(status.entries).toEqual([
      { provider: 'anthropic', kind: 'anthropic', model: 'claude-sonnet-4-5', breaker: 'closed' },
      { provider: 'ollama', kind: 'openai', model: 'qwen2.5:7b', breaker: 'closed' },
    ]);
    expect(status.breakers[0]).toMatchObject({
      name: 'anthropic',
      state: 'closed',
      consecutiveFailures: 0,
      counters: { calls: 5, successes: 1, failures: 4, timeouts: 0, opens: 2, rejections: 1 },
    });
    expect(status.breakers[1]).toMatchObject({ name: 'ollama', counters: { calls: 5, successes: 5, failures: 0 } });
  });

  it('while a half-open probe is in flight, a concurrent decision skips that provider', async () => {
    let slow = false;
    const a = await anthropicServer(() =>
      slow ? { delayMs: 300, json: fake.anthropicMessage({ input: DECISION }) } : { status: 503, json: { type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' } } },
    );
    const b = await openaiServer([{ json: fake.openaiCompletion({ content: JSON.stringify(DECISION) }) }]);
    const clock = fakeClock();
    const chain = new ProviderChain(
      [
        { provider: new AnthropicProvider({ baseUrl: a.url, apiKey: 'k' }), model: 'm' },
        { provider: new OpenAIProvider({ baseUrl: `${b.url}/v1` }), model: 'm' },
      ],
      { breaker: { now: clock.now, failureThreshold: 1, coolDownMs: 1_000 } },
    );
    const ask = () => chain.decide({ system: 's', prompt: 'p', maxTokens: 100 });
    await ask();
    expect(chain.breaker('anthropic')!.state).toBe('open');
    slow = true;
    clock.advance(1_000);
    const probe = ask();
    await new Promise((r) => setTimeout(r, 50));
    const concurrent = await ask();
    expect(concurrent.attempts.map((x) => [x.provider, x.outcome])).toEqual([
      ['anthropic', 'skipped'],
      ['openai', 'answered'],
    ]);
    expect(concurrent.attempts[0]!.error).toMatch(/being probed/);
    expect((await probe).index).toBe(0);
    expect(chain.breaker('anthropic')!.state).toBe('closed');
  });

  it('a non-retryable error stops the chain and says so, counted as a failure', async () => {
    const a = await anthropicServer([{ status: 400, json: { type: 'error', error: { type: 'invalid_request_error', message: 'prompt is too long' } } }]);
    const b = await openaiServer([{ json: fake.openaiCompletion({ content: JSON.stringify(DECISION) }) }]);
    const chain = new ProviderChain([
      { provider: new AnthropicProvider({ baseUrl: a.url, apiKey: 'k' }), model: 'm' },
      { provider: new OpenAIProvider({ baseUrl: `${b.url}/v1` }), model: 'm' },
    ]);
    const err = await chain.decide({ system: 's', prompt: 'p', maxTokens: 100 }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ChainFailed);
    const failed = err as ChainFailed;
    expect(failed.retryable).toBe(false);
    expect(failed.code).toBe('failed');
    expect(failed.message).toBe('anthropic: HTTP 400: prompt is too long (not retryable: the chain stopped at anthropic:m)');
    expect(failed.attempts).toMatchObject([{ provider: 'anthropic', outcome: 'failed', status: 400, retryable: false }]);
    expect(failed.cause).toBeInstanceOf(ProviderError);
    expect(b.requests).toHaveLength(0);
    expect(chain.breaker('anthropic')!.snapshot()).toMatchObject({ consecutiveFailures: 1, counters: { failures: 1 } });
  });

  it('when every entry fails or is skipped, ChainFailed lists them and is retryable', async () => {
    const a = await anthropicServer([{ status: 529, json: { type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' } } }]);
    const port = await closedPort();
    const clock = fakeClock();
    const chain = new ProviderChain(
      [
        { provider: new AnthropicProvider({ baseUrl: a.url, apiKey: 'k' }), model: 'opus' },
        { provider: new AnthropicProvider({ baseUrl: a.url, apiKey: 'k' }), model: 'sonnet' },
        { provider: new OpenAIProvider({ baseUrl: `http://127.0.0.1:${port}/v1`, name: 'local' }), model: 'qwen' },
      ],
      { breaker: { now: clock.now, failureThreshold: 2 } },
    );
    const ask = () =>
      chain.decide({ system: 's', prompt: 'p', maxTokens: 100 }).then(
        () => undefined,
        (e: unknown) => e as ChainFailed,
      );
    const first = await ask();
    expect(first).toBeInstanceOf(ChainFailed);
    expect(first!.retryable).toBe(true);
    expect(first!.code).toBe('unavailable');
    // both anthropic entries share one breaker: two failures open it
    expect(first!.message).toBe('no brain provider answered (anthropic:opus 529, anthropic:sonnet 529, local:qwen network)');
    const second = await ask();
    expect(second!.attempts.map((x) => x.outcome)).toEqual(['skipped', 'skipped', 'failed']);
    const third = await ask();
    expect(third!.message).toMatch(/^no brain provider is available: every circuit breaker is open/);
    expect(a.requests).toHaveLength(2);
  });

  it("the caller's cancellation stops the chain and is held against no provider", async () => {
    const a = await anthropicServer([{ hang: true }]);
    const b = await openaiServer([{ json: fake.openaiCompletion({ content: JSON.stringify(DECISION) }) }]);
    const chain = new ProviderChain([
      { provider: new AnthropicProvider({ baseUrl: a.url, apiKey: 'k' }), model: 'm' },
      { provider: new OpenAIProvider({ baseUrl: `${b.url}/v1` }), model: 'm' },
    ]);
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 100);
    const err = await failure(chain.decide({ system: 's', prompt: 'p', maxTokens: 100, signal: controller.signal }));
    expect(err.status).toBe('aborted');
    expect(b.requests).toHaveLength(0);
    expect(chain.breaker('anthropic')!.snapshot().counters).toMatchObject({ calls: 1, failures: 0, successes: 0 });
  });

  it('refuses an empty chain', () => {
    expect(() => new ProviderChain([])).toThrow(/at least one/);
  });
});
