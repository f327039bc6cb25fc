#!/usr/bin/env node
/* global clearInterval */
// `sos top` under load, against the plainest Ink program that draws a table at the same rate.
// Issue 15's aims: under 3% of one core and under 120 MB RSS with 200 agents and 20 events a
// second on SQLite; an event on screen within 300 ms (p95); the first full frame within 400 ms.
//
// A SQLite project with AGENTS agents (a quarter on plans, every lifecycle state), 4 squads and
// 400 open tasks. `sos top` runs in a real pseudo-terminal (node-pty) at 160x50, where the wide
// layout shows the activity panel. This process then creates EVENTS_PER_S tasks a second through
// the core (each a `task.created` event whose title carries a marker `[ev-N]`) and reads the
// terminal's byte stream: an event's latency is from just before its createTask call to the first
// output that contains its marker. CPU is utime+stime from /proc/<pid>/stat over the window; RSS
// is VmRSS sampled every 500 ms. Then bench/ink-table.mjs (a 30-row Ink table re-rendered at the
// same rate, nothing behind it) runs in the same pseudo-terminal size for the same window: the
// ratio is sos top's CPU over the table's. Start-up is spawn to the first byte of the first frame
// that has the header (the snapshot drawn, not "reading…"), over STARTS fresh processes.
//   npm run build && node bench/top.mjs [seconds=60] [agents=200] [eventsPerSecond=20] [starts=7]
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import pty from 'node-pty';
import * as sos from '../dist/index.js';

const SECONDS = Number(process.argv[2] ?? 60);
const AGENTS = Number(process.argv[3] ?? 200);
const RATE = Number(process.argv[4] ?? 20);
const STARTS = Number(process.argv[5] ?? 7);
const COLS = 160;
const ROWS = 50;
const root = fileURLToPath(new URL('..', import.meta.url));
const BIN = join(root, 'bin', 'sos');
const TICK = 100; // USER_HZ: /proc/<pid>/stat counts in 1/100 s on Linux

const home = mkdtempSync(join(tmpdir(), 'sos-bench-top-'));
// NODE_ENV=production for both programs: React's production build, as `sos top` loads it.
const env = { ...process.env, HOME: home, XDG_DATA_HOME: join(home, 'data'), XDG_CONFIG_HOME: join(home, 'config'), TERM: 'xterm-256color', NODE_ENV: 'production' };
for (const key of Object.keys(env)) if (key.startsWith('SOS_') || key === 'CI' || key === 'NO_COLOR') delete env[key];

const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};
const cpuTicks = (pid) => {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return Number(fields[11]) + Number(fields[12]); // utime, stime (fields 14 and 15 of stat)
};
const rssMb = (pid) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A program in a pseudo-terminal, its output searched as it arrives. */
function terminal(file, args) {
  const started = performance.now();
  const p = pty.spawn(file, args, { name: 'xterm-256color', cols: COLS, rows: ROWS, cwd: root, env });
  const t = { p, started, bytes: 0, tail: '', watchers: [], exited: false };
  p.onData((chunk) => {
    t.bytes += chunk.length;
    const text = t.tail + chunk;
    const at = performance.now();
    t.watchers = t.watchers.filter((w) => {
      if (!text.includes(w.marker)) return true;
      w.resolve(at);
      return false;
    });
    t.tail = text.slice(-64);
  });
  p.onExit(() => {
    t.exited = true;
  });
  t.when = (marker) => new Promise((resolve) => t.watchers.push({ marker, resolve }));
  return t;
}

async function stop(t) {
  if (t.exited) return;
  const gone = new Promise((r) => t.p.onExit(r));
  t.p.kill('SIGTERM');
  await Promise.race([gone, sleep(3_000)]);
  if (!t.exited) t.p.kill('SIGKILL');
}

/** CPU share of one core and RSS over `seconds` for the process in `t`, while `during` runs. */
async function window(t, seconds, during) {
  const pid = t.p.pid;
  const rss = [];
  const c0 = cpuTicks(pid);
  const w0 = performance.now();
  const sampler = setInterval(() => rss.push(rssMb(pid)), 500);
  await during(seconds);
  clearInterval(sampler);
  const cpu = (cpuTicks(pid) - c0) / TICK / ((performance.now() - w0) / 1000);
  return { cpu, rssMax: Math.max(...rss), rssMean: rss.reduce((a, b) => a + b, 0) / rss.length };
}

try {
  // ---- the world: a project with AGENTS agents, 4 squads, 400 open tasks
  const init = sos.resolveConfig({ env, flags: {} });
  const config = await init;
  const store = await sos.openStore({ target: sos.parseStoreTarget(config.values.db, root), pgSchema: config.values.pgSchema, busyTimeoutMs: 10_000, create: true });
  await store.migrate();
  const project = config.values.project;
  await store.projects.create(project);
  const kinds = ['claude', 'codex', 'gemini', 'shell'];
  for (let i = 0; i < AGENTS; i++) {
    await store.agents.add({ project, name: `agent-${String(i).padStart(3, '0')}`, kind: kinds[i % 4], role: 'worker', capabilities: ['code'], session: null });
  }
  const squads = ['ops', 'web', 'data', 'infra'];
  for (const [i, s] of squads.entries()) {
    await store.squads.create(project, s, null);
    for (let j = i; j < AGENTS; j += 4) await store.squads.join(project, s, `agent-${String(j).padStart(3, '0')}`);
  }
  const bus = await sos.openBus(config.values, store);
  const tasks = { store, bus, maxTextBytes: 65_536 };
  const operator = { project, agent: null, role: 'operator', via: 'local' };
  for (let i = 0; i < 400; i++) await sos.createTask(tasks, operator, { title: `background work ${i}`, squad: squads[i % 4], priority: i % 100 });

  // ---- start-up: spawn to the first frame with the header, STARTS times
  const starts = [];
  for (let i = 0; i < STARTS; i++) {
    const t = terminal(process.execPath, [BIN, 'top']);
    const at = await Promise.race([t.when(`${AGENTS} agents · `), sleep(10_000).then(() => NaN)]);
    starts.push(at - t.started);
    await stop(t);
  }

  // ---- sos top under RATE events a second for SECONDS
  const top = terminal(process.execPath, [...(process.env.BENCH_NODE_ARGS ? process.env.BENCH_NODE_ARGS.split(' ') : []), BIN, 'top', '--interval', '1000']);
  await top.when(`${AGENTS} agents · `);
  await sleep(2_000); // past the first loads
  const latencies = [];
  let missed = 0;
  let emitted = 0;
  const events = async (seconds) => {
    const pending = [];
    const end = performance.now() + seconds * 1000;
    let next = performance.now();
    while (performance.now() < end) {
      const n = emitted++;
      const marker = `[ev-${n}]`;
      const t0 = performance.now();
      const seen = Promise.race([top.when(marker), sleep(5_000).then(() => null)]);
      await sos.createTask(tasks, operator, { title: `${marker} event`, squad: squads[n % 4] });
      pending.push(seen.then((at) => (at === null ? missed++ : latencies.push(at - t0))));
      next += 1000 / RATE;
      await sleep(Math.max(0, next - performance.now()));
    }
    await Promise.all(pending);
  };
  const topUse = await window(top, SECONDS, events);
  await stop(top);

  // ---- the plain Ink table at the same rate, same terminal size, same window
  const table = terminal(process.execPath, [join(root, 'bench', 'ink-table.mjs'), String(RATE)]);
  await table.when('ink table · ');
  await sleep(2_000);
  const tableUse = await window(table, SECONDS, (s) => sleep(s * 1000));
  await stop(table);
  await bus.close();
  await store.close();

  const f = (x, d = 1) => (Number.isFinite(x) ? x.toFixed(d) : 'n/a');
  console.log(`sos top on SQLite: ${AGENTS} agents, ${RATE} events/s for ${SECONDS} s, ${COLS}x${ROWS} pseudo-terminal (node ${process.version})`);
  console.log('');
  console.log('| measure | sos top | plain Ink table | ratio | aim |');
  console.log('|---|---|---|---|---|');
  console.log(`| CPU, share of one core | ${f(topUse.cpu * 100, 2)}% | ${f(tableUse.cpu * 100, 2)}% | ${f(topUse.cpu / tableUse.cpu, 2)}x | < 3% |`);
  console.log(`| RSS max / mean | ${f(topUse.rssMax)} / ${f(topUse.rssMean)} MB | ${f(tableUse.rssMax)} / ${f(tableUse.rssMean)} MB | ${f(topUse.rssMax / tableUse.rssMax, 2)}x | < 120 MB |`);
  console.log(`| event to screen p50 / p95 / max | ${f(pct(latencies, 50))} / ${f(pct(latencies, 95))} / ${f(Math.max(...latencies))} ms | | | p95 < 300 ms |`);
  console.log(`| events on screen / emitted | ${latencies.length} / ${emitted} (${missed} not seen within 5 s) | | | all |`);
  console.log(`| first full frame p50 / max (${STARTS} starts) | ${f(pct(starts, 50))} / ${f(Math.max(...starts))} ms | | | < 400 ms |`);
} finally {
  rmSync(home, { recursive: true, force: true });
}
