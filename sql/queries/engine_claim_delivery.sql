-- Record an inbound delivery ($1 source, $2 id, $3 now); a row back: it is new. A delivery
-- another transaction is storing right now waits for that one to end (the primary key),
-- then comes back empty if it committed.
INSERT INTO webhook_deliveries (source, id, received_at)
VALUES ($1, $2, $3)
ON CONFLICT (source, id) DO NOTHING
RETURNING 1
