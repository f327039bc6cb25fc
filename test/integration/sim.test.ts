import { execFileSync } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { describe, expect, it, type TestContext } from 'vitest';
import { SIM_REPORT_SCHEMA, type SimReport } from '../../src/core/sim/report.js';
import { isolatedEnv, type SosResult, spawnSos } from '../helpers/cli.js';
import { services, tempDir } from '../helpers/isolation.js';
import { dropRedisProject } from '../helpers/redis.js';

/**
 * `sos sim` for real: the default scenario, bounded to 2 minutes with a fixed seed, on SQLite and
 * on PostgreSQL + Redis (a redis-server of the run's own, `--redis local`, so the scenario's Redis
 * restart happens). Each run is a real installation: a daemon, simulated agents on a tmux server
 * of the run's own, the scripted model server. The zero rows of the issue (lost messages,
 * duplicate deliveries, duplicate claims, tasks stranded on a dead agent) must be 0, recovery
 * success at least 95 %, exit 0 exactly when the report is ok, and the JSON is the report's schema.
 *
 * Teardown, pass or fail: the sim cleans up after itself; when it did not get to (killed, timed
 * out), the test kills what the sim's progress lines named: the sim by its PID, its tmux server by
 * its socket, its redis-server by its PID, its PostgreSQL schema and Redis keys, its data dir.
 */

const tmuxAvailable = (() => {
  try {
    execFileSync('tmux', ['-V'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

const RUN_TIMEOUT_MS = 6 * 60_000;

interface SimRun extends SosResult {
  dir: string | null;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Runs `sos sim` with its cleanup registered on the test, from what its progress lines say. */
function runSim(ctx: TestContext, args: string[], env: NodeJS.ProcessEnv, pgUrl?: string): Promise<SimRun> {
  const child = spawnSos(['sim', ...args], env);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  child.stdin!.end();
  const closed = new Promise<number>((resolve) => child.on('close', (code) => resolve(code ?? -1)));
  const named = (re: RegExp) => re.exec(stderr)?.[1] ?? null;
  ctx.onTestFinished(async () => {
    if (child.exitCode === null && child.signalCode === null && child.pid) {
      child.kill('SIGKILL');
      await closed;
    }
    const dir = named(/data in (\S+)/);
    if (dir) {
      try {
        execFileSync('tmux', ['-S', join(dir, 'tmux.sock'), 'kill-server'], { stdio: 'ignore' });
      } catch {
        // no server left on that socket: the sim stopped it
      }
    }
    const redisPid = Number(named(/redis-server pid (\d+)/) ?? 0);
    if (redisPid > 1 && alive(redisPid)) process.kill(redisPid, 'SIGKILL');
    const schema = named(/schema (sos_sim_[a-z0-9]+)/);
    if (schema && pgUrl) {
      const client = new pg.Client({ connectionString: pgUrl });
      await client.connect();
      try {
        await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      } finally {
        await client.end();
      }
    }
    const project = named(/project (sim-[a-z0-9]+)/);
    if (project && services.redis !== null) await dropRedisProject(services.redisUrl, project).catch(() => undefined);
    if (dir && existsSync(dir)) rmSync(dir, { recursive: true, force: true });
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), RUN_TIMEOUT_MS);
  return closed.then((code) => {
    clearTimeout(timer);
    return {
      code,
      stdout,
      stderr,
      dir: named(/data in (\S+)/),
      json<T>() {
        try {
          return JSON.parse(stdout) as T;
        } catch {
          throw new Error(`sos sim did not print JSON.\nstdout: ${stdout.slice(0, 2_000)}\nstderr: ${stderr.slice(-4_000)}`);
        }
      },
    };
  });
}

/** The assertions every bounded default run must pass, whatever the backend. */
function expectSound(r: SimRun, report: SimReport): void {
  const parsed = SIM_REPORT_SCHEMA.safeParse(report);
  expect(parsed.success, parsed.success ? '' : JSON.stringify(parsed.error.issues.slice(0, 5))).toBe(true);
  const context = `failures: ${JSON.stringify(report.failures, null, 1)}\nstderr: ${r.stderr.slice(-3_000)}`;
  // Exit status: 0 exactly when the report is ok.
  expect(r.code, context).toBe(report.ok ? 0 : 1);
  expect(report.failures, context).toEqual([]);
  expect(report.ok).toBe(true);
  expect(report.settled).toBe(true);
  // The zero rows.
  expect(report.messages.lost).toBe(0);
  expect(report.messages.deliveredTwice).toBe(0);
  expect(report.observables.duplicate_claims.value).toBe(0);
  expect(report.tasks.strandedOnDeadAgent).toBe(0);
  // Something happened: messages, claims, recoveries, every failure kind of the scenario.
  expect(report.messages.sent).toBeGreaterThan(0);
  expect(report.messages.read).toBe(report.messages.sent);
  expect(report.observables.duplicate_claims.denominator).toBeGreaterThan(0);
  expect(report.tasks.done).toBeGreaterThan(0);
  for (const kind of ['kill -9 process', 'kill-pane', 'cascade', 'hang', 'compact', 'quota', 'ask', 'daemon_kill', 'daemon_restart', 'budget', 'message'])
    expect(report.injected[kind] ?? 0, `injected ${kind}`).toBeGreaterThan(0);
  expect(Object.keys(report.injected).some((k) => k.startsWith('crash loop'))).toBe(true);
  // Recovery: at least 95 % of the settled recoveries, the first starts left out.
  const rate = report.observables.recovery_success_rate;
  expect(rate.denominator).toBeGreaterThan(0);
  expect(rate.value).toBeGreaterThanOrEqual(0.95);
  expect(rate.excluded).toBe(report.scenario.agents);
  expect(report.recovery.firstStarts).toBe(report.scenario.agents);
  expect(report.recovery.killed).toBeGreaterThan(0);
  expect(report.recovery.recovered).toBe(report.recovery.killed);
  expect(report.recovery.cascadeEscalated).toBe(1);
  expect(report.recovery.operatorRestarts).toBeGreaterThan(0);
  // The brain's stale cleanup and invented method were refused; the block budget refused claims.
  expect(report.observables.stale_enqueue_attempts.value).toBeGreaterThan(0);
  expect(report.observables.blocked_methods.value).toBeGreaterThan(0);
  expect(report.budget.claimsRefused).toBe(report.budget.refusalsLogged);
  // Routing ran, and the stale fixtures (a capability nobody has) were unroutable in every run.
  expect(report.tasks.routingRuns).toBeGreaterThan(0);
  expect(report.observables.unclaimed_routed_tasks.value).toBeGreaterThanOrEqual(report.tasks.routingRuns * 1);
  expect(report.observables.unclaimed_routed_tasks.denominator).toBeGreaterThanOrEqual(report.observables.unclaimed_routed_tasks.value!);
  // The data dir is gone (no --keep).
  expect(r.dir).not.toBeNull();
  expect(existsSync(r.dir!)).toBe(false);
}

describe.skipIf(!tmuxAvailable)('sos sim', () => {
  it('a scenario with a bad field (JSON or YAML) is a usage error naming it (exit 2), before anything starts', async (ctx) => {
    const env = isolatedEnv(tempDir(ctx));
    const file = join(import.meta.dirname, '..', 'fixtures', 'sim', 'bad-field.json');
    const r = await runSim(ctx, ['--scenario', file, '--json'], env);
    expect(r.code).toBe(2);
    const err = JSON.parse(r.stdout) as { error: { code: string; message: string } };
    expect(err.error.code).toBe('usage');
    expect(err.error.message).toMatch(/bad-field\.json: events\.killPanes/);
    expect(r.stderr).not.toMatch(/data in/);
    const human = await runSim(ctx, ['--scenario', file], env);
    expect(human.code).toBe(2);
    expect(human.stderr).toMatch(/events\.killPanes/);
    // The same in YAML, with the field's name as the user wrote it.
    const yaml = await runSim(ctx, ['--scenario', join(import.meta.dirname, '..', 'fixtures', 'sim', 'bad-field.yaml'), '--json'], env);
    expect(yaml.code).toBe(2);
    expect(yaml.stdout).toMatch(/bad-field\.yaml: events\.killPanes/);
    // A schedule that cannot fit is the same kind of error, naming the field to lower.
    const tooMany = await runSim(ctx, ['--agents', '3', '--minutes', '1', '--json'], env);
    expect(tooMany.code).toBe(2);
    expect(tooMany.stdout).toMatch(/does not fit/);
    expect(tooMany.stderr).not.toMatch(/data in/);
  });

  it('the default scenario, 2 minutes, seed 1, on SQLite: nothing lost, doubled or stranded', { timeout: RUN_TIMEOUT_MS + 30_000 }, async (ctx) => {
    const env = isolatedEnv(tempDir(ctx));
    const r = await runSim(ctx, ['--minutes', '2', '--seed', '1', '--json'], env);
    const report = r.json<SimReport>();
    expect(report.scenario).toMatchObject({ name: 'default', backend: 'sqlite', redis: false, agents: 12, minutes: 2, seed: 1 });
    expectSound(r, report);
    expect(report.redis).toEqual({ restarts: 0, skipped: 1 });
  });

  it.skipIf(services.postgres === null || services.redis === null)(
    'the default scenario, 2 minutes, seed 1, on PostgreSQL + Redis (restarted mid-run): nothing lost, doubled or stranded',
    { timeout: RUN_TIMEOUT_MS + 30_000 },
    async (ctx) => {
      const env = isolatedEnv(tempDir(ctx));
      const r = await runSim(ctx, ['--minutes', '2', '--seed', '1', '--backend', 'postgres', '--db', services.postgresUrl, '--redis', 'local', '--json'], env, services.postgresUrl);
      const report = r.json<SimReport>();
      expect(report.scenario).toMatchObject({ name: 'default', backend: 'postgres', redis: true, agents: 12, minutes: 2, seed: 1 });
      expectSound(r, report);
      expect(report.redis).toEqual({ restarts: 1, skipped: 0 });
      expect(report.injected.redis_restart).toBe(1);
      // The schema is dropped.
      const schema = /schema (sos_sim_[a-z0-9]+)/.exec(r.stderr)![1]!;
      const client = new pg.Client({ connectionString: services.postgresUrl });
      await client.connect();
      try {
        const found = await client.query('SELECT 1 FROM information_schema.schemata WHERE schema_name = $1', [schema]);
        expect(found.rowCount).toBe(0);
      } finally {
        await client.end();
      }
    },
  );
});
