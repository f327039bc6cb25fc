-- The bus on the Store's own database (used when no Redis is configured).
-- One row per message; one delivery row per recipient, which is also the read cursor.
CREATE TABLE bus_messages (
  seq              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  id               TEXT NOT NULL UNIQUE,
  project          TEXT NOT NULL REFERENCES projects (slug) ON DELETE CASCADE,
  sender           TEXT NOT NULL,
  target           TEXT NOT NULL,
  type             TEXT NOT NULL,
  envelope         TEXT NOT NULL,
  ack_required     BOOLEAN NOT NULL DEFAULT FALSE,
  created_at       BIGINT NOT NULL,
  expires_at       BIGINT,
  idempotency_key  TEXT,
  resent_at        BIGINT,
  escalated_at     BIGINT
);
CREATE UNIQUE INDEX bus_messages_idempotency ON bus_messages (project, sender, idempotency_key)
  WHERE idempotency_key IS NOT NULL;
CREATE INDEX bus_messages_acks ON bus_messages (project, seq) WHERE ack_required;

CREATE TABLE bus_deliveries (
  message_seq  BIGINT NOT NULL REFERENCES bus_messages (seq) ON DELETE CASCADE,
  project      TEXT NOT NULL,
  recipient    TEXT NOT NULL,
  state        TEXT NOT NULL CHECK (state IN ('queued', 'delivered', 'read', 'acked', 'expired')),
  at           BIGINT NOT NULL,
  PRIMARY KEY (message_seq, recipient)
);
-- The unread scan: one agent's queued/delivered rows in send order.
CREATE INDEX bus_deliveries_by_recipient ON bus_deliveries (project, recipient, state, message_seq);

CREATE TABLE bus_presence (
  project    TEXT NOT NULL,
  agent      TEXT NOT NULL,
  last_seen  BIGINT NOT NULL,
  ttl_ms     BIGINT NOT NULL,
  PRIMARY KEY (project, agent)
);
