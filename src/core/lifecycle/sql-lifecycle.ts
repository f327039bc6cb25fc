import { newId } from '../ids.js';
import type { SqlDriver, SqlExecutor } from '../store/sql/driver.js';
import type { Evidence, LifecycleState } from './classifier.js';

/**
 * Lifecycle records, in the Store's database:
 * - agent state: the current state of each supervised agent with the evidence behind it, what
 *   the screen looked like at the last probe, parking, the latest hook report;
 * - state change: one row per transition (`sos agents history`);
 * - action: one row per recovery action with its outcome and, for actions meant to bring the
 *   agent back, whether it did (recovery `pending` → `succeeded` | `failed`).
 */

export type InjectKind = 'pack' | 'task';

export interface AgentStateRecord {
  project: string;
  agent: string;
  state: LifecycleState;
  since: number;
  confidence: number;
  evidence: Evidence[];
  probedAt: number;
  screenHash: string | null;
  lastChangeAt: number | null;
  parkedUntil: number | null;
  parkReason: string | null;
  pendingInject: InjectKind | null;
  sessionToken: string | null;
  hookEvent: string | null;
  hookAt: number | null;
}

export interface StateChange {
  id: string;
  agent: string;
  state: LifecycleState;
  previous: LifecycleState | null;
  confidence: number;
  evidence: Evidence[];
  at: number;
}

export const ACTION_KINDS = ['restart', 'interrupt', 'checkpoint', 'park', 'unpark', 'escalate', 'inject'] as const;
export type ActionKind = (typeof ACTION_KINDS)[number];
export type ActionOutcome = 'done' | 'skipped' | 'escalated' | 'failed';
export type Recovery = 'pending' | 'succeeded' | 'failed';

export interface ActionRecord {
  id: string;
  project: string;
  agent: string;
  action: ActionKind;
  fromState: LifecycleState;
  outcome: ActionOutcome;
  detail: string;
  at: number;
  recovery: Recovery | null;
  recoveredAt: number | null;
}

interface StateRow {
  project: string;
  agent: string;
  state: LifecycleState;
  since: number;
  confidence: number;
  evidence: string;
  probed_at: number;
  screen_hash: string | null;
  last_change_at: number | null;
  parked_until: number | null;
  park_reason: string | null;
  pending_inject: InjectKind | null;
  session_token: string | null;
  hook_event: string | null;
  hook_at: number | null;
}

interface ActionRow {
  id: string;
  project: string;
  agent: string;
  action: ActionKind;
  from_state: LifecycleState;
  outcome: ActionOutcome;
  detail: string;
  at: number;
  recovery: Recovery | null;
  recovered_at: number | null;
}

const STATE_COLUMNS =
  'project, agent, state, since, confidence, evidence, probed_at, screen_hash, last_change_at, parked_until, park_reason, pending_inject, session_token, hook_event, hook_at';
const ACTION_COLUMNS = 'id, project, agent, action, from_state, outcome, detail, at, recovery, recovered_at';

const toState = (r: StateRow): AgentStateRecord => ({
  project: r.project,
  agent: r.agent,
  state: r.state,
  since: Number(r.since),
  confidence: Number(r.confidence),
  evidence: JSON.parse(r.evidence) as Evidence[],
  probedAt: Number(r.probed_at),
  screenHash: r.screen_hash,
  lastChangeAt: r.last_change_at === null ? null : Number(r.last_change_at),
  parkedUntil: r.parked_until === null ? null : Number(r.parked_until),
  parkReason: r.park_reason,
  pendingInject: r.pending_inject,
  sessionToken: r.session_token,
  hookEvent: r.hook_event,
  hookAt: r.hook_at === null ? null : Number(r.hook_at),
});

const toAction = (r: ActionRow): ActionRecord => ({
  id: r.id,
  project: r.project,
  agent: r.agent,
  action: r.action,
  fromState: r.from_state,
  outcome: r.outcome,
  detail: r.detail,
  at: Number(r.at),
  recovery: r.recovery,
  recoveredAt: r.recovered_at === null ? null : Number(r.recovered_at),
});

export class SqlLifecycleRepo {
  constructor(private readonly db: SqlDriver) {}

  async get(project: string, agent: string): Promise<AgentStateRecord | undefined> {
    const row = await this.db.one<StateRow>(`SELECT ${STATE_COLUMNS} FROM agent_states WHERE project = $1 AND agent = $2`, [project, agent]);
    return row && toState(row);
  }

  async list(project: string): Promise<AgentStateRecord[]> {
    return (await this.db.all<StateRow>(`SELECT ${STATE_COLUMNS} FROM agent_states WHERE project = $1 ORDER BY agent`, [project])).map(toState);
  }

  /**
   * Writes the agent's current record and, when the state changed, its history row, in one
   * transaction; `within` runs inside it too (the SQL bus writes `agent.state` there).
   */
  async save(record: AgentStateRecord, change: StateChange | null, within?: (tx: SqlExecutor) => Promise<void>): Promise<void> {
    await this.db.transaction(async (tx) => {
      await tx.run(
        `INSERT INTO agent_states (${STATE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
         ON CONFLICT (project, agent) DO UPDATE SET state = $3, since = $4, confidence = $5, evidence = $6, probed_at = $7,
           screen_hash = $8, last_change_at = $9, parked_until = $10, park_reason = $11, pending_inject = $12, session_token = $13,
           hook_event = $14, hook_at = $15`,
        [
          record.project,
          record.agent,
          record.state,
          record.since,
          record.confidence,
          JSON.stringify(record.evidence),
          record.probedAt,
          record.screenHash,
          record.lastChangeAt,
          record.parkedUntil,
          record.parkReason,
          record.pendingInject,
          record.sessionToken,
          record.hookEvent,
          record.hookAt,
        ],
      );
      if (change) {
        await tx.run(
          'INSERT INTO agent_state_history (id, project, agent, state, previous, confidence, evidence, at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)',
          [change.id, record.project, change.agent, change.state, change.previous, change.confidence, JSON.stringify(change.evidence), change.at],
        );
      }
      if (within) await within(tx);
    });
  }

  /** Records the latest hook report; creates the agent's record (state unknown) if it has none. */
  async recordHook(project: string, agent: string, event: string, at: number): Promise<void> {
    await this.db.run(
      `INSERT INTO agent_states (project, agent, state, since, confidence, evidence, probed_at, hook_event, hook_at)
       VALUES ($1, $2, 'unknown', $4, 0, '[]', $4, $3, $4)
       ON CONFLICT (project, agent) DO UPDATE SET hook_event = $3, hook_at = $4`,
      [project, agent, event, at],
    );
  }

  async history(project: string, agent: string, limit: number): Promise<StateChange[]> {
    const rows = await this.db.all<{ id: string; agent: string; state: LifecycleState; previous: LifecycleState | null; confidence: number; evidence: string; at: number }>(
      'SELECT id, agent, state, previous, confidence, evidence, at FROM agent_state_history WHERE project = $1 AND agent = $2 ORDER BY at DESC, id DESC LIMIT $3',
      [project, agent, limit],
    );
    return rows.map((r) => ({ ...r, confidence: Number(r.confidence), at: Number(r.at), evidence: JSON.parse(r.evidence) as Evidence[] }));
  }

  /** Agents that went from a live state to dead at or after `since`. */
  async diedSince(project: string, since: number): Promise<string[]> {
    const rows = await this.db.all<{ agent: string }>(
      `SELECT DISTINCT agent FROM agent_state_history
       WHERE project = $1 AND state = 'dead' AND at >= $2 AND previous IS NOT NULL AND previous NOT IN ('dead', 'parked')`,
      [project, since],
    );
    return rows.map((r) => r.agent);
  }

  /** Records an action; with `tx`, inside that transaction (with the state it led to). */
  async addAction(action: Omit<ActionRecord, 'id' | 'recoveredAt'>, tx: SqlExecutor = this.db): Promise<ActionRecord> {
    const record: ActionRecord = { ...action, id: newId('act', action.at), recoveredAt: null };
    await tx.run(`INSERT INTO lifecycle_actions (${ACTION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`, [
      record.id,
      record.project,
      record.agent,
      record.action,
      record.fromState,
      record.outcome,
      record.detail,
      record.at,
      record.recovery,
      null,
    ]);
    return record;
  }

  /** The agent's actions at or after `since`, newest first (all agents when `agent` is null). */
  async actions(project: string, agent: string | null, since: number, limit = 200): Promise<ActionRecord[]> {
    const rows = await this.db.all<ActionRow>(
      `SELECT ${ACTION_COLUMNS} FROM lifecycle_actions WHERE project = $1 AND ($2 = '' OR agent = $2) AND at >= $3 ORDER BY at DESC, id DESC LIMIT $4`,
      [project, agent ?? '', since, limit],
    );
    return rows.map(toAction);
  }

  async pendingRecoveries(project: string, agent: string): Promise<ActionRecord[]> {
    const rows = await this.db.all<ActionRow>(
      `SELECT ${ACTION_COLUMNS} FROM lifecycle_actions WHERE project = $1 AND agent = $2 AND recovery = 'pending' ORDER BY at`,
      [project, agent],
    );
    return rows.map(toAction);
  }

  async settleRecovery(project: string, id: string, recovery: 'succeeded' | 'failed', at: number): Promise<void> {
    await this.db.run("UPDATE lifecycle_actions SET recovery = $3, recovered_at = $4 WHERE project = $1 AND id = $2 AND recovery = 'pending'", [
      project,
      id,
      recovery,
      at,
    ]);
  }

  /** Counts per action and outcome, and recoveries per result, for `sos metrics`. */
  async counters(project: string): Promise<{ actions: Record<string, number>; recoveries: Record<Recovery, number> }> {
    const actions: Record<string, number> = {};
    for (const r of await this.db.all<{ action: string; outcome: string; n: number }>(
      'SELECT action, outcome, COUNT(*) AS n FROM lifecycle_actions WHERE project = $1 GROUP BY action, outcome',
      [project],
    )) {
      actions[`${r.action}.${r.outcome}`] = Number(r.n);
    }
    const recoveries: Record<Recovery, number> = { pending: 0, succeeded: 0, failed: 0 };
    for (const r of await this.db.all<{ recovery: Recovery; n: number }>(
      'SELECT recovery, COUNT(*) AS n FROM lifecycle_actions WHERE project = $1 AND recovery IS NOT NULL GROUP BY recovery',
      [project],
    )) {
      recoveries[r.recovery] = Number(r.n);
    }
    return { actions, recoveries };
  }
}
