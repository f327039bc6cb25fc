import { readdir, realpath, rm } from 'node:fs/promises';
import { join, resolve, sep } from 'node:path';
import type { Caller } from '../auth/caller.js';
import { Conflict, OperationFailed, PermissionDenied } from '../errors.js';
import type { MemoryContext } from '../memory/service.js';
import { claimTask, failTask, releaseTask, type TaskContext } from '../tasks/service.js';
import { HELD } from '../tasks/transitions.js';
import type { Task } from '../tasks/types.js';
import { abortableSleep } from '../time.js';
import { git, listWorktrees, removeWorktree, taskOfBranch } from './git.js';
import { killGroup, runTask } from './run.js';
import { alive, isOrphanOf, readSidecar, sidecarPath } from './sidecar.js';
import type { TaskReport, WorkerOptions } from './types.js';

export interface WorkerDeps {
  tasks: TaskContext;
  memory: MemoryContext | null;
  /** The agent the worker claims as. */
  caller: Caller;
  options: WorkerOptions;
}

export interface RecoveryReport {
  /** Worktrees of dead runs that were removed (their branches stay). */
  removed: string[];
  /** Their tasks, still held by this agent at the fence of the dead run, failed retryable. */
  requeued: string[];
  /** Orphaned CLI process groups killed. */
  killed: number[];
  /** Worktrees left alone: their worker process is alive. */
  live: string[];
}

/** How long an idle continuous worker waits on the event stream before it tries to claim again. */
const CLAIM_WAIT_MS = 2_000;
/** How long a worker whose claims a spent budget refuses waits before it asks again. */
const REFUSED_PAUSE_MS = 5_000;

async function canonical(path: string): Promise<string> {
  return realpath(path).catch(() => resolve(path));
}

/**
 * Crash recovery, run when a worker starts. A worktree under this worker's root on a
 * `sos/<task id>` branch belongs to a run; when the worker process its sidecar names is gone
 * (a `kill -9`, a crash, a reboot), the run is dead: its orphaned CLI, if still running, is
 * killed (recognised by its environment, never by pid alone), the worktree is removed and the
 * branch kept, and the task, if this agent still holds it at that run's fence, is failed
 * retryable so it is claimable after its backoff instead of after the lease. A task the fence no
 * longer matches was already requeued by the lease sweep, or finished.
 */
export async function recoverWorktrees(deps: WorkerDeps): Promise<RecoveryReport> {
  const { options, tasks, caller } = deps;
  const report: RecoveryReport = { removed: [], requeued: [], killed: [], live: [] };
  await git(options.repo, ['worktree', 'prune']);
  const root = await canonical(options.worktreeRoot);
  const seen = new Set<string>();
  const candidates: { id: string; path: string | null }[] = [];
  for (const w of await listWorktrees(options.repo)) {
    const id = taskOfBranch(w.branch);
    if (id === null) continue;
    const path = await canonical(w.path);
    if (!path.startsWith(root + sep)) continue;
    seen.add(id);
    candidates.push({ id, path: w.path });
  }
  // A sidecar without a worktree: the worker died between writing it and `git worktree add`.
  for (const f of await readdir(options.worktreeRoot).catch(() => [] as string[])) {
    const m = /^(tsk_[0-9a-z]{26})\.json$/.exec(f);
    if (m && !seen.has(m[1]!)) candidates.push({ id: m[1]!, path: null });
  }
  for (const { id, path } of candidates) {
    const sidecar = await readSidecar(options.worktreeRoot, id);
    if (sidecar && sidecar.worker !== process.pid && alive(sidecar.worker)) {
      report.live.push(id);
      continue;
    }
    if (sidecar?.child && (await isOrphanOf(sidecar.child, id))) {
      killGroup(sidecar.child, 'SIGKILL');
      report.killed.push(sidecar.child);
    }
    if (path !== null) {
      await removeWorktree(options.repo, path);
      report.removed.push(id);
    }
    await rm(sidecarPath(options.worktreeRoot, id), { force: true });
    await rm(join(options.worktreeRoot, `${id}.mcp.json`), { force: true });
    const task = await tasks.store.tasks.peek(caller.project, id);
    if (sidecar && task && HELD.includes(task.status) && task.claimant === caller.agent && task.attempt === sidecar.fence) {
      await failTask(tasks, caller, { id, fence: sidecar.fence, error: `the worker running it (pid ${sidecar.worker}) died; recovered when ${caller.agent}'s worker restarted`, retryable: true })
        .then(() => report.requeued.push(id))
        .catch(() => undefined);
    }
  }
  if (report.removed.length || report.requeued.length || report.killed.length) options.log({ event: 'recovered', ...report });
  return report;
}

/**
 * The worker: claims ready tasks for its agent, at most `concurrency` at a time, each run by
 * `runTask` in its own worktree. `stop()` stops claiming at once, lets running tasks finish
 * within `drainMs`, then kills them (their tasks are failed retryable by `runTask`).
 */
export class Worker {
  readonly reports: TaskReport[] = [];
  private stopping = false;
  private fatal: Error | null = null;
  private drainTimer: NodeJS.Timeout | undefined;
  private readonly claimAbort = new AbortController();
  private readonly killAbort = new AbortController();
  private readonly running = new Map<string, Promise<void>>();

  constructor(private readonly deps: WorkerDeps) {}

  /** Recovers, then works until stopped (or, with `once`, until nothing is ready and nothing runs). */
  async run(): Promise<{ recovery: RecoveryReport; reports: TaskReport[] }> {
    const { options, tasks, caller } = this.deps;
    const recovery = await recoverWorktrees(this.deps);
    options.log({ event: 'started', agent: caller.agent, executor: options.executor, concurrency: options.concurrency, repo: options.repo });
    while (!this.stopping) {
      if (this.running.size >= options.concurrency) {
        await Promise.race(this.running.values());
        continue;
      }
      let task: Task;
      try {
        ({ task } = await claimTask(tasks, caller, {
          ...(options.squad !== undefined ? { squad: options.squad } : {}),
          waitMs: options.once ? 0 : CLAIM_WAIT_MS,
          signal: this.claimAbort.signal,
        }));
      } catch (err) {
        if (err instanceof Conflict || err instanceof PermissionDenied) {
          if (err instanceof PermissionDenied) options.log({ event: 'claim_refused', error: err.message });
          if (options.once) {
            if (this.running.size === 0) break;
            await Promise.race(this.running.values());
          } else if (err instanceof PermissionDenied) await abortableSleep(REFUSED_PAUSE_MS, this.claimAbort.signal);
          continue;
        }
        throw err;
      }
      if (this.stopping) {
        // Claimed while the stop came in: given straight back.
        await releaseTask(tasks, caller, { id: task.id, fence: task.attempt }).catch(() => undefined);
        break;
      }
      this.start(task);
    }
    await Promise.all(this.running.values());
    clearTimeout(this.drainTimer);
    if (this.fatal) throw this.fatal;
    return { recovery, reports: this.reports };
  }

  private start(task: Task): void {
    const p = runTask({ ...this.deps, kill: this.killAbort.signal }, task)
      .then((r) => {
        this.reports.push(r);
        if (r.end === 'spawn_failed' && !this.fatal) {
          this.fatal = new OperationFailed(`the ${this.deps.options.executor} executor could not be started (${this.deps.options.program ?? this.deps.options.executor}): ${r.error ?? ''}`, {
            hint: 'install the CLI or point --program at it',
          });
          this.stop();
        }
      })
      .catch((err: Error) => this.deps.options.log({ event: 'run_error', task: task.id, error: err.message }))
      .finally(() => this.running.delete(task.id));
    this.running.set(task.id, p);
  }

  /** Idempotent. Claiming stops now; what runs gets `drainMs`, then is killed. */
  stop(): void {
    if (this.stopping) return;
    this.stopping = true;
    this.claimAbort.abort();
    this.deps.options.log({ event: 'stopping', running: [...this.running.keys()], drainMs: this.deps.options.drainMs });
    this.drainTimer = setTimeout(() => this.killAbort.abort(), this.deps.options.drainMs);
  }

  /** Kills what runs now, without the drain (a second signal). */
  kill(): void {
    this.stop();
    this.killAbort.abort();
  }

  get runningTasks(): string[] {
    return [...this.running.keys()];
  }
}
