-- Memory (Mirror): engrams with their vectors (little-endian float32 blobs) and full text (FTS5).
CREATE TABLE engrams (
  seq            INTEGER PRIMARY KEY AUTOINCREMENT,
  id             TEXT NOT NULL UNIQUE,
  project        TEXT NOT NULL REFERENCES projects (slug) ON DELETE CASCADE,
  text           TEXT NOT NULL,
  kind           TEXT NOT NULL CHECK (kind IN ('observation', 'decision', 'handoff', 'finding', 'checkpoint', 'cycle')),
  scope          TEXT NOT NULL,
  author         TEXT NOT NULL,
  task_id        TEXT,
  message_id     TEXT,
  embedder       TEXT NOT NULL,
  dim            INTEGER NOT NULL,
  embedding      BLOB NOT NULL,
  created_at     INTEGER NOT NULL,
  updated_at     INTEGER NOT NULL,
  superseded_by  TEXT
);
CREATE INDEX engrams_by_project ON engrams (project, embedder, seq);

CREATE TABLE engram_tags (
  engram_seq  INTEGER NOT NULL REFERENCES engrams (seq) ON DELETE CASCADE,
  tag         TEXT NOT NULL,
  PRIMARY KEY (engram_seq, tag)
);
CREATE INDEX engram_tags_by_tag ON engram_tags (tag, engram_seq);

CREATE VIRTUAL TABLE engrams_fts USING fts5 (text, content = 'engrams', content_rowid = 'seq', tokenize = 'porter unicode61');
CREATE TRIGGER engrams_fts_insert AFTER INSERT ON engrams BEGIN
  INSERT INTO engrams_fts (rowid, text) VALUES (new.seq, new.text);
END;
CREATE TRIGGER engrams_fts_delete AFTER DELETE ON engrams BEGIN
  INSERT INTO engrams_fts (engrams_fts, rowid, text) VALUES ('delete', old.seq, old.text);
END;
CREATE TRIGGER engrams_fts_update AFTER UPDATE OF text ON engrams BEGIN
  INSERT INTO engrams_fts (engrams_fts, rowid, text) VALUES ('delete', old.seq, old.text);
  INSERT INTO engrams_fts (rowid, text) VALUES (new.seq, new.text);
END;
