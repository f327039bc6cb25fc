-- The brain's goals (issue 14): what the coordinator works toward. status: open, done, dropped.
CREATE TABLE goals (
  project     TEXT NOT NULL REFERENCES projects (slug) ON DELETE CASCADE,
  id          TEXT NOT NULL,
  text        TEXT NOT NULL,
  priority    INTEGER NOT NULL CHECK (priority BETWEEN 0 AND 100),
  status      TEXT NOT NULL CHECK (status IN ('open', 'done', 'dropped')),
  created_by  TEXT NOT NULL,
  created_at  BIGINT NOT NULL,
  updated_at  BIGINT NOT NULL,
  PRIMARY KEY (project, id)
);
CREATE INDEX goals_by_status ON goals (project, status, priority DESC);

-- Retired directive markers of a project (`sos brain retire`), lower-cased: a proposal whose
-- title or details contain one is stale. The built-in markers apply to every project besides.
CREATE TABLE brain_retired (
  project     TEXT NOT NULL REFERENCES projects (slug) ON DELETE CASCADE,
  marker      TEXT NOT NULL,
  created_by  TEXT NOT NULL,
  created_at  BIGINT NOT NULL,
  PRIMARY KEY (project, marker)
);
