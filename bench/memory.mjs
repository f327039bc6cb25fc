#!/usr/bin/env node
// Memory benchmarks at scale, each against the raw primitive measured in the same run, interleaved:
//   corpus (bench/memory-corpus.mjs): n engram texts that read like agent memories (200 topics =
//       40 systems × 5 facets, each with its own symptoms, causes, fixes, hosts, files; 15 templates;
//       detail clauses with agents, numbers, regions), embedded with the LocalEmbedder (384 dims) in
//       batches. 85% project scope, 15% private; 0-2 tags; created over the last 180 days. About 3%
//       of new texts land within cosine 0.92 of an existing one (what remember() would merge).
//       Queries are paraphrased questions about a topic, so vectors have real neighbourhoods.
//   (d) loading: pgvector = fresh schema, migrations, HNSW + GIN indexes dropped, multi-row
//       INSERT … SELECT FROM unnest(…) batches (engram + tags in one statement, the next batch
//       formatted while the server writes the last), then GIN and HNSW recreated from their exact
//       migration definitions (both timed) and ANALYZE. SQLite = temp-file Store, one transaction
//       through better-sqlite3 (FTS5 triggers fire). Then `remember()` one at a time (embed + dedup
//       search + insert + get, the real path) on up to 2,000 new engrams into each adapter holding n.
//   (a) pgvector recall p50/p95: the full service call (hybrid, limit 10), and mode 'vector', vs the
//       raw HNSW query `SELECT id FROM engrams WHERE dim = 384 ORDER BY (embedding::vector(384)) <=>
//       $1::vector(384) LIMIT 10` at the hnsw.ef_search sos uses for recall's vector search (named
//       statement, own connection), rotated order per query.
//   (b) pgvector recall@10 of the adapter's searchVector (limit 10, and limit 50 = what recall asks)
//       against sos's own exact statement (ORDER BY embedding <=> q, no index covers it), same
//       filter, tie-aware; plus how much of recall(mode:'vector')'s top 10 is the exact top 10, and
//       the raw HNSW query without filters against an unfiltered exact scan (is it the filter or
//       the data?).
//   (c) SQLite recall p50/p95 (hybrid and vector) vs a plain JS brute-force cosine top-10 over the
//       same n × 384 Float32Array; the first call (loads the in-memory matrix) reported apart, vs a
//       raw SELECT of every vector into one Float32Array; and one-shot `sos memory recall … --db
//       <file>` wall time vs `node -e 0`.
//   breakdown: per adapter, the parts of one recall timed alone (embed, searchVector, searchText,
//       the up-to-30 sequential `get`s, SQLite's cache fingerprint query and its two halves), and
//       what-ifs run raw: one batched get for the same ids, FTS5 without stop words.
// Usage: npm run build && node bench/memory.mjs [n]     (default n = 100000)
//   PostgreSQL at SOS_BENCH_DATABASE_URL (default postgres://sos_test:sos_test@127.0.0.1:5432/sos_test),
//   in a fresh schema dropped at the end; SQLite in a temp dir removed at the end.
//   SOS_BENCH_ONLY=sqlite|postgres runs one adapter. SOS_BENCH_MWM sets maintenance_work_mem for the
//   index builds (default 1GB; a bulk load would raise it too: the server default is 64MB, less than
//   the HNSW graph of 100k × 384).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath, pathToFileURL } from 'node:url';
import Database from 'better-sqlite3';
import pg from 'pg';
import * as sos from '../dist/index.js';
import { AGENTS, corpus, queries, TOPICS } from './memory-corpus.mjs';

const N = Number(process.argv[2] ?? 100_000);
const QUERIES = 200;
const WARM = 20;
const RECALL_AT = 100;
const BREAKDOWN = 100;
const REMEMBER_N = 2_000;
const REMEMBER_BUDGET_MS = 75_000; // per adapter; the count done is reported
const CLI_RUNS = 5;
const PG_BATCH = 1_000;
const EMBED_BATCH = 1_000;
const MWM = process.env.SOS_BENCH_MWM ?? '1GB';
const pgUrl = process.env.SOS_BENCH_DATABASE_URL ?? 'postgres://sos_test:sos_test@127.0.0.1:5432/sos_test';
const only = process.env.SOS_BENCH_ONLY;
const root = fileURLToPath(new URL('..', import.meta.url));
const BIN = join(root, 'bin', 'sos');
const dir = mkdtempSync(join(tmpdir(), 'sos-bench-memory-'));
const tag = `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;
const schema = `bench_memory_${tag}`;
const project = 'mem';
const began = Date.now();

const clock = () => performance.now();
const pct = (xs, p) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))];
const int = (x) => Math.round(x).toLocaleString('en-US');
const ms = (x) => `${x.toFixed(x < 10 ? 2 : 1)} ms`;
const secs = (x) => `${(x / 1000).toFixed(1)} s`;
const log = (s) => process.stderr.write(`[${((Date.now() - began) / 1000).toFixed(0).padStart(3)}s] ${s}\n`);

/** The earlier OR-of-every-word FTS5 query, kept as the comparison point for the breakdown. */
const ftsQuery = (text) => [...new Set(text.toLowerCase().match(/[\p{L}\p{N}]{2,}/gu) ?? [])].map((t) => `"${t}"`).join(' OR ');

// ---------------------------------------------------------------- internals not in dist/index.js
/** Imports the dist chunk that exports `names` (esbuild keeps export names; hashes change per build). */
async function fromChunks(...names) {
  const chunks = join(root, 'dist', 'chunks');
  const out = {};
  // Newest first: builds leave older chunks behind, and one of those may export the same names.
  const files = readdirSync(chunks)
    .filter((f) => f.endsWith('.js'))
    .map((f) => ({ f, t: statSync(join(chunks, f)).mtimeMs }))
    .sort((a, b) => b.t - a.t)
    .map((x) => x.f);
  for (const file of files) {
    const src = readFileSync(join(chunks, file), 'utf8');
    const block = src.match(/^export \{([^}]*)\};?\s*(\/\/.*)?\s*$/m);
    if (!block) continue;
    const exported = block[1].split(',').map((s) => s.trim().split(/\s+as\s+/).at(-1));
    const wanted = names.filter((n) => exported.includes(n) && !(n in out));
    if (wanted.length === 0) continue;
    const mod = await import(pathToFileURL(join(chunks, file)).href);
    for (const n of wanted) out[n] = mod[n];
  }
  const missing = names.filter((n) => !(n in out));
  if (missing.length) throw new Error(`no dist chunk exports ${missing.join(', ')}: run npm run build`);
  return out;
}

const { remember, recall, LocalEmbedder, toBlob, memoryOn, vectorSearchSql, vectorLiteral } = await fromChunks(
  'remember',
  'recall',
  'LocalEmbedder',
  'toBlob',
  'memoryOn',
  'vectorSearchSql',
  'vectorLiteral',
);
/** The LocalEmbedder's stop words (src/core/memory/embedder.ts), for the FTS5 what-if. */
const STOP = new Set(
  'a an and are as at be by for from has have in is it its of on or that the this to was were will with we our you your i me my not no but if then than so do did done'.split(' '),
);

// ---------------------------------------------------------------- state and cleanup
const embedder = new LocalEmbedder();
const DIM = embedder.dim;
const st = { pgStore: null, pgClient: null, pgRaw: null, liteStore: null, liteRaw: null, cleaned: false };

async function cleanup() {
  if (st.cleaned) return;
  st.cleaned = true;
  for (const [what, close] of [
    ['pg raw client', () => st.pgRaw?.end()],
    ['pg store', () => st.pgStore?.close()],
    ['sqlite store', () => st.liteStore?.close()],
    ['sqlite raw', () => st.liteRaw?.close()],
  ]) {
    try {
      await close();
    } catch (e) {
      log(`closing ${what}: ${e.message}`);
    }
  }
  if (st.pgClient) {
    await st.pgClient.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`).catch((e) => log(`dropping ${schema}: ${e.message}`));
    await st.pgClient.end().catch(() => undefined);
  }
  rmSync(dir, { recursive: true, force: true });
}
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.once(sig, () => {
    log(`${sig}: cleaning up`);
    cleanup().finally(() => process.exit(130));
  });
}

const caller = { project, agent: 'kasra', role: 'agent', via: 'token' };
/** The filter recall builds for `caller` (no squads): project, visibility, not superseded. */
const textFilter = { project, viewer: { agent: caller.agent, squads: [], all: false } };
const filter = { ...textFilter, embedder: embedder.name };

async function seedIdentity(store) {
  await store.projects.create(project);
  for (const name of AGENTS) await store.agents.add({ project, name, kind: 'custom', role: 'worker', capabilities: [], session: null });
}

// ---------------------------------------------------------------- results
const loadRows = [];
const latRows = [];
const recallRows = [];
const partRows = [];
const notes = [];

function latencyRows(adapter, label, xs, raw, rawLabel, note) {
  for (const p of [50, 95]) {
    latRows.push([adapter, `${label} p${p}`, ms(pct(xs, p)), raw ? ms(pct(raw, p)) : rawLabel ?? '', raw ? (pct(xs, p) / pct(raw, p)).toFixed(2) : '', p === 50 ? note ?? '' : '']);
  }
}

/** Share of results in the query's topic: a relevance check that the corpus has structure. */
const onTopic = (ids, ti, topicOf) => ids.filter((id) => topicOf.get(id) === ti).length / Math.max(1, ids.length);

/** Rotates the order of the timed calls per query so neither side always goes first. */
async function interleaved(qs, fns) {
  const times = fns.map(() => []);
  for (const [i, q] of qs.entries()) {
    for (let k = 0; k < fns.length; k++) {
      const j = (i + k) % fns.length;
      const s = clock();
      await fns[j](q);
      times[j].push(clock() - s);
    }
  }
  return times;
}

// ---------------------------------------------------------------- run
const at = Date.now();
const engrams = corpus(N, 1, at);
const qs = queries(QUERIES, 2);
const freshEngrams = corpus(REMEMBER_N, 3, at);
log(`generated ${int(N)} engrams, ${QUERIES} queries; embedding`);
const matrix = new Float32Array(N * DIM);
let s = clock();
for (let i = 0; i < N; i += EMBED_BATCH) {
  const vs = await embedder.embed(engrams.slice(i, i + EMBED_BATCH).map((e) => e.text));
  vs.forEach((v, k) => matrix.set(v, (i + k) * DIM));
}
const embedMs = clock() - s;
const vec = (i) => matrix.subarray(i * DIM, (i + 1) * DIM);
for (const q of qs) q.vector = (await embedder.embed([q.text]))[0];
const ids = engrams.map((e) => sos.newId('eng', e.createdAt));
const topicOf = new Map(ids.map((id, i) => [id, engrams[i].ti]));
const avgChars = engrams.reduce((a, e) => a + e.text.length, 0) / N;
loadRows.push(['—', 'LocalEmbedder.embed, batches of 1,000', int(N), secs(embedMs), `${int(N / (embedMs / 1000))}/s`, `avg ${avgChars.toFixed(0)} chars per engram`]);
log(`embedded in ${secs(embedMs)}; e.g. "${engrams[0].text}" / "${qs[0].text}"`);

/** Plain JS brute force, one thread: the raw primitive under SQLite's vector search. */
function bruteTop10(q, unrolled = false) {
  const top = [];
  for (let i = 0; i < N; i++) {
    let dot = 0;
    const off = i * DIM;
    if (unrolled) {
      let b = 0;
      let c = 0;
      let d = 0;
      for (let j = 0; j < DIM; j += 4) {
        dot += matrix[off + j] * q[j];
        b += matrix[off + j + 1] * q[j + 1];
        c += matrix[off + j + 2] * q[j + 2];
        d += matrix[off + j + 3] * q[j + 3];
      }
      dot += b + c + d;
    } else for (let j = 0; j < DIM; j++) dot += matrix[off + j] * q[j];
    if (top.length < 10 || dot > top[top.length - 1].score) {
      let k = top.length < 10 ? top.length : 9;
      while (k > 0 && top[k - 1].score < dot) {
        top[k] = top[k - 1];
        k--;
      }
      top[k] = { i, score: dot };
    }
  }
  return top;
}

/** The parts of one recall, each timed alone (same filter and depth as recall uses). */
async function breakdown(adapter, ctx, extra = {}) {
  const depth = 50;
  const parts = { embed: [], vector: [], text: [], gets: [], recall: [], ...Object.fromEntries(Object.keys(extra).map((k) => [k, []])) };
  const textHits = [];
  const got = [];
  for (const q of qs.slice(0, BREAKDOWN)) {
    let t = clock();
    await recall(ctx, caller, { query: q.text, limit: 10 });
    parts.recall.push(clock() - t);
    t = clock();
    const [v] = await embedder.embed([q.text]);
    parts.embed.push(clock() - t);
    t = clock();
    const byVector = await ctx.memory.searchVector(filter, v, depth);
    parts.vector.push(clock() - t);
    t = clock();
    const byText = await ctx.memory.searchText(textFilter, q.text, depth);
    parts.text.push(clock() - t);
    textHits.push(byText.length);
    const fused = new Map();
    byVector.forEach((r, i) => fused.set(r.id, 1 / (61 + i)));
    byText.forEach((r, i) => fused.set(r.id, (fused.get(r.id) ?? 0) + 1 / (61 + i)));
    const top = [...fused.entries()].sort((a, b) => b[1] - a[1]).slice(0, 30);
    got.push(top.length);
    t = clock();
    for (const [id] of top) await ctx.memory.get(project, id);
    parts.gets.push(clock() - t);
    for (const [k, fn] of Object.entries(extra)) {
      t = clock();
      await fn(q, top.map(([id]) => id));
      parts[k].push(clock() - t);
    }
  }
  const label = {
    recall: 'recall(), hybrid, limit 10 (for reference)',
    embed: 'embed the query',
    vector: `searchVector, limit ${depth}`,
    text: `searchText, limit ${depth}`,
    gets: `sequential get() × ${Math.round(got.reduce((a, b) => a + b, 0) / got.length)}`,
  };
  for (const [k, xs] of Object.entries(parts)) partRows.push([adapter, label[k] ?? k, ms(pct(xs, 50)), ms(pct(xs, 95)), `${((pct(xs, 50) / pct(parts.recall, 50)) * 100).toFixed(0)}%`]);
  return parts;
}

/** remember() one at a time (each as its author), within the time budget. */
async function rememberAll(ctx) {
  const remMs = [];
  const fresh = [];
  const merges = [];
  const s0 = clock();
  for (const e of freshEngrams) {
    const t0 = clock();
    const r = await remember(ctx, { ...caller, agent: e.author }, { text: e.text, kind: e.kind, scope: e.scope, tags: e.tags });
    const t = clock() - t0;
    remMs.push(t);
    if (r.merged) merges.push(t);
    else fresh.push(t);
    if (clock() - s0 > REMEMBER_BUDGET_MS) break;
  }
  const remWall = clock() - s0;
  const split = `max ${ms(Math.max(...remMs))}; new p50 ${fresh.length ? ms(pct(fresh, 50)) : '—'} (${fresh.length}), merged p50 ${merges.length ? ms(pct(merges, 50)) : '—'} (${merges.length})`;
  return { remMs, remWall, split };
}

let exitCode = 0;
try {
  // ============================================================ PostgreSQL + pgvector
  if (only !== 'sqlite') {
    log(`postgres: schema ${schema}`);
    st.pgClient = new pg.Client({ connectionString: pgUrl });
    await st.pgClient.connect();
    st.pgStore = await sos.openStore({ target: { dialect: 'postgres', url: pgUrl }, pgSchema: schema, busyTimeoutMs: 10_000 });
    await st.pgStore.migrate();
    await seedIdentity(st.pgStore);
    const c = st.pgClient;
    await c.query(`SET search_path = "${schema}", public`);
    const defs = (await c.query(`SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = $1 AND indexname IN ('engrams_embedding_384', 'engrams_tsv')`, [schema])).rows;
    const hnswDef = defs.find((d) => d.indexname === 'engrams_embedding_384')?.indexdef;
    const ginDef = defs.find((d) => d.indexname === 'engrams_tsv')?.indexdef;
    if (!hnswDef || !ginDef) throw new Error(`migration indexes not found: ${JSON.stringify(defs)}`);
    await c.query('DROP INDEX engrams_embedding_384; DROP INDEX engrams_tsv');

    log('postgres: bulk insert');
    const insertSql = `WITH ins AS (
        INSERT INTO engrams (id, project, text, kind, scope, author, embedder, dim, embedding, created_at, updated_at)
        SELECT u.id, $1, u.text, u.kind, u.scope, u.author, $2, ${DIM}, u.emb::vector, u.at, u.at
        FROM unnest($3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::bigint[]) WITH ORDINALITY AS u(id, text, kind, scope, author, emb, at, ord)
        ORDER BY u.ord RETURNING seq, id)
      INSERT INTO engram_tags (engram_seq, tag) SELECT ins.seq, t.tag FROM ins JOIN unnest($10::text[], $11::text[]) AS t(id, tag) ON t.id = ins.id`;
    const batch = (from) => {
      const to = Math.min(N, from + PG_BATCH);
      const cols = [[], [], [], [], [], [], []];
      const tagIds = [];
      const tagNames = [];
      for (let i = from; i < to; i++) {
        const e = engrams[i];
        cols[0].push(ids[i]);
        cols[1].push(e.text);
        cols[2].push(e.kind);
        cols[3].push(e.scope);
        cols[4].push(e.author);
        cols[5].push(vectorLiteral(vec(i)));
        cols[6].push(e.createdAt);
        for (const t of e.tags) {
          tagIds.push(ids[i]);
          tagNames.push(t);
        }
      }
      return [project, embedder.name, ...cols, tagIds, tagNames];
    };
    s = clock();
    let pending = null;
    for (let from = 0; from < N; from += PG_BATCH) {
      const params = batch(from); // formatted while the server writes the previous batch
      if (pending) await pending;
      pending = c.query(insertSql, params);
    }
    await pending;
    const insertMs = clock() - s;
    s = clock();
    await c.query(ginDef);
    const ginMs = clock() - s;
    await c.query(`SET maintenance_work_mem = '${MWM}'`);
    const workers = (await c.query('SHOW max_parallel_maintenance_workers')).rows[0].max_parallel_maintenance_workers;
    s = clock();
    await c.query(hnswDef);
    const hnswMs = clock() - s;
    await c.query('RESET maintenance_work_mem');
    s = clock();
    await c.query('ANALYZE engrams; ANALYZE engram_tags');
    const analyzeMs = clock() - s;
    const total = insertMs + ginMs + hnswMs + analyzeMs;
    const size = (await c.query(`SELECT pg_size_pretty(pg_total_relation_size('engrams')) AS t, pg_size_pretty(pg_relation_size('engrams_embedding_384')) AS h`)).rows[0];
    loadRows.push(['pgvector', `bulk INSERT … unnest, ${int(PG_BATCH)}-row batches (no HNSW/GIN)`, int(N), secs(insertMs), `${int(N / (insertMs / 1000))}/s`, 'engram + tags per statement; tsv generated column computed']);
    loadRows.push(['pgvector', 'CREATE INDEX … gin (tsv)', '', secs(ginMs), '', '']);
    loadRows.push(['pgvector', 'CREATE INDEX … hnsw (m 16, ef_construction 64)', '', secs(hnswMs), `${int(N / (hnswMs / 1000))}/s`, `maintenance_work_mem ${MWM}, ${workers} parallel workers; index ${size.h}`]);
    loadRows.push(['pgvector', 'ANALYZE', '', secs(analyzeMs), '', '']);
    loadRows.push(['pgvector', 'bulk load to ready, total', int(N), secs(total), `${int(N / (total / 1000))}/s`, `table + indexes ${size.t}`]);
    log(`postgres: loaded in ${secs(insertMs)}, gin ${secs(ginMs)}, hnsw ${secs(hnswMs)}`);

    // ---- (a) latency, interleaved with the raw HNSW query on its own connection
    const mem = await memoryOn(st.pgStore);
    const ctx = { store: st.pgStore, memory: mem, embedder, maxEngramBytes: 65_536 };
    const depth = Math.max(50, 10 * 5); // recall's vector depth at limit 10
    const ef = vectorSearchSql(filter, qs[0].vector, depth).efSearch;
    const ef10 = vectorSearchSql(filter, qs[0].vector, 10).efSearch;
    st.pgRaw = new pg.Client({ connectionString: pgUrl, options: `-c search_path=${schema},public` });
    await st.pgRaw.connect();
    const rawC = st.pgRaw;
    const RAW_SQL = 'SELECT id FROM engrams WHERE dim = 384 ORDER BY (embedding::vector(384)) <=> $1::vector(384) LIMIT 10';
    await rawC.query(`SET hnsw.ef_search = ${ef}`);
    const plan = (await rawC.query(`EXPLAIN ${RAW_SQL.replace('$1', `'${vectorLiteral(qs[0].vector)}'`)}`)).rows.map((r) => r['QUERY PLAN']).join('\n');
    const rawUsesHnsw = /engrams_embedding_384/.test(plan);
    const sosPlanQ = vectorSearchSql(filter, qs[0].vector, depth).indexed;
    await rawC.query('BEGIN');
    await rawC.query("SELECT set_config('hnsw.iterative_scan', 'relaxed_order', true)");
    const sosPlan = (await rawC.query(`EXPLAIN ${sosPlanQ.sql}`, sosPlanQ.params)).rows.map((r) => r['QUERY PLAN']).join('\n');
    await rawC.query('COMMIT');
    const sosUsesHnsw = /engrams_embedding_384/.test(sosPlan);
    const uses = (yes) => (yes ? 'walks the HNSW index' : 'does NOT use the HNSW index (the planner sorts instead)');
    notes.push(`pgvector: at ef_search ${ef}, sos's vector statement ${uses(sosUsesHnsw)}; the raw query ${uses(rawUsesHnsw)} (EXPLAIN).`);
    const raw = (q) => rawC.query({ name: 'raw_hnsw', text: RAW_SQL, values: [vectorLiteral(q.vector)] });
    const hybridTop = [];
    const vectorTop = [];
    // The same recall with the adapter's one-statement fusion hidden: two searches (in parallel,
    // on two pool connections) fused in service.ts, then one batched getMany.
    const twoSearches = Object.create(mem);
    twoSearches.hybrid = undefined;
    const ctxTwo = { ...ctx, memory: twoSearches };
    const fns = [
      raw,
      async (q) => hybridTop.push([q.ti, (await recall(ctx, caller, { query: q.text, limit: 10 })).map((r) => r.engram.id)]),
      async (q) => vectorTop.push([q.ti, (await recall(ctx, caller, { query: q.text, limit: 10, mode: 'vector' })).map((r) => r.engram.id)]),
      async (q) => recall(ctxTwo, caller, { query: q.text, limit: 10 }),
    ];
    log('postgres: warm-up, then recall latency');
    await interleaved(qs.slice(0, WARM), fns);
    hybridTop.length = 0;
    vectorTop.length = 0;
    const [tRaw, tHybrid, tVector, tTwo] = await interleaved(qs, fns);
    const share = (xs) => `${((xs.reduce((a, [ti, got]) => a + onTopic(got, ti, topicOf), 0) / xs.length) * 100).toFixed(0)}% of top 10 on the query's topic`;
    latencyRows('pgvector', 'recall() hybrid, limit 10', tHybrid, tRaw, undefined, `${QUERIES} queries, raw = HNSW top-10 at ef_search ${ef}; ${share(hybridTop)}`);
    latencyRows('pgvector', 'recall() hybrid, two searches + getMany', tTwo, tRaw, undefined, 'the fusion in service.ts (adapter hybrid() hidden)');
    latencyRows('pgvector', "recall() mode 'vector'", tVector, tRaw, undefined, share(vectorTop));
    latencyRows('pgvector', `raw HNSW top-10 (ef_search ${ef})`, tRaw, null, '', '');

    // ---- (b) recall@10 vs sos's exact statement
    log('postgres: recall@10 vs exact');
    let hit10 = 0;
    let hit10of50 = 0;
    let hit50 = 0;
    let modeHit = 0;
    const exactMs = [];
    let below10 = 0;
    const tieAware = (got, exact, k) => {
      const bound = exact[Math.min(k, exact.length) - 1].distance + 1e-6;
      return got.slice(0, k).filter((r) => 1 - r.score <= bound).length / Math.min(k, exact.length);
    };
    for (const q of qs.slice(0, RECALL_AT)) {
      const ex = vectorSearchSql(filter, q.vector, 50).exact;
      const t0 = clock();
      const exact = (await rawC.query(ex.sql, ex.params)).rows.map((r) => ({ id: r.id, distance: Number(r.distance) }));
      exactMs.push(clock() - t0);
      const a = await mem.searchVector(filter, q.vector, 10);
      const b = await mem.searchVector(filter, q.vector, 50);
      if (a.length < 10) below10++;
      hit10 += tieAware(a, exact, 10);
      hit10of50 += tieAware(b, exact, 10);
      hit50 += tieAware(b, exact, 50);
      const top10 = new Set(exact.slice(0, 10).map((r) => r.id));
      const byMode = (await recall(ctx, caller, { query: q.text, limit: 10, mode: 'vector' })).map((r) => r.engram.id);
      modeHit += byMode.filter((id) => top10.has(id)).length / 10;
    }
    // The same without filters: the raw HNSW query at two ef_search values vs an unfiltered exact scan.
    let rawHit40 = 0;
    let rawHitEf = 0;
    let simLost = 0;
    const rawD = 'SELECT id, (embedding::vector(384)) <=> $1::vector(384) AS distance FROM engrams WHERE dim = 384 ORDER BY (embedding::vector(384)) <=> $1::vector(384) LIMIT 10';
    const exactD = 'SELECT id, embedding <=> $1::vector AS distance FROM engrams WHERE dim = 384 ORDER BY embedding <=> $1::vector LIMIT 10';
    const asScore = (rows) => rows.map((r) => ({ id: r.id, score: 1 - Number(r.distance) }));
    for (const q of qs.slice(0, RECALL_AT)) {
      const lit = vectorLiteral(q.vector);
      const exact = (await rawC.query(exactD, [lit])).rows.map((r) => ({ id: r.id, distance: Number(r.distance) }));
      await rawC.query('SET hnsw.ef_search = 40');
      rawHit40 += tieAware(asScore((await rawC.query({ name: 'raw_d', text: rawD, values: [lit] })).rows), exact, 10);
      await rawC.query(`SET hnsw.ef_search = ${ef}`);
      rawHitEf += tieAware(asScore((await rawC.query({ name: 'raw_d', text: rawD, values: [lit] })).rows), exact, 10);
      // How much similarity the approximate top 10 gives up (sos's searchVector at recall's depth).
      const ex = vectorSearchSql(filter, q.vector, 10).exact;
      const fexact = (await rawC.query(ex.sql, ex.params)).rows.map((r) => 1 - Number(r.distance));
      const got = (await mem.searchVector(filter, q.vector, 50)).slice(0, 10).map((r) => r.score);
      simLost += fexact.reduce((a, b) => a + b, 0) / fexact.length - got.reduce((a, b) => a + b, 0) / got.length;
    }
    const R = RECALL_AT;
    recallRows.push(['pgvector', 'searchVector(limit 10) recall@10', (hit10 / R).toFixed(3), `ef_search ${ef10}`, below10 ? `${below10} queries fell back to exact` : '']);
    recallRows.push(['pgvector', 'searchVector(limit 50) recall@10', (hit10of50 / R).toFixed(3), `ef_search ${ef}`, 'what recall() asks for at limit 10']);
    recallRows.push(['pgvector', 'searchVector(limit 50) recall@50', (hit50 / R).toFixed(3), `ef_search ${ef}`, '']);
    recallRows.push(['pgvector', "recall(mode 'vector') top 10 ∩ exact top 10", (modeHit / R).toFixed(3), '', 'recency reorders the top 30, so < 1 by design']);
    recallRows.push(['pgvector', 'mean top-10 similarity given up vs exact', (simLost / R).toFixed(4), `ef_search ${ef}`, 'searchVector(limit 50), first 10; cosine units']);
    recallRows.push(['pgvector', 'raw HNSW, no filter, recall@10', (rawHit40 / R).toFixed(3), 'ef_search 40', 'vs unfiltered exact scan']);
    recallRows.push(['pgvector', 'raw HNSW, no filter, recall@10', (rawHitEf / R).toFixed(3), `ef_search ${ef}`, 'vs unfiltered exact scan']);
    recallRows.push(['pgvector', 'exact statement latency p50 / p95', `${ms(pct(exactMs, 50))} / ${ms(pct(exactMs, 95))}`, '', `${R} queries, sos's exact SQL (seq scan)`]);

    // ---- where the time goes
    log('postgres: breakdown');
    // sos's text statement (pgvector.ts), raw, and a what-if that leaves out lexemes found in more
    // than 5% of engrams (document frequencies from ts_stat, once, into a temp table).
    const orQuery = (prune) => `(SELECT string_agg(chr(39) || replace(replace(lexeme, chr(92), chr(92) || chr(92)), chr(39), chr(39) || chr(39)) || chr(39), ' | ')::tsquery
      FROM unnest(to_tsvector('english', $1)) u${prune ? ' WHERE NOT EXISTS (SELECT 1 FROM bench_lexeme_df d WHERE d.word = u.lexeme AND d.ndoc > $4)' : ''})`;
    const visible = "e.project = $2 AND (e.scope = 'project' OR (e.scope = 'private' AND e.author = $3)) AND e.superseded_by IS NULL";
    const textSql = (prune) => `SELECT e.id, ts_rank(e.tsv, q.q) AS score FROM engrams e, ${orQuery(prune)} AS q(q)
      WHERE e.tsv @@ q.q AND ${visible} ORDER BY score DESC, e.seq DESC LIMIT 50`;
    const countSql = (prune) => `SELECT count(*) AS n FROM engrams e, ${orQuery(prune)} AS q(q) WHERE e.tsv @@ q.q AND ${visible}`;
    s = clock();
    await rawC.query("CREATE TEMP TABLE bench_lexeme_df AS SELECT word, ndoc FROM ts_stat('SELECT tsv FROM engrams'); CREATE INDEX ON bench_lexeme_df (word); ANALYZE bench_lexeme_df");
    const dfMs = clock() - s;
    const cut = Math.round(N * 0.05);
    const batchedGet = `SELECT e.*, ARRAY(SELECT t.tag FROM engram_tags t WHERE t.engram_seq = e.seq ORDER BY t.tag) AS tags
      FROM engrams e WHERE e.project = $1 AND e.id = ANY($2::text[])`;
    await breakdown('pgvector', ctx, {
      'what-if: one batched get (id = ANY) for the same ids, raw': (q, top) => rawC.query({ name: 'batched_get', text: batchedGet, values: [project, top] }),
      "raw: searchText's statement": (q) => rawC.query({ name: 'text_raw', text: textSql(false), values: [q.text, project, caller.agent] }),
      'what-if: the same without lexemes in > 5% of engrams': (q) => rawC.query({ name: 'text_pruned', text: textSql(true), values: [q.text, project, caller.agent, cut] }),
    });
    let matched = 0;
    let matchedPruned = 0;
    for (const q of qs.slice(0, 30)) {
      matched += Number((await rawC.query(countSql(false), [q.text, project, caller.agent])).rows[0].n);
      matchedPruned += Number((await rawC.query(countSql(true), [q.text, project, caller.agent, cut])).rows[0].n);
    }
    notes.push(
      `pgvector: the OR-of-lexemes text query matches ${int(matched / 30)} of ${int(N)} rows on average (all ranked by ts_rank before LIMIT 50); ${int(matchedPruned / 30)} without lexemes in > 5% of engrams (ts_stat over the table took ${secs(dfMs)}).`,
    );

    // ---- (d) remember() one at a time
    log('postgres: remember()');
    const { remMs, remWall, split } = await rememberAll(ctx);
    loadRows.push(['pgvector', 'remember() one at a time, holding n', int(remMs.length), secs(remWall), `${int(remMs.length / (remWall / 1000))}/s`, `p50 ${ms(pct(remMs, 50))}, p95 ${ms(pct(remMs, 95))}; ${split}`]);
  }

  // ============================================================ SQLite
  if (only !== 'postgres') {
    const path = join(dir, 'memory.db');
    log(`sqlite: ${path}`);
    st.liteStore = await sos.openStore({ target: { dialect: 'sqlite', path }, pgSchema: 'sos', busyTimeoutMs: 10_000, create: true });
    await st.liteStore.migrate();
    await seedIdentity(st.liteStore);
    const db = (st.liteRaw = new Database(path, { timeout: 10_000 }));
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
    db.pragma('foreign_keys = ON');
    const ins = db.prepare(
      `INSERT INTO engrams (id, project, text, kind, scope, author, task_id, message_id, embedder, dim, embedding, created_at, updated_at)
       VALUES (?, ?, ?, ?, ?, ?, NULL, NULL, ?, ?, ?, ?, ?)`,
    );
    const insTag = db.prepare('INSERT INTO engram_tags (engram_seq, tag) VALUES (?, ?)');
    s = clock();
    db.transaction(() => {
      for (let i = 0; i < N; i++) {
        const e = engrams[i];
        const seq = ins.run(ids[i], project, e.text, e.kind, e.scope, e.author, embedder.name, DIM, toBlob(vec(i)), e.createdAt, e.createdAt).lastInsertRowid;
        for (const t of e.tags) insTag.run(seq, t);
      }
    })();
    const insertMs = clock() - s;
    db.pragma('wal_checkpoint(TRUNCATE)');
    const bytes = db.prepare('SELECT page_count * page_size AS b FROM pragma_page_count(), pragma_page_size()').get().b;
    loadRows.push(['sqlite', 'bulk INSERT, one transaction (FTS5 triggers)', int(N), secs(insertMs), `${int(N / (insertMs / 1000))}/s`, `file ${(bytes / 1e6).toFixed(0)} MB`]);
    log(`sqlite: loaded in ${secs(insertMs)}`);

    // ---- (c) latency: first call apart, then interleaved with the JS brute force
    const mem = await memoryOn(st.liteStore);
    const ctx = { store: st.liteStore, memory: mem, embedder, maxEngramBytes: 65_536 };
    s = clock();
    await recall(ctx, caller, { query: qs[0].text, limit: 10 });
    const firstMs = clock() - s;
    const hybridTop = [];
    const vectorTop = [];
    const fns = [async (q) => bruteTop10(q.vector), async (q) => hybridTop.push([q.ti, (await recall(ctx, caller, { query: q.text, limit: 10 })).map((r) => r.engram.id)]), async (q) => vectorTop.push([q.ti, (await recall(ctx, caller, { query: q.text, limit: 10, mode: 'vector' })).map((r) => r.engram.id)])];
    log('sqlite: warm-up, then recall latency');
    await interleaved(qs.slice(0, WARM), fns);
    hybridTop.length = 0;
    vectorTop.length = 0;
    const [tRaw, tHybrid, tVector] = await interleaved(qs, fns);
    const share = (xs) => `${((xs.reduce((a, [ti, got]) => a + onTopic(got, ti, topicOf), 0) / xs.length) * 100).toFixed(0)}% of top 10 on the query's topic`;
    // The raw primitive under the first call: every vector of the project into one Float32Array.
    s = clock();
    const all = db.prepare('SELECT seq, id, embedding FROM engrams WHERE project = ? AND embedder = ? ORDER BY seq').all(project, embedder.name);
    const loaded = new Float32Array(all.length * DIM);
    all.forEach((r, i) => loaded.set(new Float32Array(r.embedding.buffer, r.embedding.byteOffset, DIM), i * DIM));
    const rawLoadMs = clock() - s;
    latRows.push(['sqlite', 'recall() hybrid, first call (loads the matrix)', ms(firstMs), `${ms(rawLoadMs)} (raw SELECT of all vectors)`, (firstMs / rawLoadMs).toFixed(2), 'one call, in-process']);
    latencyRows('sqlite', 'recall() hybrid, limit 10', tHybrid, tRaw, undefined, `${QUERIES} queries, raw = JS brute-force top-10 over n × ${DIM}; ${share(hybridTop)}`);
    latencyRows('sqlite', "recall() mode 'vector'", tVector, tRaw, undefined, share(vectorTop));
    latencyRows('sqlite', 'raw JS brute-force top-10', tRaw, null, '', '');

    // ---- where the time goes
    log('sqlite: breakdown');
    const fp = db.prepare('SELECT COUNT(*) AS n, MAX(seq) AS max_seq, MAX(updated_at) AS max_updated FROM engrams WHERE project = ? AND embedder = ?');
    const ftsCount = db.prepare('SELECT count(*) AS n FROM engrams_fts WHERE engrams_fts MATCH ?');
    const fpCount = db.prepare('SELECT COUNT(*) AS n, MAX(seq) AS max_seq FROM engrams WHERE project = ? AND embedder = ?');
    const fpUpdated = db.prepare('SELECT MAX(updated_at) AS max_updated FROM engrams WHERE project = ? AND embedder = ?');
    const fts = db.prepare(
      `SELECT e.id, bm25(engrams_fts) AS rank FROM engrams_fts JOIN engrams e ON e.seq = engrams_fts.rowid
       WHERE engrams_fts MATCH ? AND e.project = ? AND (e.scope = 'project' OR (e.scope = 'private' AND e.author = ?)) AND e.superseded_by IS NULL
       ORDER BY rank LIMIT 50`,
    );
    const noStop = (text) => ftsQuery(text.split(/\s+/).filter((w) => !STOP.has(w.toLowerCase().replace(/[^\p{L}\p{N}]/gu, ''))).join(' '));
    await breakdown('sqlite', ctx, {
      'cache fingerprint query (inside searchVector)': async () => fp.get(project, embedder.name),
      '  its COUNT(*), MAX(seq) alone (index only)': async () => fpCount.get(project, embedder.name),
      '  its MAX(updated_at) alone (reads every row)': async () => fpUpdated.get(project, embedder.name),
      'raw JS brute-force top-10': async (q) => bruteTop10(q.vector),
      'what-if: the same, dot product unrolled 4-way': async (q) => bruteTop10(q.vector, true),
      "raw: searchText's FTS5 statement": async (q) => fts.all(ftsQuery(q.text), project, caller.agent),
      'what-if: the same without stop words': async (q) => fts.all(noStop(q.text), project, caller.agent),
    });
    let matched = 0;
    for (const q of qs.slice(0, 30)) {
      const terms = [...new Set(q.text.toLowerCase().match(/[\p{L}\p{N}]{2,}/gu) ?? [])].map((t) => `"${t}"`).join(' OR ');
      matched += ftsCount.get(terms).n;
    }
    let matchedNoStop = 0;
    for (const q of qs.slice(0, 30)) matchedNoStop += ftsCount.get(noStop(q.text)).n;
    notes.push(`sqlite: the FTS5 OR query matches ${int(matched / 30)} of ${int(N)} rows on average (all scored by bm25 before LIMIT 50); ${int(matchedNoStop / 30)} without stop words.`);

    // ---- one-shot CLI
    log('sqlite: one-shot CLI');
    const home = mkdtempSync(join(dir, 'home-'));
    const env = { ...process.env, HOME: home, XDG_DATA_HOME: join(home, 'data'), XDG_CONFIG_HOME: join(home, 'config') };
    for (const key of Object.keys(env)) if (key.startsWith('SOS_')) delete env[key];
    const timed = (args) => {
      const t0 = clock();
      const r = spawnSync(process.execPath, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
      const t = clock() - t0;
      if (r.status !== 0) throw new Error(`${args.join(' ')} exited ${r.status}: ${r.stderr}`);
      return { t, out: String(r.stdout) };
    };
    const cliArgs = (q) => [BIN, 'memory', 'recall', ...q.text.split(' '), '--db', path, '--project', project, '--as', 'kasra', '--json'];
    const check = JSON.parse(timed(cliArgs(qs[1])).out);
    if (!Array.isArray(check) || check.length !== 10) throw new Error(`sos memory recall printed ${JSON.stringify(check).slice(0, 300)}`);
    timed(['-e', '0']);
    const cli = [];
    const node = [];
    for (let i = 0; i < CLI_RUNS; i++) {
      node.push(timed(['-e', '0']).t);
      cli.push(timed(cliArgs(qs[2 + i])).t);
    }
    latRows.push(['sqlite', '`sos memory recall` one-shot CLI p50', ms(pct(cli, 50)), `${ms(pct(node, 50))} (node -e 0)`, (pct(cli, 50) / pct(node, 50)).toFixed(2), `${CLI_RUNS} runs, min ${ms(Math.min(...cli))} max ${ms(Math.max(...cli))}`]);

    // ---- (d) remember() one at a time
    log('sqlite: remember()');
    const { remMs, remWall, split } = await rememberAll(ctx);
    loadRows.push(['sqlite', 'remember() one at a time, holding n', int(remMs.length), secs(remWall), `${int(remMs.length / (remWall / 1000))}/s`, `p50 ${ms(pct(remMs, 50))}, p95 ${ms(pct(remMs, 95))}; ${split}${remMs.length < REMEMBER_N ? `; stopped at the ${REMEMBER_BUDGET_MS / 1000} s budget` : ''}`]);
  }
} catch (err) {
  exitCode = 1;
  console.error(err);
} finally {
  await cleanup();
}

// ---------------------------------------------------------------- report
function print(headers, rows) {
  const widths = headers.map((_, c) => Math.max(...[headers, ...rows].map((x) => String(x[c]).length)));
  const line = (x) => x.map((v, c) => (c > 0 && /^[\d.,]+( ms| s|\/s|%)?$/.test(String(v)) ? String(v).padStart(widths[c]) : String(v).padEnd(widths[c]))).join('  ').trimEnd();
  console.log(line(headers));
  for (const x of rows) console.log(line(x));
}

console.log(`memory benchmark: Node ${process.version}, ${cpus().length} CPUs; n = ${int(N)} engrams × ${DIM} dims (${embedder.name}), ${TOPICS.length} topics; caller = agent (project + own private scope)\n`);
console.log('loading');
print(['adapter', 'path', 'rows', 'time', 'rate', 'notes'], loadRows);
console.log('\nrecall latency (interleaved with the raw primitive, order rotated per query; ratio = sos / raw)');
print(['adapter', 'measure', 'sos', 'raw primitive', 'ratio', 'notes'], latRows);
if (recallRows.length) {
  console.log(`\nvector recall against exact search (${RECALL_AT} queries, tie-aware)`);
  print(['adapter', 'measure', 'value', 'setting', 'notes'], recallRows);
}
console.log(`\nwhere one recall's time goes (${BREAKDOWN} queries, each part timed alone; share = part p50 / recall p50; vector and text run concurrently inside recall)`);
print(['adapter', 'part', 'p50', 'p95', 'share'], partRows);
for (const n of notes) console.log(`- ${n}`);
console.log(`\ntotal ${((Date.now() - began) / 1000).toFixed(0)} s`);
process.exitCode = exitCode;
