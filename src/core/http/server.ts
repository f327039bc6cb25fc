import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { STDIO_DEFAULT_MAX_BUFFER_SIZE } from '@modelcontextprotocol/server';
import { type Caller, deny, resolveCaller } from '../auth/caller.js';
import { TokenCache } from '../auth/token-cache.js';
import { type ErrorCode, PermissionDenied, toSosError, Unavailable } from '../errors.js';
import { newId } from '../ids.js';
import { InFlight } from '../mcp/server.js';
import { type AuditEntry, AuditLog, auditCaller, isMutatingTool } from './audit.js';
import { ConcurrencyLimiter, type ListenAddress, maxBodyBytes, RateLimiter } from './limits.js';
import { McpHttp, type McpRequestFacts } from './mcp-http.js';
import { errorBody, errorReply, HTTP_STATUS } from './status.js';
import type { HttpDeps, HttpHandler, HttpReply, HttpRequest } from './types.js';

/**
 * The daemon's HTTP server: Node's own `http` server, no framework. It owns everything a route
 * must not have to think about: the socket timeouts (a slow client is cut), the request id, the
 * body bound, authentication (the bearer token resolved by `resolveCaller`, exactly as the CLI
 * resolves SOS_TOKEN), the per-token rate and concurrency limits, the audit row of each mutating
 * request, and an ordered stop. Routes: `/healthz` and `/readyz` (no token), `/mcp`
 * (mcp-http.ts), `/metrics` and `/v1/…` (route modules behind the contract of types.ts).
 */

export interface ReadyCheck {
  ok: boolean;
  detail?: string;
}

export interface HttpServerOptions {
  deps: HttpDeps;
  address: ListenAddress;
  version: string;
  /** `/readyz`: each named check of the backends and the lease. */
  ready: () => Promise<Record<string, ReadyCheck>>;
  /** Route modules; a missing one answers 404. */
  routes?: { rest?: HttpHandler; metrics?: HttpHandler };
  log: (event: Record<string, unknown>) => void;
  timeouts?: Partial<HttpTimeouts>;
  /** How long a valid token is trusted before it is looked up again; TOKEN_CACHE_MS unless set. */
  tokenCacheMs?: number;
}

export interface HttpTimeouts {
  /** The whole header block must arrive within this (slow-loris bound). */
  headersMs: number;
  /** The whole request, headers and body, must arrive within this. */
  requestMs: number;
  /** An idle keep-alive connection is closed after this. */
  keepAliveMs: number;
  /** Stop waits this long for requests in flight before closing their connections. */
  stopGraceMs: number;
}

export const DEFAULT_TIMEOUTS: HttpTimeouts = { headersMs: 10_000, requestMs: 30_000, keepAliveMs: 5_000, stopGraceMs: 10_000 };

/**
 * How long a valid token is taken on trust before it is looked up again: the longest a revoked
 * token still works here after `sos tokens revoke`.
 */
export const TOKEN_CACHE_MS = 1_000;

/** Paths answered without a token. */
const HEALTH = new Set(['/healthz', '/readyz']);
/** How long one readiness check may take before it counts as failed. */
const READY_CHECK_MS = 2_000;
/** Readable, non-mutating methods. */
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

const json = (status: number, body: unknown, headers: Record<string, string> = {}): HttpReply => ({ status, body, headers });

/** A refusal of the HTTP layer itself, in the CLI's error object. */
function refusal(status: number, code: ErrorCode, message: string, hint?: string, headers: Record<string, string> = {}): HttpReply {
  return json(status, { error: { code, message, ...(hint ? { hint } : {}) } }, headers);
}

class BodyTooLarge extends Error {}

/** Reads the body up to `max` bytes; past it, stops reading and throws BodyTooLarge. */
function readBody(req: IncomingMessage, max: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > max) return Promise.reject(new BodyTooLarge());
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > max) {
        req.off('data', onData);
        req.pause();
        reject(new BodyTooLarge());
        return;
      }
      chunks.push(chunk);
    };
    req.on('data', onData);
    req.once('end', () => resolve(Buffer.concat(chunks)));
    req.once('error', reject);
    req.once('aborted', () => reject(new Error('the client went away')));
  });
}

function bearer(req: IncomingMessage): string | undefined {
  const header = req.headers.authorization;
  if (header === undefined) return undefined;
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return match ? match[1] : '';
}

const single = (v: string | string[] | undefined) => (Array.isArray(v) ? v[0] : v);

export class HttpServer {
  private readonly server: Server;
  private readonly mcp: McpHttp;
  private readonly rate: RateLimiter;
  private readonly concurrency: ConcurrencyLimiter;
  private readonly bodyMax: number;
  private readonly inFlightTools = new InFlight();
  private readonly tokens: TokenCache;
  private readonly auditLog: AuditLog;
  private readonly shutdown = new AbortController();
  private readonly timeouts: HttpTimeouts;
  /** Requests being answered (not counting open MCP streams, which end when their session does). */
  private active = 0;
  private idle: (() => void) | null = null;
  private stopping: Promise<void> | null = null;
  private readonly sockets = new Set<Socket>();
  private bound: { host: string; port: number } | null = null;

  private constructor(private readonly options: HttpServerOptions) {
    const v = options.deps.values;
    this.timeouts = { ...DEFAULT_TIMEOUTS, ...options.timeouts };
    this.rate = new RateLimiter(v.httpRate, v.httpBurst);
    this.concurrency = new ConcurrencyLimiter(v.httpConcurrency);
    this.bodyMax = maxBodyBytes(v, STDIO_DEFAULT_MAX_BUFFER_SIZE);
    const store = options.deps.store;
    this.tokens = new TokenCache((hash) => store.tokens.findByHash(hash), options.tokenCacheMs ?? TOKEN_CACHE_MS);
    this.auditLog = new AuditLog(store.sql);
    this.mcp = new McpHttp({
      ctx: { bus: options.deps.bus, tasks: options.deps.tasks, memory: options.deps.memory, ...(options.deps.prices ? { prices: options.deps.prices } : {}) },
      store: options.deps.store,
      version: options.version,
      maxSessions: v.mcpSessions,
      idleMs: v.mcpSessionIdleMs,
      maxBodyBytes: this.bodyMax,
      inFlight: this.inFlightTools,
      signal: this.shutdown.signal,
      onToolCall: (call) => this.auditTool(call),
      onInternalError: (e) => options.log({ event: 'http_error', route: '/mcp', error: e.message.slice(0, 2_000) }),
    });
    this.server = createServer(
      {
        headersTimeout: this.timeouts.headersMs,
        requestTimeout: this.timeouts.requestMs,
        keepAliveTimeout: this.timeouts.keepAliveMs,
        // Node checks the two timeouts above on this period; a shorter one cuts a slow client sooner.
        connectionsCheckingInterval: Math.min(1_000, this.timeouts.headersMs),
        maxHeaderSize: 16_384,
      },
      (req, res) => void this.serve(req, res),
    );
    this.server.on('connection', (socket: Socket) => {
      this.sockets.add(socket);
      socket.once('close', () => this.sockets.delete(socket));
    });
    this.server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
      // A malformed or timed-out request: answer it if the socket still can, then close it.
      if (socket.writable && !socket.destroyed) {
        const status = err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? '408 Request Timeout' : err.code === 'HPE_HEADER_OVERFLOW' ? '431 Request Header Fields Too Large' : '400 Bad Request';
        socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
      }
      socket.destroy();
    });
  }

  /** Listens, or throws Unavailable naming the address (in use, not permitted). */
  static async start(options: HttpServerOptions): Promise<HttpServer> {
    const s = new HttpServer(options);
    await new Promise<void>((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException) => {
        reject(
          new Unavailable(`cannot listen on ${options.address.host}:${options.address.port}: ${err.code ?? err.message}`, {
            hint: err.code === 'EADDRINUSE' ? 'another process holds the port: pick another with --listen host:port (or SOS_LISTEN), or --listen off' : 'check the address, or pass --listen off',
          }),
        );
      };
      s.server.once('error', onError);
      s.server.listen({ host: options.address.host, port: options.address.port }, () => {
        s.server.off('error', onError);
        resolve();
      });
    });
    const a = s.server.address() as AddressInfo;
    s.bound = { host: a.address, port: a.port };
    s.server.on('error', (err) => options.log({ event: 'http_error', error: String(err) }));
    return s;
  }

  /** The address bound, e.g. `http://127.0.0.1:6070`. */
  get url(): string {
    const { host, port } = this.bound!;
    return `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
  }

  get address(): { host: string; port: number } {
    return { ...this.bound! };
  }

  private async serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const requestId = newId('req');
    res.setHeader('x-request-id', requestId);
    this.active += 1;
    let counted = true;
    // An MCP GET is a stream that lasts as long as its session: it is not a request to wait for.
    const detach = () => {
      if (!counted) return;
      counted = false;
      this.active -= 1;
      if (this.active === 0) this.idle?.();
    };
    try {
      await this.route(req, res, requestId, detach);
    } catch (err) {
      const error = toSosError(err);
      if (error.code === 'internal') this.options.log({ event: 'http_error', path: req.url?.slice(0, 200), request: requestId, error: error.message.slice(0, 2_000) });
      if (!res.headersSent) this.write(res, req, { status: HTTP_STATUS[error.code], body: errorBody(error) });
      else if (!res.writableEnded) res.end();
    } finally {
      detach();
    }
  }

  private write(res: ServerResponse, req: IncomingMessage, reply: HttpReply): void {
    if (res.headersSent) return;
    const raw = typeof reply.body === 'string';
    const payload = reply.body === undefined ? '' : raw ? (reply.body as string) : JSON.stringify(reply.body);
    const headers: Record<string, string | number> = {
      'content-type': reply.contentType ?? (raw ? 'text/plain; charset=utf-8' : 'application/json'),
      'content-length': Buffer.byteLength(payload),
      ...reply.headers,
    };
    if (this.stopping) headers.connection = 'close';
    res.writeHead(reply.status, headers);
    res.end(req.method === 'HEAD' ? undefined : payload);
  }

  private async route(req: IncomingMessage, res: ServerResponse, requestId: string, detach: () => void): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://sos.invalid');
    const path = url.pathname;
    const method = req.method ?? 'GET';
    if (this.stopping) {
      this.write(res, req, refusal(503, 'unavailable', 'the daemon is stopping', 'retry against the next daemon', { 'retry-after': '1' }));
      return;
    }
    if (HEALTH.has(path)) {
      this.write(res, req, path === '/healthz' ? json(200, { ok: true }) : await this.readiness());
      return;
    }
    // The body bound is checked before anything else is looked up: a declared oversize body is
    // refused without reading it.
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > this.bodyMax) {
      this.tooLarge(req, res);
      return;
    }
    const token = bearer(req);
    if (token === undefined || token === '') {
      this.write(
        res,
        req,
        refusal(401, 'permission_denied', token === '' ? 'the Authorization header is not "Bearer <token>"' : 'this request needs a token: Authorization: Bearer <sos token>', 'an admin makes one with `sos tokens create --agent <name>`', {
          'www-authenticate': 'Bearer realm="sos"',
        }),
      );
      return;
    }
    let caller: Caller;
    try {
      caller = await this.authenticate(req, token);
    } catch (err) {
      // Not a valid token: authentication failed (401). Valid but not for this: forbidden (403).
      if (err instanceof AuthFailed) this.write(res, req, { status: 401, body: errorBody(err.cause), headers: { 'www-authenticate': 'Bearer realm="sos", error="invalid_token"' } });
      else this.write(res, req, errorReply(err));
      return;
    }
    const key = caller.tokenId ?? 'local';
    const allowed = this.rate.take(key);
    if (!allowed.ok) {
      this.write(res, req, refusal(429, 'unavailable', 'too many requests for this token', `wait ${allowed.retryAfterSec}s (the limit is SOS_HTTP_RATE a second, SOS_HTTP_BURST at once)`, { 'retry-after': String(allowed.retryAfterSec) }));
      return;
    }
    const release = this.concurrency.enter(key);
    if (release === null) {
      this.write(res, req, refusal(429, 'unavailable', 'too many requests in flight for this token', 'wait for your other requests to finish (SOS_HTTP_CONCURRENCY)', { 'retry-after': '1' }));
      return;
    }
    try {
      if (path === '/mcp' && method === 'GET') {
        // The session's notification stream: it holds no slot of the token's concurrency.
        release();
        detach();
      }
      await this.authenticated(req, res, { requestId, caller, path, method, query: url.searchParams });
    } finally {
      release();
    }
  }

  /** Bearer token, then the optional `X-Sos-Project` (explicit project) and `X-Sos-Agent` (`--as`). */
  private async authenticate(req: IncomingMessage, token: string): Promise<Caller> {
    const store = this.options.deps.store;
    const project = single(req.headers['x-sos-project']);
    const agent = single(req.headers['x-sos-agent']);
    const find = (hash: string) => this.tokens.findByHash(hash);
    let caller: Caller;
    try {
      caller = await resolveCaller(store, { token, project: this.options.deps.values.project, projectExplicit: false, agent: undefined }, find);
    } catch (err) {
      throw err instanceof PermissionDenied ? new AuthFailed(err) : err;
    }
    if (project === undefined && agent === undefined) return caller;
    // The token is valid: what it asks for beyond itself is judged (and refusals counted) as on the CLI.
    return resolveCaller(store, { token, project: project ?? caller.project, projectExplicit: project !== undefined, agent }, find);
  }

  private async authenticated(
    req: IncomingMessage,
    res: ServerResponse,
    r: { requestId: string; caller: Caller; path: string; method: string; query: URLSearchParams },
  ): Promise<void> {
    const { caller, path, method, requestId } = r;
    const remote = req.socket.remoteAddress ?? null;
    const isRest = path === '/v1' || path.startsWith('/v1/');
    if (path !== '/mcp' && path !== '/metrics' && !isRest) {
      this.write(res, req, refusal(404, 'not_found', `no route ${method} ${path.slice(0, 200)}`, 'the daemon serves /mcp, /v1/…, /metrics, /healthz and /readyz'));
      return;
    }
    let body: unknown;
    if (!SAFE_METHODS.has(method) && method !== 'DELETE') {
      let raw: Buffer;
      try {
        raw = await readBody(req, this.bodyMax);
      } catch (err) {
        if (err instanceof BodyTooLarge) {
          this.tooLarge(req, res);
          return;
        }
        throw err;
      }
      if (raw.length > 0) {
        try {
          body = JSON.parse(raw.toString('utf8'));
        } catch {
          const reply = path === '/mcp' ? json(400, { jsonrpc: '2.0', error: { code: -32_700, message: 'Parse error: the body is not JSON' }, id: null }) : refusal(400, 'usage', 'the request body is not JSON');
          this.write(res, req, reply);
          return;
        }
      }
    }
    if (path === '/mcp') {
      await this.mcp.handle(req, res, body, caller, { requestId, remote, method, path });
      return;
    }
    const handler = path === '/metrics' ? this.options.routes?.metrics : this.options.routes?.rest;
    const mutating = !SAFE_METHODS.has(method);
    let reply: HttpReply;
    if (handler === undefined) {
      reply = refusal(404, 'not_found', `${path === '/metrics' ? '/metrics' : 'the /v1 API'} is not served by this daemon`);
    } else if (isRest && mutating && caller.role === 'observer') {
      reply = await deny(this.options.deps.store, caller, `${method} ${path.slice(0, 200)}`, 'is not allowed with an observer token').catch((err: unknown) => errorReply(err));
    } else {
      const abort = new AbortController();
      // Only a client that leaves before its answer aborts the work: aborting after every answer
      // built a DOMException per request for nobody.
      res.once('close', () => {
        if (!res.writableFinished) abort.abort();
      });
      const onStop = () => abort.abort();
      this.shutdown.signal.addEventListener('abort', onStop, { once: true });
      const request: HttpRequest = { method, path, query: r.query, body, caller, requestId, signal: abort.signal };
      try {
        reply = await handler(this.options.deps, request);
      } catch (err) {
        const error = toSosError(err);
        if (error.code === 'internal') this.options.log({ event: 'http_error', path: path.slice(0, 200), request: requestId, error: error.message.slice(0, 2_000) });
        reply = errorReply(error);
      } finally {
        this.shutdown.signal.removeEventListener('abort', onStop);
      }
    }
    if (isRest && (mutating || reply.audit)) await this.auditRest(r, remote, reply);
    this.write(res, req, reply);
  }

  private tooLarge(req: IncomingMessage, res: ServerResponse): void {
    // The rest of the body is not read: the connection closes after the answer.
    res.setHeader('connection', 'close');
    this.write(res, req, refusal(413, 'usage', `the request body is over ${this.bodyMax} bytes`, 'send less (SOS_HTTP_MAX_BODY_BYTES is the bound)'));
    res.once('finish', () => req.socket.destroySoon?.());
  }

  private async auditRest(r: { requestId: string; caller: Caller; path: string; method: string }, remote: string | null, reply: HttpReply): Promise<void> {
    const error = (reply.body as { error?: { code?: string } } | undefined)?.error;
    await this.audit({
      ...auditCaller(r.caller),
      at: Date.now(),
      method: r.method,
      path: r.path,
      action: reply.audit?.action ?? `${r.method.toLowerCase()} ${r.path}`,
      target: reply.audit?.target ?? null,
      status: reply.status,
      outcome: reply.status < 400 ? 'ok' : typeof error?.code === 'string' ? error.code : `http_${reply.status}`,
      requestId: r.requestId,
      remote,
    });
  }

  /** An MCP tool call that changes something: one row, with the HTTP request that carried it. */
  private async auditTool(call: { tool: string; outcome: 'ok' | ErrorCode; request: McpRequestFacts | undefined; caller: Caller | undefined }): Promise<void> {
    if (!isMutatingTool(call.tool) || call.request === undefined || call.caller === undefined) return;
    await this.audit({
      ...auditCaller(call.caller),
      at: Date.now(),
      method: call.request.method,
      path: call.request.path,
      action: `mcp.${call.tool}`,
      target: null,
      // Tool errors travel inside a 200 answer, as MCP has them.
      status: 200,
      outcome: call.outcome,
      requestId: call.request.requestId,
      remote: call.request.remote,
    });
  }

  private async audit(entry: AuditEntry): Promise<void> {
    try {
      await this.auditLog.write(entry);
    } catch (err) {
      // The answer still goes out; a lost audit row is logged, loudly.
      this.options.log({ event: 'audit_failed', request: entry.requestId, action: entry.action, error: String(err).slice(0, 500) });
    }
  }

  private async readiness(): Promise<HttpReply> {
    let checks: Record<string, ReadyCheck>;
    try {
      checks = await withTimeout(this.options.ready(), READY_CHECK_MS);
    } catch (err) {
      checks = { ready: { ok: false, detail: err instanceof Error ? err.message : String(err) } };
    }
    const ok = Object.values(checks).every((c) => c.ok);
    return json(ok ? 200 : 503, { ok, checks });
  }

  /**
   * Stops in order: no new connection is accepted and idle ones close; requests in flight get up
   * to `stopGraceMs` to finish (a waiting task_claim is told to stop waiting); new requests on
   * open connections are refused with 503; then the MCP sessions close and any connection left is
   * cut. Idempotent.
   */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
      this.server.closeIdleConnections();
      this.shutdown.abort();
      const drained = this.active === 0 ? Promise.resolve() : new Promise<void>((resolve) => (this.idle = resolve));
      let timer: NodeJS.Timeout | undefined;
      const late = await Promise.race([drained.then(() => false), new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), this.timeouts.stopGraceMs)))]);
      clearTimeout(timer);
      if (late) this.options.log({ event: 'http_stop_slow', detail: `${this.active} requests still open after ${this.timeouts.stopGraceMs} ms: closing them` });
      await this.mcp.close();
      await this.inFlightTools.settled();
      await this.auditLog.settled();
      this.server.closeAllConnections();
      for (const socket of this.sockets) socket.destroy();
      await closed;
    })();
    return this.stopping;
  }
}

/** resolveCaller refused the token itself (unknown, revoked): 401, not 403. */
class AuthFailed extends Error {
  constructor(override readonly cause: PermissionDenied) {
    super(cause.message);
  }
}

function withTimeout<T>(work: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    work.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
    }),
  ]);
}

