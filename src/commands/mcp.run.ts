import { readFileSync } from 'node:fs';
import type { Readable, Writable } from 'node:stream';
import { serveStdio, StdioServerTransport } from '@modelcontextprotocol/server/stdio';
import { type Caller, deny } from '../core/auth/caller.js';
import { UsageError } from '../core/errors.js';
import { getAgent } from '../core/identity/agents.js';
import { buildMcpServer, InFlight } from '../core/mcp/server.js';
import type { McpContext } from '../core/mcp/tools.js';
import type { Store } from '../core/store/port.js';
import type { Invocation, Output } from './define.js';
import { withMemory } from './session.js';

/** How long shutdown waits for tool calls in flight before saying so on stderr. */
const DRAIN_WARN_MS = 5_000;

/**
 * Read at run time: importing package.json here would make the bundler move it into a chunk that
 * `sos --help` loads. Both src/commands/ and dist/chunks/ sit two levels below the package root.
 */
function packageVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: unknown };
    return typeof pkg.version === 'string' ? pkg.version : '0.0.0';
  } catch {
    return '0.0.0';
  }
}

/** stdout carries only protocol, so every log line goes to stderr (JSON when not a terminal). */
function log(level: 'info' | 'warn' | 'error', msg: string): void {
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

/** Serves until the client closes stdin (or the pipe breaks), SIGINT or SIGTERM. */
async function serve(inv: Invocation, ctx: McpContext, caller: Caller): Promise<void> {
  const inFlight = new InFlight();
  const shutdown = new AbortController();
  const version = packageVersion();
  const wire = new StdioServerTransport(inv.stdin as Readable, inv.stdout as Writable);
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
    shutdown.abort(); // a task_claim waiting for work gives up now
    await handle.close();
    const slow = setTimeout(() => log('warn', 'waiting for tool calls in flight to finish'), DRAIN_WARN_MS).unref();
    await inFlight.settled();
    clearTimeout(slow);
  } finally {
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
  // withMemory closes memory, then the bus, then the Store, once serving ends.
  return withMemory(inv, async ({ ctx, memory, caller, store }) => {
    const tasks = { store, bus: ctx.bus, maxTextBytes: ctx.maxMessageBytes };
    await serve(inv, { bus: ctx, tasks, memory }, await servingAs(inv, caller, store));
    // Nothing is printed, even under --json: stdout belonged to the protocol.
    return { data: undefined, human: '', quiet: '' };
  });
}
