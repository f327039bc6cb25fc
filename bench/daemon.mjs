#!/usr/bin/env node
// Daemon benchmarks (issue 7), against the raw primitive measured in the same run:
//   (a) idle cost: `sos daemon` (default intervals) supervising N fake agents in real tmux
//       sessions, nothing to do: CPU % (utime+stime from /proc over the window) and RSS.
//   (b) wake-to-injection latency: M messages, round-robin over the idle agents, each sent
//       through the public API (durable when sendMessage returns: t0), measured to the moment the
//       fake agent logs the line it received (t1). raw = the same line typed by `tmux send-keys -l`
//       + Enter straight into the same kind of session, to the same log event: the floor of any
//       injection. Ratio = sos / raw at p50 and p99.
// Usage: npm run build && node bench/daemon.mjs [agents=20] [idleSeconds=60] [messages=200]
//   SOS_BENCH_BACKEND=sqlite (default) | redis (SQLite Store, Redis bus at SOS_BENCH_REDIS_URL,
//   default redis://127.0.0.1:6379, in a project of its own whose keys are deleted at the end) |
//   postgres (Store and bus in a fresh schema at SOS_BENCH_DATABASE_URL, dropped at the end).
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as sos from '../dist/index.js';

const AGENTS = Number(process.argv[2] ?? 20);
const IDLE_S = Number(process.argv[3] ?? 60);
const MESSAGES = Number(process.argv[4] ?? 200);
const root = fileURLToPath(new URL('..', import.meta.url));
const BIN = join(root, 'bin', 'sos');
const FAKE = join(root, 'test', 'fixtures', 'fake-agent.mjs');
const PATTERNS = join(root, 'test', 'fixtures', 'fake-agent.patterns.json');
const dir = mkdtempSync(join(tmpdir(), 'sos-bench-daemon-'));
const socket = join(dir, 'tmux.sock');
const env = { ...process.env, SOS_DB: join(dir, 'sos.db'), SOS_DATA_DIR: join(dir, 'data'), XDG_CONFIG_HOME: join(dir, 'cfg') };
for (const k of Object.keys(env)) if (k.startsWith('SOS_') && !['SOS_DB', 'SOS_DATA_DIR'].includes(k)) delete env[k];
const BACKEND = process.env.SOS_BENCH_BACKEND ?? 'sqlite';
if (!['sqlite', 'redis', 'postgres'].includes(BACKEND)) throw new Error(`SOS_BENCH_BACKEND must be sqlite, redis or postgres, not ${BACKEND}`);
const tag = `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;
const project = BACKEND === 'sqlite' ? 'default' : `bench-${tag}`;
const redisUrl = process.env.SOS_BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379';
const pgUrl = process.env.SOS_BENCH_DATABASE_URL ?? 'postgres://sos_test:sos_test@127.0.0.1:5432/sos_test';
const pgSchema = `bench_daemon_${tag}`;
env.SOS_PROJECT = project;
env.SOS_LISTEN = 'off';
if (BACKEND === 'redis') env.SOS_REDIS_URL = redisUrl;
if (BACKEND === 'postgres') Object.assign(env, { SOS_DB: pgUrl, SOS_PG_SCHEMA: pgSchema });
const WAKE_SOURCE = { sqlite: 'SQLite: change counter read every 10 ms between wake passes', redis: 'Redis: PSUBSCRIBE push', postgres: 'PostgreSQL: LISTEN/NOTIFY push' }[BACKEND];
const names = Array.from({ length: AGENTS }, (_, i) => `a${i}`);
const logOf = (n) => join(dir, `${n}.log`);
const run = (args) => execFileSync(process.execPath, [BIN, ...args], { env, encoding: 'utf8' });
const tmux = (args) => execFileSync('tmux', ['-S', socket, ...args], { encoding: 'utf8' });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};
const lines = (n) => {
  try {
    return readFileSync(logOf(n), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
  } catch {
    return [];
  }
};
async function waitLine(n, match, timeoutMs = 15_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const hit = lines(n).find((l) => l.line && match(l.line));
    if (hit) return hit.at;
    if (Date.now() > deadline) throw new Error(`no line matching on ${n}`);
    await sleep(5);
  }
}
function cpuTicks(pid) {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return Number(f[11]) + Number(f[12]); // utime + stime (fields 14, 15)
}
const rssMb = (pid) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]) / 1024;
const TICK = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());

let daemon;
let errLog = '';
try {
  run(['init', '-q']);
  run(['agents', 'add', 'boss', '--role', 'coordinator', '-q']);
  for (const n of names) {
    run(['agents', 'add', n, '--session', `tmux:${n}`, '--tmux-socket', socket, '--start-cmd', `node ${FAKE} --log ${logOf(n)}`, '--workdir', dir, '--patterns', PATTERNS, '--wake', 'text', '-q']);
  }
  daemon = spawn(process.execPath, [BIN, 'daemon', '--wake-cooldown', '1s'], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  errLog = '';
  daemon.stderr.on('data', (d) => (errLog += d));
  // The daemon starts every (never started) warm agent and types its context pack.
  for (const n of names) await waitLine(n, (l) => l.startsWith('[sos] context after restart'), 60_000);
  await sleep(3_000); // let the last restarts' probes settle
  console.log(`daemon pid ${daemon.pid}, ${AGENTS} agents started and idle`);

  // (a) idle
  const c0 = cpuTicks(daemon.pid);
  const t0 = Date.now();
  const rss = [];
  while (Date.now() - t0 < IDLE_S * 1000) {
    rss.push(rssMb(daemon.pid));
    await sleep(1_000);
  }
  const cpu = ((cpuTicks(daemon.pid) - c0) / TICK / ((Date.now() - t0) / 1000)) * 100;
  console.log(`(a) idle over ${IDLE_S}s with ${AGENTS} agents: CPU ${cpu.toFixed(2)}% of one core; RSS ${Math.min(...rss).toFixed(1)}–${Math.max(...rss).toFixed(1)} MB`);

  // (b) latency: sos, then raw, over the same sessions.
  const store = await sos.openStore({ target: sos.parseStoreTarget(env.SOS_DB, dir), pgSchema: env.SOS_PG_SCHEMA ?? 'sos', busyTimeoutMs: 10_000 });
  const ctx = await sos.openBusContext({ ...(await sos.resolveConfig({ env, flags: {} })).values }, store);
  const caller = { project, agent: 'boss', role: 'operator', via: 'local' };
  const wake = [];
  for (let i = 0; i < MESSAGES; i++) {
    const n = names[i % AGENTS];
    const text = `bench message ${i}`;
    await sendAndMeasure(n, text);
  }
  async function sendAndMeasure(n, text) {
    await sos.sendMessage(ctx, caller, { to: n, text });
    const sent = Date.now();
    const at = await waitLine(n, (l) => l === `[sos] from boss: ${text}`);
    wake.push(at - sent);
  }
  await ctx.bus.close();
  await store.close();
  const raw = [];
  for (let i = 0; i < MESSAGES; i++) {
    const n = names[i % AGENTS];
    const text = `raw message ${i}`;
    const sent = Date.now();
    tmux(['send-keys', '-t', n, '-l', '--', text]);
    tmux(['send-keys', '-t', n, 'Enter']);
    raw.push((await waitLine(n, (l) => l === text)) - sent);
  }
  const row = (label, xs) => `${label} p50 ${pct(xs, 50)} ms, p99 ${pct(xs, 99)} ms, max ${Math.max(...xs)} ms`;
  console.log(`(b) wake-to-injection over ${MESSAGES} messages to ${AGENTS} idle agents (${WAKE_SOURCE}):`);
  console.log(`    sos: ${row('', wake)}`);
  console.log(`    raw tmux send-keys: ${row('', raw)}`);
  console.log(`    ratio sos/raw: p50 ${(pct(wake, 50) / Math.max(1, pct(raw, 50))).toFixed(1)}×, p99 ${(pct(wake, 99) / Math.max(1, pct(raw, 99))).toFixed(1)}×`);
  if (process.env.BENCH_WAKE_PROFILE) {
    const profs = errLog.split('\n').filter((l) => l.startsWith('{"prof"')).map((l) => JSON.parse(l).prof);
    for (const k of Object.keys(profs[0] ?? {})) console.log(`    profile ${k}: p50 ${pct(profs.map((p) => p[k]), 50).toFixed(1)} ms, p99 ${pct(profs.map((p) => p[k]), 99).toFixed(1)} ms (n=${profs.length})`);
  }
  if (/loop_error/.test(errLog)) console.log(`daemon reported loop errors:\n${errLog.split('\n').filter((l) => l.includes('loop_error')).slice(0, 5).join('\n')}`);
} catch (err) {
  console.error(`daemon stderr (tail):\n${errLog.split('\n').slice(-15).join('\n')}`);
  throw err;
} finally {
  if (daemon && daemon.exitCode === null) {
    daemon.kill('SIGTERM');
    await new Promise((r) => daemon.once('exit', r));
  }
  try {
    tmux(['kill-server']);
  } catch {
    // no server
  }
  rmSync(dir, { recursive: true, force: true });
  if (BACKEND === 'postgres') {
    const { default: pg } = await import('pg');
    const admin = new pg.Client({ connectionString: pgUrl });
    await admin.connect();
    await admin.query(`DROP SCHEMA IF EXISTS "${pgSchema}" CASCADE`);
    await admin.end();
  }
  if (BACKEND === 'redis') await sos.dropRedisProject(redisUrl, project);
}
