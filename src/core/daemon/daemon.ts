import { hostname } from 'node:os';
import type { Caller } from '../auth/caller.js';
import { sweepAcks } from '../bus/service.js';
import type { Bus } from '../bus/port.js';
import type { ConfigValues } from '../config/variables.js';
import type { HttpServer, HttpTimeouts, ReadyCheck } from '../http/server.js';
import type { HttpHandler } from '../http/types.js';
import type { LifecycleContext } from '../lifecycle/context.js';
import type { MemoryContext } from '../memory/service.js';
import { type ProbeResult, superviseOnce } from '../lifecycle/probe.js';
import type { SessionDriver } from '../sessions/port.js';
import { useTmuxControl } from '../sessions/tmux-control.js';
import { openStore, parseStoreTarget } from '../store/open.js';
import { nextChange } from '../store/sql/driver.js';
import type { Store } from '../store/port.js';
import { heartbeatTask, sweepTasks } from '../tasks/service.js';
import { DaemonLease, readLease } from './lock.js';
import { PushWakes } from './push-wakes.js';
import { Loop, type LoopStatus } from './loop.js';
import { WakeDelivery, type WakeOptions } from './wake.js';

/**
 * `sos daemon`: one process running every loop that needs time (docs/ARCHITECTURE.md, "Daemon"): wake
 * delivery into sessions, the lifecycle probe and its actions, lease renewal from observed
 * activity, the lease and ack sweeps, and presence for supervised agents; and the HTTP surface
 * (http/server.ts: MCP, /v1, /metrics, health), started once the loops run and stopped before them.
 * Resources are released in reverse order of acquisition; loops share one shape (loop.ts).
 */

export interface DaemonIntervals {
  /** Lifecycle probe (and lease renewal, presence) period. */
  probeMs: number;
  /** Wake delivery poll period (a cheap change check gates the work). */
  wakeMs: number;
  /** Lease and ack sweeps. */
  sweepMs: number;
  /** Daemon lease heartbeat; the lease is stale after three missed beats. */
  lockMs: number;
}

export const DEFAULT_INTERVALS: DaemonIntervals = { probeMs: 3_000, wakeMs: 100, sweepMs: 5_000, lockMs: 2_000 };
/** How often, between wake passes, SQLite's change counter is read. */
const CHANGE_POLL_MS = 10;

export interface DaemonOptions {
  values: ConfigValues;
  cwd: string;
  intervals?: Partial<DaemonIntervals>;
  wake?: Partial<WakeOptions>;
  /** Leave pty agents the daemon started running when it stops (default: stop them). */
  detachedPtys?: boolean;
  /** Lifecycle readiness wait after a restart or an interrupt. */
  readyTimeoutMs?: number;
  log?: (event: Record<string, unknown>) => void;
  /** Called once the lease is held, every loop runs and the HTTP server listens (systemd readiness). */
  onReady?: () => void | Promise<void>;
  /** Reported by `/mcp` as the server's version. */
  version?: string;
  /** Allows SOS_LISTEN / --listen beyond loopback (`--allow-remote`). */
  allowRemote?: boolean;
  /** The HTTP route modules mounted under `/v1` and `/metrics`. */
  httpRoutes?: { rest?: HttpHandler; metrics?: HttpHandler };
  /** Overrides of the HTTP server's timeouts (tests use short ones). */
  httpTimeouts?: Partial<HttpTimeouts>;
}

export interface DaemonStatus {
  pid: number;
  host: string;
  startedAt: number;
  loops: LoopStatus[];
  /** Where the HTTP surface listens (`http://host:port`); null with `--listen off`. */
  http: { url: string } | null;
}

type Release = () => Promise<void> | void;

/** Last-in, first-out release of everything acquired (a small AsyncDisposableStack). */
class Resources {
  private readonly stack: { name: string; release: Release }[] = [];
  defer(name: string, release: Release): void {
    this.stack.push({ name, release });
  }
  async releaseAll(log: (event: Record<string, unknown>) => void): Promise<void> {
    while (this.stack.length) {
      const { name, release } = this.stack.pop()!;
      try {
        await release();
      } catch (err) {
        log({ event: 'release_failed', resource: name, error: String(err) });
      }
    }
  }
}

/** Serialises work per key (everything typed into one session), without blocking other keys. */
function keyedMutex() {
  const tails = new Map<string, Promise<unknown>>();
  return <T>(key: string, fn: () => Promise<T>): Promise<T> => {
    const prev = tails.get(key) ?? Promise.resolve();
    const next = prev.then(fn, fn);
    const tail = next.catch(() => undefined);
    tails.set(key, tail);
    void tail.then(() => {
      if (tails.get(key) === tail) tails.delete(key);
    });
    return next;
  };
}

const operator = (project: string): Caller => ({ project, agent: null, role: 'operator', via: 'local' });
const RENEW_STATES = new Set(['busy']);
const ACTIVE_STATES = new Set(['idle', 'waiting', 'compacted', 'warm']);

export class Daemon {
  private readonly resources = new Resources();
  private readonly loops: Loop[] = [];
  private readonly startedAt = Date.now();
  private stopping: Promise<void> | null = null;
  private readonly log: (event: Record<string, unknown>) => void;
  private lastChange: number | undefined;
  private readonly ownedPtys = new Map<string, SessionDriver>();
  private http: HttpServer | null = null;
  /** Resolves when the daemon has stopped (on its own, e.g. after losing its lease, or by stop()). */
  readonly stopped: Promise<void>;
  private resolveStopped!: () => void;

  private constructor(private readonly options: DaemonOptions) {
    this.log = options.log ?? (() => undefined);
    this.stopped = new Promise((r) => {
      this.resolveStopped = r;
    });
  }

  static async start(options: DaemonOptions): Promise<Daemon> {
    const daemon = new Daemon(options);
    try {
      await daemon.boot();
    } catch (err) {
      await daemon.resources.releaseAll(daemon.log);
      throw err;
    }
    return daemon;
  }

  private async boot(): Promise<void> {
    const v = this.options.values;
    const intervals = { ...DEFAULT_INTERVALS, ...this.options.intervals };
    // The listen address is judged before anything is opened: a refused one changes nothing.
    const { checkExposure, parseListen } = await import('../http/limits.js');
    const listen = parseListen(v.listen);
    const exposure = listen ? checkExposure(listen, this.options.allowRemote === true) : null;
    const store: Store = await openStore({ target: parseStoreTarget(v.db, this.options.cwd), pgSchema: v.pgSchema, busyTimeoutMs: v.busyTimeoutMs });
    this.resources.defer('store', () => store.close());
    await store.assertReady();

    const lease = new DaemonLease(store.sql, intervals.lockMs * 3);
    await lease.acquire();
    this.resources.defer('lease', () => lease.release());

    const { openBusContext } = await import('../bus/context.js');
    const busCtx = await openBusContext(v, store);
    this.resources.defer('bus', () => busCtx.bus.close());
    const { openMemoryContext } = await import('../memory/open.js');
    const memory = await openMemoryContext(v, store, this.options.cwd, busCtx.bus);
    this.resources.defer('memory', () => memory.close());

    const exclusive = keyedMutex();
    const { lifecycleFromConfig } = await import('../lifecycle/context.js');
    const base = await lifecycleFromConfig(v, {
      store,
      bus: busCtx.bus,
      memory: memory.ctx,
      cwd: this.options.cwd,
      ...(this.options.readyTimeoutMs !== undefined ? { readyTimeoutMs: this.options.readyTimeoutMs } : {}),
    });
    // Lifecycle actions type into sessions too: each of their session operations takes the
    // session's turn, so a wake line and a context pack never interleave.
    const life: LifecycleContext = {
      ...base,
      openDriver: async (agent) => {
        const driver = await base.openDriver(agent);
        const key = `${agent.project}/${agent.name}`;
        return {
          type: driver.type,
          spec: driver.spec,
          exists: () => driver.exists(),
          snapshot: (lines) => driver.snapshot(lines),
          submit: (text) => exclusive(key, () => driver.submit(text)),
          interrupt: () => exclusive(key, () => driver.interrupt()),
          stop: () => exclusive(key, () => driver.stop()),
          start: async (spec) => {
            await exclusive(key, () => driver.start(spec));
            if (driver.type === 'pty') this.ownedPtys.set(key, driver);
          },
        };
      },
    };
    this.resources.defer('ptys', () => this.releasePtys());

    // Wakes and probes read panes and type into them all day: through one tmux control client per
    // server (tmux-control.ts) rather than a tmux process per command, until the daemon stops.
    this.resources.defer('tmux control', useTmuxControl());

    const wake = new WakeDelivery(
      base,
      { cooldownMs: 5_000, verifyMs: 1_500, ...this.options.wake },
      exclusive,
    );
    const recovered = await wake.recover();
    if (recovered.unverified) this.log({ event: 'wake_recovered', ...recovered });

    const onError = (name: string, err: unknown) => this.log({ event: 'loop_error', loop: name, error: err instanceof Error ? err.message : String(err) });
    const projects = async () => (await store.projects.list()).map((p) => p.slug);
    // SQLite says cheaply whether another process wrote (one pragma): between passes it is asked
    // every few milliseconds, so a message sent by `sos send` is picked up at once rather than
    // at the next interval. Only when the messages live in that database too: with a Redis bus a
    // send writes no SQLite page (and skipping passes on the counter would never deliver it).
    // Redis and PostgreSQL push each send instead (PushWakes below); the interval is the fallback.
    const changeCounter = busCtx.bus.capabilities.adapter === 'sql' ? store.sql.changeCounter?.bind(store.sql) : undefined;
    const waitForChange = changeCounter
      ? async (timeoutMs: number, signal: AbortSignal): Promise<boolean> =>
          (await nextChange(changeCounter, await changeCounter(), Date.now() + timeoutMs, signal, CHANGE_POLL_MS)) !== null
      : undefined;
    /** `project/agent` of pushed wakes not yet served by a wake pass. */
    const pushed = new Set<string>();
    const wakeLoop = new Loop({
      name: 'wake',
      intervalMs: intervals.wakeMs,
      ...(waitForChange ? { waitForWake: waitForChange } : {}),
      onError,
      run: async (signal) => {
        // SQLite tells cheaply whether another process wrote anything: skip the pass when nothing
        // changed and nothing is held.
        const change = await changeCounter?.();
        if (change !== undefined && change === this.lastChange && !wake.hasHeld()) return;
        this.lastChange = change;
        for (const project of await projects()) {
          // Agents a push named go first: their message does not wait behind every other agent's check.
          const agents = (await store.agents.list(project))
            .filter((a) => a.session !== null)
            .sort((a, b) => Number(pushed.has(`${project}/${b.name}`)) - Number(pushed.has(`${project}/${a.name}`)));
          for (const a of agents) pushed.delete(`${project}/${a.name}`);
          for (const o of await wake.deliverProject(operator(project), agents, signal)) {
            if (o.result === 'delivered' || o.result === 'failed') this.log({ event: `wake_${o.result}`, project, agent: o.agent, messages: o.messages });
            if (o.result === 'skipped' && o.messages.length) this.log({ event: 'wake_skipped', project, agent: o.agent, messages: o.messages, reason: o.reason });
            if (o.result === 'held' && o.newlyHeld?.length) this.log({ event: 'wake_held', project, agent: o.agent, messages: o.newlyHeld, reason: o.reason });
          }
        }
      },
    });
    // Redis and PostgreSQL push each send: the wake loop runs at once, not at its next interval.
    const pushWakes = new PushWakes(busCtx.bus, (project, agent) => {
      if (pushed.size < 10_000) pushed.add(`${project}/${agent}`);
      wakeLoop.wake();
    }, (project, err) =>
      this.log({ event: 'push_wake_unavailable', project, error: err instanceof Error ? err.message : String(err) }),
    );
    this.resources.defer('push wakes', () => pushWakes.close());
    await pushWakes.sync(await projects());
    const lifecycleLoop = new Loop({
      name: 'lifecycle',
      intervalMs: intervals.probeMs,
      onError,
      run: async () => {
        for (const project of await projects()) {
          // Each action is logged when it is done (a restart can wait seconds for its agent).
          const results = await superviseOnce(life, operator(project), {
            act: true,
            onAction: (r) => this.log({ event: 'lifecycle_action', project, agent: r.agent, action: r.action!.action, outcome: r.action!.outcome, detail: r.action!.detail }),
          });
          await this.keepLeasesAndPresence(life, busCtx.presenceTtlMs, project, results);
        }
        wakeLoop.wake(); // an agent may have become idle: held messages can go out now
        await pushWakes.sync(await projects());
      },
    });
    const sweepLoop = new Loop({
      name: 'sweep',
      intervalMs: intervals.sweepMs,
      onError,
      run: async () => {
        for (const project of await projects()) {
          const tasks = await sweepTasks({ store, bus: busCtx.bus, maxTextBytes: v.maxMessageBytes }, operator(project));
          const acks = await sweepAcks(busCtx, operator(project));
          if (tasks.requeued.length || tasks.dead.length || acks.resent.length || acks.escalated.length) {
            this.log({ event: 'sweep', project, requeued: tasks.requeued.map((t) => t.id), dead: tasks.dead.map((t) => t.id), resent: acks.resent.length, escalated: acks.escalated.length });
          }
        }
      },
    });
    const leaseLoop = new Loop({
      name: 'lease',
      intervalMs: intervals.lockMs,
      onError,
      run: async () => {
        if (!(await lease.renew(this.status()))) {
          this.log({ event: 'lease_lost', detail: 'another daemon took over the lease; stopping' });
          void this.stop();
        }
      },
    });
    const { importLoop, economyLoop } = await this.economyLoops(store, busCtx.bus, life, projects, intervals.sweepMs, onError);
    const brainLoop = await this.brainLoop(store, busCtx.bus, memory.ctx, projects, onError);
    this.loops.push(leaseLoop, sweepLoop, lifecycleLoop, wakeLoop, economyLoop, ...(importLoop ? [importLoop] : []), ...(brainLoop ? [brainLoop] : []));
    for (const loop of this.loops) loop.start();
    this.resources.defer('loops', async () => {
      // Loops stop first (they were started last): the iteration in flight finishes.
      await Promise.all(this.loops.map((l) => l.stop()));
    });
    if (listen) {
      if (exposure) this.log({ event: 'http_remote', warning: exposure });
      const { HttpServer } = await import('../http/server.js');
      const { loadPrices } = await import('../economy/prices.js');
      const ready = async (): Promise<Record<string, ReadyCheck>> => {
        const check = async (work: () => Promise<unknown>): Promise<ReadyCheck> => {
          try {
            await work();
            return { ok: true };
          } catch (err) {
            return { ok: false, detail: (err instanceof Error ? err.message : String(err)).slice(0, 300) };
          }
        };
        return {
          store: await check(() => store.sql.one('SELECT 1 AS ok')),
          bus: await check(() => busCtx.bus.presence(v.project)),
          lease: await check(async () => {
            const row = await readLease(store.sql);
            if (!row || row.owner !== lease.owner) throw new Error('another daemon holds the lease');
            if (Date.now() - row.heartbeatAt > intervals.lockMs * 3) throw new Error('the lease has not been renewed in time');
          }),
        };
      };
      this.http = await HttpServer.start({
        deps: { store, bus: busCtx, tasks: { store, bus: busCtx.bus, maxTextBytes: v.maxMessageBytes }, memory: memory.ctx, life, values: v, prices: await loadPrices(v.prices) },
        address: listen,
        version: this.options.version ?? '0.0.0',
        ready,
        ...(this.options.httpRoutes ? { routes: this.options.httpRoutes } : {}),
        ...(this.options.httpTimeouts ? { timeouts: this.options.httpTimeouts } : {}),
        log: this.log,
      });
      // Released first (last in): stop accepting, finish requests in flight, close MCP sessions;
      // only then do the loops stop and the backends close.
      this.resources.defer('http', () => this.http?.stop());
      this.log({ event: 'http_listening', url: this.http.url });
      await lease.renew(this.status()); // `sos daemon status` names the address at once

    }
    this.log({ event: 'started', pid: process.pid, db: store.location, bus: busCtx.bus.capabilities.adapter, http: this.http?.url ?? null });
    await this.options.onReady?.();
  }

  /**
   * The economy's two loops. `import` reads the agents' transcripts into the ledger (every
   * SOS_IMPORT_INTERVAL_MS, sooner when a watched transcript directory changes); files no agent
   * claims go to the default project only, so several projects never count one call twice.
   * `economy` acts on spent pause budgets and used-up quota windows (enforce.ts).
   */
  private async economyLoops(store: Store, bus: Bus, life: LifecycleContext, projects: () => Promise<string[]>, everyMs: number, onError: (name: string, err: unknown) => void) {
    const v = this.options.values;
    const { announceCrossings } = await import('../economy/announce.js');
    const { enforcePauses, enforceQuota } = await import('../economy/enforce.js');
    const { parsePlanLimits } = await import('../economy/quota.js');
    const limits = parsePlanLimits(v.planLimits);
    const economyLoop = new Loop({
      name: 'economy',
      intervalMs: everyMs,
      onError,
      run: async () => {
        for (const project of await projects()) {
          const now = Date.now();
          const done = [...(await enforcePauses(life, operator(project), now)), ...(await enforceQuota(life, operator(project), now, limits, v.quotaMarginMs))];
          for (const d of done) this.log({ event: 'economy_action', project, agent: d.agent, action: d.action, why: d.why, outcome: d.outcome, until: d.until });
        }
      },
    });
    if (!v.importTranscripts) return { economyLoop, importLoop: null };
    const { importTranscripts, IMPORT_SOURCES, sourceRoot } = await import('../economy/import.js');
    const { loadPrices } = await import('../economy/prices.js');
    const prices = await loadPrices(v.prices);
    const importLoop = new Loop({
      name: 'import',
      intervalMs: v.importIntervalMs,
      onError,
      run: async () => {
        const all = await projects();
        for (const project of all) {
          const report = await importTranscripts(store, operator(project), {
            prices,
            keepUnattributed: all.length === 1 || project === v.project,
            crossed: (crossings) => announceCrossings({ store, bus }, project, crossings),
          });
          if (report.eventsNew > 0 || report.corrupt > 0) {
            this.log({ event: 'usage_imported', project, files: report.files, events: report.eventsNew, duplicates: report.duplicates, corrupt: report.corrupt, seconds: report.seconds });
          }
        }
        economyLoop.wake(); // new usage may have spent a budget or a window
      },
    });
    // A change under a transcript root wakes the import at once (recursive watch, Linux and
    // macOS); where watching fails the interval alone drives it.
    const { watch } = await import('node:fs');
    const { existsSync } = await import('node:fs');
    const { join } = await import('node:path');
    const roots = IMPORT_SOURCES.map((s) => join(sourceRoot(s), s === 'claude' ? 'projects' : s === 'codex' ? 'sessions' : 'tmp')).filter((d) => existsSync(d));
    let pending: NodeJS.Timeout | null = null;
    for (const root of roots) {
      try {
        const watcher = watch(root, { recursive: true, persistent: false }, () => {
          pending ??= setTimeout(() => {
            pending = null;
            importLoop.wake();
          }, 250);
        });
        watcher.on('error', () => watcher.close());
        this.resources.defer(`watch ${root}`, () => watcher.close());
      } catch (err) {
        this.log({ event: 'watch_failed', root, error: String(err) });
      }
    }
    this.resources.defer('import debounce', () => {
      if (pending) clearTimeout(pending);
    });
    return { economyLoop, importLoop };
  }

  /**
   * The brain's loop, only when a provider is configured (SOS_BRAIN_PROVIDER). Each pass reads
   * every project's event stream from where it last stopped (kept in `brain_cursors`, so events
   * from while the daemon was down count), feeds the triggering ones to the project's scheduler
   * (trigger.ts: debounce, `brain.wake` at once, the slow timer) and runs the cycle that is due.
   * A provider outage fails the cycle (recorded, breakers counting); it never stops the loop.
   */
  private async brainLoop(store: Store, bus: Bus, memory: MemoryContext, projects: () => Promise<string[]>, onError: (name: string, err: unknown) => void) {
    const v = this.options.values;
    const { brainFromConfig } = await import('../brain/context.js');
    const brain = await brainFromConfig(v, { store, bus, memory, cwd: this.options.cwd });
    if (!brain) return null;
    const { runCycle } = await import('../brain/cycle.js');
    const { BrainScheduler } = await import('../brain/trigger.js');
    const schedulers = new Map<string, { scheduler: InstanceType<typeof BrainScheduler>; cursor: string }>();
    const started = Date.now();
    const read = async (project: string) => {
      let entry = schedulers.get(project);
      let fresh = false;
      if (!entry) {
        const saved = await store.sql.one<{ cursor: string }>('SELECT cursor FROM brain_cursors WHERE project = $1', [project]);
        fresh = saved === undefined;
        entry = { scheduler: new BrainScheduler({ debounceMs: v.brainDebounceMs, intervalMs: v.brainIntervalMs }, started), cursor: saved?.cursor ?? '' };
        schedulers.set(project, entry);
      }
      const before = entry.cursor;
      for (;;) {
        const page = await bus.events(project, entry.cursor, 500);
        const now = Date.now();
        // The first start reads the stream's history only to find its end: old events trigger nothing.
        entry.scheduler.observe(fresh ? page.events.filter((e) => e.at >= started) : page.events, now);
        entry.cursor = page.cursor;
        if (page.events.length < 500) break;
      }
      if (entry.cursor !== before || fresh) {
        await store.sql.run(
          `INSERT INTO brain_cursors (project, cursor, updated_at) VALUES ($1, $2, $3)
           ON CONFLICT (project) DO UPDATE SET cursor = excluded.cursor, updated_at = excluded.updated_at`,
          [project, entry.cursor, Date.now()],
        );
      }
      return entry.scheduler;
    };
    return new Loop({
      name: 'brain',
      intervalMs: Math.max(50, Math.min(1_000, Math.floor(v.brainDebounceMs / 4) || 50)),
      onError,
      run: async (signal) => {
        for (const project of await projects()) {
          if (signal.aborted) return;
          const scheduler = await read(project);
          const trigger = scheduler.take(Date.now());
          if (!trigger) continue;
          try {
            const c = await runCycle(brain, operator(project), { trigger, signal });
            this.log({ event: 'brain_cycle', project, cycle: c.id, trigger: c.trigger, method: c.decision?.method ?? null, outcome: c.outcome, reason: c.reason.slice(0, 300), provider: c.provider });
          } catch (err) {
            onError('brain', err);
          }
        }
      },
    });
  }

  /**
   * Renews the leases of supervised agents that show activity (busy, or a screen that changed
   * within the lease window) and stops renewing for dead, parked and stuck ones, so their work
   * returns to the queue. Presence follows the observed state.
   */
  private async keepLeasesAndPresence(life: LifecycleContext, ttlMs: number, project: string, results: ProbeResult[]): Promise<void> {
    const now = Date.now();
    const states = new Map((await life.repo.list(project)).map((s) => [s.agent, s]));
    for (const r of results) {
      const record = states.get(r.agent);
      if (r.state !== 'dead' && r.state !== 'parked' && r.state !== 'unknown') await life.bus.heartbeat(project, r.agent, now, ttlMs);
      if (r.holds.length === 0) continue;
      const recentlyActive = record?.lastChangeAt != null && ACTIVE_STATES.has(r.state);
      for (const id of r.holds) {
        const task = await life.store.tasks.peek(project, id);
        if (!task || task.claimant !== r.agent || task.leaseUntil === null) continue;
        const active = RENEW_STATES.has(r.state) || (recentlyActive && now - record!.lastChangeAt! < task.leaseMs);
        if (!active || task.leaseUntil - now > task.leaseMs / 2) continue;
        try {
          await heartbeatTask({ store: life.store, bus: life.bus, maxTextBytes: life.maxTextBytes }, operator(project), { id, fence: task.attempt });
          await life.store.counters.add(project, 'leases_renewed');
        } catch (err) {
          this.log({ event: 'lease_renew_failed', project, agent: r.agent, task: id, error: String(err) });
        }
      }
    }
  }

  private async releasePtys(): Promise<void> {
    if (this.options.detachedPtys) return;
    for (const [key, driver] of this.ownedPtys) {
      await driver.stop();
      this.log({ event: 'pty_stopped', agent: key });
    }
  }

  status(): DaemonStatus {
    return { pid: process.pid, host: hostname(), startedAt: this.startedAt, loops: this.loops.map((l) => l.status()), http: this.http ? { url: this.http.url } : null };
  }

  /** Drains: loops finish their iteration in flight, then everything is released in reverse. Idempotent. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      this.log({ event: 'stopping' });
      await this.resources.releaseAll(this.log);
      this.log({ event: 'stopped' });
      this.resolveStopped();
    })();
    return this.stopping;
  }
}
