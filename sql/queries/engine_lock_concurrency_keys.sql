-- Lock the rows of concurrency keys $1 (made on first use), in one order: claims of
-- runs sharing a key are serialised across replicas.
WITH ins AS (
    INSERT INTO engine_concurrency_keys (key) SELECT unnest($1::text[]) ON CONFLICT DO NOTHING
)
SELECT key FROM engine_concurrency_keys WHERE key = ANY($1::text[]) ORDER BY key FOR UPDATE
