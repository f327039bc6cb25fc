import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Client, type ClientOptions, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { StdioClientTransport } from '@modelcontextprotocol/client/stdio';
import { describe, expect, it, type TestContext } from 'vitest';
import { BIN, ROOT } from '../helpers/cli.js';
import { call, httpWorld, type HttpWorld, INITIALIZE, MCP_HEADERS } from '../helpers/http.js';
import { ADAPTERS } from '../helpers/isolation.js';

/**
 * `/mcp` of a real `sos daemon`: the SDK client over streamable HTTP (the 2025-era session every
 * agent CLI opens today, and the 2026-07-28 per-request leg) against the same tools over stdio;
 * sessions bound to the token that opened them, bounded and expiring; observers refused; every
 * mutating tool call in the audit log, read back with `sos audit`.
 */

interface Side {
  client: Client;
  call(name: string, args?: Record<string, unknown>): Promise<{ isError: boolean; body: unknown }>;
}

function definedEnv(env: NodeJS.ProcessEnv): Record<string, string> {
  return Object.fromEntries(Object.entries(env).filter((e): e is [string, string] => e[1] !== undefined));
}

async function side(ctx: TestContext, client: Client, transport: Parameters<Client['connect']>[0]): Promise<Side> {
  ctx.onTestFinished(() => client.close());
  await client.connect(transport);
  return {
    client,
    async call(name, args = {}) {
      const result = await client.callTool({ name, arguments: args });
      const content = result.content as { type: string; text: string }[];
      expect(content).toHaveLength(1);
      return { isError: result.isError === true, body: JSON.parse(content[0]!.text) as unknown };
    },
  };
}

/** The SDK client over HTTP with a bearer token (2025-era session unless `options` pins a version). */
function overHttp(ctx: TestContext, url: string, token: string, options: ClientOptions = {}, headers: Record<string, string> = {}): Promise<Side> {
  const transport = new StreamableHTTPClientTransport(new URL(`${url}/mcp`), { requestInit: { headers: { authorization: `Bearer ${token}`, ...headers } } });
  return side(ctx, new Client({ name: 'sos-test', version: '0.0.0' }, options), transport);
}

/** `sos mcp` over stdio with the token in SOS_TOKEN, as an agent CLI would spawn it. */
function overStdio(ctx: TestContext, w: HttpWorld, token: string): Promise<Side> {
  const transport = new StdioClientTransport({ command: process.execPath, args: [BIN, 'mcp'], env: definedEnv({ ...w.env, SOS_TOKEN: token }), cwd: ROOT, stderr: 'pipe' });
  return side(ctx, new Client({ name: 'sos-test', version: '0.0.0' }), transport);
}

/** Ids, times and UUIDs differ from one install to the next; everything else must not. */
const normalise = (value: unknown) =>
  JSON.parse(
    JSON.stringify(value)
      .replace(/\b([a-z]{3})_[0-9a-z]{26}\b/g, '$1_ID')
      .replace(/\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z/g, 'TIME')
      .replace(/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g, 'UUID'),
  ) as unknown;

/** Two agents that can exercise every tool: a coordinator and a worker, with capability `code`. */
async function team(w: HttpWorld) {
  for (const args of [
    ['agents', 'add', 'kasra', '--role', 'coordinator', '--cap', 'code'],
    ['agents', 'add', 'codex', '--cap', 'code'],
  ]) {
    const r = await w.run(args);
    expect(r.code, r.stderr).toBe(0);
  }
  return { kasra: await w.token('kasra', { add: false }), codex: await w.token('codex', { add: false }) };
}

/**
 * Every one of the twenty tools, in an order that makes each succeed (plus two refusals), as
 * kasra and codex. Returns each result, in order, normalised.
 */
async function everyTool(kasra: Side, codex: Side): Promise<unknown[]> {
  const out: unknown[] = [];
  const run = async (who: Side, name: string, args: Record<string, unknown> = {}) => {
    const r = await who.call(name, args);
    out.push({ name, ...r });
    return r.body as Record<string, unknown>;
  };
  await run(kasra, 'whoami');
  await run(kasra, 'workspace_join', { workspace_id: 'ops', summary: 'operations' });
  await run(codex, 'workspace_join', { workspace_id: 'ops' });
  await run(kasra, 'peers');
  const sent = await run(kasra, 'send', { to: 'codex', text: 'the deploy is fixed', ack: true });
  await run(kasra, 'broadcast', { text: 'standup in 5', squad: 'ops' });
  await run(codex, 'inbox');
  await run(codex, 'ack', { id: sent.id, note: 'on it' });
  await run(kasra, 'inbox', { all: true });
  const engram = await run(kasra, 'remember', { text: 'The staging deploy key lives in the ops vault under deploy/staging.', kind: 'finding', tags: ['deploy'] });
  await run(codex, 'recall', { query: 'where is the staging deploy key kept', limit: 3 });
  const task = await run(kasra, 'task_create', { title: 'fix the flaky build', requires: ['code'], priority: 'high' });
  const other = await run(kasra, 'task_create', { title: 'rotate the staging key' });
  await run(codex, 'task_list');
  const claimed = await run(kasra, 'task_claim', { id: task.id, lease_seconds: 600 });
  await run(kasra, 'task_heartbeat', { id: task.id, fence: claimed.fence });
  await run(kasra, 'task_handoff', { id: task.id, fence: claimed.fence, to: 'codex', summary: 'half done: the test harness is next', memories: [engram.id] });
  const accepted = await run(codex, 'task_accept', { id: task.id });
  await run(codex, 'usage_report', { model: 'claude-sonnet-4-5', input_tokens: 1_000, output_tokens: 200, idempotency_key: 'turn-1' });
  await run(codex, 'task_complete', { id: task.id, fence: accepted.fence, result: 'green for 20 runs' });
  const second = await run(codex, 'task_claim', { id: other.id });
  await run(codex, 'task_fail', { id: other.id, fence: second.fence, error: 'no access to the vault', retryable: true });
  await run(codex, 'memory_context', { max_chars: 1_500 });
  await run(codex, 'workspace_leave', { workspace_id: 'ops' });
  // Refusals travel the same way: the CLI's codes inside a tool error.
  await run(codex, 'task_claim', { wait_seconds: 0 });
  await run(kasra, 'send', { to: 'nobody', text: 'hello?' });
  return out.map(normalise);
}

const CLAUDE = join(ROOT, 'node_modules', '.bin', 'claude');
const CLAUDE_VERSION = '2.1.332';

const fake = (await import(new URL('../helpers/fake-models.mjs', import.meta.url).href)) as {
  startAnthropic(script: { turns: { text?: string; tool?: { name: string; input: Record<string, unknown> }; usage: Record<string, number> }[]; idPrefix?: string }): Promise<{
    url: string;
    requests: { kind?: string; exhausted?: boolean; body?: { messages?: { role: string; content: string | { type: string; is_error?: boolean; content?: unknown }[] }[] } }[];
    close(): Promise<void>;
  }>;
};

/** Claude Code's environment: its own HOME and config, offline but for the fake on 127.0.0.1. */
function claudeEnv(home: string, anthropic: string): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH ?? '',
    LANG: 'C.UTF-8',
    TERM: 'dumb',
    HOME: home,
    CLAUDE_CONFIG_DIR: join(home, 'config'),
    ANTHROPIC_BASE_URL: anthropic,
    ANTHROPIC_API_KEY: 'dummy',
    DISABLE_AUTOUPDATER: '1',
    DISABLE_TELEMETRY: '1',
    DISABLE_ERROR_REPORTING: '1',
    CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1',
    HTTPS_PROXY: 'http://127.0.0.1:9',
    HTTP_PROXY: 'http://127.0.0.1:9',
    NO_PROXY: '127.0.0.1,localhost',
  };
}

describe('MCP over streamable HTTP', () => {
  it(`Claude Code ${CLAUDE_VERSION}, added with \`claude mcp add --transport http\`, sends a message that lands in the Store`, { timeout: 120_000 }, async (ctx) => {
    if (!existsSync(CLAUDE)) throw new Error(`${CLAUDE} is missing: @anthropic-ai/claude-code is a devDependency, run \`npm ci\``);
    const w = await httpWorld(ctx);
    const tokens = await team(w);
    const { url } = await w.serve();
    const usage = { input_tokens: 100, output_tokens: 20 };
    const anthropic = await fake.startAnthropic({
      idPrefix: 'http',
      turns: [
        { tool: { name: 'ToolSearch', input: { query: 'select:mcp__sos__send,mcp__sos__whoami' } }, usage },
        { tool: { name: 'mcp__sos__whoami', input: {} }, usage },
        { tool: { name: 'mcp__sos__send', input: { to: 'kasra', text: 'sent by Claude Code over HTTP' } }, usage },
        { text: 'done.', usage },
      ],
    });
    ctx.onTestFinished(() => anthropic.close());
    const home = join(w.dir, 'claude-home');
    mkdirSync(join(home, 'config'), { recursive: true });
    const env = claudeEnv(home, anthropic.url);

    // The README's line, as a user types it.
    const added = spawnSync(CLAUDE, ['mcp', 'add', '--transport', 'http', 'sos', `${url}/mcp`, '--header', `Authorization: Bearer ${tokens.codex}`], { cwd: home, env, encoding: 'utf8', timeout: 30_000 });
    expect(added.status, `${added.stdout}${added.stderr}`).toBe(0);

    const child = spawn(CLAUDE, ['-p', 'Tell kasra over sos.', '--allowedTools', 'mcp__sos__*', '--output-format', 'json'], { cwd: home, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 90_000);
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    clearTimeout(timer);
    const report = `claude exited ${code}\nstdout: ${stdout}\nstderr: ${stderr}`;
    expect(code, report).toBe(0);
    expect(JSON.parse(stdout), report).toMatchObject({ is_error: false, result: 'done.' });
    expect(anthropic.requests.filter((r) => r.exhausted || r.kind === 'unrouted')).toEqual([]);

    // Each tool result came back without an error; whoami names the token's agent.
    const history = anthropic.requests.filter((r) => r.kind === 'main').at(-1)!.body!.messages!;
    const results = history.flatMap((m) => (typeof m.content === 'string' ? [] : m.content.filter((b) => b.type === 'tool_result')));
    expect(results).toHaveLength(3);
    expect(results.every((r) => r.is_error !== true), JSON.stringify(results)).toBe(true);
    expect(JSON.stringify(results[1])).toContain('\\"agent\\":\\"codex\\"');

    const inbox = (await w.run(['--as', 'kasra', '--json', 'inbox'])).json<{ unread: { from: string; text: string }[] }>();
    expect(inbox.unread).toEqual([expect.objectContaining({ from: 'codex', text: 'sent by Claude Code over HTTP' })]);
    const audit = (await w.run(['--json', 'audit'])).json<{ actor: string; action: string; outcome: string }[]>();
    expect(audit.map((r) => [r.actor, r.action, r.outcome])).toEqual([['codex', 'mcp.send', 'ok']]);
  });


  it('lists the same tools as stdio and answers every tool call as stdio does', { timeout: 90_000 }, async (ctx) => {
    const overHttpWorld = await httpWorld(ctx);
    const overStdioWorld = await httpWorld(ctx);
    const httpTokens = await team(overHttpWorld);
    const stdioTokens = await team(overStdioWorld);
    const { url } = await overHttpWorld.serve();

    const viaHttp = { kasra: await overHttp(ctx, url, httpTokens.kasra), codex: await overHttp(ctx, url, httpTokens.codex) };
    const viaStdio = { kasra: await overStdio(ctx, overStdioWorld, stdioTokens.kasra), codex: await overStdio(ctx, overStdioWorld, stdioTokens.codex) };

    expect(viaHttp.kasra.client.getServerVersion()).toEqual(viaStdio.kasra.client.getServerVersion());
    const listed = (await viaHttp.kasra.client.listTools()).tools;
    expect(listed).toEqual((await viaStdio.kasra.client.listTools()).tools);
    expect(listed).toHaveLength(20);

    const httpResults = await everyTool(viaHttp.kasra, viaHttp.codex);
    const stdioResults = await everyTool(viaStdio.kasra, viaStdio.codex);
    expect(httpResults.map((r) => (r as { name: string }).name)).toEqual(stdioResults.map((r) => (r as { name: string }).name));
    for (let i = 0; i < httpResults.length; i++) expect(httpResults[i], `call #${i}`).toEqual(stdioResults[i]);
    // The script really ran: successes and exactly the two refusals, on both transports.
    expect(httpResults.filter((r) => (r as { isError: boolean }).isError)).toHaveLength(2);
    expect(httpResults.at(-1)).toMatchObject({ isError: true, body: { error: { code: 'not_found' } } });

    // The effects are in the Store the daemon serves.
    const tasks = (await overHttpWorld.run(['--json', 'tasks', 'list'])).json<{ title: string; status: string }[]>();
    expect(tasks.map((t) => [t.title, t.status]).sort()).toEqual([
      ['fix the flaky build', 'done'],
      ['rotate the staging key', 'queued'],
    ]);
  });

  it('serves 2026-07-28 requests without a session, for the caller of each request', async (ctx) => {
    const w = await httpWorld(ctx);
    const tokens = await team(w);
    const { url } = await w.serve();
    const modern = await overHttp(ctx, url, tokens.codex, { versionNegotiation: { mode: { pin: '2026-07-28' } } });
    const legacy = await overHttp(ctx, url, tokens.codex);
    expect((await modern.client.listTools()).tools).toEqual((await legacy.client.listTools()).tools);
    expect((await modern.call('whoami')).body).toEqual({ project: 'default', agent: 'codex', role: 'agent', via: 'token' });
    const sent = await modern.call('send', { to: 'kasra', text: 'over the per-request leg' });
    expect(sent).toMatchObject({ isError: false, body: { to: 'kasra', recipients: ['kasra'] } });
    const inbox = (await w.run(['--as', 'kasra', '--json', 'inbox'])).json<{ unread: { text: string; from: string }[] }>();
    expect(inbox.unread).toEqual([expect.objectContaining({ from: 'codex', text: 'over the per-request leg' })]);
    const audit = (await w.run(['--json', 'audit'])).json<{ actor: string; action: string; outcome: string }[]>();
    expect(audit.map((r) => [r.actor, r.action, r.outcome])).toEqual([['codex', 'mcp.send', 'ok']]);
  });

  for (const adapter of ADAPTERS) {
    it.skipIf(!adapter.available)(`[${adapter.name}] binds sessions to their token, bounds and expires them, refuses observers, and audits every mutating call`, { timeout: 60_000 }, async (ctx) => {
      const w = await httpWorld(ctx, adapter);
      const tokens = await team(w);
      const observer = await w.token('watcher', { role: 'observer' });
      const admin = await w.token('root', { role: 'admin' });
      const { url } = await w.serve({ env: { SOS_MCP_SESSIONS: '3', SOS_MCP_SESSION_IDLE_MS: '1500' } });
      const store = await w.store();

      // A session opened by kasra's token; codex's token with its id is refused and counted.
      const opened = await call(`${url}/mcp`, { token: tokens.kasra, body: INITIALIZE, headers: MCP_HEADERS });
      expect(opened.status).toBe(200);
      const sid = opened.headers.get('mcp-session-id')!;
      expect(sid).toMatch(/^[0-9a-f-]{36}$/);
      expect(opened.headers.get('x-request-id')).toMatch(/^req_/);
      const before = (await store.security.count('default')).forbidden ?? 0;
      const hijack = await call(`${url}/mcp`, {
        token: tokens.codex,
        body: { jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'whoami', arguments: {} } },
        headers: { ...MCP_HEADERS, 'mcp-session-id': sid, 'mcp-protocol-version': '2025-06-18' },
      });
      expect(hijack.status).toBe(403);
      expect(hijack.body).toMatchObject({ error: { code: 'permission_denied', message: 'this MCP session belongs to another token' } });
      expect((await store.security.count('default')).forbidden).toBe(before + 1);
      const unknown = await call(`${url}/mcp`, { token: tokens.kasra, body: { jsonrpc: '2.0', id: 3, method: 'tools/list' }, headers: { ...MCP_HEADERS, 'mcp-session-id': '00000000-0000-4000-8000-000000000000' } });
      expect(unknown.status).toBe(404);

      // The observer reads, and every mutating tool is refused to it by the core.
      const watcher = await overHttp(ctx, url, observer);
      expect((await watcher.call('task_list')).isError).toBe(false);
      expect((await watcher.call('send', { to: 'kasra', text: 'let me in' })).body).toMatchObject({ error: { code: 'permission_denied' } });
      expect((await watcher.call('task_create', { title: 'sneaky' })).body).toMatchObject({ error: { code: 'permission_denied' } });

      // Three sessions are the bound: the fourth initialize waits for one to expire.
      const full = await call(`${url}/mcp`, { token: tokens.codex, body: INITIALIZE, headers: MCP_HEADERS });
      const fourth = await call(`${url}/mcp`, { token: tokens.codex, body: INITIALIZE, headers: MCP_HEADERS });
      expect(full.status).toBe(200);
      expect(fourth.status).toBe(503);
      expect(fourth.body).toMatchObject({ error: { code: 'unavailable', message: expect.stringMatching(/maximum of 3 MCP sessions/) } });
      // Idle past 1.5 s (no request touches it meanwhile): kasra's raw session is closed, which
      // makes room for a new one, and its id is unknown from then on (404: initialize again).
      await new Promise((r) => setTimeout(r, 1_700));
      const fresh = await call(`${url}/mcp`, { token: tokens.codex, body: INITIALIZE, headers: MCP_HEADERS });
      expect(fresh.status).toBe(200);
      const expired = await call(`${url}/mcp`, { token: tokens.kasra, body: { jsonrpc: '2.0', id: 4, method: 'tools/list' }, headers: { ...MCP_HEADERS, 'mcp-session-id': sid } });
      expect(expired.status).toBe(404);
      // DELETE ends a session, for its own token only.
      const ending = { ...MCP_HEADERS, 'mcp-session-id': fresh.headers.get('mcp-session-id')!, 'mcp-protocol-version': '2025-06-18' };
      expect((await call(`${url}/mcp`, { method: 'DELETE', token: tokens.kasra, headers: ending })).status).toBe(403);
      expect((await call(`${url}/mcp`, { method: 'DELETE', token: tokens.codex, headers: ending })).status).toBe(200);
      expect((await call(`${url}/mcp`, { token: tokens.codex, body: { jsonrpc: '2.0', id: 5, method: 'tools/list' }, headers: ending })).status).toBe(404);

      // Audit: one row per mutating call (refused ones too), none for reads.
      const kasra = await overHttp(ctx, url, tokens.kasra);
      const sent = await kasra.call('send', { to: 'codex', text: 'audited' });
      await kasra.call('peers');
      const audit = await w.run(['--json', 'audit', '--since', '1h']);
      expect(audit.code, audit.stderr).toBe(0);
      const rows = audit.json<{ actor: string; role: string; action: string; outcome: string; status: number; method: string; path: string; requestId: string; tokenId: string; remote: string }[]>();
      expect(rows.map((r) => [r.actor, r.action, r.outcome]).reverse()).toEqual([
        ['watcher', 'mcp.send', 'permission_denied'],
        ['watcher', 'mcp.task_create', 'permission_denied'],
        ['kasra', 'mcp.send', 'ok'],
      ]);
      expect(rows[0]).toMatchObject({ role: 'agent', method: 'POST', path: '/mcp', status: 200, requestId: expect.stringMatching(/^req_/), tokenId: expect.stringMatching(/^tok_/), remote: '127.0.0.1' });
      expect(sent.isError).toBe(false);
      expect((await w.run(['--json', 'audit', '--action', 'mcp.task_create'])).json()).toHaveLength(1);
      // The log is for admins: an admin token reads it, an agent token is refused (exit 6).
      expect((await w.run(['--json', 'audit'], { env: { SOS_TOKEN: admin } })).json()).toHaveLength(3);
      const refused = await w.run(['--json', 'audit'], { env: { SOS_TOKEN: tokens.kasra } });
      expect(refused.code).toBe(6);
      expect(refused.json()).toMatchObject({ error: { code: 'permission_denied' } });
    });
  }
});
