#!/usr/bin/env node
// Economy benchmarks (usage ledger, transcript import, budgets), each measure printed next to a raw
// primitive or a reference tool measured in the same run, as a ratio:
//   (1) import. A generated corpus of Claude Code JSONL (default 1 GiB) under os.tmpdir(), built
//       from the real fixture lines (test/fixtures/transcripts/claude, Claude Code 2.1.332): per
//       process a header (queue-operations, environment / model / tool / agent / skill listings,
//       prompt_snapshot, api-request-shape, api-request-blob); per response a total_tokens
//       reminder, api-request(-blob), tools-used, then one assistant line per content block
//       (thinking / text / tool_use: 1-3 lines sharing message.id + requestId and the same final
//       usage, as Claude Code writes them), then the user tool_result (Bash, Read, Edit, Grep,
//       Agent; output drawn log-normally, stored twice as Claude Code does: message content and
//       toolUseResult). Sessions of 1-40 turns in 30 project dirs (`projects/-srv-proj-NN/*.jsonl`),
//       over 30 days; 5 models; 25% of sessions in the older format without the cache_creation
//       5m/1h split; some resumed (a second process header in the same file), some with subagent
//       files (`<session>/subagents/agent-*.jsonl`, isSidechain, + a main-file toolUseResult.usage
//       copy that must not count), some forked (a new file replaying every parent line with the
//       same ids), a few synthetic API-error lines, cost-state lines, and a few files ending in a
//       half-written line. Every message.id + requestId is unique except the split lines and the
//       fork replays, and the generator keeps the true totals.
//       Measured, the corpus in the page cache: `sos usage import --source claude --path <corpus>
//       --json` through bin/sos into a fresh SQLite store (`sos init`, 10 agents with --workdir in
//       10 of the 30 project dirs) vs `ccusage daily --json --offline` (CLAUDE_CONFIG_DIR = corpus,
//       TZ=UTC), alternating order over SOS_BENCH_IMPORT_RUNS runs (fresh store each); MB/s and
//       events/s, both wall clock of the whole process. Floors: this process reading every file and
//       JSON.parse-ing every line (what any importer must do), and the same parsing only the lines
//       holding `"type":"assistant"` (what a substring pre-filter would leave). Token totals of
//       sos's ledger, ccusage's `totals` and the generator are compared per kind (mismatch flagged;
//       sos vs the generator's truth also fails the run). Then the re-run over the unchanged corpus
//       (SOS_BENCH_RERUNS times): the pass itself as sos reports it (`seconds` in the --json report:
//       performance.now() around importTranscripts, which dist/index.js does not export) vs this
//       process walking the tree and stat-ing every file; and the CLI end to end vs `node -e 0`.
//   (2) the claim path with budgets, per adapter: one in-process worker claims + completes
//       through the public API (claimTask / completeTask, dist/index.js) in three projects of one
//       store: no budgets; 20 budgets (project, 10 agents, 4 squads, 5 tasks; block and warn; usd
//       and tokens; day/week/month/total; each with recorded spend, none spent); the same 20 with 4
//       spent `block` budgets on squads and tasks the claimant is not in (claims still succeed, the
//       claim statement excludes them). Each round seeds M tasks per project, then claims them in
//       chunks of 50 rotating over the three projects, so outside load hits all alike; the first
//       round is warm-up. µs per claim+complete per round; ratio = with / without in the same round,
//       median over rounds (aim ≤ 1.10). Primitive: the budget check itself (claimBlocks, the one
//       read every claim adds) called alone, µs per call (setBudget and claimBlocks come from the
//       dist chunks: dist/index.js does not export them).
//   (3) `sos usage --by agent` over 10^6 usage events, per adapter: rows seeded with one INSERT …
//       SELECT over a generated series (50 agents + 5% unattributed, 20 models of which 3 unpriced,
//       30 days, 20% on 2,000 tasks half done), then the report rollups filled from them by the
//       rollup migration's own backfill statements (what `sos init` runs on an existing ledger),
//       PostgreSQL then VACUUM ANALYZE (SQLite gets no ANALYZE: sos never runs one). usageReport
//       p50/p95 in process (its rows checked against the raw GROUP BY) vs the raw GROUP BY over
//       usage_events (the statement sos ran before the rollups) on its own connection, and vs all
//       the statements the report runs (captured) run raw; the CLI end to end vs `node -e 0`.
//       What-ifs, raw: the GROUP BY as a table scan (SQLite NOT INDEXED) and one scan grouped by
//       agent + model (rows, total and unpriced models in one statement). Query plans
//       (PostgreSQL: EXPLAIN ANALYZE) at the end.
// Usage: npm run build && node bench/economy.mjs [corpusMB]
//   corpusMB (or SOS_BENCH_CORPUS_MB) defaults to 1024. SOS_BENCH_LEDGER_EVENTS (default 1000000),
//   SOS_BENCH_IMPORT_RUNS (default 2), SOS_BENCH_RERUNS (default 5), SOS_BENCH_PARTS=import,claims,report
//   (default all), SOS_BENCH_ONLY=sqlite|postgres for (2) and (3). PostgreSQL at
//   SOS_BENCH_DATABASE_URL (default postgres://sos_test:sos_test@127.0.0.1:5432/sos_test) in fresh
//   schemas dropped at the end; corpus and SQLite files in one temp dir removed at the end.
import { spawn } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath, pathToFileURL } from 'node:url';
import Database from 'better-sqlite3';
import pg from 'pg';
import * as sos from '../dist/index.js';

const CORPUS_MB = Number(process.argv[2] ?? process.env.SOS_BENCH_CORPUS_MB ?? 1024);
const LEDGER_N = Number(process.env.SOS_BENCH_LEDGER_EVENTS ?? 1_000_000);
const IMPORT_RUNS = Number(process.env.SOS_BENCH_IMPORT_RUNS ?? 2);
const RERUNS = Number(process.env.SOS_BENCH_RERUNS ?? 5);
const PARTS = new Set((process.env.SOS_BENCH_PARTS ?? 'import,claims,report').split(',').map((s) => s.trim()));
const only = process.env.SOS_BENCH_ONLY;
const pgUrl = process.env.SOS_BENCH_DATABASE_URL ?? 'postgres://sos_test:sos_test@127.0.0.1:5432/sos_test';
const CLAIM_M = { sqlite: 1_000, postgres: 300 };
const CLAIM_ROUNDS = 6; // + 1 warm-up
const CLAIM_CHUNK = 50;
const BLOCKS_CALLS = 2_000;
const REPORT_CALLS = 10;
const CLI_RUNS = 5;
const PROJECT_DIRS = 30;
const WORKDIR_AGENTS = 10;
const DAY = 86_400_000;

const root = fileURLToPath(new URL('..', import.meta.url));
const BIN = join(root, 'bin', 'sos');
const CCUSAGE = join(root, 'node_modules', '.bin', 'ccusage');
const FIXTURE = join(root, 'test', 'fixtures', 'transcripts', 'claude', 'projects', '-work-demo');
const FIX_SESSION = '17cb8d23-9117-4783-99fd-b9d57f6530f7';
const FIX_AGENT = 'a350f300a8e6a6f75';
const dir = mkdtempSync(join(tmpdir(), 'sos-bench-economy-'));
const tag = `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;
const began = Date.now();

const clock = () => performance.now();
const pct = (xs, p) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))];
const int = (x) => Math.round(x).toLocaleString('en-US');
const ms = (x) => `${x.toFixed(x < 10 ? 2 : 1)} ms`;
const secs = (x) => `${(x / 1000).toFixed(1)} s`;
const mb = (bytes) => bytes / 1_048_576;
const log = (s) => process.stderr.write(`[${((Date.now() - began) / 1000).toFixed(0).padStart(4)}s] ${s}\n`);

/** Small deterministic PRNG (same corpus for the same size). */
function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// ---------------------------------------------------------------- internals not in dist/index.js
/** Imports the dist chunk that exports `names` (esbuild keeps export names; hashes change per build). */
async function fromChunks(...names) {
  const chunks = join(root, 'dist', 'chunks');
  const out = {};
  for (const file of readdirSync(chunks).filter((f) => f.endsWith('.js'))) {
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
const { setBudget, claimBlocks } = await fromChunks('setBudget', 'claimBlocks');

// ---------------------------------------------------------------- cleanup
const pgSchemas = [];
let cleaned = false;
async function cleanup() {
  if (cleaned) return;
  cleaned = true;
  rmSync(dir, { recursive: true, force: true });
  if (pgSchemas.length === 0) return;
  const c = new pg.Client({ connectionString: pgUrl });
  try {
    await c.connect();
    for (const s of pgSchemas) await c.query(`DROP SCHEMA IF EXISTS "${s}" CASCADE`).catch((e) => log(`dropping ${s}: ${e.message}`));
  } catch (e) {
    log(`dropping schemas: ${e.message}`);
  } finally {
    await c.end().catch(() => undefined);
  }
}
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    log(`${sig}: removing ${dir} and the bench schemas`);
    cleanup().finally(() => process.exit(130));
  });
}

// ---------------------------------------------------------------- child processes
function cliEnv(home, extra = {}) {
  const env = { ...process.env, HOME: home, XDG_DATA_HOME: join(home, 'data'), XDG_CONFIG_HOME: join(home, 'config') };
  for (const key of Object.keys(env)) if (key.startsWith('SOS_')) delete env[key];
  mkdirSync(home, { recursive: true });
  return { ...env, ...extra };
}

/** Runs a command to completion: wall time from spawn to exit, stdout, stderr. Throws on a non-zero exit. */
function run(cmd, args, env) {
  return new Promise((resolve, reject) => {
    const s = clock();
    const child = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    const out = [];
    const err = [];
    child.stdout.on('data', (d) => out.push(d));
    child.stderr.on('data', (d) => err.push(d));
    child.on('error', reject);
    child.on('close', (code) => {
      const t = clock() - s;
      const stdout = Buffer.concat(out).toString();
      const stderr = Buffer.concat(err).toString();
      if (code !== 0) reject(new Error(`${cmd} ${args.join(' ')} exited ${code}: ${stderr.slice(0, 2000) || stdout.slice(0, 2000)}`));
      else resolve({ t, stdout, stderr });
    });
  });
}
const sosCli = (args, env) => run(process.execPath, [BIN, ...args], env);
const jsonOf = (text, what) => {
  const start = text.indexOf('{');
  if (start < 0) throw new Error(`${what}: no JSON in output: ${text.slice(0, 500)}`);
  return JSON.parse(text.slice(start));
};

// ---------------------------------------------------------------- (1) corpus generator
const WORDS = (
  'task agent claim lease queue worker retry budget ledger import token cache session model usage report squad ' +
  'project store schema migration index query plan event stream message inbox daemon wake bus memory engram recall ' +
  'vector embed config parse render format value result error offset cursor batch commit rollback price cost limit ' +
  'period scope action warning block pause handle signal timer socket buffer chunk line file path root dir node ' +
  'test fixture oracle bench metric counter status priority label deps artifact review handoff owner reader writer'
).split(' ');

function textBlobs(rand) {
  const w = () => WORDS[Math.floor(rand() * WORDS.length)];
  const W = () => {
    const x = w();
    return x[0].toUpperCase() + x.slice(1);
  };
  const code = [];
  let n = 0;
  while (n < 1 << 20) {
    const ind = '  '.repeat(Math.floor(rand() * 4));
    const k = rand();
    let l;
    if (k < 0.2) l = `${ind}const ${w()}${W()} = await ${w()}.${w()}(${w()}, '${w()}');`;
    else if (k < 0.35) l = `${ind}if (${w()}.${w()} === ${Math.floor(rand() * 100)}) return ${w()}${W()};`;
    else if (k < 0.47) l = `${ind}// ${Array.from({ length: 4 + Math.floor(rand() * 9) }, w).join(' ')}`;
    else if (k < 0.57) l = `${ind}}`;
    else if (k < 0.67) l = `${ind}export async function ${w()}${W()}(${w()}: ${W()}, ${w()}: string): Promise<${W()}> {`;
    else if (k < 0.8) l = `${ind}${w()}.${w()}.push({ ${w()}: ${w()}, ${w()}: "${w()}-${Math.floor(rand() * 1e4)}" });`;
    else if (k < 0.9) l = `${ind}throw new ${W()}Error(\`${w()} ${w()} \${${w()}} ${w()}\`);`;
    else l = '';
    code.push(l);
    n += l.length + 1;
  }
  const prose = [];
  n = 0;
  while (n < 256 << 10) {
    const s = Array.from({ length: 6 + Math.floor(rand() * 14) }, w).join(' ');
    const l = `${s[0].toUpperCase()}${s.slice(1)}${rand() < 0.2 ? ':' : '.'}`;
    prose.push(l);
    n += l.length + 1;
  }
  return { code: code.join('\n'), prose: prose.join(' '), sig: randomBytes(96 << 10).toString('base64') };
}

function templates() {
  const read = (p) => readFileSync(p, 'utf8').split('\n').filter(Boolean);
  const main = read(join(FIXTURE, `${FIX_SESSION}.jsonl`)).map((raw) => ({ raw, o: JSON.parse(raw) }));
  const sub = read(join(FIXTURE, FIX_SESSION, 'subagents', `agent-${FIX_AGENT}.jsonl`)).map((raw) => ({ raw, o: JSON.parse(raw) }));
  const all = (lines, pred) => lines.filter((x) => pred(x.o, x.raw));
  const pick = (lines, pred, what) => {
    const x = lines.find((l) => pred(l.o, l.raw));
    if (!x) throw new Error(`the Claude fixture has no ${what} line`);
    return x;
  };
  const att = (t) => (o) => o.type === 'attachment' && o.attachment?.type === t;
  const HEADER = ['environment', 'model', 'deferred_tools_delta', 'agent_listing_delta', 'skill_listing', 'session_context', 'date', 'remote_session_change'];
  const header = [
    ...all(main, (o) => o.type === 'queue-operation').slice(0, 2).map((x) => x.raw),
    ...HEADER.map((t) => pick(main, att(t), t).raw),
    pick(main, (o) => o.type === 'atis-latch', 'atis-latch').raw,
    pick(main, (o, r) => att('prompt_snapshot')(o) && r.length < 50_000, 'prompt_snapshot').raw,
    pick(main, (o) => o.type === 'api-request-shape', 'api-request-shape').raw,
    pick(main, (o) => o.type === 'api-request-blob', 'api-request-blob').raw,
  ];
  const subHeader = all(sub, (o, r) => (o.type === 'attachment' && o.attachment?.type !== 'total_tokens_reminder' && r.length < 50_000) || o.type === 'api-request-shape').map((x) => x.raw);
  const content = (t) => (o) => o.type === 'assistant' && o.message?.model !== '<synthetic>' && o.message?.content?.[0]?.type === t;
  return {
    header,
    subHeader,
    prompt: pick(main, (o) => o.type === 'user' && typeof o.message?.content === 'string', 'user prompt').o,
    subPrompt: pick(sub, (o) => o.type === 'user', 'subagent prompt').o,
    reminder: pick(main, att('total_tokens_reminder'), 'total_tokens_reminder').raw,
    apiRequest: pick(main, (o) => o.type === 'api-request' && o.base !== undefined, 'api-request').raw,
    blobs: all(main, (o, r) => o.type === 'api-request-blob' && r.length < 3_000).map((x) => x.raw),
    toolsUsed: pick(main, (o) => o.type === 'tools-used', 'tools-used').raw,
    lastPrompt: pick(main, (o) => o.type === 'last-prompt', 'last-prompt').raw,
    costState: pick(main, (o) => o.type === 'cost-state', 'cost-state').raw,
    text: pick(main, content('text'), 'assistant text').o,
    toolUse: pick(main, content('tool_use'), 'assistant tool_use').o,
    thinking: pick(main, content('thinking'), 'assistant thinking').o,
    subAssistant: pick(sub, (o) => o.type === 'assistant', 'subagent assistant').o,
    synthetic: pick(main, (o) => o.isApiErrorMessage === true, 'synthetic API error').o,
    bash: pick(main, (o) => o.type === 'user' && o.toolUseResult?.stdout !== undefined, 'Bash tool_result').o,
    read: pick(main, (o) => o.type === 'user' && o.toolUseResult?.file !== undefined, 'Read tool_result').o,
    agentResult: pick(main, (o) => o.type === 'user' && o.toolUseResult?.agentId !== undefined, 'Agent tool_result').o,
  };
}

const MAIN_MODELS = [
  [0.55, 'claude-sonnet-4-5-20250929'],
  [0.75, 'claude-opus-4-5-20251101'],
  [0.85, 'claude-sonnet-4-20250514'],
  [0.9, 'claude-opus-4-1-20250805'],
  [1, 'claude-haiku-4-5-20251001'],
];
const B62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

/**
 * Writes the corpus under `<out>/projects/` until `targetBytes`; returns what it wrote and the true
 * totals (each message.id + requestId once).
 */
function generateCorpus(out, targetBytes) {
  const rand = rng(20_261_206);
  const T = templates();
  const blobs = textBlobs(rand);
  const g = {
    files: 0,
    bytes: 0,
    sessions: 0,
    subagents: 0,
    forks: 0,
    resumes: 0,
    events: 0,
    splitEvents: 0,
    lines: 0,
    assistantLines: 0,
    replayed: 0,
    replayedLines: 0,
    synthetic: 0,
    halfLines: 0,
    totals: { input: 0, output: 0, cacheCreation: 0, cacheRead: 0 },
  };
  let seq = 0;
  const now = Date.now();
  const rs = (n, alphabet = B62) => {
    let s = '';
    for (let i = 0; i < n; i++) s += alphabet[Math.floor(rand() * alphabet.length)];
    return s;
  };
  const b62 = (n, w) => {
    let s = '';
    do {
      s = B62[n % 62] + s;
      n = Math.floor(n / 62);
    } while (n > 0);
    return s.padStart(w, '0');
  };
  const normal = () => Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
  const logn = (mu, sigma, cap) => Math.min(cap, Math.max(1, Math.floor(Math.exp(mu + sigma * normal()))));
  const slice = (blob, len) => {
    let at = Math.floor(rand() * (blob.length - len - 1));
    if (blob === blobs.code) {
      const nl = blob.indexOf('\n', at);
      if (nl >= 0 && nl + len < blob.length) at = nl + 1;
    }
    return blob.slice(at, at + len);
  };
  const code = (len) => slice(blobs.code, Math.min(len, blobs.code.length - 2));
  const prose = (len) => slice(blobs.prose, Math.min(len, blobs.prose.length - 2));
  const w = () => WORDS[Math.floor(rand() * WORDS.length)];
  const pickModel = () => {
    const r = rand();
    return MAIN_MODELS.find(([p]) => r < p)[1];
  };

  const stamp = (raw, s) =>
    raw
      .replaceAll(FIX_SESSION, s.sid)
      .replaceAll(FIX_AGENT, s.agentId ?? FIX_AGENT)
      .replaceAll('-work-demo', s.projDir)
      .replaceAll('/work/demo', s.cwd)
      .replace(/"timestamp":"[^"]*"/, `"timestamp":"${new Date(s.t).toISOString()}"`);
  const push = (s, line) => {
    s.out.push(line, '\n');
    s.chars += line.length + 1;
    g.lines++;
  };
  const tick = (s, lo, hi) => {
    s.t += lo + Math.floor(rand() * (hi - lo));
    return new Date(s.t).toISOString();
  };
  const common = (s, o, uuid, ts) => {
    const x = { ...o, parentUuid: s.parent, isSidechain: s.sidechain, uuid, timestamp: ts, cwd: s.cwd, sessionId: s.sid, version: s.version };
    if (s.agentId) x.agentId = s.agentId;
    s.parent = uuid;
    return x;
  };

  function usage(s) {
    const first = s.responses === 0;
    const input = first ? 3 + Math.floor(rand() * 30) : rand() < 0.9 ? 1 + Math.floor(rand() * 12) : logn(6, 1, 20_000);
    const cw = first ? 8_000 + Math.floor(rand() * 20_000) : logn(6.3, 1.1, 60_000);
    const cr = first ? (rand() < 0.5 ? 0 : 12_000 + Math.floor(rand() * 6_000)) : s.context;
    s.context = cr + cw > 170_000 ? 18_000 + Math.floor(rand() * 8_000) : cr + cw;
    const output = logn(5.2, 1.1, 32_000);
    const u = { input_tokens: input, cache_creation_input_tokens: cw, cache_read_input_tokens: cr, output_tokens: output };
    if (!s.split) return { ...u, service_tier: 'standard' };
    const oneHour = s.oneHour ? Math.floor(cw * rand()) : 0;
    return {
      ...u,
      output_tokens_details: { thinking_tokens: 0 },
      server_tool_use: { web_search_requests: 0, web_fetch_requests: 0 },
      service_tier: 'standard',
      cache_creation: { ephemeral_1h_input_tokens: oneHour, ephemeral_5m_input_tokens: cw - oneHour },
      inference_geo: '',
      iterations: [],
      speed: 'standard',
      fallback_credit: null,
    };
  }

  function header(s) {
    for (const raw of s.sidechain ? T.subHeader : T.header) {
      tick(s, 1, 30);
      push(s, stamp(raw, s));
    }
  }

  function prompt(s) {
    const tpl = s.sidechain ? T.subPrompt : T.prompt;
    const ts = tick(s, 5_000, 600_000);
    const o = common(s, tpl, randomUUID(), ts);
    o.message = { role: 'user', content: prose(30 + Math.floor(rand() * 600)) };
    if ('promptId' in tpl) o.promptId = randomUUID();
    if ('sentAtMs' in tpl) o.sentAtMs = s.t;
    push(s, JSON.stringify(o));
  }

  function toolUse(s, tool) {
    const id = `toolu_01${b62(seq, 8)}${rs(14)}`;
    const file = `${s.cwd}/src/${w()}/${w()}-${w()}.ts`;
    let input;
    if (tool === 'Bash') input = { command: code(20 + Math.floor(rand() * 120)).replace(/\n/g, ' && '), description: prose(20 + Math.floor(rand() * 50)) };
    else if (tool === 'Read') input = { file_path: file };
    else if (tool === 'Edit') input = { file_path: file, old_string: code(logn(5.5, 0.8, 4_000)), new_string: code(logn(5.7, 0.8, 5_000)) };
    else if (tool === 'Grep') input = { pattern: `${w()}${rand() < 0.5 ? `.*${w()}` : ''}`, path: s.cwd, output_mode: 'content' };
    else input = { description: prose(30), prompt: prose(100 + Math.floor(rand() * 500)), subagent_type: 'general-purpose', model: 'haiku', run_in_background: false };
    return { id, file, block: { type: 'tool_use', id, name: tool, input } };
  }

  function toolResult(s, tool, use, assistantUuid, subUsage) {
    const ts = tick(s, 50, 20_000);
    let content;
    let result;
    let tpl = T.bash;
    if (tool === 'Bash') {
      const outText = code(logn(6, 1.4, 30_000));
      content = outText;
      result = { stdout: outText, stderr: '', interrupted: false, isImage: false, noOutputExpected: false };
    } else if (tool === 'Read') {
      tpl = T.read;
      const text = code(logn(7, 0.9, 60_000));
      const lines = text.split('\n');
      content = lines.map((l, i) => `${String(i + 1).padStart(6)}\t${l}`).join('\n');
      result = { type: 'text', file: { filePath: use.file, content: text, numLines: lines.length, startLine: 1, totalLines: lines.length } };
    } else if (tool === 'Edit') {
      const original = code(logn(7.2, 0.8, 60_000));
      const snippet = code(logn(6, 0.5, 3_000));
      content = `The file ${use.file} has been updated. Here's the result of running \`cat -n\` on a snippet of the edited file:\n${snippet
        .split('\n')
        .map((l, i) => `${String(i + 40).padStart(6)}\t${l}`)
        .join('\n')}`;
      const { old_string: oldString, new_string: newString } = use.block.input;
      result = {
        filePath: use.file,
        oldString,
        newString,
        originalFile: original,
        structuredPatch: [
          { oldStart: 40, oldLines: oldString.split('\n').length, newStart: 40, newLines: newString.split('\n').length, lines: [...oldString.split('\n').map((l) => `-${l}`), ...newString.split('\n').map((l) => `+${l}`)] },
        ],
        userModified: false,
        replaceAll: false,
      };
    } else if (tool === 'Grep') {
      const lines = code(logn(5.8, 1.2, 20_000))
        .split('\n')
        .map((l, i) => `src/${w()}/${w()}.ts:${i * 7 + 3}:${l}`);
      content = lines.join('\n');
      result = { mode: 'content', numFiles: Math.ceil(lines.length / 3), filenames: [], content, numLines: lines.length };
    } else {
      tpl = T.agentResult;
      const report = prose(200 + Math.floor(rand() * 1_500));
      content = [{ type: 'text', text: `[Subagent hand-back] The report follows:\n  ${report}\nagentId: ${subUsage.agentId}\n<usage>subagent_tokens: ${subUsage.total}</usage>` }];
      result = { ...tpl.toolUseResult, prompt: use.block.input.prompt, agentId: subUsage.agentId, content: [{ type: 'text', text: report }], totalTokens: subUsage.total, usage: subUsage.usage };
    }
    const o = common(s, tpl, randomUUID(), ts);
    o.message = { role: 'user', content: [{ tool_use_id: use.id, type: 'tool_result', content, is_error: false }] };
    o.toolUseResult = result;
    o.sourceToolAssistantUUID = assistantUuid;
    push(s, JSON.stringify(o));
  }

  /** One model response: the lines around it, one assistant line per content block, its tool result. */
  function response(s, final) {
    tick(s, 20, 400);
    push(s, stamp(T.reminder, s));
    if (rand() < 0.5) push(s, stamp(T.blobs[Math.floor(rand() * T.blobs.length)], s));
    const ref = randomUUID();
    push(s, stamp(T.apiRequest, s).replace(/"id":"[^"]*"/, `"id":"${ref}"`));
    if (rand() < 0.3) push(s, stamp(T.toolsUsed, s));
    if (rand() < 0.004) {
      // a failed request whose retries ran out: zero usage, a UUID id, skipped by both readers
      const o = common(s, T.synthetic, randomUUID(), tick(s, 500, 5_000));
      o.message = { ...T.synthetic.message, id: randomUUID() };
      o.requestId = `req_011C${b62(seq++, 8)}${rs(12)}`;
      push(s, JSON.stringify(o));
      g.synthetic++;
      s.aLines++;
    }
    if (!s.sidechain && rand() < 0.03) s.model = rand() < 0.5 ? 'claude-opus-4-5-20251101' : pickModel();
    seq++;
    const id = `msg_01${b62(seq, 8)}${rs(14)}`;
    const requestId = `req_011C${b62(seq, 8)}${rs(12)}`;
    const u = usage(s);
    const blocks = [];
    if (s.thinks && rand() < 0.5) {
      blocks.push({ type: 'thinking', thinking: prose(logn(5.5, 0.9, 8_000)), signature: slice(blobs.sig, logn(6.3, 0.6, 6_000)) });
      if (u.output_tokens_details) u.output_tokens_details = { thinking_tokens: Math.floor(u.output_tokens * 0.4) };
    }
    if (final || rand() < 0.6) blocks.push({ type: 'text', text: prose(final ? logn(6, 0.8, 6_000) : logn(4, 0.8, 600)) });
    let tool = null;
    let use = null;
    if (!final) {
      const r = rand();
      tool = r < 0.35 ? 'Bash' : r < 0.65 ? 'Read' : r < 0.78 ? 'Edit' : r < 0.993 || s.sidechain ? 'Grep' : 'Agent';
      use = toolUse(s, tool);
      blocks.push(use.block);
    }
    let assistantUuid = null;
    blocks.forEach((block, i) => {
      const tpl = s.sidechain ? T.subAssistant : block.type === 'thinking' ? T.thinking : block.type === 'text' ? T.text : T.toolUse;
      assistantUuid = randomUUID();
      const o = common(s, tpl, assistantUuid, tick(s, 5, i === 0 ? 15_000 : 400));
      o.message = { ...tpl.message, id, model: s.model, content: [block], stop_reason: final ? 'end_turn' : 'tool_use', usage: u };
      o.apiBlockIndex = i;
      o.requestId = requestId;
      o.requestRef = ref;
      o.requestedModel = s.model;
      push(s, JSON.stringify(o));
      g.assistantLines++;
      s.aLines++;
    });
    g.events++;
    s.responses++;
    if (blocks.length > 1) g.splitEvents++;
    g.totals.input += u.input_tokens;
    g.totals.output += u.output_tokens;
    g.totals.cacheCreation += u.cache_creation_input_tokens;
    g.totals.cacheRead += u.cache_read_input_tokens;
    s.last = u;
    if (tool === 'Agent') {
      const sub = subagent(s);
      toolResult(s, tool, use, assistantUuid, sub);
    } else if (tool) {
      toolResult(s, tool, use, assistantUuid);
    }
  }

  function turns(s, n) {
    for (let t = 0; t < n; t++) {
      prompt(s);
      const k = 1 + Math.min(24, Math.floor(-Math.log(1 - rand()) * 4.5));
      for (let r = 0; r < k; r++) response(s, r === k - 1);
      push(s, stamp(T.lastPrompt, s));
      if (!s.sidechain && s.resumable && t === s.resumeAt) {
        push(s, stamp(T.costState, s));
        tick(s, 600_000, 20 * 3_600_000);
        header(s);
        g.resumes++;
      }
    }
  }

  function newSession(cwd, extra = {}) {
    const version = rand() < 0.25 ? '2.0.76' : '2.1.332';
    return {
      sid: randomUUID(),
      cwd,
      projDir: cwd.replaceAll('/', '-'),
      sidechain: false,
      agentId: null,
      version,
      split: version !== '2.0.76',
      oneHour: rand() < 0.3,
      thinks: rand() < 0.6,
      model: pickModel(),
      t: now - 30 * DAY + Math.floor(rand() * (30 * DAY - 2 * DAY)),
      parent: null,
      out: [],
      chars: 0,
      context: 0,
      responses: 0,
      aLines: 0,
      resumable: false,
      resumeAt: -1,
      ...extra,
    };
  }

  function writeFile(path, text) {
    writeFileSync(path, text);
    g.files++;
    g.bytes += Buffer.byteLength(text);
  }

  /** A subagent's own file, with the parent's sessionId; returns what the Agent tool_result copies. */
  function subagent(parent) {
    const agentId = rs(17, '0123456789abcdef');
    const s = { ...newSession(parent.cwd), sid: parent.sid, sidechain: true, agentId, version: parent.version, split: parent.split, t: parent.t, out: [] };
    s.model = rand() < 0.6 ? 'claude-haiku-4-5-20251001' : 'claude-sonnet-4-5-20250929';
    header(s);
    prompt(s);
    const k = 3 + Math.floor(rand() * 22);
    for (let r = 0; r < k; r++) response(s, r === k - 1);
    const subDir = join(parent.dirPath, parent.sid, 'subagents');
    mkdirSync(subDir, { recursive: true });
    writeFile(join(subDir, `agent-${agentId}.jsonl`), s.out.join(''));
    writeFileSync(join(subDir, `agent-${agentId}.meta.json`), JSON.stringify({ agentType: 'general-purpose', description: 'subagent', toolUseId: `toolu_${agentId}`, model: 'haiku' }));
    g.subagents++;
    parent.t = s.t;
    const u = s.last;
    return { agentId, usage: u, total: u.input_tokens + u.output_tokens + u.cache_creation_input_tokens + u.cache_read_input_tokens };
  }

  const cwds = Array.from({ length: PROJECT_DIRS }, (_, i) => `/srv/proj-${String(i).padStart(2, '0')}`);
  let nextLog = 64 << 20;
  while (g.bytes < targetBytes) {
    const cwd = cwds[Math.floor(rand() * cwds.length)];
    const dirPath = join(out, 'projects', cwd.replaceAll('/', '-'));
    mkdirSync(dirPath, { recursive: true });
    const n = 1 + Math.min(39, Math.floor(-Math.log(1 - rand()) * 10));
    const s = newSession(cwd, { dirPath });
    s.resumable = n > 2 && rand() < 0.2;
    s.resumeAt = Math.floor(n / 2);
    header(s);
    turns(s, n);
    push(s, stamp(T.costState, s));
    let text = s.out.join('');
    const fork = s.responses > 0 && rand() < 0.03;
    const half = !fork && rand() < 0.01;
    if (half) {
      // a process killed mid-write: the last line has no newline (and is no JSON yet)
      text += JSON.stringify(common(s, T.prompt, randomUUID(), new Date(s.t).toISOString())).slice(0, 300);
      g.halfLines++;
    }
    writeFile(join(dirPath, `${s.sid}.jsonl`), text);
    g.sessions++;
    if (fork) {
      // --fork-session: a new file replaying every parent line (same ids, new sessionId), then its own turns
      const f = newSession(cwd, { dirPath, model: 'claude-opus-4-5-20251101', t: s.t + 60_000, context: s.context, responses: s.responses, version: s.version, split: s.split });
      f.out.push(text.replaceAll(s.sid, f.sid));
      header(f);
      turns(f, 1 + Math.floor(rand() * 3));
      push(f, stamp(T.costState, f));
      writeFile(join(dirPath, `${f.sid}.jsonl`), f.out.join(''));
      g.forks++;
      g.replayed += s.responses;
      g.replayedLines += s.aLines;
      g.sessions++;
    }
    if (g.bytes >= nextLog) {
      log(`corpus: ${int(mb(g.bytes))} MB, ${int(g.files)} files, ${int(g.events)} events`);
      nextLog += 64 << 20;
    }
  }
  return g;
}

/** Every *.jsonl under dir (files before subdirectories, like the importer). */
function jsonlFiles(d, out = []) {
  const entries = readdirSync(d, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1));
  for (const e of entries) if (e.isFile() && e.name.endsWith('.jsonl')) out.push(join(d, e.name));
  for (const e of entries) if (e.isDirectory()) jsonlFiles(join(d, e.name), out);
  return out;
}

/**
 * The floor of any importer: read every file, decode it, JSON.parse every line, find the usage
 * lines. With `prefilter`, JSON.parse only the lines holding `"type":"assistant"` (Claude Code
 * writes compact JSON; an escaped copy inside a tool result reads `\\"type\\"` and does not match).
 */
function parseFloor(corpus, prefilter = false) {
  const s = clock();
  let lines = 0;
  let usageLines = 0;
  let bytes = 0;
  for (const f of jsonlFiles(join(corpus, 'projects'))) {
    const text = readFileSync(f, 'utf8');
    bytes += text.length;
    for (const l of text.split('\n')) {
      if (l === '') continue;
      lines++;
      if (prefilter && !l.includes('"type":"assistant"')) continue;
      try {
        const o = JSON.parse(l);
        if (o.type === 'assistant' && o.message?.usage) usageLines++;
      } catch {
        // half-written line
      }
    }
  }
  return { t: clock() - s, lines, usageLines, bytes };
}

/** The floor of a re-run: walk the tree and stat every transcript. */
function walkFloor(corpus) {
  const s = clock();
  let n = 0;
  for (const f of jsonlFiles(join(corpus, 'projects'))) {
    statSync(f);
    n++;
  }
  return { t: clock() - s, files: n };
}

// ---------------------------------------------------------------- (1) import runs
const importRows = [];
const totalRows = [];
const importNotes = [];
let failed = false;

async function ccusageRun(corpus) {
  const env = { ...process.env };
  for (const k of ['CLAUDE_CONFIG_DIR', 'CODEX_HOME', 'FORCE_COLOR', 'LOG_LEVEL']) delete env[k];
  const home = mkdtempSync(join(dir, 'cc-home-'));
  const r = await run(CCUSAGE, ['daily', '--json', '--offline'], { ...env, HOME: home, NO_COLOR: '1', TZ: 'UTC', CLAUDE_CONFIG_DIR: corpus });
  const t = jsonOf(r.stdout, 'ccusage daily').totals;
  return { t: r.t, totals: { input: t.inputTokens, output: t.outputTokens, cacheCreation: t.cacheCreationTokens, cacheRead: t.cacheReadTokens, all: t.totalTokens } };
}

async function sosImportSetup(label) {
  const home = join(dir, `home-${label}`);
  const db = join(dir, `import-${label}.db`);
  const env = cliEnv(home, { SOS_DB: db });
  await sosCli(['init'], env);
  for (let i = 0; i < WORKDIR_AGENTS; i++) {
    const n = String(i).padStart(2, '0');
    await sosCli(['agents', 'add', `dev-${n}`, '--workdir', `/srv/proj-${n}`], env);
  }
  return { env, db };
}

function ledgerTotals(db) {
  const c = new Database(db, { readonly: true });
  try {
    const r = c
      .prepare(
        `SELECT COUNT(*) AS events, SUM(input_tokens) AS input, SUM(output_tokens) AS output, SUM(cache_write_tokens + cache_write_1h_tokens) AS cacheCreation,
           SUM(cache_read_tokens) AS cacheRead, SUM(CASE WHEN agent IS NULL THEN 0 ELSE 1 END) AS attributed FROM usage_events`,
      )
      .get();
    return { ...r, all: r.input + r.output + r.cacheCreation + r.cacheRead };
  } finally {
    c.close();
  }
}

async function importBench() {
  const corpus = join(dir, 'corpus');
  mkdirSync(corpus);
  log(`generating a ${CORPUS_MB} MB Claude Code corpus in ${corpus}`);
  const g0 = clock();
  const g = generateCorpus(corpus, CORPUS_MB * 1_048_576);
  const genMs = clock() - g0;
  log(`corpus: ${int(mb(g.bytes))} MB, ${int(g.files)} files, ${int(g.lines)} lines, ${int(g.events)} events in ${secs(genMs)}`);

  log('floors: read + JSON.parse every line in this process, then only the assistant lines');
  const floor = parseFloor(corpus);
  const floorPre = parseFloor(corpus, true);
  if (floor.usageLines !== g.assistantLines + g.synthetic + g.replayedLines || floorPre.usageLines !== floor.usageLines) {
    throw new Error(`floors found ${floor.usageLines} / ${floorPre.usageLines} usage lines, generated ${g.assistantLines} + ${g.synthetic} synthetic + ${g.replayedLines} replayed`);
  }

  const runs = [];
  let last;
  for (let i = 0; i < IMPORT_RUNS; i++) {
    const setup = await sosImportSetup(`run${i}`);
    const order = i % 2 === 0 ? ['ccusage', 'sos'] : ['sos', 'ccusage'];
    const r = {};
    for (const who of order) {
      log(`run ${i + 1}/${IMPORT_RUNS}: ${who} reading ${int(mb(g.bytes))} MB`);
      if (who === 'ccusage') r.cc = await ccusageRun(corpus);
      else {
        const x = await sosCli(['usage', 'import', '--source', 'claude', '--path', corpus, '--json'], setup.env);
        r.sos = { t: x.t, report: jsonOf(x.stdout, 'sos usage import') };
      }
    }
    r.ledger = ledgerTotals(setup.db);
    runs.push(r);
    last = setup;
  }

  log(`re-run: ${RERUNS} × sos usage import over the unchanged corpus`);
  const passes = [];
  const walls = [];
  const walk = [];
  const node = [];
  let rerunReport;
  await run(process.execPath, ['-e', '0'], last.env);
  for (let i = 0; i < RERUNS; i++) {
    walk.push(walkFloor(corpus).t);
    node.push((await run(process.execPath, ['-e', '0'], last.env)).t);
    const x = await sosCli(['usage', 'import', '--source', 'claude', '--path', corpus, '--json'], last.env);
    rerunReport = jsonOf(x.stdout, 'sos usage import (re-run)');
    if (rerunReport.eventsNew !== 0) throw new Error(`re-run imported ${rerunReport.eventsNew} new events`);
    passes.push(rerunReport.seconds * 1000);
    walls.push(x.t);
  }

  // ---- rows
  const MB = mb(g.bytes);
  const best = (xs) => Math.min(...xs);
  const sosT = best(runs.map((r) => r.sos.t));
  const ccT = best(runs.map((r) => r.cc.t));
  const passT = best(runs.map((r) => r.sos.report.seconds * 1000));
  const rep = runs[0].sos.report;
  const runsNote = (f) => runs.map(f).join(' / ');
  importRows.push(['import MB/s (CLI wall)', `${(MB / (sosT / 1000)).toFixed(1)} MB/s`, `${(MB / (ccT / 1000)).toFixed(1)} MB/s (ccusage)`, `${(ccT / sosT).toFixed(2)}× faster`, `best of ${IMPORT_RUNS}; sos ${runsNote((r) => secs(r.sos.t))}, ccusage ${runsNote((r) => secs(r.cc.t))}`]);
  importRows.push(['import events/s (CLI wall)', `${int(g.events / (sosT / 1000))}/s`, `${int(g.events / (ccT / 1000))}/s (ccusage)`, `${(ccT / sosT).toFixed(2)}× faster`, `${int(g.events)} unique events, ${int(rep.duplicates)} fork replays skipped`]);
  importRows.push(['import pass in process (report.seconds)', secs(passT), `${secs(floor.t)} (read + JSON.parse floor)`, (passT / floor.t).toFixed(2), `floor ${(MB / (floor.t / 1000)).toFixed(0)} MB/s, ${int(floor.lines)} lines, this process`]);
  importRows.push(['import pass vs a pre-filtered floor', secs(passT), `${secs(floorPre.t)} (read + parse assistant lines only)`, (passT / floorPre.t).toFixed(2), `floor ${(MB / (floorPre.t / 1000)).toFixed(0)} MB/s: what skipping JSON.parse of non-assistant lines leaves`]);
  importRows.push(['import CLI wall vs its pass', secs(sosT), secs(passT), (sosT / passT).toFixed(2), 'startup, migrations check, JSON out']);
  const passP50 = pct(passes, 50);
  const walkP50 = pct(walk, 50);
  importRows.push(['re-run pass p50 (report.seconds)', ms(passP50), `${ms(walkP50)} (walk + stat)`, (passP50 / walkP50).toFixed(2), `aim < 100 ms; ${RERUNS} runs, min ${ms(Math.min(...passes))} max ${ms(Math.max(...passes))}; ${int(rerunReport.files)} files, ${int(rerunReport.bytes)} bytes re-read`]);
  importRows.push(['re-run CLI end to end p50', ms(pct(walls, 50)), `${ms(pct(node, 50))} (node -e 0)`, (pct(walls, 50) / pct(node, 50)).toFixed(2), `min ${ms(Math.min(...walls))} max ${ms(Math.max(...walls))}`]);

  const l = runs.at(-1).ledger;
  const cc = runs.at(-1).cc.totals;
  const truth = { ...g.totals, all: g.totals.input + g.totals.output + g.totals.cacheCreation + g.totals.cacheRead };
  for (const k of ['input', 'output', 'cacheCreation', 'cacheRead', 'all']) {
    const okSos = l[k] === truth[k];
    const okCc = cc[k] === truth[k];
    if (!okSos) failed = true;
    totalRows.push([k === 'all' ? 'total tokens' : k, int(truth[k]), int(l[k]), int(cc[k]), okSos && okCc ? 'agree' : `MISMATCH${okSos ? '' : ' (sos ≠ generated)'}${okCc ? '' : ' (ccusage ≠ generated)'}`]);
  }
  totalRows.push(['events', int(g.events), int(l.events), '', l.events === g.events ? 'agree' : 'MISMATCH']);
  if (l.events !== g.events) failed = true;
  for (const r of runs) {
    if (r.sos.report.eventsNew !== g.events || r.sos.report.duplicates !== g.replayed) {
      importNotes.push(`MISMATCH: sos reported ${r.sos.report.eventsNew} new / ${r.sos.report.duplicates} duplicates, generated ${g.events} / ${g.replayed}`);
      failed = true;
    }
  }
  importNotes.push(
    `corpus: ${MB.toFixed(0)} MB (${int(g.bytes)} bytes), ${int(g.files)} JSONL files in ${PROJECT_DIRS} project dirs (${int(g.sessions)} sessions incl. ${g.forks} forks, ` +
      `${g.resumes} resumed, ${g.subagents} subagent files), ${int(floor.lines)} lines, ${int(g.assistantLines)} assistant lines; ` +
      `${int(g.events)} unique events (${int(g.splitEvents)} split over 2-3 lines), ${int(g.replayed)} replayed by forks, ${g.synthetic} synthetic errors, ${g.halfLines} half-written last lines; ` +
      `${int(g.bytes / g.events)} bytes/event; generated in ${secs(genMs)}`,
  );
  importNotes.push(`sos attributed ${int(l.attributed)} of ${int(l.events)} events to the ${WORKDIR_AGENTS} agents with a --workdir (${WORKDIR_AGENTS} of ${PROJECT_DIRS} dirs); sos read ${int(rep.lines)} lines, ${int(rep.bytes)} bytes, corrupt ${rep.corrupt}`);
  rmSync(corpus, { recursive: true, force: true });
  log('corpus removed');
}

// ---------------------------------------------------------------- adapters for (2) and (3)
async function openSqlite(label) {
  const path = join(dir, `${label}.db`);
  const store = await sos.openStore({ target: { dialect: 'sqlite', path }, pgSchema: 'sos', busyTimeoutMs: 10_000, create: true });
  await store.migrate();
  const db = new Database(path, { timeout: 10_000 });
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  const prepared = new Map();
  const bind = (sql, params = []) => {
    let p = prepared.get(sql);
    if (!p) {
      const order = [];
      const text = sql.replace(/\$(\d+)/g, (_, n) => (order.push(Number(n) - 1), '?'));
      p = { stmt: db.prepare(text), order };
      prepared.set(sql, p);
    }
    return { stmt: p.stmt, values: p.order.map((i) => params[i]) };
  };
  return {
    name: 'sqlite',
    dialect: 'sqlite',
    store,
    target: path,
    cliEnv: {},
    async raw(sql, params) {
      const { stmt, values } = bind(sql, params);
      return stmt.reader ? stmt.all(...values) : stmt.run(...values);
    },
    async exec(sql) {
      db.exec(sql);
    },
    async seedTasks(project, n, status) {
      const at = Date.now();
      const ins = db.prepare(
        `INSERT INTO tasks (id, project, title, status, priority, attempt, max_attempts, lease_ms, available_at, unmet_deps, created_by, created_at, updated_at)
         VALUES (?, ?, ?, ?, 50, 0, 3, 600000, 0, 0, 'bench', ?, ?)`,
      );
      const ids = Array.from({ length: n }, () => sos.newId('tsk', at));
      db.transaction(() => ids.forEach((id, i) => ins.run(id, project, `bench task ${i}`, status, at, at)))();
      return ids;
    },
    async settle() {
      db.pragma('wal_checkpoint(TRUNCATE)');
    },
    async plan(sql, params) {
      const { values } = bind(sql, params);
      const text = sql.replace(/\$(\d+)/g, '?');
      return db
        .prepare(`EXPLAIN QUERY PLAN ${text}`)
        .all(...values)
        .map((r) => r.detail);
    },
    async close() {
      await store.close();
      db.close();
    },
  };
}

async function openPostgres(label) {
  const schema = `bench_economy_${label}_${tag}`;
  pgSchemas.push(schema);
  const store = await sos.openStore({ target: { dialect: 'postgres', url: pgUrl }, pgSchema: schema, busyTimeoutMs: 10_000 });
  await store.migrate();
  const client = new pg.Client({ connectionString: pgUrl, options: `-c search_path=${schema}` });
  await client.connect();
  return {
    name: 'postgres',
    dialect: 'postgres',
    store,
    target: pgUrl,
    cliEnv: { SOS_PG_SCHEMA: schema },
    async raw(sql, params) {
      return (await client.query(sql, params)).rows;
    },
    async exec(sql) {
      await client.query(sql);
    },
    async seedTasks(project, n, status) {
      const at = Date.now();
      const ids = Array.from({ length: n }, () => sos.newId('tsk', at));
      await client.query(
        `INSERT INTO tasks (id, project, title, status, priority, attempt, max_attempts, lease_ms, available_at, unmet_deps, created_by, created_at, updated_at)
         SELECT u.id, $1, 'bench task ' || u.ord, $2, 50, 0, 3, 600000, 0, 0, 'bench', $3, $3
         FROM unnest($4::text[]) WITH ORDINALITY AS u(id, ord) ORDER BY u.ord`,
        [project, status, at, ids],
      );
      return ids;
    },
    async settle() {
      await client.query('VACUUM ANALYZE tasks');
    },
    async plan(sql, params) {
      return (await client.query(`EXPLAIN (ANALYZE, BUFFERS) ${sql}`, params)).rows.map((r) => r['QUERY PLAN']);
    },
    async close() {
      await store.close();
      await client.end();
    },
  };
}

const adapterList = () => [
  ...(only !== 'postgres' ? [['sqlite', openSqlite]] : []),
  ...(only !== 'sqlite' ? [['postgres', openPostgres]] : []),
];

// ---------------------------------------------------------------- (2) claims with budgets
const claimRows = [];
const claimNotes = [];

async function budgetWorld(a, project, spent, taskIds) {
  const op = { project, agent: null, role: 'operator', via: 'local' };
  const at = Date.now();
  const set = (scope, limit, period, action) => setBudget(a.store, op, { scope, limit, period, action }, at);
  await set('project', '$5000', 'month', 'block');
  const periods = ['day', 'week', 'month', 'total'];
  for (let i = 0; i < 10; i++) await set(`agent:w${i}`, i % 3 === 0 ? '50m' : '$500', periods[i % 4], i % 2 === 0 ? 'block' : 'warn');
  for (let s = 0; s < 4; s++) await set(`squad:s${s}`, spent && s >= 2 ? '1000' : '$800', periods[(s + 1) % 4], (spent && s >= 2) || s % 2 === 0 ? 'block' : 'warn');
  for (let t = 0; t < 5; t++) await set(`task:${taskIds[t]}`, spent && t < 2 ? '1000' : '20m', 'total', spent && t < 2 ? 'block' : t % 2 === 0 ? 'block' : 'warn');
  // Spend on every budget, below its limit (or past it for the spent ones).
  const ev = (agent, task) => ({ model: 'claude-sonnet-4-5', inputTokens: 1_000, outputTokens: 500, cacheReadTokens: 20_000, agent, task, occurredAt: at });
  const events = [];
  for (let i = 0; i < 10; i++) for (let k = 0; k < 3; k++) events.push(ev(`w${i}`, null));
  for (let t = 0; t < 5; t++) events.push(ev('w9', taskIds[t]));
  await sos.recordMany(a.store, op, events, { now: () => at });
  const blocks = await claimBlocks(a.store.sql, project, 'w0', Date.now());
  return { squads: blocks.squads.size, tasks: blocks.tasks.size, all: blocks.all };
}

async function claimsBench(a) {
  const configs = [
    { name: 'no budgets', project: 'claims-none', budgets: 0 },
    { name: '20 budgets', project: 'claims-twenty', budgets: 20 },
    { name: '20 budgets, 4 spent (other scopes)', project: 'claims-spent', budgets: 20, spent: true },
  ];
  const bus = await sos.openBus({ redisUrl: undefined, maxLen: 100_000 }, a.store);
  for (const c of configs) {
    await a.store.projects.create(c.project);
    for (let i = 0; i < 10; i++) await a.store.agents.add({ project: c.project, name: `w${i}`, kind: 'custom', role: 'worker', capabilities: [], session: null });
    for (let s = 0; s < 4; s++) {
      await a.store.squads.create(c.project, `s${s}`, null);
      for (const m of [2 * s, 2 * s + 1]) await a.store.squads.join(c.project, `s${s}`, `w${m}`);
    }
    const done = await a.seedTasks(c.project, 5, 'done');
    c.blocks = c.budgets ? await budgetWorld(a, c.project, c.spent, done) : { squads: 0, tasks: 0, all: null };
    if (c.blocks.all) throw new Error(`${c.name}: the claimant is blocked by ${c.blocks.all}`);
    const n = (await a.raw('SELECT COUNT(*) AS n FROM budgets WHERE project = $1', [c.project]))[0].n;
    if (Number(n) !== c.budgets) throw new Error(`${c.name}: ${n} budgets, want ${c.budgets}`);
    c.ctx = { store: a.store, bus, maxTextBytes: 65_536 };
    c.caller = { project: c.project, agent: 'w0', role: 'agent', via: 'token' };
    c.perClaim = [];
    c.ratios = [];
    c.blockUs = [];
  }
  const M = CLAIM_M[a.name];
  for (let round = 0; round <= CLAIM_ROUNDS; round++) {
    for (const c of configs) {
      await a.seedTasks(c.project, M, 'queued');
      c.roundMs = 0;
      c.done = 0;
    }
    await a.settle();
    // Chunks of CLAIM_CHUNK claims, the configs' order rotated per chunk, so load from elsewhere
    // lands on all three alike.
    for (let chunk = 0; chunk * CLAIM_CHUNK < M; chunk++) {
      for (let k = 0; k < configs.length; k++) {
        const c = configs[(k + chunk + round) % configs.length];
        const s = clock();
        for (let i = 0; i < CLAIM_CHUNK && c.done < M; i++) {
          const { task } = await sos.claimTask(c.ctx, c.caller, {});
          await sos.completeTask(c.ctx, c.caller, { id: task.id, fence: task.attempt });
          c.done++;
        }
        c.roundMs += clock() - s;
      }
    }
    for (const c of configs) {
      const left = await a.raw("SELECT COUNT(*) AS n FROM tasks WHERE project = $1 AND status = 'queued'", [c.project]);
      if (c.done !== M || Number(left[0].n) !== 0) throw new Error(`${a.name} ${c.name}: claimed ${c.done} of ${M}, ${left[0].n} left queued`);
      if (round > 0) c.perClaim.push((c.roundMs * 1000) / M);
    }
    if (round > 0) for (const c of configs) c.ratios.push(c.perClaim.at(-1) / configs[0].perClaim.at(-1));
    log(`${a.name}: claims round ${round}${round === 0 ? ' (warm-up)' : ''} done`);
  }
  // The budget check alone, interleaved in blocks.
  for (let b = 0; b < 4; b++) {
    for (const c of configs) {
      const n = BLOCKS_CALLS / 4;
      const s = clock();
      for (let i = 0; i < n; i++) await claimBlocks(a.store.sql, c.project, 'w0', Date.now());
      c.blockUs.push(((clock() - s) * 1000) / n);
    }
  }
  await bus.close();
  const base = configs[0];
  const med = (c) => pct(c.perClaim, 50);
  for (const c of configs) {
    claimRows.push([
      a.name,
      c.name,
      `${int(1e6 / med(c))}/s`,
      `${int(med(c))} µs`,
      c === base ? '' : pct(c.ratios, 50).toFixed(3),
      c === base ? '' : `${Math.min(...c.ratios).toFixed(2)}-${Math.max(...c.ratios).toFixed(2)}`,
      `${int(pct(c.blockUs, 50))} µs`,
      c === base ? '' : `+${int(pct(c.blockUs, 50) - pct(base.blockUs, 50))} µs`,
      `${CLAIM_ROUNDS} rounds × ${int(M)}; µs/claim min ${int(Math.min(...c.perClaim))} max ${int(Math.max(...c.perClaim))}${c.spent ? `; claim excludes ${c.blocks.squads} squads, ${c.blocks.tasks} tasks` : ''}`,
    ]);
  }
}

// ---------------------------------------------------------------- (3) usage report over 10^6 events
const reportRows = [];
const plans = [];

const LEDGER_MODELS = [
  ['claude-sonnet-4-5-20250929', 'anthropic', 3, 15],
  ['claude-opus-4-5-20251101', 'anthropic', 5, 25],
  ['claude-haiku-4-5-20251001', 'anthropic', 1, 5],
  ['claude-sonnet-4-20250514', 'anthropic', 3, 15],
  ['claude-opus-4-1-20250805', 'anthropic', 15, 75],
  ['claude-sonnet-4-6', 'anthropic', 3, 15],
  ['claude-opus-4-6', 'anthropic', 5, 25],
  ['claude-3-5-haiku', 'anthropic', 1, 4],
  ['gpt-5', 'openai', 1, 10],
  ['gpt-5-mini', 'openai', 1, 2],
  ['gpt-5.3-codex', 'openai', 2, 14],
  ['gpt-5.4', 'openai', 2, 15],
  ['gpt-4.1', 'openai', 2, 8],
  ['o3', 'openai', 2, 8],
  ['gemini-2.5-pro', 'google', 1, 10],
  ['gemini-2.5-flash', 'google', 1, 3],
  ['gemini-3-pro', 'google', 2, 12],
  ['house-model-a', 'unknown', 0, 0],
  ['house-model-b', 'unknown', 0, 0],
  ['local-llama', 'unknown', 0, 0],
];

function ledgerSeedSql(dialect, n, project, start, step) {
  const pad = (expr, w) => (dialect === 'sqlite' ? `printf('%0${w}d', ${expr})` : `lpad(CAST(${expr} AS TEXT), ${w}, '0')`);
  const series = dialect === 'sqlite' ? `WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < ${n - 1}) ` : '';
  const from = dialect === 'sqlite' ? 'FROM n' : `FROM generate_series(0, ${n - 1}) AS n(i)`;
  const h = `(SELECT i, (CAST(i AS BIGINT) * 2654435761) % 1000003 AS ha, (CAST(i AS BIGINT) * 40503 + 12345) % 999983 AS hb ${from})`;
  const toks = `(SELECT i, ha, hb,
      CASE WHEN ha % 10 = 0 THEN ha % 5000 ELSE 1 + hb % 30 END AS inp,
      20 + (ha * 7) % 2000 AS outp, hb % 3000 AS cw, ha % 150000 AS cr FROM ${h} h)`;
  return `${series}INSERT INTO usage_events (id, project, agent, task, provider, model, input_tokens, output_tokens, cache_write_tokens, cache_write_1h_tokens,
      cache_read_tokens, reasoning_tokens, cost_micros, price_version, source, source_file, session_id, source_key, occurred_at, recorded_at)
    SELECT 'use_' || ${pad('g.i', 26)}, '${project}',
      CASE WHEN g.ha % 20 = 19 THEN NULL ELSE 'agent-' || ${pad('g.hb % 50', 2)} END,
      CASE WHEN g.hb % 5 = 0 THEN 'tsk_' || ${pad('g.ha % 2000', 26)} ELSE NULL END,
      m.provider, m.model, g.inp, g.outp, g.cw, 0, g.cr, 0,
      CASE WHEN m.pin > 0 THEN g.inp * m.pin + g.outp * m.pout + g.cw * m.pin * 5 / 4 + g.cr * m.pin / 10 ELSE NULL END,
      CASE WHEN m.pin > 0 THEN 'bench-1' ELSE NULL END,
      'claude', '/srv/proj-' || ${pad('g.hb % 30', 2)} || '/session.jsonl', 'ses-' || (g.i / 200), 'k' || g.i,
      ${start} + CAST(g.i AS BIGINT) * ${step}, ${start} + CAST(g.i AS BIGINT) * ${step} + 1000
    FROM ${toks} g JOIN bench_models m ON m.k = (g.ha + g.hb) % 20`;
}

/** The statement `sos usage --by agent` ran over usage_events before the rollups: the raw primitive. */
const RAW_GROUP_BY = `SELECT COALESCE(u.agent, '-') AS key, CAST(COALESCE(SUM(u.input_tokens), 0) AS BIGINT) AS input_tokens,
  CAST(COALESCE(SUM(u.output_tokens), 0) AS BIGINT) AS output_tokens,
  CAST(COALESCE(SUM(u.cache_write_tokens), 0) AS BIGINT) AS cache_write_tokens,
  CAST(COALESCE(SUM(u.cache_write_1h_tokens), 0) AS BIGINT) AS cache_write_1h_tokens,
  CAST(COALESCE(SUM(u.cache_read_tokens), 0) AS BIGINT) AS cache_read_tokens,
  CAST(COALESCE(SUM(u.reasoning_tokens), 0) AS BIGINT) AS reasoning_tokens,
  CAST(COUNT(*) AS BIGINT) AS events,
  CAST(COALESCE(SUM(u.cost_micros), 0) AS BIGINT) AS cost_micros,
  CAST(COALESCE(SUM(CASE WHEN u.cost_micros IS NULL THEN 1 ELSE 0 END), 0) AS BIGINT) AS unknown_cost_events FROM usage_events u  WHERE u.project = $1 GROUP BY COALESCE(u.agent, '-')`;

/** The rollup migration's backfill (its statements from `-- The ledger so far.`), as the build ships it. */
function rollupBackfill(dialect) {
  const dirPath = join(root, 'dist', 'chunks', 'migrations', dialect);
  const file = readdirSync(dirPath).find((f) => f.endsWith('_usage_rollup.sql'));
  if (!file) throw new Error(`no *_usage_rollup.sql in ${dirPath}: run npm run build`);
  const text = readFileSync(join(dirPath, file), 'utf8');
  const at = text.indexOf('-- The ledger so far.');
  if (at < 0) throw new Error(`${file} has no backfill section`);
  return text.slice(at);
}

async function reportBench(a) {
  const project = 'ledger';
  await a.store.projects.create(project);
  const at = Date.now();
  const pad = (expr, w) => (a.dialect === 'sqlite' ? `printf('%0${w}d', ${expr})` : `lpad(CAST(${expr} AS TEXT), ${w}, '0')`);
  const series = (n) => (a.dialect === 'sqlite' ? `WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < ${n - 1}) ` : '');
  const from = (n) => (a.dialect === 'sqlite' ? 'FROM n' : `FROM generate_series(0, ${n - 1}) AS n(i)`);
  await a.exec(`${series(2000)}INSERT INTO tasks (id, project, title, status, priority, attempt, max_attempts, lease_ms, available_at, unmet_deps, created_by, created_at, updated_at)
    SELECT 'tsk_' || ${pad('i', 26)}, '${project}', 'ledger task ' || i, CASE WHEN i % 2 = 0 THEN 'done' ELSE 'queued' END, 50, 0, 3, 600000, 0, 0, 'bench', ${at}, ${at} ${from(2000)}`);
  await a.exec('CREATE TEMP TABLE bench_models (k INTEGER PRIMARY KEY, model TEXT NOT NULL, provider TEXT NOT NULL, pin INTEGER NOT NULL, pout INTEGER NOT NULL)');
  await a.exec(`INSERT INTO bench_models (k, model, provider, pin, pout) VALUES ${LEDGER_MODELS.map(([m, p, i, o], k) => `(${k}, '${m}', '${p}', ${i}, ${o})`).join(', ')}`);
  log(`${a.name}: seeding ${int(LEDGER_N)} usage events`);
  const s = clock();
  const span = 30 * DAY;
  await a.exec('BEGIN');
  await a.exec(ledgerSeedSql(a.dialect, LEDGER_N, project, at - span, Math.floor(span / LEDGER_N)));
  await a.exec('COMMIT');
  // The events went in behind sos's back: fill the rollups as the migration does for a ledger it finds.
  const r = clock();
  await a.exec('BEGIN');
  await a.exec(rollupBackfill(a.dialect));
  await a.exec('COMMIT');
  const rollupMs = clock() - r;
  if (a.dialect === 'postgres') {
    await a.exec('VACUUM ANALYZE usage_events');
    await a.exec('VACUUM ANALYZE usage_rollup');
    await a.exec('VACUUM ANALYZE usage_task_rollup');
    await a.exec('VACUUM ANALYZE tasks');
  }
  else await a.settle();
  const seedMs = clock() - s;
  const count = Number((await a.raw('SELECT COUNT(*) AS n FROM usage_events WHERE project = $1', [project]))[0].n);
  if (count !== LEDGER_N) throw new Error(`${a.name}: seeded ${count} events, want ${LEDGER_N}`);
  const rollupRows = Number((await a.raw('SELECT COUNT(*) AS n FROM usage_rollup WHERE project = $1', [project]))[0].n);
  const taskRollupRows = Number((await a.raw('SELECT COUNT(*) AS n FROM usage_task_rollup WHERE project = $1', [project]))[0].n);
  log(`${a.name}: seeded in ${secs(seedMs)} (rollups ${secs(rollupMs)}: ${int(rollupRows)} + ${int(taskRollupRows)} rows)`);

  const caller = { project, agent: null, role: 'operator', via: 'local' };
  // The statements usageReport runs, captured from sos.
  const seen = [];
  const drv = a.store.sql;
  const orig = { all: drv.all, one: drv.one };
  drv.all = (sql, params) => (seen.push([sql, params]), orig.all.call(drv, sql, params));
  drv.one = (sql, params) => (seen.push([sql, params]), orig.one.call(drv, sql, params));
  let first;
  try {
    first = await sos.usageReport(a.store, caller, { by: 'agent' });
  } finally {
    delete drv.all;
    delete drv.one;
  }
  if (seen.length === 0) throw new Error('captured no statement from usageReport');
  const grouped = [RAW_GROUP_BY, [project]];
  if (first.rows.length !== 51 || first.total.events !== LEDGER_N) throw new Error(`${a.name}: report has ${first.rows.length} rows, ${first.total.events} events`);
  // The report from the rollups is the ledger's own GROUP BY, row for row.
  const want = new Map((await a.raw(...grouped)).map((x) => [x.key, x]));
  for (const row of first.rows) {
    const x = want.get(row.key);
    const same =
      x &&
      Number(x.events) === row.events &&
      Number(x.input_tokens) === row.inputTokens &&
      Number(x.output_tokens) === row.outputTokens &&
      Number(x.cache_write_tokens) === row.cacheWriteTokens &&
      Number(x.cache_read_tokens) === row.cacheReadTokens &&
      Number(x.unknown_cost_events) === row.unknownCostEvents &&
      Number(x.cost_micros) === (row.costMicros ?? 0);
    if (!same) throw new Error(`${a.name}: usageReport row ${JSON.stringify(row)} differs from the raw GROUP BY ${JSON.stringify(x)}`);
  }
  const rawAll = async () => {
    for (const [q, p] of seen) await a.raw(q, p);
  };
  for (let i = 0; i < 2; i++) {
    await sos.usageReport(a.store, caller, { by: 'agent' });
    await a.raw(grouped[0], grouped[1]);
    await rawAll();
  }
  const svc = [];
  const raw = [];
  const rawEvery = [];
  for (let i = 0; i < REPORT_CALLS; i++) {
    const steps = [
      async () => {
        const t = clock();
        const rows = await a.raw(grouped[0], grouped[1]);
        raw.push(clock() - t);
        if (rows.length !== 51) throw new Error(`raw GROUP BY returned ${rows.length} rows`);
      },
      async () => {
        const t = clock();
        await sos.usageReport(a.store, caller, { by: 'agent' });
        svc.push(clock() - t);
      },
      async () => {
        const t = clock();
        await rawAll();
        rawEvery.push(clock() - t);
      },
    ];
    for (let k = 0; k < steps.length; k++) await steps[(k + i) % steps.length]();
  }
  log(`${a.name}: usage report CLI`);
  const home = mkdtempSync(join(dir, 'home-report-'));
  const env = cliEnv(home, a.cliEnv);
  const args = ['usage', '--by', 'agent', '--json', '--db', a.target, '--project', project];
  const check = jsonOf((await sosCli(args, env)).stdout, 'sos usage');
  if (check.total.events !== LEDGER_N) throw new Error(`sos usage reported ${check.total.events} events`);
  await run(process.execPath, ['-e', '0'], env);
  const cli = [];
  const node = [];
  for (let i = 0; i < CLI_RUNS; i++) {
    node.push((await run(process.execPath, ['-e', '0'], env)).t);
    cli.push((await sosCli(args, env)).t);
  }
  const note = `${int(LEDGER_N)} events, 51 groups; seeded in ${secs(seedMs)}, rollups ${int(rollupRows)} + ${int(taskRollupRows)} rows`;
  reportRows.push([a.name, 'usageReport p50', ms(pct(svc, 50)), `${ms(pct(raw, 50))} (raw GROUP BY)`, (pct(svc, 50) / pct(raw, 50)).toFixed(2), `aim < 200 ms; ${note}`]);
  reportRows.push([a.name, 'usageReport p95', ms(pct(svc, 95)), `${ms(pct(raw, 95))} (raw GROUP BY)`, (pct(svc, 95) / pct(raw, 95)).toFixed(2), `${REPORT_CALLS} calls, rotated with the raw runs`]);
  reportRows.push([a.name, 'usageReport p50 vs its statements', ms(pct(svc, 50)), `${ms(pct(rawEvery, 50))} (all ${seen.length} raw)`, (pct(svc, 50) / pct(rawEvery, 50)).toFixed(2), 'the statements it runs (captured from sos), one after another']);
  reportRows.push([a.name, '`sos usage --by agent` CLI p50', ms(pct(cli, 50)), `${ms(pct(node, 50))} (node -e 0)`, (pct(cli, 50) / pct(node, 50)).toFixed(2), `${CLI_RUNS} runs, min ${ms(Math.min(...cli))} max ${ms(Math.max(...cli))}`]);
  // What-ifs, raw over usage_events: the GROUP BY as a plain table scan (SQLite picks an index on
  // project and then looks every row up), and one scan grouped by agent and model, from which the
  // rows, the total and the unpriced models all follow (what the rollup statement does over days).
  const [gsql, gparams] = grouped;
  const scan = (q) => (a.dialect === 'sqlite' ? q.replace('FROM usage_events u ', 'FROM usage_events u NOT INDEXED ') : q);
  const onePass = gsql.replace(' AS key, ', ' AS key, u.model AS model, ').replace(/GROUP BY (.*)$/s, 'GROUP BY $1, u.model');
  if (onePass === gsql || !/u\.model AS model/.test(onePass)) throw new Error(`could not derive the one-scan statement from:\n${gsql}`);
  const whatIfs = [
    ...(a.dialect === 'sqlite' ? [['what-if: GROUP BY as a table scan', scan(gsql), 'NOT INDEXED']] : []),
    ['what-if: one scan by agent + model', scan(onePass), `rows + total + unknown models in one statement${a.dialect === 'sqlite' ? ', NOT INDEXED' : ''}`],
  ];
  for (const [label, q, note] of whatIfs) {
    const xs = [];
    let groups = 0;
    for (let i = 0; i < 5; i++) {
      const t = clock();
      groups = (await a.raw(q, gparams)).length;
      xs.push(clock() - t);
    }
    reportRows.push([a.name, label, ms(pct(xs, 50)), `${ms(pct(raw, 50))} (GROUP BY)`, (pct(xs, 50) / pct(raw, 50)).toFixed(2), `${note}; ${groups} groups; 5 runs`]);
    plans.push({ adapter: a.name, sql: `[${label}] ${q.replace(/\s+/g, ' ').trim()}`, ms: pct(xs, 50), plan: await a.plan(q, gparams) });
  }
  for (const [q, p] of seen) {
    const t = clock();
    await a.raw(q, p);
    const alone = clock() - t;
    plans.push({ adapter: a.name, sql: q.replace(/\s+/g, ' ').trim(), ms: alone, plan: await a.plan(q, p) });
  }
}

// ---------------------------------------------------------------- run
try {
  if (PARTS.has('import')) await importBench();
  for (const [name, open] of adapterList()) {
    if (PARTS.has('claims')) {
      log(`${name}: claims with and without budgets`);
      const a = await open('claims');
      try {
        await claimsBench(a);
      } finally {
        await a.close();
      }
    }
    if (PARTS.has('report')) {
      const a = await open('report');
      try {
        await reportBench(a);
      } finally {
        await a.close();
      }
    }
  }
} finally {
  await cleanup();
}

// ---------------------------------------------------------------- report
function print(headers, rows) {
  const widths = headers.map((_, c) => Math.max(...[headers, ...rows].map((x) => String(x[c] ?? '').length)));
  const line = (x) =>
    x
      .map((v, c) => (c > 0 && /^[\d.,+]+( ms| µs| s|\/s| MB\/s|×.*)?$/.test(String(v)) ? String(v).padStart(widths[c]) : String(v ?? '').padEnd(widths[c])))
      .join('  ')
      .trimEnd();
  console.log(line(headers));
  for (const x of rows) console.log(line(x));
}

const ccVersion = JSON.parse(readFileSync(join(root, 'node_modules', 'ccusage', 'package.json'), 'utf8')).version;
console.log(
  `economy benchmark: Node ${process.version}, ${cpus().length} CPUs, ${int(totalmem() / 1_073_741_824)} GB RAM, load ${loadavg()
    .map((x) => x.toFixed(2))
    .join(' ')} at the end (shared machine: other work runs alongside); ccusage ${ccVersion}`,
);
if (importRows.length) {
  console.log(`\n(1) transcript import, SQLite store, corpus in the page cache`);
  print(['measure', 'sos', 'comparison', 'ratio', 'notes'], importRows);
  console.log('');
  print(['tokens', 'generated', 'sos ledger', 'ccusage', 'check'], totalRows);
  for (const n of importNotes) console.log(`  ${n}`);
}
if (claimRows.length) {
  console.log(`\n(2) claim + complete, one in-process worker; the three projects interleaved in chunks of ${CLAIM_CHUNK} claims;\n    ratio = µs per claim / µs with no budgets in the same round, median over rounds (aim ≤ 1.10)`);
  print(['adapter', 'budgets', 'rate', 'µs/claim p50', 'ratio p50', 'ratio range', 'claimBlocks alone', 'vs none', 'notes'], claimRows);
  for (const n of claimNotes) console.log(`  ${n}`);
}
if (reportRows.length) {
  console.log('\n(3) `sos usage --by agent` over the ledger');
  print(['adapter', 'measure', 'sos', 'raw primitive', 'ratio', 'notes'], reportRows);
  console.log('\nstatements of usageReport, each run raw once, with its plan');
  for (const p of plans) {
    console.log(`  ${p.adapter} ${ms(p.ms)}: ${p.sql.length > 160 ? `${p.sql.slice(0, 160)}…` : p.sql}`);
    for (const l of p.plan) console.log(`      ${l}`);
  }
}
console.log(`\ntotal ${((Date.now() - began) / 1000).toFixed(0)} s`);
if (failed) {
  console.log('FAILED: the sos ledger does not match the generated corpus (see MISMATCH above)');
  process.exitCode = 1;
}
