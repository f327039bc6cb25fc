import { type CallToolResult, McpServer } from '@modelcontextprotocol/server';
import type { Caller } from '../auth/caller.js';
import type { BusContext } from '../bus/service.js';
import { toSosError } from '../errors.js';
import { TOOLS } from './tools.js';

/**
 * The sos MCP server: the bus tools for one caller, over whatever transport the surface picks
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

export function buildMcpServer(ctx: BusContext, caller: Caller, options: McpServerOptions): McpServer {
  const server = new McpServer(
    { name: 'sos', version: options.version },
    {
      instructions: `The sos message bus. You are agent "${caller.agent ?? '(none)'}" in project "${caller.project}"; check inbox for messages from other agents.`,
    },
  );
  for (const tool of TOOLS) {
    server.registerTool(tool.name, { description: tool.description, inputSchema: tool.input }, async (args) => {
      const call = (async () => tool.run(ctx, caller, args as never))();
      try {
        return { content: text(await (options.inFlight?.track(call) ?? call)) };
      } catch (err) {
        return errorResult(err, options);
      }
    });
  }
  return server;
}
