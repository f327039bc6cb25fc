-- Subscription plans and quota (issue 13).
-- plan: how an agent pays: 'api' (per token) or a flat-rate plan whose 5-hour and weekly
-- windows limit it ('pro', 'max', 'team'); NULL: not said (reported as API-priced).
-- transcripts: a glob of transcript files that belong to the agent, whatever their cwd.
ALTER TABLE agents ADD COLUMN plan TEXT CHECK (plan IN ('api', 'pro', 'max', 'team'));
ALTER TABLE agents ADD COLUMN transcripts TEXT;

-- Quota as the source reports it: Codex's rate_limits in its token_count events, Claude Code's
-- rate_limits handed to `sos statusline`, an API's rate-limit headers. One row per agent,
-- window and source: the latest reading ('-' for a reading no agent could be found for).
CREATE TABLE quota_readings (
  project         TEXT NOT NULL REFERENCES projects (slug) ON DELETE CASCADE,
  agent           TEXT NOT NULL,
  quota_window    TEXT NOT NULL CHECK (quota_window IN ('five_hour', 'seven_day')),
  source          TEXT NOT NULL CHECK (source IN ('codex', 'statusline', 'api')),
  used_percent    REAL NOT NULL CHECK (used_percent >= 0),
  window_minutes  INTEGER,
  resets_at       INTEGER,
  observed_at     INTEGER NOT NULL,
  PRIMARY KEY (project, agent, quota_window, source)
);

-- A budget's period lifted by an operator (`sos budgets lift`): its block and pause no longer
-- apply until the next period. paused_at: when the daemon parked the scope's agents this period
-- (once: an agent the operator unparks is not parked again).
ALTER TABLE budget_spend ADD COLUMN lifted_at INTEGER;
ALTER TABLE budget_spend ADD COLUMN paused_at INTEGER;
