import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, type TestContext } from 'vitest';
import { type LifecycleContext, lifecycleContext } from '../../src/core/lifecycle/context.js';
import { DEFAULT_LIMITS, type LifecycleLimits } from '../../src/core/lifecycle/policy.js';
import { type ProbeResult, superviseOnce } from '../../src/core/lifecycle/probe.js';
import type { LifecycleState } from '../../src/core/lifecycle/classifier.js';
import { LocalEmbedder } from '../../src/core/memory/embedder.js';
import { memoryOn } from '../../src/core/memory/open.js';
import type { MemoryContext } from '../../src/core/memory/service.js';
import type { SessionDriver } from '../../src/core/sessions/port.js';
import type { Agent } from '../../src/core/store/types.js';
import { tempDir } from './isolation.js';
import { TASK_ADAPTERS, type TaskWorld } from './tasks.js';

/**
 * A lifecycle world: a Store and SQL bus (SQLite), the fake agent (test/fixtures/fake-agent.mjs)
 * run in real tmux (a tmux server of the test's own, on a socket in its temp dir) or a real pty
 * (a pty host of the test's own), and a LifecycleContext with short thresholds.
 */

export const FAKE_AGENT = fileURLToPath(new URL('../fixtures/fake-agent.mjs', import.meta.url));
export const FAKE_PATTERNS = JSON.parse(readFileSync(fileURLToPath(new URL('../fixtures/fake-agent.patterns.json', import.meta.url)), 'utf8')) as Record<string, unknown>;

export type DriverName = 'tmux' | 'pty';

/** What the fake agent logged: one JSON object per line it received (`line`) or event (`event`). */
export interface FakeAgentRecord {
  at: number;
  line?: string;
  event?: string;
}

/** Reads the fake agent's log (test/fixtures/fake-agent.mjs --log); empty before it wrote any. */
export function readFakeAgentLog(path: string): FakeAgentRecord[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return [];
  }
  return text
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as FakeAgentRecord);
}

export interface LifecycleWorld extends TaskWorld {
  life: LifecycleContext;
  dir: string;
  /** Registers an agent running the fake agent (not started yet); `command` replaces the fake. */
  addAgent(
    name: string,
    options?: { role?: 'coordinator' | 'worker'; policy?: 'warm' | 'cold'; command?: string; wake?: 'text' | 'notify' | 'off' },
  ): Promise<Agent>;
  /** Starts the agent's session with its start command and waits for its prompt. */
  start(name: string): Promise<SessionDriver>;
  driver(name: string): Promise<SessionDriver>;
  /** Lines (and events) the fake agent received, from its log. */
  received(name: string): { line?: string; event?: string }[];
  probe(name?: string, act?: boolean): Promise<ProbeResult[]>;
  /** Probes until the agent reads `state` (or fails after `timeoutMs`). */
  until(name: string, state: LifecycleState, timeoutMs?: number): Promise<ProbeResult>;
}

export const tmuxAvailable = (() => {
  try {
    execFileSync('tmux', ['-V'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

export async function lifecycleWorld(
  ctx: TestContext,
  driver: DriverName,
  options: { limits?: Partial<LifecycleLimits>; stuckAfterMs?: number; memory?: boolean } = {},
): Promise<LifecycleWorld> {
  const sqlite = TASK_ADAPTERS.find((a) => a.name === 'sqlite')!;
  const world = await sqlite.open(ctx);
  const dir = tempDir(ctx);
  const socket = join(dir, 'tmux.sock');
  const runDir = join(dir, 'run');
  let memory: MemoryContext | null = null;
  if (options.memory) {
    const adapter = await memoryOn(world.store);
    ctx.onTestFinished(() => adapter.close());
    memory = { store: world.store, memory: adapter, embedder: new LocalEmbedder(), maxEngramBytes: 32_768, bus: world.ctx.bus };
  }
  const life = lifecycleContext({
    store: world.store,
    bus: world.ctx.bus,
    memory,
    maxTextBytes: 65_536,
    runDir,
    defaultWorkdir: dir,
    sessionEnv: {},
    limits: { ...DEFAULT_LIMITS, cooldownMs: 0, ...options.limits },
    stuckAfterMs: options.stuckAfterMs ?? 30 * 60_000,
    recoveryTimeoutMs: 30_000,
    readyTimeoutMs: 8_000,
  });
  const names: string[] = [];
  ctx.onTestFinished(async () => {
    if (driver === 'tmux') {
      try {
        execFileSync('tmux', ['-S', socket, 'kill-server'], { stdio: 'ignore' });
      } catch {
        // no server was started, or it is gone already
      }
      return;
    }
    for (const name of names) {
      const agent = await world.store.agents.get(world.project, name);
      if (agent) await (await life.openDriver(agent)).stop();
    }
  });
  const logOf = (name: string) => join(dir, `${name}.log`);
  const getAgent = async (name: string) => (await world.store.agents.get(world.project, name))!;

  const w: LifecycleWorld = {
    ...world,
    life,
    dir,
    async addAgent(name, o = {}) {
      names.push(name);
      const command = o.command ?? `node ${FAKE_AGENT} --log ${logOf(name)}`;
      return world.store.agents.add({
        project: world.project,
        name,
        kind: 'custom',
        role: o.role ?? 'worker',
        capabilities: [],
        session: driver === 'tmux' ? `tmux:${name}` : `pty:${command}`,
        startCmd: driver === 'tmux' ? command : null,
        workdir: dir,
        policy: o.policy ?? 'warm',
        tmuxSocket: driver === 'tmux' ? socket : null,
        patterns: FAKE_PATTERNS,
        // The fake agent reads a typed line as a prompt, as the real CLIs do (kind custom defaults to off).
        wake: o.wake ?? 'text',
      });
    },
    async start(name) {
      const agent = await getAgent(name);
      const d = await life.openDriver(agent);
      await d.start({ command: agent.startCmd ?? agent.session!.slice('pty:'.length), workdir: dir, env: {} });
      return d;
    },
    driver: async (name) => life.openDriver(await getAgent(name)),
    received: (name) => readFakeAgentLog(logOf(name)),
    probe: (name, act = false) => superviseOnce(life, world.as(null), { act, ...(name ? { agents: [name] } : {}) }),
    async until(name, state, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      let last: ProbeResult | undefined;
      while (Date.now() < deadline) {
        [last] = await w.probe(name);
        if (last?.state === state) return last;
        await new Promise((r) => setTimeout(r, 150));
      }
      expect.fail(`${name} never read ${state}; last: ${JSON.stringify(last, null, 1)}`);
    },
  };
  return w;
}
