import { readFileSync } from 'node:fs';
import { Readable, type Writable } from 'node:stream';
import {
  INVALID_REQUEST,
  isJSONRPCNotification,
  isJSONRPCRequest,
  isJSONRPCResponse,
  type JSONRPCMessage,
  PARSE_ERROR,
  STDIO_DEFAULT_MAX_BUFFER_SIZE,
} from '@modelcontextprotocol/server';
import { serveStdio, StdioServerTransport } from '@modelcontextprotocol/server/stdio';
import { type Caller, deny } from '../core/auth/caller.js';
import { loadPrices } from '../core/economy/prices.js';
import { UsageError } from '../core/errors.js';
import { getAgent } from '../core/identity/agents.js';
import { buildMcpServer, InFlight } from '../core/mcp/server.js';
import type { McpContext } from '../core/mcp/tools.js';
import type { Store } from '../core/store/port.js';
import type { Invocation, Output } from './define.js';
import { loadConfig, withMemory } from './session.js';

/** How long shutdown waits for tool calls in flight before saying so on stderr. */
const DRAIN_WARN_MS = 5_000;

/**
 * Read at run time: importing package.json here would make the bundler move it into a chunk that
 * `sos --help` loads. Both src/commands/ and dist/chunks/ sit two levels below the package root.
 */
export function packageVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: unknown };
    return typeof pkg.version === 'string' ? pkg.version : '0.0.0';
  } catch {
    return '0.0.0';
  }
}

/** Longest log message: an error may quote a client's input, and input may be megabytes. */
const MAX_LOG_CHARS = 2_000;

const cut = (s: string, max: number) => (s.length > max ? `${s.slice(0, max - 1)}…` : s);

/** stdout carries only protocol, so every log line goes to stderr (JSON when not a terminal). */
function log(level: 'info' | 'warn' | 'error', text: string): void {
  const msg = cut(text, MAX_LOG_CHARS);
  const line = process.stderr.isTTY
    ? `sos mcp: ${msg}`
    : JSON.stringify({ time: new Date().toISOString(), level, component: 'mcp', msg });
  process.stderr.write(`${line}\n`);
}

/** `--agent` names the agent in local trust; with a token it may only confirm who the token is. */
async function servingAs(inv: Invocation, resolved: Caller, store: Store): Promise<Caller> {
  const requested = typeof inv.options.agent === 'string' ? inv.options.agent : undefined;
  let caller = resolved;
  if (requested !== undefined && requested !== caller.agent) {
    if (caller.via === 'token') {
      await deny(store, caller, `serving MCP as "${requested}"`, `is not allowed with a token of "${caller.agent}"`);
    }
    caller = { ...caller, agent: requested };
  }
  if (caller.agent === null) {
    throw new UsageError('sos mcp needs an agent to serve as', {
      hint: 'pass --agent <name> (or set SOS_AGENT), or give the agent\'s token in SOS_TOKEN',
    });
  }
  await getAgent(store, caller, caller.agent);
  return caller;
}

/** Longest line read from stdin: the bound the SDK's own read buffer has. */
const MAX_LINE_BYTES = STDIO_DEFAULT_MAX_BUFFER_SIZE;

const NEWLINE = Buffer.from('\n');

const isMessage = (value: unknown) => isJSONRPCRequest(value) || isJSONRPCNotification(value) || isJSONRPCResponse(value);

/**
 * stdin, read line by line before the SDK's transport sees it. The SDK drops a line that is not
 * JSON without a word and reports one that is JSON but not JSON-RPC only to `onerror`, so a client
 * that sent either waits for an answer that never comes. Here each such line is answered with the
 * JSON-RPC error (id null: no id can be read from it) through `refuse`, and only good lines reach
 * `lines`, the stream the transport reads. A line longer than `MAX_LINE_BYTES` is dropped (and
 * answered) instead of closing the connection, as the SDK's buffer limit would. Blank lines are
 * skipped, as the SDK skips them. `detach` stops reading `source`, so the process can exit.
 */
function screenLines(source: NodeJS.ReadableStream, lines: Readable, refuse: (code: number, message: string) => void): () => void {
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  let overlong = false;
  let ended = false;

  const take = (line: Buffer) => {
    const text = line.toString('utf8');
    if (text.trim() === '') return;
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (err) {
      refuse(PARSE_ERROR, `Parse error: ${cut(err instanceof Error ? err.message : String(err), 200)}`);
      return;
    }
    if (!isMessage(value)) {
      refuse(INVALID_REQUEST, 'Invalid Request: not a JSON-RPC 2.0 request, notification or response');
      return;
    }
    lines.push(Buffer.concat([line, NEWLINE]));
  };
  const onData = (chunk: Buffer | string) => {
    let rest = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    for (let end = rest.indexOf(0x0a); ; end = rest.indexOf(0x0a)) {
      const head = end === -1 ? rest : rest.subarray(0, end);
      if (!overlong && pendingBytes + head.length > MAX_LINE_BYTES) {
        pending = [];
        pendingBytes = 0;
        overlong = true;
      }
      if (end === -1) {
        if (!overlong) {
          pending.push(head);
          pendingBytes += head.length;
        }
        return;
      }
      rest = rest.subarray(end + 1);
      if (overlong) {
        overlong = false;
        refuse(INVALID_REQUEST, `Invalid Request: a line is at most ${MAX_LINE_BYTES} bytes; this one was dropped`);
        continue;
      }
      const line = pending.length > 0 ? Buffer.concat([...pending, head]) : head;
      pending = [];
      pendingBytes = 0;
      take(line);
    }
  };
  const onEnd = () => {
    if (ended) return;
    ended = true;
    lines.push(null);
  };
  const onError = (err: Error) => lines.destroy(err);
  source.on('data', onData);
  source.on('end', onEnd);
  source.on('close', onEnd);
  source.on('error', onError);
  return () => {
    source.off('data', onData);
    source.off('end', onEnd);
    source.off('close', onEnd);
    source.off('error', onError);
    source.pause();
  };
}

/** Serves until the client closes stdin (or the pipe breaks), SIGINT or SIGTERM. */
async function serve(inv: Invocation, ctx: McpContext, caller: Caller): Promise<void> {
  const inFlight = new InFlight();
  const shutdown = new AbortController();
  const version = packageVersion();
  const lines = new Readable({ read() {} });
  // The SDK's buffer bound is never reached: `screenLines` hands it one whole line at a time.
  const wire = new StdioServerTransport(lines, inv.stdout as Writable, { maxBufferSize: 2 * MAX_LINE_BYTES });
  const detach = screenLines(inv.stdin, lines, (code, message) => {
    // JSON-RPC answers an unreadable request with id null, which the SDK's types do not allow.
    const reply = { jsonrpc: '2.0', id: null, error: { code, message } } as unknown as JSONRPCMessage;
    log('warn', message);
    wire.send(reply).catch(() => {}); // the transport is closed: nobody is listening
  });
  const handle = serveStdio(
    () => buildMcpServer(ctx, caller, { version, inFlight, signal: shutdown.signal, onInternalError: (e) => log('error', e.message) }),
    { transport: wire, onerror: (e) => log('error', e.message) },
  );

  let stop = () => {};
  const stopped = new Promise<void>((resolve) => (stop = resolve));
  // serveStdio owns the transport's callbacks; chain onto its close handler to learn the end.
  const closeWire = wire.onclose;
  wire.onclose = () => {
    closeWire?.();
    stop();
  };
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    if (++signals > 1) {
      log('warn', `${signal} again: exiting without waiting for tool calls`);
      process.exit(1);
    }
    stop();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  // A stray console.log from any library would corrupt the protocol stream.
  const { log: consoleLog, info: consoleInfo, debug: consoleDebug } = console;
  console.log = console.info = console.debug = (...args: unknown[]) => console.error(...args);
  if ((inv.stdin as { isTTY?: boolean }).isTTY) log('info', `serving agent "${caller.agent}" of project "${caller.project}" over stdio; Ctrl-C stops`);

  try {
    await stopped;
    detach(); // nothing more is read: a closed transport would only buffer it
    shutdown.abort(); // a task_claim waiting for work gives up now
    await handle.close();
    const slow = setTimeout(() => log('warn', 'waiting for tool calls in flight to finish'), DRAIN_WARN_MS).unref();
    await inFlight.settled();
    clearTimeout(slow);
  } finally {
    detach();
    Object.assign(console, { log: consoleLog, info: consoleInfo, debug: consoleDebug });
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

export async function mcp(inv: Invocation): Promise<Output> {
  const agent = inv.options.agent;
  if (typeof agent === 'string' && inv.globals.as !== undefined && agent !== inv.globals.as) {
    throw new UsageError(`--agent "${agent}" and --as "${inv.globals.as}" name different agents`, { hint: 'give one of them' });
  }
  // A bad SOS_PRICES file is a usage error now, not at the first usage_report.
  const prices = loadPrices((await loadConfig(inv)).values.prices);
  // withMemory closes memory, then the bus, then the Store, once serving ends.
  return withMemory(inv, async ({ ctx, memory, caller, store }) => {
    const tasks = { store, bus: ctx.bus, maxTextBytes: ctx.maxMessageBytes };
    await serve(inv, { bus: ctx, tasks, memory, prices }, await servingAs(inv, caller, store));
    // Nothing is printed, even under --json: stdout belonged to the protocol.
    return { data: undefined, human: '', quiet: '' };
  });
}
