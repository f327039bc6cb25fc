-- The HTTP surface's audit log (issue 16): one row per mutating request to the daemon (a REST
-- call that is not a GET, or an MCP tools/call of a tool that changes something), whatever its
-- outcome. actor: the caller's agent (NULL for none); token_id: the bearer token's id; role:
-- the token's role; action: e.g. tasks.claim or mcp.send; target: what it acted on, when known;
-- status: the HTTP status (200 for an MCP call, whose errors travel in the result); outcome:
-- ok or the error code; request_id: the x-request-id the response carried; remote: the client's
-- address. Ids are time-sortable, so (project, id) reads in order.
CREATE TABLE http_audit (
  project     TEXT NOT NULL REFERENCES projects (slug) ON DELETE CASCADE,
  id          TEXT NOT NULL,
  at          BIGINT NOT NULL,
  actor       TEXT,
  token_id    TEXT,
  role        TEXT NOT NULL,
  method      TEXT NOT NULL,
  path        TEXT NOT NULL,
  action      TEXT NOT NULL,
  target      TEXT,
  status      INTEGER NOT NULL,
  outcome     TEXT NOT NULL,
  request_id  TEXT NOT NULL,
  remote      TEXT,
  PRIMARY KEY (project, id)
);
CREATE INDEX http_audit_by_time ON http_audit (project, at);
CREATE INDEX http_audit_by_action ON http_audit (project, action, at);
