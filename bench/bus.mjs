#!/usr/bin/env node
// Bus benchmarks, each against the raw primitive measured in the same run, interleaved:
//   (a) send latency p50/p99: Bus.append and the full sendMessage path vs raw ioredis XADD
//   (b) throughput: 100 sends in flight vs a raw pipeline of 100 XADD+PUBLISH
//   (c) wake latency: send → a reader following the inbox (own connection) has it, p50/p99, vs raw
//       XADD+PUBLISH → a subscriber (own connection) has the message
//   Redis also shows the floor of a send in sos's wire layout: XADD + HSET of the delivery hash +
//   the two PUBLISHes (sos's wake, upstream's channel), pipelined by hand on a raw connection, one
//   send at a time (latency) and 100 in one pipeline (throughput).
//   (d) the same on the embedded SQL bus (SQLite), against raw better-sqlite3 INSERTs
//   (e) the push wake the daemon waits on (Bus.onWake: send → the callback), on Redis (PSUBSCRIBE)
//       vs raw PUBLISH → a subscriber, and on PostgreSQL (LISTEN/NOTIFY, fresh schema at
//       SOS_BENCH_DATABASE_URL, dropped at the end) vs raw pg_notify → a listener
// Usage: npm run build && node bench/bus.mjs [iterations]   (Redis at SOS_BENCH_REDIS_URL or 127.0.0.1:6379)
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { Redis } from 'ioredis';
import * as sos from '../dist/index.js';

const N = Number(process.argv[2] ?? 2000);
const BATCH = 100;
const BATCHES = 30;
const WAKES = 300;
const redisUrl = process.env.SOS_BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379';
const dir = mkdtempSync(join(tmpdir(), 'sos-bench-bus-'));
const project = `bench${Date.now().toString(36)}`;
const text = 'deploy fixed: the release build passed every check and is live on the canary hosts';

const now = () => Number(process.hrtime.bigint()) / 1e6;
const pct = (xs, p) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))];
const fmt = (ms) => `${(ms * 1000).toFixed(0)} µs`;
const rows = [];
const row = (what, value, raw, ratio) => rows.push([what, value, raw, ratio]);

/**
 * A Store with the project and its two agents, a bus on it, and a reader's bus. Without Redis the
 * reader gets a Store of its own, as another process would: its wake-ups then come from across
 * connections (SQLite's change counter, PostgreSQL's NOTIFY), not from the in-process emitter.
 */
async function world(redis, target = { dialect: 'sqlite', path: join(dir, `${redis ? 'r' : 's'}.db`) }, pgSchema = 'sos') {
  const store = await sos.openStore({ target, pgSchema, busyTimeoutMs: 5000, create: true });
  await store.migrate();
  await store.projects.create(project);
  for (const name of ['kasra', 'codex']) {
    await store.agents.add({ project, name, kind: 'custom', role: 'worker', capabilities: [], session: null });
  }
  const values = { redisUrl: redis ? redisUrl : undefined, busMaxLen: 100_000, maxMessageBytes: 65_536, presenceTtlMs: 90_000 };
  const ctx = await sos.openBusContext(values, store);
  const readerStore = redis ? store : await sos.openStore({ target, pgSchema, busyTimeoutMs: 5000 });
  const reader = await sos.openBusContext(values, readerStore);
  return { store, readerStore, ctx, reader, caller: { project, agent: 'kasra', role: 'operator', via: 'local' } };
}

function envelope(i) {
  const at = Date.now();
  return {
    id: sos.newId('msg', at), project, from: 'kasra', target: { kind: 'agent', name: 'codex' }, type: 'message', text: `${text} ${i}`,
    contentType: 'text/plain', replyTo: null, requestId: null, ackRequired: false, ackTimeoutMs: null, priority: 'normal',
    createdAt: at, expiresAt: null, recipients: ['codex'], ackFor: null, ackOk: null, resendOf: null,
  };
}

async function latency(label, rawOp, busOp, sendOp, floorOp) {
  const raw = [], bus = [], send = [], floor = [];
  for (let i = 0; i < 50; i++) { await rawOp(i); await busOp(i); await sendOp(i); if (floorOp) await floorOp(i); }
  for (let i = 0; i < N; i++) {
    let t = now(); await rawOp(i); raw.push(now() - t);
    t = now(); await busOp(i); bus.push(now() - t);
    t = now(); await sendOp(i); send.push(now() - t);
    if (floorOp) { t = now(); await floorOp(i); floor.push(now() - t); }
  }
  row(`${label} send latency p50 (Bus.append)`, fmt(pct(bus, 50)), fmt(pct(raw, 50)), (pct(bus, 50) / pct(raw, 50)).toFixed(2));
  row(`${label} send latency p99 (Bus.append)`, fmt(pct(bus, 99)), fmt(pct(raw, 99)), (pct(bus, 99) / pct(raw, 99)).toFixed(2));
  if (floorOp) {
    row(`${label} send floor p50 (raw XADD+HSET+2 PUBLISH)`, fmt(pct(floor, 50)), fmt(pct(raw, 50)), (pct(floor, 50) / pct(raw, 50)).toFixed(2));
    row(`${label} send floor p99 (raw XADD+HSET+2 PUBLISH)`, fmt(pct(floor, 99)), fmt(pct(raw, 99)), (pct(floor, 99) / pct(raw, 99)).toFixed(2));
  }
  row(`${label} sendMessage p50 (checks + append)`, fmt(pct(send, 50)), fmt(pct(raw, 50)), (pct(send, 50) / pct(raw, 50)).toFixed(2));
  row(`${label} sendMessage p99 (checks + append)`, fmt(pct(send, 99)), fmt(pct(raw, 99)), (pct(send, 99) / pct(raw, 99)).toFixed(2));
}

async function throughput(label, rawBatch, busBatch, floorBatch) {
  let rawMs = 0, busMs = 0, floorMs = 0;
  for (let b = 0; b < BATCHES; b++) {
    let t = now(); await rawBatch(b); rawMs += now() - t;
    t = now(); await busBatch(b); busMs += now() - t;
    if (floorBatch) { t = now(); await floorBatch(b); floorMs += now() - t; }
  }
  const rate = (ms) => (BATCH * BATCHES) / (ms / 1000);
  const rawRate = rate(rawMs);
  row(`${label} throughput, ${BATCH} in flight`, `${Math.round(rate(busMs))} msg/s`, `${Math.round(rawRate)} msg/s`, (rate(busMs) / rawRate).toFixed(2));
  if (floorBatch) row(`${label} throughput floor (wire layout pipelined)`, `${Math.round(rate(floorMs))} msg/s`, `${Math.round(rawRate)} msg/s`, (rate(floorMs) / rawRate).toFixed(2));
}

/**
 * With `rawWake` (send → resolves when the raw subscriber has it), each sos wake alternates with a
 * raw one, and the rows give the ratio.
 */
async function wake(label, w, rawWake) {
  const sentAt = new Map();
  const delays = [], raws = [];
  const controller = new AbortController();
  const reading = sos.followInbox(w.reader, { ...w.caller, agent: 'codex' }, {
    signal: controller.signal,
    onItems: (items) => { const t = now(); for (const i of items) if (sentAt.has(i.message.text)) delays.push(t - sentAt.get(i.message.text)); },
  });
  await sleep(200);
  for (let i = 0; i < WAKES; i++) {
    if (rawWake) { await sleep(3); const t = now(); await rawWake(i); raws.push(now() - t); }
    const key = `wake ${i}`;
    sentAt.set(key, now());
    await sos.sendMessage(w.ctx, w.caller, { to: 'codex', text: key });
    await sleep(3);
  }
  const end = Date.now() + 5000;
  while (delays.length < WAKES && Date.now() < end) await sleep(10);
  controller.abort();
  await reading;
  const ratio = (p) => (rawWake ? (pct(delays, p) / pct(raws, p)).toFixed(2) : '');
  row(`${label} wake latency p50 (send → reader has it)`, fmt(pct(delays, 50)), rawWake ? fmt(pct(raws, 50)) : '', ratio(50));
  row(`${label} wake latency p99`, fmt(pct(delays, 99)), rawWake ? fmt(pct(raws, 99)) : '', ratio(99));
  row(`${label} wakes received`, `${delays.length}/${WAKES}`, '', '');
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * The push wake the daemon waits on (`Bus.onWake`, on the reader's own connection): send → the
 * callback names the recipient. Each alternates with `rawWake` (the backend's bare notification
 * → a listener on its own connection has it), which resolves when the raw listener has it.
 */
async function pushWake(label, w, rawWake) {
  let got;
  const stop = await w.reader.bus.onWake(project, (agent) => { if (agent === 'codex') got?.(); });
  const delays = [], raws = [];
  for (let i = 0; i < WAKES; i++) {
    await sleep(3);
    let t = now(); await rawWake(i); raws.push(now() - t);
    await sleep(3);
    t = now();
    const woken = new Promise((resolve) => { got = resolve; });
    const sent = sos.sendMessage(w.ctx, w.caller, { to: 'codex', text: `push ${i}` });
    await woken;
    delays.push(now() - t);
    got = undefined;
    await sent;
  }
  await stop();
  row(`${label} push wake p50 (send → Bus.onWake)`, fmt(pct(delays, 50)), fmt(pct(raws, 50)), (pct(delays, 50) / pct(raws, 50)).toFixed(2));
  row(`${label} push wake p99`, fmt(pct(delays, 99)), fmt(pct(raws, 99)), (pct(delays, 99) / pct(raws, 99)).toFixed(2));
}

async function drain(w) {
  for (;;) { const got = await w.reader.bus.takeUnread(project, 'codex', [{ kind: 'agent', name: 'codex' }], 5000, Date.now()); if (got.length === 0) return; }
}

// ---- Redis
const raw = new Redis(redisUrl);
const rawKey = `sos:stream:project:${project}:agent:rawbench`;
const r = await world(true);
const wire = (i) => ['type', 'send', 'source', 'agent:kasra', 'target', 'agent:rawbench', 'timestamp', new Date().toISOString(), 'version', '1.0',
  'message_id', '6f1c7c2e-0000-4abc-8def-0123456789ab', 'payload', JSON.stringify({ text: `${text} ${i}`, content_type: 'text/plain' }), 'project', project, 'tenant_id', project];
/** One send in sos's wire layout, by hand: XADD + HSET of the delivery hash + the two PUBLISHes. */
const layout = (p, i) => {
  const fields = wire(i);
  return p.xadd(rawKey, 'MAXLEN', '~', '100000', '*', ...fields)
    .hset(`sos:delivery:project:${project}:raw${i}`, 'stream', rawKey, 'created', String(Date.now()), 'r:rawbench', `queued:${Date.now()}`)
    .publish(`sos:wake:project:${project}:agent:rawbench`, `raw${i}`).publish(`sos:channel:project:${project}:agent:rawbench`, JSON.stringify(fields));
};
await latency('redis', () => raw.xadd(rawKey, 'MAXLEN', '~', '100000', '*', 'type', 'message', 'payload', JSON.stringify({ text })),
  (i) => r.ctx.bus.append(envelope(i), null), (i) => sos.sendMessage(r.ctx, r.caller, { to: 'codex', text: `${text} ${i}` }),
  (i) => layout(raw.pipeline(), i).exec());
await throughput('redis',
  async () => { const p = raw.pipeline(); for (let i = 0; i < BATCH; i++) { p.xadd(rawKey, 'MAXLEN', '~', '100000', '*', 'type', 'message', 'payload', JSON.stringify({ text })); p.publish(`sos:wake:project:${project}:agent:rawbench`, '1'); } await p.exec(); },
  async () => { await Promise.all(Array.from({ length: BATCH }, (_, i) => r.ctx.bus.append(envelope(i), null))); },
  async (b) => { const p = raw.pipeline(); for (let i = 0; i < BATCH; i++) layout(p, b * BATCH + i); await p.exec(); });
await drain(r);
const rawSub = new Redis(redisUrl);
const rawChannel = `sos:wake:project:${project}:agent:rawbench`;
await rawSub.subscribe(rawChannel);
let rawGot;
rawSub.on('message', (_, m) => rawGot?.(m));
await wake('redis', r, (i) => new Promise((resolve) => {
  rawGot = resolve;
  raw.pipeline().xadd(rawKey, 'MAXLEN', '~', '100000', '*', ...wire(i)).publish(rawChannel, JSON.stringify(wire(i))).exec();
}));
await pushWake('redis', r, (i) => new Promise((resolve) => {
  rawGot = resolve;
  raw.publish(rawChannel, `push ${i}`);
}));
rawSub.disconnect();

// ---- SQLite (embedded default)
const s = await world(false);
const lite = new Database(join(dir, 'raw.db'));
lite.pragma('journal_mode = WAL'); lite.pragma('synchronous = NORMAL');
lite.exec('CREATE TABLE raw (seq INTEGER PRIMARY KEY, body TEXT NOT NULL)');
const insert = lite.prepare('INSERT INTO raw (body) VALUES (?)');
const insertMany = lite.transaction((n) => { for (let i = 0; i < n; i++) insert.run(text); });
await latency('sqlite', async () => insert.run(text), (i) => s.ctx.bus.append(envelope(i), null), (i) => sos.sendMessage(s.ctx, s.caller, { to: 'codex', text: `${text} ${i}` }));
await throughput('sqlite', async () => insertMany(BATCH), async () => { await Promise.all(Array.from({ length: BATCH }, (_, i) => s.ctx.bus.append(envelope(i), null))); });
await drain(s);
await wake('sqlite', s);

// ---- report and clean up
// ---- PostgreSQL (Store and bus in a fresh schema, dropped at the end): the push wake only
const pgUrl = process.env.SOS_BENCH_DATABASE_URL ?? 'postgres://sos_test:sos_test@127.0.0.1:5432/sos_test';
const pgSchema = `bench_bus_${project}`;
const { default: pg } = await import('pg');
const p = await world(false, sos.parseStoreTarget(pgUrl, dir), pgSchema);
const listener = new pg.Client({ connectionString: pgUrl });
const notifier = new pg.Client({ connectionString: pgUrl });
await listener.connect(); await notifier.connect();
await listener.query('LISTEN sos_bench_raw');
let pgGot;
listener.on('notification', () => pgGot?.());
await pushWake('postgres', p, (i) => new Promise((resolve) => {
  pgGot = resolve;
  notifier.query('SELECT pg_notify($1, $2)', ['sos_bench_raw', `push ${i}`]);
}));
await listener.end(); await notifier.end();
await p.reader.bus.close(); await p.ctx.bus.close(); await p.readerStore.close(); await p.store.close();
{
  const admin = new pg.Client({ connectionString: pgUrl });
  await admin.connect(); await admin.query(`DROP SCHEMA IF EXISTS "${pgSchema}" CASCADE`); await admin.end();
}

const widths = [0, 1, 2, 3].map((c) => Math.max(...[['measure', 'sos', 'raw primitive', 'ratio'], ...rows].map((x) => String(x[c]).length)));
const line = (x) => x.map((v, c) => String(v).padEnd(widths[c])).join('  ');
console.log(`bus benchmark: ${N} sequential sends, ${BATCHES}×${BATCH} in-flight batches, ${WAKES} wakes; Node ${process.version}`);
console.log(line(['measure', 'sos', 'raw primitive', 'ratio']));
for (const x of rows) console.log(line(x));

for (const w of [r, s]) { await w.reader.bus.close(); await w.ctx.bus.close(); }
await r.store.close(); await s.readerStore.close(); await s.store.close();
let cursor = '0';
do { const [next, keys] = await raw.scan(cursor, 'MATCH', `sos:*:project:${project}*`, 'COUNT', 1000); cursor = next; if (keys.length) await raw.del(...keys); } while (cursor !== '0');
raw.disconnect();
lite.close();
rmSync(dir, { recursive: true, force: true });
