-- Rollups of the ledger for `sos usage` (usage_events stays the record; these are its sums).
-- usage_rollup: per project, UTC day, agent and model; usage_task_rollup: per project, task, UTC
-- day and agent. day is the UTC day's start in epoch ms; agent '' is no agent and task '' no task
-- (a name or task id is never empty). Each row holds its events, the unpriced ones among them and
-- their sums; cost_micros sums the priced events only (0 when none is priced).
-- recordMany adds each new event in its transaction (a duplicate adds nothing), recompute moves
-- the cost of each re-priced event in the same transaction, and the reports read the rollups for
-- whole days and usage_events only for the partial days at the edges of --since/--until.
CREATE TABLE usage_rollup (
  project                TEXT NOT NULL REFERENCES projects (slug) ON DELETE CASCADE,
  day                    INTEGER NOT NULL,
  agent                  TEXT NOT NULL,
  model                  TEXT NOT NULL,
  events                 INTEGER NOT NULL,
  unknown_cost_events    INTEGER NOT NULL,
  input_tokens           INTEGER NOT NULL,
  output_tokens          INTEGER NOT NULL,
  cache_write_tokens     INTEGER NOT NULL,
  cache_write_1h_tokens  INTEGER NOT NULL,
  cache_read_tokens      INTEGER NOT NULL,
  reasoning_tokens       INTEGER NOT NULL,
  cost_micros            INTEGER NOT NULL,
  PRIMARY KEY (project, day, agent, model)
) WITHOUT ROWID;

CREATE TABLE usage_task_rollup (
  project                TEXT NOT NULL REFERENCES projects (slug) ON DELETE CASCADE,
  task                   TEXT NOT NULL,
  day                    INTEGER NOT NULL,
  agent                  TEXT NOT NULL,
  events                 INTEGER NOT NULL,
  unknown_cost_events    INTEGER NOT NULL,
  input_tokens           INTEGER NOT NULL,
  output_tokens          INTEGER NOT NULL,
  cache_write_tokens     INTEGER NOT NULL,
  cache_write_1h_tokens  INTEGER NOT NULL,
  cache_read_tokens      INTEGER NOT NULL,
  reasoning_tokens       INTEGER NOT NULL,
  cost_micros            INTEGER NOT NULL,
  PRIMARY KEY (project, task, day, agent)
) WITHOUT ROWID;

-- The ledger so far.
INSERT INTO usage_rollup (project, day, agent, model, events, unknown_cost_events, input_tokens, output_tokens,
  cache_write_tokens, cache_write_1h_tokens, cache_read_tokens, reasoning_tokens, cost_micros)
SELECT project, (occurred_at / 86400000) * 86400000, COALESCE(agent, ''), model, COUNT(*),
  SUM(CASE WHEN cost_micros IS NULL THEN 1 ELSE 0 END), SUM(input_tokens), SUM(output_tokens), SUM(cache_write_tokens),
  SUM(cache_write_1h_tokens), SUM(cache_read_tokens), SUM(reasoning_tokens), COALESCE(SUM(cost_micros), 0)
FROM usage_events
GROUP BY project, (occurred_at / 86400000) * 86400000, COALESCE(agent, ''), model;

INSERT INTO usage_task_rollup (project, task, day, agent, events, unknown_cost_events, input_tokens, output_tokens,
  cache_write_tokens, cache_write_1h_tokens, cache_read_tokens, reasoning_tokens, cost_micros)
SELECT project, COALESCE(task, ''), (occurred_at / 86400000) * 86400000, COALESCE(agent, ''), COUNT(*),
  SUM(CASE WHEN cost_micros IS NULL THEN 1 ELSE 0 END), SUM(input_tokens), SUM(output_tokens), SUM(cache_write_tokens),
  SUM(cache_write_1h_tokens), SUM(cache_read_tokens), SUM(reasoning_tokens), COALESCE(SUM(cost_micros), 0)
FROM usage_events
GROUP BY project, COALESCE(task, ''), (occurred_at / 86400000) * 86400000, COALESCE(agent, '');
