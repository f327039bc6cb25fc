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

/** A chunk of complete lines after `prefilter`: the lines worth parsing and the counts of the rest. */
export interface Prefiltered {
  /** The lines that may carry what the parser looks for, decoded, in order. */
  candidates: string[];
  /** Non-blank lines in the chunk, candidates included. */
  lines: number;
  /** Non-candidate lines counted corrupt (see `prefilter` for which). */
  corrupt: number;
  /** Non-candidate lines counted as JSON objects that carry nothing to count. */
  skipped: number;
}

const ESCAPE = Buffer.from('\\u00');
const SPACE = 0x20;
const TAB = 0x09;
const CR = 0x0d;
const NL = 0x0a;
const OPEN = 0x7b; // {
const CLOSE = 0x7d; // }

/**
 * Splits a chunk of UTF-8 lines at '\n' without decoding it, and decodes only the lines that
 * hold one of `needles` (ASCII byte patterns such as `"assistant"`, each a whole JSON string
 * with its quotes) or a `\u004`…`\u007` escape (the only way a JSON string can spell an ASCII
 * letter without writing it), so a parser that needs one of those strings as a value in the
 * line loses nothing: a line without them cannot parse to an object that holds it. The other
 * lines are counted without JSON.parse where that is safe:
 * - blank (only spaces, tabs, '\r'): not a line, as for `line.trim() === ''`;
 * - first and last non-blank bytes `{` and `}` (JSON whitespace only around them): counted a
 *   JSON object that carries nothing (`skipped`), NOT parsed. This is the one approximation: such a
 *   line that is not valid JSON (two half-written lines run together, say) is not counted
 *   corrupt; it could carry no usage either way;
 * - anything else (text, a truncated line, a leading BOM or other whitespace, an array): decoded,
 *   trimmed and parsed exactly as a parser would, so corrupt is exact for these.
 * Splitting bytes at 0x0A and decoding each line alone gives the same strings as decoding the
 * chunk and splitting it: no UTF-8 sequence holds 0x0A.
 */
export function prefilter(buf: Buffer, needles: readonly Buffer[]): Prefiltered {
  const out: Prefiltered = { candidates: [], lines: 0, corrupt: 0, skipped: 0 };
  // Each pattern's next occurrence at or after the line's start (Infinity: none left): every
  // search starts where the last one stopped being useful, so the chunk is searched once per pattern.
  const next: number[] = needles.map(() => -1);
  let nextEscape = -1;
  const end = buf.length;
  for (let s = 0; s < end; ) {
    let e = buf.indexOf(NL, s);
    if (e < 0) e = end;
    let candidate = false;
    for (let k = 0; k < needles.length; k++) {
      if (next[k]! < s) {
        const at = buf.indexOf(needles[k]!, s);
        next[k] = at < 0 ? Infinity : at;
      }
      if (next[k]! < e) candidate = true;
    }
    if (!candidate) {
      if (nextEscape < s) {
        let at = buf.indexOf(ESCAPE, s);
        while (at >= 0 && !(buf[at + 4]! >= 0x34 && buf[at + 4]! <= 0x37)) at = buf.indexOf(ESCAPE, at + 1);
        nextEscape = at < 0 ? Infinity : at;
      }
      if (nextEscape < e) candidate = true;
    }
    if (candidate) {
      out.candidates.push(buf.toString('utf8', s, e));
      out.lines++;
    } else {
      let a = s;
      while (a < e && (buf[a] === SPACE || buf[a] === TAB || buf[a] === CR)) a++;
      if (a < e) {
        let z = e - 1;
        while (buf[z] === SPACE || buf[z] === TAB || buf[z] === CR) z--;
        if (z > a && buf[a] === OPEN && buf[z] === CLOSE) {
          out.lines++;
          out.skipped++;
        } else {
          const line = buf.toString('utf8', s, e);
          if (line.trim() !== '') {
            out.lines++;
            if (jsonLine(line)) out.skipped++;
            else out.corrupt++;
          }
        }
      }
    }
    s = e + 1;
  }
  return out;
}
