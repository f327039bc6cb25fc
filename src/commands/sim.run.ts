import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { UsageError } from '../core/errors.js';
import { int, str } from './args.js';
import type { Invocation, Output } from './define.js';

/** `--minutes 1.5`: a positive number (the scenario's schema checks the range). */
function minutesOf(v: unknown): number | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'string' || !/^\d+(\.\d+)?$/.test(v)) throw new UsageError('--minutes must be a positive number');
  return Number(v);
}

/** The postgres server of `--backend postgres`: --db or SOS_DB when it is one, else the local default. */
function pgUrlOf(inv: Invocation): string {
  const given = inv.globals.db ?? inv.env.SOS_DB;
  return given !== undefined && /^postgres(ql)?:\/\//.test(given) ? given : 'postgres://postgres@127.0.0.1:5432/postgres';
}

const progressTo = (inv: Invocation) => (inv.globals.quiet ? undefined : (line: string) => void process.stderr.write(`${line}\n`));

export async function sim(inv: Invocation): Promise<Output> {
  const { DEFAULT_SCENARIO, parseScenario, parseScenarioText } = await import('../core/sim/scenario.js');
  const file = str(inv.options.scenario);
  const base = file === undefined ? DEFAULT_SCENARIO : parseScenarioText(await readScenario(resolve(inv.cwd, file)), file);
  const overrides = {
    ...(int(inv.options.agents, '--agents') !== undefined ? { agents: int(inv.options.agents, '--agents') } : {}),
    ...(int(inv.options.tasks, '--tasks') !== undefined ? { tasks: int(inv.options.tasks, '--tasks') } : {}),
    ...(minutesOf(inv.options.minutes) !== undefined ? { minutes: minutesOf(inv.options.minutes) } : {}),
    ...(int(inv.options.seed, '--seed') !== undefined ? { seed: int(inv.options.seed, '--seed') } : {}),
  };
  const scenario = parseScenario({ ...base, ...overrides }, file ?? 'the options');
  const backend = (str(inv.options.backend) ?? 'sqlite') as 'sqlite' | 'postgres';
  const { builtAgentScript, runSimulation } = await import('../core/sim/run.js');
  const { reportText } = await import('../core/sim/report.js');
  const sosBin = process.argv[1]!;
  const progress = progressTo(inv);
  const redisUrl = str(inv.options.redis);
  const report = await runSimulation({
    scenario,
    backend,
    ...(backend === 'postgres' ? { pgUrl: pgUrlOf(inv) } : {}),
    ...(redisUrl !== undefined ? { redisUrl } : {}),
    keep: inv.options.keep === true,
    sosBin,
    agentScript: builtAgentScript(sosBin),
    env: inv.env,
    ...(progress ? { progress } : {}),
  });
  return { data: report, human: reportText(report), quiet: report.ok ? 'ok' : 'failed', exitCode: report.ok ? 0 : 1 };
}

async function readScenario(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    throw new UsageError(`cannot read --scenario ${path}: ${(err as Error).message}`);
  }
}

/**
 * `sos demo`: the demo scenario on SQLite in a temporary data dir, with `sos top` opened on it
 * while it runs (quitting top ends the demo early: the run settles and reports). No API key, no
 * real agent: the agents are simulated and the brain's model is the local scripted server.
 */
export async function demo(inv: Invocation): Promise<Output> {
  const { DEMO_SCENARIO, parseScenario } = await import('../core/sim/scenario.js');
  const minutes = minutesOf(inv.options.minutes);
  const scenario = parseScenario({ ...DEMO_SCENARIO, ...(minutes !== undefined ? { minutes } : {}) }, 'the options');
  const withTop = inv.options.top !== false;
  const out = inv.stdout as NodeJS.WriteStream;
  if (withTop && !(out.isTTY && (inv.stdin as NodeJS.ReadStream).isTTY)) {
    throw new UsageError('sos demo opens sos top, which needs a terminal', { hint: 'without a terminal: sos demo --no-top' });
  }
  const { builtAgentScript, runSimulation } = await import('../core/sim/run.js');
  const { reportText } = await import('../core/sim/report.js');
  const sosBin = process.argv[1]!;
  const stop = new AbortController();
  const progress = withTop ? undefined : progressTo(inv);
  const report = await runSimulation({
    scenario,
    backend: 'sqlite',
    keep: false,
    sosBin,
    agentScript: builtAgentScript(sosBin),
    env: inv.env,
    drainMs: 45_000,
    signal: stop.signal,
    ...(progress ? { progress } : {}),
    ...(withTop
      ? {
          whileRunning: (world) =>
            new Promise<void>((done) => {
              const top = spawn(process.execPath, [sosBin, 'top'], { env: world.env, stdio: 'inherit' });
              top.on('close', () => {
                stop.abort();
                done();
              });
            }),
        }
      : {}),
  });
  return { data: report, human: reportText(report), quiet: report.ok ? 'ok' : 'failed', exitCode: report.ok ? 0 : 1 };
}
