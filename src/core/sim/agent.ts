import { appendFileSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { type Caller, resolveCaller } from '../auth/caller.js';
import { openBusContext } from '../bus/context.js';
import { ackMessage, type BusContext, readInbox } from '../bus/service.js';
import { resolveConfig } from '../config/resolve.js';
import { recordUsage } from '../economy/service.js';
import { openMemoryContext } from '../memory/open.js';
import { recall, remember, type MemoryContext } from '../memory/service.js';
import { openStore, parseStoreTarget } from '../store/open.js';
import type { Store } from '../store/port.js';
import { claimTask, completeTask, failTask, heartbeatTask, type TaskContext } from '../tasks/service.js';
import type { Task } from '../tasks/types.js';
import { SIM_COMPACTED, SIM_FRAMES, SIM_PROMPT, SIM_QUESTION, SIM_SPINNER, simQuotaLine } from './patterns.js';

/**
 * The simulated agent that `sos sim` runs in each tmux pane (built as `dist/sim-agent.js`). On
 * screen it behaves like an agent CLI — a prompt, a busy spinner, a permission question, a
 * compaction notice, a quota message with a reset time, a crash — drawn in the vocabulary of
 * `patterns.ts`, so the real daemon's supervisor reads it as it reads a real agent. Behind the
 * screen it really works through sos, in-process, with the token the supervisor started it with
 * (SOS_TOKEN): it claims, heartbeats, completes and fails tasks, reads and acks its inbox when a
 * wake line is typed in, remembers and recalls, and reports usage.
 *
 * Every effect is logged, one JSON object a line, to `<dir>/agents/<name>.jsonl`, so the
 * simulator can cross-check the Store against what the agents did. An effect is logged *before*
 * the call that makes it durable (`completing`) and *after* it returned (`completed`), so a kill
 * -9 between the two is visible as such rather than as a mismatch.
 *
 * The simulator steers it through files, never through the terminal (the terminal belongs to
 * the daemon's wake delivery): `<dir>/ctl/<name>/<n>-<command>` (hang, compact, quota, ask,
 * crash), consumed once; `<dir>/ctl/<name>.crashes` holds how many further starts crash at once.
 */

export interface AgentPaths {
  dir: string;
  name: string;
}

export const agentLogPath = (dir: string, name: string) => join(dir, 'agents', `${name}.jsonl`);
export const agentPidPath = (dir: string, name: string) => join(dir, 'agents', `${name}.pid`);
export const controlDir = (dir: string, name: string) => join(dir, 'ctl', name);
export const crashFile = (dir: string, name: string) => join(dir, 'ctl', `${name}.crashes`);

/** One simulated-agent log line. */
export interface AgentLogEntry {
  at: number;
  event: string;
  pid?: number;
  task?: string;
  fence?: number;
  ids?: string[];
  acked?: string[];
  line?: string;
  error?: string;
  [key: string]: unknown;
}

/** Reads an agent's log; a torn last line (a kill mid-write) is skipped. */
export function readAgentLog(dir: string, name: string): AgentLogEntry[] {
  let text: string;
  try {
    text = readFileSync(agentLogPath(dir, name), 'utf8');
  } catch {
    return [];
  }
  const out: AgentLogEntry[] = [];
  for (const line of text.split('\n')) {
    if (!line) continue;
    try {
      out.push(JSON.parse(line) as AgentLogEntry);
    } catch {
      // torn by a kill -9: the entry was never complete
    }
  }
  return out;
}

/** Queues a command for an agent (the simulator's side of the control files). */
export function sendControl(dir: string, name: string, command: string, seq: number): void {
  const d = controlDir(dir, name);
  mkdirSync(d, { recursive: true });
  const tmp = join(dir, 'ctl', `.${name}-${seq}.tmp`);
  writeFileSync(tmp, command);
  renameSync(tmp, join(d, `${String(seq).padStart(6, '0')}-${command}`));
}

const CLEAR_LINE = '\r\u001b[2K';
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const between = (lo: number, hi: number) => lo + Math.random() * (hi - lo);

interface World {
  dir: string;
  name: string;
  store: Store;
  bus: BusContext;
  tasks: TaskContext;
  memory: MemoryContext | null;
  caller: Caller;
  taskMs: [number, number];
  failRate: number;
}

/** The agent's run: exits only by a crash, `/exit`, or being killed. */
export async function runSimAgent(paths: AgentPaths, env: NodeJS.ProcessEnv = process.env): Promise<never> {
  const { dir, name } = paths;
  mkdirSync(join(dir, 'agents'), { recursive: true });
  const log = (entry: Omit<AgentLogEntry, 'at'>) => appendFileSync(agentLogPath(dir, name), `${JSON.stringify({ at: Date.now(), ...entry })}\n`);
  const out = (text: string) => process.stdout.write(text);
  writeFileSync(agentPidPath(dir, name), String(process.pid));
  log({ event: 'start', pid: process.pid });

  // A crash loop: this start crashes at once while the counter says so.
  const crashes = readCount(crashFile(dir, name));
  if (crashes > 0) {
    writeFileSync(crashFile(dir, name), String(crashes - 1));
    log({ event: 'crash', left: crashes - 1 });
    await crash();
  }

  const config = await resolveConfig({ env, flags: {} });
  const store = await openStore({ target: parseStoreTarget(config.values.db, dir), pgSchema: config.values.pgSchema, busyTimeoutMs: config.values.busyTimeoutMs });
  const bus = await openBusContext(config.values, store);
  let memory: MemoryContext | null = null;
  try {
    memory = (await openMemoryContext(config.values, store, dir, bus.bus)).ctx;
  } catch (err) {
    log({ event: 'memory_unavailable', error: (err as Error).message });
  }
  const caller = await resolveCaller(store, { token: env.SOS_TOKEN, project: config.values.project, projectExplicit: true, agent: undefined });
  const taskMs = (env.SOS_SIM_TASK_MS ?? '1000-3000').split('-').map(Number) as [number, number];
  const w: World = { dir, name, store, bus, tasks: { store, bus: bus.bus, maxTextBytes: config.values.maxMessageBytes }, memory, caller, taskMs, failRate: Number(env.SOS_SIM_FAIL_RATE ?? '0.03') };

  // Input: every typed line is logged; a wake line (or a context pack) means "look at the inbox".
  let inboxDue = true;
  let typed = 0;
  const rl = createInterface({ input: process.stdin, terminal: false });
  rl.on('line', (line) => {
    typed += 1;
    log({ event: 'line', line: line.slice(0, 200) });
    if (line.startsWith('[sos] ')) inboxDue = true;
  });
  rl.on('close', () => void exit(0));

  // Ctrl-C interrupts a hang (the supervisor's interrupt of a stuck agent); at the prompt it only redraws.
  let interrupt: (() => void) | null = null;
  process.on('SIGINT', () => {
    if (interrupt) {
      const i = interrupt;
      interrupt = null;
      i();
    } else out(`\n${SIM_PROMPT}`);
  });

  out(`sim agent ${name} ready\n${SIM_PROMPT}`);
  log({ event: 'ready' });

  let pendingHang = false;
  let answered = 0;
  let lastInbox = 0;
  let nextClaim = Date.now() + between(300, 1_500);
  for (;;) {
    for (const command of takeControls(dir, name)) {
      if (command === 'hang') pendingHang = true;
      else if (command === 'crash') {
        log({ event: 'crash' });
        await crash();
      } else if (command === 'compact') {
        out(`${SIM_COMPACTED}\n${SIM_PROMPT}`);
        log({ event: 'compact' });
        // Left at the prompt with the notice showing until something is typed (the supervisor's
        // checkpoint re-injects the task) or a while passes, as a real agent waits for its next turn.
        const before = typed;
        const until = Date.now() + 10_000;
        while (typed === before && Date.now() < until) await sleep(200);
      } else if (command === 'ask') {
        out(`${SIM_QUESTION}\n❯ 1. Yes\n  2. No\n`);
        log({ event: 'ask' });
        await sleep(8_000);
        out(`ok\n${SIM_PROMPT}`);
      } else if (command.startsWith('quota')) {
        const minutes = 1;
        out(`${simQuotaLine(minutes)}\n`);
        log({ event: 'quota' });
        await sleep(minutes * 60_000 + 2_000);
        out(SIM_PROMPT);
        log({ event: 'quota_over' });
      }
    }
    // A line typed at the prompt is answered with a fresh prompt, as an agent TUI redraws its
    // input box: the echoed line must not stay the last line (the classifier reads that as unknown).
    if (typed !== answered) {
      answered = typed;
      out(`ok\n${SIM_PROMPT}`);
    }
    if (inboxDue || Date.now() - lastInbox > 20_000) {
      inboxDue = false;
      lastInbox = Date.now();
      await checkInbox(w, log);
    }
    if (Date.now() >= nextClaim) {
      const task = await tryClaim(w, log);
      if (task) {
        await work(w, task, log, out, pendingHang, (cancel) => (interrupt = cancel));
        pendingHang = false;
        interrupt = null;
        answered = typed;
        out(SIM_PROMPT);
        nextClaim = Date.now() + between(800, 2_000);
      } else nextClaim = Date.now() + between(1_500, 3_000);
    }
    await sleep(150);
  }
}

function readCount(path: string): number {
  try {
    const n = Number.parseInt(readFileSync(path, 'utf8'), 10);
    return Number.isInteger(n) && n > 0 ? n : 0;
  } catch {
    return 0;
  }
}

function takeControls(dir: string, name: string): string[] {
  let files: string[];
  try {
    files = readdirSync(controlDir(dir, name)).sort();
  } catch {
    return [];
  }
  const out: string[] = [];
  for (const f of files) {
    rmSync(join(controlDir(dir, name), f), { force: true });
    out.push(f.slice(f.indexOf('-') + 1));
  }
  return out;
}

/** A crash the classifier reads: an error and a stack frame on stderr, then exit 1. */
async function crash(): Promise<never> {
  process.stderr.write('Error: simulated crash\n    at main (sim-agent.js:1:1)\n');
  return exit(1);
}

function exit(code: number): Promise<never> {
  return new Promise<never>(() => process.stdout.write('', () => process.exit(code)));
}

type Log = (entry: Omit<AgentLogEntry, 'at'>) => void;

async function checkInbox(w: World, log: Log): Promise<void> {
  try {
    const { unread } = await readInbox(w.bus, w.caller, { limit: 200 });
    if (unread.length === 0) return;
    log({ event: 'read', ids: unread.map((i) => i.message.id) });
    const acked: string[] = [];
    for (const item of unread) {
      if (!item.message.ackRequired || item.message.from === w.name) continue;
      try {
        await ackMessage(w.bus, w.caller, { id: item.message.id, ok: true });
        acked.push(item.message.id);
      } catch (err) {
        log({ event: 'ack_failed', ids: [item.message.id], error: (err as Error).message });
      }
    }
    if (acked.length > 0) log({ event: 'acked', acked });
  } catch (err) {
    log({ event: 'inbox_failed', error: (err as Error).message });
  }
}

async function tryClaim(w: World, log: Log): Promise<Task | null> {
  try {
    const { task } = await claimTask(w.tasks, w.caller, {});
    log({ event: 'claimed', task: task.id, fence: task.attempt });
    return task;
  } catch (err) {
    const e = err as { code?: string; message: string };
    if (e.code === 'conflict') return null;
    if (e.code === 'permission_denied') log({ event: 'budget_refused', error: e.message });
    else log({ event: 'claim_failed', error: e.message });
    return null;
  }
}

/**
 * One task on screen: the spinner while it works (heartbeats every 3 s), then usage, memory and
 * the outcome. A hang draws the spinner once and goes silent without heartbeats until Ctrl-C; the
 * task is then tried as usual, and a stale fence (the sweep gave it away) is logged, not fatal.
 */
async function work(w: World, task: Task, log: Log, out: (t: string) => void, hang: boolean, onInterrupt: (cancel: () => void) => void): Promise<void> {
  const fence = task.attempt;
  let frame = 0;
  const draw = () => out(`${CLEAR_LINE}${SIM_FRAMES[frame++ % SIM_FRAMES.length]} ${SIM_SPINNER}`);
  draw();
  if (hang) {
    log({ event: 'hang', task: task.id });
    await new Promise<void>((resolve) => onInterrupt(resolve));
    out(`${CLEAR_LINE}^C interrupted\n`);
    log({ event: 'interrupted', task: task.id });
    draw();
  }
  const ticker = setInterval(draw, 200);
  const heart = setInterval(() => {
    heartbeatTask(w.tasks, w.caller, { id: task.id, fence }).catch((err: Error) => log({ event: 'heartbeat_refused', task: task.id, error: err.message }));
  }, 3_000);
  try {
    await sleep(between(w.taskMs[0], w.taskMs[1]));
    await reportUsage(w, task, log);
    if (w.memory && Math.random() < 0.3) await rememberAndRecall(w, task, log);
    if (Math.random() < w.failRate) {
      log({ event: 'failing', task: task.id, fence });
      await failTask(w.tasks, w.caller, { id: task.id, fence, error: 'simulated failure', retryable: true });
      log({ event: 'failed', task: task.id, fence });
    } else {
      log({ event: 'completing', task: task.id, fence });
      await completeTask(w.tasks, w.caller, { id: task.id, fence, result: `done by ${w.name}` });
      log({ event: 'completed', task: task.id, fence });
    }
  } catch (err) {
    const e = err as { code?: string; message: string };
    log({ event: e.code === 'conflict' ? 'stale' : 'work_failed', task: task.id, fence, error: e.message });
  } finally {
    clearInterval(ticker);
    clearInterval(heart);
    out(`${CLEAR_LINE}done ${task.id}\n`);
  }
}

/** The model calls the task took, priced by the built-in table (Sonnet 4.5). */
async function reportUsage(w: World, task: Task, log: Log): Promise<void> {
  const inputTokens = Math.round(between(800, 2_400));
  const outputTokens = Math.round(between(150, 600));
  try {
    await recordUsage(w.store, w.caller, { model: 'claude-sonnet-4-5', inputTokens, outputTokens, task: task.id, sourceKey: `sim:${task.id}:${task.attempt}` });
    log({ event: 'usage', task: task.id, inputTokens, outputTokens });
  } catch (err) {
    log({ event: 'usage_failed', task: task.id, error: (err as Error).message });
  }
}

async function rememberAndRecall(w: World, task: Task, log: Log): Promise<void> {
  try {
    const r = await remember(w.memory!, w.caller, { text: `${task.title}: finished by ${w.name}; the fix was routine`, kind: 'finding', tags: ['sim'], taskId: task.id });
    const found = await recall(w.memory!, w.caller, { query: task.title, limit: 3 });
    log({ event: 'memory', task: task.id, engram: r.id, recalled: found.length });
  } catch (err) {
    log({ event: 'memory_failed', task: task.id, error: (err as Error).message });
  }
}
