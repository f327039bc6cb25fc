#!/usr/bin/env node
// `sos worker` per-task overhead (issue 18), against the raw primitives measured in the same run.
//   (a) sos worker --once --concurrency 1 over T trivial tasks, the program test/fixtures/fake-claude.mjs
//       (prints claude's stream-json, writes a file, commits it): per task, the worker's own split
//       (setup: claim-to-spawn, worktree and context; cli: spawn to exit; teardown: artifacts,
//       complete, engram, worktree removal) and the wall time of the whole run divided by T
//       (which adds the claims and the process's start);
//   (b) raw, one after another, T times: `git worktree add -b` + the same program spawned in the
//       worktree with the same stdin + `git worktree remove`: what a task costs with nothing of sos;
//   (c) throughput: N trivial tasks at concurrency C (the 50 at 4), tasks/s.
//   The overhead of sos is (a) minus (b); the ratio is (a)/(b). p50/p95 over the T tasks.
// The repository has F files (default 10,000, as the issue asks), so every worktree checks them out.
// Usage: npm run build && node bench/worker.mjs [tasks=10] [files=10000] [throughput-tasks=50] [concurrency=4]
import { execFile, execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const BIN = join(root, 'bin', 'sos');
const FAKE = join(root, 'test', 'fixtures', 'fake-claude.mjs');
const [T = 10, F = 10_000, N = 50, C = 4] = process.argv.slice(2).map(Number);

const dir = mkdtempSync(join(tmpdir(), 'sos-bench-worker-'));
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
const home = join(dir, 'home');
const env = {};
for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('SOS_')) env[k] = v;
Object.assign(env, { HOME: home, XDG_DATA_HOME: join(home, 'data'), XDG_CONFIG_HOME: join(home, 'config'), SOS_DB: join(dir, 'sos.db'), FAKE_CLAUDE_MS: '0', NO_COLOR: '1' });
const sos = (...args) => execFileSync(process.execPath, [BIN, ...args], { env, encoding: 'utf8' }).trim();
const git = (cwd, ...args) => execFileSync('git', args, { cwd, encoding: 'utf8', env }).trim();

const repo = join(dir, 'repo');
mkdirSync(repo, { recursive: true });
git(repo, 'init', '-q', '-b', 'main');
git(repo, 'config', 'user.email', 'bench@example.test');
git(repo, 'config', 'user.name', 'bench');
for (let i = 0; i < F; i++) {
  const sub = join(repo, `d${Math.floor(i / 100)}`);
  if (i % 100 === 0) mkdirSync(sub);
  writeFileSync(join(sub, `f${i}.txt`), `file ${i}\n`);
}
git(repo, 'add', '-A');
git(repo, 'commit', '-qm', `${F} files`);
sos('init');
sos('agents', 'add', 'bench');

const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};
const ms = (x) => `${x.toFixed(0)} ms`;
const line = (name, xs) => console.log(`  ${name.padEnd(34)} p50 ${ms(pct(xs, 50)).padStart(8)}  p95 ${ms(pct(xs, 95)).padStart(8)}`);

function runWorker(tasks, concurrency) {
  for (let i = 0; i < tasks; i++) sos('tasks', 'create', `bench task ${i}`, '-q');
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const c = spawn(process.execPath, [BIN, '--json', 'worker', '--agent', 'bench', '--repo', repo, '--program', FAKE, '--once', '--concurrency', String(concurrency)], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    c.stdout.on('data', (d) => (out += d));
    c.stderr.on('data', (d) => (err += d));
    c.on('close', (code) => {
      if (code !== 0) return reject(new Error(`sos worker exited ${code}: ${err.slice(-2000)}`));
      const reports = JSON.parse(out).tasks;
      if (reports.length !== tasks || reports.some((r) => r.status !== 'done')) return reject(new Error(`not all done: ${JSON.stringify(reports.map((r) => r.status))}\n${err.slice(-2000)}`));
      resolve({ wallMs: performance.now() - t0, reports });
    });
  });
}

function spawnFake(cwd, task, stdin) {
  return new Promise((resolve, reject) => {
    const c = spawn(FAKE, ['-p', '--output-format', 'stream-json', '--verbose'], { cwd, env: { ...env, SOS_TASK: task }, detached: true, stdio: ['pipe', 'pipe', 'pipe'] });
    c.stdout.resume();
    c.stderr.resume();
    c.on('error', reject);
    c.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`fake exited ${code}`))));
    c.stdin.end(stdin);
  });
}

let rawSeq = 0;
async function raw(tasks) {
  const wt = join(dir, 'raw');
  mkdirSync(wt, { recursive: true });
  const gitP = (...args) =>
    new Promise((resolve, reject) => execFile('git', ['-C', repo, ...args], { env }, (e, o) => (e ? reject(e) : resolve(o))));
  const per = [];
  const gitOnly = [];
  const spawnOnly = [];
  for (let i = 0; i < tasks; i++) {
    const id = `raw${rawSeq++}`;
    const d = join(wt, id);
    const t0 = performance.now();
    await gitP('worktree', 'add', '--quiet', '-b', `raw/${id}`, d, 'HEAD');
    const t1 = performance.now();
    await spawnFake(d, id, `# Task ${id}\n`);
    const t2 = performance.now();
    await gitP('worktree', 'remove', '--force', '--force', d);
    const t3 = performance.now();
    per.push(t3 - t0);
    gitOnly.push(t1 - t0 + (t3 - t2));
    spawnOnly.push(t2 - t1);
  }
  return { per, gitOnly, spawnOnly };
}

console.log(`sos worker bench: ${T} tasks one at a time, a repository of ${F} files; throughput ${N} tasks at concurrency ${C}`);
// Interleaved: raw, worker, raw, worker (the machine is shared and drifts); each figure over both rounds.
const rawRuns = [];
const workerRuns = [];
for (let round = 0; round < 2; round++) {
  rawRuns.push(await raw(Math.ceil(T / 2)));
  workerRuns.push(await runWorker(Math.ceil(T / 2), 1));
}
const rawPer = rawRuns.flatMap((r) => r.per);
const reports = workerRuns.flatMap((r) => r.reports);
const workerTotal = reports.map((r) => r.setupMs + r.cliMs + r.teardownMs);
console.log('(a) sos worker, per task (its own split):');
line('setup (claim done → spawn)', reports.map((r) => r.setupMs));
line('cli (spawn → exit)', reports.map((r) => r.cliMs));
line('teardown (exit → worktree gone)', reports.map((r) => r.teardownMs));
line('task total', workerTotal);
const wallPer = workerRuns.reduce((a, r) => a + r.wallMs, 0) / reports.length;
console.log(`  wall time of the runs / tasks       ${ms(wallPer)} (adds claims and the worker's start)`);
console.log('(b) raw primitives, per task:');
line('git worktree add + remove', rawRuns.flatMap((r) => r.gitOnly));
line('spawn of the same program', rawRuns.flatMap((r) => r.spawnOnly));
line('raw total', rawPer);
const overhead = pct(workerTotal, 50) - pct(rawPer, 50);
const overheadExCli = pct(reports.map((r) => r.setupMs + r.teardownMs), 50) - pct(rawRuns.flatMap((r) => r.gitOnly), 50);
console.log(`ratio sos worker / raw (p50 task total): ${(pct(workerTotal, 50) / pct(rawPer, 50)).toFixed(2)}x; sos's own overhead ${ms(overhead)} per task`);
console.log(
  `overhead excluding the CLI (setup + teardown), p50 ${ms(pct(reports.map((r) => r.setupMs + r.teardownMs), 50))} / p95 ${ms(pct(reports.map((r) => r.setupMs + r.teardownMs), 95))} (aim < 500 ms); of which beyond raw git: ${ms(overheadExCli)}`,
);
const tp = await runWorker(N, C);
console.log(`(c) throughput: ${N} tasks at concurrency ${C} in ${(tp.wallMs / 1000).toFixed(1)} s: ${(N / (tp.wallMs / 1000)).toFixed(1)} tasks/s`);
