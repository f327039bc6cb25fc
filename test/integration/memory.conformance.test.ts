import { describe, expect, it } from 'vitest';
import { NotFound, PermissionDenied, UsageError } from '../../src/core/errors.js';
import { contextPack, forget, listEngrams, recall, reindex, remember, showEngram } from '../../src/core/memory/service.js';
import type { Embedder } from '../../src/core/memory/embedder.js';
import { sendMessage } from '../../src/core/bus/service.js';
import { claimTask, createTask } from '../../src/core/tasks/service.js';
import { newId } from '../../src/core/ids.js';
import { seedAgents } from '../helpers/bus.js';
import { fails } from '../helpers/expect.js';
import { MEMORY_ADAPTERS, type MemoryWorld } from '../helpers/memory.js';

/** One suite, unchanged, on SQLite and on pgvector. */

async function team(w: MemoryWorld) {
  await seedAgents(w, { boss: 'coordinator', kasra: 'worker', codex: 'worker', gemini: 'worker' }, { web: ['kasra', 'codex'] });
}

describe.each(MEMORY_ADAPTERS)('Memory conformance: $name', (adapter) => {
  describe.skipIf(!adapter.available)(adapter.name, () => {
    it('remembers with provenance and recalls by meaning and words, best first', async (ctx) => {
      const w = await adapter.open(ctx);
      await team(w);
      const lb = await remember(w.mem, w.as('kasra'), { text: 'The 502 errors on checkout came from the load balancer idle timeout; raised it to 120 seconds.', kind: 'finding', tags: ['infra', 'checkout'] });
      await remember(w.mem, w.as('codex'), { text: 'Chose Redis streams for the agent bus instead of RabbitMQ: ops already runs Redis.', kind: 'decision' });
      await remember(w.mem, w.as('gemini'), { text: 'Mobile app release 4.2 is blocked on the App Store review of the new login screen.', kind: 'observation' });
      expect(lb.merged).toBe(false);
      expect(lb.engram).toMatchObject({ author: 'kasra', kind: 'finding', scope: 'project', tags: ['checkout', 'infra'], embedder: 'local-hash-v2-384', dim: 384 });
      const results = await recall(w.mem, w.as('boss'), { query: 'checkout 502 load balancer timeout' });
      expect(results[0]!.engram.id).toBe(lb.id);
      expect(results[0]!.vectorRank).toBe(1);
      expect(results[0]!.textRank).toBe(1);
      expect(results.map((r) => r.score)).toEqual([...results.map((r) => r.score)].sort((a, b) => b - a));
      expect((await recall(w.mem, w.as('boss'), { query: 'redis rabbitmq bus', mode: 'text' }))[0]!.engram.author).toBe('codex');
      expect((await recall(w.mem, w.as('boss'), { query: 'app store review release', mode: 'vector' }))[0]!.engram.author).toBe('gemini');
    });

    it('merges a near-duplicate in the same scope instead of adding one', async (ctx) => {
      const w = await adapter.open(ctx);
      await team(w);
      const text = 'Postgres failover drill on Tuesday: replica promoted in 40 seconds, no data loss, pgbouncer reconnected by itself.';
      const first = await remember(w.mem, w.as('kasra'), { text, tags: ['db'] });
      const again = await remember(w.mem, w.as('codex'), { text: `${text}  `, tags: ['drill'] });
      expect(again).toMatchObject({ id: first.id, merged: true });
      expect(again.engram.tags).toEqual(['db', 'drill']);
      // The same text in another scope is a separate engram.
      const priv = await remember(w.mem, w.as('kasra'), { text, scope: 'private' });
      expect(priv.merged).toBe(false);
      expect((await listEngrams(w.mem, w.as(null))).length).toBe(2);
    });

    it('supersedes: the old engram leaves recall but stays readable', async (ctx) => {
      const w = await adapter.open(ctx);
      await team(w);
      const old = await remember(w.mem, w.as('kasra'), { text: 'Deploys go out from the Jenkins box every evening at six.', kind: 'decision' });
      const next = await remember(w.mem, w.as('kasra'), { text: 'Deploys now run from GitHub Actions on merge to main; Jenkins is retired.', kind: 'decision', supersedes: old.id });
      expect((await showEngram(w.mem, w.as('boss'), old.id)).supersededBy).toBe(next.id);
      const ids = (await recall(w.mem, w.as('boss'), { query: 'how do deploys go out jenkins' })).map((r) => r.engram.id);
      expect(ids).toContain(next.id);
      expect(ids).not.toContain(old.id);
      expect((await recall(w.mem, w.as('boss'), { query: 'jenkins evening deploys', includeSuperseded: true })).map((r) => r.engram.id)).toContain(old.id);
    });

    it('keeps private, squad and project scopes, and other projects, apart', async (ctx) => {
      const w = await adapter.open(ctx);
      await team(w);
      const text = 'The staging database password rotation runs on the first Monday of the month.';
      const priv = await remember(w.mem, w.as('kasra'), { text: `${text} (kasra private note)`, scope: 'private' });
      const squad = await remember(w.mem, w.as('codex'), { text: `${text} (web squad)`, scope: 'squad:web' });
      const proj = await remember(w.mem, w.as('gemini'), { text: `${text} (everyone)` });
      const seen = async (agent: string) => (await recall(w.mem, w.token(agent), { query: 'staging database password rotation', limit: 10 })).map((r) => r.engram.id).sort();
      expect(await seen('kasra')).toEqual([priv.id, squad.id, proj.id].sort());
      expect(await seen('codex')).toEqual([squad.id, proj.id].sort());
      expect(await seen('gemini')).toEqual([proj.id]);
      await fails(showEngram(w.mem, w.token('gemini'), priv.id), NotFound);
      await fails(remember(w.mem, w.token('gemini'), { text: 'sneaking in', scope: 'squad:web' }), PermissionDenied);
      const other = await w.otherProject();
      await w.store.agents.add({ project: other, name: 'kasra', kind: 'custom', role: 'worker', capabilities: [], session: null });
      const elsewhere = { project: other, agent: 'kasra', role: 'agent' as const, via: 'token' as const };
      expect(await recall(w.mem, elsewhere, { query: 'staging database password rotation' })).toEqual([]);
      await fails(showEngram(w.mem, elsewhere, proj.id), NotFound);
    });

    it('applies filters inside the search, not after a top-k cut', async (ctx) => {
      let clock = Date.now() - 10 * 86_400_000;
      const w = await adapter.open(ctx, { now: () => clock });
      await team(w);
      // Many near-identical engrams by kasra would fill any top-k; gemini's few must still come back.
      // (Inserted directly: remember() would rightly merge near-duplicates.)
      const texts = Array.from({ length: 120 }, (_, i) => `Nightly backup job ${i} finished; snapshot stored in bucket backups-${i}.`);
      const vectors = await w.mem.embedder.embed(texts);
      for (const [i, text] of texts.entries()) {
        await w.mem.memory.insert({
          id: newId('eng', clock),
          project: w.project,
          text,
          kind: 'observation',
          scope: 'project',
          author: 'kasra',
          tags: ['backup'],
          taskId: null,
          messageId: null,
          embedder: w.mem.embedder.name,
          dim: w.mem.embedder.dim,
          embedding: vectors[i]!,
          createdAt: clock,
          updatedAt: clock,
        });
      }
      clock += 9 * 86_400_000;
      const mine: string[] = [];
      for (const text of [
        'Backup verification: restored last night’s snapshot into a scratch database and compared row counts.',
        'Restore drill for the billing database took 14 minutes end to end.',
        'Snapshot retention for nightly backups is 30 days; older ones are pruned by the lifecycle rule.',
      ]) {
        mine.push((await remember(w.mem, w.as('gemini'), { text, kind: 'finding' })).id);
      }
      const byAuthor = await recall(w.mem, w.as('boss'), { query: 'nightly backup job snapshot', agent: 'gemini', limit: 3 });
      expect(byAuthor.map((r) => r.engram.id).sort()).toEqual([...mine].sort());
      expect((await recall(w.mem, w.as('boss'), { query: 'nightly backup snapshot', kind: 'finding', limit: 5 })).length).toBe(3);
      expect((await recall(w.mem, w.as('boss'), { query: 'nightly backup snapshot', since: clock - 86_400_000, limit: 50 })).map((r) => r.engram.author)).toEqual(['gemini', 'gemini', 'gemini']);
      expect((await recall(w.mem, w.as('boss'), { query: 'backup', tags: ['backup'], limit: 200 })).every((r) => r.engram.tags.includes('backup'))).toBe(true);
    });

    it('adds a small recency term that breaks near-ties in favour of newer engrams', async (ctx) => {
      let clock = Date.now() - 200 * 86_400_000;
      const w = await adapter.open(ctx, { now: () => clock });
      await team(w);
      const old = await remember(w.mem, w.as('kasra'), { text: 'Grafana dashboard for queue depth lives under Ops / Queues.', scope: 'squad:web' });
      clock += 199 * 86_400_000;
      const fresh = await remember(w.mem, w.as('codex'), { text: 'Grafana dashboard for queue depth lives under Ops / Queues.', scope: 'project' });
      const results = await recall(w.mem, w.as(null), { query: 'grafana dashboard queue depth' });
      expect(results.map((r) => r.engram.id)).toEqual([fresh.id, old.id]);
      expect(results[0]!.score - results[1]!.score).toBeLessThan(0.005);
    });

    it('forgets only for the author or an admin; validates every input', async (ctx) => {
      const w = await adapter.open(ctx);
      await team(w);
      const e = await remember(w.mem, w.as('kasra'), { text: 'Cron for invoice emails moved to 07:00 UTC.' });
      await fails(forget(w.mem, w.token('codex'), e.id), PermissionDenied);
      expect((await forget(w.mem, w.token('kasra'), e.id)).id).toBe(e.id);
      await fails(showEngram(w.mem, w.as('boss'), e.id), NotFound);
      await fails(remember(w.mem, w.as('kasra'), { text: '   ' }), UsageError, /empty/);
      await fails(remember(w.mem, w.as('kasra'), { text: 'x'.repeat(32_769) }), UsageError, /32769 bytes; the limit is 32768/);
      await fails(remember(w.mem, w.as('kasra'), { text: 'x', scope: 'galaxy' }), UsageError, /scope/);
      await fails(remember(w.mem, w.as('kasra'), { text: 'x', kind: 'rumour' }), UsageError, /kind/);
      await fails(remember(w.mem, w.as('kasra'), { text: 'x', supersedes: 'eng_00000000000000000000000000' }), NotFound);
      await fails(remember(w.mem, w.as(null), { text: 'x' }), UsageError, /needs an agent/);
      await fails(recall(w.mem, w.as('kasra'), { query: '' }), UsageError);
      await fails(showEngram(w.mem, w.as('kasra'), 'nope'), UsageError);
      expect(await listEngrams(w.mem, w.as(null))).toEqual([]);
    });

    it('reindexes every engram with a new embedder, and never mixes embedders in one query', async (ctx) => {
      const w = await adapter.open(ctx);
      await team(w);
      for (const t of ['Kafka was evaluated and rejected.', 'Feature flags live in LaunchDarkly.', 'On-call rota is in PagerDuty.']) {
        await remember(w.mem, w.as('kasra'), { text: t });
      }
      const tiny: Embedder = {
        name: 'test-tiny-8',
        dim: 8,
        async embed(texts) {
          return texts.map((t) => {
            const v = new Float32Array(8);
            for (const ch of t) v[ch.charCodeAt(0) % 8]! += 1;
            const n = Math.hypot(...v);
            return v.map((x) => x / n);
          });
        },
      };
      const swapped = { ...w.mem, embedder: tiny };
      expect(await recall(swapped, w.as('boss'), { query: 'kafka', mode: 'vector' })).toEqual([]);
      expect(await reindex(swapped, w.as(null))).toEqual({ reindexed: 3, embedder: 'test-tiny-8' });
      expect(await w.mem.memory.embedders(w.project)).toEqual([{ embedder: 'test-tiny-8', dim: 8, count: 3 }]);
      expect((await recall(swapped, w.as('boss'), { query: 'kafka', mode: 'vector' })).length).toBe(3);
      await fails(reindex(w.mem, w.token('kasra')), PermissionDenied);
    });

    it('builds a bounded context pack: identity, held task, unread messages, relevant memories', async (ctx) => {
      const w = await adapter.open(ctx);
      await team(w);
      await remember(w.mem, w.as('codex'), { text: 'The invoice PDF renderer needs fonts from the fonts-dejavu package; without them totals render as boxes.', kind: 'finding' });
      await remember(w.mem, w.as('gemini'), { text: 'Lunch order for the offsite is pizza from the place on 5th.' });
      await createTask({ store: w.store, bus: w.ctx.bus, maxTextBytes: 65_536 }, w.as('boss'), { title: 'Fix broken totals in invoice PDF renderer' });
      await claimTask({ store: w.store, bus: w.ctx.bus, maxTextBytes: 65_536 }, w.as('kasra'));
      await sendMessage(w.ctx, w.as('boss'), { to: 'kasra', text: 'customer says totals show as squares in the invoice PDF' });
      const pack = await contextPack(w.mem, w.as('kasra'), 'kasra', 1_200);
      expect(pack.length).toBeLessThanOrEqual(1_200);
      expect(pack).toContain('You are kasra, a worker');
      expect(pack).toContain('Squads: web');
      expect(pack).toMatch(/tsk_\w+ \[claimed, fence 1\] Fix broken totals in invoice PDF renderer/);
      expect(pack).toContain('from boss: customer says totals show as squares');
      expect(pack).toMatch(/Relevant memories\n- eng_\w+ \(finding, codex\): The invoice PDF renderer needs fonts/);
      // Reading the pack consumed nothing.
      expect(await w.ctx.bus.countUnread(w.project, 'kasra', [{ kind: 'agent', name: 'kasra' }], Date.now())).toBe(1);
      const tight = await contextPack(w.mem, w.as('kasra'), 'kasra', 300);
      expect(tight.length).toBeLessThanOrEqual(300);
      await fails(contextPack(w.mem, w.token('codex'), 'kasra'), PermissionDenied);
    });
  });
});
