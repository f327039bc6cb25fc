import type { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { createProjectAcl, projectAclRules } from '../../src/core/bus/redis-acl.js';
import { RedisBus } from '../../src/core/bus/redis-bus.js';
import {
  acksKey,
  deliveryKey,
  idempotencyKey,
  presenceKey,
  projectPattern,
  registryKey,
  streamKey,
  wakeChannel,
} from '../../src/core/bus/redis-keys.js';
import { fromWireId, wireId, type Envelope, type Target } from '../../src/core/bus/types.js';
import { PermissionDenied, Unavailable } from '../../src/core/errors.js';
import { newId } from '../../src/core/ids.js';
import { services, tempDir } from '../helpers/isolation.js';
import { freePort, openRedisBus, rawRedis, redisProject, startRedisServer } from '../helpers/redis.js';

/** What only the Redis adapter promises; the shared semantics live in bus.conformance.test.ts. */

const inbox = (name: string): Target => ({ kind: 'agent', name });

function envelope(project: string, from: string, target: Target, recipients: string[], extra: Partial<Envelope> = {}): Envelope {
  const createdAt = extra.createdAt ?? Date.now();
  return {
    id: newId('msg', createdAt),
    project,
    from,
    target,
    type: 'message',
    text: `hello from ${from}`,
    contentType: 'text/plain',
    replyTo: null,
    requestId: null,
    ackRequired: false,
    ackTimeoutMs: null,
    priority: 'normal',
    createdAt,
    expiresAt: null,
    recipients,
    ackFor: null,
    ackOk: null,
    resendOf: null,
    ...extra,
  };
}

async function keysOf(redis: Redis, match: string): Promise<string[]> {
  const found: string[] = [];
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', match, 'COUNT', 1000);
    cursor = next;
    found.push(...keys);
  } while (cursor !== '0');
  return found.sort();
}

async function errorOf(promise: Promise<unknown>): Promise<Error> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, 'expected a rejection').toBeInstanceOf(Error);
  return err as Error;
}

describe.skipIf(services.redis === null)('RedisBus', () => {
  it('writes the SOS v1 layout and fields, and reads entries written by other SOS clients', async (ctx) => {
    const p = redisProject(ctx);
    const bus = await openRedisBus(ctx);
    const redis = await rawRedis(ctx);

    const sent = envelope(p, 'alice', inbox('bob'), ['bob'], { ackRequired: true, requestId: newId('req'), ackTimeoutMs: 60_000, priority: 'high' });
    expect(await bus.append(sent, 'key-1')).toEqual({ id: sent.id, duplicate: false });
    const rows = await redis.xrange(`sos:stream:project:${p}:agent:bob`, '-', '+');
    expect(rows).toHaveLength(1);
    const fields = Object.fromEntries(rows[0]![1].flatMap((v, i, all) => (i % 2 === 0 ? [[v, all[i + 1]]] : [])));
    expect(fields).toMatchObject({
      type: 'send',
      source: 'agent:alice',
      target: 'agent:bob',
      timestamp: new Date(sent.createdAt).toISOString(),
      version: '1.0',
      message_id: wireId(sent.id),
      correlation_id: wireId(sent.requestId!),
      project: p,
      tenant_id: p,
    });
    // The payload is upstream's: text and content type only; sos's extras ride in headers.
    expect(JSON.parse(fields.payload!)).toEqual({ text: sent.text, content_type: 'text/plain' });
    expect(JSON.parse(fields.headers!)).toEqual({ sos_priority: 'high', sos_ack_required: 'true', sos_ack_timeout_ms: '60000' });
    expect(fields).not.toHaveProperty('reply_to');

    // Another SOS client: minimal v1 fields, an `id` instead of `message_id`, no extras.
    const legacyId = '5f0c7a8e-1d2b-4c3d-9e8f-0a1b2c3d4e5f';
    await redis.xadd(`sos:stream:project:${p}:agent:bob`, '*', 'type', 'chat', 'source', 'agent:legacy', 'target', 'agent:bob',
      'timestamp', '2024-05-01T10:00:00.000000+00:00', 'version', '1.0', 'id', legacyId, 'payload', JSON.stringify({ text: 'hi from v1' }));
    // …and a squad message with no recipient list: every reader but the sender gets it.
    await redis.xadd(`sos:stream:project:${p}:squad:ops`, '*', 'type', 'message', 'source', 'agent:legacy', 'target', 'squad:ops',
      'payload', 'plain text payload');

    const items = await bus.takeUnread(p, 'bob', [inbox('bob'), { kind: 'squad', name: 'ops' }], 10, Date.now());
    expect(items.map((i) => i.message.text)).toEqual([sent.text, 'hi from v1', 'plain text payload']);
    expect(items[0]!.message).toEqual(sent);
    // An upstream UUID reads as the msg_ id of the same 128 bits (and either spelling finds it).
    expect(items[1]!.message).toEqual({
      id: fromWireId('msg', legacyId),
      project: p,
      from: 'legacy',
      target: inbox('bob'),
      type: 'chat',
      text: 'hi from v1',
      contentType: 'text/plain',
      replyTo: null,
      requestId: null,
      ackRequired: false,
      ackTimeoutMs: null,
      priority: 'normal',
      createdAt: Date.parse('2024-05-01T10:00:00Z'),
      expiresAt: null,
      recipients: ['bob'],
      ackFor: null,
      ackOk: null,
      resendOf: null,
    });
    expect(items.every((i) => i.state === 'read')).toBe(true);
    expect(await bus.takeUnread(p, 'legacy', [{ kind: 'squad', name: 'ops' }], 10, Date.now())).toEqual([]);
    expect(await bus.get(p, legacyId)).toMatchObject({ deliveries: [{ recipient: 'bob', state: 'read' }] });
    expect(await bus.setState(p, legacyId, 'bob', 'acked', Date.now())).toBe(true);

    // Every key the bus made matches the one pattern an ACL user is confined to, but upstream's
    // registry hash, written only because this connection may (an ACL user's bus skips it).
    await bus.heartbeat(p, 'bob', Date.now(), 30_000);
    const everything = await keysOf(redis, `*${p}*`);
    expect(everything.filter((k) => k.startsWith('sos:registry:'))).toEqual([registryKey(p, 'bob')]);
    const all = everything.filter((k) => !k.startsWith('sos:registry:'));
    expect(all).toEqual(await keysOf(redis, projectPattern(p)));
    expect(all).toEqual(
      expect.arrayContaining([
        streamKey(p, inbox('bob')),
        streamKey(p, { kind: 'squad', name: 'ops' }),
        deliveryKey(p, sent.id),
        deliveryKey(p, fromWireId('msg', legacyId)),
        idempotencyKey(p, 'alice', 'key-1'),
        acksKey(p),
        presenceKey(p),
      ]),
    );
    expect(wakeChannel(p, 'bob')).toBe(`sos:wake:project:${p}:agent:bob`);
    // Free-form parts are escaped: an idempotency key cannot smuggle another project's prefix in.
    expect(idempotencyKey(p, 'alice', 'x:project:other:y')).toBe(`sos:idem:project:${p}:alice:x%3Aproject%3Aother%3Ay`);
  });

  it('caps each stream with approximate MAXLEN trimming', async (ctx) => {
    const p = redisProject(ctx);
    const bus = await openRedisBus(ctx, { maxLen: 50 });
    const redis = await rawRedis(ctx);
    for (let i = 0; i < 500; i++) await bus.append(envelope(p, 'alice', inbox('bob'), ['bob']), null);
    const length = await redis.xlen(streamKey(p, inbox('bob')));
    expect(length).toBeGreaterThanOrEqual(50);
    expect(length).toBeLessThanOrEqual(150);
  });

  it('confines a project ACL user to its own keys and channels', async (ctx) => {
    const acme = redisProject(ctx);
    const acme2 = redisProject(ctx, { name: `${acme}-2` });
    const other = redisProject(ctx);
    expect(projectAclRules(acme)).toEqual(expect.arrayContaining([`~sos:*:project:${acme}:*`, `&sos:*:project:${acme}:*`, '-@all', '-@dangerous']));
    expect(projectAclRules(acme).some((r) => r.startsWith('>'))).toBe(false);

    const acl = await createProjectAcl(services.redisUrl, acme);
    expect(acl.user).toBe(`sos-${acme}`);
    expect(new URL(acl.url).username).toBe(acl.user);
    await createProjectAcl(services.redisUrl, acme2);

    // The bus works as that user: streams, groups, scripts, pub/sub.
    const bus = await openRedisBus(ctx, { url: acl.url });
    const peer = await openRedisBus(ctx, { url: acl.url });
    const first = envelope(acme, 'alice', inbox('bob'), ['bob'], { ackRequired: true, requestId: newId('req'), ackTimeoutMs: 30_000 });
    expect((await bus.append(first, 'k')).duplicate).toBe(false);
    expect(await bus.append(envelope(acme, 'alice', inbox('bob'), ['bob']), 'k')).toEqual({ id: first.id, duplicate: true });
    expect(await bus.countUnread(acme, 'bob', [inbox('bob')], Date.now())).toBe(1);
    expect((await bus.takeUnread(acme, 'bob', [inbox('bob')], 10, Date.now())).map((i) => i.message.id)).toEqual([first.id]);
    expect(await bus.setState(acme, first.id, 'bob', 'acked', Date.now())).toBe(true);
    expect(await bus.pendingAcks(acme)).toEqual([]);
    await bus.markAckEvent(acme, first.id, 'resent', Date.now());
    await bus.heartbeat(acme, 'bob', 1_000, 30_000);
    expect(await bus.presence(acme)).toEqual([{ agent: 'bob', lastSeen: 1_000, ttlMs: 30_000 }]);
    expect(await bus.history(acme, 'bob', [inbox('bob')], 10)).toHaveLength(1);
    const waiting = bus.waitForWake(acme, 'bob', [inbox('bob')], { timeoutMs: 5_000 });
    await new Promise((r) => setTimeout(r, 50));
    await peer.append(envelope(acme, 'alice', inbox('bob'), ['bob']), null);
    expect(await waiting).toBe(true);

    // The same bus cannot reach another project: the server refuses, not our code.
    const denied = await errorOf(bus.append(envelope(acme2, 'alice', inbox('bob'), ['bob']), null));
    expect(denied).toBeInstanceOf(PermissionDenied);

    const raw = await rawRedis(ctx, acl.url);
    const nope = async (promise: Promise<unknown>) => expect((await errorOf(promise)).message).toMatch(/^NOPERM/);
    for (const victim of [acme2, other]) {
      await nope(raw.xrange(streamKey(victim, inbox('bob')), '-', '+'));
      await nope(raw.xadd(streamKey(victim, inbox('bob')), '*', 'type', 'message'));
      await nope(raw.get(idempotencyKey(victim, 'alice', 'k')));
      await nope(raw.hset(deliveryKey(victim, 'msg_x'), 'r:bob', 'read:1'));
      await nope(raw.publish(wakeChannel(victim, 'bob'), 'x'));
    }
    await nope(raw.keys('*'));
    await nope(raw.scan('0'));
    await nope(raw.flushall());
    await nope(raw.call('CONFIG', 'GET', '*'));
    await nope(raw.call('PUBSUB', 'CHANNELS'));
    await nope(raw.call('ACL', 'SETUSER', acl.user, '~*'));
    await nope(raw.call('EVAL', "return redis.call('GET', KEYS[1])", 1, idempotencyKey(other, 'alice', 'k')));
    const sub = await rawRedis(ctx, acl.url);
    await nope(sub.subscribe(wakeChannel(acme2, 'bob')));
    await nope(sub.subscribe(wakeChannel(other, 'bob')));
    await sub.subscribe(wakeChannel(acme, 'bob'));

    // A re-run resets the password: the old one stops working.
    await createProjectAcl(services.redisUrl, acme);
    const stale = new RedisBus({ url: acl.url, maxLen: 100 });
    expect(await errorOf(stale.connect())).toBeInstanceOf(PermissionDenied);
    await stale.close();
  });

  it('keeps every acknowledged append across a SIGKILL of Redis (AOF, fsync always)', async (ctx) => {
    const dir = tempDir(ctx);
    const port = await freePort();
    const server = await startRedisServer(ctx, dir, port);
    const p = 'restart';
    const bus = new RedisBus({ url: server.url, maxLen: 10_000 });
    ctx.onTestFinished(() => bus.close());
    const sent: string[] = [];
    for (let i = 0; i < 200; i++) {
      const m = envelope(p, 'alice', inbox('bob'), ['bob'], { text: `m${i}` });
      await bus.append(m, null);
      sent.push(m.id);
    }
    await server.kill();
    // A dead Redis fails fast with a hint, it does not hang.
    const started = Date.now();
    const down = await errorOf(bus.countUnread(p, 'bob', [inbox('bob')], Date.now()));
    expect(down).toBeInstanceOf(Unavailable);
    expect((down as Unavailable).hint).toMatch(/install-services\.sh|SOS_REDIS_URL/);
    expect(Date.now() - started).toBeLessThan(3_000);
    await bus.close();

    const again = await startRedisServer(ctx, dir, port);
    const reader = await openRedisBus(ctx, { url: again.url });
    const items = await reader.takeUnread(p, 'bob', [inbox('bob')], 1_000, Date.now());
    expect(items.map((i) => i.message.id)).toEqual(sent);
    expect(await reader.takeUnread(p, 'bob', [inbox('bob')], 1_000, Date.now())).toEqual([]);
  });

  it('fails fast with Unavailable when Redis is not there', async () => {
    const port = await freePort();
    const started = Date.now();
    const err = await errorOf(RedisBus.open({ url: `redis://127.0.0.1:${port}`, maxLen: 100 }));
    expect(err).toBeInstanceOf(Unavailable);
    expect((err as Unavailable).hint).toMatch(/install-services\.sh/);
    expect(Date.now() - started).toBeLessThan(3_000);
  });

  it('wakes a waiter within ~100 ms of an append from another instance, times out otherwise', async (ctx) => {
    const p = redisProject(ctx);
    const waiter = await openRedisBus(ctx);
    const sender = await openRedisBus(ctx);
    const streams = [inbox('bob')];

    let started = Date.now();
    expect(await waiter.waitForWake(p, 'bob', streams, { timeoutMs: 150 })).toBe(false);
    expect(Date.now() - started).toBeGreaterThanOrEqual(140);

    const abort = new AbortController();
    started = Date.now();
    setTimeout(() => abort.abort(), 50);
    expect(await waiter.waitForWake(p, 'bob', streams, { timeoutMs: 5_000, signal: abort.signal })).toBe(false);
    expect(Date.now() - started).toBeLessThan(1_000);

    for (let round = 0; round < 3; round++) {
      const waiting = waiter.waitForWake(p, 'bob', streams, { timeoutMs: 5_000 });
      await new Promise((r) => setTimeout(r, 30));
      let sentAt = 0;
      const woken = waiting.then((v) => ({ v, after: Date.now() - sentAt }));
      sentAt = Date.now();
      await sender.append(envelope(p, 'alice', inbox('bob'), ['bob']), null);
      const result = await woken;
      expect(result.v).toBe(true);
      expect(result.after).toBeLessThan(100);
      // Unread waiting: returns at once.
      started = Date.now();
      expect(await waiter.waitForWake(p, 'bob', streams, { timeoutMs: 5_000 })).toBe(true);
      expect(Date.now() - started).toBeLessThan(100);
      await waiter.takeUnread(p, 'bob', streams, 100, Date.now());
    }
    // A message for someone else does not wake bob.
    const waiting = waiter.waitForWake(p, 'bob', streams, { timeoutMs: 200 });
    await sender.append(envelope(p, 'alice', inbox('carol'), ['carol']), null);
    expect(await waiting).toBe(false);
  });

  it('gives each of 1,000 messages to exactly one of two concurrent readers', async (ctx) => {
    const p = redisProject(ctx);
    const writer = await openRedisBus(ctx);
    const a = await openRedisBus(ctx);
    const b = await openRedisBus(ctx);
    // Inbox, squad and broadcast, interleaved: the readers also race on the cross-stream merge.
    const streams: Target[] = [inbox('bob'), { kind: 'squad', name: 'ops' }, { kind: 'broadcast' }];
    const sent = new Set<string>();
    const pipeline: Promise<unknown>[] = [];
    for (let i = 0; sent.size < 1_000; i++) {
      const target = streams[i % 3]!;
      // Every 4th squad/broadcast message is for carol only: readers skip it, which is what lets
      // a racing reader overflow its plan (and park the surplus).
      const forCarol = target.kind !== 'agent' && i % 4 === 0;
      const m = envelope(p, 'alice', target, target.kind === 'agent' ? ['bob'] : forCarol ? ['carol'] : ['bob', 'carol']);
      pipeline.push(writer.append(m, null));
      if (!forCarol) sent.add(m.id);
    }
    await Promise.all(pipeline);
    const drain = async (bus: RedisBus) => {
      const got: string[] = [];
      for (;;) {
        const items = await bus.takeUnread(p, 'bob', streams, 37, Date.now());
        expect(items.length).toBeLessThanOrEqual(37);
        if (items.length === 0 && (await bus.countUnread(p, 'bob', streams, Date.now())) === 0) return got;
        got.push(...items.map((i) => i.message.id));
      }
    };
    const [fromA, fromB] = await Promise.all([drain(a), drain(b)]);
    expect(fromA.length).toBeGreaterThan(0);
    expect(fromB.length).toBeGreaterThan(0);
    const inA = new Set(fromA);
    expect(fromB.filter((id) => inA.has(id))).toEqual([]);
    expect(new Set([...fromA, ...fromB])).toEqual(sent);
    expect(fromA.length + fromB.length).toBe(1_000);
  });

  it('takes the oldest messages across inbox, squad and broadcast when a limit cuts them', async (ctx) => {
    const p = redisProject(ctx);
    const bus = await openRedisBus(ctx);
    const streams: Target[] = [inbox('bob'), { kind: 'squad', name: 'ops' }, { kind: 'broadcast' }];
    const order: string[] = [];
    const t0 = Date.now();
    for (let i = 0; i < 30; i++) {
      const target = streams[(i * 7) % 3]!;
      // Some messages are for carol only: they must not use up bob's limit.
      const recipients = i % 4 === 3 ? ['carol'] : target.kind === 'agent' ? ['bob'] : ['bob', 'carol'];
      const m = envelope(p, 'alice', target.kind === 'agent' && recipients[0] === 'carol' ? inbox('carol') : target, recipients, { createdAt: t0 + i, text: `m${i}` });
      await bus.append(m, null);
      if (recipients.includes('bob')) order.push(m.text);
    }
    const got: string[] = [];
    for (let round = 0; round < 30; round++) {
      const items = await bus.takeUnread(p, 'bob', streams, 2, Date.now());
      expect(items.length).toBeLessThanOrEqual(2);
      if (items.length === 0) break;
      got.push(...items.map((i) => i.message.text));
    }
    expect(got).toEqual(order);
  });

  it('recovers entries a crashed reader left pending, and never delivers them twice', async (ctx) => {
    const p = redisProject(ctx);
    const bus = await openRedisBus(ctx);
    const redis = await rawRedis(ctx);
    const stream = streamKey(p, inbox('bob'));
    const m1 = envelope(p, 'alice', inbox('bob'), ['bob'], { text: 'one' });
    const m2 = envelope(p, 'alice', inbox('bob'), ['bob'], { text: 'two' });
    await bus.append(m1, null);
    await bus.append(m2, null);
    await bus.takeUnread(p, 'bob', [inbox('bob')], 0, Date.now()); // creates the group, takes nothing
    // A reader took m1 from the group and died before settling it.
    const read = (await redis.xreadgroup('GROUP', 'agent:bob', 'reader', 'COUNT', 1, 'STREAMS', stream, '>')) as [string, [string, string[]][]][];
    const stuck = read[0]![1][0]![0];
    // Fresh in the PEL: another reader does not steal it yet, but takes m2.
    expect((await bus.takeUnread(p, 'bob', [inbox('bob')], 10, Date.now())).map((i) => i.message.text)).toEqual(['two']);
    // Idle long enough: it is recovered, counted, and taken once.
    await redis.xclaim(stream, 'agent:bob', 'reader', 0, stuck, 'IDLE', 60_000);
    expect(await bus.countUnread(p, 'bob', [inbox('bob')], Date.now())).toBe(1);
    expect((await bus.takeUnread(p, 'bob', [inbox('bob')], 10, Date.now())).map((i) => i.message.text)).toEqual(['one']);
    expect(await bus.countUnread(p, 'bob', [inbox('bob')], Date.now())).toBe(0);
    expect(await redis.xpending(stream, 'agent:bob')).toEqual([0, null, null, null]);

    // Entries a take read beyond its limit are parked, counted, and taken first, at once.
    const m3 = envelope(p, 'alice', inbox('bob'), ['bob'], { text: 'three' });
    await bus.append(m3, null);
    await redis.xreadgroup('GROUP', 'agent:bob', 'parked', 'COUNT', 1, 'STREAMS', stream, '>');
    expect(await bus.countUnread(p, 'bob', [inbox('bob')], Date.now())).toBe(1);
    expect(await bus.waitForWake(p, 'bob', [inbox('bob')], { timeoutMs: 2_000 })).toBe(true);
    expect((await bus.takeUnread(p, 'bob', [inbox('bob')], 10, Date.now())).map((i) => i.message.text)).toEqual(['three']);
    expect(await redis.xpending(stream, 'agent:bob')).toEqual([0, null, null, null]);
  });

  it('makes idempotent appends survive a sender that died between SET NX and XADD', async (ctx) => {
    const p = redisProject(ctx);
    const bus = await openRedisBus(ctx);
    const redis = await rawRedis(ctx);
    // The first sender claimed the key and died before writing its message.
    const lostId = newId('msg');
    await redis.set(idempotencyKey(p, 'alice', 'once'), lostId, 'EX', 60, 'NX');
    const started = Date.now();
    const retry = envelope(p, 'alice', inbox('bob'), ['bob'], { text: 'retried' });
    expect(await bus.append(retry, 'once')).toEqual({ id: lostId, duplicate: true });
    expect(Date.now() - started).toBeLessThan(3_000);
    expect(await bus.append(envelope(p, 'alice', inbox('bob'), ['bob']), 'once')).toEqual({ id: lostId, duplicate: true });
    const items = await bus.takeUnread(p, 'bob', [inbox('bob')], 10, Date.now());
    expect(items.map((i) => [i.message.id, i.message.text])).toEqual([[lostId, 'retried']]);

    // A duplicate entry of one message (a re-send racing the first writer) is delivered once.
    const twice = envelope(p, 'alice', inbox('bob'), ['bob'], { text: 'twice' });
    await bus.append(twice, null);
    await bus.append(twice, null);
    expect(await redis.xlen(streamKey(p, inbox('bob')))).toBe(3);
    expect(await bus.countUnread(p, 'bob', [inbox('bob')], Date.now())).toBe(1);
    expect((await bus.takeUnread(p, 'bob', [inbox('bob')], 10, Date.now())).map((i) => i.message.text)).toEqual(['twice']);
    expect((await bus.history(p, 'bob', [inbox('bob')], 10)).map((i) => i.message.text)).toEqual(['twice', 'retried']);

    // Concurrent appends with one key: one message, every caller gets its id.
    const racers = Array.from({ length: 5 }, () => envelope(p, 'alice', inbox('bob'), ['bob'], { text: 'race' }));
    const results = await Promise.all(racers.map((m) => bus.append(m, 'race')));
    expect(new Set(results.map((r) => r.id)).size).toBe(1);
    expect(results.filter((r) => !r.duplicate)).toHaveLength(1);
    expect(await bus.takeUnread(p, 'bob', [inbox('bob')], 10, Date.now())).toHaveLength(1);
  });

  it('reads a message whose delivery hash was never written (crash after XADD) as queued', async (ctx) => {
    const p = redisProject(ctx);
    const bus = await openRedisBus(ctx);
    const redis = await rawRedis(ctx);
    const m = envelope(p, 'alice', { kind: 'squad', name: 'ops' }, ['bob', 'carol']);
    await bus.append(m, null);
    await redis.del(deliveryKey(p, m.id));
    const squad: Target[] = [{ kind: 'squad', name: 'ops' }];
    expect(await bus.countUnread(p, 'bob', squad, Date.now())).toBe(1);
    expect((await bus.takeUnread(p, 'bob', squad, 10, Date.now())).map((i) => i.message.id)).toEqual([m.id]);
    expect(await bus.takeUnread(p, 'alice', squad, 10, Date.now())).toEqual([]);
    const found = await bus.get(p, m.id);
    expect(found?.deliveries.map((d) => [d.recipient, d.state])).toEqual([
      ['bob', 'read'],
      ['carol', 'queued'],
    ]);
    expect(await bus.setState(p, m.id, 'carol', 'acked', Date.now())).toBe(true);
    expect(await bus.setState(p, m.id, 'dave', 'acked', Date.now())).toBe(false);
  });
});
