import { readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';

/**
 * The sidecar of a run: `<worktree root>/<task id>.json`, written before the worktree is made
 * and removed after it is torn down. It is what a restarted worker knows of a run it did not
 * finish: which worker process ran it, the fence it held, and the CLI's process group.
 */

const schema = z.object({
  task: z.string().regex(/^tsk_[0-9a-z]{26}$/),
  worker: z.number().int().positive(),
  agent: z.string(),
  fence: z.number().int().positive(),
  base: z.string(),
  branch: z.string(),
  child: z.number().int().positive().nullable(),
});
export type Sidecar = z.infer<typeof schema>;

export const sidecarPath = (root: string, taskId: string): string => join(root, `${taskId}.json`);

/** Written whole then renamed, so a reader after a crash sees the old or the new one, never half. */
export async function writeSidecar(root: string, sidecar: Sidecar): Promise<void> {
  const path = sidecarPath(root, sidecar.task);
  await writeFile(`${path}.tmp`, JSON.stringify(sidecar));
  await rename(`${path}.tmp`, path);
}

export async function readSidecar(root: string, taskId: string): Promise<Sidecar | null> {
  try {
    const parsed = schema.safeParse(JSON.parse(await readFile(sidecarPath(root, taskId), 'utf8')));
    return parsed.success ? parsed.data : null;
  } catch {
    return null;
  }
}

/** Whether a process with this pid exists (EPERM: it exists, as someone else's). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Whether `pid` is still the CLI a worker started for this task: its environment carries
 * `SOS_WORKER_TASK=<task id>` (run.ts sets it). A recycled pid never does, so a restarted worker
 * kills an orphaned CLI and nothing else. Where /proc is absent the answer is no: nothing is killed.
 */
export async function isOrphanOf(pid: number, taskId: string): Promise<boolean> {
  try {
    const environ = await readFile(`/proc/${pid}/environ`, 'utf8');
    return environ.split('\0').includes(`SOS_WORKER_TASK=${taskId}`);
  } catch {
    return false;
  }
}
