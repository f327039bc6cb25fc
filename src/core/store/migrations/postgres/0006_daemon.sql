-- The daemon (DESIGN.md §2): one per installation. Its lease row is the lock (a second daemon
-- refuses while the lease is fresh and its owner alive), and carries the loops' status for
-- `sos daemon status`.
CREATE TABLE daemon_lease (
  id            INTEGER PRIMARY KEY CHECK (id = 1),
  owner         TEXT NOT NULL,
  pid           INTEGER NOT NULL,
  host          TEXT NOT NULL,
  started_at    BIGINT NOT NULL,
  heartbeat_at  BIGINT NOT NULL,
  status        TEXT NOT NULL
);

-- Wake delivery into sessions, per message and recipient: held while the agent cannot take it,
-- injecting while being typed (a row left in this state by a crash is never typed again),
-- delivered with the time and route, failed when the line did not go through.
CREATE TABLE wake_deliveries (
  project     TEXT NOT NULL,
  message_id  TEXT NOT NULL,
  agent       TEXT NOT NULL,
  state       TEXT NOT NULL CHECK (state IN ('held', 'injecting', 'delivered', 'failed', 'unverified', 'expired')),
  route       TEXT,
  attempts    INTEGER NOT NULL DEFAULT 0,
  held_at     BIGINT,
  at          BIGINT NOT NULL,
  PRIMARY KEY (project, message_id, agent)
);
CREATE INDEX wake_deliveries_by_state ON wake_deliveries (project, state);
