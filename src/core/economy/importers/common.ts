import type { UsageInput } from '../types.js';

/** One usage event found in a transcript, before attribution (the driver adds agent and source). */
export interface ParsedEvent extends Omit<UsageInput, 'agent' | 'task' | 'source' | 'sourceKey'> {
  sourceKey: string;
  /** The working directory the transcript names for this event, if any (for attribution). */
  cwd?: string | null;
}

export interface ParseResult {
  events: ParsedEvent[];
  /** Complete lines read. */
  lines: number;
  /** Lines that are not JSON objects (skipped, counted, never fatal). */
  corrupt: number;
  /** Lines that are JSON but carry nothing to count (no usage, synthetic, cost state…). */
  skipped: number;
}

/** Parses one line as a JSON object; undefined when it is not one. */
export function jsonLine(line: string): Record<string, unknown> | undefined {
  try {
    const v: unknown = JSON.parse(line);
    return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

export const obj = (v: unknown): Record<string, unknown> | undefined =>
  v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;

/** A non-negative whole token count, else 0. */
export const tok = (v: unknown): number => (typeof v === 'number' && Number.isInteger(v) && v >= 0 ? v : 0);

export const text = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);

export function timeOf(v: unknown): number | undefined {
  if (typeof v !== 'string') return undefined;
  const t = Date.parse(v);
  return Number.isFinite(t) && t >= 0 ? t : undefined;
}
