import { describe, expect, it } from 'vitest';
import { UsageError } from '../../src/core/errors.js';
import { percentile } from '../../src/core/sim/report.js';
import { agentNames, DEFAULT_SCENARIO, DEMO_SCENARIO, parseScenario, parseScenarioText, planSchedule } from '../../src/core/sim/scenario.js';

describe('sim scenarios', () => {
  it('a good file parses, with defaults filled in', () => {
    const s = parseScenarioText('{"name":"small","agents":4,"events":{"killProcess":1}}', 'small.json');
    expect(s).toMatchObject({ name: 'small', agents: 4, tasks: 500, events: { killProcess: 1, killPane: 4 } });
    expect(DEFAULT_SCENARIO.agents).toBe(12);
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

  it('percentiles are nearest rank', () => {
    expect(percentile([], 50)).toBeNull();
    expect(percentile([1, 2, 3, 4], 50)).toBe(2);
    expect(percentile([1, 2, 3, 4], 95)).toBe(4);
  });
});
