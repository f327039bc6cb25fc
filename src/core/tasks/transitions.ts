import type { TaskStatus } from './types.js';

/**
 * Every allowed status change, and nothing else. The service asks this table before it writes;
 * the write itself re-checks the status in its WHERE clause, so a race cannot slip past it.
 */
export const TRANSITIONS: Record<TaskStatus, readonly TaskStatus[]> = {
  backlog: ['queued', 'canceled', 'blocked'],
  queued: ['claimed', 'backlog', 'canceled', 'blocked'],
  claimed: ['in_progress', 'queued', 'review', 'done', 'failed', 'dead', 'canceled', 'claimed'],
  in_progress: ['queued', 'review', 'done', 'failed', 'dead', 'canceled', 'in_progress'],
  review: ['claimed', 'queued', 'canceled'],
  done: [],
  failed: ['queued', 'canceled'],
  dead: ['queued', 'canceled'],
  canceled: [],
  blocked: ['queued', 'backlog', 'canceled'],
};

export function canMove(from: TaskStatus, to: TaskStatus): boolean {
  return TRANSITIONS[from].includes(to);
}

/** Statuses whose task holds a live claim (a lease that can expire). */
export const HELD: readonly TaskStatus[] = ['claimed', 'in_progress'];

/** Statuses a task never leaves. */
export const FINAL: readonly TaskStatus[] = ['done', 'canceled'];
