import { UsageError } from './errors.js';
import { quote } from './safe-text.js';

/** Sleeps `ms`, returning early (without throwing) when the signal aborts. */
export function abortableSleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (ms <= 0 || signal?.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}

const UNITS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };

const DAY = 86_400_000;

/**
 * The longest duration any option takes (a year and a day): past it a value is a typo or an
 * attack, and `now + it` stays a valid date for every reader. Options with a tighter bound
 * (`--wait-ack`, leases) say so with `max`.
 */
export const MAX_DURATION_MS = 366 * DAY;

/** The longest a command blocks waiting for something (`--wait-ack`, `tasks claim --wait`). */
export const MAX_WAIT_MS = DAY;

/** The latest moment sos stores: the year 9999 ends; every ISO renderer handles it. */
export const MAX_MOMENT_MS = Date.UTC(9999, 11, 31, 23, 59, 59, 999);

/** `2h` for 7_200_000: the short form a maximum is quoted in. */
export function formatDuration(ms: number): string {
  for (const [unit, size] of [['d', DAY], ['h', 3_600_000], ['m', 60_000], ['s', 1_000]] as const) {
    if (ms >= size && ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}

/**
 * `500ms`, `30s`, `5m`, `2h`, `1d`, or a bare number of seconds; positive and at most `max`
 * (default `MAX_DURATION_MS`).
 */
export function parseDuration(text: string, what = 'duration', max = MAX_DURATION_MS): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(text.trim());
  if (!match) throw new UsageError(`invalid ${what} ${quote(text)}: use e.g. 500ms, 30s, 5m, 2h or 1d`);
  const ms = Number(match[1]) * UNITS[match[2] ?? 's']!;
  if (!Number.isFinite(ms) || Math.round(ms) <= 0) throw new UsageError(`invalid ${what} ${quote(text)}: must be positive`);
  if (ms > max) throw new UsageError(`invalid ${what} ${quote(text)}: at most ${formatDuration(max)}`);
  return Math.round(ms);
}

/** A number of milliseconds from a trusted caller (MCP seconds, config): same bounds as parseDuration. */
export function checkDuration(ms: number, what: string, max = MAX_DURATION_MS, min = 1): number {
  if (!Number.isFinite(ms) || ms < min) throw new UsageError(`${what} must be ${min === 0 ? '0 or more' : `at least ${formatDuration(min)}`}`);
  if (ms > max) throw new UsageError(`${what} is at most ${formatDuration(max)}`);
  return Math.round(ms);
}

/**
 * A moment given as a duration from `now` (`2h`: ahead for `--until`, ago for `--since`) or as a
 * date-time (`2026-11-21T17:00`, `2026-11-21`), between 1970 and the end of 9999.
 */
export function parseMoment(text: string, what: string, now: number, direction: 'ahead' | 'ago'): number {
  if (/^\d+(\.\d+)?(ms|s|m|h|d)?$/.test(text.trim())) {
    const ms = parseDuration(text, what);
    return direction === 'ahead' ? now + ms : Math.max(0, now - ms);
  }
  const at = Date.parse(text);
  if (Number.isNaN(at)) throw new UsageError(`invalid ${what} ${quote(text)}: use a duration (2h) or a date-time (2026-11-21T17:00)`);
  if (at < 0 || at > MAX_MOMENT_MS) throw new UsageError(`invalid ${what} ${quote(text)}: a date-time between 1970 and 9999`);
  return at;
}

/** True for a number every date renderer can print: a stored moment that is safe to show. */
export function isMoment(ms: unknown): ms is number {
  return typeof ms === 'number' && Number.isFinite(ms) && ms >= 0 && ms <= MAX_MOMENT_MS;
}

/**
 * A moment as ISO text, or `invalid time` for a number no date can hold (a stored row written
 * by hand or by an older version), where `new Date(x).toISOString()` would throw.
 */
export function momentText(ms: number | null | undefined): string {
  return isMoment(ms) ? new Date(ms).toISOString() : 'invalid time';
}
