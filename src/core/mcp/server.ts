import { type CallToolResult, McpServer } from '@modelcontextprotocol/server';
import type { Caller } from '../auth/caller.js';
import { toSosError } from '../errors.js';
import { type McpContext, TOOLS } from './tools.js';

/**
 * The sos MCP server: the bus and task tools for one caller, over whatever transport the surface picks
 * (stdio for `sos mcp`; streamable HTTP in the daemon later). No CLI code here.
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
}

const text = (value: unknown): CallToolResult['content'] => [{ type: 'text', text: JSON.stringify(value) }];

/** An error as the CLI prints it under `--json`, so agents see the same codes and messages. */
function errorResult(err: unknown, options: McpServerOptions): CallToolResult {
  const error = toSosError(err);
  if (error.code === 'internal') options.onInternalError?.(error);
  const body = { error: { code: error.code, message: error.message, ...(error.hint ? { hint: error.hint } : {}) } };
  return { content: text(body), isError: true };
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
    server.registerTool(tool.name, { description: tool.description, inputSchema: tool.input }, async (args, request) => {
      const controller = linkedController([request.mcpReq.signal, options.signal]);
      const call = (async () => tool.run({ ...ctx, signal: controller.signal }, caller, args as never))();
      try {
        return { content: text(await (options.inFlight?.track(call) ?? call)) };
      } catch (err) {
        return errorResult(err, options);
      } finally {
        controller.abort();
      }
    });
  }
  return server;
}
