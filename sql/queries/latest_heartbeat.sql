SELECT max(last_beat_at) AS last_beat_at
FROM heartbeats
WHERE source = $1 AND ($2::text IS NULL OR node = $2)
