import { describe, expect, it } from 'vitest';
import { hashTokenSecret, newTokenSecret, tokenPrefix } from '../../src/core/auth/secrets.js';
import { Conflict, NotFound, type SosError, Unavailable } from '../../src/core/errors.js';
import { newId } from '../../src/core/ids.js';
import type { Store } from '../../src/core/store/port.js';
import { ADAPTERS } from '../helpers/isolation.js';

/** One suite, run unchanged against every Store adapter. */

async function rejectsWith(
  promise: Promise<unknown>,
  type: new (...args: never[]) => SosError,
  message: RegExp,
) {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(type);
  expect((err as Error).message).toMatch(message);
}

async function seed(store: Store) {
  await store.projects.create('acme');
  await store.agents.add({
    project: 'acme',
    name: 'kasra',
    kind: 'claude',
    role: 'coordinator',
    capabilities: ['code', 'seo', 'code'],
    session: 'tmux:kasra',
  });
  await store.agents.add({
    project: 'acme',
    name: 'codex',
    kind: 'codex',
    role: 'worker',
    capabilities: [],
    session: null,
  });
}

function token(agent: string, project = 'acme') {
  const secret = newTokenSecret();
  return {
    secret,
    record: {
      id: newId('tok'),
      project,
      agent,
      role: 'agent' as const,
      prefix: tokenPrefix(secret),
      hash: hashTokenSecret(secret),
    },
  };
}

describe.each(ADAPTERS)('Store conformance: $name', (adapter) => {
  describe.skipIf(!adapter.available)(adapter.name, () => {
    it('reports not-initialised before migrating, then migrates once and is idempotent', async (ctx) => {
      const store = await adapter.open(ctx, { migrate: false });
      await rejectsWith(store.assertReady(), Unavailable, /not initialised/);
      const before = await store.migrationStatus();
      expect(before.applied).toEqual([]);
      expect(before.pending.map((p) => p.version)).toContain(1);

      const first = await store.migrate();
      expect(first.applied).toEqual(before.pending.map((p) => p.version));
      const second = await store.migrate();
      expect(second.applied).toEqual([]);
      const after = await store.migrationStatus();
      expect(after.pending).toEqual([]);
      expect(after.drifted).toEqual([]);
      expect(after.applied.map((a) => a.version)).toEqual(first.applied);
      await store.assertReady();
    });

    // SQLite's equivalent runs as separate processes in cli.concurrency.test.ts.
    if (adapter.inProcessConcurrency)
      it('runs concurrent migrations from several connections without applying a file twice', async (ctx) => {
        const handles = await adapter.handles(ctx, 4);
        const results = await Promise.all(handles.map((h) => h.migrate()));
        const appliedTotal = results.flatMap((r) => r.applied);
        // Every version applied by exactly one of the racing handles.
        expect(appliedTotal.sort((a, b) => Number(a) - Number(b))).toEqual(
          (await handles[0]!.migrationStatus()).applied.map((a) => a.version),
        );
        for (const h of handles) expect((await h.migrationStatus()).pending).toEqual([]);
      });

    it('keeps capabilities deduplicated and sorted, and lists agents by name', async (ctx) => {
      const store = await adapter.open(ctx);
      await seed(store);
      const kasra = await store.agents.get('acme', 'kasra');
      expect(kasra).toMatchObject({
        project: 'acme',
        name: 'kasra',
        kind: 'claude',
        role: 'coordinator',
        session: 'tmux:kasra',
      });
      expect(kasra?.capabilities).toEqual(['code', 'seo']);
      expect((await store.agents.list('acme')).map((a) => a.name)).toEqual(['codex', 'kasra']);
      expect(await store.agents.get('acme', 'nobody')).toBeUndefined();
      expect(await store.agents.list('other')).toEqual([]);
    });

    it('refuses duplicates with Conflict and unknown references with NotFound, writing nothing', async (ctx) => {
      const store = await adapter.open(ctx);
      await seed(store);
      await rejectsWith(store.projects.create('acme'), Conflict, /project "acme" already exists/);
      await rejectsWith(
        store.agents.add({
          project: 'acme',
          name: 'kasra',
          kind: 'shell',
          role: 'worker',
          capabilities: ['x'],
          session: null,
        }),
        Conflict,
        /agent "kasra" already exists/,
      );
      // The failed add must not have touched kasra's capabilities (one transaction).
      expect((await store.agents.get('acme', 'kasra'))?.capabilities).toEqual(['code', 'seo']);
      await rejectsWith(
        store.agents.add({
          project: 'ghost',
          name: 'a',
          kind: 'shell',
          role: 'worker',
          capabilities: ['x'],
          session: null,
        }),
        NotFound,
        /project "ghost" does not exist/,
      );
      expect(await store.agents.list('ghost')).toEqual([]);
      await store.squads.create('acme', 'core', null);
      await rejectsWith(store.squads.create('acme', 'core', null), Conflict, /squad "core" already exists/);
      await rejectsWith(store.squads.join('acme', 'core', 'nobody'), NotFound, /does not exist/);
      await rejectsWith(
        store.tokens.create(token('nobody').record),
        NotFound,
        /agent "nobody" does not exist/,
      );
    });

    it('keeps the same agent and squad names apart across projects', async (ctx) => {
      const store = await adapter.open(ctx);
      await seed(store);
      await store.projects.create('beta');
      await store.agents.add({
        project: 'beta',
        name: 'kasra',
        kind: 'gemini',
        role: 'worker',
        capabilities: [],
        session: null,
      });
      await store.squads.create('acme', 'core', 'acme core');
      await store.squads.create('beta', 'core', 'beta core');
      await store.squads.join('beta', 'core', 'kasra');
      expect((await store.agents.get('acme', 'kasra'))?.kind).toBe('claude');
      expect((await store.agents.get('beta', 'kasra'))?.kind).toBe('gemini');
      expect((await store.squads.get('acme', 'core'))?.members).toEqual([]);
      expect((await store.squads.get('beta', 'core'))?.members).toEqual(['kasra']);
    });

    it('stores tokens by hash only, finds them by hash, lists and revokes by id or prefix', async (ctx) => {
      const store = await adapter.open(ctx);
      await seed(store);
      const a = token('kasra');
      const b = token('codex');
      const created = await store.tokens.create(a.record);
      await store.tokens.create(b.record);
      expect(created).toMatchObject({ project: 'acme', agent: 'kasra', role: 'agent', revokedAt: null });
      expect(JSON.stringify(created)).not.toContain(a.secret);

      const found = await store.tokens.findByHash(hashTokenSecret(a.secret));
      expect(found).toMatchObject({ id: a.record.id, agent: 'kasra', projectExists: true });
      expect(found?.lastUsedAt).toBeGreaterThan(0);
      expect(await store.tokens.findByHash(hashTokenSecret('sos_wrong'))).toBeUndefined();

      expect((await store.tokens.list('acme')).map((t) => t.agent).sort()).toEqual(['codex', 'kasra']);
      expect(await store.tokens.list('beta')).toEqual([]);

      const revoked = await store.tokens.revoke('acme', a.record.id);
      expect(revoked?.revokedAt).toBeGreaterThan(0);
      expect((await store.tokens.findByHash(hashTokenSecret(a.secret)))?.revokedAt).toBe(revoked?.revokedAt);
      expect((await store.tokens.revoke('acme', b.record.prefix))?.id).toBe(b.record.id);
      expect(await store.tokens.revoke('acme', 'tok_nothing')).toBeUndefined();
      // A token of another project is not reachable by id from this one.
      expect(await store.tokens.revoke('beta', a.record.id)).toBeUndefined();
    });

    it('manages squad membership idempotently and cascades when an agent is removed', async (ctx) => {
      const store = await adapter.open(ctx);
      await seed(store);
      await store.squads.create('acme', 'core', 'the core team');
      await store.squads.create('acme', 'seo', null);
      expect(await store.squads.join('acme', 'core', 'kasra')).toBe(true);
      expect(await store.squads.join('acme', 'core', 'kasra')).toBe(false);
      expect(await store.squads.join('acme', 'core', 'codex')).toBe(true);
      expect(await store.squads.join('acme', 'seo', 'kasra')).toBe(true);
      expect((await store.squads.get('acme', 'core'))?.members).toEqual(['codex', 'kasra']);
      expect((await store.squads.list('acme')).map((s) => [s.name, s.members])).toEqual([
        ['core', ['codex', 'kasra']],
        ['seo', ['kasra']],
      ]);
      expect(await store.squads.leave('acme', 'seo', 'kasra')).toBe(true);
      expect(await store.squads.leave('acme', 'seo', 'kasra')).toBe(false);

      const t = token('kasra');
      await store.tokens.create(t.record);
      expect(await store.agents.remove('acme', 'kasra')).toBe(true);
      expect(await store.agents.remove('acme', 'kasra')).toBe(false);
      expect((await store.squads.get('acme', 'core'))?.members).toEqual(['codex']);
      expect(await store.tokens.findByHash(t.record.hash)).toBeUndefined();
    });

    it('records refused attempts and counts them per project', async (ctx) => {
      const store = await adapter.open(ctx);
      await seed(store);
      await store.security.record({
        project: 'acme',
        kind: 'cross_project',
        actor: 'beta/x',
        detail: 'asked for acme',
      });
      await store.security.record({
        project: 'acme',
        kind: 'cross_project',
        actor: 'beta/x',
        detail: 'again',
      });
      await store.security.record({
        project: 'ghost',
        kind: 'bad_token',
        actor: 'unknown-token',
        detail: 'bad',
      });
      expect(await store.security.count('acme')).toEqual({ cross_project: 2, bad_token: 0, forbidden: 0 });
      expect(await store.security.count()).toEqual({ cross_project: 2, bad_token: 1, forbidden: 0 });
    });

    it('keeps named counters per project, adding concurrent increments without loss', async (ctx) => {
      const store = await adapter.open(ctx);
      await seed(store);
      expect(await store.counters.all('acme')).toEqual({});
      await Promise.all(Array.from({ length: 20 }, () => store.counters.add('acme', 'leases_renewed')));
      await store.counters.add('acme', 'messages_held', 3);
      await store.counters.add('beta', 'leases_renewed', 5);
      expect(await store.counters.all('acme')).toEqual({ leases_renewed: 20, messages_held: 3 });
      expect(await store.counters.all('beta')).toEqual({ leases_renewed: 5 });
    });

    it('declares its capabilities', async (ctx) => {
      const store = await adapter.open(ctx);
      expect(store.capabilities.dialect).toBe(adapter.name);
      expect(store.capabilities.skipLocked).toBe(adapter.name === 'postgres');
      // Never a password in the location (the test URL carries one for PostgreSQL).
      expect(store.location).not.toMatch(/:[^@/*]+@/);
    });
  });
});
