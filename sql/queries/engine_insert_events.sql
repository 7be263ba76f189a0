-- Store events; a known id is a no-op. Returns the ids that were new.
INSERT INTO engine_events (id, name, data, ts, received_at)
SELECT * FROM unnest($1::text[], $2::text[], $3::jsonb[], $4::timestamptz[], $5::timestamptz[])
ON CONFLICT (id) DO NOTHING
RETURNING id
