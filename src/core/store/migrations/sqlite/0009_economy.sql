-- The economy's ledger (issue 13): one row per metered model call or turn, from any source.
-- Tokens are integers; cost_micros is integer micro-dollars, NULL when the model is unpriced
-- (unknown, never 0); price_version names the price table that priced it (NULL with the cost).
-- (project, source, source_key) is the source's own identity: importing the same line twice, or
-- two importers racing, inserts it once (INSERT … ON CONFLICT DO NOTHING).
CREATE TABLE usage_events (
  id                     TEXT PRIMARY KEY,
  project                TEXT NOT NULL REFERENCES projects (slug) ON DELETE CASCADE,
  -- NULL: no agent known (shown as `-`).
  agent                  TEXT,
  -- A task id of the same project, checked when the row is written; NULL: none.
  task                   TEXT,
  provider               TEXT NOT NULL,
  model                  TEXT NOT NULL,
  input_tokens           INTEGER NOT NULL CHECK (input_tokens >= 0),
  output_tokens          INTEGER NOT NULL CHECK (output_tokens >= 0),
  -- Prompt-cache writes with the 5-minute lifetime, and with the 1-hour one.
  cache_write_tokens     INTEGER NOT NULL DEFAULT 0 CHECK (cache_write_tokens >= 0),
  cache_write_1h_tokens  INTEGER NOT NULL DEFAULT 0 CHECK (cache_write_1h_tokens >= 0),
  cache_read_tokens      INTEGER NOT NULL DEFAULT 0 CHECK (cache_read_tokens >= 0),
  -- Informational: already inside output_tokens where the provider bills it as output (OpenAI).
  reasoning_tokens       INTEGER NOT NULL DEFAULT 0 CHECK (reasoning_tokens >= 0),
  cost_micros            INTEGER CHECK (cost_micros >= 0),
  price_version          TEXT,
  source                 TEXT NOT NULL CHECK (source IN ('claude', 'codex', 'gemini', 'report', 'brain')),
  source_file            TEXT,
  session_id             TEXT,
  source_key             TEXT NOT NULL,
  occurred_at            INTEGER NOT NULL,
  recorded_at            INTEGER NOT NULL,
  UNIQUE (project, source, source_key)
);
CREATE INDEX usage_events_by_time ON usage_events (project, occurred_at);
CREATE INDEX usage_events_by_agent ON usage_events (project, agent);
CREATE INDEX usage_events_by_model ON usage_events (project, model);
CREATE INDEX usage_events_by_task ON usage_events (project, task);

-- Where each incremental importer stopped in each file: a file whose device and inode still match
-- and that did not shrink is read on from `offset`; anything else is read again from the start
-- (the unique source key keeps a re-read from counting twice).
CREATE TABLE import_offsets (
  project     TEXT NOT NULL REFERENCES projects (slug) ON DELETE CASCADE,
  source      TEXT NOT NULL CHECK (source IN ('claude', 'codex', 'gemini', 'report', 'brain')),
  path        TEXT NOT NULL,
  device      INTEGER NOT NULL,
  inode       INTEGER NOT NULL,
  size        INTEGER NOT NULL CHECK (size >= 0),
  "offset"    INTEGER NOT NULL CHECK ("offset" >= 0),
  updated_at  INTEGER NOT NULL,
  PRIMARY KEY (project, source, path)
);
