import { type AuthInfo, type CallToolResult, McpServer, type StandardSchemaWithJSON } from '@modelcontextprotocol/server';
import type { z } from 'zod';
import type { Caller } from '../auth/caller.js';
import { type ErrorCode, toSosError, UsageError } from '../errors.js';
import { quote } from '../safe-text.js';
import { type McpContext, type ToolSpec, TOOLS } from './tools.js';

/**
 * The sos MCP server: the bus and task tools for one caller, over whatever transport the surface picks
 * (stdio for `sos mcp`; streamable HTTP in the daemon, src/core/http/mcp-http.ts). No CLI code here.
 */

/** Tool calls still running; the owner waits for them before closing the bus and the Store. */
export class InFlight {
  private readonly running = new Set<Promise<unknown>>();

  track<T>(work: Promise<T>): Promise<T> {
    this.running.add(work);
    const forget = () => this.running.delete(work);
    work.then(forget, forget);
    return work;
  }

  async settled(): Promise<void> {
    while (this.running.size > 0) await Promise.allSettled([...this.running]);
  }
}

export interface McpServerOptions {
  /** Reported to clients as the server's version. */
  version: string;
  inFlight?: InFlight;
  /** Aborted at shutdown: tool calls that wait (task_claim) stop waiting. */
  signal?: AbortSignal;
  /** Called with each error that is not the caller's fault (code `internal`). */
  onInternalError?: (error: Error) => void;
  /**
   * Told of each tool call when it ends, before its result is sent: the tool, `ok` or the error
   * code, and the auth info the HTTP request carrying it came with (none over stdio). The daemon's
   * HTTP surface writes its audit rows here, so a row exists once the client has its answer.
   */
  onToolCall?: (call: { tool: string; outcome: 'ok' | ErrorCode; authInfo?: AuthInfo }) => void | Promise<void>;
}

const text = (value: unknown): CallToolResult['content'] => [{ type: 'text', text: JSON.stringify(value) }];

/**
 * Longest message (and hint) a tool error carries. Messages quote input, cut with `quote()` where
 * they are written; this is the backstop for any that does not, so a 5 MB argument is never sent
 * back whole.
 */
const MAX_ERROR_CHARS = 1_000;

const cut = (s: string) => (s.length > MAX_ERROR_CHARS ? `${s.slice(0, MAX_ERROR_CHARS - 1)}…` : s);

/** An error as the CLI prints it under `--json`, so agents see the same codes and messages. */
function errorResult(err: unknown, options: McpServerOptions): CallToolResult {
  const error = toSosError(err);
  if (error.code === 'internal') options.onInternalError?.(error);
  const body = { error: { code: error.code, message: cut(error.message), ...(error.hint ? { hint: cut(error.hint) } : {}) } };
  return { content: text(body), isError: true };
}

/** Most unknown names or schema issues one refusal lists. */
const MAX_LISTED = 5;

const listed = (items: string[]) =>
  items.length > MAX_LISTED ? `${items.slice(0, MAX_LISTED).join(', ')} and ${items.length - MAX_LISTED} more` : items.join(', ');

/**
 * A tool's arguments, checked in this one place for every tool: a name the schema does not know is
 * refused (a zod object would drop it silently, so `task_claim {"lease":"-5s"}` claimed with the
 * default lease), then the schema validates the rest. The valid names are the schema's keys.
 */
function parseArguments<S extends z.ZodObject>(tool: ToolSpec<S>, args: Record<string, unknown>): z.infer<S> {
  const valid = Object.keys(tool.input.shape);
  const unknown = Object.keys(args).filter((key) => !Object.hasOwn(tool.input.shape, key));
  if (unknown.length > 0) {
    const names = listed(unknown.map((key) => quote(key)));
    throw new UsageError(
      `unknown argument${unknown.length > 1 ? 's' : ''} ${names} for ${tool.name}; ${valid.length ? `valid: ${valid.join(', ')}` : 'it takes no arguments'}`,
    );
  }
  const parsed = tool.input.safeParse(args);
  if (!parsed.success) {
    // zod's messages name the expected type, not the value received, so they quote no input.
    const issues = parsed.error.issues.map((i) => (i.path.length ? `${i.path.map(String).join('.')}: ${i.message}` : i.message));
    throw new UsageError(`invalid arguments for ${tool.name}: ${listed(issues)}`);
  }
  return parsed.data;
}

/**
 * A tool's JSON Schema without its `$schema` line: 2020-12 is MCP's default dialect, and the
 * line cost ~65 bytes a tool in a list every agent reads on every turn.
 */
function bare(schema: Record<string, unknown>): Record<string, unknown> {
  const { $schema: _dialect, ...rest } = schema;
  return rest;
}

/**
 * What the SDK is given as a tool's `inputSchema`: the zod schema's JSON Schema for tools/list,
 * and a validator that lets the raw arguments through. The SDK validates before the handler runs,
 * and a zod object there would strip unknown names before `parseArguments` could see them (a
 * strict one would refuse them in the SDK's own words, without the valid names, and add
 * `"additionalProperties":false` to every tool in the list).
 */
function listedSchema(input: z.ZodObject): StandardSchemaWithJSON<Record<string, unknown>> {
  const convert = input['~standard'].jsonSchema;
  return {
    '~standard': {
      version: 1,
      vendor: 'sos',
      validate: (value) => ({ value: value as Record<string, unknown> }),
      jsonSchema: { input: (o) => bare(convert.input(o)), output: (o) => bare(convert.output(o)) },
    },
  };
}

/**
 * A controller aborted as soon as any of `signals` is. Abort it when the call ends: that also
 * drops its listeners from the long-lived shutdown signal.
 */
function linkedController(signals: (AbortSignal | undefined)[]): AbortController {
  const controller = new AbortController();
  for (const signal of signals) {
    if (signal === undefined) continue;
    if (signal.aborted) {
      controller.abort(signal.reason);
      break;
    }
    signal.addEventListener('abort', () => controller.abort(signal.reason), { once: true, signal: controller.signal });
  }
  return controller;
}

export function buildMcpServer(ctx: McpContext, caller: Caller, options: McpServerOptions): McpServer {
  const server = new McpServer(
    { name: 'sos', version: options.version },
    {
      instructions: `The sos message bus and task queue. You are agent "${caller.agent ?? '(none)'}" in project "${caller.project}"; check inbox for messages from other agents, task_claim for work.`,
    },
  );
  for (const tool of TOOLS) {
    server.registerTool(tool.name, { description: tool.description, inputSchema: listedSchema(tool.input) }, async (args, request) => {
      const controller = linkedController([request.mcpReq.signal, options.signal]);
      const call = (async () => tool.run({ ...ctx, signal: controller.signal }, caller, parseArguments(tool, args)))();
      let result: CallToolResult;
      let outcome: 'ok' | ErrorCode = 'ok';
      try {
        result = { content: text(await (options.inFlight?.track(call) ?? call)) };
      } catch (err) {
        outcome = toSosError(err).code;
        result = errorResult(err, options);
      } finally {
        controller.abort();
      }
      if (options.onToolCall) {
        const authInfo = request.http?.authInfo;
        try {
          await options.onToolCall({ tool: tool.name, outcome, ...(authInfo ? { authInfo } : {}) });
        } catch (err) {
          options.onInternalError?.(err instanceof Error ? err : new Error(String(err)));
        }
      }
      return result;
    });
  }
  return server;
}
