import { describe, expect, it } from 'vitest';
import { AuditLog, type AuditEntry } from '../../src/core/http/audit.js';
import { TOKEN_CACHE_MS } from '../../src/core/http/server.js';
import { call, httpWorld } from '../helpers/http.js';
import { ADAPTERS } from '../helpers/isolation.js';

/**
 * What the per-request savings of the HTTP server must not cost (bench/http.mjs measures them):
 * audit rows written with group commit are each stored before their `write` resolves, fewer
 * transactions than rows under concurrency, and a bad row loses only itself; through a real
 * daemon, every answered mutation of 50 concurrent clients has its audit row, and a token revoked
 * while the daemon trusts it from its cache is refused within TOKEN_CACHE_MS.
 */

const entry = (i: number, project = 'default'): AuditEntry => ({
  project,
  at: Date.now(),
  actor: 'kasra',
  tokenId: 'tok_x',
  role: 'agent',
  method: 'POST',
  path: '/v1/messages',
  action: 'messages.send',
  target: `m${i}`,
  status: 201,
  outcome: 'ok',
  requestId: `req_${i}`,
  remote: '127.0.0.1',
});

describe('the HTTP server per request', () => {
  for (const adapter of ADAPTERS) {
    it.skipIf(!adapter.available)(`[${adapter.name}] audit rows: group commit, each stored when its write resolves, a bad row loses only itself`, async (ctx) => {
      const store = await adapter.open(ctx);
      await store.projects.create('default');
      let transactions = 0;
      const sql = store.sql;
      // The driver itself, with its transactions counted.
      const counted = new Proxy(sql, {
        get(target, key) {
          if (key === 'transaction') {
            return (fn: Parameters<typeof sql.transaction>[0]) => {
              transactions += 1;
              return target.transaction(fn);
            };
          }
          const value = Reflect.get(target, key, target) as unknown;
          return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
        },
      });
      const log = new AuditLog(counted);
      const stored = async (target: string) => (await sql.one<{ n: number | string }>('SELECT COUNT(*) AS n FROM http_audit WHERE target = $1', [target]))!.n;
      const writes = Array.from({ length: 200 }, (_, i) =>
        log.write(entry(i)).then(async (id) => {
          // Resolved only once the row is committed: another reader sees it at once.
          expect(Number(await stored(`m${i}`)), `row ${i}`).toBe(1);
          return id;
        }),
      );
      const ids = await Promise.all(writes);
      expect(new Set(ids).size).toBe(200);
      expect(ids.every((id) => /^aud_[0-9a-z]{26}$/.test(id))).toBe(true);
      expect(transactions).toBeGreaterThan(0);
      expect(transactions).toBeLessThan(200);

      // A row that breaks a constraint (no such project) fails alone; its batch-mates are stored.
      const mixed = [log.write(entry(1_000)), log.write(entry(1_001, 'nowhere')), log.write(entry(1_002))];
      const outcomes = await Promise.allSettled(mixed);
      expect(outcomes.map((o) => o.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
      expect([Number(await stored('m1000')), Number(await stored('m1001')), Number(await stored('m1002'))]).toEqual([1, 0, 1]);
      await log.settled();
    });
  }

  it('through a real daemon: every answered send of 50 clients is audited; a revoked token is refused within the cache TTL', { timeout: 90_000 }, async (ctx) => {
    const w = await httpWorld(ctx);
    const sink = await w.token('sink');
    const tokens = await Promise.all(['s0', 's1', 's2', 's3', 's4'].map((a) => w.token(a)));
    const { url } = await w.serve({ env: { SOS_HTTP_RATE: '100000', SOS_HTTP_BURST: '100000', SOS_HTTP_CONCURRENCY: '1000' } });
    expect(sink).toMatch(/^sos_/);

    const answers = await Promise.all(
      Array.from({ length: 50 }, async (_, c) => {
        const mine: string[] = [];
        for (let i = 0; i < 8; i++) {
          const r = await call(`${url}/v1/messages`, { token: tokens[c % tokens.length]!, body: { to: 'sink', text: `load ${c}/${i}` } });
          expect(r.status, r.text).toBe(201);
          mine.push(r.headers.get('x-request-id')!);
        }
        return mine;
      }),
    );
    const requestIds = answers.flat();
    const store = await w.store();
    const rows = await store.sql.all<{ request_id: string; action: string; outcome: string }>("SELECT request_id, action, outcome FROM http_audit WHERE action = 'messages.send'");
    expect(rows).toHaveLength(400);
    expect(new Set(rows.map((r) => r.request_id))).toEqual(new Set(requestIds));
    expect(rows.every((r) => r.outcome === 'ok')).toBe(true);

    // Revoked by the CLI while the daemon holds the token in its cache: refused within the TTL.
    const created = (await w.run(['--json', 'tokens', 'create', '--agent', 's0'])).json<{ id: string; secret: string }>();
    expect((await call(`${url}/v1/whoami`, { token: created.secret })).status).toBe(200);
    expect((await w.run(['tokens', 'revoke', created.id])).code).toBe(0);
    const revokedAt = Date.now();
    let status = 200;
    while (status === 200 && Date.now() - revokedAt < TOKEN_CACHE_MS + 2_000) {
      status = (await call(`${url}/v1/whoami`, { token: created.secret })).status;
    }
    expect(status).toBe(401);
    expect(Date.now() - revokedAt).toBeLessThanOrEqual(TOKEN_CACHE_MS + 500);
    // Refusals are not cached: each one is recorded.
    const before = ((await store.security.count()) as Record<string, number>).bad_token ?? 0;
    for (let i = 0; i < 3; i++) expect((await call(`${url}/v1/whoami`, { token: created.secret })).status).toBe(401);
    expect(((await store.security.count()) as Record<string, number>).bad_token).toBe(before + 3);
  });
});
