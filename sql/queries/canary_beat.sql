-- The canary's beat: a `heartbeat` run got through scheduler, dispatcher and a worker on
-- node $2 at $3 (source $1). A late beat never moves the time back.
INSERT INTO heartbeats (source, node, last_beat_at)
VALUES ($1, $2, $3)
ON CONFLICT (source, node) DO UPDATE SET last_beat_at = greatest(heartbeats.last_beat_at, excluded.last_beat_at)
