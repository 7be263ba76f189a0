-- The replicas seen (source $1: each node's own beat, one row per node), the latest first,
-- at most $2.
SELECT node, last_beat_at FROM heartbeats WHERE source = $1 ORDER BY last_beat_at DESC, node LIMIT $2
