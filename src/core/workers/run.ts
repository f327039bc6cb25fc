import { type ChildProcess, spawn } from 'node:child_process';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { Caller } from '../auth/caller.js';
import { claimBlocks } from '../economy/budgets.js';
import { Conflict, NotFound, SosError } from '../errors.js';
import { type MemoryContext, remember } from '../memory/service.js';
import { completeTask, failTask, heartbeatTask, startTask, type TaskContext } from '../tasks/service.js';
import type { Task } from '../tasks/types.js';
import { taskPrompt } from './context.js';
import { launchFor, StreamReader, type StreamSummary, Tail } from './executors.js';
import { markShellExecuted, requestShellApproval, shellGate } from './gate.js';
import { addWorktree, branchOf, commitsSince, diffStat, removeWorktree, resolveCommit } from './git.js';
import { sidecarPath, writeSidecar } from './sidecar.js';
import { workerSpec, type WorkerSpec } from './spec.js';
import type { RunEnd, TaskReport, WorkerOptions } from './types.js';
import { recordRunUsage, runUsage } from './usage.js';

/** What one run needs from the worker. */
export interface RunDeps {
  tasks: TaskContext;
  memory: MemoryContext | null;
  /** The worker's agent. */
  caller: Caller;
  options: WorkerOptions;
  /** Aborted when the worker stops and its drain bound ran out: the CLI is killed. */
  kill: AbortSignal;
}

/** SIGTERM first, SIGKILL this long after, to the whole process group. */
const KILL_GRACE_MS = 2_000;
const ERROR_TAIL_CHARS = 4_000;

/** Signals a process group; a group already gone is not an error. */
export function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // ESRCH: nothing left in the group
  }
}

interface Supervised {
  end: RunEnd;
  code: number | null;
  summary: StreamSummary;
  tail: string;
  ms: number;
}

/**
 * Runs the CLI in its own process group and watches it: the lease is renewed with the fence every
 * third of the lease (a refusal means the task is no longer ours: lease lost), a spent
 * `block`/`pause` budget on the project, the agent, the squad or the task is checked at each beat,
 * and `--task-timeout` and the worker's stop are timers. Any of them kills the group.
 */
function supervise(deps: RunDeps, task: Task, child: ChildProcess, executor: WorkerOptions['executor'], stdin: string): Promise<Supervised> {
  const { tasks, caller, options } = deps;
  const started = performance.now();
  const reader = new StreamReader(executor);
  const tail = new Tail();
  let end: RunEnd | null = null;
  let hardKill: NodeJS.Timeout | undefined;
  const kill = (why: RunEnd) => {
    if (end !== null || child.pid === undefined) return;
    end = why;
    options.log({ event: 'kill', task: task.id, reason: why, pid: child.pid });
    killGroup(child.pid, 'SIGTERM');
    hardKill = setTimeout(() => killGroup(child.pid!, 'SIGKILL'), KILL_GRACE_MS);
  };
  child.stdout!.setEncoding('utf8').on('data', (d: string) => {
    reader.push(d);
    tail.push(d);
  });
  child.stderr!.setEncoding('utf8').on('data', (d: string) => tail.push(d));
  child.stdin!.on('error', () => undefined); // a CLI that never reads its stdin
  child.stdin!.end(stdin);

  const beatMs = Math.max(500, Math.min(30_000, Math.floor(task.leaseMs / 3)));
  let beating = false;
  const beat = setInterval(() => {
    if (beating || end !== null) return;
    beating = true;
    void (async () => {
      try {
        await heartbeatTask(tasks, caller, { id: task.id, fence: task.attempt });
      } catch (err) {
        if (err instanceof Conflict || err instanceof NotFound) return kill('lease_lost');
        options.log({ event: 'heartbeat_error', task: task.id, error: (err as Error).message });
      }
      try {
        const b = await claimBlocks(tasks.store.sql, caller.project, caller.agent!, Date.now());
        if (b.all || (task.squad !== null && b.squads.has(task.squad)) || b.tasks.has(task.id)) kill('budget');
      } catch (err) {
        options.log({ event: 'budget_check_error', task: task.id, error: (err as Error).message });
      }
    })().finally(() => (beating = false));
  }, beatMs);
  const timeout = setTimeout(() => kill('timeout'), options.taskTimeoutMs);
  const onStop = () => kill('stopped');
  deps.kill.addEventListener('abort', onStop);
  if (deps.kill.aborted) onStop();

  return new Promise((resolve) => {
    let spawnError: Error | null = null;
    child.on('error', (err) => {
      spawnError = err;
    });
    child.on('close', (code) => {
      clearInterval(beat);
      clearTimeout(timeout);
      clearTimeout(hardKill);
      deps.kill.removeEventListener('abort', onStop);
      // Whatever the CLI started (its MCP servers, a test runner) goes with it.
      if (child.pid !== undefined) killGroup(child.pid, 'SIGKILL');
      if (spawnError) {
        end ??= 'spawn_failed';
        tail.push(`\n${spawnError.message}`);
      }
      resolve({ end: end ?? 'exited', code, summary: reader.end(), tail: tail.toString(), ms: performance.now() - started });
    });
  });
}

/** Why a run failed, in a line, and whether it may be tried again. */
function failure(s: Supervised, options: WorkerOptions): { why: string; retryable: boolean } {
  switch (s.end) {
    case 'timeout':
      return { why: `killed after --task-timeout ${Math.round(options.taskTimeoutMs / 1000)}s`, retryable: true };
    case 'budget':
      return { why: 'killed: a spent block or pause budget now covers this task', retryable: true };
    case 'stopped':
      return { why: 'killed: the worker stopped before the run finished', retryable: true };
    case 'spawn_failed':
      return { why: `could not start the ${options.executor} executor`, retryable: true };
    case 'lease_lost':
      return { why: 'lease lost', retryable: true };
    case 'exited':
      if (s.code !== 0) return { why: `${options.executor} exited with ${s.code ?? 'a signal'}`, retryable: true };
      return { why: `${options.executor} reported an error: ${(s.summary.result ?? '').slice(0, 500)}`, retryable: false };
  }
}

/** The task's error text: the reason, then the end of the output, within the task's text limit. */
function errorText(why: string, tail: string, maxBytes: number): string {
  const room = Math.max(0, Math.min(ERROR_TAIL_CHARS, Math.floor(maxBytes / 4) - why.length - 40));
  const t = tail.trim().slice(-room);
  return t ? `${why}\n--- last output ---\n${t}` : why;
}

async function refuse(deps: RunDeps, task: Task, error: string, setupMs: number): Promise<TaskReport> {
  await failTask(deps.tasks, deps.caller, { id: task.id, fence: task.attempt, error, retryable: false });
  deps.options.log({ event: 'refused', task: task.id, error });
  return { task: task.id, status: 'refused', end: 'refused', exitCode: null, branch: branchOf(task.id), commits: [], error, setupMs, cliMs: 0, teardownMs: 0 };
}

/** The shell executor's gate: the command, once an approval for it is in; otherwise the request is filed and the task refused. */
async function shellCommand(deps: RunDeps, task: Task, spec: WorkerSpec): Promise<{ command: string[]; approval: string } | { refusal: string }> {
  if (!spec.command) return { refusal: `task ${task.id} has no command for the shell executor: add a sos-worker block with "command": ["program", "arg", …] to its description` };
  const db = deps.tasks.store.sql;
  const gate =
    (await shellGate(db, deps.caller.project, task.id)) ??
    (await requestShellApproval(db, deps.caller.project, { taskId: task.id, title: task.title, agent: deps.caller.agent!, command: spec.command, at: Date.now() }));
  if (gate.approved) return { command: spec.command, approval: gate.id };
  return {
    refusal:
      gate.status === 'pending'
        ? `shell execution of task ${task.id} is not approved: approval ${gate.id} is pending; approve it with \`sos approvals approve ${gate.id}\`, then \`sos tasks redrive ${task.id}\``
        : `shell execution of task ${task.id} was ${gate.status} (approval ${gate.id})`,
  };
}

/**
 * One claimed task, start to end: worktree, prompt, the CLI under supervision, artifacts, usage,
 * complete or fail (with the fence), teardown, and an engram of what happened. The task is held
 * throughout; every write presents the fence, so a run whose lease was taken away writes nothing.
 */
export async function runTask(deps: RunDeps, task: Task): Promise<TaskReport> {
  const { tasks, caller, options, memory } = deps;
  const t0 = performance.now();
  const fence = task.attempt;
  const branch = branchOf(task.id);
  let spec: WorkerSpec;
  try {
    spec = workerSpec(task);
  } catch (err) {
    return refuse(deps, task, (err as Error).message, performance.now() - t0);
  }
  let shell: { command: string[]; approval: string } | null = null;
  if (options.executor === 'shell') {
    const gate = await shellCommand(deps, task, spec);
    if ('refusal' in gate) return refuse(deps, task, gate.refusal, performance.now() - t0);
    shell = gate;
  }

  const dir = join(options.worktreeRoot, task.id);
  const mcpConfig = options.executor === 'claude' && options.mcp ? join(options.worktreeRoot, `${task.id}.mcp.json`) : null;
  let made = false;
  let report: TaskReport;
  try {
    await startTask(tasks, caller, { id: task.id, fence });
    const base = await resolveCommit(options.repo, spec.base);
    await mkdir(options.worktreeRoot, { recursive: true });
    await writeSidecar(options.worktreeRoot, { task: task.id, worker: process.pid, agent: caller.agent!, fence, base, branch, child: null });
    await addWorktree(options.repo, dir, branch, base);
    made = true;
    const prompt = await taskPrompt({ task, caller, memory, branch, base, repo: options.repo });
    const env: NodeJS.ProcessEnv = {
      ...options.env,
      SOS_PROJECT: caller.project,
      SOS_AGENT: caller.agent!,
      SOS_TASK: task.id,
      SOS_TASK_FENCE: String(fence),
      // How a restarted worker recognises an orphan of its own (sidecar.ts), and nothing else.
      SOS_WORKER_TASK: task.id,
      ...(options.token ? { SOS_TOKEN: options.token } : {}),
    };
    if (mcpConfig && options.mcp) {
      const serverEnv = Object.fromEntries(Object.entries(env).filter((e): e is [string, string] => e[1] !== undefined && e[0].startsWith('SOS_')));
      await writeFile(mcpConfig, JSON.stringify({ mcpServers: { sos: { command: options.mcp.command, args: options.mcp.args, env: serverEnv } } }), { mode: 0o600 });
    }
    const launch = launchFor(options.executor, { ...(options.program ? { program: options.program } : {}), prompt, cliArgs: options.cliArgs, command: shell?.command ?? null, mcpConfig });
    const setupMs = performance.now() - t0;
    const child = spawn(launch.program, launch.args, { cwd: dir, env, detached: true, stdio: ['pipe', 'pipe', 'pipe'] });
    if (child.pid !== undefined) await writeSidecar(options.worktreeRoot, { task: task.id, worker: process.pid, agent: caller.agent!, fence, base, branch, child: child.pid });
    options.log({ event: 'run', task: task.id, executor: options.executor, pid: child.pid ?? null, worktree: dir, branch });
    const run = await supervise(deps, task, child, options.executor, launch.stdin);
    const t1 = performance.now();

    const commits = await commitsSince(options.repo, base, branch);
    const stat = commits.length ? await diffStat(options.repo, base, branch) : '';
    try {
      const fresh = await recordRunUsage(tasks.store, caller, await runUsage(options.executor, run.summary, env, { agent: caller.agent!, task: task.id }));
      if (fresh) options.log({ event: 'usage', task: task.id, events: fresh });
    } catch (err) {
      options.log({ event: 'usage_error', task: task.id, error: (err as Error).message });
    }
    if (shell) await markShellExecuted(tasks.store.sql, caller.project, shell.approval, run.end === 'exited' ? `exit ${run.code}` : run.end, `run by ${caller.agent} for task ${task.id}`);

    const ok = run.end === 'exited' && run.code === 0 && !run.summary.isError;
    let status: TaskReport['status'];
    let error: string | null = null;
    if (run.end === 'lease_lost') {
      status = 'lost';
      error = 'lease lost: the task was taken away while it ran';
    } else if (ok) {
      const result = (run.summary.result ?? (options.executor === 'shell' ? run.tail.trim() : '')).slice(-Math.floor(tasks.maxTextBytes / 4)) || '(no final message)';
      const artifacts = [`branch:${branch}`, ...commits.map((c) => `commit:${c}`), ...(stat ? [`diffstat:${stat.slice(-1_990)}`] : [])];
      await completeTask(tasks, caller, { id: task.id, fence, result, artifacts });
      status = 'done';
    } else {
      const f = failure(run, options);
      error = f.why;
      const r = await failTask(tasks, caller, { id: task.id, fence, error: errorText(f.why, run.tail, tasks.maxTextBytes), retryable: f.retryable });
      status = r.task.status === 'queued' ? 'retrying' : 'failed';
    }
    report = { task: task.id, status, end: run.end, exitCode: run.code, branch, commits, error, setupMs, cliMs: t1 - t0 - setupMs, teardownMs: 0 };
    if (memory) await writeEngram(memory, caller, task, report, run.summary.result, options);
  } catch (err) {
    // Something of ours broke (git, the database): the task is given back, retryable, if still held.
    const message = err instanceof SosError ? err.message : String(err);
    options.log({ event: 'run_error', task: task.id, error: message });
    await failTask(tasks, caller, { id: task.id, fence, error: `the worker could not run it: ${message}`.slice(0, 4_000), retryable: true }).catch(() => undefined);
    report = { task: task.id, status: 'retrying', end: 'exited', exitCode: null, branch, commits: [], error: message, setupMs: performance.now() - t0, cliMs: 0, teardownMs: 0 };
  }
  if (made && !options.keepWorktrees) {
    await removeWorktree(options.repo, dir).catch((err: Error) => options.log({ event: 'teardown_error', task: task.id, error: err.message }));
  }
  await rm(sidecarPath(options.worktreeRoot, task.id), { force: true });
  if (mcpConfig) await rm(mcpConfig, { force: true });
  // Everything after the CLI (artifacts, usage, complete, engram, worktree removal), or after setup when no CLI ran.
  report.teardownMs = performance.now() - t0 - report.setupMs - report.cliMs;
  options.log({ event: 'ended', task: task.id, status: report.status, end: report.end, commits: report.commits.length, ms: Math.round(performance.now() - t0) });
  return report;
}

/** A `handoff` engram when the task is done (what was made, where), a `finding` when it failed. */
async function writeEngram(memory: MemoryContext, caller: Caller, task: Task, report: TaskReport, result: string | null, options: WorkerOptions): Promise<void> {
  if (report.status === 'lost') return;
  const head = `Task ${task.id} "${task.title}"`;
  const text =
    report.status === 'done'
      ? `${head} done by ${caller.agent} (${options.executor} worker) on branch ${report.branch}: ${report.commits.length} commit(s)${report.commits.length ? ` ${report.commits.map((c) => c.slice(0, 12)).join(', ')}` : ''}. Result: ${(result ?? '').replace(/\s+/g, ' ').slice(0, 1_000)}`
      : `${head} failed under ${caller.agent}'s ${options.executor} worker (${report.end}${report.exitCode !== null ? `, exit ${report.exitCode}` : ''}): ${report.error ?? ''}. Branch ${report.branch} keeps what it committed.`;
  try {
    await remember(memory, caller, { text, kind: report.status === 'done' ? 'handoff' : 'finding', tags: ['worker'], taskId: task.id });
  } catch (err) {
    options.log({ event: 'engram_error', task: task.id, error: (err as Error).message });
  }
}

