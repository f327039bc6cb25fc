import { describe, expect, it } from 'vitest';
import {
  ackMessage,
  heartbeat,
  listPeers,
  pendingAcks,
  readInbox,
  sendMessage,
  showMessage,
  streamsOf,
  sweepAcks,
  waitForAck,
} from '../../src/core/bus/service.js';
import { Conflict, NotFound, PermissionDenied, UsageError } from '../../src/core/errors.js';
import { BUS_ADAPTERS, seedAgents } from '../helpers/bus.js';
import { fails } from '../helpers/expect.js';

/** One suite, unchanged, against every Bus adapter. */


describe.each(BUS_ADAPTERS)('Bus conformance: $name', (adapter) => {
  describe.skipIf(!adapter.available)(adapter.name, () => {
    it('delivers a message durably and reads it once through the cursor, then as history', async (ctx) => {
      const w = await adapter.open(ctx);
      await seedAgents(w, { kasra: 'coordinator', codex: 'worker' });
      const sent = await sendMessage(w.ctx, w.as('kasra'), { to: 'codex', text: 'deploy fixed\nsecond line' });
      expect(sent).toMatchObject({ duplicate: false, recipients: ['codex'], ackRequired: false });
      expect(sent.id).toMatch(/^msg_[0-9a-z]{26}$/);

      // A second handle (another process would have one) sees it: it was persisted before send returned.
      const other = await w.second();
      const first = await readInbox(other, w.as('codex'), {});
      expect(first.unread.map((i) => [i.message.id, i.message.from, i.message.text, i.state])).toEqual([
        [sent.id, 'kasra', 'deploy fixed\nsecond line', 'read'],
      ]);
      expect((await readInbox(w.ctx, w.as('codex'), {})).unread).toEqual([]);
      const all = await readInbox(w.ctx, w.as('codex'), { all: true });
      expect(all.history.map((i) => [i.message.id, i.state])).toEqual([[sent.id, 'read']]);
      expect((await showMessage(w.ctx, w.as('kasra'), sent.id)).deliveries).toEqual([
        { recipient: 'codex', state: 'read', at: expect.any(Number) },
      ]);
    });

    it('keeps send order and honours the limit without losing the rest', async (ctx) => {
      const w = await adapter.open(ctx);
      await seedAgents(w, { kasra: 'worker', codex: 'worker' });
      const ids: string[] = [];
      for (let i = 0; i < 25; i++) ids.push((await sendMessage(w.ctx, w.as('kasra'), { to: 'codex', text: `m${i}` })).id);
      const a = await readInbox(w.ctx, w.as('codex'), { limit: 10 });
      const b = await readInbox(w.ctx, w.as('codex'), { limit: 10 });
      const c = await readInbox(w.ctx, w.as('codex'), { limit: 10 });
      expect([...a.unread, ...b.unread, ...c.unread].map((i) => i.message.id)).toEqual(ids);
      expect(c.unread).toHaveLength(5);
    });

    it('threads replies, and refuses a reply to a missing or malformed id', async (ctx) => {
      const w = await adapter.open(ctx);
      await seedAgents(w, { kasra: 'worker', codex: 'worker' });
      const q = await sendMessage(w.ctx, w.as('kasra'), { to: 'codex', text: 'ready?' });
      const r = await sendMessage(w.ctx, w.as('codex'), { to: 'kasra', text: 'yes', replyTo: q.id });
      const inbox = await readInbox(w.ctx, w.as('kasra'), {});
      expect(inbox.unread.map((i) => [i.message.id, i.message.replyTo])).toEqual([[r.id, q.id]]);
      await fails(sendMessage(w.ctx, w.as('codex'), { to: 'kasra', text: 'x', replyTo: 'msg_00000000000000000000000000' }), NotFound);
      await fails(sendMessage(w.ctx, w.as('codex'), { to: 'kasra', text: 'x', replyTo: 'nope' }), UsageError);
    });

    it('gives a squad message one delivery per member and reaches members only', async (ctx) => {
      const w = await adapter.open(ctx);
      await seedAgents(w, { kasra: 'coordinator', codex: 'worker', gemini: 'worker', outsider: 'worker' }, { core: ['kasra', 'codex', 'gemini'] });
      const sent = await sendMessage(w.ctx, w.as('kasra'), { to: 'squad:core', text: 'standup' });
      expect(sent.recipients).toEqual(['codex', 'gemini']);
      expect((await readInbox(w.ctx, w.as('codex'), {})).unread.map((i) => i.message.text)).toEqual(['standup']);
      expect((await readInbox(w.ctx, w.as('outsider'), {})).unread).toEqual([]);
      expect((await readInbox(w.ctx, w.as('kasra'), {})).unread).toEqual([]); // the sender's own message
      const shown = await showMessage(w.ctx, w.as('kasra'), sent.id);
      expect(shown.message.target).toEqual({ kind: 'squad', name: 'core' });
      expect(shown.deliveries.map((d) => [d.recipient, d.state])).toEqual([
        ['codex', 'read'],
        ['gemini', 'queued'],
      ]);
      expect((await readInbox(w.ctx, w.as('gemini'), {})).unread.map((i) => i.message.id)).toEqual([sent.id]);
      await fails(sendMessage(w.ctx, w.as('kasra'), { to: 'squad:ghost', text: 'x' }), NotFound);
    });

    it('broadcasts to every other agent of the project', async (ctx) => {
      const w = await adapter.open(ctx);
      await seedAgents(w, { kasra: 'coordinator', codex: 'worker', gemini: 'worker' });
      const sent = await sendMessage(w.ctx, w.as('kasra'), { to: 'all', text: 'freeze' });
      expect(sent.recipients.sort()).toEqual(['codex', 'gemini']);
      for (const agent of ['codex', 'gemini']) {
        expect((await readInbox(w.ctx, w.as(agent), {})).unread.map((i) => i.message.text)).toEqual(['freeze']);
      }
      expect((await readInbox(w.ctx, w.as('kasra'), {})).unread).toEqual([]);
    });

    it('acks with {ack_for, ok}: state acked, reply to the sender, wait-ack resolves', async (ctx) => {
      const w = await adapter.open(ctx);
      await seedAgents(w, { kasra: 'coordinator', codex: 'worker' });
      const sent = await sendMessage(w.ctx, w.as('kasra'), { to: 'codex', text: 'confirm deploy', ack: true });
      expect(sent.ackRequired).toBe(true);
      const shown = await showMessage(w.ctx, w.as('kasra'), sent.id);
      expect(shown.message.ackTimeoutMs).toBe(60_000);
      expect(shown.message.requestId).toMatch(/^req_/);
      expect(await waitForAck(w.ctx, w.as('kasra'), sent.id, 150)).toBe('timeout');
      expect((await pendingAcks(w.ctx, w.as('kasra'))).map((p) => [p.message.id, p.unacked])).toEqual([[sent.id, ['codex']]]);

      const waiting = waitForAck(w.ctx, w.as('kasra'), sent.id, 10_000);
      const result = await ackMessage(w.ctx, w.as('codex'), { id: sent.id, ok: true, note: 'done' });
      expect(await waiting).toBe('acked');
      expect(result).toMatchObject({ id: sent.id, ok: true });
      expect((await showMessage(w.ctx, w.as('kasra'), sent.id)).deliveries[0]?.state).toBe('acked');
      const reply = (await readInbox(w.ctx, w.as('kasra'), {})).unread[0]!.message;
      expect(reply).toMatchObject({ type: 'ack', ackFor: sent.id, ackOk: true, text: 'done', from: 'codex' });
      expect(await pendingAcks(w.ctx, w.as('kasra'))).toEqual([]);

      const critical = await sendMessage(w.ctx, w.as('kasra'), { to: 'codex', text: 'rollback?', critical: true });
      expect((await showMessage(w.ctx, w.as('kasra'), critical.id)).message.ackTimeoutMs).toBe(30_000);
      await ackMessage(w.ctx, w.as('codex'), { id: critical.id, ok: false });
      expect(await waitForAck(w.ctx, w.as('kasra'), critical.id, 5_000)).toBe('refused');
      // Only a recipient may ack.
      await fails(ackMessage(w.ctx, w.as('kasra'), { id: critical.id, ok: true }), NotFound);
    });

    it('sends a refusal before the delivery reads acked; an ack retried after a crash in between replies once', async (ctx) => {
      const w = await adapter.open(ctx);
      await seedAgents(w, { kasra: 'coordinator', codex: 'worker' });
      const sent = await sendMessage(w.ctx, w.as('kasra'), { to: 'codex', text: 'ship it?', ack: true });
      // This ack dies at its first delivery state change: what it wrote before that is what a
      // crash there leaves behind.
      const crash = new Error('killed mid-ack');
      const bus = new Proxy(w.ctx.bus, {
        get(target, key) {
          if (key === 'setState') return () => Promise.reject(crash);
          const value = Reflect.get(target, key, target) as unknown;
          return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
        },
      });
      await expect(ackMessage({ ...w.ctx, bus }, w.as('codex'), { id: sent.id, ok: false, note: 'not today' })).rejects.toBe(crash);
      // The refusal is already in the sender's stream, so a sender that saw the delivery acked
      // could never miss it; here the delivery is not acked yet and the waiter still hears no.
      expect(await waitForAck(w.ctx, w.as('kasra'), sent.id, 5_000)).toBe('refused');
      expect((await showMessage(w.ctx, w.as('kasra'), sent.id)).deliveries[0]?.state).not.toBe('acked');

      // The recipient never heard back, so it acks again: the delivery now reads acked, and the
      // sender holds one refusal, not two.
      const again = await ackMessage(w.ctx, w.as('codex'), { id: sent.id, ok: false, note: 'not today' });
      expect((await showMessage(w.ctx, w.as('kasra'), sent.id)).deliveries[0]?.state).toBe('acked');
      const replies = (await readInbox(w.ctx, w.as('kasra'), {})).unread.filter((i) => i.message.ackFor === sent.id);
      expect(replies.map((i) => [i.message.id, i.message.ackOk, i.message.text])).toEqual([[again.ackMessageId, false, 'not today']]);
      expect(await waitForAck(w.ctx, w.as('kasra'), sent.id, 5_000)).toBe('refused');
    });

    it('re-sends an overdue ack once, then escalates to coordinators, once each', async (ctx) => {
      let clock = 1_000_000;
      const w = await adapter.open(ctx, { now: () => clock });
      await seedAgents(w, { boss: 'coordinator', kasra: 'worker', codex: 'worker' });
      const sent = await sendMessage(w.ctx, w.as('kasra'), { to: 'codex', text: 'review PR 12', ack: true });
      expect(await sweepAcks(w.ctx, w.as(null))).toEqual({ resent: [], escalated: [] });
      expect(await pendingAcks(w.ctx, w.as(null), { overdue: true })).toEqual([]);
      clock += 60_001;
      expect((await pendingAcks(w.ctx, w.as(null), { overdue: true })).map((p) => p.message.id)).toEqual([sent.id]);
      const first = await sweepAcks(w.ctx, w.as(null));
      expect(first.resent.map((r) => [r.id, r.to])).toEqual([[sent.id, ['codex']]]);
      expect((await sweepAcks(w.ctx, w.as(null))).resent).toEqual([]); // once
      const codexMail = (await readInbox(w.ctx, w.as('codex'), {})).unread.map((i) => i.message);
      expect(codexMail.map((m) => m.resendOf)).toEqual([null, sent.id]);
      clock += 60_001;
      const second = await sweepAcks(w.ctx, w.as(null));
      expect(second.escalated).toEqual([{ id: sent.id, coordinators: ['boss'], messageIds: [expect.any(String)] }]);
      expect((await sweepAcks(w.ctx, w.as(null))).escalated).toEqual([]);
      const bossMail = (await readInbox(w.ctx, w.as('boss'), {})).unread.map((i) => i.message);
      expect(bossMail).toEqual([expect.objectContaining({ type: 'escalation', replyTo: sent.id, priority: 'high' })]);
      // Acking the re-send acknowledges the original.
      await ackMessage(w.ctx, w.as('codex'), { id: codexMail[1]!.id, ok: true });
      expect(await pendingAcks(w.ctx, w.as(null))).toEqual([]);
      await fails(sweepAcks(w.ctx, w.token('kasra')), PermissionDenied);
    });

    it('is idempotent by key: a repeat returns the first id and sends nothing, even when racing', async (ctx) => {
      const w = await adapter.open(ctx);
      await seedAgents(w, { kasra: 'worker', codex: 'worker' });
      const a = await sendMessage(w.ctx, w.as('kasra'), { to: 'codex', text: 'once', idempotencyKey: 'deploy-42' });
      const b = await sendMessage(w.ctx, w.as('kasra'), { to: 'codex', text: 'once', idempotencyKey: 'deploy-42' });
      expect(b).toMatchObject({ id: a.id, duplicate: true });
      const other = await w.second();
      const racing = await Promise.all(
        Array.from({ length: 5 }, (_, i) => sendMessage(i % 2 ? other : w.ctx, w.as('kasra'), { to: 'codex', text: 'race', idempotencyKey: 'race-1' })),
      );
      expect(new Set(racing.map((r) => r.id)).size).toBe(1);
      expect(racing.filter((r) => !r.duplicate)).toHaveLength(1);
      // The same key from another sender is another message.
      const c = await sendMessage(w.ctx, w.as('codex'), { to: 'kasra', text: 'once', idempotencyKey: 'deploy-42' });
      expect(c.id).not.toBe(a.id);
      expect((await readInbox(w.ctx, w.as('codex'), {})).unread.map((i) => i.message.text)).toEqual(['once', 'race']);
    });

    it('expires unread messages instead of delivering them late', async (ctx) => {
      let clock = 5_000_000;
      const w = await adapter.open(ctx, { now: () => clock });
      await seedAgents(w, { kasra: 'worker', codex: 'worker' });
      const stale = await sendMessage(w.ctx, w.as('kasra'), { to: 'codex', text: 'only for a second', expiresInMs: 1_000 });
      const fresh = await sendMessage(w.ctx, w.as('kasra'), { to: 'codex', text: 'keeps' });
      clock += 2_000;
      expect((await readInbox(w.ctx, w.as('codex'), {})).unread.map((i) => i.message.id)).toEqual([fresh.id]);
      expect((await showMessage(w.ctx, w.as('kasra'), stale.id)).deliveries[0]?.state).toBe('expired');
    });

    it('tracks presence with heartbeats and a TTL', async (ctx) => {
      let clock = 9_000_000;
      const w = await adapter.open(ctx, { now: () => clock });
      await seedAgents(w, { kasra: 'worker', codex: 'worker' });
      await sendMessage(w.ctx, w.as('kasra'), { to: 'codex', text: 'hi' });
      await heartbeat(w.ctx, w.as('codex'));
      let peers = await listPeers(w.ctx, w.as('kasra'));
      expect(peers.map((p) => [p.name, p.online, p.unread])).toEqual([
        ['codex', true, 1],
        ['kasra', false, 0],
      ]);
      expect(peers[0]?.lastSeen).toBe(clock);
      clock += 90_001;
      peers = await listPeers(w.ctx, w.as('kasra'));
      expect(peers[0]?.online).toBe(false);
      await fails(heartbeat(w.ctx, w.token('kasra'), { agent: 'codex' }), PermissionDenied);
    });

    it('scopes every call by the caller: own inbox only, no impersonation, no other project', async (ctx) => {
      const w = await adapter.open(ctx);
      await seedAgents(w, { kasra: 'worker', codex: 'worker' });
      const sent = await sendMessage(w.ctx, w.token('kasra'), { to: 'codex', text: 'private' });
      await fails(readInbox(w.ctx, w.token('kasra'), { agent: 'codex' }), PermissionDenied);
      await fails(sendMessage(w.ctx, w.token('kasra', 'observer'), { to: 'codex', text: 'x' }), PermissionDenied);
      expect((await readInbox(w.ctx, w.token('codex'), {})).unread.map((i) => i.message.id)).toEqual([sent.id]);
      // An admin may read another agent's inbox.
      await readInbox(w.ctx, w.token('kasra', 'admin'), { agent: 'codex' });
      // Another project cannot see the message, by id or by inbox.
      const other = await w.otherProject();
      await w.store.agents.add({ project: other, name: 'codex', kind: 'custom', role: 'worker', capabilities: [], session: null });
      const elsewhere = { project: other, agent: 'codex', role: 'operator' as const, via: 'local' as const };
      await fails(showMessage(w.ctx, elsewhere, sent.id), NotFound);
      expect((await readInbox(w.ctx, elsewhere, { all: true })).history).toEqual([]);
      const counts = await w.store.security.count(w.project);
      expect(counts.forbidden).toBe(2);
    });

    it('refuses bad input with clear errors and writes nothing', async (ctx) => {
      const w = await adapter.open(ctx);
      await seedAgents(w, { kasra: 'worker', codex: 'worker' });
      const kasra = w.as('kasra');
      await fails(sendMessage(w.ctx, kasra, { to: 'codex', text: '   ' }), UsageError, /empty/);
      await fails(sendMessage(w.ctx, kasra, { to: 'codex', text: 'x'.repeat(65_537) }), UsageError, /65537 bytes; the limit is 65536/);
      await fails(sendMessage(w.ctx, kasra, { to: 'nobody', text: 'x' }), NotFound, /agent "nobody" does not exist/);
      await fails(sendMessage(w.ctx, kasra, { to: 'Bad Name', text: 'x' }), UsageError);
      await fails(sendMessage(w.ctx, kasra, { to: 'codex', text: 'x', priority: 'urgent' }), UsageError);
      await fails(sendMessage(w.ctx, kasra, { to: 'codex', text: 'x', idempotencyKey: 'has space' }), UsageError);
      await fails(sendMessage(w.ctx, w.as(null), { to: 'codex', text: 'x' }), UsageError, /needs an agent/);
      await fails(sendMessage(w.ctx, w.as('ghost'), { to: 'codex', text: 'x' }), NotFound);
      await fails(showMessage(w.ctx, kasra, 'msg_bad'), UsageError);
      await seedAgents(w, {}, { lonely: ['kasra'] });
      await fails(sendMessage(w.ctx, kasra, { to: 'squad:lonely', text: 'x' }), Conflict);
      // Exactly 65,536 bytes is accepted.
      await sendMessage(w.ctx, kasra, { to: 'codex', text: 'é'.repeat(32_768) });
      const inbox = await readInbox(w.ctx, w.as('codex'), { all: true });
      expect(inbox.unread).toHaveLength(1);
      expect(inbox.history).toEqual([]);
    });

    it('wakes a waiting reader when a message arrives, and takes each message exactly once across readers', async (ctx) => {
      const w = await adapter.open(ctx);
      await seedAgents(w, { kasra: 'worker', codex: 'worker' });
      const reader = await w.second();
      const streams = await streamsOf(w.store, w.as('codex'), 'codex');
      expect(await reader.bus.waitForWake(w.project, 'codex', streams, { timeoutMs: 50 })).toBe(false);
      const started = Date.now();
      const waiting = reader.bus.waitForWake(w.project, 'codex', streams, { timeoutMs: 5_000 });
      await new Promise((r) => setTimeout(r, 30));
      await sendMessage(w.ctx, w.as('kasra'), { to: 'codex', text: 'wake up' });
      expect(await waiting).toBe(true);
      expect(Date.now() - started).toBeLessThan(2_000);
      // Unread mail already there: returns at once.
      expect(await reader.bus.waitForWake(w.project, 'codex', streams, { timeoutMs: 5_000 })).toBe(true);

      for (let i = 0; i < 200; i++) await sendMessage(w.ctx, w.as('kasra'), { to: 'codex', text: `n${i}` });
      const readers = [w.ctx, reader, await w.second(), await w.second()];
      const seen: string[] = [];
      await Promise.all(
        readers.map(async (r) => {
          for (;;) {
            const got = await readInbox(r, w.as('codex'), { limit: 7 });
            if (got.unread.length === 0) return;
            seen.push(...got.unread.map((i) => i.message.text));
          }
        }),
      );
      expect(seen.length).toBe(201);
      expect(new Set(seen).size).toBe(201);
    });
  });
});
