import { z } from 'zod';
import type { Caller } from '../../auth/caller.js';
import { approve, APPROVAL_STATUSES, deny, getApproval, listApprovals } from '../../brain/governance.js';
import { listBudgets } from '../../economy/budgets.js';
import { usageReport } from '../../economy/service.js';
import { REPORT_DIMENSIONS } from '../../economy/types.js';
import { agentStatus } from '../../lifecycle/service.js';
import { taskView, type ToolContext, TOOLS } from '../../mcp/tools.js';
import { board, getTask } from '../../tasks/service.js';
import { parseMoment } from '../../time.js';
import type { HttpDeps } from '../types.js';
import * as out from './views.js';

/**
 * The `/v1` operations, one table: each names its method and path, its inputs and its output as
 * zod schemas, whether it changes anything, and the core function it runs. rest.ts routes and
 * validates from this table and openapi.ts documents it, so the document cannot drift from what
 * is served. An operation that equals an MCP tool is built from the tool (`fromTool`): the same
 * zod schema checks its input and the same `run` answers, so REST and MCP are one definition.
 */

/** What an operation runs against: the daemon's parts, and the request's abort signal. */
export interface OperationContext extends HttpDeps {
  /** Aborted when the client goes away or the server stops: long waits (claim) end with it. */
  signal: AbortSignal;
}

/** An operation's validated input: path parameters, query parameters and the JSON body. */
export interface OperationInput {
  params: Record<string, unknown>;
  query: Record<string, unknown>;
  body: Record<string, unknown>;
}

export type Method = 'GET' | 'POST';

export interface Operation {
  /** Unique; the OpenAPI operationId and the audit action (`tasks.claim`). */
  id: string;
  method: Method;
  /** With `{name}` for each path parameter: `/v1/tasks/{id}/claim`. */
  path: string;
  summary: string;
  /** The OpenAPI tag: messages, tasks, memory, agents, usage, approvals, meta. */
  tag: string;
  /** The MCP tool this operation is, when it is one. */
  tool?: string;
  params?: z.ZodObject;
  query?: z.ZodObject;
  body?: z.ZodObject;
  output: z.ZodType;
  /** Answers 201 (it made something) instead of 200. */
  created?: boolean;
  /** Changes state: audited, and refused to observer tokens by the server. */
  mutates: boolean;
  run(ctx: OperationContext, caller: Caller, input: OperationInput): Promise<unknown>;
}

type Shape = Record<string, z.ZodType>;
type Spec = Omit<Operation, 'run' | 'params' | 'query' | 'body'>;

/** An operation written here, with its input typed from its schemas. */
function operation<P extends Shape = Shape, Q extends Shape = Shape, B extends Shape = Shape>(
  spec: Spec & {
    params?: z.ZodObject<P>;
    query?: z.ZodObject<Q>;
    body?: z.ZodObject<B>;
    run(ctx: OperationContext, caller: Caller, input: { params: z.infer<z.ZodObject<P>>; query: z.infer<z.ZodObject<Q>>; body: z.infer<z.ZodObject<B>> }): Promise<unknown>;
  },
): Operation {
  return spec as unknown as Operation;
}

const toolNamed = (name: string) => {
  const tool = TOOLS.find((t) => t.name === name);
  if (!tool) throw new Error(`no MCP tool named ${name}`);
  return tool;
};

const pathNames = (path: string) => [...path.matchAll(/\{(\w+)\}/g)].map((m) => m[1]!);

/**
 * An operation that is an MCP tool. Its path parameters are the tool's arguments of those names
 * (required in the path even where the tool leaves them optional); the other arguments come from
 * the body (`from: 'body'`) or the query string (`'query'`), minus any in `omit`. The tool's run
 * gets them merged, exactly as MCP would hand them over.
 */
function fromTool(name: string, spec: Omit<Spec, 'tool'> & { from: 'body' | 'query'; omit?: string[] }): Operation {
  const tool = toolNamed(name);
  const inPath = pathNames(spec.path);
  const shape = tool.input.shape as Shape;
  const params = inPath.length ? z.object(Object.fromEntries(inPath.map((n) => [n, unwrap(shape[n]!)]))) : undefined;
  const dropped = [...inPath, ...(spec.omit ?? [])];
  const rest = tool.input.omit(Object.fromEntries(dropped.map((n) => [n, true])) as Record<string, true>);
  const { from, omit: _omit, ...described } = spec;
  return {
    ...described,
    tool: name,
    ...(params ? { params } : {}),
    [from]: rest,
    run: (ctx: ToolContext, caller: Caller, input: OperationInput) => tool.run(ctx, caller, { ...input[from], ...input.params }),
  };
}

const unwrap = (schema: z.ZodType): z.ZodType => (schema instanceof z.ZodOptional ? (schema.unwrap() as z.ZodType) : schema);

const id = (what: string) => z.object({ id: z.string().describe(what) });
const note = z.object({ note: z.string().optional().describe('recorded with the vote') });

/** `since`/`until` as the CLI reads them: a duration ago (`7d`) or a date. */
const momentOf = (text: string | undefined, what: string) => (text === undefined ? undefined : parseMoment(text, what, Date.now(), 'ago'));

/** The motor as `sos approvals approve` builds it: lifecycle states, doctor checks, plan limits. */
async function motorOf(ctx: OperationContext) {
  const [{ runChecks }, { parsePlanLimits }] = await Promise.all([import('../../doctor/checks.js'), import('../../economy/quota.js')]);
  return {
    tasks: ctx.tasks,
    lifecycle: ctx.life.repo,
    health: () => runChecks(ctx.values, process.cwd()),
    planLimits: parsePlanLimits(ctx.values.planLimits),
    quotaMarginMs: ctx.values.quotaMarginMs,
  };
}

/** The document of this table, built once on first request (the table does not change). */
let document: unknown;

export const OPERATIONS: readonly Operation[] = [
  // messages
  fromTool('send', { id: 'messages.send', method: 'POST', path: '/v1/messages', summary: 'Send a message to an agent, a squad or everyone', tag: 'messages', from: 'body', output: out.sendOut, created: true, mutates: true }),
  fromTool('broadcast', { id: 'messages.broadcast', method: 'POST', path: '/v1/messages/broadcast', summary: "Send a message to a squad's members, or to every agent of the project", tag: 'messages', from: 'body', output: out.sendOut, created: true, mutates: true }),
  fromTool('inbox', { id: 'messages.inbox', method: 'POST', path: '/v1/inbox', summary: 'Take your unread messages (marks them read; a POST because it does)', tag: 'messages', from: 'body', output: out.inboxOut, mutates: true }),
  fromTool('ack', { id: 'messages.ack', method: 'POST', path: '/v1/messages/{id}/ack', summary: 'Acknowledge a message (by message or request id); its sender gets an ack reply', tag: 'messages', from: 'body', output: out.ackOut, mutates: true }),
  fromTool('workspace_join', { id: 'squads.join', method: 'POST', path: '/v1/squads/{workspace_id}/join', summary: 'Join a squad (workspace); a coordinator creates it on first join', tag: 'messages', from: 'body', output: out.joinOut, mutates: true }),
  fromTool('workspace_leave', { id: 'squads.leave', method: 'POST', path: '/v1/squads/{workspace_id}/leave', summary: 'Leave a squad (workspace)', tag: 'messages', from: 'body', output: out.leaveOut, mutates: true }),
  fromTool('peers', { id: 'messages.peers', method: 'GET', path: '/v1/peers', summary: "The project's agents: role, online, unread count", tag: 'messages', from: 'query', output: out.peersOut, mutates: false }),

  // tasks
  fromTool('task_create', { id: 'tasks.create', method: 'POST', path: '/v1/tasks', summary: 'Create a task for any agent (or squad) to claim', tag: 'tasks', from: 'body', output: out.taskResultOut, created: true, mutates: true }),
  fromTool('task_list', { id: 'tasks.list', method: 'GET', path: '/v1/tasks', summary: 'The tasks you can see, highest priority first', tag: 'tasks', from: 'query', output: out.taskListOut, mutates: false }),
  operation({
    id: 'tasks.board',
    method: 'GET',
    path: '/v1/tasks/board',
    summary: 'The ready board: claimable tasks by priority, with how many tasks each unblocks',
    tag: 'tasks',
    query: z.object({ squad: z.string().optional(), limit: z.int().min(1).max(1000).optional().describe('default 50') }),
    output: out.boardOut,
    mutates: false,
    run: async (ctx, caller, { query }) =>
      (await board(ctx.tasks, caller, { ...(query.squad !== undefined ? { squad: query.squad } : {}), ...(query.limit !== undefined ? { limit: query.limit } : {}) })).map((t) => ({
        ...taskView(t, true),
        unblocks: t.unblocks,
      })),
  }),
  operation({
    id: 'tasks.get',
    method: 'GET',
    path: '/v1/tasks/{id}',
    summary: 'One task, with its description and result',
    tag: 'tasks',
    params: id('task id (tsk_…)'),
    output: out.taskOut,
    mutates: false,
    run: async (ctx, caller, { params }) => taskView(await getTask(ctx.tasks, caller, params.id)),
  }),
  fromTool('task_claim', { id: 'tasks.claim', method: 'POST', path: '/v1/tasks/claim', summary: 'Claim the best ready task you may take; returns its fence', tag: 'tasks', from: 'body', omit: ['id'], output: out.taskResultOut, mutates: true }),
  fromTool('task_claim', { id: 'tasks.claim_one', method: 'POST', path: '/v1/tasks/{id}/claim', summary: 'Claim this task; returns its fence', tag: 'tasks', from: 'body', output: out.taskResultOut, mutates: true }),
  fromTool('task_heartbeat', { id: 'tasks.heartbeat', method: 'POST', path: '/v1/tasks/{id}/heartbeat', summary: 'Renew the lease on a task you hold', tag: 'tasks', from: 'body', output: out.taskResultOut, mutates: true }),
  fromTool('task_complete', { id: 'tasks.complete', method: 'POST', path: '/v1/tasks/{id}/complete', summary: 'Finish a task you hold', tag: 'tasks', from: 'body', output: out.completeOut, mutates: true }),
  fromTool('task_fail', { id: 'tasks.fail', method: 'POST', path: '/v1/tasks/{id}/fail', summary: 'Fail a task you hold; retryable puts it back in the queue', tag: 'tasks', from: 'body', output: out.taskResultOut, mutates: true }),
  fromTool('task_handoff', { id: 'tasks.handoff', method: 'POST', path: '/v1/tasks/{id}/handoff', summary: 'Hand a task you hold to another agent, with a summary', tag: 'tasks', from: 'body', output: out.taskResultOut, mutates: true }),
  fromTool('task_accept', { id: 'tasks.accept', method: 'POST', path: '/v1/tasks/{id}/accept', summary: 'Accept a task handed off to you; returns your new fence', tag: 'tasks', from: 'body', output: out.taskResultOut, mutates: true }),

  // memory
  fromTool('remember', { id: 'memory.remember', method: 'POST', path: '/v1/memory', summary: 'Store a memory; a near-duplicate merges', tag: 'memory', from: 'body', output: out.rememberOut, created: true, mutates: true }),
  fromTool('recall', { id: 'memory.recall', method: 'GET', path: '/v1/memory/recall', summary: 'Search memory by meaning and words; best matches first', tag: 'memory', from: 'query', output: out.recallOut, mutates: false }),
  fromTool('memory_context', { id: 'memory.context', method: 'GET', path: '/v1/memory/context', summary: 'Your context pack: identity, held tasks, unread digest, relevant memories', tag: 'memory', from: 'query', output: out.contextOut, mutates: false }),

  // agents
  operation({
    id: 'agents.list',
    method: 'GET',
    path: '/v1/agents',
    summary: "The project's agents with their lifecycle state (as `sos agents status`)",
    tag: 'agents',
    output: out.agentsOut,
    mutates: false,
    run: async (ctx, caller) => out.agentsView(await agentStatus(ctx.life, caller)),
  }),

  // usage and budgets
  operation({
    id: 'usage.summary',
    method: 'GET',
    path: '/v1/usage',
    summary: 'Token use and cost, grouped (as `sos usage`)',
    tag: 'usage',
    query: z.object({
      by: z.enum(REPORT_DIMENSIONS).optional().describe('default agent'),
      since: z.string().optional().describe('a duration ago (7d) or a date'),
      until: z.string().optional().describe('a duration ago or a date'),
      agent: z.string().optional(),
    }),
    output: out.usageOut,
    mutates: false,
    run: async (ctx, caller, { query }) => {
      const since = momentOf(query.since, 'since');
      const until = momentOf(query.until, 'until');
      return out.usageView(
        await usageReport(ctx.store, caller, {
          ...(query.by !== undefined ? { by: query.by } : {}),
          ...(since !== undefined ? { since } : {}),
          ...(until !== undefined ? { until } : {}),
          ...(query.agent !== undefined ? { agent: query.agent } : {}),
        }),
      );
    },
  }),
  fromTool('usage_report', { id: 'usage.record', method: 'POST', path: '/v1/usage', summary: 'Record the tokens one model call used (counted once per idempotency key)', tag: 'usage', from: 'body', output: out.usageRecordOut, created: true, mutates: true }),
  operation({
    id: 'budgets.list',
    method: 'GET',
    path: '/v1/budgets',
    summary: "The project's budgets with this period's spend",
    tag: 'usage',
    output: out.budgetsOut,
    mutates: false,
    run: async (ctx, caller) => out.budgetsView(await listBudgets(ctx.store, caller)),
  }),

  // approvals
  operation({
    id: 'approvals.list',
    method: 'GET',
    path: '/v1/approvals',
    summary: 'Gated proposals: pending ones, or of a status, or all',
    tag: 'approvals',
    query: z.object({ status: z.enum(APPROVAL_STATUSES).optional().describe('default pending'), all: z.boolean().optional().describe('every status') }),
    output: out.approvalsOut,
    mutates: false,
    run: async (ctx, caller, { query }) =>
      (await listApprovals(ctx.store, caller, { ...(query.status !== undefined ? { status: query.status } : {}), all: query.all === true })).map(out.approvalView),
  }),
  operation({
    id: 'approvals.get',
    method: 'GET',
    path: '/v1/approvals/{id}',
    summary: 'One approval with its votes',
    tag: 'approvals',
    params: id('approval id (apr_…)'),
    output: out.approvalOut,
    mutates: false,
    run: async (ctx, caller, { params }) => out.approvalView(await getApproval(ctx.store, caller, params.id)),
  }),
  operation({
    id: 'approvals.approve',
    method: 'POST',
    path: '/v1/approvals/{id}/approve',
    summary: 'Approve a gated proposal; the deciding approve executes it once (admins)',
    tag: 'approvals',
    params: id('approval id (apr_…)'),
    body: note,
    output: out.approveOut,
    mutates: true,
    run: async (ctx, caller, { params, body }) => {
      const r = await approve(await motorOf(ctx), caller, params.id, body.note !== undefined ? { note: body.note } : {});
      return { ...out.approvalView(r.approval), verdict: out.verdictView(r.verdict) };
    },
  }),
  operation({
    id: 'approvals.deny',
    method: 'POST',
    path: '/v1/approvals/{id}/deny',
    summary: 'Deny a gated proposal: it will not execute (admins)',
    tag: 'approvals',
    params: id('approval id (apr_…)'),
    body: note,
    output: out.approvalOut,
    mutates: true,
    run: async (ctx, caller, { params, body }) => out.approvalView(await deny(ctx.store, caller, params.id, body.note !== undefined ? { note: body.note } : {})),
  }),

  // meta
  fromTool('whoami', { id: 'whoami', method: 'GET', path: '/v1/whoami', summary: 'Who the token makes you: project, agent, role', tag: 'meta', from: 'query', output: out.whoamiOut, mutates: false }),
  operation({
    id: 'openapi',
    method: 'GET',
    path: '/v1/openapi.json',
    summary: 'This API as an OpenAPI 3.1 document, generated from the same schemas that validate it',
    tag: 'meta',
    output: z.looseObject({ openapi: z.string(), info: z.looseObject({}), paths: z.record(z.string(), z.unknown()) }),
    mutates: false,
    run: async () => {
      // Loaded here: only this route needs the generator, and openapi.ts reads this table.
      const { openApiDocument } = await import('../openapi.js');
      document ??= openApiDocument(OPERATIONS);
      return document;
    },
  }),
];
