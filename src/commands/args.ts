import { UsageError } from '../core/errors.js';
import { parseDuration } from '../core/time.js';
import type { Invocation } from './define.js';

/** Small readers for commander's option values, shared by the command handlers. */

export const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

export const strings = (v: unknown): string[] | undefined => (Array.isArray(v) ? (v as string[]) : undefined);

export function int(v: unknown, flag: string): number | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'string' || !/^\d+$/.test(v)) throw new UsageError(`${flag} must be a whole number`);
  return Number(v);
}

export const duration = (v: unknown, flag: string, max?: number): number | undefined => (typeof v === 'string' ? parseDuration(v, flag, max) : undefined);

/** `{ k: v }` when v is defined, `{}` otherwise (for `exactOptionalPropertyTypes` inputs). */
export const opt = <K extends string, V>(k: K, v: V | undefined): { [P in K]?: V } =>
  v === undefined ? {} : ({ [k]: v } as { [P in K]: V });

/** All of standard input as text, without its final newline. */
export async function readStdin(inv: Invocation): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of inv.stdin) chunks.push(Buffer.isBuffer(c) ? c : Buffer.from(String(c)));
  return Buffer.concat(chunks).toString('utf8').replace(/\n$/, '');
}
