/**
 * The economy's ledger (issue 13): usage events and the reports over them.
 *
 * - usage event: one metered model call (or turn) with its token counts, from a source: an
 *   importer of an agent CLI's logs (`claude`, `codex`, `gemini`), a caller's own report
 *   (`report`, `sos usage record`, the MCP tool) or the brain (`brain`).
 * - source key: the source's own identity for the event (claude `message.id:requestId`, codex
 *   `<session id>:<turn>`, a report's idempotency key or a fresh uuid); unique per project and
 *   source, so recording the same event twice counts it once.
 * - cost: integer micro-dollars from the price table in force; null (unknown) for an unpriced
 *   model, never 0.
 *
 * Token semantics follow Anthropic's: `inputTokens` are input tokens NOT read from the cache
 * (an OpenAI importer subtracts cached input from its input count); reasoning tokens are
 * informational and already counted inside `outputTokens` where the provider bills them as output.
 * Times are epoch milliseconds.
 */

export const USAGE_SOURCES = ['claude', 'codex', 'gemini', 'report', 'brain'] as const;
export type UsageSource = (typeof USAGE_SOURCES)[number];

export const REPORT_DIMENSIONS = ['agent', 'model', 'project', 'task', 'squad', 'day'] as const;
export type ReportDimension = (typeof REPORT_DIMENSIONS)[number];

export interface TokenCounts {
  inputTokens: number;
  outputTokens: number;
  cacheWriteTokens: number;
  cacheWrite1hTokens: number;
  cacheReadTokens: number;
}

/** What a source hands to `recordUsage`. */
export interface UsageInput {
  model: string;
  /** Default: the price table's provider for the model, else `unknown`. */
  provider?: string;
  inputTokens: number;
  outputTokens: number;
  cacheWriteTokens?: number;
  cacheWrite1hTokens?: number;
  cacheReadTokens?: number;
  reasoningTokens?: number;
  /** Default: the caller's agent; another agent (or null: none) needs an admin or the operator. */
  agent?: string | null;
  /** Default: the one task the agent holds a claim on, if exactly one; null: none. */
  task?: string | null;
  /** Default `report`. */
  source?: UsageSource;
  /** Required for importer sources; for `report` an idempotency key, else a fresh uuid. */
  sourceKey?: string;
  sourceFile?: string | null;
  sessionId?: string | null;
  /** Default: now. */
  occurredAt?: number;
}

export interface UsageEvent extends TokenCounts {
  id: string;
  project: string;
  agent: string | null;
  task: string | null;
  provider: string;
  model: string;
  reasoningTokens: number;
  costMicros: number | null;
  priceVersion: string | null;
  source: UsageSource;
  sourceFile: string | null;
  sessionId: string | null;
  sourceKey: string;
  occurredAt: number;
  recordedAt: number;
}

export interface RecordResult {
  /** The event's id: the existing one when `duplicate`. */
  id: string;
  /** True when the (source, source key) was already recorded: nothing was written. */
  duplicate: boolean;
  /** The stored event's cost; null when its model is unpriced. */
  costMicros: number | null;
  agent: string | null;
  task: string | null;
  model: string;
}

export interface ReportFilter {
  by?: ReportDimension;
  /** Inclusive lower bound on occurred_at. */
  since?: number;
  /** Exclusive upper bound on occurred_at. */
  until?: number;
  agent?: string;
}

export interface UsageRow extends TokenCounts {
  /** The group: agent, model, project, task id, squad, or `YYYY-MM-DD` (UTC); `-` for none. */
  key: string;
  reasoningTokens: number;
  events: number;
  /** Sum over the priced events only; null when every event of the group is unpriced. */
  costMicros: number | null;
  /** Events whose model is unpriced (their cost is not in costMicros). */
  unknownCostEvents: number;
}

export interface UsageReport {
  by: ReportDimension;
  since: number | null;
  until: number | null;
  agent: string | null;
  /**
   * One per group. By squad an agent counts in every squad it is in now (rows can overlap) and
   * events of agents in none, or of no agent, under `-`.
   */
  rows: UsageRow[];
  total: UsageRow;
  /** Unpriced events per model, most first. */
  unknownModels: { model: string; events: number }[];
  /** Tasks now `done` that have events in the window, and the priced cost of those events. */
  completedTasks: number;
  completedTaskCostMicros: number;
  /** completedTaskCostMicros ÷ completedTasks, rounded to the micro-dollar; null without any. */
  costPerCompletedTaskMicros: number | null;
}

export interface RecomputeResult {
  events: number;
  /** Events whose cost or price version changed. */
  changed: number;
  /** Events left unpriced. */
  unknown: number;
  priceVersion: string;
}
