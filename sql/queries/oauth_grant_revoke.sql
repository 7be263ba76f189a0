-- The first revocation's time and reason stay.
UPDATE oauth_grants
SET revoked_at = coalesce(revoked_at, $2), revoked_reason = coalesce(revoked_reason, $3)
WHERE id = $1
RETURNING id, tenant_id
