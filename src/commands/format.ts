import { momentText } from '../core/time.js';

/** Plain-text rendering helpers for human output (no colour: output is read by people and pipes). */

/** A stored moment as ISO text; one no date can hold prints as `invalid time`, never throws. */
export function iso(ms: number | null | undefined): string | null {
  if (ms === null || ms === undefined) return null;
  return momentText(ms);
}

/** Aligned columns with a header row; empty cells print as `-`. */
export function table(
  headers: readonly string[],
  rows: readonly (readonly (string | number | null | undefined)[])[],
): string {
  const cells = rows.map((row) =>
    row.map((c) => (c === null || c === undefined || c === '' ? '-' : String(c))),
  );
  const widths = headers.map((h, i) => Math.max(h.length, ...cells.map((row) => row[i]?.length ?? 0)));
  const line = (row: readonly string[]) =>
    row
      .map((c, i) => (i === row.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return [line(headers.map((h) => h.toUpperCase())), ...cells.map(line)].join('\n');
}

/** `key: value` lines, aligned. */
export function fields(entries: readonly [string, string | number | null | undefined][]): string {
  const width = Math.max(...entries.map(([k]) => k.length));
  return entries
    .map(([k, v]) => `${`${k}:`.padEnd(width + 1)} ${v === null || v === undefined || v === '' ? '-' : v}`)
    .join('\n');
}
