import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it, type TestContext } from 'vitest';
import { BIN, isolatedEnv, ROOT, sos } from '../helpers/cli.js';
import { ADAPTERS, type AdapterFixture, tempDir } from '../helpers/isolation.js';

/**
 * `sos worker` with test/fixtures/fake-claude.mjs as its program (the stream-json shape of
 * `claude -p`, no model): concurrency, lease loss, and `kill -9` of the worker then recovery.
 * Real git, a real SQLite Store, real processes.
 */

const FAKE = join(ROOT, 'test', 'fixtures', 'fake-claude.mjs');

interface Report {
  task: string;
  status: string;
  end: string;
  commits: string[];
}

const git = (cwd: string, ...args: string[]) => execFileSync('git', args, { cwd, encoding: 'utf8' }).trim();

async function until<T>(what: string, fn: () => T | undefined | false, ms = 15_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

async function world(adapter: AdapterFixture, ctx: TestContext, extra: Record<string, string> = {}) {
  const dir = tempDir(ctx);
  const target = adapter.name === 'sqlite' ? { db: join(dir, 'sos.db'), env: {} as Record<string, string> } : adapter.target(ctx);
  mkdirSync(join(dir, 'pids'));
  const env = isolatedEnv(join(dir, 'home'), { ...target.env, SOS_DB: target.db, FAKE_CLAUDE_PIDS: join(dir, 'pids'), FAKE_CLAUDE_LOG: join(dir, 'runs.log'), ...extra });
  const run = (args: string[]) => sos(args, env);
  for (const a of [['init'], ['agents', 'add', 'kasra']]) expect((await run(a)).code).toBe(0);
  const repo = join(dir, 'repo');
  mkdirSync(repo);
  git(repo, 'init', '-q', '-b', 'main');
  git(repo, 'config', 'user.email', 'w@example.test');
  git(repo, 'config', 'user.name', 'worker test');
  git(repo, 'commit', '-q', '--allow-empty', '-m', 'init');
  const start = (args: string[], more: Record<string, string> = {}) => {
    const child = spawn(process.execPath, [BIN, '--json', 'worker', '--agent', 'kasra', '--repo', repo, '--program', FAKE, ...args], { env: { ...env, ...more }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const closed = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>((resolve) =>
      child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr })),
    );
    ctx.onTestFinished(async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await closed;
    });
    return { child, closed, stderr: () => stderr };
  };
  const create = async (title: string, more: string[] = []) => (await run(['tasks', 'create', title, '-q', ...more])).stdout.trim();
  const show = async (id: string) => (await run(['--json', 'tasks', 'show', id])).json<{ status: string; attempt: number; claimant: string | null; error: string | null; result: string | null }>();
  return { dir, env, run, repo, start, create, show, worktrees: join(dir, 'home', 'data', 'sos', 'worktrees', 'default') };
}

describe.each(ADAPTERS)('sos worker on $name: concurrency, lease loss, kill -9, budgets, SIGTERM', (adapter) => {
describe.skipIf(!adapter.available)(adapter.name, () => {
  it('concurrency 3 on 10 tasks: all done, each in its own worktree, never more than 3 at once', { timeout: 90_000 }, async (ctx) => {
    const w = await world(adapter, ctx, { FAKE_CLAUDE_MS: '400' });
    const ids: string[] = [];
    for (let i = 0; i < 10; i++) ids.push(await w.create(`task ${i}`));
    const { closed } = w.start(['--once', '--concurrency', '3']);
    const r = await closed;
    expect(r.code, r.stderr).toBe(0);
    const reports = (JSON.parse(r.stdout) as { tasks: Report[] }).tasks;
    expect(reports.map((x) => x.status)).toEqual(Array(10).fill('done'));
    expect(new Set(reports.map((x) => x.task))).toEqual(new Set(ids));
    const runs = readFileSync(join(w.dir, 'runs.log'), 'utf8').trim().split('\n').map((l) => l.split(' '));
    expect(runs).toHaveLength(10);
    expect(new Set(runs.map((x) => x[1])).size).toBe(10); // ten worktrees, one per task
    for (const [task, cwd] of runs) expect(cwd).toBe(join(w.worktrees, task!));
    const spans = runs.map((x) => [Number(x[2]), Number(x[3])] as const);
    const overlap = Math.max(...spans.map(([s]) => spans.filter(([a, b]) => a <= s && s < b).length));
    expect(overlap).toBeLessThanOrEqual(3);
    expect(overlap).toBeGreaterThanOrEqual(2);
    for (const id of ids) {
      expect((await w.show(id)).status).toBe('done');
      expect(git(w.repo, 'show', `sos/${id}:${id}.txt`)).toMatch(new RegExp(`^# Task ${id}`));
    }
    expect(git(w.repo, 'worktree', 'list').split('\n')).toHaveLength(1);
  });

  it('lease loss kills the run: a task released under it stops the CLI, and the worker writes nothing to it', { timeout: 60_000 }, async (ctx) => {
    const w = await world(adapter, ctx, { FAKE_CLAUDE_MODE: 'hang' });
    const id = await w.create('hangs', ['--lease', '3s']);
    const { child, closed, stderr } = w.start(['--once', '--drain', '1s']);
    const pidFile = join(w.dir, 'pids', id);
    const pid = Number(await until('the CLI to start', () => existsSync(pidFile) && readFileSync(pidFile, 'utf8')));
    expect(alive(pid)).toBe(true);
    expect((await w.run(['tasks', 'release', id])).code).toBe(0);
    // The next heartbeat (a third of the 3 s lease) is refused: the CLI's group is killed.
    await until('the CLI to be killed', () => !alive(pid), 10_000);
    const task = await w.show(id);
    expect(task.result).toBeNull();
    expect(task.status === 'queued' || task.claimant === 'kasra').toBe(true); // queued, or claimed again by the same worker
    // The worker claims the released task again; two signals stop it and kill that run.
    child.kill('SIGTERM');
    await until('the drain to begin', () => /"event":"stopping"/.test(stderr()));
    child.kill('SIGTERM');
    const r = await closed;
    expect(r.code, r.stderr).toBe(0);
    const reports = (JSON.parse(r.stdout) as { tasks: Report[] }).tasks;
    expect(reports[0]).toMatchObject({ task: id, status: 'lost', end: 'lease_lost' });
    expect(r.stderr).toMatch(/"event":"kill","task":"\w+","reason":"lease_lost"/);
    if (reports[1]) expect(reports[1]).toMatchObject({ task: id, status: 'retrying', end: 'stopped' });
    await until('the worktree to be removed', () => !existsSync(join(w.worktrees, id)));
  });

  it('kill -9 of the worker: the restarted worker kills the orphaned CLI, removes the worktree (branch kept) and requeues the task', { timeout: 60_000 }, async (ctx) => {
    const w = await world(adapter, ctx, { FAKE_CLAUDE_MODE: 'hang' });
    const id = await w.create('survives a crash');
    const first = w.start([]);
    const pidFile = join(w.dir, 'pids', id);
    const orphan = Number(await until('the CLI to start', () => existsSync(pidFile) && readFileSync(pidFile, 'utf8')));
    first.child.kill('SIGKILL');
    await first.closed;
    expect(alive(orphan)).toBe(true); // its own process group: it outlived the worker
    expect(existsSync(join(w.worktrees, id))).toBe(true);
    expect((await w.show(id)).status).toBe('in_progress');

    const second = w.start(['--once']);
    const r = await second.closed;
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as { recovery: { removed: string[]; requeued: string[]; killed: number[] } };
    expect(out.recovery).toMatchObject({ removed: [id], requeued: [id], killed: [orphan] });
    await until('the orphan to die', () => !alive(orphan));
    expect(existsSync(join(w.worktrees, id))).toBe(false);
    expect(git(w.repo, 'branch', '--list', `sos/${id}`)).toContain(`sos/${id}`);
    const task = await w.show(id);
    expect(task.status).toBe('queued');
    expect(task.error).toMatch(/the worker running it \(pid \d+\) died/);
  });
  it('a block budget crossed mid-task kills the CLI’s process group and fails the task retryable, released', { timeout: 60_000 }, async (ctx) => {
    const w = await world(adapter, ctx, { FAKE_CLAUDE_MODE: 'hang' });
    const id = await w.create('spends too much', ['--lease', '3s']);
    expect((await w.run(['budgets', 'set', `task:${id}`, '--limit', '1000', '--period', 'total', '--action', 'block'])).code).toBe(0);
    const { closed, stderr } = w.start(['--once']);
    const pid = Number(await until('the CLI to start', () => existsSync(join(w.dir, 'pids', id)) && readFileSync(join(w.dir, 'pids', id), 'utf8')));
    const grandchild = Number(readFileSync(join(w.dir, 'pids', `${id}.child`), 'utf8'));
    expect(alive(pid) && alive(grandchild)).toBe(true);
    await new Promise((r) => setTimeout(r, 1_500)); // beats come and go: under budget, nothing happens
    expect(alive(pid)).toBe(true);
    // The run spends past its task's budget (as its CLI would, with the agent's token).
    const spent = await w.run(['usage', 'record', '--model', 'claude-sonnet-4-5', '--input', '1500', '--output', '10', '--task', id, '--as', 'kasra']);
    expect(spent.code, spent.stderr).toBe(0);
    // The next beat (a third of the 3 s lease) sees the spent block budget: the whole group goes.
    await until('the CLI and its child to be killed', () => !alive(pid) && !alive(grandchild), 10_000);
    const r = await closed;
    expect(r.code, r.stderr).toBe(0);
    expect(stderr()).toMatch(new RegExp(`"event":"kill","task":"${id}","reason":"budget"`));
    const reports = (JSON.parse(r.stdout) as { tasks: Report[] }).tasks;
    expect(reports).toHaveLength(1);
    expect(reports[0]).toMatchObject({ task: id, status: 'retrying', end: 'budget' });
    const task = await w.show(id);
    expect(task).toMatchObject({ status: 'queued', claimant: null });
    expect(task.error).toMatch(/^killed: a spent block or pause budget now covers this task/);
    expect(existsSync(join(w.worktrees, id))).toBe(false);
    // Still spent: the task cannot be claimed until the budget is lifted.
    const claim = await w.run(['tasks', 'claim', '--id', id, '--as', 'kasra']);
    expect(claim.code).not.toBe(0);
  });

  it('SIGTERM drains: claiming stops at once, running tasks finish and are done, nothing is left claimed, exit 0', { timeout: 60_000 }, async (ctx) => {
    const w = await world(adapter, ctx, { FAKE_CLAUDE_MS: '2500' });
    const ids = [await w.create('first'), await w.create('second'), await w.create('third')];
    const { child, closed, stderr } = w.start(['--concurrency', '2']);
    await until('two runs to start', () => (stderr().match(/"event":"run"/g) ?? []).length >= 2);
    child.kill('SIGTERM');
    const r = await closed;
    expect(r.code, r.stderr).toBe(0);
    expect(r.signal).toBeNull();
    const reports = (JSON.parse(r.stdout) as { tasks: Report[] }).tasks;
    expect(reports.map((x) => x.status)).toEqual(['done', 'done']);
    const ran = new Set(reports.map((x) => x.task));
    for (const id of ids) {
      const t = await w.show(id);
      if (ran.has(id)) expect(t.status).toBe('done');
      else expect(t).toMatchObject({ status: 'queued', claimant: null, attempt: 0 });
    }
    expect(git(w.repo, 'worktree', 'list').split('\n')).toHaveLength(1);
    expect(readdirSync(w.worktrees)).toEqual([]);
  });

  it('SIGTERM past --drain kills the runs and requeues their tasks; nothing is left claimed, exit 0', { timeout: 60_000 }, async (ctx) => {
    const w = await world(adapter, ctx, { FAKE_CLAUDE_MODE: 'hang' });
    const ids = [await w.create('hangs a'), await w.create('hangs b')];
    const { child, closed } = w.start(['--concurrency', '2', '--drain', '1s']);
    const pids = await until('both CLIs to start', () => ids.every((id) => existsSync(join(w.dir, 'pids', id))) && ids.map((id) => Number(readFileSync(join(w.dir, 'pids', id), 'utf8'))));
    const started = Date.now();
    child.kill('SIGTERM');
    const r = await closed;
    expect(r.code, r.stderr).toBe(0);
    expect(Date.now() - started).toBeGreaterThanOrEqual(900); // the drain was waited out
    expect(Date.now() - started).toBeLessThan(10_000);
    for (const pid of pids) expect(alive(pid)).toBe(false);
    const reports = (JSON.parse(r.stdout) as { tasks: Report[] }).tasks;
    expect(reports.map((x) => [x.status, x.end])).toEqual([
      ['retrying', 'stopped'],
      ['retrying', 'stopped'],
    ]);
    for (const id of ids) {
      const t = await w.show(id);
      expect(t).toMatchObject({ status: 'queued', claimant: null });
      expect(t.error).toMatch(/^killed: the worker stopped before the run finished/);
    }
    expect(git(w.repo, 'worktree', 'list').split('\n')).toHaveLength(1);
  });
});
});
