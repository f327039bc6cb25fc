import { fileURLToPath } from 'node:url';
import { UsageError } from '../core/errors.js';
import type { DaemonStatus } from '../core/daemon/daemon.js';
import type { Store } from '../core/store/port.js';
import { duration } from './args.js';
import type { Invocation, Output } from './define.js';
import { fields, iso, table } from './format.js';
import { loadConfig, withLifecycle, withSession } from './session.js';
import { neutralise } from '../core/safe-text.js';

/** `sos daemon`, `sos daemon status|install-unit`, `sos metrics`. */

const STOP_DEADLINE_MS = 20_000;

/** One line per event on stderr: JSON when not a terminal (journald, files), readable otherwise. */
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

export async function run(inv: Invocation): Promise<Output> {
  const config = await loadConfig(inv);
  if (config.values.token !== undefined) throw new UsageError('the daemon runs with local operator access to the database, not a token', { hint: 'unset SOS_TOKEN' });
  const { Daemon } = await import('../core/daemon/daemon.js');
  const { notifyReady, notifyStopping } = await import('../core/daemon/systemd.js');
  const log = logger(!process.stderr.isTTY);
  const probeMs = duration(inv.options.probeInterval, '--probe-interval');
  const sweepMs = duration(inv.options.sweepInterval, '--sweep-interval');
  const cooldownMs = duration(inv.options.wakeCooldown, '--wake-cooldown');
  const daemon = await Daemon.start({
    values: config.values,
    cwd: inv.cwd,
    intervals: { ...(probeMs ? { probeMs } : {}), ...(sweepMs ? { sweepMs } : {}) },
    wake: cooldownMs !== undefined ? { cooldownMs } : {},
    detachedPtys: inv.options.detachedPtys === true,
    log,
    onReady: async () => {
      await notifyReady();
    },
  });
  // First signal drains within a deadline; a second one forces.
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    signals += 1;
    if (signals > 1) {
      log({ event: 'forced', signal });
      process.exit(130);
    }
    log({ event: 'signal', signal, detail: `draining; send it again to force` });
    const hang = setTimeout(() => log({ event: 'stop_slow', detail: `still stopping after ${STOP_DEADLINE_MS / 1000}s` }), STOP_DEADLINE_MS);
    hang.unref();
    void notifyStopping();
    void daemon.stop();
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  await daemon.stopped;
  process.off('SIGTERM', onSignal);
  process.off('SIGINT', onSignal);
  return { data: { stopped: true }, human: '' };
}

const loopRows = (s: DaemonStatus) =>
  s.loops.map((l) => [l.name, l.state, l.runs, l.errors, iso(l.lastRunAt), l.lastDurationMs === null ? null : `${l.lastDurationMs}ms`, l.lastError]);

export function status(inv: Invocation): Promise<Output> {
  return withSession(
    inv,
    async ({ store }) => {
      const { readLease, leaseLive } = await import('../core/daemon/lock.js');
      const lease = await readLease(store.sql);
      const running = lease !== undefined && leaseLive(lease, Date.now(), 6_000);
      const s = lease?.status as DaemonStatus | undefined;
      const data = lease ? { running, pid: lease.pid, host: lease.host, startedAt: iso(lease.startedAt), heartbeatAt: iso(lease.heartbeatAt), loops: s?.loops ?? [] } : { running: false };
      return {
        data,
        human: lease
          ? [
              fields([
                ['daemon', running ? 'running' : 'not running (stale lease)'],
                ['pid', `${lease.pid} on ${lease.host}`],
                ['started', iso(lease.startedAt)],
                ['heartbeat', iso(lease.heartbeatAt)],
              ]),
              s?.loops?.length ? table(['loop', 'state', 'runs', 'errors', 'last run', 'took', 'last error'], loopRows(s)) : '',
            ]
              .filter(Boolean)
              .join('\n\n')
          : 'daemon: not running (start it with `sos daemon`, or under systemd: `sos daemon install-unit`)',
        ...(running ? {} : { exitCode: 1 }),
      };
    },
    { localOnly: true },
  );
}

export async function installUnit(inv: Invocation): Promise<Output> {
  if (inv.options.user === true && inv.options.system === true) throw new UsageError('choose --user or --system, not both');
  const scope = inv.options.system === true ? 'system' : 'user';
  const config = await loadConfig(inv);
  const { installUnit: install, settingsInForce } = await import('../core/daemon/systemd.js');
  // The settings in force now (from flags, env or the config file) go into the unit's env file.
  const values = settingsInForce(config);
  const bin = fileURLToPath(new URL('../bin/sos', import.meta.url));
  const result = await install({ scope, print: inv.options.print === true, env: inv.env, execStart: [process.execPath, bin, 'daemon'], values });
  return {
    data: result,
    human: inv.options.print === true ? result.unit : [`wrote ${result.unitPath}`, `environment: ${result.envPath}`, 'next:', ...result.next.map((n) => `  ${n}`)].join('\n'),
  };
}

export function metrics(inv: Invocation): Promise<Output> {
  return withLifecycle(inv, async ({ life, caller, ctx }) => {
    const { pendingAcks } = await import('../core/bus/service.js');
    const { requireProject } = await import('../core/identity/projects.js');
    const { MOTOR_OUTCOMES } = await import('../core/brain/motor.js');
    await requireProject(life.store, caller.project);
    const counters = await life.store.counters.all(caller.project);
    const lifecycle = await life.repo.counters(caller.project);
    const overdue = (await pendingAcks(ctx, caller, { overdue: true })).length;
    const held = await life.store.sql.one<{ n: number }>("SELECT COUNT(*) AS n FROM wake_deliveries WHERE project = $1 AND state = 'held'", [caller.project]);
    const data = {
      messages_delivered: counters.messages_delivered ?? 0,
      messages_held_now: Number(held?.n ?? 0),
      messages_held_total: counters.messages_held ?? 0,
      messages_failed: counters.messages_failed ?? 0,
      messages_expired: counters.messages_expired ?? 0,
      messages_not_typed: counters.messages_not_typed ?? 0,
      bus_rows_skipped: counters.bus_rows_skipped ?? 0,
      ack_overdue: overdue,
      restarts: lifecycle.actions['restart.done'] ?? 0,
      recoveries_succeeded: lifecycle.recoveries.succeeded,
      recoveries_failed: lifecycle.recoveries.failed,
      recoveries_pending: lifecycle.recoveries.pending,
      leases_renewed: counters.leases_renewed ?? 0,
      leases_expired: counters.leases_expired ?? 0,
      duplicate_claims_refused: counters.duplicate_claims_refused ?? 0,
      stale_fence_refused: counters.stale_fence_refused ?? 0,
      budget_claims_refused: counters.budget_claims_refused ?? 0,
      // ---- The paper's six observables (issue 14): recovery success, duplicate claims, blocked
      // methods, stale enqueue attempts, cost per completed task, unclaimed routed tasks.
      ...(await observables(life.store, caller.project, counters, lifecycle.recoveries)),
      // ---- The motor's outcomes, one counter each (zero until the motor first decides so).
      ...Object.fromEntries(MOTOR_OUTCOMES.map((o) => [`motor_${o}`, counters[`motor_${o}`] ?? 0])),
      // ---- The brain: cycles, invalid answers, and each provider's circuit breaker as last saved
      // (state 0 closed, 1 half-open, 2 open; the counters are the breaker's own since it was created).
      brain_cycles: counters.brain_cycles ?? 0,
      brain_dry_runs: counters.brain_dry_runs ?? 0,
      brain_decisions_invalid: counters.brain_decisions_invalid ?? 0,
      ...(await breakerMetrics(life.store)),
      approvals_pending: Number((await life.store.sql.one<{ n: number | string }>("SELECT COUNT(*) AS n FROM approvals WHERE project = $1 AND status = 'pending'", [caller.project]))?.n ?? 0),
    };
    return { data, human: table(['counter', 'value'], Object.entries(data)) };
  });
}

/**
 * The six observables of `sos metrics`, each from where it is kept:
 * - `recovery_success_rate`: lifecycle recoveries that succeeded / (succeeded + failed); null when
 *   none has settled.
 * - `duplicate_claims`: (task, attempt) pairs with more than one `claimed` event. The claim
 *   statement bumps the attempt (the fence) in the same UPDATE that takes the task, and writes one
 *   `claimed` event with that fence in its transaction, so two claims of one attempt would show as
 *   two such events: this should always be 0 (`duplicate_claims_refused` counts the refused
 *   attempts). A handoff acceptance also takes ownership with a new fence, but it is a separate
 *   event (`handoff_accepted`) and not counted here.
 * - `blocked_methods`, `stale_enqueue_attempts`: the motor's counters (invented methods refused,
 *   stale directives skipped).
 * - `cost_per_completed_task_usd`: all priced spend in the project's ledger (the `usage_rollup`
 *   sums, unpriced events excluded) / the tasks now `done`; null when none is done. Numerator and
 *   denominator are their own keys.
 * - `unclaimed_routed_tasks`: tasks a `sos tasks route` run could give to no agent, once per run.
 */
async function observables(
  store: Store,
  project: string,
  counters: Record<string, number>,
  recoveries: { succeeded: number; failed: number },
): Promise<Record<string, number | null>> {
  const db = store.sql;
  const settled = recoveries.succeeded + recoveries.failed;
  const fence = db.dialect === 'postgres' ? "(e.detail::json ->> 'fence')" : "json_extract(e.detail, '$.fence')";
  const duplicates = await db.one<{ n: number | string }>(
    `SELECT COUNT(*) AS n FROM (
       SELECT e.task_seq FROM task_events e JOIN tasks t ON t.seq = e.task_seq
        WHERE t.project = $1 AND e.event = 'claimed'
        GROUP BY e.task_seq, ${fence} HAVING COUNT(*) > 1) d`,
    [project],
  );
  const spend = await db.one<{ micros: number | string | null }>('SELECT SUM(cost_micros) AS micros FROM usage_rollup WHERE project = $1', [project]);
  const done = await db.one<{ n: number | string }>("SELECT COUNT(*) AS n FROM tasks WHERE project = $1 AND status = 'done'", [project]);
  const micros = Number(spend?.micros ?? 0);
  const tasksDone = Number(done?.n ?? 0);
  return {
    recovery_success_rate: settled === 0 ? null : Math.round((recoveries.succeeded / settled) * 10_000) / 10_000,
    duplicate_claims: Number(duplicates?.n ?? 0),
    blocked_methods: counters.blocked_methods ?? 0,
    stale_enqueue_attempts: counters.stale_enqueue_attempts ?? 0,
    cost_per_completed_task_usd: tasksDone === 0 ? null : Math.round(micros / tasksDone) / 1_000_000,
    priced_spend_usd: micros / 1_000_000,
    tasks_done: tasksDone,
    unclaimed_routed_tasks: counters.unclaimed_routed_tasks ?? 0,
  };
}

/** `brain_breaker_<name>_state|opens|failures|rejections` for each saved breaker, and how many are open. */
async function breakerMetrics(store: Store): Promise<Record<string, number>> {
  const { savedBreakers } = await import('../core/brain/cycle.js');
  const out: Record<string, number> = {};
  const breakers = await savedBreakers(store.sql);
  out.brain_breakers_open = breakers.filter((b) => b.state === 'open').length;
  for (const b of breakers) {
    const key = `brain_breaker_${b.name.replace(/[^a-z0-9]+/gi, '_')}`;
    out[`${key}_state`] = b.state === 'closed' ? 0 : b.state === 'half-open' ? 1 : 2;
    out[`${key}_opens`] = b.counters.opens;
    out[`${key}_failures`] = b.counters.failures;
    out[`${key}_timeouts`] = b.counters.timeouts;
    out[`${key}_rejections`] = b.counters.rejections;
  }
  return out;
}
