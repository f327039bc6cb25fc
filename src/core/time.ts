import { UsageError } from './errors.js';

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

/** `500ms`, `30s`, `5m`, `2h`, `1d`, or a bare number of seconds. */
export function parseDuration(text: string, what = 'duration'): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(text.trim());
  if (!match) throw new UsageError(`invalid ${what} ${JSON.stringify(text)}: use e.g. 500ms, 30s, 5m, 2h or 1d`);
  const ms = Number(match[1]) * UNITS[match[2] ?? 's']!;
  if (!Number.isFinite(ms) || ms <= 0) throw new UsageError(`invalid ${what} ${JSON.stringify(text)}: must be positive`);
  return Math.round(ms);
}

/**
 * A moment given as a duration from `now` (`2h`: ahead for `--until`, ago for `--since`) or as a
 * date-time (`2026-11-21T17:00`, `2026-11-21`).
 */
export function parseMoment(text: string, what: string, now: number, direction: 'ahead' | 'ago'): number {
  if (/^\d+(\.\d+)?(ms|s|m|h|d)?$/.test(text.trim())) {
    const ms = parseDuration(text, what);
    return direction === 'ahead' ? now + ms : now - ms;
  }
  const at = Date.parse(text);
  if (Number.isNaN(at)) throw new UsageError(`invalid ${what} ${JSON.stringify(text)}: use a duration (2h) or a date-time (2026-11-21T17:00)`);
  return at;
}
