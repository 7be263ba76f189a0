-- Claim the fetch of one missing report ($2) for owner $3 until $4; an expired claim
-- ($5 now) is taken over. Returns the owner when claimed.
INSERT INTO metric_cache_fetches (tenant_id, cache_key, owner, expires_at) VALUES ($1, $2, $3, $4)
ON CONFLICT (tenant_id, cache_key) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at
    WHERE metric_cache_fetches.expires_at < $5
RETURNING owner
