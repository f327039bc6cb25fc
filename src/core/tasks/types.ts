/**
 * Tasks (docs/ARCHITECTURE.md, "Tasks" and "Flow of a task").
 *
 * Glossary:
 * - task: a unit of claimable work in a project, optionally in a squad.
 * - ready: queued, every dependency done, past its retry backoff.
 * - claim: atomic ownership by one agent, with a lease (`leaseUntil`) and a fencing token.
 * - fence: the task's attempt number at claim time; every later write by the claimant must present
 *   it, so a worker whose lease expired cannot touch a task someone else now owns.
 * - sweep: the stall rescue: an expired lease returns the task to the queue (attempt + 1, with a
 *   jittered backoff) or, past `maxAttempts`, makes it `dead` (redrivable).
 * - handoff: a structured transfer from the claimant to another agent: a context package, then
 *   acceptance (the receiver becomes the claimant) or rejection (it goes back to the sender).
 */

export const TASK_STATUSES = [
  'backlog',
  'queued',
  'claimed',
  'in_progress',
  'review',
  'done',
  'failed',
  'dead',
  'canceled',
  'blocked',
] as const;
export type TaskStatus = (typeof TASK_STATUSES)[number];

export const PRIORITY_NAMES = { critical: 90, high: 70, normal: 50, low: 30 } as const;

export interface Handoff {
  from: string;
  to: string;
  summary: string;
  memories: string[];
  at: number;
}

export interface Task {
  id: string;
  project: string;
  title: string;
  description: string | null;
  status: TaskStatus;
  priority: number;
  squad: string | null;
  labels: string[];
  requires: string[];
  dependsOn: string[];
  assignee: string | null;
  claimant: string | null;
  attempt: number;
  maxAttempts: number;
  leaseMs: number;
  leaseUntil: number | null;
  availableAt: number;
  unmetDeps: number;
  budgetTokens: number | null;
  budgetMicros: number | null;
  usageTokens: number | null;
  result: string | null;
  error: string | null;
  artifacts: string[];
  blockedReason: string | null;
  handoff: Handoff | null;
  createdBy: string;
  createdAt: number;
  updatedAt: number;
}

export interface NewTask {
  id: string;
  project: string;
  title: string;
  description: string | null;
  status: 'backlog' | 'queued';
  priority: number;
  squad: string | null;
  labels: string[];
  requires: string[];
  dependsOn: string[];
  assignee: string | null;
  maxAttempts: number;
  leaseMs: number;
  budgetTokens: number | null;
  budgetMicros: number | null;
  createdBy: string;
  createdAt: number;
}

export interface TaskEvent {
  at: number;
  actor: string;
  event: string;
  from: TaskStatus | null;
  to: TaskStatus | null;
  detail: Record<string, unknown> | null;
}

export interface TaskFilter {
  statuses?: TaskStatus[];
  squad?: string;
  assignee?: string;
  ready?: boolean;
  limit?: number;
}

/** A change of one task, applied only if the guard still holds (optimistic, one statement). */
export interface TaskChange {
  /** The task must be in one of these statuses. */
  from: readonly TaskStatus[];
  to: TaskStatus;
  /** When set, the task must be held by this agent with this fence (attempt). */
  holder?: { agent: string; fence: number | undefined };
  /** When set, the task's handoff must be addressed to this agent. */
  handoffTo?: string;
  /**
   * The status the caller last saw. The write then checks it exactly (and records it as the
   * event's from-status) without reading the row first; if it moved to another allowed status
   * meanwhile, the write is retried once against that.
   */
  expect?: TaskStatus;
  /** When set, the lease must have run out by then (a renewal racing the sweep wins). */
  leaseExpiredBy?: number;
  set?: Partial<
    Pick<
      Task,
      | 'claimant'
      | 'leaseUntil'
      | 'availableAt'
      | 'result'
      | 'error'
      | 'usageTokens'
      | 'blockedReason'
      | 'handoff'
      | 'attempt'
      | 'maxAttempts'
    >
  >;
  /** Bump the attempt (a new fence). */
  bumpAttempt?: boolean;
  artifacts?: string[];
  event: { actor: string; name: string; detail?: Record<string, unknown> };
}

/** Why a guarded change did not apply. */
export type ChangeRefusal =
  | { reason: 'not_found' }
  | { reason: 'status'; status: TaskStatus }
  | { reason: 'holder'; claimant: string | null; attempt: number; status: TaskStatus }
  | { reason: 'handoff'; to: string | null; status: TaskStatus };

export interface Idempotency {
  actor: string;
  key: string;
  operation: string;
}
