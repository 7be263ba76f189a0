-- Waits for events: run, step, event name, match path ('' for none, dotted), value, expiry.
INSERT INTO engine_waits (run_id, step_id, event_name, match_path, match_value, expires_at)
SELECT a, b, c, CASE WHEN d = '' THEN NULL ELSE string_to_array(d, '.') END, e, f
FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::jsonb[], $6::timestamptz[])
     AS t(a, b, c, d, e, f)
ON CONFLICT DO NOTHING
