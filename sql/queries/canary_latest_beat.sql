-- The latest beat of source $1 on any node (the engine is one, however many replicas).
SELECT node, last_beat_at FROM heartbeats WHERE source = $1 ORDER BY last_beat_at DESC LIMIT 1
