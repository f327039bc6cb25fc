-- Wake mode per agent (NULL: its kind's default): `text` types the message's first line, `notify`
-- a fixed line with nothing the sender wrote, `off` types nothing. A shell runs whatever is typed.
ALTER TABLE agents ADD COLUMN wake TEXT CHECK (wake IN ('text', 'notify', 'off'));

-- A message the daemon chose not to type (wake off) is recorded once as `skipped`.
ALTER TABLE wake_deliveries DROP CONSTRAINT wake_deliveries_state_check;
ALTER TABLE wake_deliveries ADD CONSTRAINT wake_deliveries_state_check
  CHECK (state IN ('held', 'injecting', 'delivered', 'failed', 'unverified', 'expired', 'skipped'));
