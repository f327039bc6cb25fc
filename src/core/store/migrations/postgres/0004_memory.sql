-- Memory (Mirror): engrams with their vectors (pgvector) and full text (tsvector).
-- The extension goes in public (on the search_path of every installation) when it is not there
-- yet; a database where it already exists elsewhere keeps it there.
CREATE EXTENSION IF NOT EXISTS vector SCHEMA public;

CREATE TABLE engrams (
  seq            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
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
  -- No fixed dimension, so any embedder fits; `dim` says which index (if any) covers the row.
  embedding      vector NOT NULL,
  created_at     BIGINT NOT NULL,
  updated_at     BIGINT NOT NULL,
  superseded_by  TEXT,
  tsv            tsvector GENERATED ALWAYS AS (to_tsvector('english', text)) STORED,
  CHECK (vector_dims(embedding) = dim)
);
CREATE INDEX engrams_by_project ON engrams (project, embedder, seq);
CREATE INDEX engrams_tsv ON engrams USING gin (tsv);
-- HNSW for the default dimension. Queries must use the same expression and `dim = 384` for the
-- planner to pick it; other dimensions are searched by an exact scan.
CREATE INDEX engrams_embedding_384 ON engrams
  USING hnsw ((embedding::vector(384)) vector_cosine_ops) WITH (m = 16, ef_construction = 64)
  WHERE dim = 384;

CREATE TABLE engram_tags (
  engram_seq  BIGINT NOT NULL REFERENCES engrams (seq) ON DELETE CASCADE,
  tag         TEXT NOT NULL,
  PRIMARY KEY (engram_seq, tag)
);
CREATE INDEX engram_tags_by_tag ON engram_tags (tag, engram_seq);
