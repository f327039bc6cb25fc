import { once } from 'node:events';
import { Client, type ClientOptions } from '@modelcontextprotocol/client';
import { StdioClientTransport } from '@modelcontextprotocol/client/stdio';
import { describe, expect, it, type TestContext } from 'vitest';
import pkg from '../../package.json' with { type: 'json' };
import { BIN, isolatedEnv, ROOT, sos, spawnSos } from '../helpers/cli.js';
import { tempDir } from '../helpers/isolation.js';

/**
 * `sos mcp` as an MCP client sees it: the built binary spawned over stdio by the official SDK
 * client, against a private SQLite install made with the CLI.
 */

const TOOL_NAMES = [
  'ack',
  'broadcast',
  'inbox',
  'memory_context',
  'peers',
  'recall',
  'remember',
  'send',
  'task_accept',
  'task_claim',
  'task_complete',
  'task_create',
  'task_fail',
  'task_handoff',
  'task_heartbeat',
  'task_list',
  'usage_report',
  'whoami',
  'workspace_join',
  'workspace_leave',
];
/** Every agent reads the whole tool list into its context on every turn. */
const TOOL_LIST_BUDGET_BYTES = 7168;

async function install(ctx: TestContext) {
  const env = isolatedEnv(tempDir(ctx));
  for (const args of [['init'], ['agents', 'add', 'kasra', '--cap', 'code'], ['agents', 'add', 'codex', '--cap', 'code']]) {
    const r = await sos(args, env);
    expect(r.code, r.stderr).toBe(0);
  }
  const token = await sos(['tokens', 'create', '--agent', 'codex', '--quiet'], env);
  expect(token.code, token.stderr).toBe(0);
  return { env, codexToken: token.stdout.trim() };
}

function definedEnv(env: NodeJS.ProcessEnv): Record<string, string> {
  return Object.fromEntries(Object.entries(env).filter((e): e is [string, string] => e[1] !== undefined));
}

/** Spawns `sos mcp <args>` and connects an SDK client to it; closed when the test ends. */
async function connect(ctx: TestContext, env: NodeJS.ProcessEnv, args: string[], options: ClientOptions = {}) {
  const transport = new StdioClientTransport({
    command: process.execPath,
    args: [BIN, 'mcp', ...args],
    env: definedEnv(env),
    cwd: ROOT,
    stderr: 'pipe',
  });
  let stderr = '';
  transport.stderr!.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const client = new Client({ name: 'sos-test', version: '0.0.0' }, options);
  ctx.onTestFinished(() => client.close());
  await client.connect(transport);
  return {
    client,
    stderr: () => stderr,
    async call(name: string, args: Record<string, unknown> = {}) {
      const result = await client.callTool({ name, arguments: args });
      const content = result.content as { type: string; text: string }[];
      expect(content).toHaveLength(1);
      expect(content[0]!.type).toBe('text');
      return { isError: result.isError === true, body: JSON.parse(content[0]!.text) as Record<string, unknown> };
    },
  };
}

interface InboxBody {
  agent: string;
  unread: { id: string; from: string; to: string; type: string; text: string; created: string; state: string }[];
}

describe('sos mcp', () => {
  it('lists twenty short tools; messages go round between two agents; errors carry the CLI codes', async (ctx) => {
    const { env, codexToken } = await install(ctx);
    const kasra = await connect(ctx, env, ['--agent', 'kasra']);

    expect(kasra.client.getServerVersion()).toMatchObject({ name: 'sos', version: pkg.version });
    const { tools } = await kasra.client.listTools();
    expect(tools.map((t) => t.name).sort()).toEqual(TOOL_NAMES);
    for (const tool of tools) expect(tool.description?.length ?? 0, tool.name).toBeLessThanOrEqual(200);
    const size = Buffer.byteLength(JSON.stringify(tools));
    console.info(`sos mcp tool list: ${size} bytes of JSON`);
    expect(size).toBeLessThan(TOOL_LIST_BUDGET_BYTES);

    expect((await kasra.call('whoami')).body).toEqual({ project: 'default', agent: 'kasra', role: 'operator', via: 'local' });

    // Memory: one agent remembers, another recalls it by meaning; the context pack names it.
    const stored = await kasra.call('remember', { text: 'The staging deploy key lives in the ops vault under deploy/staging.', kind: 'finding', tags: ['deploy'] });
    expect(stored.isError).toBe(false);
    expect(stored.body).toMatchObject({ id: expect.stringMatching(/^eng_/), merged: false });
    const again = await kasra.call('remember', { text: 'The staging deploy key lives in the ops vault under deploy/staging. ' });
    expect(again.body).toMatchObject({ id: stored.body.id, merged: true });
    const pack = await kasra.call('memory_context', { max_chars: 800 });
    expect((pack.body.text as string).length).toBeLessThanOrEqual(800);
    expect(pack.body.text).toContain('You are kasra');
    expect((await kasra.call('remember', { text: '' })).body).toMatchObject({ error: { code: 'usage' } });

    const sent = await kasra.call('send', { to: 'codex', text: 'deploy is fixed', ack: true });
    expect(sent.isError).toBe(false);
    expect(sent.body).toMatchObject({ to: 'codex', recipients: ['codex'], ack_required: true });
    const id = sent.body.id as string;
    expect(id).toMatch(/^msg_/);

    // The second agent comes in with its token only: identity from SOS_TOKEN.
    const codex = await connect(ctx, { ...env, SOS_TOKEN: codexToken }, []);
    expect((await codex.call('whoami')).body).toMatchObject({ agent: 'codex', role: 'agent', via: 'token' });
    const recalled = (await codex.call('recall', { query: 'where is the staging deploy key kept', limit: 3 })).body as unknown as { id: string; author: string }[];
    expect(recalled[0]).toMatchObject({ id: stored.body.id, author: 'kasra' });
    const inbox = (await codex.call('inbox')).body as unknown as InboxBody;
    expect(inbox.agent).toBe('codex');
    expect(inbox.unread).toEqual([
      expect.objectContaining({ id, from: 'kasra', to: 'codex', type: 'message', text: 'deploy is fixed', priority: 'normal', ack_required: true }),
    ]);
    expect(inbox.unread[0]!.created).toMatch(/^\d{4}-\d\d-\d\dT/);

    const acked = await codex.call('ack', { id, note: 'on it' });
    expect(acked.isError).toBe(false);
    expect(acked.body).toMatchObject({ id, ok: true, ack_message_id: expect.stringMatching(/^msg_/) });

    const reply = (await kasra.call('inbox')).body as unknown as InboxBody;
    expect(reply.unread).toEqual([
      expect.objectContaining({ from: 'codex', to: 'kasra', type: 'ack', text: 'on it', ack_for: id, ok: true }),
    ]);
    expect(((await kasra.call('inbox')).body as unknown as InboxBody).unread).toEqual([]);
    const history = (await kasra.call('inbox', { all: true })).body as { history: unknown[] };
    expect(history.history).toHaveLength(1);

    const everyone = await kasra.call('broadcast', { text: 'standup in 5' });
    expect(everyone.body).toMatchObject({ to: 'all', recipients: ['codex'] });
    const peers = (await codex.call('peers')).body as unknown as { name: string; unread: number }[];
    expect(peers.map((p) => p.name).sort()).toEqual(['codex', 'kasra']);

    // Errors: the same JSON as `sos --json`, with the CLI's codes.
    const nobody = await kasra.call('send', { to: 'nobody', text: 'hello?' });
    expect(nobody.isError).toBe(true);
    expect(nobody.body).toEqual({
      error: { code: 'not_found', message: 'agent "nobody" does not exist in project "default"', hint: 'list agents with `sos agents list`' },
    });
    const cli = await sos(['--as', 'kasra', '--json', 'send', 'nobody', 'hello?'], env);
    expect(cli.code).toBe(3);
    expect(JSON.parse(cli.stdout)).toEqual(nobody.body);

    const empty = await kasra.call('send', { to: 'codex', text: '  ' });
    expect(empty.isError).toBe(true);
    expect(empty.body).toEqual({ error: { code: 'usage', message: 'the message is empty' } });
    const badId = await codex.call('ack', { id: 'msg_nope' });
    expect(badId.body).toMatchObject({ error: { code: 'usage' } });
    expect((await codex.call('ack', { id: 'has a space' })).body).toMatchObject({ error: { code: 'usage' } });
    const noRequest = await codex.call('ack', { id: 'nope' });
    expect(noRequest.body).toEqual({
      error: { code: 'not_found', message: 'no message waiting for an ack with request id nope was sent to codex in project "default"' },
    });
    const squad = await kasra.call('broadcast', { text: 'hi', squad: 'ghosts' });
    expect(squad.body).toMatchObject({ error: { code: 'not_found' } });

    for (const side of [kasra, codex]) {
      expect(side.stderr()).not.toMatch(/\n\s+at |Error:/);
    }
  });

  it('speaks the documented SOS agent surface: agent: addresses, message/content/workspace_id aliases, workspaces, ACK in text', async (ctx) => {
    const { env, codexToken } = await install(ctx);
    for (const args of [['agents', 'add', 'lead', '--role', 'coordinator']]) expect((await sos(args, env)).code).toBe(0);
    const leadToken = (await sos(['tokens', 'create', '--agent', 'lead', '--quiet'], env)).stdout.trim();
    const kasra = await connect(ctx, env, ['--agent', 'kasra']);
    const codex = await connect(ctx, { ...env, SOS_TOKEN: codexToken }, []);
    const lead = await connect(ctx, { ...env, SOS_TOKEN: leadToken }, []);
    const requestId = '0b7c9a52-51c4-4e0e-9d55-2f1f0d8a6c11';

    // send(to="agent:<name>", message="[request_id:<uuid>] …") asks for an ack by the text alone.
    const asked = await codex.call('send', { to: 'agent:kasra', message: `[request_id:${requestId}] Please analyze this log and report back.` });
    expect(asked.isError, JSON.stringify(asked.body)).toBe(false);
    expect(asked.body).toMatchObject({ to: 'kasra', recipients: ['kasra'], ack_required: true });

    // inbox(agent="<your name>") works; another agent's inbox is refused, and the refusal says why.
    const mine = (await kasra.call('inbox', { agent: 'kasra' })).body as unknown as InboxBody;
    expect(mine.unread).toEqual([expect.objectContaining({ from: 'codex', text: expect.stringContaining('Please analyze'), ack_required: true })]);
    const theirs = await codex.call('inbox', { agent: 'kasra' });
    expect(theirs.body).toMatchObject({ error: { code: 'permission_denied', message: expect.stringMatching(/reading an inbox for another agent/) } });

    // The reply, written loosely as a model writes it, is the ack of that request.
    const replied = await kasra.call('send', { to: 'agent:codex', message: `{ack_for: ${requestId}, ok: true} the log shows a disk-full at 03:12` });
    expect(replied.body).toMatchObject({ to: 'codex', acked: [asked.body.id], ok: true });
    const back = (await codex.call('inbox', { agent: 'codex' })).body as unknown as InboxBody;
    expect(back.unread).toEqual([
      expect.objectContaining({ from: 'kasra', type: 'ack', ack_for: asked.body.id, ok: true, text: 'the log shows a disk-full at 03:12' }),
    ]);
    const state = await sos(['--as', 'codex', '--json', 'messages', 'show', asked.body.id as string], env);
    expect(state.code, state.stderr).toBe(0);
    expect(JSON.stringify(state.json())).toMatch(/"acked/);
    // A look-alike in the middle of a text is an ordinary message.
    const chatter = await kasra.call('send', { to: 'codex', message: `as I said, {ack_for: ${requestId}, ok: true} was my answer` });
    expect(chatter.body).not.toHaveProperty('acked');
    const ordinary = (await codex.call('inbox')).body as unknown as InboxBody;
    expect(ordinary.unread).toEqual([expect.objectContaining({ type: 'message', text: expect.stringMatching(/^as I said/) })]);

    // workspace_join: only a coordinator (or an admin) creates a workspace; then anyone joins it.
    const refused = await codex.call('workspace_join', { workspace_id: 'acme-sales', summary: 'Sales squad for acme' });
    expect(refused.body).toMatchObject({ error: { code: 'not_found', hint: expect.stringMatching(/coordinator or an admin/) } });
    expect((await lead.call('workspace_join', { workspace_id: 'acme-sales', summary: 'Sales squad for acme' })).body).toEqual({
      workspace_id: 'acme-sales',
      agent: 'lead',
      joined: true,
      created: true,
    });
    expect((await codex.call('workspace_join', { workspace_id: 'acme-sales' })).body).toEqual({ workspace_id: 'acme-sales', agent: 'codex', joined: true });
    const squads = (await sos(['--json', 'squads', 'list'], env)).json<{ name: string; members: string[]; description: string }[]>();
    expect(squads).toEqual([expect.objectContaining({ name: 'acme-sales', members: ['codex', 'lead'], description: 'Sales squad for acme' })]);

    // broadcast(message, workspace_id) and send to a bare workspace id or workspace:<id>.
    expect((await lead.call('broadcast', { message: 'pipeline review at 3', workspace_id: 'acme-sales' })).body).toMatchObject({ recipients: ['codex'] });
    expect((await lead.call('send', { to: 'acme-sales', message: 'bare workspace id' })).body).toMatchObject({ recipients: ['codex'] });
    expect((await lead.call('send', { to: 'workspace:acme-sales', message: 'prefixed workspace id' })).body).toMatchObject({ recipients: ['codex'] });
    const squadMail = (await codex.call('inbox')).body as unknown as InboxBody;
    expect(squadMail.unread.map((m) => m.text)).toEqual(['pipeline review at 3', 'bare workspace id', 'prefixed workspace id']);
    expect(squadMail.unread.every((m) => (m as { ack_required?: boolean }).ack_required !== true)).toBe(true);

    expect((await codex.call('workspace_leave', { workspace_id: 'acme-sales' })).body).toEqual({ workspace_id: 'acme-sales', agent: 'codex', left: true });
    expect((await sos(['--json', 'squads', 'show', 'acme-sales'], env)).json()).toMatchObject({ members: ['lead'] });

    // remember(content, tags) and recall(query, limit); peers().
    const stored = await codex.call('remember', { content: 'Viamar CRM exports run nightly at 02:00 from the sales replica.', tags: ['viamar', 'crm'] });
    expect(stored.body).toMatchObject({ id: expect.stringMatching(/^eng_/) });
    const recalled = (await kasra.call('recall', { query: 'when do the CRM exports run', limit: 5 })).body as unknown as { id: string; tags: string[] }[];
    expect(recalled[0]).toMatchObject({ id: stored.body.id, tags: ['crm', 'viamar'] });
    const peers = (await codex.call('peers')).body as unknown as { name: string }[];
    expect(peers.map((p) => p.name).sort()).toEqual(['codex', 'kasra', 'lead']);

    // Both names with different values is a usage error; neither is one too.
    expect((await kasra.call('send', { to: 'codex', text: 'a', message: 'b' })).body).toEqual({ error: { code: 'usage', message: 'give text or message, not both' } });
    expect((await kasra.call('send', { to: 'codex' })).body).toEqual({ error: { code: 'usage', message: 'text (or message) is required' } });
    expect((await kasra.call('broadcast', { message: 'x', squad: 'a', workspace_id: 'b' })).body).toMatchObject({ error: { code: 'usage' } });
    expect((await kasra.call('send', { to: 'codex', text: 'same', message: 'same' })).isError).toBe(false);

    // The CLI takes the same addresses.
    const cli = await sos(['--as', 'kasra', '--json', 'send', 'agent:codex', 'from the shell'], env);
    expect(cli.code, cli.stderr).toBe(0);
    expect(cli.json()).toMatchObject({ to: 'codex', recipients: ['codex'] });
  });

  it('runs a task through claim, heartbeat, handoff, accept and complete; stale fences and empty queues are conflicts', async (ctx) => {
    const { env, codexToken } = await install(ctx);
    const kasra = await connect(ctx, env, ['--agent', 'kasra']);
    const codex = await connect(ctx, { ...env, SOS_TOKEN: codexToken }, []);
    const ok = async (side: typeof kasra, name: string, args: Record<string, unknown> = {}) => {
      const r = await side.call(name, args);
      expect(r.isError, `${name}: ${JSON.stringify(r.body)}`).toBe(false);
      return r.body;
    };
    const refused = async (side: typeof kasra, name: string, args: Record<string, unknown>) => {
      const r = await side.call(name, args);
      expect(r.isError, `${name}: ${JSON.stringify(r.body)}`).toBe(true);
      return (r.body as { error: { code: string; message: string; hint?: string } }).error;
    };

    const login = await ok(kasra, 'task_create', {
      title: 'fix the login bug',
      description: 'users get logged out after 5 minutes',
      priority: 'high',
      requires: ['code'],
    });
    expect(login).toEqual({
      id: expect.stringMatching(/^tsk_[0-9a-z]{26}$/),
      title: 'fix the login bug',
      status: 'queued',
      priority: 70,
      requires: ['code'],
      description: 'users get logged out after 5 minutes',
    });
    const id = login.id as string;
    const ship = await ok(kasra, 'task_create', { title: 'ship the fix', priority: 20, depends_on: [id] });
    expect(ship).toMatchObject({ status: 'queued', priority: 20, depends_on: [id] });
    const again = await ok(kasra, 'task_create', { title: 'ship the fix', depends_on: [id], idempotency_key: 'ship-1' });
    expect(await ok(kasra, 'task_create', { title: 'ship the fix', depends_on: [id], idempotency_key: 'ship-1' })).toMatchObject({
      id: again.id,
      replayed: true,
    });

    // The list is brief (no description) and highest priority first; ready=true leaves out what waits.
    const listed = (await ok(codex, 'task_list', { status: ['queued'] })) as unknown as Record<string, unknown>[];
    expect(listed.map((t) => t.id)).toEqual([id, again.id, ship.id]);
    expect(listed[0]).toEqual({ id, title: 'fix the login bug', status: 'queued', priority: 70, requires: ['code'] });
    expect(((await ok(codex, 'task_list', { ready: true })) as unknown as { id: string }[]).map((t) => t.id)).toEqual([id]);

    const claimed = await ok(kasra, 'task_claim');
    expect(claimed).toMatchObject({ id, status: 'claimed', claimant: 'kasra', fence: 1, description: 'users get logged out after 5 minutes' });
    expect(claimed.lease_until).toMatch(/^\d{4}-\d\d-\d\dT/);
    // usage_report: priced, attributed to the task kasra holds, counted once per key; a budget it crosses is announced to coordinators.
    expect((await sos(['agents', 'add', 'boss', '--role', 'coordinator'], env)).code).toBe(0);
    expect((await sos(['budgets', 'set', 'agent:kasra', '--limit', '$0.009', '--period', 'total', '--action', 'warn'], env)).code).toBe(0);
    const used = await ok(kasra, 'usage_report', { model: 'claude-sonnet-4-5', input_tokens: 1000, output_tokens: 200, cache_read_tokens: 5000, idempotency_key: 'turn-1' });
    expect(used).toMatchObject({ duplicate: false, cost_micros: 7500, task: id });
    expect(await ok(kasra, 'usage_report', { model: 'claude-sonnet-4-5', input_tokens: 1000, output_tokens: 200, cache_read_tokens: 5000, idempotency_key: 'turn-1' })).toMatchObject({ id: used.id, duplicate: true });
    expect(await ok(kasra, 'usage_report', { model: 'some-local-model', input_tokens: 10, output_tokens: 1 })).toMatchObject({ cost_micros: null });
    expect((await refused(kasra, 'usage_report', { model: 'x', input_tokens: -1, output_tokens: 0 })).code).toBe('usage');
    const escalations = (await sos(['inbox', '--as', 'boss', '--json'], env)).json<{ unread: { type: string; text: string }[] }>().unread;
    expect(escalations.map((m) => [m.type, m.text])).toEqual([['escalation', 'budget agent:kasra: warning, $0.01 of $0.01 (83%); action at the limit: warn']]);
    const spent = (await sos(['--json', 'usage', '--by', 'task'], env)).json<{ rows: { key: string; events: number; inputTokens: number; costMicros: number | null }[] }>();
    expect(spent.rows).toEqual([expect.objectContaining({ key: id, events: 2, inputTokens: 1010, costMicros: 7500 })]);
    const renewed = await ok(kasra, 'task_heartbeat', { id, fence: 1 });
    expect(renewed).toMatchObject({ id, claimant: 'kasra', fence: 1 });
    expect(Date.parse(renewed.lease_until as string)).toBeGreaterThanOrEqual(Date.parse(claimed.lease_until as string));

    const handed = await ok(kasra, 'task_handoff', { id, fence: 1, to: 'codex', summary: 'root cause is the cookie max-age' });
    expect(handed).toMatchObject({
      id,
      status: 'review',
      claimant: 'kasra',
      handoff: { from: 'kasra', to: 'codex', summary: 'root cause is the cookie max-age' },
    });
    const told = (await codex.call('inbox')).body as unknown as InboxBody;
    expect(told.unread).toEqual([expect.objectContaining({ from: 'kasra', type: 'task.handoff', priority: 'high' })]);
    expect(await refused(kasra, 'task_accept', { id })).toMatchObject({ code: 'conflict', message: expect.stringMatching(/addressed to codex/) });

    const accepted = await ok(codex, 'task_accept', { id });
    expect(accepted).toMatchObject({ id, status: 'claimed', claimant: 'codex', fence: 2 });
    // kasra's fence 1 is stale now: its writes are refused, the same as from the CLI.
    const stale = await refused(kasra, 'task_complete', { id, fence: 1, result: 'done?' });
    expect(stale).toEqual({ code: 'conflict', message: `cannot complete task ${id}: it is held by codex (claimed), not kasra` });
    const cli = await sos(['--as', 'kasra', '--json', 'tasks', 'complete', id, '--fence', '1', '--result', 'done?'], env);
    expect(cli.code).toBe(4);
    expect(JSON.parse(cli.stdout)).toEqual({ error: stale });
    expect(await refused(codex, 'task_heartbeat', { id, fence: 1 })).toMatchObject({ code: 'conflict', message: expect.stringMatching(/stale/) });

    const done = await ok(codex, 'task_complete', { id, fence: 2, result: 'cookie max-age fixed', artifacts: ['src/auth/cookie.ts'], usage_tokens: 1200 });
    expect(done).toMatchObject({ id, status: 'done', result: 'cookie max-age fixed', artifacts: ['src/auth/cookie.ts'] });
    expect(done).toMatchObject({ claimant: 'codex', fence: 2 });
    expect([...(done.unblocked as string[])].sort()).toEqual([again.id, ship.id].sort());
    expect((await refused(kasra, 'task_complete', { id, fence: 1 })).code).toBe('conflict');

    // Fail one of the unblocked tasks, retryably: it goes back to the queue, backing off.
    const next = await ok(codex, 'task_claim', { id: ship.id, lease_seconds: 120 });
    expect(next).toMatchObject({ id: ship.id, claimant: 'codex', fence: 1 });
    expect(Date.parse(next.lease_until as string) - Date.now()).toBeGreaterThan(100_000);
    const failed = await ok(codex, 'task_fail', { id: ship.id, fence: 1, error: 'CI is red', retryable: true });
    expect(failed).toEqual({ id: ship.id, title: 'ship the fix', status: 'queued', priority: 20, depends_on: [id], error: 'CI is red' });
    // A claim retried with its idempotency key (the answer was lost) returns the same claim.
    const first = await ok(codex, 'task_claim', { id: again.id, idempotency_key: 'claim-again-1' });
    expect(await ok(codex, 'task_claim', { id: again.id, idempotency_key: 'claim-again-1' })).toMatchObject({ id: again.id, fence: first.fence });
    await ok(codex, 'task_fail', { id: again.id, fence: 1, error: 'duplicate' });

    // Nothing claimable (the failed one is backing off): a conflict, after a short wait too.
    const empty = await refused(kasra, 'task_claim', {});
    expect(empty).toMatchObject({ code: 'conflict', message: 'nothing to claim for kasra in project "default"' });
    const started = Date.now();
    expect((await refused(kasra, 'task_claim', { wait_seconds: 0.3 })).code).toBe('conflict');
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);

    // Bad input: the service's usage errors, with the CLI's messages.
    const priority = await refused(kasra, 'task_create', { title: 'x', priority: 'urgent' });
    expect(priority).toEqual({ code: 'usage', message: 'invalid priority "urgent": use critical, high, normal, low or a number 0-100' });
    const cliPriority = await sos(['--as', 'kasra', '--json', 'tasks', 'create', 'x', '--priority', 'urgent'], env);
    expect(cliPriority.code).toBe(2);
    expect(JSON.parse(cliPriority.stdout)).toEqual({ error: priority });
    expect((await refused(kasra, 'task_create', { title: 'x', priority: 101 })).code).toBe('usage');
    expect((await refused(kasra, 'task_claim', { wait_seconds: -1 })).code).toBe('usage');
    expect((await refused(kasra, 'task_accept', { id: 'nope' })).code).toBe('usage');
    expect(await refused(codex, 'task_heartbeat', { id, fence: 1.5 })).toEqual({ code: 'usage', message: 'fence must be a whole number, 1 or more' });
    expect((await refused(codex, 'task_list', { status: ['bogus'] })).code).toBe('usage');

    const shown = await sos(['--json', 'tasks', 'show', id], env);
    expect(shown.json()).toMatchObject({ status: 'done', claimant: 'codex', fence: 2, usageTokens: 1200 });
    for (const side of [kasra, codex]) expect(side.stderr()).not.toMatch(/\n\s+at |Error:/);
  });

  it('serves a client of the 2026-07-28 protocol revision too', async (ctx) => {
    const { env } = await install(ctx);
    const modern = await connect(ctx, env, ['--agent', 'kasra'], { versionNegotiation: { mode: { pin: '2026-07-28' } } });
    expect((await modern.client.listTools()).tools).toHaveLength(TOOL_NAMES.length);
    expect((await modern.call('whoami')).body).toMatchObject({ agent: 'kasra' });
  });

  it('refuses --agent that is not the token\'s agent, before serving: exit 6, nothing on stdout', async (ctx) => {
    const { env, codexToken } = await install(ctx);
    const result = await sos(['mcp', '--agent', 'kasra'], { ...env, SOS_TOKEN: codexToken });
    expect(result.code).toBe(6);
    expect(result.stdout).toBe('');
    expect(result.stderr).toMatch(/^sos: serving MCP as "kasra" is not allowed with a token of "codex"/);

    const unknown = await sos(['mcp', '--agent', 'ghost'], env);
    expect(unknown.code).toBe(3);
    const nobody = await sos(['mcp'], env);
    expect(nobody.code).toBe(2);
    expect(nobody.stderr).toMatch(/needs an agent/);
  });

  it('exits 0 when the client closes stdin, and on SIGTERM', async (ctx) => {
    const { env } = await install(ctx);
    const initialize = `${JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      method: 'initialize',
      params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'raw', version: '0' } },
    })}\n`;

    for (const ending of ['stdin', 'SIGTERM'] as const) {
      // --json must not add anything to stdout either.
      const child = spawnSos([...(ending === 'stdin' ? ['--json'] : []), 'mcp', '--agent', 'kasra'], env);
      let stdout = '';
      let stderr = '';
      child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
      const answered = new Promise<void>((resolve) =>
        child.stdout!.on('data', (d: Buffer) => {
          stdout += d.toString();
          if (stdout.includes('\n')) resolve();
        }),
      );
      const exited = once(child, 'exit');
      const closed = once(child, 'close');
      child.stdin!.write(initialize);
      await answered;
      if (ending === 'SIGTERM') {
        child.kill('SIGTERM');
        await exited; // before stdin ends, so it is the signal that stops the server
      }
      child.stdin!.end();
      const [code, signal] = (await closed) as [number | null, NodeJS.Signals | null];
      expect({ ending, code, signal, stderr }).toEqual({ ending, code: 0, signal: null, stderr: '' });
      // Only protocol on stdout: one JSON-RPC response per line.
      for (const line of stdout.trim().split('\n')) expect(JSON.parse(line)).toMatchObject({ jsonrpc: '2.0', id: 1 });
    }
  });
});
