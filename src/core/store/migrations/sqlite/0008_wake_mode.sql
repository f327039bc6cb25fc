-- Wake mode per agent (NULL: its kind's default): `text` types the message's first line, `notify`
-- a fixed line with nothing the sender wrote, `off` types nothing. A shell runs whatever is typed.
ALTER TABLE agents ADD COLUMN wake TEXT CHECK (wake IN ('text', 'notify', 'off'));

-- A message the daemon chose not to type (wake off) is recorded once as `skipped`. SQLite cannot
-- change a CHECK constraint in place, so the table is rebuilt.
CREATE TABLE wake_deliveries_new (
  project     TEXT NOT NULL,
  message_id  TEXT NOT NULL,
  agent       TEXT NOT NULL,
  state       TEXT NOT NULL CHECK (state IN ('held', 'injecting', 'delivered', 'failed', 'unverified', 'expired', 'skipped')),
  route       TEXT,
  attempts    INTEGER NOT NULL DEFAULT 0,
  held_at     INTEGER,
  at          INTEGER NOT NULL,
  PRIMARY KEY (project, message_id, agent)
);
INSERT INTO wake_deliveries_new SELECT project, message_id, agent, state, route, attempts, held_at, at FROM wake_deliveries;
DROP TABLE wake_deliveries;
ALTER TABLE wake_deliveries_new RENAME TO wake_deliveries;
CREATE INDEX wake_deliveries_by_state ON wake_deliveries (project, state);
