import { describe, expect, it } from 'vitest';
import { OperationFailed } from '../../src/core/errors.js';
import { escapeHelp, escapeLabelValue, formatValue, renderExposition } from '../../src/core/http/metrics.js';
import { type MetricFamily, type ProjectMetrics, familyName, flatMetrics, metricFamilies } from '../../src/core/metrics.js';
import { MOTOR_OUTCOMES } from '../../src/core/brain/motor.js';
import { TASK_STATUSES } from '../../src/core/tasks/types.js';

/**
 * The exposition renderer (text format 0.0.4) and the families built from a project's figures,
 * as pure functions. promtool checks the same output against real data in
 * test/integration/http.metrics.test.ts.
 */

describe('renderExposition', () => {
  it('prints HELP and TYPE once per family, its samples right after, labels in the given order', () => {
    const families: MetricFamily[] = [
      { name: 'sos_things_total', type: 'counter', help: 'Things done.', samples: [{ labels: { project: 'p', kind: 'a' }, value: 3 }, { labels: { project: 'p', kind: 'b' }, value: 0 }] },
      { name: 'sos_level', type: 'gauge', help: 'A level.', samples: [{ labels: {}, value: 0.25 }] },
    ];
    expect(renderExposition(families)).toBe(
      [
        '# HELP sos_things_total Things done.',
        '# TYPE sos_things_total counter',
        'sos_things_total{project="p",kind="a"} 3',
        'sos_things_total{project="p",kind="b"} 0',
        '# HELP sos_level A level.',
        '# TYPE sos_level gauge',
        'sos_level 0.25',
        '',
      ].join('\n'),
    );
  });

  it('escapes backslash, double quote and line feed in label values, and backslash and line feed in HELP', () => {
    expect(escapeLabelValue('a\\b"c\nd')).toBe('a\\\\b\\"c\\nd');
    expect(escapeHelp('say "hi"\\\nbye')).toBe('say "hi"\\\\\\nbye');
    const text = renderExposition([{ name: 'sos_x', type: 'gauge', help: 'two\nlines "quoted" \\ here', samples: [{ labels: { provider: 'we"ird\\na\nme' }, value: 1 }] }]);
    expect(text).toBe('# HELP sos_x two\\nlines "quoted" \\\\ here\n# TYPE sos_x gauge\nsos_x{provider="we\\"ird\\\\na\\nme"} 1\n');
    // One line per HELP, TYPE and sample: nothing a value holds can start a line of its own.
    expect(text.split('\n')).toHaveLength(4);
  });

  it('leaves null samples out, and a family with no sample left out whole', () => {
    const text = renderExposition([
      { name: 'sos_rate', type: 'gauge', help: 'A rate.', samples: [{ labels: { project: 'p' }, value: null }] },
      { name: 'sos_none', type: 'gauge', help: 'Nothing yet.', samples: [] },
      { name: 'sos_mixed', type: 'gauge', help: 'Some.', samples: [{ labels: { k: 'a' }, value: null }, { labels: { k: 'b' }, value: 2 }] },
    ]);
    expect(text).toBe('# HELP sos_mixed Some.\n# TYPE sos_mixed gauge\nsos_mixed{k="b"} 2\n');
    expect(text).not.toMatch(/NaN|null|sos_rate|sos_none/);
    expect(renderExposition([])).toBe('');
  });

  it('spells values as Go floats: integers bare, NaN and the infinities by name', () => {
    expect([0, 42, -3, 0.1, 1e21, 1.5e-7, Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY].map(formatValue)).toEqual([
      '0',
      '42',
      '-3',
      '0.1',
      '1e+21',
      '1.5e-7',
      'NaN',
      '+Inf',
      '-Inf',
    ]);
  });

  it('refuses what would make the whole scrape invalid: bad names, reserved labels, a family twice, a label set twice', () => {
    const g = (name: string, samples: MetricFamily['samples'] = [{ labels: {}, value: 1 }]): MetricFamily => ({ name, type: 'gauge', help: 'h', samples });
    expect(() => renderExposition([g('sos-bad')])).toThrow(OperationFailed);
    expect(() => renderExposition([g('9lives')])).toThrow(/not valid/);
    expect(() => renderExposition([g('sos_x', [{ labels: { 'bad-label': 'v' }, value: 1 }])])).toThrow(/label name "bad-label"/);
    expect(() => renderExposition([g('sos_x', [{ labels: { __name__: 'v' }, value: 1 }])])).toThrow(/label name "__name__"/);
    expect(() => renderExposition([g('sos_x'), g('sos_x')])).toThrow(/given twice/);
    expect(() => renderExposition([g('sos_x', [{ labels: { a: '1' }, value: 1 }, { labels: { a: '1' }, value: 2 }])])).toThrow(/two samples/);
  });
});

/** A project's figures, as `projectMetrics` would return them, with a breaker and two budgets. */
function figures(): ProjectMetrics {
  const m: ProjectMetrics = {
    project: 'alpha',
    fixed: {
      messages_delivered: 7,
      messages_held_now: 2,
      messages_held_total: 5,
      messages_failed: 1,
      messages_expired: 0,
      messages_not_typed: 0,
      bus_rows_skipped: 0,
      ack_overdue: 1,
      restarts: 2,
      recoveries_succeeded: 3,
      recoveries_failed: 1,
      recoveries_pending: 1,
      leases_renewed: 9,
      leases_expired: 1,
      duplicate_claims_refused: 4,
      stale_fence_refused: 1,
      task_events_unpublished: 0,
      budget_claims_refused: 2,
      recovery_success_rate: null,
      duplicate_claims: 0,
      blocked_methods: 1,
      stale_enqueue_attempts: 1,
      cost_per_completed_task_usd: null,
      priced_spend_usd: 0.012345,
      tasks_done: 0,
      unclaimed_routed_tasks: 2,
      brain_cycles: 3,
      brain_dry_runs: 1,
      brain_decisions_invalid: 0,
      brain_breakers_open: 1,
      approvals_pending: 1,
    },
    motor: Object.fromEntries(MOTOR_OUTCOMES.map((o, i) => [o, i])) as ProjectMetrics['motor'],
    breakers: [{ name: 'openai-compat', state: 2, opens: 1, failures: 3, timeouts: 1, rejections: 4 }],
    agentsByState: { warm: 0, busy: 1, idle: 2, waiting: 0, compacted: 0, stuck: 0, quota: 0, parked: 1, dead: 0, unknown: 0, unprobed: 1 },
    tasksByStatus: Object.fromEntries(TASK_STATUSES.map((s) => [s, s === 'queued' ? 3 : 0])) as ProjectMetrics['tasksByStatus'],
    budgets: [
      { project: 'alpha', scope: 'project', unit: 'usd', limit: 5_000_000, spent: 6_250_000, period: 'day', action: 'block', warnAt: 80, createdAt: 0, updatedAt: 0, remaining: 0, periodStart: 0, periodEnd: 86_400_000, state: 'exhausted', warnedAt: 1, exhaustedAt: 2, liftedAt: null, pausedAt: null },
      { project: 'alpha', scope: 'agent:kasra', unit: 'tokens', limit: 500_000, spent: 1_234, period: 'total', action: 'warn', warnAt: 80, createdAt: 0, updatedAt: 0, remaining: 498_766, periodStart: 0, periodEnd: null, state: 'ok', warnedAt: null, exhaustedAt: null, liftedAt: null, pausedAt: null },
    ],
  };
  return m;
}

describe('metricFamilies', () => {
  it('names counters sos_<key>_total and gauges sos_<key>', () => {
    expect(familyName('messages_delivered', 'counter')).toBe('sos_messages_delivered_total');
    expect(familyName('messages_held_total', 'counter')).toBe('sos_messages_held_total');
    expect(familyName('messages_held_now', 'gauge')).toBe('sos_messages_held_now');
    for (const f of metricFamilies(figures())) {
      expect(f.name.endsWith('_total'), f.name).toBe(f.type === 'counter');
      expect(f.help.length, f.name).toBeGreaterThan(0);
    }
  });

  it('labels every sample with the project, and shows every key of sos metrics exactly once with its value', () => {
    const m = figures();
    const families = metricFamilies(m);
    const flat = flatMetrics(m);
    const byKey = new Map<string, number | null>();
    for (const f of families) {
      for (const s of f.samples) {
        expect(s.labels.project, f.name).toBe('alpha');
        if (s.key === undefined) continue;
        expect(byKey.has(s.key), `${s.key} shown twice`).toBe(false);
        byKey.set(s.key, s.value);
      }
    }
    expect(Object.fromEntries(byKey)).toEqual(flat);
  });

  it('renders the labelled families and the gauges /metrics adds; null figures absent', () => {
    const text = renderExposition(metricFamilies(figures()));
    expect(text).toContain('sos_motor_decisions_total{project="alpha",outcome="skipped_stale"} 4\n');
    expect(text).toContain('sos_brain_breaker_state{project="alpha",provider="openai-compat"} 2\n');
    expect(text).toContain('sos_brain_breaker_rejections_total{project="alpha",provider="openai-compat"} 4\n');
    expect(text).toContain('sos_agents{project="alpha",state="unprobed"} 1\n');
    expect(text).toContain('sos_agents{project="alpha",state="warm"} 0\n');
    expect(text).toContain('sos_tasks{project="alpha",status="queued"} 3\n');
    expect(text).toContain('sos_budget_spent_usd{project="alpha",scope="project",period="day"} 6.25\n');
    expect(text).toContain('sos_budget_limit_usd{project="alpha",scope="project",period="day"} 5\n');
    expect(text).toContain('sos_budget_spent_tokens{project="alpha",scope="agent:kasra",period="total"} 1234\n');
    expect(text).toContain('sos_priced_spend_usd{project="alpha"} 0.012345\n');
    expect(text).not.toMatch(/recovery_success_rate|cost_per_completed_task_usd|NaN/);
  });

  it('keeps sos metrics in its printed order: motor outcomes before brain_cycles, each breaker after brain_breakers_open', () => {
    const keys = Object.keys(flatMetrics(figures()));
    const at = (k: string) => keys.indexOf(k);
    expect(keys.slice(0, 3)).toEqual(['messages_delivered', 'messages_held_now', 'messages_held_total']);
    expect(at('motor_executed')).toBe(at('unclaimed_routed_tasks') + 1);
    expect(at('brain_cycles')).toBe(at('motor_failed') + 1);
    expect(keys.slice(at('brain_breakers_open'), at('brain_breakers_open') + 6)).toEqual([
      'brain_breakers_open',
      'brain_breaker_openai_compat_state',
      'brain_breaker_openai_compat_opens',
      'brain_breaker_openai_compat_failures',
      'brain_breaker_openai_compat_timeouts',
      'brain_breaker_openai_compat_rejections',
    ]);
    expect(keys.at(-1)).toBe('approvals_pending');
  });
});
