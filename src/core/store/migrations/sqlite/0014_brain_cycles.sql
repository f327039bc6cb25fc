-- The brain's cycles (issue 14): one row per perceive, decide, act cycle, written when it ends.
-- trigger: what woke the brain (an event type, wake, timer); trigger_detail: its data as JSON.
-- decision: the validated decision as JSON, or NULL when none was valid (outcome 'failed').
-- outcome: the motor's outcome, or 'failed' for an invalid or absent decision or a failed
-- provider chain; motor_check: the motor check that decided. attempts: the provider chain's
-- attempts as JSON. cost_micros: what the cycle's model calls cost; NULL when any is unpriced.
CREATE TABLE brain_cycles (
  project         TEXT NOT NULL REFERENCES projects (slug) ON DELETE CASCADE,
  id              TEXT NOT NULL,
  trigger         TEXT NOT NULL,
  trigger_detail  TEXT,
  started_at      INTEGER NOT NULL,
  finished_at     INTEGER NOT NULL,
  dry_run         INTEGER NOT NULL DEFAULT 0,
  provider        TEXT,
  model           TEXT,
  decision        TEXT,
  outcome         TEXT NOT NULL,
  motor_check     TEXT,
  reason          TEXT NOT NULL,
  made            TEXT,
  attempts        TEXT,
  calls           INTEGER NOT NULL DEFAULT 0,
  input_tokens    INTEGER NOT NULL DEFAULT 0,
  output_tokens   INTEGER NOT NULL DEFAULT 0,
  cost_micros     INTEGER,
  PRIMARY KEY (project, id)
);
CREATE INDEX brain_cycles_by_start ON brain_cycles (project, started_at);
-- The circuit breaker of each brain provider (by its configured name, for the whole installation),
-- saved after each call so that every process (the daemon, a one-shot `sos brain run`) sees one
-- state. snapshot: BreakerSnapshot as JSON.
CREATE TABLE brain_breakers (
  name        TEXT PRIMARY KEY,
  snapshot    TEXT NOT NULL,
  updated_at  INTEGER NOT NULL
);
-- Where the daemon's brain loop has read each project's event stream to (a Bus cursor), so that
-- events emitted while the daemon was down still trigger a cycle when it starts.
CREATE TABLE brain_cursors (
  project     TEXT PRIMARY KEY REFERENCES projects (slug) ON DELETE CASCADE,
  cursor      TEXT NOT NULL,
  updated_at  INTEGER NOT NULL
);
