-- A change counter for engram updates and deletes, so a reader holding vectors in memory can
-- tell in O(1) whether it must reload (appends are seen from MAX(seq) and loaded incrementally).
CREATE TABLE memory_changes (
  id       INTEGER PRIMARY KEY CHECK (id = 1),
  version  INTEGER NOT NULL
);
INSERT INTO memory_changes (id, version) VALUES (1, 0);
CREATE TRIGGER engrams_changed_on_update AFTER UPDATE ON engrams BEGIN
  UPDATE memory_changes SET version = version + 1 WHERE id = 1;
END;
CREATE TRIGGER engrams_changed_on_delete AFTER DELETE ON engrams BEGIN
  UPDATE memory_changes SET version = version + 1 WHERE id = 1;
END;
