INSERT INTO heartbeats (source, node, last_beat_at)
VALUES ($1, $2, $3)
ON CONFLICT (source, node) DO UPDATE SET last_beat_at = greatest(heartbeats.last_beat_at, excluded.last_beat_at)
