import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import { describe, expect, it, type TestContext } from 'vitest';
import { type Caller, resolveCaller } from '../../src/core/auth/caller.js';
import { runMotor } from '../../src/core/brain/motor.js';
import { resolveConfig } from '../../src/core/config/resolve.js';
import { setBudget } from '../../src/core/economy/budgets.js';
import { openApiDocument } from '../../src/core/http/openapi.js';
import { OPERATIONS } from '../../src/core/http/operations/table.js';
import { resolveRoute, restHandler } from '../../src/core/http/rest.js';
import { parseListen } from '../../src/core/http/limits.js';
import { HttpServer } from '../../src/core/http/server.js';
import type { HttpDeps, HttpReply } from '../../src/core/http/types.js';
import { createToken } from '../../src/core/identity/tokens.js';
import { newId } from '../../src/core/ids.js';
import { lifecycleContext } from '../../src/core/lifecycle/context.js';
import { DEFAULT_LIMITS } from '../../src/core/lifecycle/policy.js';
import { LocalEmbedder } from '../../src/core/memory/embedder.js';
import { memoryOn } from '../../src/core/memory/open.js';
import type { MemoryContext } from '../../src/core/memory/service.js';
import { createTask } from '../../src/core/tasks/service.js';
import { seedAgents } from '../helpers/bus.js';
import { tempDir } from '../helpers/isolation.js';
import { TASK_ADAPTERS } from '../helpers/tasks.js';

/**
 * `/v1` on SQLite and PostgreSQL, through `restHandler` with callers resolved from real tokens
 * (`resolveCaller`, as the server does): every operation with good and bad input, every answer
 * held to the generated OpenAPI document (2xx to the operation's schema, the rest to the error
 * object), token scoping (A cannot read B's inbox, an admin acting as B can), cross-project ids
 * not found, observer tokens read-only, and a waiting claim that ends with the request's signal.
 */

// The document is walked by path; its type is the OpenAPI schema itself.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = Record<string, any>;

const doc = openApiDocument(OPERATIONS) as Json;
const ajv = new Ajv2020({ strict: true, allowUnionTypes: true });
const errorSchema = ajv.compile(doc.components.schemas.Error);
const success = new Map<string, ValidateFunction>(
  OPERATIONS.map((op) => {
    const o = doc.paths[op.path][op.method.toLowerCase()];
    return [op.id, ajv.compile(o.responses[op.created ? '201' : '200'].content['application/json'].schema)];
  }),
);

interface Call {
  query?: Record<string, string | string[]>;
  body?: unknown;
  signal?: AbortSignal;
}

type Adapter = (typeof TASK_ADAPTERS)[number];

async function restWorld(adapter: Adapter, ctx: TestContext) {
  const w = await adapter.open(ctx);
  const dir = tempDir(ctx);
  const memory = await memoryOn(w.store);
  ctx.onTestFinished(() => memory.close());
  const mem: MemoryContext = { store: w.store, memory, embedder: new LocalEmbedder(), maxEngramBytes: 32_768, bus: w.ctx.bus };
  const { values } = await resolveConfig({ env: { HOME: dir, XDG_CONFIG_HOME: dir, XDG_DATA_HOME: dir }, flags: {} });
  const life = lifecycleContext({
    store: w.store,
    bus: w.ctx.bus,
    memory: mem,
    maxTextBytes: 65_536,
    runDir: dir,
    defaultWorkdir: dir,
    sessionEnv: {},
    limits: DEFAULT_LIMITS,
    stuckAfterMs: 60_000,
    recoveryTimeoutMs: 10_000,
    readyTimeoutMs: 1_000,
  });
  const deps: HttpDeps = { store: w.store, bus: w.ctx, tasks: w.tasks, memory: mem, life, values };
  await seedAgents(w, { boss: 'coordinator', kasra: 'worker', lena: 'worker' });
  const operator = w.as(null);

  /** A real token's caller, resolved as the server resolves it; `as` is an admin acting as another agent. */
  async function caller(agent: string, role: 'agent' | 'admin' | 'observer' = 'agent', as?: string): Promise<Caller> {
    return resolveCaller(w.store, { token: await secret(agent, role), project: w.project, projectExplicit: false, agent: as });
  }

  /** A new token's secret, for requests over real HTTP. */
  async function secret(agent: string, role: 'agent' | 'admin' | 'observer' = 'agent'): Promise<string> {
    return (await createToken(w.store, operator, { agent, role })).secret;
  }

  /** Which operations answered 2xx and which answered an error, to prove every route saw both. */
  const seen = { good: new Set<string>(), bad: new Set<string>() };

  /** One request through the handler; its answer checked against the document before it is returned. */
  async function call(who: Caller, method: string, path: string, options: Call = {}): Promise<HttpReply & { body: Json }> {
    const query = new URLSearchParams();
    for (const [k, v] of Object.entries(options.query ?? {})) for (const one of Array.isArray(v) ? v : [v]) query.append(k, one);
    const reply = await restHandler(deps, {
      method,
      path,
      query,
      body: options.body,
      caller: who,
      requestId: newId('req'),
      signal: options.signal ?? new AbortController().signal,
    });
    let op: string | undefined;
    try {
      op = resolveRoute(method, path).op.id;
    } catch {
      op = undefined;
    }
    if (reply.status < 300) {
      const validate = success.get(op!)!;
      expect(validate(reply.body), `${method} ${path}: ${JSON.stringify(validate.errors)}`).toBe(true);
      seen.good.add(op!);
    } else {
      expect(errorSchema(reply.body), `${method} ${path}: ${JSON.stringify(errorSchema.errors)}`).toBe(true);
      if (op) seen.bad.add(op);
    }
    return reply as HttpReply & { body: Json };
  }

  return { w, deps, operator, caller, secret, call, seen };
}

const codeOf = (r: HttpReply) => (r.body as Json).error?.code as string | undefined;

describe.each(TASK_ADAPTERS)('REST /v1: $name', (adapter) => {
  describe.skipIf(!adapter.available)(adapter.name, () => {
    it('serves every operation, good input answered and checked against its schema, bad input refused with the error object', async (ctx) => {
      const { w, operator, caller, call, seen } = await restWorld(adapter, ctx);
      const kasra = await caller('kasra');
      const lena = await caller('lena');
      const boss = await caller('boss', 'admin');

      // whoami, peers
      const who = (await call(kasra, 'GET', '/v1/whoami')).body;
      expect(who).toEqual({ project: w.project, agent: 'kasra', role: 'agent', via: 'token' });
      // The schemas are tight: a field the document does not name, or one missing, fails the check.
      expect(success.get('whoami')!({ ...who, extra: 1 })).toBe(false);
      expect(success.get('whoami')!({ ...who, via: undefined })).toBe(false);
      const badWho = await call(kasra, 'GET', '/v1/whoami', { query: { agent: 'lena' } });
      expect(badWho).toMatchObject({ status: 400, body: { error: { code: 'usage', message: 'unknown query parameter "agent" for whoami; it takes no query parameters' } } });
      expect((await call(kasra, 'GET', '/v1/peers')).body.map((p: Json) => p.name).sort()).toEqual(['boss', 'kasra', 'lena']);
      expect((await call(kasra, 'GET', '/v1/peers', { query: { all: 'true' } })).status).toBe(400);

      // messages: send, broadcast, inbox, ack
      const sent = await call(kasra, 'POST', '/v1/messages', { body: { to: 'lena', text: 'the build is green' } });
      expect(sent).toMatchObject({ status: 201, body: { to: 'lena', recipients: ['lena'] }, audit: { action: 'messages.send', target: sent.body.id } });
      expect(await call(kasra, 'POST', '/v1/messages', { body: { to: 'lena' } })).toMatchObject({ status: 400, body: { error: { message: 'text (or message) is required' } } });
      const colour = await call(kasra, 'POST', '/v1/messages', { body: { to: 'lena', text: 'x', colour: 'red' } });
      expect(colour).toMatchObject({ status: 400, audit: { action: 'messages.send' } });
      expect(colour.body.error.message).toBe('unknown field "colour" for messages.send; valid: to, text, message, reply_to, ack, priority, idempotency_key');
      expect(await call(kasra, 'POST', '/v1/messages', { body: ['to', 'lena'] })).toMatchObject({ status: 400, body: { error: { message: 'the body of messages.send must be a JSON object' } } });
      expect(await call(boss, 'POST', '/v1/messages/broadcast', { body: { text: 'standup in 5' } })).toMatchObject({ status: 201, body: { to: 'all', recipients: ['kasra', 'lena'] } });
      expect(await call(boss, 'POST', '/v1/messages/broadcast', { body: { text: 5 } })).toMatchObject({ status: 400, body: { error: { code: 'usage', message: expect.stringContaining('text:') } } });
      const asked = await call(kasra, 'POST', '/v1/messages', { body: { to: 'lena', text: 'can you review?', ack: true } });
      expect(asked.body.ack_required).toBe(true);
      const inbox = await call(lena, 'POST', '/v1/inbox', { body: {} });
      expect(inbox).toMatchObject({ status: 200, audit: { action: 'messages.inbox', target: 'lena' } });
      expect(inbox.body.unread.map((m: Json) => m.text)).toEqual(['the build is green', 'standup in 5', 'can you review?']);
      expect((await call(lena, 'POST', '/v1/inbox')).body.unread).toEqual([]);
      expect(await call(lena, 'POST', '/v1/inbox', { body: { limit: 0 } })).toMatchObject({ status: 400, body: { error: { code: 'usage' } } });
      const acked = await call(lena, 'POST', `/v1/messages/${asked.body.id}/ack`, { body: { note: 'on it' } });
      expect(acked).toMatchObject({ status: 200, body: { id: asked.body.id, ok: true }, audit: { action: 'messages.ack', target: asked.body.id } });
      expect(acked.body.ack_message_id).toMatch(/^msg_/);
      expect((await call(lena, 'POST', `/v1/messages/${newId('msg')}/ack`, { body: {} })).status).toBe(404);

      // tasks: create, list, board, get
      const t1 = await call(boss, 'POST', '/v1/tasks', { body: { title: 'Fix the build', description: 'esbuild fails on node 20', priority: 'high', labels: ['ci'] } });
      expect(t1).toMatchObject({ status: 201, body: { title: 'Fix the build', status: 'queued', priority: 70, labels: ['ci'] }, audit: { action: 'tasks.create', target: t1.body.id } });
      const t2 = (await call(boss, 'POST', '/v1/tasks', { body: { title: 'Write the release notes' } })).body.id as string;
      const t3 = (await call(boss, 'POST', '/v1/tasks', { body: { title: 'Ship it', depends_on: [t1.body.id] } })).body.id as string;
      expect((await call(boss, 'POST', '/v1/tasks', { body: { title: '' } })).status).toBe(400);
      expect((await call(boss, 'POST', '/v1/tasks', { body: { title: 'x', priority: { level: 1 } } })).status).toBe(400);
      expect((await call(boss, 'POST', '/v1/tasks', { body: { title: 'x', depends_on: [newId('tsk')] } })).status).toBe(404);

      const listed = await call(kasra, 'GET', '/v1/tasks', { query: { status: ['queued', 'claimed'], limit: '10' } });
      expect(listed.body.map((t: Json) => t.id).sort()).toEqual([t1.body.id, t2, t3].sort());
      expect(listed.audit).toBeUndefined();
      expect((await call(kasra, 'GET', '/v1/tasks', { query: { ready: 'true' } })).body.map((t: Json) => t.id).sort()).toEqual([t1.body.id, t2].sort());
      expect((await call(kasra, 'GET', '/v1/tasks', { query: { limit: '0' } })).status).toBe(400);
      expect(await call(kasra, 'GET', '/v1/tasks', { query: { limit: 'ten' } })).toMatchObject({ status: 400, body: { error: { message: expect.stringMatching(/^invalid query for tasks\.list: limit: /) } } });
      expect((await call(kasra, 'GET', '/v1/tasks', { query: { ready: 'maybe' } })).status).toBe(400);
      expect(await call(kasra, 'GET', '/v1/tasks', { query: { limit: ['1', '2'] } })).toMatchObject({ status: 400, body: { error: { message: 'give the query parameter "limit" once' } } });
      expect(await call(kasra, 'GET', '/v1/tasks', { body: { limit: 1 } })).toMatchObject({ status: 400, body: { error: { message: 'GET /v1/tasks takes no body' } } });

      const board = await call(kasra, 'GET', '/v1/tasks/board');
      expect(board.body.map((t: Json) => [t.id, t.unblocks])).toEqual([
        [t1.body.id, 1],
        [t2, 0],
      ]);
      expect((await call(kasra, 'GET', '/v1/tasks/board', { query: { limit: '5000' } })).status).toBe(400);
      expect((await call(kasra, 'GET', `/v1/tasks/${t1.body.id}`)).body).toMatchObject({ id: t1.body.id, description: 'esbuild fails on node 20' });
      expect((await call(kasra, 'GET', `/v1/tasks/${newId('tsk')}`)).status).toBe(404);
      expect((await call(kasra, 'GET', '/v1/tasks/not-a-task-id')).status).toBe(400);

      // claim (best and by id), heartbeat, complete, fail
      const claimed = await call(kasra, 'POST', '/v1/tasks/claim', { body: { lease_seconds: 60 } });
      expect(claimed).toMatchObject({ status: 200, body: { id: t1.body.id, status: 'claimed', claimant: 'kasra', fence: 1 }, audit: { action: 'tasks.claim', target: t1.body.id } });
      expect(await call(kasra, 'POST', '/v1/tasks/claim', { body: { lease_seconds: 0 } })).toMatchObject({ status: 400, body: { error: { message: 'lease_seconds must be 1 or more' } } });
      expect(await call(kasra, 'POST', '/v1/tasks/claim', { body: { id: t2 } })).toMatchObject({ status: 400, body: { error: { message: expect.stringContaining('unknown field "id" for tasks.claim') } } });
      const claimedT2 = await call(kasra, 'POST', `/v1/tasks/${t2}/claim`, { body: {} });
      expect(claimedT2).toMatchObject({ status: 200, body: { id: t2, claimant: 'kasra' }, audit: { action: 'tasks.claim_one', target: t2 } });
      expect(codeOf(await call(lena, 'POST', `/v1/tasks/${t2}/claim`, { body: {} }))).toBe('conflict');
      expect((await call(lena, 'POST', '/v1/tasks/claim', { body: {} })).status).toBe(409);

      expect((await call(kasra, 'POST', `/v1/tasks/${t1.body.id}/heartbeat`, { body: { fence: 1 } })).body).toMatchObject({ id: t1.body.id, fence: 1 });
      expect((await call(kasra, 'POST', `/v1/tasks/${t1.body.id}/heartbeat`, { body: { fence: 6 } })).status).toBe(409);
      expect(await call(kasra, 'POST', `/v1/tasks/${t1.body.id}/heartbeat`, { body: {} })).toMatchObject({ status: 400, body: { error: { message: expect.stringContaining('fence') } } });
      const done = await call(kasra, 'POST', `/v1/tasks/${t1.body.id}/complete`, { body: { fence: 1, result: 'pinned esbuild', artifacts: ['ci.yml'] } });
      expect(done.body).toMatchObject({ status: 'done', result: 'pinned esbuild', unblocked: [t3] });
      expect((await call(kasra, 'POST', `/v1/tasks/${t1.body.id}/complete`, { body: { fence: 1 } })).status).toBe(409);
      expect((await call(kasra, 'POST', `/v1/tasks/${t2}/fail`, { body: { fence: 1, error: 'no notes yet', retryable: true } })).body).toMatchObject({ id: t2, status: 'queued', error: 'no notes yet' });
      expect(await call(kasra, 'POST', `/v1/tasks/${t2}/fail`, { body: { fence: 1 } })).toMatchObject({ status: 400, body: { error: { message: expect.stringContaining('error') } } });

      // handoff and accept
      const held = await call(kasra, 'POST', `/v1/tasks/${t3}/claim`, { body: {} });
      expect(held.body.fence).toBe(1);
      expect((await call(kasra, 'POST', `/v1/tasks/${t3}/handoff`, { body: { fence: 1, to: 'lena' } })).status).toBe(400);
      expect((await call(kasra, 'POST', `/v1/tasks/${t3}/handoff`, { body: { fence: 1, to: 'lena', summary: 'tagged; publish left' } })).body).toMatchObject({
        status: 'review',
        handoff: { from: 'kasra', to: 'lena', summary: 'tagged; publish left' },
      });
      expect((await call(kasra, 'POST', `/v1/tasks/${t3}/accept`, { body: {} })).status).toBeGreaterThanOrEqual(400);
      expect((await call(lena, 'POST', `/v1/tasks/${t3}/accept`, { body: {} })).body).toMatchObject({ id: t3, claimant: 'lena', fence: 2 });

      // memory
      const remembered = await call(kasra, 'POST', '/v1/memory', { body: { text: 'The build pins esbuild 0.28 because 0.29 broke node 20', kind: 'decision', scope: 'project', tags: ['ci'] } });
      expect(remembered).toMatchObject({ status: 201, body: { merged: false }, audit: { action: 'memory.remember', target: remembered.body.id } });
      expect((await call(kasra, 'POST', '/v1/memory', { body: {} })).status).toBe(400);
      expect((await call(kasra, 'POST', '/v1/memory', { body: { text: 'x', scope: 'everywhere' } })).status).toBe(400);
      const recalled = await call(lena, 'GET', '/v1/memory/recall', { query: { query: 'why is esbuild pinned', limit: '3', tags: ['ci'] } });
      expect(recalled.body[0]).toMatchObject({ id: remembered.body.id, author: 'kasra', kind: 'decision', tags: ['ci'] });
      expect((await call(lena, 'GET', '/v1/memory/recall')).status).toBe(400);
      const pack = await call(lena, 'GET', '/v1/memory/context', { query: { max_chars: '2000' } });
      expect(pack.body.text).toContain('lena');
      expect(pack.body.text).toContain(t3);
      expect((await call(lena, 'GET', '/v1/memory/context', { query: { max_chars: '10' } })).status).toBe(400);

      // agents with their states
      const agents = await call(kasra, 'GET', '/v1/agents');
      expect(agents.body.map((a: Json) => [a.agent, a.state, a.holds])).toEqual([
        ['boss', 'unprobed', []],
        ['kasra', 'unprobed', []],
        ['lena', 'unprobed', [t3]],
      ]);
      expect((await call(kasra, 'GET', '/v1/agents', { query: { state: 'busy' } })).status).toBe(400);

      // usage and budgets
      const recorded = await call(kasra, 'POST', '/v1/usage', { body: { model: 'claude-sonnet-4-5', input_tokens: 1000, output_tokens: 200, idempotency_key: 'call-1' } });
      expect(recorded).toMatchObject({ status: 201, body: { duplicate: false, cost_micros: expect.any(Number) } });
      expect((await call(kasra, 'POST', '/v1/usage', { body: { model: 'claude-sonnet-4-5', input_tokens: 1000, output_tokens: 200, idempotency_key: 'call-1' } })).body.duplicate).toBe(true);
      expect((await call(kasra, 'POST', '/v1/usage', { body: { model: 'claude-sonnet-4-5' } })).status).toBe(400);
      const usage = await call(boss, 'GET', '/v1/usage', { query: { by: 'agent', since: '1d' } });
      expect(usage.body).toMatchObject({ by: 'agent', rows: [{ key: 'kasra', events: 1, input_tokens: 1000, output_tokens: 200 }], total: { events: 1 } });
      expect(usage.body.since).toMatch(/^\d{4}-\d\d-\d\dT/);
      expect((await call(boss, 'GET', '/v1/usage', { query: { by: 'colour' } })).status).toBe(400);
      expect((await call(boss, 'GET', '/v1/usage', { query: { since: 'the dawn of time' } })).status).toBe(400);
      await setBudget(w.store, operator, { scope: 'project', limit: '$5', period: 'day', action: 'warn' });
      expect((await call(kasra, 'GET', '/v1/budgets')).body).toEqual([
        expect.objectContaining({ scope: 'project', unit: 'usd', limit: 5_000_000, period: 'day', action: 'warn', spent: recorded.body.cost_micros, state: 'ok', lifted_at: null }),
      ]);
      expect((await call(kasra, 'GET', '/v1/budgets', { query: { scope: 'project' } })).status).toBe(400);

      // approvals: a gated proposal waits; an admin approves it (it executes once), another is denied
      const gate = async (cycle: string, title: string) =>
        (await runMotor({ tasks: w.tasks }, operator, cycle, { method: 'post_content', agent: null, goal_id: null, details: { title } })).made!.approvals![0]!;
      const a1 = await gate('cyc_1', 'Announce the release');
      const a2 = await gate('cyc_2', 'Announce it twice');
      const pending = await call(kasra, 'GET', '/v1/approvals');
      expect(pending.body.map((a: Json) => [a.id, a.status, a.tier])).toEqual([
        [a1, 'pending', 'human_gate'],
        [a2, 'pending', 'human_gate'],
      ]);
      expect((await call(kasra, 'GET', '/v1/approvals', { query: { status: 'bogus' } })).status).toBe(400);
      expect((await call(kasra, 'GET', `/v1/approvals/${a1}`)).body).toMatchObject({ id: a1, proposal: { method: 'post_content', details: { title: 'Announce the release' } }, votes: [] });
      expect((await call(kasra, 'GET', `/v1/approvals/${newId('apr')}`)).status).toBe(404);
      expect(codeOf(await call(kasra, 'POST', `/v1/approvals/${a1}/approve`, { body: {} }))).toBe('permission_denied');
      const approved = await call(boss, 'POST', `/v1/approvals/${a1}/approve`, { body: { note: 'ship it' } });
      expect(approved).toMatchObject({
        status: 200,
        body: { id: a1, status: 'executed', approves: 1, verdict: { outcome: 'executed', made: { tasks: [expect.stringMatching(/^tsk_/)] } }, votes: [{ approver: 'boss', vote: 'approve', note: 'ship it' }] },
        audit: { action: 'approvals.approve', target: a1 },
      });
      expect((await call(boss, 'GET', `/v1/tasks/${approved.body.verdict.made.tasks[0]}`)).body.title).toBe('Announce the release');
      expect(await call(boss, 'POST', `/v1/approvals/${a2}/deny`, { body: { note: 'once is enough' } })).toMatchObject({ status: 200, body: { id: a2, status: 'denied' } });
      expect((await call(boss, 'POST', `/v1/approvals/${a2}/deny`, { body: {} })).status).toBe(400);
      expect((await call(boss, 'POST', `/v1/approvals/${a2}/deny`, { body: { note: 7 } })).status).toBe(400);

      // squads (workspaces): a coordinator creates one by joining; for a worker it does not exist yet
      expect(codeOf(await call(kasra, 'POST', '/v1/squads/release/join', { body: {} }))).toBe('not_found');
      expect(await call(boss, 'POST', '/v1/squads/release/join', { body: { summary: 'cutting 1.0' } })).toMatchObject({
        status: 200,
        body: { workspace_id: 'release', agent: 'boss', joined: true, created: true },
        audit: { action: 'squads.join', target: 'release' },
      });
      expect((await call(kasra, 'POST', '/v1/squads/release/join', { body: {} })).body).toEqual({ workspace_id: 'release', agent: 'kasra', joined: true });
      expect((await call(kasra, 'POST', '/v1/squads/release/leave', { body: {} })).body).toEqual({ workspace_id: 'release', agent: 'kasra', left: true });
      expect((await call(kasra, 'POST', '/v1/squads/Not%20A%20Name/leave', { body: {} })).status).toBe(400);

      // the document, and a known path with the wrong method
      expect((await call(kasra, 'GET', '/v1/openapi.json')).body).toEqual(doc);
      expect((await call(kasra, 'GET', '/v1/openapi.json', { query: { format: 'yaml' } })).status).toBe(400);
      expect(await call(kasra, 'POST', '/v1/openapi.json', { body: {} })).toMatchObject({ status: 405, headers: { Allow: 'GET' }, body: { error: { code: 'usage' } } });

      // Every operation answered good input and refused bad input at least once.
      const ids = OPERATIONS.map((op) => op.id).sort();
      expect([...seen.good].sort()).toEqual(ids);
      expect([...seen.bad].sort()).toEqual(ids);
    });

    it('scopes by token: A cannot read B\'s inbox, an admin acting as B can, observers only read, other projects\' ids are not found', async (ctx) => {
      const { w, operator, caller, call } = await restWorld(adapter, ctx);
      const kasra = await caller('kasra');
      await call(kasra, 'POST', '/v1/messages', { body: { to: 'lena', text: 'for lena only' } });

      const refused = await call(kasra, 'POST', '/v1/inbox', { body: { agent: 'lena' } });
      expect(refused).toMatchObject({ status: 403, body: { error: { code: 'permission_denied' } }, audit: { action: 'messages.inbox' } });
      const denials = await w.store.sql.all<{ detail: string }>('SELECT detail FROM security_events WHERE project = $1 AND kind = $2', [w.project, 'forbidden']);
      expect(denials.map((d) => d.detail)).toContain('reading an inbox for another agent');
      // Nothing was taken: lena still has it, read through an admin token acting as lena.
      const bossAsLena = await caller('boss', 'admin', 'lena');
      expect(bossAsLena.agent).toBe('lena');
      const taken = await call(bossAsLena, 'POST', '/v1/inbox', { body: {} });
      expect(taken.body).toMatchObject({ agent: 'lena', unread: [{ from: 'kasra', text: 'for lena only' }] });
      expect((await call(bossAsLena, 'GET', '/v1/whoami')).body).toMatchObject({ agent: 'lena', role: 'admin' });
      // A non-admin token cannot act as another agent at all (refused when the caller is resolved).
      await expect(caller('kasra', 'agent', 'lena')).rejects.toMatchObject({ code: 'permission_denied' });

      // An observer reads and never writes, even through an operation that only reads its own inbox.
      const watcher = await caller('boss', 'observer');
      expect((await call(watcher, 'GET', '/v1/tasks')).status).toBe(200);
      expect((await call(watcher, 'GET', '/v1/agents')).status).toBe(200);
      expect(codeOf(await call(watcher, 'POST', '/v1/inbox', { body: {} }))).toBe('permission_denied');
      expect(codeOf(await call(watcher, 'POST', '/v1/tasks/claim', { body: {} }))).toBe('permission_denied');

      // Another project's task: not found here, by any route.
      const other = await w.otherProject();
      await w.store.agents.add({ project: other, name: 'kasra', kind: 'custom', role: 'worker', capabilities: [], session: null });
      const foreign = await createTask(w.tasks, { project: other, agent: null, role: 'operator', via: 'local' }, { title: 'Someone else\'s work' });
      const id = foreign.task.id;
      expect(await call(kasra, 'GET', `/v1/tasks/${id}`)).toMatchObject({ status: 404, body: { error: { code: 'not_found', message: `task ${id} does not exist in project "${w.project}"` } } });
      expect((await call(kasra, 'POST', `/v1/tasks/${id}/claim`, { body: {} })).status).toBeGreaterThanOrEqual(404);
      expect((await call(kasra, 'GET', '/v1/tasks')).body.map((t: Json) => t.id)).not.toContain(id);
      expect((await call(operator, 'GET', `/v1/tasks/${id}`)).status).toBe(404);
    });

    it('a claim that waits for work is answered when work arrives, and ends when the request is aborted', async (ctx) => {
      const { caller, call } = await restWorld(adapter, ctx);
      const kasra = await caller('kasra');
      const boss = await caller('boss', 'admin');

      const waiting = call(kasra, 'POST', '/v1/tasks/claim', { body: { wait_seconds: 20 } });
      await new Promise((r) => setTimeout(r, 300));
      const made = await call(boss, 'POST', '/v1/tasks', { body: { title: 'Arrives later' } });
      const got = await waiting;
      expect(got).toMatchObject({ status: 200, body: { id: made.body.id, claimant: 'kasra' } });

      const controller = new AbortController();
      const started = Date.now();
      const abandoned = call(kasra, 'POST', '/v1/tasks/claim', { body: { wait_seconds: 20 }, signal: controller.signal });
      setTimeout(() => controller.abort(), 300);
      const reply = await abandoned;
      expect(Date.now() - started).toBeLessThan(5_000);
      // The claim stops waiting and answers as a claim with nothing to take.
      expect(reply).toMatchObject({ status: 409, body: { error: { code: 'conflict', message: expect.stringContaining('nothing to claim for kasra') } } });
      expect(reply.audit).toEqual({ action: 'tasks.claim' });
    });
  });
});

describe.each(TASK_ADAPTERS)('REST /v1 over real HTTP (the daemon\'s server): $name', (adapter) => {
  describe.skipIf(!adapter.available)(adapter.name, () => {
    it('answers through the server: bearer tokens, X-Sos-Agent, 201 and 405, audit rows, observers refused, a waiting claim cut by stop', async (ctx) => {
      const { w, deps, secret } = await restWorld(adapter, ctx);
      const server = await HttpServer.start({ deps, address: parseListen('127.0.0.1:0')!, version: 'test', ready: async () => ({}), routes: { rest: restHandler }, log: () => {} });
      let stopped = false;
      ctx.onTestFinished(async () => {
        if (!stopped) await server.stop();
      });
      const kasra = await secret('kasra');
      const boss = await secret('boss', 'admin');
      const watcher = await secret('lena', 'observer');
      const request = (token: string, method: string, path: string, body?: unknown, headers: Record<string, string> = {}) =>
        fetch(`${server.url}${path}`, {
          method,
          headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
          ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        });

      const who = await request(kasra, 'GET', '/v1/whoami');
      expect(who.status).toBe(200);
      expect(await who.json()).toEqual({ project: w.project, agent: 'kasra', role: 'agent', via: 'token' });

      const sent = await request(kasra, 'POST', '/v1/messages', { to: 'lena', text: 'over the wire' });
      expect(sent.status).toBe(201);
      const sentBody = (await sent.json()) as Json;
      expect(success.get('messages.send')!(sentBody)).toBe(true);
      const requestId = sent.headers.get('x-request-id')!;
      const rows = await w.store.sql.all<{ action: string; target: string; status: number | string; outcome: string; actor: string }>(
        'SELECT action, target, status, outcome, actor FROM http_audit WHERE project = $1 AND request_id = $2',
        [w.project, requestId],
      );
      expect(rows.map((r) => ({ ...r, status: Number(r.status) }))).toEqual([{ action: 'messages.send', target: sentBody.id, status: 201, outcome: 'ok', actor: 'kasra' }]);

      // An admin token acting as lena (X-Sos-Agent) takes lena's inbox; kasra's token cannot.
      expect((await request(kasra, 'POST', '/v1/inbox', {}, { 'x-sos-agent': 'lena' })).status).toBe(403);
      const inbox = await request(boss, 'POST', '/v1/inbox', {}, { 'x-sos-agent': 'lena' });
      expect(await inbox.json()).toMatchObject({ agent: 'lena', unread: [{ from: 'kasra', text: 'over the wire' }] });

      const wrong = await request(kasra, 'GET', '/v1/tasks/claim');
      expect(wrong.status).toBe(405);
      expect(wrong.headers.get('allow')).toBe('POST');
      expect(errorSchema(await wrong.json())).toBe(true);
      expect((await request(kasra, 'GET', '/v1/nothing-here')).status).toBe(404);
      const unknown = await request(kasra, 'POST', '/v1/tasks', { title: 'x', colour: 'red' });
      expect(unknown.status).toBe(400);
      expect(((await unknown.json()) as Json).error.message).toMatch(/^unknown field "colour" for tasks\.create/);
      expect((await request(watcher, 'GET', '/v1/tasks')).status).toBe(200);
      expect((await request(watcher, 'POST', '/v1/tasks', { title: 'not from an observer' })).status).toBe(403);
      const served = await request(kasra, 'GET', '/v1/openapi.json');
      expect(await served.json()).toEqual(doc);

      // A claim waiting for work is told to stop when the server stops; stop does not wait out the 20 s.
      const waiting = request(kasra, 'POST', '/v1/tasks/claim', { wait_seconds: 20 });
      await new Promise((r) => setTimeout(r, 300));
      const started = Date.now();
      await server.stop();
      stopped = true;
      expect(Date.now() - started).toBeLessThan(5_000);
      const cut = await waiting;
      expect(cut.status).toBe(409);
    });
  });
});
