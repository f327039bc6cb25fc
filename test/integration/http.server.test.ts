import { connect as tcp, type Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import { resolveConfig } from '../../src/core/config/resolve.js';
import { Daemon } from '../../src/core/daemon/daemon.js';
import { metricsHandler } from '../../src/core/http/metrics.js';
import { restHandler } from '../../src/core/http/rest.js';
import { call, httpWorld, INITIALIZE, MCP_HEADERS } from '../helpers/http.js';
import { ADAPTERS } from '../helpers/isolation.js';

/**
 * The daemon's HTTP server around its routes: tokens resolved as on the CLI (401, 403, counted
 * refusals), observers read-only on /v1, the body bound, the per-token rate and concurrency
 * limits, slow clients cut, the audit of /v1 mutations, health, and an ordered stop. Against a
 * real `sos daemon` process, except where the test needs short socket timeouts: there the same
 * Daemon runs in this process.
 */

/** The instructions of an MCP initialize name the agent the session serves. */
const servedAgent = (body: unknown) => /You are agent "([^"]+)"/.exec((body as { result?: { instructions?: string } }).result?.instructions ?? '')?.[1];

describe('the daemon HTTP server', () => {
  for (const adapter of ADAPTERS) {
    it.skipIf(!adapter.available)(`[${adapter.name}] resolves tokens as the CLI does, refuses and counts, keeps observers read-only, audits /v1 mutations`, { timeout: 60_000 }, async (ctx) => {
      const w = await httpWorld(ctx, adapter);
      const kasra = await w.token('kasra');
      const observer = await w.token('watcher', { role: 'observer' });
      const admin = await w.token('root', { role: 'admin' });
      const revoked = (await w.run(['--json', 'tokens', 'create', '--agent', 'kasra'])).json<{ id: string; secret: string }>();
      expect((await w.run(['tokens', 'revoke', revoked.id])).code).toBe(0);
      expect((await w.run(['projects', 'create', 'other'])).code).toBe(0);
      const { url, daemon } = await w.serve();
      const store = await w.store();
      const count = async (kind: string) => ((await store.security.count()) as Record<string, number>)[kind] ?? 0;

      // Health needs no token; every answer has a request id.
      const health = await call(`${url}/healthz`);
      expect(health).toMatchObject({ status: 200, body: { ok: true } });
      expect(health.headers.get('x-request-id')).toMatch(/^req_[0-9a-z]{26}$/);
      expect(await call(`${url}/readyz`)).toMatchObject({ status: 200, body: { ok: true, checks: { store: { ok: true }, bus: { ok: true }, lease: { ok: true } } } });

      // No token, a malformed header, an unknown and a revoked token: 401 with the CLI's error object.
      for (const path of ['/mcp', '/v1/tasks', '/metrics', '/nowhere']) {
        const none = await call(`${url}${path}`);
        expect(none.status, path).toBe(401);
        expect(none.body).toMatchObject({ error: { code: 'permission_denied', message: expect.stringMatching(/needs a token/) } });
        expect(none.headers.get('www-authenticate')).toBe('Bearer realm="sos"');
        expect(none.headers.get('x-request-id')).toMatch(/^req_/);
      }
      expect((await call(`${url}/v1/tasks`, { headers: { authorization: 'Basic a2FzcmE6cHc=' } })).status).toBe(401);
      const badBefore = await count('bad_token');
      const bad = await call(`${url}/v1/tasks`, { token: 'sos_notATokenAtAll' });
      expect(bad).toMatchObject({ status: 401, body: { error: { code: 'permission_denied', message: 'this token is not valid here' } } });
      expect((await call(`${url}/v1/tasks`, { token: revoked.secret })).body).toMatchObject({ error: { message: 'this token has been revoked' } });
      expect(await count('bad_token')).toBe(badBefore + 2);

      // A valid token: 404 for no route; X-Sos-Project of another project is refused and counted.
      expect(await call(`${url}/nowhere`, { token: kasra })).toMatchObject({ status: 404, body: { error: { code: 'not_found' } } });
      expect((await call(`${url}/v1/tasks`, { token: kasra })).status).toBe(200);
      const crossBefore = await count('cross_project');
      const cross = await call(`${url}/v1/tasks`, { token: kasra, headers: { 'x-sos-project': 'other' } });
      expect(cross).toMatchObject({ status: 403, body: { error: { code: 'permission_denied', message: 'this token belongs to project "default", not "other"' } } });
      expect(await count('cross_project')).toBe(crossBefore + 1);
      expect((await call(`${url}/v1/tasks`, { token: kasra, headers: { 'x-sos-project': 'default' } })).status).toBe(200);

      // X-Sos-Agent is --as: an agent token may not, an admin token may.
      const forbiddenBefore = await count('forbidden');
      const asOther = await call(`${url}/mcp`, { token: kasra, body: INITIALIZE, headers: { ...MCP_HEADERS, 'x-sos-agent': 'watcher' } });
      expect(asOther).toMatchObject({ status: 403, body: { error: { code: 'permission_denied', message: 'a agent token of "kasra" cannot act as "watcher"' } } });
      expect(await count('forbidden')).toBe(forbiddenBefore + 1);
      const asKasra = await call(`${url}/mcp`, { token: admin, body: INITIALIZE, headers: { ...MCP_HEADERS, 'x-sos-agent': 'kasra' } });
      expect(asKasra.status).toBe(200);
      expect(servedAgent(asKasra.body)).toBe('kasra');

      // Observers: GET answers, anything else on /v1 is refused before it runs, counted and audited.
      expect((await call(`${url}/v1/tasks`, { token: observer })).status).toBe(200);
      const observed = await call(`${url}/v1/messages`, { token: observer, body: { to: 'kasra', text: 'let me in' } });
      expect(observed).toMatchObject({ status: 403, body: { error: { code: 'permission_denied', message: 'POST /v1/messages is not allowed with an observer token' } } });
      expect(await count('forbidden')).toBe(forbiddenBefore + 2);
      expect((await w.run(['--as', 'kasra', '--json', 'inbox'])).json()).toMatchObject({ unread: [] });

      // A mutation by an agent: done, and audited with the route's action and target.
      const task = await call(`${url}/v1/tasks`, { token: kasra, body: { title: 'over REST' } });
      expect(task.status).toBe(201);
      const claimed = await call(`${url}/v1/tasks/claim`, { token: kasra, body: {} });
      expect(claimed).toMatchObject({ status: 200, body: { title: 'over REST', claimant: 'kasra' } });
      const rows = (await w.run(['--json', 'audit'])).json<{ actor: string; role: string; method: string; path: string; action: string; status: number; outcome: string; requestId: string }[]>();
      expect(rows.map((r) => [r.actor, r.role, r.method, r.path, r.status, r.outcome]).reverse()).toEqual([
        ['watcher', 'observer', 'POST', '/v1/messages', 403, 'permission_denied'],
        ['kasra', 'agent', 'POST', '/v1/tasks', 201, 'ok'],
        ['kasra', 'agent', 'POST', '/v1/tasks/claim', 200, 'ok'],
      ]);
      expect(rows[0]!.requestId).toBe(claimed.headers.get('x-request-id'));
      expect(rows[1]!.action).toBe('tasks.create');
      // The reads and the refusals before a caller existed left no row.
      expect(rows).toHaveLength(3);

      // `sos daemon status` names the address; /readyz fails on the check that fails (the lease
      // taken away), and the daemon, having lost its lease, stops.
      expect((await w.run(['daemon', 'status', '--json'])).json()).toMatchObject({ running: true, http: url });
      await store.sql.run('DELETE FROM daemon_lease');
      const unready = await call(`${url}/readyz`);
      expect(unready).toMatchObject({ status: 503, body: { ok: false, checks: { store: { ok: true }, bus: { ok: true }, lease: { ok: false, detail: 'another daemon holds the lease' } } } });
      expect(await daemon.exited).toEqual({ code: 0, signal: null });
    });
  }

  it('bounds bodies (413), rates (429 with Retry-After) and requests in flight per token; a long claim wait still works', { timeout: 60_000 }, async (ctx) => {
    const w = await httpWorld(ctx);
    // The address is judged before anything opens: beyond loopback needs --allow-remote.
    const remote = await w.run(['daemon', '--listen', '0.0.0.0:6070']);
    expect(remote.code).toBe(2);
    expect(remote.stderr).toMatch(/refusing to listen on 0\.0\.0\.0:6070: it is reachable from other machines/);
    expect((await w.run(['daemon', '--listen', 'everywhere'])).code).toBe(2);
    const off = await w.daemon(['--listen', 'off']);
    expect((await w.run(['daemon', 'status', '--json'])).json()).toMatchObject({ running: true, http: null });
    expect(await off.stop()).toEqual({ code: 0, signal: null });

    const kasra = await w.token('kasra');
    const codex = await w.token('codex');
    const boss = await w.token('boss', { add: false });
    const { url } = await w.serve({ env: { SOS_HTTP_MAX_BODY_BYTES: '2048', SOS_HTTP_RATE: '1', SOS_HTTP_BURST: '3', SOS_HTTP_CONCURRENCY: '2' } });

    // 413: declared too large (nothing read), and streamed past the bound without a length.
    const big = await call(`${url}/v1/messages`, { token: kasra, body: { to: 'codex', text: 'x'.repeat(4_000) } });
    expect(big).toMatchObject({ status: 413, body: { error: { code: 'usage', message: 'the request body is over 2048 bytes' } } });
    const chunks = new ReadableStream<Uint8Array>({
      start(c) {
        for (let i = 0; i < 8; i++) c.enqueue(new TextEncoder().encode('y'.repeat(512)));
        c.close();
      },
    });
    const streamed = await fetch(`${url}/v1/messages`, { method: 'POST', headers: { authorization: `Bearer ${codex}`, 'content-type': 'application/json' }, body: chunks, duplex: 'half' } as RequestInit);
    expect(streamed.status).toBe(413);
    expect((await w.run(['--as', 'codex', '--json', 'inbox'])).json()).toMatchObject({ unread: [] });

    // Rate: a declared-oversize body is refused before the token is looked at, so kasra has its
    // whole burst of three; the fourth waits. codex's bucket is its own.
    for (let i = 0; i < 3; i++) expect((await call(`${url}/v1/tasks`, { token: kasra })).status).toBe(200);
    const limited = await call(`${url}/v1/tasks`, { token: kasra });
    expect(limited).toMatchObject({ status: 429, body: { error: { code: 'unavailable', message: 'too many requests for this token' } } });
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect((await call(`${url}/v1/tasks`, { token: codex })).status).toBe(200);
    await new Promise((r) => setTimeout(r, 1_100));
    expect((await call(`${url}/v1/tasks`, { token: kasra })).status).toBe(200);

    // Concurrency: boss's two waiting claims hold its two slots; a third request is refused at
    // once, and the waits end on their own bound (2 s).
    const started = Date.now();
    const waits = [0, 1].map(() => call(`${url}/v1/tasks/claim`, { token: boss, body: { wait_seconds: 2 } }));
    await new Promise((r) => setTimeout(r, 300));
    const third = await call(`${url}/v1/peers`, { token: boss });
    expect(third).toMatchObject({ status: 429, body: { error: { message: 'too many requests in flight for this token' } } });
    for (const r of await Promise.all(waits)) expect(r).toMatchObject({ status: 409, body: { error: { code: 'conflict' } } });
    expect(Date.now() - started).toBeGreaterThanOrEqual(2_000);
  });

  it('SIGTERM while 50 clients send: each request is stored and answered, or refused with a status; none is half-applied', { timeout: 60_000 }, async (ctx) => {
    const w = await httpWorld(ctx);
    await w.token('kasra');
    const codex = await w.token('codex');
    const { daemon, url } = await w.serve({ env: { SOS_HTTP_RATE: '1000000', SOS_HTTP_BURST: '1000000', SOS_HTTP_CONCURRENCY: '64' } });
    const answered = new Map<string, number>();
    const failed: string[] = [];
    let stop = false;
    const client = async (c: number) => {
      for (let n = 0; !stop; n++) {
        const text = `c${c}-${n}`;
        try {
          const r = await call(`${url}/v1/messages`, { token: codex, body: { to: 'kasra', text } });
          answered.set(text, r.status);
          if (r.status !== 201) return;
        } catch {
          failed.push(text); // no answer: the connection was refused or closed before a request was read
          return;
        }
      }
    };
    const clients = Array.from({ length: 50 }, (_, c) => client(c));
    await new Promise((r) => setTimeout(r, 1_000));
    const exit = daemon.stop(10_000);
    await Promise.race([Promise.all(clients), new Promise((r) => setTimeout(r, 8_000))]);
    stop = true;
    expect(await exit).toEqual({ code: 0, signal: null });
    await Promise.all(clients);

    const statuses = new Set(answered.values());
    const stored = (await w.run(['--as', 'kasra', '--json', 'inbox', '--limit', '10000'])).json<{ unread: { text: string }[] }>().unread.map((m) => m.text);
    const created = [...answered].filter(([, status]) => status === 201).map(([text]) => text);
    console.info(`stop under load: ${created.length} sent, ${answered.size - created.length} refused with ${[...statuses].filter((s) => s !== 201).join(',') || 'no status'}, ${failed.length} not connected`);
    expect(created.length).toBeGreaterThan(50);
    // Exactly the answered sends are stored: nothing stored without its answer, nothing answered and lost.
    expect(stored.sort()).toEqual(created.sort());
    for (const status of statuses) expect([201, 503]).toContain(status);
  });

  it('cuts a client that trickles its headers or its body; stop finishes requests in flight and refuses new connections', { timeout: 60_000 }, async (ctx) => {
    const w = await httpWorld(ctx);
    const kasra = await w.token('kasra');
    const { values } = await resolveConfig({ env: { ...w.env, SOS_LISTEN: '127.0.0.1:0' }, flags: {} });
    const events: Record<string, unknown>[] = [];
    const daemon = await Daemon.start({ values, cwd: w.dir, log: (e) => events.push(e), httpRoutes: { rest: restHandler, metrics: metricsHandler }, httpTimeouts: { headersMs: 600, requestMs: 1_200, stopGraceMs: 5_000 } });
    ctx.onTestFinished(() => daemon.stop());
    const url = daemon.status().http!.url;
    const { port } = new URL(url);

    /** Opens a raw connection, writes `first`, then one byte of `trickle` every 150 ms; resolves when the server closes it. */
    const slow = (first: string, trickle: string) =>
      new Promise<{ ms: number; reply: string }>((resolve) => {
        const started = Date.now();
        const socket: Socket = tcp(Number(port), '127.0.0.1');
        let reply = '';
        let i = 0;
        const timer = setInterval(() => {
          if (i < trickle.length && socket.writable) socket.write(trickle[i++]!);
        }, 150);
        socket.on('connect', () => socket.write(first));
        socket.on('data', (d) => (reply += d.toString()));
        socket.on('error', () => undefined);
        socket.on('close', () => {
          clearInterval(timer);
          resolve({ ms: Date.now() - started, reply });
        });
      });
    const headers = await slow('GET /healthz HTTP/1.1\r\nHost: x\r\n', 'X-Slow: ' + 'a'.repeat(100));
    expect(headers.ms).toBeLessThan(3_000);
    expect(headers.reply).toMatch(/^HTTP\/1.1 408/);
    const body = await slow(`POST /v1/messages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${kasra}\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n{`, '"'.repeat(150));
    expect(body.ms).toBeLessThan(4_000);
    expect(body.reply).toMatch(/^HTTP\/1.1 408/);

    // A claim that waits longer than a request may take to arrive (1.2 s) still ends on its own bound.
    const began = Date.now();
    expect(await call(`${url}/v1/tasks/claim`, { token: kasra, body: { wait_seconds: 2 } })).toMatchObject({ status: 409, body: { error: { code: 'conflict' } } });
    expect(Date.now() - began).toBeGreaterThanOrEqual(2_000);

    // A claim waits for work; the daemon is told to stop meanwhile: the request is answered (the
    // wait ends: nothing to claim), then nothing new connects.
    const waiting = call(`${url}/v1/tasks/claim`, { token: kasra, body: { wait_seconds: 30 } });
    await new Promise((r) => setTimeout(r, 300));
    const sent = await call(`${url}/v1/messages`, { token: kasra, body: { to: 'kasra', text: 'before the stop' } });
    expect(sent.status).toBe(201);
    const stopped = daemon.stop();
    const answer = await waiting;
    expect(answer).toMatchObject({ status: 409, body: { error: { code: 'conflict' } } });
    await stopped;
    await expect(fetch(`${url}/healthz`)).rejects.toThrow();
    expect(events.map((e) => e.event)).toEqual(expect.arrayContaining(['http_listening', 'started', 'stopping', 'stopped']));
  });
});
