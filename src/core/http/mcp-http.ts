import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import {
  type AuthInfo,
  createMcpHandler,
  isInitializeRequest,
  isLegacyRequest,
  type McpHttpHandler,
  type McpRequestContext,
  type McpServer,
  WebStandardStreamableHTTPServerTransport,
} from '@modelcontextprotocol/server';
import type { Caller } from '../auth/caller.js';
import type { ErrorCode } from '../errors.js';
import { buildMcpServer, type InFlight } from '../mcp/server.js';
import type { McpContext } from '../mcp/tools.js';
import type { Store } from '../store/port.js';

/**
 * `/mcp`: the MCP tools of `sos mcp` over streamable HTTP, one tool table for both transports
 * (`buildMcpServer`). The SDK serves two protocol eras, and so does this route:
 * - 2026-07-28 requests (self-contained, no session) go to the SDK's `createMcpHandler`, which
 *   builds a server per request for the caller the request's own token resolved to;
 * - 2025-era clients (Claude Code, Codex, Gemini CLI today) open a session with `initialize`.
 *   Each session is the SDK's `WebStandardStreamableHTTPServerTransport` and one server, bound
 *   to the caller that opened it: a request with its session id and another token is refused
 *   (403, recorded as a security event). Sessions are bounded in number and closed when idle.
 * The SDK decides which era a request belongs to (`isLegacyRequest`), exactly as its own entry
 * would. Only the Node ⇄ Web Request/Response bridge is written here: the body is already read
 * and bounded by the server, and passed to the SDK parsed.
 */

export interface McpHttpOptions {
  ctx: McpContext;
  store: Store;
  version: string;
  maxSessions: number;
  idleMs: number;
  maxBodyBytes: number;
  inFlight: InFlight;
  /** Aborted when the daemon stops: a task_claim that waits gives up. */
  signal: AbortSignal;
  /** Each tool call as it ends, with the per-request facts the server put in `extra`. */
  onToolCall: (call: { tool: string; outcome: 'ok' | ErrorCode; request: McpRequestFacts | undefined; caller: Caller | undefined }) => Promise<void>;
  onInternalError: (error: Error) => void;
}

/** What the server knows of the HTTP request that carried a tool call; travels in AuthInfo.extra. */
export interface McpRequestFacts {
  requestId: string;
  remote: string | null;
  method: string;
  path: string;
}

interface Session {
  transport: WebStandardStreamableHTTPServerTransport;
  server: McpServer;
  owner: string;
  caller: Caller;
  lastUsed: number;
  /** HTTP requests of this session still open (a GET stream stays open until the client leaves). */
  open: number;
}

/** A caller as a session owner: the token, and the agent and project it acts as. */
const ownerOf = (c: Caller) => `${c.tokenId ?? 'local'}\u0000${c.project}\u0000${c.agent ?? ''}`;

const jsonRpcError = (status: number, code: number, message: string) =>
  new Response(JSON.stringify({ jsonrpc: '2.0', error: { code, message }, id: null }), { status, headers: { 'content-type': 'application/json' } });

const sosError = (status: number, code: ErrorCode, message: string, hint?: string) =>
  new Response(JSON.stringify({ error: { code, message, ...(hint ? { hint } : {}) } }), { status, headers: { 'content-type': 'application/json' } });

export class McpHttp {
  private readonly sessions = new Map<string, Session>();
  private readonly modern: McpHttpHandler;
  private readonly sweeper: NodeJS.Timeout;
  private closed = false;

  constructor(private readonly options: McpHttpOptions) {
    this.modern = createMcpHandler((rc: McpRequestContext) => this.build(callerOf(rc.authInfo)), {
      legacy: 'reject',
      maxRequestBodySize: options.maxBodyBytes,
      onerror: (e) => options.onInternalError(e),
    });
    this.sweeper = setInterval(() => void this.expire(Date.now()), Math.max(1_000, Math.min(60_000, Math.floor(options.idleMs / 4))));
    this.sweeper.unref();
  }

  get sessionCount(): number {
    return this.sessions.size;
  }

  private build(caller: Caller): McpServer {
    const o = this.options;
    return buildMcpServer(o.ctx, caller, {
      version: o.version,
      inFlight: o.inFlight,
      signal: o.signal,
      onInternalError: o.onInternalError,
      onToolCall: (call) =>
        o.onToolCall({
          tool: call.tool,
          outcome: call.outcome,
          request: call.authInfo?.extra?.facts as McpRequestFacts | undefined,
          caller: call.authInfo?.extra?.caller as Caller | undefined,
        }),
    });
  }

  /** Serves one authenticated `/mcp` request; `body` is the parsed JSON (undefined for none). */
  async handle(req: IncomingMessage, res: ServerResponse, body: unknown, caller: Caller, facts: McpRequestFacts): Promise<void> {
    const abort = new AbortController();
    res.once('close', () => abort.abort());
    const request = toWebRequest(req, abort.signal);
    const authInfo: AuthInfo = { token: 'sos', clientId: caller.tokenId ?? 'local', scopes: [], extra: { caller, facts } };
    const legacy = req.method !== 'POST' || (await isLegacyRequest(request, body, { maxRequestBodySize: this.options.maxBodyBytes }));
    const response = legacy ? await this.legacy(request, res, body, caller, authInfo) : await this.modern.fetch(request, { authInfo, parsedBody: body });
    await sendWebResponse(res, response);
  }

  private async legacy(request: Request, res: ServerResponse, body: unknown, caller: Caller, authInfo: AuthInfo): Promise<Response> {
    const sid = request.headers.get('mcp-session-id');
    if (sid !== null) {
      const session = this.sessions.get(sid);
      if (!session) return jsonRpcError(404, -32_001, 'Session not found: it expired or was closed; initialize a new one');
      if (session.owner !== ownerOf(caller)) {
        await this.options.store.security.record({
          project: caller.project,
          kind: 'forbidden',
          actor: `${caller.project}/${caller.agent ?? 'operator'}`,
          detail: `used the MCP session of ${session.caller.project}/${session.caller.agent ?? 'operator'}`,
        });
        return sosError(403, 'permission_denied', 'this MCP session belongs to another token', 'open your own session (initialize) with your token');
      }
      return this.within(session, res, () => session.transport.handleRequest(request, { parsedBody: body, authInfo }));
    }
    if (request.method !== 'POST' || !isInitializeRequest(body)) {
      return jsonRpcError(400, -32_000, 'Bad Request: an Mcp-Session-Id header is required (initialize first)');
    }
    if (this.closed) return sosError(503, 'unavailable', 'the daemon is stopping');
    if (this.sessions.size >= this.options.maxSessions) await this.expire(Date.now());
    if (this.sessions.size >= this.options.maxSessions) {
      return sosError(503, 'unavailable', `the daemon holds its maximum of ${this.options.maxSessions} MCP sessions`, 'close idle clients, wait for idle sessions to expire, or raise SOS_MCP_SESSIONS');
    }
    const server = this.build(caller);
    let session: Session | undefined;
    const transport = new WebStandardStreamableHTTPServerTransport({
      sessionIdGenerator: () => randomUUID(),
      enableJsonResponse: true,
      maxRequestBodySize: this.options.maxBodyBytes,
      onsessioninitialized: (id) => {
        session = { transport, server, owner: ownerOf(caller), caller, lastUsed: Date.now(), open: 0 };
        this.sessions.set(id, session);
      },
      onsessionclosed: (id) => void this.drop(id),
    });
    transport.onclose = () => {
      if (transport.sessionId !== undefined) this.sessions.delete(transport.sessionId);
    };
    await server.connect(transport);
    const response = await transport.handleRequest(request, { parsedBody: body, authInfo });
    if (session === undefined) await server.close(); // the initialize failed: nothing to keep
    return response;
  }

  /** Runs one request of a session, counting it open until its HTTP exchange ends. */
  private async within(session: Session, res: ServerResponse, work: () => Promise<Response>): Promise<Response> {
    session.open += 1;
    session.lastUsed = Date.now();
    res.once('close', () => {
      session.open -= 1;
      session.lastUsed = Date.now();
    });
    return work();
  }

  private async drop(id: string): Promise<void> {
    const session = this.sessions.get(id);
    if (!session) return;
    this.sessions.delete(id);
    await session.server.close().catch((e: unknown) => this.options.onInternalError(e instanceof Error ? e : new Error(String(e))));
  }

  /** Closes sessions idle past the bound (no request open, none for `idleMs`). */
  async expire(now: number): Promise<number> {
    let n = 0;
    for (const [id, s] of this.sessions) {
      if (s.open > 0 || now - s.lastUsed < this.options.idleMs) continue;
      await this.drop(id);
      n += 1;
    }
    return n;
  }

  /** Closes every session and the per-request leg; later session requests get 404. */
  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.sweeper);
    await this.modern.close();
    await Promise.all([...this.sessions.keys()].map((id) => this.drop(id)));
  }
}

function callerOf(authInfo: AuthInfo | undefined): Caller {
  const caller = authInfo?.extra?.caller as Caller | undefined;
  // The server passes the resolved caller with every request; its absence is a wiring bug.
  if (!caller) throw new Error('an MCP request reached the handler without its caller');
  return caller;
}

/** The Node request as a Web `Request` without its body (the SDK gets that parsed). */
function toWebRequest(req: IncomingMessage, signal: AbortSignal): Request {
  const headers = new Headers();
  for (const [name, value] of Object.entries(req.headers)) {
    if (value === undefined) continue;
    for (const v of Array.isArray(value) ? value : [value]) headers.append(name, v);
  }
  return new Request(`http://${req.headers.host ?? 'localhost'}${req.url ?? '/mcp'}`, { method: req.method ?? 'GET', headers, signal });
}

/**
 * Writes a Web `Response` to the Node one. A JSON answer is sent whole, with its length, in one
 * write (streamed in pieces it costs a round of TCP segments per answer); an SSE stream is piped
 * with backpressure and stays open until either side ends it; a client that leaves cancels it.
 */
async function sendWebResponse(res: ServerResponse, response: Response): Promise<void> {
  const headers: Record<string, string> = {};
  response.headers.forEach((value, name) => {
    headers[name] = value;
  });
  if (response.body === null || !(headers['content-type'] ?? '').startsWith('text/event-stream')) {
    const body = response.body === null ? Buffer.alloc(0) : Buffer.from(await response.arrayBuffer());
    res.writeHead(response.status, { ...headers, 'content-length': String(body.length) });
    res.end(body);
    return;
  }
  res.writeHead(response.status, headers);
  const reader = response.body.getReader();
  const onClose = () => void reader.cancel().catch(() => undefined);
  res.once('close', onClose);
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      if (res.destroyed) break;
      if (!res.write(value)) {
        await new Promise<void>((resolve) => {
          const go = () => {
            res.off('drain', go);
            res.off('close', go);
            resolve();
          };
          res.once('drain', go);
          res.once('close', go);
        });
      }
    }
  } catch {
    // the stream was cancelled (the client left) or the transport closed it: nothing to send
  } finally {
    res.off('close', onClose);
    if (!res.writableEnded) res.end();
  }
}
