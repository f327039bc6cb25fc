import { fileURLToPath } from 'node:url';
import { UsageError } from '../core/errors.js';
import type { DaemonStatus } from '../core/daemon/daemon.js';
import type { HttpHandler } from '../core/http/types.js';
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
  const listen = inv.options.listen;
  const values = typeof listen === 'string' ? { ...config.values, listen } : config.values;
  const { packageVersion } = await import('./mcp.run.js');
  const daemon = await Daemon.start({
    values,
    version: packageVersion(),
    allowRemote: inv.options.allowRemote === true,
    httpRoutes: await httpRoutes(),
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

/**
 * The route modules mounted under `/v1` and `/metrics` (src/core/http/rest.ts, metrics.ts).
 * Loaded only by the daemon: nothing else needs them.
 */
async function httpRoutes(): Promise<{ rest: HttpHandler; metrics: HttpHandler }> {
  const [{ restHandler }, { metricsHandler }] = await Promise.all([import('../core/http/rest.js'), import('../core/http/metrics.js')]);
  return { rest: restHandler, metrics: metricsHandler };
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
      const http = s?.http?.url ?? null;
      const data = lease ? { running, pid: lease.pid, host: lease.host, startedAt: iso(lease.startedAt), heartbeatAt: iso(lease.heartbeatAt), http, loops: s?.loops ?? [] } : { running: false };
      return {
        data,
        human: lease
          ? [
              fields([
                ['daemon', running ? 'running' : 'not running (stale lease)'],
                ['pid', `${lease.pid} on ${lease.host}`],
                ['started', iso(lease.startedAt)],
                ['heartbeat', iso(lease.heartbeatAt)],
                ['http', http ?? 'off'],
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

/**
 * `sos metrics`: the project's figures as a table, `--json`, or with `--prometheus` the same
 * exposition `/metrics` serves (so it can be checked with `promtool check metrics` offline).
 */
export async function metrics(inv: Invocation): Promise<Output> {
  const prometheus = inv.options.prometheus === true;
  if (prometheus && inv.globals.json) throw new UsageError('choose --json or --prometheus, not both');
  return withLifecycle(inv, async ({ life, caller, ctx }) => {
    const parts = { store: life.store, bus: ctx, repo: life.repo };
    if (prometheus) {
      const { projectExposition } = await import('../core/http/metrics.js');
      const text = await projectExposition(parts, caller);
      return { data: text, human: text, quiet: text };
    }
    const { flatMetrics, projectMetrics } = await import('../core/metrics.js');
    const data = flatMetrics(await projectMetrics(parts, caller));
    return { data, human: table(['counter', 'value'], Object.entries(data)) };
  });
}
