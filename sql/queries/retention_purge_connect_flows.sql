-- Delete up to $2 browser connect flows that expired before $1 (a flow's grant is wiped
-- when it ends; what is left is its hashes and outcome).
WITH gone AS (
    DELETE FROM connect_flows WHERE id IN (
        SELECT id FROM connect_flows WHERE expires_at < $1 ORDER BY expires_at LIMIT $2
        FOR UPDATE SKIP LOCKED
    )
    RETURNING 1
)
SELECT count(*) FROM gone
