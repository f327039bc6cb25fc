import { type ChildProcess, execFile, execFileSync, spawn } from 'node:child_process';
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Caller } from '../auth/caller.js';
import { openBusContext } from '../bus/context.js';
import { type BusContext, sendMessage } from '../bus/service.js';
import { resolveConfig } from '../config/resolve.js';
import { setBudget } from '../economy/budgets.js';
import { OperationFailed, Unavailable } from '../errors.js';
import { createSquad, joinSquad } from '../identity/squads.js';
import { createToken } from '../identity/tokens.js';
import { lifecycleFromConfig } from '../lifecycle/context.js';
import type { LifecycleContext } from '../lifecycle/context.js';
import { openStore, parseStoreTarget } from '../store/open.js';
import type { Store } from '../store/port.js';
import { routeTasks } from '../tasks/route.js';
import { createTask, type TaskContext } from '../tasks/service.js';
import { agentPidPath, crashFile, sendControl } from './agent.js';
import { startModelServer } from './model-server.js';
import { SIM_PATTERNS } from './patterns.js';
import { buildReport, type SimLogEntry, type SimReport } from './report.js';
import { agentNames, planSchedule, type Scenario, type SimEvent } from './scenario.js';
import { startRedis, type OwnRedis } from './redis-server.js';
import { ResourceSampler } from './resources.js';

const run = promisify(execFile);

/**
 * `sos sim`: a throwaway sos installation driven through failures. It creates a data dir (and a
 * fresh PostgreSQL schema, or a Redis project of its own), registers simulated agents on a tmux
 * server of its own (`-S <dir>/tmux.sock`), starts a real `sos daemon` process (so the supervisor,
 * wake delivery, sweeps and the brain loop are the real ones, the brain talking to the local
 * model server of `model-server.ts`), injects the scenario's failures on its seeded schedule, lets
 * the installation settle, and reports (`report.ts`). It stops everything it started — the
 * daemon by its PID, the agents by killing its own tmux server — unless `keep`.
 */

export interface SimOptions {
  scenario: Scenario;
  backend: 'sqlite' | 'postgres';
  /** For postgres: the server URL (a fresh schema is made in it). */
  pgUrl?: string;
  redisUrl?: string;
  keep: boolean;
  /** The `sos` launcher (bin/sos) the daemon and setup commands run as. */
  sosBin: string;
  /** The built simulated agent (dist/sim-agent.js). */
  agentScript: string;
  /** The parent's environment, from which the children's is made (SOS_* dropped). */
  env: NodeJS.ProcessEnv;
  /** Longest settling time after the scenario's minutes. */
  drainMs?: number;
  progress?: (line: string) => void;
  /** Ends the scenario early (what is left of the schedule is skipped); the run still settles and reports. */
  signal?: AbortSignal;
  /** `sos demo`: called when the run is set up and going; the run goes on while it runs. */
  whileRunning?: (world: SimWorld) => Promise<void>;
}

/** What a run set up: enough to open `sos top` on it or to keep it for inspection. */
export interface SimWorld {
  dir: string;
  project: string;
  env: NodeJS.ProcessEnv;
  socket: string;
}

interface Daemon {
  child: ChildProcess;
  exited: Promise<void>;
  stderr: () => string;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Sleeps until the moment `t`, or until the signal aborts. */
async function sleepUntil(t: number, signal?: AbortSignal): Promise<void> {
  while (!signal?.aborted && Date.now() < t) await sleep(Math.min(250, t - Date.now()));
}
const random6 = () => Math.random().toString(36).slice(2, 8);

/** The children's environment: the parent's without any SOS_* (so a user's config never leaks in). */
function childEnv(parent: NodeJS.ProcessEnv, dir: string, extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(parent)) if (!k.startsWith('SOS_') && k !== 'TMUX' && k !== 'TMUX_PANE') env[k] = v;
  return { ...env, XDG_CONFIG_HOME: join(dir, 'config'), XDG_DATA_HOME: join(dir, 'data'), SOS_DATA_DIR: join(dir, 'data'), ...extra };
}

async function sosCli(o: SimOptions, env: NodeJS.ProcessEnv, args: string[]): Promise<string> {
  try {
    const { stdout } = await run(process.execPath, [o.sosBin, ...args], { env, timeout: 60_000, maxBuffer: 16 << 20 });
    return stdout;
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new OperationFailed(`sos sim: \`sos ${args.join(' ')}\` failed: ${(e.stderr ?? e.message).trim().slice(0, 500)}`);
  }
}

function startDaemon(o: SimOptions, env: NodeJS.ProcessEnv, dir: string, n: number): Promise<Daemon> {
  const child = spawn(process.execPath, [o.sosBin, 'daemon', '--probe-interval', '1s', '--sweep-interval', '1s', '--wake-cooldown', '1s', '--listen', 'off'], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  const logFile = join(dir, `daemon-${n}.log`);
  return new Promise<Daemon>((resolve, reject) => {
    let started = false;
    const exited = new Promise<void>((done) => child.on('close', () => done()));
    const timer = setTimeout(() => reject(new Unavailable(`sos sim: the daemon did not start within 30 s:\n${err.slice(-2_000)}`)), 30_000);
    child.stderr!.on('data', (d: Buffer) => {
      const text = d.toString();
      err = (err + text).slice(-200_000);
      appendFileSync(logFile, text);
      if (!started && /"event":"started"|\bstarted\b/.test(text)) {
        started = true;
        clearTimeout(timer);
        resolve({ child, exited, stderr: () => err });
      }
    });
    child.on('close', (code) => {
      if (!started) {
        clearTimeout(timer);
        reject(new Unavailable(`sos sim: the daemon exited (${code}) before it started:\n${err.slice(-2_000)}`));
      }
    });
  });
}

async function stopDaemon(d: Daemon | null): Promise<void> {
  if (!d || d.child.exitCode !== null || d.child.signalCode !== null) return;
  d.child.kill('SIGTERM');
  const timer = setTimeout(() => d.child.kill('SIGKILL'), 10_000);
  await d.exited;
  clearTimeout(timer);
}

/** The pid in an agent's pid file, only when that process is this run's simulated agent. */
function agentPid(dir: string, name: string): number | null {
  try {
    const pid = Number.parseInt(readFileSync(agentPidPath(dir, name), 'utf8'), 10);
    if (!Number.isInteger(pid) || pid <= 1) return null;
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    return cmdline.includes('sim-agent') && cmdline.includes(dir) && cmdline.includes(name) ? pid : null;
  } catch {
    return null;
  }
}

export async function runSimulation(o: SimOptions): Promise<SimReport> {
  const s = o.scenario;
  const say = o.progress ?? (() => undefined);
  // The plan first: a scenario that does not fit is refused before anything is made.
  const durationMs = Math.round(s.minutes * 60_000);
  const names = agentNames(s.agents);
  const schedule = planSchedule(s, names, durationMs);
  const dir = mkdtempSync(join(tmpdir(), 'sos-sim-'));
  const socket = join(dir, 'tmux.sock');
  const project = o.redisUrl || o.backend === 'postgres' ? `sim-${random6()}` : 'sim';
  const schema = `sos_sim_${random6()}`;
  const db = o.backend === 'postgres' ? (o.pgUrl ?? 'postgres://postgres@127.0.0.1:5432/postgres') : join(dir, 'sos.db');
  const model = await startModelServer(s.brain);
  // `--redis local`: a redis-server of the run's own (its dir, a free port), the only kind the
  // simulator restarts; a given URL is somebody else's server and is never restarted.
  let ownRedis: OwnRedis | null = null;
  try {
    if (o.redisUrl === 'local') ownRedis = await startRedis(join(dir, 'redis'));
  } catch (err) {
    await model.close();
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  const redisUrl = ownRedis ? ownRedis.url : o.redisUrl;
  const simLog: SimLogEntry[] = [];
  const note = (entry: Omit<SimLogEntry, 'at'>) => {
    const e = { at: Date.now(), ...entry } as SimLogEntry;
    simLog.push(e);
    appendFileSync(join(dir, 'sim.jsonl'), `${JSON.stringify(e)}\n`);
  };
  const env = childEnv(o.env, dir, {
    SOS_DB: db,
    SOS_PG_SCHEMA: schema,
    SOS_PROJECT: project,
    SOS_LISTEN: 'off',
    SOS_IMPORT: '0',
    SOS_STUCK_AFTER_MS: '10000',
    SOS_RESTART_LIMIT: '4',
    SOS_RESTART_WINDOW_MS: '60000',
    SOS_RESTART_COOLDOWN_MS: '2000',
    SOS_BRAIN_PROVIDER: 'anthropic',
    SOS_BRAIN_URL: model.url,
    SOS_BRAIN_KEY: 'sim-local-no-key',
    SOS_BRAIN_DEBOUNCE_MS: '5000',
    SOS_SIM_TASK_MS: `${Math.round(s.taskSeconds[0] * 1000)}-${Math.round(s.taskSeconds[1] * 1000)}`,
    SOS_SIM_FAIL_RATE: String(s.failRate),
    ...(redisUrl ? { SOS_REDIS_URL: redisUrl } : {}),
  });
  const world: SimWorld = { dir, project, env, socket };
  let store: Store | null = null;
  let bus: BusContext | null = null;
  let daemon: Daemon | null = null;
  let daemons = 0;
  let router: Promise<void> | null = null;
  const routing = new AbortController();
  let sampler: ResourceSampler | null = null;
  try {
    say(`sim: ${s.name} scenario, ${s.agents} agents, ${s.tasks} tasks, ${s.minutes} min, seed ${s.seed}, ${o.backend}${o.redisUrl ? ' + Redis' : ''}; data in ${dir}`);
    // What a caller must clean up if this process dies before its own cleanup (a test's teardown).
    say(`sim: project ${project}${o.backend === 'postgres' ? `; schema ${schema}` : ''}${ownRedis ? `; redis-server pid ${ownRedis.pid()} at ${ownRedis.url}` : ''}`);
    await sosCli(o, env, ['init']);
    const config = await resolveConfig({ env, flags: {} });
    store = await openStore({ target: parseStoreTarget(config.values.db, dir), pgSchema: config.values.pgSchema, busyTimeoutMs: config.values.busyTimeoutMs });
    bus = await openBusContext(config.values, store);
    const tasks: TaskContext = { store, bus: bus.bus, maxTextBytes: config.values.maxMessageBytes };
    const operator: Caller = { project, agent: null, role: 'operator', via: 'local' };
    const boss: Caller = { project, agent: 'boss', role: 'operator', via: 'local' };
    const lifecycle = await lifecycleFromConfig(config.values, { store, bus: bus.bus, memory: null, cwd: dir });

    // Agents: a coordinator without a session, then the simulated agents the daemon starts.
    const patterns = join(dir, 'sim-agent.patterns.json');
    writeFileSync(patterns, JSON.stringify(SIM_PATTERNS));
    await sosCli(o, env, ['agents', 'add', 'boss', '--role', 'coordinator']);
    mkdirSync(join(dir, 'ctl'), { recursive: true });
    for (let i = 0; i < names.length; i += 4) {
      await Promise.all(
        names.slice(i, i + 4).map((name) =>
          sosCli(o, env, [
            'agents', 'add', name, '--kind', 'custom', '--cap', 'code',
            '--session', `tmux:${name}`, '--tmux-socket', socket,
            '--start-cmd', `${process.execPath} ${o.agentScript} --dir ${dir} --name ${name}`,
            '--workdir', dir, '--patterns', patterns, '--policy', 'warm', '--wake', 'text',
          ]),
        ),
      );
    }
    for (const squad of s.squads) await createSquad(store, operator, squad);
    for (const [i, name] of names.entries()) if (s.squads.length > 0) await joinSquad(store, operator, s.squads[i % s.squads.length]!, name);
    // The routed lane: every agent is a member; its tasks are given out by routing runs only.
    await createSquad(store, operator, ROUTED_SQUAD);
    for (const name of names) await joinSquad(store, operator, ROUTED_SQUAD, name);

    // Work: the tasks (spread over the squads and none), and the stale fixtures nobody can take.
    const lanes: (string | undefined)[] = [...s.squads, undefined];
    for (let i = 0; i < s.tasks; i++) {
      const squad = lanes[i % lanes.length];
      const { task } = await createTask(tasks, operator, { title: `sim task ${i + 1}: ${TOPICS[i % TOPICS.length]}`, ...(squad ? { squad } : {}), leaseMs: 15_000, maxAttempts: 6 });
      note({ kind: 'task_created', task: task.id });
    }
    for (let i = 0; i < s.staleFixtures; i++) {
      const { task } = await createTask(tasks, operator, { title: `test quest ${i + 1}`, squad: ROUTED_SQUAD, requires: ['fixture-only'], priority: 'low' });
      note({ kind: 'fixture_created', task: task.id });
    }

    daemon = await startDaemon(o, env, dir, ++daemons);
    sampler = new ResourceSampler(() => ({
      daemon: daemon?.child.pid ?? null,
      'tmux server': tmuxServerPid(socket),
      'sim (agents driver, model server)': process.pid,
      ...(ownRedis ? { 'redis-server': ownRedis.pid() } : {}),
    }));
    sampler.start();
    const started = Date.now();
    note({ kind: 'run_started' });
    say(`sim: daemon ${daemon.child.pid} started; ${schedule.length} scheduled events`);
    let seq = 0;
    const running = o.whileRunning ? o.whileRunning(world) : null;
    router = routeEvery(tasks, operator, note, started + durationMs, routing.signal);
    for (const ev of schedule) {
      await sleepUntil(started + ev.at, o.signal);
      if (o.signal?.aborted) break;
      const restarted = await inject(ev, { o, env, dir, socket, store, bus, boss, operator, lifecycle, ownRedis, note, seq: () => ++seq, restartDaemon: async () => {
        daemon = await startDaemon(o, env, dir, ++daemons);
        return daemon.child.pid ?? 0;
      }, daemon: () => daemon });
      if (restarted) say(`sim: ${restarted}`);
    }
    await sleepUntil(started + durationMs, o.signal);
    routing.abort();
    await router;
    router = null;
    note({ kind: 'run_ended' });
    say('sim: scenario over; letting the installation settle');
    const drainUntil = Date.now() + (o.drainMs ?? 60_000);
    const settled = await settle(store, bus, project, names, dir, simLog, drainUntil);
    note({ kind: 'settled', ok: settled });
    const resources = sampler.stop();
    sampler = null;
    const report = await buildReport({ store, bus, project, dir, agents: names, simLog, scenario: s, backend: o.backend, redis: Boolean(o.redisUrl), model, durationMs, load: { loadavg: loadavg(), cpus: cpus().length, ...resources }, settled });
    if (running) await running;
    return report;
  } finally {
    sampler?.stop();
    routing.abort();
    await router?.catch(() => undefined);
    await stopDaemon(daemon);
    if (!o.keep) {
      await run('tmux', ['-S', socket, 'kill-server']).catch(() => undefined);
    }
    await bus?.bus.close().catch(() => undefined);
    await store?.close().catch(() => undefined);
    await model.close();
    if (!o.keep) await ownRedis?.kill();
    if (!o.keep) {
      await dropBackends(o, schema, project).catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
    } else say(`sim: kept ${dir} (tmux -S ${socket}; SOS_DB=${db}${o.backend === 'postgres' ? ` SOS_PG_SCHEMA=${schema}` : ''} SOS_PROJECT=${project})`);
  }
}

/** The PID of the run's own tmux server (null until it runs: the daemon starts the agents). */
const tmuxPids = new Map<string, number>();
function tmuxServerPid(socket: string): number | null {
  // Asked of tmux once (a spawn), then kept while that process lives.
  const known = tmuxPids.get(socket);
  if (known !== undefined && existsSync(`/proc/${known}`)) return known;
  try {
    const pid = Number(execFileSync('tmux', ['-S', socket, 'display-message', '-p', '#{pid}'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim()) || null;
    if (pid !== null) tmuxPids.set(socket, pid);
    return pid;
  } catch {
    return null;
  }
}

/** The squad of routed work: every agent, and the stale fixtures (whose capability nobody has). */
export const ROUTED_SQUAD = 'routed';
/** Tasks a routing run adds to the routed lane before it routes it. */
const ROUTED_PER_RUN = 3;

/**
 * Routing as an operator's cron would run it (`sos tasks route --squad routed`): every 20 s from
 * the start, a few new tasks in the routed lane, then a routing run over that lane (the new tasks,
 * the stale fixtures, whatever an earlier run left); each run's report is logged (considered,
 * assigned, unrouted), so the report can check the Store's `unclaimed_routed_tasks` counter against
 * the sum of the runs' unrouted tasks. The rest of the work is claimed freely: routing gives work
 * to the cheapest agent, which would starve the others of the whole queue.
 */
async function routeEvery(tasks: TaskContext, operator: Caller, note: (e: Omit<SimLogEntry, 'at'>) => void, until: number, signal: AbortSignal): Promise<void> {
  const everyMs = 20_000;
  let next = Date.now() + 5_000;
  let n = 0;
  let creating: string | null = null;
  while (!signal.aborted && Date.now() < until) {
    await sleepUntil(Math.min(next, until), signal);
    if (signal.aborted || Date.now() >= until) return;
    next = Date.now() + everyMs;
    try {
      for (let i = 0; i < ROUTED_PER_RUN; i++) {
        creating = `routed task ${++n}: ${TOPICS[n % TOPICS.length]}`;
        const { task } = await createTask(tasks, operator, { title: creating, squad: ROUTED_SQUAD, priority: 'high', leaseMs: 15_000, maxAttempts: 6 });
        creating = null;
        note({ kind: 'task_created', task: task.id, routed: true });
      }
      const r = await routeTasks({ tasks }, operator, { squad: ROUTED_SQUAD });
      note({ kind: 'route', considered: r.considered, assigned: r.assigned, unrouted: r.unrouted, taken: r.taken, unroutedTasks: r.tasks.filter((t) => t.outcome === 'unroutable').map((t) => t.task) });
    } catch (err) {
      // A Store or bus outage (the daemon or Redis restarted) fails this run; the next one retries.
      // A creation that failed may still have written its row (the Store commits before the bus
      // hears of it): the title lets the report recognise it as ours and count it.
      note({ kind: 'route_failed', error: (err as Error).message, ...(creating !== null ? { title: creating } : {}) });
      creating = null;
    }
  }
}

const TOPICS = ['fix the flaky login test', 'review the deploy script', 'update the API docs', 'profile the slow query', 'triage new issues', 'bump a dependency', 'write a migration'];

interface InjectCtx {
  o: SimOptions;
  env: NodeJS.ProcessEnv;
  dir: string;
  socket: string;
  store: Store;
  bus: BusContext;
  boss: Caller;
  operator: Caller;
  note: (e: Omit<SimLogEntry, 'at'>) => void;
  seq: () => number;
  restartDaemon: () => Promise<number>;
  daemon: () => Daemon | null;
  lifecycle: LifecycleContext;
  ownRedis: OwnRedis | null;
}

/** Sends one message, retried while the bus is away (a Redis restart); null when it never went. */
async function sendRetrying(c: InjectCtx, agent: string, ack: boolean): Promise<string | null> {
  let last = '';
  for (let attempt = 0; attempt < 20; attempt++) {
    try {
      const sent = await sendMessage(c.bus, c.boss, { to: agent, text: `note ${c.seq()} from the coordinator: keep going`, ...(ack ? { ack: true } : {}) });
      return sent.id;
    } catch (err) {
      last = (err as Error).message;
      await sleep(500);
    }
  }
  c.note({ kind: 'message_failed', agent, error: last });
  return null;
}

/**
 * The operator's answer to a cascade escalation: each cascade agent whose session is dead is
 * started by hand, as the supervisor's restart does (the start command in its tmux session, a
 * fresh agent token), but it is not a lifecycle action, so it counts as no recovery.
 */
async function operatorRestart(c: InjectCtx, agent: string): Promise<boolean> {
  const a = await c.store.agents.get(c.operator.project, agent);
  if (!a?.startCmd) return false;
  const driver = await c.lifecycle.openDriver(a);
  if (agentPid(c.dir, agent) !== null) return false;
  const { secret } = await createToken(c.store, c.operator, { agent, role: 'agent' });
  await driver.start({ command: a.startCmd, workdir: a.workdir ?? c.dir, replace: true, env: { ...c.lifecycle.sessionEnv, SOS_TOKEN: secret, SOS_PROJECT: a.project, SOS_AGENT: a.name } });
  return true;
}

/** Does one scheduled event and logs it; returns a line worth printing, if any. */
async function inject(ev: SimEvent, c: InjectCtx): Promise<string | null> {
  const agent = ev.agent ?? '';
  switch (ev.kind) {
    case 'kill_process': {
      const pid = agentPid(c.dir, agent);
      if (pid === null) {
        c.note({ kind: 'skipped', what: ev.kind, agent, why: 'no live process' });
        return null;
      }
      process.kill(pid, 'SIGKILL');
      c.note({ kind: 'kill', how: 'kill -9 process', agent, pid });
      return `kill -9 ${agent} (pid ${pid})`;
    }
    case 'kill_pane': {
      if (agentPid(c.dir, agent) === null) {
        c.note({ kind: 'skipped', what: ev.kind, agent, why: 'no live process' });
        return null;
      }
      await run('tmux', ['-S', c.socket, 'kill-pane', '-t', agent]).catch(() => undefined);
      c.note({ kind: 'kill', how: 'kill-pane', agent });
      return `killed the tmux pane of ${agent}`;
    }
    case 'crash_loop': {
      writeFileSync(crashFile(c.dir, agent), String(Math.max(0, (ev.n ?? 1) - 1)));
      sendControl(c.dir, agent, 'crash', c.seq());
      c.note({ kind: 'kill', how: `crash loop (${ev.n} crashes)`, agent });
      return `crash loop: ${agent} crashes on its next ${ev.n} starts`;
    }
    case 'hang':
    case 'compact':
    case 'quota':
    case 'ask':
      sendControl(c.dir, agent, ev.kind, c.seq());
      c.note({ kind: ev.kind, agent });
      return null;
    case 'cascade': {
      // All of them at once, so each must be up first (a slow start, a restart in progress).
      for (const deadline = Date.now() + 30_000; Date.now() < deadline && (ev.agents ?? []).some((a) => agentPid(c.dir, a) === null); ) await sleep(500);
      const victims = (ev.agents ?? []).map((a) => ({ a, pid: agentPid(c.dir, a) }));
      for (const v of victims) if (v.pid !== null) process.kill(v.pid, 'SIGKILL');
      const at = Date.now();
      for (const v of victims) {
        if (v.pid === null) c.note({ kind: 'skipped', what: 'cascade', agent: v.a, why: 'no live process' });
        else c.note({ kind: 'kill', how: 'cascade kill -9', agent: v.a, pid: v.pid });
      }
      const killed = victims.filter((v) => v.pid !== null).map((v) => v.a);
      // The supervisor must refuse to restart them and escalate; the operator then restarts them.
      let escalated = false;
      for (const deadline = at + 30_000; !escalated && Date.now() < deadline; ) {
        await sleep(1_000);
        const rows = await c.store.sql.all<{ n: number | string }>("SELECT COUNT(*) AS n FROM lifecycle_actions WHERE project = $1 AND action = 'escalate' AND at >= $2 AND detail LIKE '%cascade%'", [c.operator.project, at]);
        escalated = Number(rows[0]?.n ?? 0) > 0;
      }
      c.note({ kind: 'cascade', agents: killed, escalated });
      const restarted: string[] = [];
      for (const a of killed) if (await operatorRestart(c, a).catch(() => false)) restarted.push(a);
      c.note({ kind: 'operator_restart', agents: restarted });
      return `cascade: kill -9 of ${killed.join(', ')}; ${escalated ? 'the supervisor escalated' : 'NO escalation seen'}; restarted by hand: ${restarted.join(', ') || 'none'}`;
    }
    case 'redis_restart': {
      if (!c.ownRedis) {
        c.note({ kind: 'skipped', what: 'redis_restart', why: c.o.redisUrl ? 'the Redis server is not the run\'s own (use --redis local)' : 'no Redis' });
        return null;
      }
      const before = c.ownRedis.pid();
      await c.ownRedis.restart();
      c.note({ kind: 'redis_restart', pid: before, newPid: c.ownRedis.pid() });
      return `kill -9 of redis-server ${before}; restarted as ${c.ownRedis.pid()}`;
    }
    case 'daemon_kill': {
      const d = c.daemon();
      if (d?.child.pid) {
        d.child.kill('SIGKILL');
        await d.exited;
      }
      c.note({ kind: 'daemon_kill', pid: d?.child.pid ?? 0 });
      await sleep(2_000);
      const pid = await c.restartDaemon();
      c.note({ kind: 'daemon_restart', pid });
      return `kill -9 the daemon; restarted as ${pid}`;
    }
    case 'message':
    case 'burst': {
      const n = ev.kind === 'burst' ? (ev.n ?? 1) : 1;
      for (let i = 0; i < n; i++) {
        const ack = ev.kind === 'message' && ev.n === 1;
        const id = await sendRetrying(c, agent, ack);
        if (id !== null) c.note({ kind: 'message', agent, id, ack, burst: ev.kind === 'burst' });
      }
      return null;
    }
    case 'budget': {
      await setBudget(c.store, c.operator, { scope: `agent:${agent}`, limit: `$${c.o.scenario.budget?.agentUsd ?? 0.04}`, period: 'day', action: 'block' });
      c.note({ kind: 'budget', agent });
      return `block budget set on ${agent}`;
    }
  }
}

/** Waits until every sent message was read, no task sits on a dead agent and every killed agent is back. */
async function settle(store: Store, bus: BusContext, project: string, names: string[], dir: string, simLog: SimLogEntry[], until: number): Promise<boolean> {
  const { settledNow } = await import('./report.js');
  for (;;) {
    if (await settledNow({ store, bus, project, dir, agents: names, simLog })) return true;
    if (Date.now() >= until) return false;
    await sleep(2_000);
  }
}

async function dropBackends(o: SimOptions, schema: string, project: string): Promise<void> {
  if (o.backend === 'postgres') {
    const pg = (await import('pg')).default;
    const client = new pg.Client({ connectionString: o.pgUrl ?? 'postgres://postgres@127.0.0.1:5432/postgres' });
    await client.connect();
    try {
      await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    } finally {
      await client.end();
    }
  }
  if (o.redisUrl && o.redisUrl !== 'local') {
    const { dropRedisProject } = await import('../bus/redis-drop.js');
    await dropRedisProject(o.redisUrl, project);
  }
}

/** The built simulated agent next to the running CLI (`bin/sos` → `dist/sim-agent.js`). */
export function builtAgentScript(sosBin: string): string {
  const candidate = join(sosBin, '..', '..', 'dist', 'sim-agent.js');
  if (!existsSync(candidate)) throw new Unavailable(`the simulated agent is not built: ${candidate} is missing`, { hint: 'run `npm run build`' });
  return candidate;
}
