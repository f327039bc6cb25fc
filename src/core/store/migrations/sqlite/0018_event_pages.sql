-- Fewer pages written per task change. Every claim and complete writes one task_events row and
-- one bus_events row in its transaction; with AUTOINCREMENT each also rewrote sqlite_sequence,
-- and bus_events kept a second b-tree (its (project, seq) index). COMMIT time follows the pages
-- written, so both go.
--
-- task_events.id: a plain INTEGER PRIMARY KEY (max + 1). It orders a task's history and an
-- agent's recent completions; nothing holds it as a cursor. A reused id can only follow the
-- deletion of the newest rows, and it is still greater than every row left, so the order of the
-- rows that exist is unchanged.
CREATE TABLE task_events_new (
  id           INTEGER PRIMARY KEY,
  task_seq     INTEGER NOT NULL REFERENCES tasks (seq) ON DELETE CASCADE,
  at           INTEGER NOT NULL,
  actor        TEXT NOT NULL,
  event        TEXT NOT NULL,
  from_status  TEXT,
  to_status    TEXT,
  detail       TEXT
);
INSERT INTO task_events_new (id, task_seq, at, actor, event, from_status, to_status, detail)
  SELECT id, task_seq, at, actor, event, from_status, to_status, detail FROM task_events;
DROP TABLE task_events;
ALTER TABLE task_events_new RENAME TO task_events;
CREATE INDEX task_events_by_task ON task_events (task_seq, id);

-- bus_events.seq is the cursor followers hold (`events(project, cursor)`), so it must never go
-- back or be reused. It is now per project: one b-tree keyed (project, seq), the new seq being
-- the project's MAX(seq) + 1 (read from the leaf the row goes to, inside the writer's lock).
-- Existing rows keep their seq, so every cursor already handed out stays valid and below the
-- next one. The newest row of a project can never be deleted (trigger below), so MAX(seq) never
-- goes down and no seq is handed out twice.
CREATE TABLE bus_events_new (
  project  TEXT NOT NULL,
  seq      INTEGER NOT NULL,
  type     TEXT NOT NULL,
  data     TEXT NOT NULL,
  at       INTEGER NOT NULL,
  PRIMARY KEY (project, seq)
) WITHOUT ROWID;
INSERT INTO bus_events_new (project, seq, type, data, at) SELECT project, seq, type, data, at FROM bus_events;
DROP TABLE bus_events;
ALTER TABLE bus_events_new RENAME TO bus_events;
CREATE TRIGGER bus_events_keep_newest BEFORE DELETE ON bus_events
  WHEN OLD.seq >= (SELECT MAX(seq) FROM bus_events WHERE project = OLD.project)
BEGIN
  SELECT RAISE(ABORT, 'the newest bus event of a project is kept: its seq is the cursor floor');
END;
