import { describe, expect, it } from 'vitest';
import { UsageError } from '../../src/core/errors.js';
import { parseUntil } from '../../src/core/lifecycle/service.js';
import { parseDuration, parseMoment } from '../../src/core/time.js';

const NOW = Date.parse('2026-11-21T12:00:00Z');

describe('durations and moments (--lease, --since, --until)', () => {
  it('reads durations with a unit, seconds without one, and refuses the rest', () => {
    expect(parseDuration('500ms')).toBe(500);
    expect(parseDuration('30')).toBe(30_000);
    expect(parseDuration('1.5m')).toBe(90_000);
    expect(parseDuration(' 2h ')).toBe(7_200_000);
    expect(parseDuration('1d')).toBe(86_400_000);
    for (const bad of ['', '0', '-1s', '5 minutes', '1w', 'h']) expect(() => parseDuration(bad, '--lease'), bad).toThrow(UsageError);
    expect(() => parseDuration('1w', '--lease')).toThrow(/invalid --lease "1w"/);
  });

  it('reads a moment as a duration ahead or ago, or as a date-time', () => {
    expect(parseMoment('2h', '--until', NOW, 'ahead')).toBe(NOW + 7_200_000);
    expect(parseMoment('7d', '--since', NOW, 'ago')).toBe(NOW - 7 * 86_400_000);
    expect(parseMoment('2026-11-20', '--since', NOW, 'ago')).toBe(Date.parse('2026-11-20'));
    expect(parseMoment('2026-11-21T17:00:00Z', '--until', NOW, 'ahead')).toBe(Date.parse('2026-11-21T17:00:00Z'));
    expect(() => parseMoment('next tuesday', '--since', NOW, 'ago')).toThrow(/invalid --since "next tuesday": use a duration/);
  });

  it('--until refuses a moment in the past', () => {
    expect(parseUntil('30m', NOW)).toBe(NOW + 1_800_000);
    expect(() => parseUntil('2026-11-21T11:00:00Z', NOW)).toThrow(/in the past/);
  });
});
