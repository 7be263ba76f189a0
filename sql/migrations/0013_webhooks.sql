-- Inbound webhooks (issue 15): the deliveries already stored, so a sender's retry or a
-- replay of a delivery stores nothing twice.
--
-- One row per (source, delivery id): `webhooks/events` with the Standard Webhooks
-- `webhook-id`, `meta` with the SHA-256 of the notification's body (Meta sends no id).
-- The row is written in the same transaction as the delivery's events
-- (deneva.engine.store.send_events), so a crash between the two cannot lose or double
-- anything, and two identical deliveries racing (on one replica or two) meet on the
-- primary key: the second waits for the first to commit and then stores nothing.
-- The janitor's `janitor-prune-engine` deletes rows older than `retention_webhook_deliveries`.
-- Not tenant-scoped (the engine's own bookkeeping): deneva_system only.

CREATE TABLE webhook_deliveries (
    source      text NOT NULL,
    id          text NOT NULL,
    received_at timestamptz NOT NULL,
    PRIMARY KEY (source, id)
);
CREATE INDEX webhook_deliveries_received ON webhook_deliveries (received_at);

-- UPDATE: the janitor locks the rows it deletes (FOR UPDATE SKIP LOCKED).
GRANT SELECT, INSERT, UPDATE, DELETE ON webhook_deliveries TO deneva_system;
