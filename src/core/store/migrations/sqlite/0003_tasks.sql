-- Tasks: the claim engine (DESIGN.md §5).
CREATE TABLE tasks (
  seq            INTEGER PRIMARY KEY AUTOINCREMENT,
  id             TEXT NOT NULL UNIQUE,
  project        TEXT NOT NULL REFERENCES projects (slug) ON DELETE CASCADE,
  title          TEXT NOT NULL,
  description    TEXT,
  status         TEXT NOT NULL CHECK (status IN ('backlog', 'queued', 'claimed', 'in_progress', 'review', 'done', 'failed', 'dead', 'canceled', 'blocked')),
  priority       INTEGER NOT NULL CHECK (priority BETWEEN 0 AND 100),
  squad          TEXT,
  assignee       TEXT,
  claimant       TEXT,
  -- The fencing token: bumped by every claim; writes must present the current one.
  attempt        INTEGER NOT NULL DEFAULT 0,
  max_attempts   INTEGER NOT NULL,
  lease_ms       INTEGER NOT NULL,
  lease_until    INTEGER,
  -- Not claimable before this (retry backoff).
  available_at   INTEGER NOT NULL,
  -- Dependencies not done yet: the task is ready when this is 0.
  unmet_deps     INTEGER NOT NULL DEFAULT 0,
  budget_tokens  INTEGER,
  budget_micros  INTEGER,
  usage_tokens   INTEGER,
  result         TEXT,
  error          TEXT,
  blocked_reason TEXT,
  handoff        TEXT,
  handoff_to     TEXT,
  created_by     TEXT NOT NULL,
  created_at     INTEGER NOT NULL,
  updated_at     INTEGER NOT NULL
);
-- The claim path: queued tasks of a project in priority order, then age (BASELINES: the index
-- direction must match ORDER BY priority DESC, seq or every claim sorts a whole bucket).
CREATE INDEX tasks_ready ON tasks (project, priority DESC, seq) WHERE status = 'queued';
CREATE INDEX tasks_by_status ON tasks (project, status, seq);
CREATE INDEX tasks_leases ON tasks (lease_until) WHERE status IN ('claimed', 'in_progress');

CREATE TABLE task_labels (
  task_seq  INTEGER NOT NULL REFERENCES tasks (seq) ON DELETE CASCADE,
  label     TEXT NOT NULL,
  PRIMARY KEY (task_seq, label)
);

CREATE TABLE task_requires (
  task_seq    INTEGER NOT NULL REFERENCES tasks (seq) ON DELETE CASCADE,
  capability  TEXT NOT NULL,
  PRIMARY KEY (task_seq, capability)
);

CREATE TABLE task_deps (
  task_seq        INTEGER NOT NULL REFERENCES tasks (seq) ON DELETE CASCADE,
  depends_on_seq  INTEGER NOT NULL REFERENCES tasks (seq) ON DELETE CASCADE,
  PRIMARY KEY (task_seq, depends_on_seq)
);
CREATE INDEX task_deps_reverse ON task_deps (depends_on_seq);

CREATE TABLE task_artifacts (
  task_seq  INTEGER NOT NULL REFERENCES tasks (seq) ON DELETE CASCADE,
  ref       TEXT NOT NULL,
  PRIMARY KEY (task_seq, ref)
);

CREATE TABLE task_events (
  id           INTEGER PRIMARY KEY AUTOINCREMENT,
  task_seq     INTEGER NOT NULL REFERENCES tasks (seq) ON DELETE CASCADE,
  at           INTEGER NOT NULL,
  actor        TEXT NOT NULL,
  event        TEXT NOT NULL,
  from_status  TEXT,
  to_status    TEXT,
  detail       TEXT
);
CREATE INDEX task_events_by_task ON task_events (task_seq, id);

-- One row per (caller, key): a repeated mutation returns the stored result.
CREATE TABLE idempotency (
  project     TEXT NOT NULL,
  actor       TEXT NOT NULL,
  key         TEXT NOT NULL,
  operation   TEXT NOT NULL,
  result      TEXT NOT NULL,
  created_at  INTEGER NOT NULL,
  PRIMARY KEY (project, actor, key)
);

-- Operational counters (DESIGN.md §10): duplicate claims refused, stale fences refused, …
CREATE TABLE counters (
  project  TEXT NOT NULL,
  name     TEXT NOT NULL,
  value    INTEGER NOT NULL,
  PRIMARY KEY (project, name)
);

-- Project event stream (task.* events) for waiters, the brain and `sos top`.
CREATE TABLE bus_events (
  seq      INTEGER PRIMARY KEY AUTOINCREMENT,
  project  TEXT NOT NULL,
  type     TEXT NOT NULL,
  data     TEXT NOT NULL,
  at       INTEGER NOT NULL
);
CREATE INDEX bus_events_by_project ON bus_events (project, seq);
