import { isAbsolute, join, resolve } from 'node:path';
import type { Caller } from '../core/auth/caller.js';
import { PermissionDenied, UsageError } from '../core/errors.js';
import { neutralise } from '../core/safe-text.js';
import { EXECUTORS, type ExecutorName, type TaskReport } from '../core/workers/types.js';
import { duration, int, str, strings } from './args.js';
import type { Invocation, Output } from './define.js';
import { table } from './format.js';
import { withMemory } from './session.js';

/** `sos worker`: the flags checked, the agent's caller and token settled, then core/workers runs. */

const DEFAULT_TIMEOUT_MS = 30 * 60_000;
const DEFAULT_DRAIN_MS = 30_000;

/** One line per event on stderr: JSON when not a terminal, `time event key=value` when it is. */
function logger(json: boolean) {
  return (event: Record<string, unknown>) => {
    const at = new Date().toISOString();
    if (json) process.stderr.write(`${JSON.stringify({ at, ...event })}\n`);
    else {
      const { event: name, ...rest } = event;
      const detail = Object.entries(rest)
        .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
        .join(' ');
      process.stderr.write(`${at} ${String(name)} ${neutralise(detail)}\n`);
    }
  };
}

/** A SQLite path relative to where `sos worker` was started means the same file to the CLIs it runs. */
function absoluteDb(db: string, cwd: string): string {
  return /^[a-z]+:/.test(db) || isAbsolute(db) ? db : resolve(cwd, db);
}

export function run(inv: Invocation): Promise<Output> {
  const agent = str(inv.options.agent);
  const repoArg = str(inv.options.repo);
  if (!agent) throw new UsageError('--agent is required: the agent whose tasks the worker claims');
  if (!repoArg) throw new UsageError('--repo is required: the git repository the worktrees are made from');
  const executor = (str(inv.options.exec) ?? 'claude') as ExecutorName;
  if (!(EXECUTORS as readonly string[]).includes(executor)) throw new UsageError(`--exec must be one of ${EXECUTORS.join(', ')}`);
  const concurrency = int(inv.options.concurrency, '--concurrency') ?? 1;
  if (concurrency < 1 || concurrency > 64) throw new UsageError('--concurrency must be from 1 to 64');
  const taskTimeoutMs = duration(inv.options.taskTimeout, '--task-timeout') ?? DEFAULT_TIMEOUT_MS;
  const drainMs = duration(inv.options.drain, '--drain') ?? DEFAULT_DRAIN_MS;
  const program = str(inv.options.program);
  if (executor === 'shell' && program) throw new UsageError('--program is not used by the shell executor: it runs each task’s own approved command');

  return withMemory(inv, async (session) => {
    const [{ Worker }, { repoRoot }, { getAgent }, { createToken, revokeToken }] = await Promise.all([
      import('../core/workers/worker.js'),
      import('../core/workers/git.js'),
      import('../core/identity/agents.js'),
      import('../core/identity/tokens.js'),
    ]);
    const values = session.config.values;
    let caller: Caller;
    if (session.caller.via === 'token') {
      if (session.caller.agent !== agent) throw new PermissionDenied(`this token is ${session.caller.agent ?? 'no agent'}'s, not ${agent}'s`, { hint: `use ${agent}'s token, or run it where the database is` });
      caller = session.caller;
    } else caller = { ...session.caller, agent };
    await getAgent(session.store, caller, agent);
    const repo = await repoRoot(resolve(inv.cwd, repoArg));

    // The CLIs act as the agent: with the worker's own token, or one minted for this run and revoked after it.
    let token = values.token;
    let minted: string | null = null;
    if (token === undefined) {
      const created = await createToken(session.store, { ...caller, agent: null }, { agent });
      token = created.secret;
      minted = created.token.id;
    }
    const log = logger(!process.stderr.isTTY);
    const env: NodeJS.ProcessEnv = { ...inv.env, SOS_DB: absoluteDb(values.db, inv.cwd), SOS_PG_SCHEMA: values.pgSchema };
    delete env.SOS_AS;
    const launcher = process.argv[1];
    const worker = new Worker({
      tasks: { store: session.store, bus: session.ctx.bus, maxTextBytes: values.maxMessageBytes },
      memory: session.memory,
      caller,
      options: {
        agent,
        repo,
        executor,
        ...(program ? { program } : {}),
        cliArgs: strings(inv.options.cliArg) ?? [],
        concurrency,
        ...(str(inv.options.squad) ? { squad: str(inv.options.squad)! } : {}),
        once: inv.options.once === true,
        keepWorktrees: inv.options.keepWorktrees === true,
        taskTimeoutMs,
        drainMs,
        worktreeRoot: join(values.dataDir, 'worktrees', caller.project),
        env,
        token,
        ...(launcher ? { mcp: { command: process.execPath, args: [launcher, 'mcp'] } } : {}),
        log,
      },
    });
    // First signal: stop claiming and drain; a second one kills what runs.
    let signals = 0;
    const onSignal = (signal: NodeJS.Signals) => {
      signals += 1;
      log({ event: 'signal', signal, detail: signals > 1 ? 'killing running tasks' : 'draining; send it again to kill running tasks' });
      if (signals > 1) worker.kill();
      else worker.stop();
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
    try {
      const { recovery, reports } = await worker.run();
      return {
        data: { agent, executor, repo, recovery, tasks: reports },
        human: render(reports),
        quiet: reports.map((r) => r.task).join('\n'),
      };
    } finally {
      process.off('SIGTERM', onSignal);
      process.off('SIGINT', onSignal);
      if (minted) await revokeToken(session.store, { ...caller, agent: null }, minted).catch(() => undefined);
    }
  });
}

function render(reports: TaskReport[]): string {
  if (reports.length === 0) return 'no task was ready';
  return table(
    ['task', 'status', 'end', 'commits', 'branch', 'error'],
    reports.map((r) => [r.task, r.status, r.end, r.commits.length, r.branch, r.error ? r.error.split('\n')[0]!.slice(0, 80) : null]),
  );
}
