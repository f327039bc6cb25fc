import { describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import { UsageError } from '../../src/core/errors.js';
import { percentile, SIM_REPORT_SCHEMA } from '../../src/core/sim/report.js';
import { ResourceSampler } from '../../src/core/sim/resources.js';
import { agentGapMs, agentNames, cascadeSize, DEFAULT_SCENARIO, DEMO_SCENARIO, parseScenario, parseScenarioText, planSchedule, QUOTA_HOLD_MS, scaledEvents, WIDE_GAP_MS } from '../../src/core/sim/scenario.js';

describe('sim scenarios', () => {
  it('a good file parses, with defaults filled in', () => {
    const s = parseScenarioText('{"name":"small","agents":4,"events":{"killProcess":1}}', 'small.json');
    expect(s).toMatchObject({ name: 'small', agents: 4, tasks: 500, events: { killProcess: 1, killPane: 4 } });
    expect(DEFAULT_SCENARIO.agents).toBe(12);
    const y = parseScenarioText('name: small\nagents: 4\nevents:\n  killProcess: 1\n  crashLoop: { agents: 0 }\n', 'small.yml');
    expect(y).toMatchObject({ name: 'small', agents: 4, events: { killProcess: 1, killPane: 4, crashLoop: { agents: 0, crashes: 3 } } });
    expect(DEMO_SCENARIO).toMatchObject({ agents: 6, squads: ['code', 'ops'], minutes: 3 });
  });

  it('a bad field is a usage error that names it', () => {
    const bad = (text: string) => {
      try {
        parseScenarioText(text, 'bad.json');
      } catch (err) {
        expect(err).toBeInstanceOf(UsageError);
        return (err as Error).message;
      }
      throw new Error('accepted');
    };
    expect(bad('{"agents":"twelve"}')).toMatch(/^bad\.json: agents: /);
    expect(bad('{"events":{"killPanes":3}}')).toMatch(/events\.killPanes/);
    expect(bad('{"taskSeconds":[5,1]}')).toMatch(/taskSeconds/);
    expect(bad('{not json')).toMatch(/bad\.json is not JSON/);
    const badYaml = (text: string) => {
      try {
        parseScenarioText(text, 'bad.yaml');
      } catch (err) {
        expect(err).toBeInstanceOf(UsageError);
        return (err as Error).message;
      }
      throw new Error('accepted');
    };
    expect(badYaml('events:\n  killPanes: 3\n')).toMatch(/^bad\.yaml: events\.killPanes/);
    expect(badYaml('agents: 4\nagents: 5\n')).toMatch(/bad\.yaml is not YAML/);
    expect(badYaml('agents: [1,\n')).toMatch(/bad\.yaml is not YAML/);
  });

  it('the schedule is seeded, spaced per agent, and refuses what does not fit', () => {
    const names = agentNames(12);
    const a = planSchedule(DEFAULT_SCENARIO, names, 5 * 60_000);
    expect(planSchedule(DEFAULT_SCENARIO, names, 5 * 60_000)).toEqual(a);
    expect(planSchedule(DEFAULT_SCENARIO, names, 5 * 60_000, 2)).not.toEqual(a);
    const disruptive = a.filter((e) => !['message', 'burst', 'budget', 'daemon_kill'].includes(e.kind));
    for (const name of names) {
      const ats = disruptive.filter((e) => e.agent === name).map((e) => e.at);
      for (let i = 1; i < ats.length; i++) expect(ats[i]! - ats[i - 1]!).toBeGreaterThanOrEqual(60_000);
    }
    expect(() => planSchedule(parseScenario({ agents: 3 }), agentNames(3), 60_000)).toThrow(/does not fit/);
  });

  it('the default scenario scales to a 2-minute run and still has every failure kind, spaced', () => {
    const s = parseScenario({ ...DEFAULT_SCENARIO, minutes: 2 });
    expect(scaledEvents(s)).toMatchObject({ killProcess: 2, killPane: 2, hang: 1, compact: 1, quota: 1, ask: 1, cascade: 1, daemonKill: 1, redisRestart: 1 });
    // A scenario file does not scale unless it says so.
    expect(scaledEvents(parseScenario({ minutes: 2 })).killProcess).toBe(6);
    const names = agentNames(12);
    const gap = agentGapMs(120_000);
    expect(gap).toBe(26_800);
    for (const seed of [1, 2, 3, 4, 5, 6, 7, 8]) {
      const plan = planSchedule(s, names, 120_000, seed);
      const kinds = new Set(plan.map((e) => e.kind));
      for (const k of ['kill_process', 'kill_pane', 'hang', 'compact', 'quota', 'ask', 'crash_loop', 'daemon_kill', 'cascade', 'redis_restart', 'message', 'burst', 'budget']) expect(kinds, `seed ${seed}: ${k}`).toContain(k);
      const cascade = plan.find((e) => e.kind === 'cascade')!;
      expect(cascade.agents).toHaveLength(cascadeSize(12));
      expect(cascadeSize(12)).toBe(6);
      expect(cascadeSize(4)).toBe(3);
      const disruptive = plan.filter((e) => !['message', 'burst', 'budget'].includes(e.kind));
      for (const wide of disruptive.filter((e) => ['cascade', 'daemon_kill', 'redis_restart'].includes(e.kind)))
        for (const other of disruptive) if (other !== wide) expect(Math.abs(other.at - wide.at), `seed ${seed}: ${other.kind} near ${wide.kind}`).toBeGreaterThanOrEqual(WIDE_GAP_MS);
      // Per agent: the gap between events, and a quota hit's hold before the next.
      const byAgent = new Map<string, { at: number; kind: string }[]>();
      for (const e of disruptive) for (const a of e.agents ?? (e.agent ? [e.agent] : [])) byAgent.set(a, [...(byAgent.get(a) ?? []), e]);
      for (const [, evs] of byAgent) {
        for (let i = 1; i < evs.length; i++) {
          const hold = evs[i - 1]!.kind === 'quota' ? QUOTA_HOLD_MS : 0;
          expect(evs[i]!.at - evs[i - 1]!.at).toBeGreaterThanOrEqual(gap + hold);
        }
      }
    }
  });

  it('the report schema refuses a report missing a row or carrying an unknown one', () => {
    const figure = { value: 0, numerator: 0, denominator: 1 };
    const report = {
      scenario: { name: 'x', agents: 2, tasks: 1, minutes: 1, seed: 1, backend: 'sqlite', redis: false },
      ok: true,
      failures: [],
      settled: true,
      observables: { recovery_success_rate: { ...figure, excluded: 2 }, duplicate_claims: figure, blocked_methods: figure, stale_enqueue_attempts: figure, cost_per_completed_task_usd: { value: null, numerator: 0, denominator: 0 }, unclaimed_routed_tasks: figure },
      messages: { sent: 1, read: 1, lost: 0, deliveredTwice: 0, acksAsked: 0, acked: 0, wakeLinesTyped: 1, heldTotal: 0 },
      tasks: { created: 1, fixtures: 0, byBrain: 0, done: 1, dead: 0, failed: 0, queued: 0, held: 0, strandedOnDeadAgent: 0, staleFenceRefused: 0, leasesExpired: 0, routingRuns: 1, routedAssigned: 0, routedStillQueued: 0, createdDespiteError: 0 },
      budget: { claimsRefused: 0, refusalsLogged: 0 },
      recovery: { killed: 0, recovered: 0, p50Ms: null, p95Ms: null, restarts: 2, firstStarts: 2, escalations: 0, cascadeEscalated: 0, operatorRestarts: 0, pending: 0, kills: [] },
      daemon: { kills: 0, restarts: 0 },
      redis: { restarts: 0, skipped: 0 },
      brain: { cycles: 0, modelCalls: 0, answered: {}, motor: {} },
      injected: {},
      metrics: { tasks_done: 1 },
      load: { loadavg: [0, 0, 0], cpus: 2, samples: 2, load1Max: 1.5, load1Mean: 1, machineBusyPct: 40, machineBusyMaxPct: 70, processes: [{ name: 'daemon', cpuPct: 12.5, rssMaxMiB: 150 }, { name: 'tmux server', cpuPct: null, rssMaxMiB: null }] },
      durationMs: 60_000,
    };
    expect(SIM_REPORT_SCHEMA.safeParse(report).success).toBe(true);
    const { lost: _lost, ...noLost } = report.messages;
    expect(SIM_REPORT_SCHEMA.safeParse({ ...report, messages: noLost }).success).toBe(false);
    expect(SIM_REPORT_SCHEMA.safeParse({ ...report, extra: 1 }).success).toBe(false);
  });

  it.skipIf(!existsSync('/proc/self/stat'))('the resource sampler measures a busy process, follows a restart by name, and says null for what it never saw', () => {
    let pid: number | null = process.pid;
    const sampler = new ResourceSampler(() => ({ self: pid, never: null }), 60_000);
    sampler.start();
    const t = Date.now();
    let x = 0;
    while (Date.now() - t < 300) x += Math.sqrt(x + 1);
    sampler.sample();
    pid = 1; // "restarted" as another process: its CPU before this sample is not counted
    const r = sampler.stop();
    expect(x).toBeGreaterThan(0);
    expect(r.samples).toBe(3);
    const self = r.processes.find((p) => p.name === 'self')!;
    expect(self.cpuPct).toBeGreaterThan(10);
    expect(self.rssMaxMiB).toBeGreaterThan(10);
    expect(r.processes.find((p) => p.name === 'never')).toEqual({ name: 'never', cpuPct: null, rssMaxMiB: null });
    expect(r.machineBusyPct).toBeGreaterThan(0);
    expect(r.load1Max).not.toBeNull();
  });

  it('percentiles are nearest rank', () => {
    expect(percentile([], 50)).toBeNull();
    expect(percentile([1, 2, 3, 4], 50)).toBe(2);
    expect(percentile([1, 2, 3, 4], 95)).toBe(4);
  });
});
