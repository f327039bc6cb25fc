-- Lifecycle (DESIGN.md §7): how an agent is started and read, its current state with the evidence
-- behind it, every transition, the latest hook report, and every recovery action with its outcome.
ALTER TABLE agents ADD COLUMN start_cmd TEXT;
ALTER TABLE agents ADD COLUMN workdir TEXT;
ALTER TABLE agents ADD COLUMN policy TEXT NOT NULL DEFAULT 'warm' CHECK (policy IN ('warm', 'cold'));
ALTER TABLE agents ADD COLUMN tmux_socket TEXT;
-- Per-agent pattern groups (JSON) replacing the defaults of its kind.
ALTER TABLE agents ADD COLUMN patterns TEXT;

CREATE TABLE agent_states (
  project         TEXT NOT NULL,
  agent           TEXT NOT NULL,
  state           TEXT NOT NULL,
  since           BIGINT NOT NULL,
  confidence      DOUBLE PRECISION NOT NULL,
  evidence        TEXT NOT NULL,
  probed_at       BIGINT NOT NULL,
  -- What the screen looked like at the last probe, and when it last changed.
  screen_hash     TEXT,
  last_change_at  BIGINT,
  parked_until    BIGINT,
  park_reason     TEXT,
  hook_event      TEXT,
  -- What the next probe that finds the agent at its prompt must type ('pack' | 'task').
  pending_inject  TEXT,
  -- The agent token minted for the running session (revoked when the session is restarted).
  session_token   TEXT,
  hook_at         BIGINT,
  PRIMARY KEY (project, agent),
  FOREIGN KEY (project, agent) REFERENCES agents (project, name) ON DELETE CASCADE
);

CREATE TABLE agent_state_history (
  id          TEXT PRIMARY KEY,
  project     TEXT NOT NULL,
  agent       TEXT NOT NULL,
  state       TEXT NOT NULL,
  previous    TEXT,
  confidence  DOUBLE PRECISION NOT NULL,
  evidence    TEXT NOT NULL,
  at          BIGINT NOT NULL,
  FOREIGN KEY (project, agent) REFERENCES agents (project, name) ON DELETE CASCADE
);
CREATE INDEX agent_state_history_by_agent ON agent_state_history (project, agent, at);

CREATE TABLE lifecycle_actions (
  id            TEXT PRIMARY KEY,
  project       TEXT NOT NULL,
  agent         TEXT NOT NULL,
  action        TEXT NOT NULL,
  from_state    TEXT NOT NULL,
  outcome       TEXT NOT NULL CHECK (outcome IN ('done', 'skipped', 'escalated', 'failed')),
  detail        TEXT NOT NULL,
  at            BIGINT NOT NULL,
  -- For actions meant to recover the agent: pending until it reaches idle/busy or times out.
  recovery      TEXT CHECK (recovery IN ('pending', 'succeeded', 'failed')),
  recovered_at  BIGINT,
  FOREIGN KEY (project, agent) REFERENCES agents (project, name) ON DELETE CASCADE
);
CREATE INDEX lifecycle_actions_by_agent ON lifecycle_actions (project, agent, action, at);
CREATE INDEX lifecycle_actions_pending ON lifecycle_actions (project, recovery);
