-- The first event named $1 received since $2 whose field $3 equals $4 (no match path:
-- any): what a wait registered after that event arrived resolves with.
SELECT name, data, id, (extract(epoch FROM ts) * 1000)::bigint AS ts
FROM engine_events
WHERE name = $1 AND received_at >= $2 AND ($3::text[] IS NULL OR
      jsonb_build_object('name', name, 'data', data, 'id', id) #> $3::text[] = $4::jsonb)
ORDER BY received_at, id
LIMIT 1
