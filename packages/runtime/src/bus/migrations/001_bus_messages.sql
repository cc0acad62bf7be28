-- The Postgres transport of the bus: the table is the source of truth, NOTIFY only a doorbell.
CREATE TABLE IF NOT EXISTS bus_messages (
  id bigserial PRIMARY KEY,
  topic text NOT NULL,
  key text NOT NULL,
  value text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS bus_messages_topic_id ON bus_messages (topic, id);
CREATE INDEX IF NOT EXISTS bus_messages_created_at ON bus_messages (created_at);
