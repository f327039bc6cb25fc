-- Governance as data (issue 14): the tier of each motor method in a project; a method with no
-- row has its built-in tier (motor.ts DEFAULT_TIERS).
CREATE TABLE governance (
  project     TEXT NOT NULL REFERENCES projects (slug) ON DELETE CASCADE,
  method      TEXT NOT NULL,
  tier        TEXT NOT NULL CHECK (tier IN ('act_freely', 'batch_approve', 'human_gate', 'dual_approval')),
  updated_by  TEXT NOT NULL,
  updated_at  INTEGER NOT NULL,
  PRIMARY KEY (project, method)
);
-- The approval queue: a gated proposal waits here; it executes once, when approved, after the
-- motor re-checks it. status: pending → approved (executing) → executed | failed | skipped, or
-- pending → denied. proposal: the motor proposal as JSON; verdict: the outcome when acted on.
CREATE TABLE approvals (
  project      TEXT NOT NULL REFERENCES projects (slug) ON DELETE CASCADE,
  id           TEXT NOT NULL,
  cycle_id     TEXT NOT NULL,
  method       TEXT NOT NULL,
  tier         TEXT NOT NULL,
  proposal     TEXT NOT NULL,
  status       TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'denied', 'executed', 'failed', 'skipped')),
  created_at   INTEGER NOT NULL,
  decided_at   INTEGER,
  outcome      TEXT,
  reason       TEXT,
  made         TEXT,
  PRIMARY KEY (project, id),
  UNIQUE (project, cycle_id, method)
);
CREATE INDEX approvals_by_status ON approvals (project, status, created_at);
-- One vote per approver per approval; dual approval needs two different approvers.
CREATE TABLE approval_votes (
  project      TEXT NOT NULL,
  approval_id  TEXT NOT NULL,
  approver     TEXT NOT NULL,
  vote         TEXT NOT NULL CHECK (vote IN ('approve', 'deny')),
  note         TEXT,
  at           INTEGER NOT NULL,
  PRIMARY KEY (project, approval_id, approver),
  FOREIGN KEY (project, approval_id) REFERENCES approvals (project, id) ON DELETE CASCADE
);
