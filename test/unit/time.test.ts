import { describe, expect, it } from 'vitest';
import { UsageError } from '../../src/core/errors.js';
import { parseUntil } from '../../src/core/lifecycle/service.js';
import { checkDuration, isMoment, MAX_DURATION_MS, MAX_MOMENT_MS, MAX_WAIT_MS, parseDuration, parseMoment } from '../../src/core/time.js';

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

describe('bounds: every duration and moment has a documented maximum', () => {
  it('refuses durations past their maximum, at the maximum accepted', () => {
    expect(parseDuration('366d', '--expires')).toBe(MAX_DURATION_MS);
    expect(() => parseDuration('367d', '--expires')).toThrow(/invalid --expires "367d": at most 366d/);
    expect(() => parseDuration('99999999999999d', '--expires')).toThrow(/at most 366d/);
    expect(() => parseDuration('1e400', '--expires')).toThrow(UsageError);
    expect(parseDuration('24h', '--wait-ack', MAX_WAIT_MS)).toBe(MAX_WAIT_MS);
    expect(() => parseDuration('25h', '--wait-ack', MAX_WAIT_MS)).toThrow(/at most 1d/);
    expect(() => parseDuration('0.0001ms')).toThrow(/must be positive/);
  });

  it('refuses moments no date can hold, and quotes long input cut short', () => {
    expect(() => parseMoment('100000000000000000000h', '--until', NOW, 'ahead')).toThrow(/at most 366d/);
    expect(() => parseMoment('+275760-09-13T00:00:00Z', '--until', NOW, 'ahead')).toThrow(/between 1970 and 9999/);
    expect(parseMoment('9999-12-31T23:59:59Z', '--until', NOW, 'ahead')).toBeLessThanOrEqual(MAX_MOMENT_MS);
    const long = 'x'.repeat(5_000_000);
    let message = '';
    try {
      parseDuration(long, '--lease');
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message.length).toBeLessThan(200);
  });

  it('checkDuration bounds numbers from MCP and config the same way', () => {
    expect(checkDuration(5_000, 'lease_seconds')).toBe(5_000);
    expect(() => checkDuration(Number.POSITIVE_INFINITY, 'lease_seconds')).toThrow(/lease_seconds must be at least 1ms/);
    expect(() => checkDuration(MAX_DURATION_MS + 1, 'lease_seconds')).toThrow(/at most 366d/);
    expect(isMoment(Date.now())).toBe(true);
    expect(isMoment(1e300)).toBe(false);
    expect(isMoment(Number.NaN)).toBe(false);
  });
});
