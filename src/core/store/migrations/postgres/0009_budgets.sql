-- Budgets (issue 13): a spending limit on a scope of a project, over a period, with the action
-- taken when it is spent. scope: 'project', 'squad:<s>', 'agent:<a>' or 'task:<id>'.
-- limit_value is micro-dollars (unit 'usd') or tokens of every kind (unit 'tokens').
CREATE TABLE budgets (
  project      TEXT NOT NULL REFERENCES projects (slug) ON DELETE CASCADE,
  scope        TEXT NOT NULL,
  unit         TEXT NOT NULL CHECK (unit IN ('usd', 'tokens')),
  limit_value  BIGINT NOT NULL CHECK (limit_value > 0),
  period       TEXT NOT NULL CHECK (period IN ('day', 'week', 'month', 'total')),
  action       TEXT NOT NULL CHECK (action IN ('warn', 'downgrade', 'pause', 'block')),
  warn_at      INTEGER NOT NULL DEFAULT 80 CHECK (warn_at BETWEEN 1 AND 100),
  created_at   BIGINT NOT NULL,
  updated_at   BIGINT NOT NULL,
  PRIMARY KEY (project, scope)
);
CREATE INDEX budgets_by_action ON budgets (project, action);

-- Spend per budget and period, kept by the ledger as it records (in the same transaction), so
-- that the claim path reads one row per budget instead of summing the ledger. period_start is
-- 0 for 'total'. warned_at / exhausted_at: when this period first crossed the warning threshold
-- and the limit (each crossing is announced once).
CREATE TABLE budget_spend (
  project       TEXT NOT NULL,
  scope         TEXT NOT NULL,
  period_start  BIGINT NOT NULL,
  spent         BIGINT NOT NULL DEFAULT 0 CHECK (spent >= 0),
  warned_at     BIGINT,
  exhausted_at  BIGINT,
  PRIMARY KEY (project, scope, period_start),
  FOREIGN KEY (project, scope) REFERENCES budgets (project, scope) ON DELETE CASCADE
);
