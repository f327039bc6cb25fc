import { describe, expect, it } from 'vitest';
import { globPattern } from '../../src/core/economy/import.js';
import { currentWindow, DEFAULT_PLAN_LIMITS, epochMs, FIVE_HOURS, parsePlanLimits } from '../../src/core/economy/quota.js';
import { UsageError } from '../../src/core/errors.js';

const H = 3_600_000;
const call = (at: number) => ({ at, tokens: 1, cacheRead: 0, cost: 0 });

describe('quota windows', () => {
  it('opens a 5-hour window at the first call after the previous one ended', () => {
    const calls = [0, 1 * H, 4.9 * H, 5 * H, 6 * H, 20 * H].map(call);
    expect(currentWindow(calls, 0.5 * H)).toEqual({ start: 0, end: FIVE_HOURS });
    expect(currentWindow(calls, 4.95 * H)).toEqual({ start: 0, end: FIVE_HOURS });
    // The call at exactly 5 h is after the first window: it opens the second.
    expect(currentWindow(calls, 7 * H)).toEqual({ start: 5 * H, end: 10 * H });
    // Between windows (no call since the last one ended) there is none.
    expect(currentWindow(calls, 12 * H)).toBeNull();
    expect(currentWindow(calls, 21 * H)).toEqual({ start: 20 * H, end: 25 * H });
    expect(currentWindow([], 1)).toBeNull();
  });

  it('reads plan limits as JSON over the documented estimates, and refuses bad ones', () => {
    expect(parsePlanLimits(undefined)).toEqual(DEFAULT_PLAN_LIMITS);
    expect(parsePlanLimits('{"max":{"five_hour_tokens":1000,"weekly_tokens":9000},"pro":{"five_hour_tokens":null}}')).toEqual({
      ...DEFAULT_PLAN_LIMITS,
      max: { fiveHourTokens: 1000, weeklyTokens: 9000 },
      pro: { fiveHourTokens: null, weeklyTokens: null },
    });
    for (const bad of ['{', '{"gold":{}}', '{"max":{"five_hour_tokens":-1}}', '{"max":{"tokens":5}}', '[]']) expect(() => parsePlanLimits(bad), bad).toThrow(UsageError);
  });

  it('takes reset times in seconds or milliseconds', () => {
    expect(epochMs(1_893_456_000)).toBe(1_893_456_000_000);
    expect(epochMs(1_893_456_000_000)).toBe(1_893_456_000_000);
    expect(epochMs(null)).toBeNull();
    expect(epochMs(-5)).toBeNull();
  });
});

describe('--transcripts globs', () => {
  it('match whole paths: ** across directories, * and ? within one, everything else literally', () => {
    const cases: [string, string, boolean][] = [
      ['/h/.claude/projects/**/*.jsonl', '/h/.claude/projects/-srv-app/s1.jsonl', true],
      ['/h/.claude/projects/**/*.jsonl', '/h/.claude/projects/-srv-app/s1/subagents/agent-1.jsonl', true],
      ['/h/.claude/projects/**/*.jsonl', '/h/.claude/projects/s.jsonl', true],
      ['/h/p/*.jsonl', '/h/p/sub/s.jsonl', false],
      ['/h/p/*.jsonl', '/h/p/s.jsonl.bak', false],
      ['/h/p/s?.jsonl', '/h/p/s1.jsonl', true],
      ['/h/p.x/(a)+[b].jsonl', '/h/p.x/(a)+[b].jsonl', true],
      ['/h/p.x/a.jsonl', '/h/pXx/a.jsonl', false],
    ];
    for (const [glob, path, match] of cases) expect(globPattern(glob).test(path), `${glob} ~ ${path}`).toBe(match);
  });
});
