-- Identity: projects, agents and their capabilities, tokens (hashed), squads, refused attempts.
CREATE TABLE projects (
  slug        TEXT PRIMARY KEY,
  created_at  INTEGER NOT NULL
);

CREATE TABLE agents (
  project     TEXT NOT NULL REFERENCES projects (slug) ON DELETE CASCADE,
  name        TEXT NOT NULL,
  kind        TEXT NOT NULL CHECK (kind IN ('claude', 'codex', 'gemini', 'shell', 'custom')),
  role        TEXT NOT NULL CHECK (role IN ('coordinator', 'worker', 'specialist')),
  session     TEXT,
  created_at  INTEGER NOT NULL,
  updated_at  INTEGER NOT NULL,
  PRIMARY KEY (project, name)
);

-- One row per capability so the claim path can match required capabilities with plain SQL.
CREATE TABLE agent_capabilities (
  project     TEXT NOT NULL,
  agent       TEXT NOT NULL,
  capability  TEXT NOT NULL,
  PRIMARY KEY (project, agent, capability),
  FOREIGN KEY (project, agent) REFERENCES agents (project, name) ON DELETE CASCADE
);

CREATE TABLE tokens (
  id            TEXT PRIMARY KEY,
  project       TEXT NOT NULL,
  agent         TEXT NOT NULL,
  role          TEXT NOT NULL CHECK (role IN ('agent', 'admin', 'observer')),
  prefix        TEXT NOT NULL,
  hash          TEXT NOT NULL UNIQUE,
  created_at    INTEGER NOT NULL,
  last_used_at  INTEGER,
  revoked_at    INTEGER,
  FOREIGN KEY (project, agent) REFERENCES agents (project, name) ON DELETE CASCADE
);
CREATE INDEX tokens_by_project ON tokens (project, created_at);

CREATE TABLE squads (
  project      TEXT NOT NULL REFERENCES projects (slug) ON DELETE CASCADE,
  name         TEXT NOT NULL,
  description  TEXT,
  created_at   INTEGER NOT NULL,
  PRIMARY KEY (project, name)
);

CREATE TABLE squad_members (
  project    TEXT NOT NULL,
  squad      TEXT NOT NULL,
  agent      TEXT NOT NULL,
  joined_at  INTEGER NOT NULL,
  PRIMARY KEY (project, squad, agent),
  FOREIGN KEY (project, squad) REFERENCES squads (project, name) ON DELETE CASCADE,
  FOREIGN KEY (project, agent) REFERENCES agents (project, name) ON DELETE CASCADE
);
CREATE INDEX squad_members_by_agent ON squad_members (project, agent);

-- Not a foreign key: a refused attempt may name a project that does not exist.
CREATE TABLE security_events (
  id       INTEGER PRIMARY KEY AUTOINCREMENT,
  project  TEXT NOT NULL,
  kind     TEXT NOT NULL,
  actor    TEXT NOT NULL,
  detail   TEXT NOT NULL,
  at       INTEGER NOT NULL
);
CREATE INDEX security_events_by_project ON security_events (project, kind);
