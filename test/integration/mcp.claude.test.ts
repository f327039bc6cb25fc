import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it, type TestContext } from 'vitest';
import { BIN, isolatedEnv, ROOT, sos } from '../helpers/cli.js';
import { tempDir } from '../helpers/isolation.js';

/**
 * `sos mcp` with the real Claude Code as its MCP client: the pinned `@anthropic-ai/claude-code`
 * (a devDependency, so `npm ci` installs it) runs `-p` against the scripted fake Anthropic server
 * of test/helpers/fake-models.mjs, offline. The fake plays the model: turn by turn it calls the
 * sos tools by Claude Code's MCP names (`mcp__sos__<tool>`) with the call shapes SOS agents are
 * taught, and sees every tool_result Claude Code sends back. The effects are then read with the
 * CLI. Claude Code 2.1.332 defers MCP tools behind its ToolSearch tool (their names are listed in
 * the prompt, their schemas are not sent), so each run first loads them with `select:`, as a model
 * does.
 */

const CLAUDE = join(ROOT, 'node_modules', '.bin', 'claude');
const CLAUDE_VERSION = '2.1.332';
/** Each `claude -p` run takes about two seconds here; past this it is killed and the test fails. */
const RUN_TIMEOUT_MS = 60_000;

interface FakeRequest {
  path: string;
  kind?: string;
  exhausted?: boolean;
  body?: { tools?: { name: string; input_schema?: { required?: string[] } }[]; messages?: Message[] };
}
interface FakeServer {
  url: string;
  requests: FakeRequest[];
  close(): Promise<void>;
}
interface Turn {
  text?: string;
  tool?: { name: string; input: Record<string, unknown> };
  usage: Record<string, number>;
}
interface Block {
  type: string;
  id?: string;
  name?: string;
  input?: unknown;
  tool_use_id?: string;
  is_error?: boolean;
  content?: string | { type: string; text?: string; tool_name?: string }[];
}
interface Message {
  role: 'user' | 'assistant';
  content: string | Block[];
}
/** One tool call as the fake model made it and the tool_result Claude Code answered it with. */
interface Call {
  name: string;
  input: unknown;
  isError: boolean;
  text: string;
  body: unknown;
}

const fake = (await import(new URL('../helpers/fake-models.mjs', import.meta.url).href)) as {
  startAnthropic(script: { turns: Turn[]; idPrefix?: string }): Promise<FakeServer>;
};

let checked: string | undefined;
/** Claude Code must be there and be the real binary (not the stub its postinstall replaces). */
function claudeBinary(): string {
  if (checked) return checked;
  if (!existsSync(CLAUDE)) {
    throw new Error(`${CLAUDE} is missing: @anthropic-ai/claude-code@${CLAUDE_VERSION} is a devDependency, run \`npm ci\``);
  }
  const v = spawnSync(CLAUDE, ['--version'], { encoding: 'utf8', timeout: 20_000, env: { PATH: process.env.PATH ?? '', DISABLE_AUTOUPDATER: '1' } });
  if (v.status !== 0 || !v.stdout.startsWith(`${CLAUDE_VERSION} `)) {
    throw new Error(
      `${CLAUDE} is not Claude Code ${CLAUDE_VERSION} (exit ${v.status}, ${v.error?.message ?? ''}): ${v.stdout}${v.stderr}\n` +
        'the native binary comes from the optional platform package, placed by its postinstall (allowScripts): run `npm ci`',
    );
  }
  return (checked = CLAUDE);
}

function definedEnv(env: NodeJS.ProcessEnv): Record<string, string> {
  return Object.fromEntries(Object.entries(env).filter((e): e is [string, string] => e[1] !== undefined));
}

async function install(ctx: TestContext) {
  const dir = tempDir(ctx);
  const env = isolatedEnv(join(dir, 'sos'));
  for (const args of [
    ['init'],
    ['agents', 'add', 'kasra', '--cap', 'code'],
    ['agents', 'add', 'codex', '--cap', 'code'],
    ['agents', 'add', 'lead', '--role', 'coordinator'],
  ]) {
    const r = await sos(args, env);
    expect(r.code, r.stderr).toBe(0);
  }
  const token = await sos(['tokens', 'create', '--agent', 'codex', '--quiet'], env);
  expect(token.code, token.stderr).toBe(0);
  return { dir, env, codexToken: token.stdout.trim() };
}

const usage = { input_tokens: 100, output_tokens: 20 };
const call = (tool: string, input: Record<string, unknown> = {}): Turn => ({ tool: { name: `mcp__sos__${tool}`, input }, usage });

/** Every tool_use of the conversation paired with its tool_result, from the last request's history. */
function callsOf(requests: FakeRequest[]): Call[] {
  const main = requests.filter((r) => r.kind === 'main');
  const messages = main.at(-1)?.body?.messages ?? [];
  const uses = new Map<string, { name: string; input: unknown }>();
  const calls: Call[] = [];
  for (const m of messages) {
    if (typeof m.content === 'string') continue;
    for (const b of m.content) {
      if (b.type === 'tool_use') uses.set(b.id!, { name: b.name!, input: b.input });
      if (b.type !== 'tool_result') continue;
      const use = uses.get(b.tool_use_id!);
      expect(use, `a tool_result for an unknown tool_use ${b.tool_use_id}`).toBeDefined();
      const parts = typeof b.content === 'string' ? [{ type: 'text', text: b.content }] : (b.content ?? []);
      const text = parts.map((p) => p.text ?? '').join('');
      let body: unknown = parts;
      if (parts.every((p) => p.type === 'text')) {
        try {
          body = JSON.parse(text);
        } catch {
          body = text;
        }
      }
      calls.push({ name: use!.name, input: use!.input, isError: b.is_error === true, text, body });
    }
  }
  return calls;
}

/**
 * One `claude -p` run as an agent of the install: its MCP config starts `sos mcp` (as `--agent
 * <name>`, or from SOS_TOKEN), the fake answers with `turns` after a ToolSearch that loads the sos
 * tools they call, then a final text. Returns the tool calls with their results.
 */
async function runClaude(
  ctx: TestContext,
  install: { dir: string; env: NodeJS.ProcessEnv },
  label: string,
  who: { agent: string } | { token: string },
  turns: Turn[],
) {
  const bin = claudeBinary();
  const loads = [...new Set(turns.map((t) => t.tool!.name))];
  const answer = `${label}: done.`;
  const server = await fake.startAnthropic({
    idPrefix: label,
    turns: [{ tool: { name: 'ToolSearch', input: { query: `select:${loads.join(',')}` } }, usage }, ...turns, { text: answer, usage }],
  });
  ctx.onTestFinished(() => server.close());

  const home = join(install.dir, label);
  mkdirSync(join(home, 'config'), { recursive: true });
  const mcpConfig = join(home, 'mcp.json');
  const serverEnv = 'token' in who ? { ...definedEnv(install.env), SOS_TOKEN: who.token } : definedEnv(install.env);
  const args = 'agent' in who ? [BIN, 'mcp', '--agent', who.agent] : [BIN, 'mcp'];
  writeFileSync(mcpConfig, JSON.stringify({ mcpServers: { sos: { command: process.execPath, args, env: serverEnv } } }));

  const argv = [
    '-p',
    'Work through your sos inbox and workspace as the team asked, then report.',
    '--mcp-config',
    mcpConfig,
    '--strict-mcp-config',
    '--allowedTools',
    'mcp__sos__*',
    '--output-format',
    'json',
  ];
  const started = Date.now();
  const child: ChildProcess = spawn(bin, argv, {
    cwd: home,
    env: {
      PATH: process.env.PATH ?? '',
      LANG: 'C.UTF-8',
      TERM: 'dumb',
      HOME: home,
      CLAUDE_CONFIG_DIR: join(home, 'config'),
      ANTHROPIC_BASE_URL: server.url,
      ANTHROPIC_API_KEY: 'dummy',
      DISABLE_AUTOUPDATER: '1',
      DISABLE_TELEMETRY: '1',
      DISABLE_ERROR_REPORTING: '1',
      CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1',
      // anything that is not the fake on 127.0.0.1 goes to a closed port: no network
      HTTPS_PROXY: 'http://127.0.0.1:9',
      HTTP_PROXY: 'http://127.0.0.1:9',
      NO_PROXY: '127.0.0.1,localhost',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const closed = new Promise<number | null>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => resolve(code));
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), RUN_TIMEOUT_MS);
  ctx.onTestFinished(async () => {
    clearTimeout(timer);
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await closed.catch(() => undefined);
  });
  const code = await closed;
  clearTimeout(timer);
  const ms = Date.now() - started;
  console.info(`claude -p as ${label}: ${ms} ms, ${server.requests.length} requests to the fake`);

  const report = `claude exited ${code} after ${ms} ms\nstdout: ${stdout}\nstderr: ${stderr}`;
  expect(code, report).toBe(0);
  expect(ms, report).toBeLessThan(RUN_TIMEOUT_MS);
  const result = JSON.parse(stdout) as { is_error: boolean; result: string; permission_denials: unknown[] };
  expect(result, report).toMatchObject({ is_error: false, result: answer, permission_denials: [] });

  // The fake answered every model request from the script (none past its end, none unrouted).
  const main = server.requests.filter((r) => r.kind === 'main');
  expect(main.length, report).toBe(turns.length + 2);
  expect(server.requests.filter((r) => r.exhausted || r.kind === 'unrouted')).toEqual([]);
  // Before ToolSearch the sos tools are only named (deferred); after it their schemas are offered.
  expect(JSON.stringify(main[0]!.body)).toContain('mcp__sos__');
  const offered = main.at(-1)!.body!.tools!.filter((t) => t.name.startsWith('mcp__sos__'));
  expect(offered.map((t) => t.name).sort()).toEqual([...loads].sort());

  const calls = callsOf(server.requests);
  const search = calls.shift()!;
  expect(search).toMatchObject({ name: 'ToolSearch', isError: false });
  expect(search.body).toEqual(loads.map((n) => ({ type: 'tool_reference', tool_name: n })));
  // Claude Code passed each call to sos and sent back one result per call, in order.
  expect(calls.map((c) => c.name)).toEqual(turns.map((t) => t.tool!.name));
  return { calls, offered };
}

interface InboxBody {
  agent: string;
  unread: Record<string, unknown>[];
}

describe('sos mcp with Claude Code as the client', () => {
  it(
    `Claude Code ${CLAUDE_VERSION} drives the documented tools: send with a request id, inbox, workspaces, broadcast, memory, and the ack in text`,
    { timeout: 5 * RUN_TIMEOUT_MS },
    async (ctx) => {
      claudeBinary(); // fails, not skips, when it is not installed
      const inst = await install(ctx);
      const { env, codexToken } = inst;
      const requestId = randomUUID();
      const ok = (c: Call) => expect(c.isError, `${c.name}: ${c.text}`).toBe(false);

      // 1. codex (its token only): a workspace that does not exist yet, another agent's inbox,
      //    then a memory and the peer list.
      const first = await runClaude(ctx, inst, 'codex-1', { token: codexToken }, [
        call('workspace_join', { workspace_id: 'acme-sales', summary: 'Sales squad for acme' }),
        call('inbox', { agent: 'kasra' }),
        call('remember', { content: 'Viamar CRM exports run nightly at 02:00 from the sales replica.', tags: ['viamar', 'crm'] }),
        call('peers'),
      ]);
      const [notYet, theirs, stored, peers] = first.calls as [Call, Call, Call, Call];
      expect(notYet.isError).toBe(true);
      expect(notYet.body).toMatchObject({ error: { code: 'not_found', hint: expect.stringMatching(/coordinator or an admin/) } });
      expect(theirs.isError).toBe(true);
      expect(theirs.body).toMatchObject({ error: { code: 'permission_denied', message: expect.stringMatching(/reading an inbox for another agent/) } });
      ok(stored);
      expect(stored.body).toMatchObject({ id: expect.stringMatching(/^eng_/), merged: false });
      ok(peers);
      expect((peers.body as { name: string }[]).map((p) => p.name).sort()).toEqual(['codex', 'kasra', 'lead']);

      // 2. lead (local trust, --agent lead), a coordinator: creates the workspace, asks codex for
      //    something with a request id in the text, recalls codex's memory, reads its inbox.
      const second = await runClaude(ctx, inst, 'lead-1', { agent: 'lead' }, [
        call('workspace_join', { workspace_id: 'acme-sales', summary: 'Sales squad for acme' }),
        call('send', { to: 'agent:codex', message: `[request_id:${requestId}] Please analyze this log and report back.` }),
        call('recall', { query: 'when do the CRM exports run', limit: 5 }),
        call('inbox', { agent: 'lead' }),
      ]);
      for (const c of second.calls) ok(c);
      const [created, asked, recalled, leadInbox] = second.calls as [Call, Call, Call, Call];
      expect(created.body).toEqual({ workspace_id: 'acme-sales', agent: 'lead', joined: true, created: true });
      expect(asked.body).toMatchObject({ to: 'codex', recipients: ['codex'], ack_required: true });
      const askedId = (asked.body as { id: string }).id;
      expect(askedId).toMatch(/^msg_/);
      expect((recalled.body as { id: string; author: string }[])[0]).toMatchObject({ id: (stored.body as { id: string }).id, author: 'codex' });
      expect(leadInbox.body).toMatchObject({ agent: 'lead', unread: [] });
      const waiting = await sos(['--json', 'messages', 'pending'], env);
      expect(waiting.code, waiting.stderr).toBe(0);
      expect(JSON.stringify(waiting.json())).toContain(askedId);

      // 3. codex again: joins the workspace, reads the request, answers it with the ack in the text.
      const third = await runClaude(ctx, inst, 'codex-2', { token: codexToken }, [
        call('workspace_join', { workspace_id: 'acme-sales' }),
        call('inbox', { agent: 'codex' }),
        call('send', { to: 'agent:lead', message: `{ack_for: ${requestId}, ok: true} the log shows a disk-full at 03:12` }),
      ]);
      for (const c of third.calls) ok(c);
      const [joined, codexInbox, replied] = third.calls as [Call, Call, Call];
      expect(joined.body).toEqual({ workspace_id: 'acme-sales', agent: 'codex', joined: true });
      expect((codexInbox.body as InboxBody).unread).toEqual([
        expect.objectContaining({ id: askedId, from: 'lead', text: expect.stringContaining('Please analyze'), ack_required: true }),
      ]);
      expect(replied.body).toMatchObject({ to: 'lead', acked: [askedId], ok: true });

      // The effects, through the CLI.
      const codexMail = await sos(['--as', 'codex', '--json', 'inbox', '--all'], env);
      expect(codexMail.code, codexMail.stderr).toBe(0);
      const mail = codexMail.json<{ unread: Record<string, unknown>[]; history: Record<string, unknown>[] }>();
      expect([...mail.unread, ...mail.history]).toContainEqual(
        expect.objectContaining({ id: askedId, from: 'lead', ackRequired: true, requestId }),
      );
      const squads = (await sos(['--json', 'squads', 'list'], env)).json<{ name: string; members: string[]; description: string }[]>();
      expect(squads).toEqual([expect.objectContaining({ name: 'acme-sales', members: ['codex', 'lead'], description: 'Sales squad for acme' })]);
      const pending = await sos(['--json', 'messages', 'pending'], env);
      expect(pending.code, pending.stderr).toBe(0);
      expect(JSON.stringify(pending.json())).not.toContain(askedId);
      const shown = await sos(['--as', 'lead', '--json', 'messages', 'show', askedId], env);
      expect(shown.code, shown.stderr).toBe(0);
      expect(JSON.stringify(shown.json())).toMatch(/"acked/);
      const leadMail = await sos(['--as', 'lead', '--json', 'inbox'], env);
      expect(leadMail.code, leadMail.stderr).toBe(0);
      expect(leadMail.json<{ unread: unknown[] }>().unread).toEqual([
        expect.objectContaining({ from: 'codex', type: 'ack', ackFor: askedId, ackOk: true, text: 'the log shows a disk-full at 03:12' }),
      ]);
      const memory = await sos(['--as', 'kasra', '--json', 'memory', 'recall', 'when', 'do', 'the', 'CRM', 'exports', 'run'], env);
      expect(memory.code, memory.stderr).toBe(0);
      expect(JSON.stringify(memory.json())).toContain('Viamar CRM exports run nightly at 02:00 from the sales replica.');

      // 4. lead again: a broadcast to the workspace reaches codex; then lead leaves it.
      const fourth = await runClaude(ctx, inst, 'lead-2', { agent: 'lead' }, [
        call('broadcast', { message: 'pipeline review at 3', workspace_id: 'acme-sales' }),
        call('workspace_leave', { workspace_id: 'acme-sales' }),
      ]);
      for (const c of fourth.calls) ok(c);
      const [broadcast, left] = fourth.calls as [Call, Call];
      expect(broadcast.body).toMatchObject({ recipients: ['codex'] });
      expect(left.body).toEqual({ workspace_id: 'acme-sales', agent: 'lead', left: true });
      const after = (await sos(['--json', 'squads', 'show', 'acme-sales'], env)).json();
      expect(after).toMatchObject({ members: ['codex'] });
      const told = (await sos(['--as', 'codex', '--json', 'inbox'], env)).json<{ unread: Record<string, unknown>[] }>();
      expect(told.unread).toEqual([expect.objectContaining({ from: 'lead', text: 'pipeline review at 3', ackRequired: false })]);
    },
  );
});
