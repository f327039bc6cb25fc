import type { TestContext } from 'vitest';
import { openStore, parseStoreTarget } from '../../src/core/store/open.js';
import type { Store } from '../../src/core/store/port.js';
import { type DaemonProcess, type DaemonWorld, daemonWorld } from './daemon.js';
import { type AdapterFixture, ADAPTERS } from './isolation.js';

/**
 * A real `sos daemon` serving HTTP on a free loopback port (`--listen 127.0.0.1:0`), in a daemon
 * world of its own (test/helpers/daemon.ts): the URL comes from its `http_listening` event.
 */

export interface HttpWorld extends DaemonWorld {
  /** Creates a token for the agent (adding the agent first unless it exists); returns the secret. */
  token(agent: string, options?: { role?: 'agent' | 'admin' | 'observer'; add?: boolean; project?: string }): Promise<string>;
  serve(options?: { env?: Record<string, string>; args?: string[] }): Promise<{ daemon: DaemonProcess; url: string }>;
  /** A Store handle on the world's database (another process than the daemon), closed at the end. */
  store(): Promise<Store>;
}

export async function httpWorld(ctx: TestContext, adapter: AdapterFixture = ADAPTERS[0]!): Promise<HttpWorld> {
  const w = await daemonWorld(ctx, adapter);
  return {
    ...w,
    async token(agent, o = {}) {
      const project = o.project ? ['--project', o.project] : [];
      if (o.add !== false) {
        const added = await w.run([...project, 'agents', 'add', agent]);
        if (added.code !== 0 && !/already exists/.test(added.stderr)) throw new Error(`agents add ${agent}: ${added.stderr}`);
      }
      const r = await w.run([...project, 'tokens', 'create', '--agent', agent, ...(o.role ? ['--role', o.role] : []), '--quiet']);
      if (r.code !== 0) throw new Error(`tokens create ${agent}: ${r.stderr}`);
      return r.stdout.trim();
    },
    async serve(o = {}) {
      const daemon = await w.daemon(['--listen', '127.0.0.1:0', ...(o.args ?? [])], o.env ? { env: o.env } : {});
      const listening = await daemon.waitFor((e) => e.event === 'http_listening');
      return { daemon, url: String(listening.url) };
    },
    async store() {
      const store = await openStore({ target: parseStoreTarget(w.env.SOS_DB!), pgSchema: w.env.SOS_PG_SCHEMA ?? 'sos', busyTimeoutMs: 5_000 });
      ctx.onTestFinished(() => store.close());
      return store;
    },
  };
}

/** fetch with a bearer token and JSON in and out; the body is parsed when it is JSON. */
export async function call(
  url: string,
  options: { method?: string; token?: string; body?: unknown; headers?: Record<string, string> } = {},
): Promise<{ status: number; headers: Headers; body: unknown; text: string }> {
  const headers: Record<string, string> = { ...options.headers };
  if (options.token !== undefined) headers.authorization = `Bearer ${options.token}`;
  if (options.body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(url, {
    method: options.method ?? (options.body === undefined ? 'GET' : 'POST'),
    headers,
    ...(options.body !== undefined ? { body: typeof options.body === 'string' ? options.body : JSON.stringify(options.body) } : {}),
  });
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON: the text is the body
  }
  return { status: res.status, headers: res.headers, body, text };
}

/** The JSON-RPC initialize a 2025-era client opens a session with. */
export const INITIALIZE = {
  jsonrpc: '2.0',
  id: 1,
  method: 'initialize',
  params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'sos-test', version: '0.0.0' } },
};

export const MCP_HEADERS = { accept: 'application/json, text/event-stream' };
