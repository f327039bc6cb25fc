import { z } from 'zod';
import { UsageError } from '../errors.js';
import type { Task } from '../tasks/types.js';

/**
 * The worker spec of a task: an optional fenced block in its description,
 *
 *     ```sos-worker
 *     { "base": "main", "command": ["npm", "test"] }
 *     ```
 *
 * Tasks have no columns for a base ref or a command, and the description is what every surface
 * (CLI, MCP, REST, the brain) can already write, so the spec rides there. The command is an
 * argument vector only: a string would need a shell to split it, and nothing here runs a shell.
 */
export interface WorkerSpec {
  base: string | null;
  command: string[] | null;
}

const BLOCK = /```sos-worker[ \t]*\r?\n([\s\S]*?)\r?\n```/;

/** A ref git may read as a ref and never as an option: no leading dash, no `..`, printable. */
const ref = z
  .string()
  .min(1)
  .max(200)
  .regex(/^[A-Za-z0-9_][A-Za-z0-9._/@{}^~-]*$/, 'base is a branch, tag or commit (letters, digits, . _ / - @ ^ ~)')
  .refine((s) => !s.includes('..'), 'base may not contain ".."');

const schema = z
  .object({
    base: ref.optional(),
    command: z.array(z.string().min(1, 'an empty argument').max(8_000)).min(1, 'command is empty').max(500)
      .optional(),
  })
  .strict();

export function workerSpec(task: Pick<Task, 'id' | 'description'>): WorkerSpec {
  const m = BLOCK.exec(task.description ?? '');
  if (!m) return { base: null, command: null };
  let json: unknown;
  try {
    json = JSON.parse(m[1]!);
  } catch (err) {
    throw new UsageError(`task ${task.id}: the sos-worker block is not JSON: ${(err as Error).message}`);
  }
  if (typeof (json as { command?: unknown } | null)?.command === 'string') {
    throw new UsageError(`task ${task.id}: sos-worker command must be a JSON array of arguments: a string would need a shell to split it`);
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new UsageError(`task ${task.id}: sos-worker ${issue.path.join('.') || 'block'}: ${issue.message}`);
  }
  for (const a of parsed.data.command ?? []) if (a.includes('\0')) throw new UsageError(`task ${task.id}: sos-worker command has a NUL byte`);
  return { base: parsed.data.base ?? null, command: parsed.data.command ?? null };
}

/** The description an agent reads: the spec block is for the worker, not the prompt. */
export function descriptionText(task: Pick<Task, 'description'>): string {
  return (task.description ?? '').replace(BLOCK, '').trim();
}
