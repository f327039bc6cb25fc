import type { Caller } from '../auth/caller.js';
import type { BusContext } from '../bus/service.js';
import type { ConfigValues } from '../config/variables.js';
import type { PriceTable } from '../economy/prices.js';
import type { LifecycleContext } from '../lifecycle/context.js';
import type { MemoryContext } from '../memory/service.js';
import type { Store } from '../store/port.js';
import type { TaskContext } from '../tasks/service.js';

/**
 * The contract between the daemon's HTTP server (server.ts: listening, authentication, limits,
 * audit, `/mcp`, health) and the route modules it mounts (`/v1` in rest.ts, `/metrics` in
 * metrics.ts). The server reads and bounds the body, parses JSON, resolves the caller from the
 * bearer token exactly as the CLI does, and only then calls a handler; a handler never sees an
 * unauthenticated request and never touches the socket.
 */

/** What the daemon holds open and every route may use: the same parts as a CLI command. */
export interface HttpDeps {
  store: Store;
  bus: BusContext;
  tasks: TaskContext;
  memory: MemoryContext;
  life: LifecycleContext;
  values: ConfigValues;
  prices?: PriceTable;
}

/** One authenticated request, as a route module sees it. */
export interface HttpRequest {
  method: string;
  /** The path without the query string, e.g. `/v1/tasks/t-12/claim`. */
  path: string;
  query: URLSearchParams;
  /** The parsed JSON body; undefined when there was none. */
  body: unknown;
  caller: Caller;
  /** Unique per request; echoed in the `x-request-id` header and the audit row. */
  requestId: string;
  /** Aborted when the client goes away or the server stops. */
  signal: AbortSignal;
}

export interface HttpReply {
  status: number;
  /** JSON-encoded unless a string (then sent as is, with `contentType`). */
  body: unknown;
  contentType?: string;
  headers?: Record<string, string>;
  /**
   * Set by a handler that changed something (or tried to): the server writes one audit row
   * with this action name (e.g. `tasks.claim`), the caller, the status and the request id.
   */
  audit?: { action: string; target?: string };
}

export type HttpHandler = (deps: HttpDeps, request: HttpRequest) => Promise<HttpReply>;
